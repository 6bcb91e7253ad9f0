"""The ``/daskhpo`` page on the Dask dashboard: which searches run on this cluster, with their live pages.

A :class:`SearchLinks` scheduler plugin is registered by the driver through its client
(``client.register_plugin``), so it reaches a scheduler that is already running in another process or on
another machine, which ``distributed.scheduler.http.routes`` (read once, when the scheduler starts, from
the scheduler's own configuration) cannot. Once started in the scheduler it adds two routes to the
dashboard's web server and a "Daskhpo" entry to the dashboard's navigation bar:

``/daskhpo``
    The searches announced on this cluster, newest first, each with a link to its live page.
``/daskhpo/NAME``
    A redirect to the live page of the search NAME.

The live pages themselves are served by the driver process, where the trial store is (a memory store
exists only there): each driver announces its searches with ``client.set_metadata`` under
:data:`META_KEY`, which these pages read. The plugin is sent to the scheduler by value (cloudpickle), and this
module uses only the standard library, tornado and distributed, so the scheduler needs no daskhpo.
"""

from __future__ import annotations

import datetime as dt
import html
import logging
from typing import Any
from urllib.parse import quote, unquote

from distributed.diagnostics.plugin import SchedulerPlugin
from tornado import web

__all__ = ["META_KEY", "SearchLinks"]

logger = logging.getLogger("daskhpo")

META_KEY = "daskhpo-searches"
PLUGIN_NAME = "daskhpo-dashboard"


def _searches(scheduler: Any) -> dict[str, dict[str, Any]]:
    found = scheduler.get_metadata([META_KEY], default={}) or {}
    return {str(k): v for k, v in found.items() if isinstance(v, dict) and v.get("url")}


class SearchesPage(web.RequestHandler):
    """``/daskhpo``: a list of the searches announced on this cluster; ``/daskhpo/NAME``: a redirect."""

    def initialize(self, scheduler: Any) -> None:
        self.scheduler = scheduler

    def get(self, name: str | None = None) -> None:
        searches = _searches(self.scheduler)
        if name:
            entry = searches.get(unquote(name))
            if entry is None:
                self.set_status(404)
                self.finish(
                    f"<p>No search named {html.escape(unquote(name))} was announced on this "
                    'cluster. See <a href="../daskhpo">the list</a>.</p>'
                )
                return
            self.redirect(entry["url"])
            return
        rows = []
        ordered = sorted(searches.items(), key=lambda kv: -float(kv[1].get("started", 0)))
        for search, entry in ordered:
            started = dt.datetime.fromtimestamp(float(entry.get("started", 0))).isoformat(
                sep=" ", timespec="seconds"
            )
            rows.append(
                "<tr>"
                f'<td><a class="search" href="{html.escape(entry["url"])}">{html.escape(search)}</a></td>'
                f"<td>{html.escape(str(entry.get('status', 'running')))}</td>"
                f"<td>{html.escape(str(entry.get('search', '')))}</td>"
                f"<td>{html.escape(str(entry.get('storage', '')))}</td>"
                f"<td>{html.escape(str(entry.get('driver', '')))}</td>"
                f"<td>{started}</td>"
                "</tr>"
            )
        table = (
            "<table><tr><th>search</th><th>status</th><th>class</th><th>store</th>"
            "<th>driver</th><th>started</th></tr>" + "".join(rows) + "</table>"
            if rows
            else "<p>No search has been announced on this cluster yet. A search's <code>fit</code> "
            "announces itself here when it starts.</p>"
        )
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(
            "<!DOCTYPE html><html><head><meta charset='utf-8'><title>daskhpo searches</title>"
            "<meta http-equiv='refresh' content='5'>"
            "<style>body{font-family:sans-serif;margin:1.5em}td,th{padding:4px 10px;"
            "text-align:left;border-bottom:1px solid #ddd}</style></head><body>"
            "<p><a href='status'>&larr; Dask dashboard</a></p>"
            "<h2>daskhpo searches on this cluster</h2>"
            "<p>Each live page is served by the Python process that runs the search (it reads that "
            "search's trial store) and is there while that process runs; for a search stored in "
            "SQLite, <code>daskhpo dashboard --storage sqlite:///FILE.db</code> serves it at any "
            "time.</p>" + table + "</body></html>"
        )


class SearchLinks(SchedulerPlugin):
    """Adds ``/daskhpo`` to the scheduler's dashboard (see the module docstring)."""

    name = PLUGIN_NAME
    idempotent = True

    async def start(self, scheduler: Any) -> None:
        app = getattr(scheduler, "http_application", None)
        if app is None or getattr(scheduler, "_daskhpo_routes", False):
            return
        app.add_handlers(
            r".*$",
            [
                (r"/daskhpo/?", SearchesPage, {"scheduler": scheduler}),
                (r"/daskhpo/(.+)", SearchesPage, {"scheduler": scheduler}),
            ],
        )
        scheduler._daskhpo_routes = True
        try:
            # The navigation bar of the dashboard's pages lists template_variables(scheduler)["pages"]
            # (memoized per scheduler, shared with the running bokeh app). Not a public API: if it
            # changes, /daskhpo still works, only the menu entry is missing.
            from distributed.dashboard.scheduler import template_variables

            pages = template_variables(scheduler)["pages"]
            if "daskhpo" not in pages:
                pages.append("daskhpo")
        except Exception as exc:  # pragma: no cover - depends on distributed's internals
            logger.debug("daskhpo: no menu entry on the Dask dashboard (%s)", exc)


def search_path(name: str) -> str:
    """The path of a search's redirect on the Dask dashboard."""
    return "daskhpo/" + quote(name, safe="")
