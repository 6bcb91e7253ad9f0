"""The table of search types that specs and the command line can name.

A facade registers itself with :func:`register_search` (``@register_search("grid")``); :mod:`daskhpo.spec`
reads :data:`SEARCH_TYPES` after importing the facade modules. This module imports nothing of daskhpo, so
registering never makes an import circle.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

__all__ = ["SEARCH_TYPES", "register_search"]

T = TypeVar("T", bound=type)

#: spec ``search.type`` -> facade class, filled as the facade modules are imported.
SEARCH_TYPES: dict[str, type] = {}


def register_search(type_name: str) -> Callable[[T], T]:
    """Class decorator: make a facade reachable from specs as ``search: {type: <type_name>}``."""

    def decorate(cls: T) -> T:
        if SEARCH_TYPES.get(type_name, cls) is not cls:
            raise ValueError(f"search type {type_name!r} is registered twice")
        SEARCH_TYPES[type_name] = cls
        cls._spec_type = type_name  # type: ignore[attr-defined]
        return cls

    return decorate
