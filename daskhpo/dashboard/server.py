"""The live search page: a bokeh server that reads trial stores and redraws while searches run.

Two ways to run it:

* In the driver process, started by ``fit`` (see :func:`watch`): it serves every search this process
  runs, from its store object, so it also shows a search kept in memory. The page is announced on the
  Dask dashboard under ``/daskhpo`` (:mod:`daskhpo.dashboard.scheduler`).
* ``daskhpo dashboard --storage sqlite:///FILE.db``: a standalone server for the searches in a SQLite
  file, running or finished, written by any process (see :func:`serve_file`).

Both read only the store: every ``interval`` milliseconds each open page looks at its store's
:class:`~daskhpo.dashboard.data.StoreFeed` (shared by the pages of one store), which reads only the rows
appended since its last look, in a background thread, and redraws what changed. Every figure's data is
bounded (samples and aggregates, see :mod:`daskhpo.dashboard.data`), so a page of a search of 100,000
trials loads and updates like one of a hundred. Parameter importance is fitted in the background too, on
a sample, and again once the search has grown by a fifth (or after a minute of new trials).

``?name=NAME`` picks the search, ``?trial=ID`` opens the per-trial view of that trial.
"""

from __future__ import annotations

import asyncio
import html
import logging
import os
import socket
import sys
import threading
import time
import warnings
import weakref
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

from ..store import SQLiteStore
from .data import StoreFeed, feed_for, store_records, submit

__all__ = ["Catalog", "LiveCatalog", "FileCatalog", "DashboardServer", "watch", "Watch"]

logger = logging.getLogger("daskhpo")

APP_PATH = "/daskhpo"


class Reader(Protocol):
    store: Any  # what is read (a new one means a new search of that name)

    def count(self) -> int: ...

    def records(self) -> list[dict[str, Any]]: ...

    def status(self) -> str | None: ...

    def best_rule(self) -> str | None: ...

    def feed(self) -> StoreFeed: ...


class Catalog(Protocol):
    """The searches a dashboard server can show."""

    def names(self) -> list[str]:
        """Search names, oldest first."""
        ...

    def reader(self, name: str) -> Reader | None: ...


# -- catalogs ------------------------------------------------------------------------------------
class _StoreReader:
    def __init__(self, store: Any, status: Callable[[], str | None]) -> None:
        self.store = store
        self._status = status

    def count(self) -> int:
        return len(self.store)

    def records(self) -> list[dict[str, Any]]:
        return store_records(self.store)

    def feed(self) -> StoreFeed:
        """The store's table, shared by every page that shows this store."""
        return feed_for(self.store)

    def status(self) -> str | None:
        return self._status()

    def best_rule(self) -> str | None:
        """The search's best rule, from the settings it stored (None before it stored them)."""
        return self.store.info()["spec"].get("best_rule")


class LiveCatalog:
    """The searches of this process, by name (a newer search of the same name replaces the older).

    Stores are held by weak reference: a search that is gone disappears from the dashboard.
    """

    def __init__(self, keep: int = 50) -> None:
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._keep = keep

    def add(self, name: str, store: Any) -> None:
        with self._lock:
            self._entries.pop(name, None)
            self._entries[name] = {"store": weakref.ref(store), "status": "running"}
            while len(self._entries) > self._keep:
                self._entries.popitem(last=False)

    def set_status(self, name: str, status: str) -> None:
        with self._lock:
            if name in self._entries:
                self._entries[name]["status"] = status

    def names(self) -> list[str]:
        with self._lock:
            return [n for n, e in self._entries.items() if e["store"]() is not None]

    def reader(self, name: str) -> Reader | None:
        with self._lock:
            entry = self._entries.get(name)
        store = None if entry is None else entry["store"]()
        if store is None:
            return None

        def status() -> str | None:
            if isinstance(store, SQLiteStore):
                return str(store.info()["status"])
            with self._lock:
                current = self._entries.get(name)
            return None if current is None else str(current["status"])

        return _StoreReader(store, status)


