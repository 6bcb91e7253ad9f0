"""Watching a search: the live search page, static plots and HTML reports, all read from the store.

- :func:`watch` (called by ``fit``): this process's live page for a running search, announced on the
  Dask dashboard under ``/daskhpo``.
- :func:`serve_file`: a live page for the searches of a SQLite store (``daskhpo dashboard``).
- :func:`plot_store` / :func:`plot_records`: the same figures as a static bokeh layout
  (``search.plot()``); :func:`save_report` writes them to a standalone HTML file (``daskhpo report``).
- :class:`TrialTable` / :func:`summarize_table`: every stored evaluation in numpy columns, and the
  bounded samples and aggregates the figures draw (a page of a 100,000-trial search gets ~0.3 MB);
  :mod:`daskhpo.dashboard.importance`: parameter importance; :mod:`daskhpo.dashboard.trial`: the
  per-trial view.

The progress bar is :class:`daskhpo.progress.ProgressBar`.
"""

from __future__ import annotations

from .data import TrialTable, store_records, summarize, summarize_table
from .plots import SearchView, plot_records, plot_store
from .report import save_report
from .server import DashboardServer, FileCatalog, LiveCatalog, Watch, serve_file, watch

__all__ = [
    "watch",
    "Watch",
    "serve_file",
    "DashboardServer",
    "LiveCatalog",
    "FileCatalog",
    "SearchView",
    "plot_records",
    "plot_store",
    "save_report",
    "store_records",
    "summarize",
    "summarize_table",
    "TrialTable",
]
