"""Standalone HTML reports of a stored search."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .plots import plot_store

__all__ = ["save_report"]


def save_report(
    store: Any, path: str | Path, *, name: str | None = None, cdn: bool = False
) -> Path:
    """Write the figures of ``store`` to the HTML file ``path``.

    The file holds bokeh's JavaScript (about 1 MB) unless ``cdn`` is true, in which case it loads it
    from bokeh's CDN: a file that opens offline, or a small one.
    """
    from bokeh.embed import file_html
    from bokeh.resources import CDN, INLINE

    layout = plot_store(store, name=name)
    title = f"daskhpo report: {name or getattr(store, 'name', 'search')}"
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(file_html(layout, CDN if cdn else INLINE, title), encoding="utf-8")
    return out