class FileCatalog:
    """The searches in a SQLite store file (each read through its own read-only handle)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._index = SQLiteStore(self.path, "", create=False)
        self._stores: dict[str, SQLiteStore] = {}
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        return [s["name"] for s in self._index.searches()]

    def reader(self, name: str) -> Reader | None:
        if name not in self.names():
            return None
        with self._lock:
            store = self._stores.get(name)
            if store is None:
                store = self._stores[name] = SQLiteStore(self.path, name, create=False)
        return _StoreReader(store, lambda: str(store.info()["status"]))


# -- one page ------------------------------------------------------------------------------------
#: Importance is fitted again once the search has this many times the evaluations it was fitted on,
#: or when it has new ones and this many seconds passed.
IMPORTANCE_GROWTH = 1.2
IMPORTANCE_SECONDS = 60.0


def _importance_job(feed: StoreFeed) -> None:
    from .importance import importance

    table = feed.table
    n = table.n
    try:
        result = importance(table)
    except Exception as exc:  # a failed fit is a note on the figure, not a broken page
        logger.warning("daskhpo dashboard: parameter importance failed: %s", exc)
        result = {"name": [], "importance": [], "std": [], "note": f"failed ({exc})"}
    finally:
        feed.importance_running = False
    if feed.table is table:  # not reset meanwhile
        feed.importance, feed.importance_at = result, n
        feed.importance_time = time.monotonic()
        feed.importance_version += 1


def want_importance(feed: StoreFeed) -> None:
    """Fit the importance of ``feed``'s table in the background if it is missing or stale."""
    n = feed.table.n
    if feed.importance_running or n == 0 or n == feed.importance_at:
        return
    stale = (
        feed.importance is None
        or n >= IMPORTANCE_GROWTH * feed.importance_at
        or time.monotonic() - feed.importance_time > IMPORTANCE_SECONDS
    )
    if stale:
        feed.importance_running = True
        submit(_importance_job, feed)


def _prefetch(feed: StoreFeed) -> None:
    try:
        feed.refresh()
    except Exception as exc:  # the page says it again when it reads
        logger.warning("daskhpo dashboard: could not read the store: %s", exc)
        return
    want_importance(feed)


class _Page:
    """One browser tab: picks its search from ``?name=`` (or the newest), then follows it."""

    def __init__(
        self,
        doc: Any,
        catalog: Catalog,
        name: str | None,
        interval: int,
        trial: int | None = None,
    ) -> None:
        from bokeh.layouts import column
        from bokeh.models.widgets import Div

        self.doc = doc
        self.catalog = catalog
        self.wanted = name
        self.trial = trial  # to show once the table has it
        self.view: Any = None
        self.reader: Reader | None = None
        self.seen: tuple[Any, ...] | None = None
        self.message = Div(text="<p>daskhpo: waiting for a search...</p>", name="daskhpo-waiting")
        self.root = column(self.message, name="daskhpo-page")
        doc.title = "daskhpo"
        self.refresh()
        doc.add_root(self.root)
        doc.add_periodic_callback(self.refresh, interval)

    def _others(self, names: list[str], current: str) -> list[tuple[str, str]]:
        return [
            (n, f"{APP_PATH}?name={quote(n, safe='')}") for n in reversed(names) if n != current
        ]

    def refresh(self) -> None:
        try:
            self._refresh()
        except Exception as exc:  # keep the page alive; say what went wrong
            logger.warning("daskhpo dashboard: could not read the store: %s", exc)

    def _refresh(self) -> None:
        from .plots import SearchView

        names = self.catalog.names()
        if self.view is None:
            name = self.wanted or (names[-1] if names else None)
            reader = self.catalog.reader(name) if name else None
            if reader is None:
                if self.wanted:
                    known = html.escape(", ".join(names) or "none yet")
                    self.message.text = (
                        f"<p>daskhpo: no search named <b>{html.escape(self.wanted)}</b> here "
                        f"(searches: {known}); waiting for it...</p>"
                    )
                return
            assert name is not None
            self.reader = reader
            self.view = SearchView(name, live=True, lookup=lambda t: self._feed().records_of(t))
            self.doc.title = f"daskhpo · {name}"
            self.root.children = [self.view.root]
        else:
            # A search run again under the same name has a new store: follow that one.
            self.reader = self.catalog.reader(self.view.name) or self.reader
        assert self.reader is not None
        # The status first: for a SQLite store it goes through the store's own checks of its files
        # (a read-only -shm file stops here, before the feed's connection maps it).
        status = self.reader.status()
        feed = self._feed()
        caught_up = feed.update()
        if caught_up:
            want_importance(feed)
        seen = (
            id(self.reader.store),
            id(feed.table),
            feed.table.version,
            status,
            len(names),
            feed.importance_version,
            caught_up,
        )
        if seen == self.seen:
            return
        self.seen = seen
        if not caught_up:
            # Reading a large store for the first time: say how far it got, draw once it is read
            # (drawing every partial table would make the browser redraw each second).
            self.view.show_progress(feed.table.n, feed.total, status)
            return
        self.view.update(
            feed.table,
            status=status,
            others=self._others(names, self.view.name),
            rule=self.reader.best_rule(),
            importance=feed.importance,
        )
        if self.trial is not None and (self.view.show_trial(self.trial) or caught_up):
            self.trial = None

    def _feed(self) -> StoreFeed:
        assert self.reader is not None
        return self.reader.feed()


