"""What several ``daskhpo`` commands share: opening an existing store, argument types."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

__all__ = ["open_existing", "positive_seconds", "sqlite_path", "SQLITE_PREFIX"]

SQLITE_PREFIX = "sqlite:///"


def sqlite_path(storage: str) -> str:
    """The file path of a ``sqlite:///PATH`` store."""
    return storage[len(SQLITE_PREFIX) :]


def open_existing(storage: str, name: str | None = None) -> Any:
    """The SQLite store ``storage`` (which must exist), checked to hold the search ``name`` if given.

    Exits with a message (:class:`SystemExit`) when there is no such store or search.
    """
    from ..store import SQLiteStore

    if not storage.startswith(SQLITE_PREFIX):
        raise SystemExit(f"daskhpo: --storage {storage!r}: give a store such as sqlite:///runs.db")
    path = Path(sqlite_path(storage))
    if not path.exists():
        raise SystemExit(f"daskhpo: no store at {path}: check the --storage path")
    store = SQLiteStore(path, name or "", create=False)
    if name is not None and name not in {s["name"] for s in store.searches()}:
        known = ", ".join(s["name"] for s in store.searches()) or "none"
        raise SystemExit(f"daskhpo: no search named {name!r} in {path} (searches there: {known})")
    return store


def positive_seconds(text: str) -> float:
    """An argparse type: a positive, finite number of seconds."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a positive number of seconds (such as 600)"
        )
    return value


def add_cluster_option(parser: Any) -> None:
    """``--cluster TARGET`` (``--client`` is the same option, kept for older scripts)."""
    parser.add_argument(
        "--cluster",
        "--client",
        dest="cluster",
        metavar="TARGET",
        default=None,
        help="where to run: a scheduler address such as tcp://host:8786, or a target for "
        "daskhpo.connect (ssh://..., gateway://..., kubernetes://...); default: an embedded "
        "LocalCluster. --client is another name for it",
    )