# -- the server ----------------------------------------------------------------------------------
class DashboardServer:
    """A bokeh server for a :class:`Catalog`, running in a background thread of this process.

    Parameters
    ----------
    catalog : Catalog
        The searches it shows.
    host : str
        Interface to listen on (``"127.0.0.1"``, an address, or ``"0.0.0.0"`` for all).
    port : int
        Port, 0 for any free one.
    interval : int, optional
        Milliseconds between two looks at the store by an open page (default: the dask config
        ``daskhpo.dashboard.interval`` when a page opens, else 1000).
    """

    def __init__(
        self,
        catalog: Catalog,
        host: str = "127.0.0.1",
        port: int = 0,
        interval: int | None = None,
    ) -> None:
        self.catalog = catalog
        self.host = host
        self.port = port
        self.interval = interval
        self._server: Any = None
        self._loop: Any = None
        self._thread: threading.Thread | None = None

    def _make_doc(self, doc: Any) -> None:
        request = doc.session_context.request if doc.session_context else None
        args = request.arguments if request is not None else {}
        raw = (args.get("name") or [b""])[0]
        name = raw.decode() if isinstance(raw, bytes) else str(raw)
        raw_trial = (args.get("trial") or [b""])[0]
        text = raw_trial.decode() if isinstance(raw_trial, bytes) else str(raw_trial)
        trial = int(text) if text.strip().lstrip("-").isdigit() else None
        interval = self.interval
        if interval is None:
            import dask

            interval = int(dask.config.get("daskhpo.dashboard.interval", 1000))
        _Page(doc, self.catalog, name or None, interval, trial)

    def start(self, timeout: float = 30.0) -> DashboardServer:
        """Start serving; returns once the port is open (raises if it could not be opened)."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            from bokeh.application import Application
            from bokeh.application.handlers.function import FunctionHandler
            from bokeh.server.server import Server
            from tornado.ioloop import IOLoop

            asyncio.set_event_loop(asyncio.new_event_loop())
            try:
                loop = IOLoop.current()
                server = Server(
                    {APP_PATH: Application(FunctionHandler(self._make_doc))},
                    io_loop=loop,
                    address=self.host,
                    port=self.port,
                    # Pages are read-only views; the Dask dashboard makes the same choice.
                    allow_websocket_origin=["*"],
                )
                server.start()
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                return
            self._server, self._loop, self.port = server, loop, int(server.port or 0)
            ready.set()
            loop.start()

        self._thread = threading.Thread(target=run, name="daskhpo-dashboard", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise TimeoutError(f"the daskhpo dashboard did not start within {timeout:g} s")
        if failure:
            raise failure[0]
        return self

    def prefetch(self, name: str | None = None) -> bool:
        """Start reading the search ``name`` (default: the newest) in the background, and then
        fitting its importance, so that the first page opened does not wait for a large store to
        be read. Returns whether there was such a search."""
        names = self.catalog.names()
        name = name or (names[-1] if names else None)
        reader = self.catalog.reader(name) if name else None
        if reader is None:
            return False
        submit(_prefetch, reader.feed())
        return True

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def url(self, name: str | None = None) -> str:
        host = self.host
        if host in ("0.0.0.0", "", "::"):
            host = socket.gethostname()
        base = f"http://{host}:{self.port}{APP_PATH}"
        return base if name is None else f"{base}?name={quote(name, safe='')}"

    def stop(self) -> None:
        if self._loop is None:
            return
        server, loop = self._server, self._loop

        def shutdown() -> None:
            server.stop()
            loop.stop()

        loop.add_callback(shutdown)
        if self._thread is not None:
            self._thread.join(10)
        self._loop = None


def serve_file(
    path: str | Path, host: str = "127.0.0.1", port: int = 5006, interval: int | None = None
) -> DashboardServer:
    """Serve the searches of the SQLite store ``path`` (the ``daskhpo dashboard`` command)."""
    return DashboardServer(FileCatalog(path), host=host, port=port, interval=interval).start()


# -- the driver's server, started by fit ----------------------------------------------------------
_live_lock = threading.Lock()
_live: dict[str, Any] = {}
_announced_on: set[str] = set()


def _driver_host(client: Any) -> str:
    """Where the driver's page listens: loopback for a local scheduler, else the interface that
    reaches the scheduler (so whoever can open the Dask dashboard can usually open this page too)."""
    from distributed.comm import get_address_host

    try:
        host = get_address_host(client.scheduler.address)
    except Exception:
        return "127.0.0.1"
    if host in ("127.0.0.1", "localhost", "::1", "") or not host[0].isalnum():
        return "127.0.0.1"
    try:
        from distributed.utils import get_ip

        return str(get_ip(host))
    except Exception:
        return "127.0.0.1"


def live_server(client: Any = None) -> DashboardServer:
    """This process's dashboard server (started on first use).

    Its address comes from the dask config ``daskhpo.dashboard.address`` (``"HOST:PORT"``) if set,
    else it listens on a free port of the interface that reaches the scheduler.
    """
    import dask

    with _live_lock:
        server = _live.get("server")
        if server is not None and server.running:
            return server
        address = dask.config.get("daskhpo.dashboard.address", None)
        if address:
            host, _, port = str(address).rpartition(":")
            host, port_number = host or "127.0.0.1", int(port or 0)
        else:
            host = _driver_host(client) if client is not None else "127.0.0.1"
            port_number = 0
        catalog = _live.get("catalog") or LiveCatalog()
        server = DashboardServer(catalog, host=host, port=port_number).start()
        _live.update(server=server, catalog=catalog)
        return server


class Watch:
    """A search being shown: its live ``url`` and its page on the Dask dashboard (``dask_url``)."""

    def __init__(
        self, name: str, url: str, dask_url: str | None, client: Any, catalog: LiveCatalog
    ):
        self.name, self.url, self.dask_url = name, url, dask_url
        self._client, self._catalog = client, catalog

    def finish(self, status: str) -> None:
        """Record how the search ended (shown on both pages)."""
        self._catalog.set_status(self.name, status)
        if self.dask_url is not None:
            try:
                from .scheduler import META_KEY

                self._client.set_metadata([META_KEY, self.name, "status"], status)
            except Exception as exc:
                logger.debug("daskhpo: could not update the Dask dashboard page: %s", exc)


def _announce(client: Any, name: str, url: str, store: Any, search: str) -> str | None:
    """Put the search on the scheduler's ``/daskhpo`` page; returns that page's URL or None."""
    from ..cluster import dashboard_link
    from .scheduler import META_KEY, SearchLinks, search_path

    address = client.scheduler.address
    if address not in _announced_on:
        import cloudpickle

        from . import scheduler as module

        # Sent by value: the scheduler need not have daskhpo installed, and does not import it
        # (importing daskhpo there took 4 s of a busy scheduler's time on the test machine).
        cloudpickle.register_pickle_by_value(module)
        try:
            client.register_plugin(SearchLinks())
        finally:
            cloudpickle.unregister_pickle_by_value(module)
        _announced_on.add(address)
    storage = f"sqlite:///{store.path}" if isinstance(store, SQLiteStore) else "memory"
    client.set_metadata(
        [META_KEY, name],
        {
            "url": url,
            "status": "running",
            "started": time.time(),
            "search": search,
            "storage": storage,
            "driver": f"{socket.gethostname()} (pid {os.getpid()})",
        },
    )
    link = dashboard_link(client)
    if not link:
        return None
    return link.rsplit("/", 1)[0] + "/" + search_path(name)


def watch(
    store: Any, name: str, client: Any = None, *, verbose: int = 0, search: str = ""
) -> Watch | None:
    """Show the search ``name`` (whose results go to ``store``) on this process's live dashboard.

    Announces it on the Dask dashboard of ``client``'s scheduler under ``/daskhpo`` and, when
    ``verbose > 0``, prints both URLs. The dask config ``daskhpo.dashboard.enabled`` decides: unset,
    only searches with ``verbose > 0`` are shown (a quiet search starts no server and sends nothing
    to the scheduler); true, every search; false, none. Never raises: a dashboard that cannot start
    is a warning, not a failed search.
    """
    import dask

    enabled = dask.config.get("daskhpo.dashboard.enabled", None)
    if enabled is False or (enabled is None and verbose <= 0):
        return None
    try:
        server = live_server(client)
        catalog: LiveCatalog = _live["catalog"]
        catalog.add(name, store)
        url = server.url(name)
    except Exception as exc:
        warnings.warn(
            f"daskhpo: the live search dashboard did not start ({exc}); the search goes on. Set "
            "dask config 'daskhpo.dashboard.address' to a free HOST:PORT, or "
            "'daskhpo.dashboard.enabled' to False.",
            RuntimeWarning,
            stacklevel=3,
        )
        return None
    dask_url = None
    if client is not None:
        try:
            dask_url = _announce(client, name, url, store, search)
        except Exception as exc:
            logger.info("daskhpo: search not announced on the Dask dashboard: %s", exc)
    if verbose > 0:
        also = f" (linked from the Dask dashboard at {dask_url})" if dask_url else ""
        print(f"Search dashboard: {url}{also}", file=sys.stderr)
    return Watch(name, url, dask_url, client, catalog)
