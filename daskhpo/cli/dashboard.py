"""``daskhpo dashboard`` and ``daskhpo report``: the live search page, and its standalone HTML copy."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from .common import open_existing, sqlite_path

__all__ = ["add_dashboard_commands", "cmd_dashboard", "cmd_report"]


def cmd_dashboard(args: argparse.Namespace) -> int:
    """Serve the live page of the store ``args.storage`` until Ctrl-C; 2 when it cannot listen."""
    from ..dashboard.server import serve_file

    store = open_existing(args.storage, args.name)  # exits with a message if there is nothing
    names = [s["name"] for s in store.searches()]
    store.close()
    try:
        server = serve_file(
            sqlite_path(args.storage), host=args.host, port=args.port, interval=args.interval
        )
    except OSError as exc:
        print(
            f"daskhpo dashboard: cannot listen on {args.host}:{args.port} ({exc}): pass another "
            "--port (0 picks a free one) or --host.",
            file=sys.stderr,
        )
        return 2
    server.prefetch(args.name)  # a large store is read while the user opens the page
    url = server.url(args.name)
    print(
        f"daskhpo dashboard: {len(names)} search(es) in {sqlite_path(args.storage)} at {url}",
        flush=True,
    )
    print("(Ctrl-C to stop)", file=sys.stderr, flush=True)
    try:
        while server.running:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Write the stored search ``args.name`` to the HTML file ``args.html``; return 0."""
    from ..dashboard.report import save_report

    store = open_existing(args.storage, args.name)
    out = save_report(store, args.html, name=args.name, cdn=args.cdn)
    print(f"wrote {out}: {len(store)} evaluations of search {args.name!r}")
    return 0


def add_dashboard_commands(sub: Any) -> None:
    """Add ``dashboard`` and ``report`` to the ``daskhpo`` command's subparsers."""
    dash = sub.add_parser(
        "dashboard",
        help="serve the live search dashboard for the searches in a SQLite store",
        description="Serve a bokeh page that shows a stored search as it runs (or after): best score "
        "so far, score against each parameter, parameter importance, parallel coordinates, rungs of "
        "adaptive searches, a paged table of the trials and a per-trial view (add &trial=ID to the "
        "page's address). Searches of 100,000 trials are drawn from samples and aggregates. It "
        "reads only the store, so it works for searches started by any process (daskhpo run, a "
        "notebook, a batch job). The page follows the search NAME, or the newest one, and links the "
        "others.",
    )
    dash.add_argument("--storage", required=True, help="the store, such as sqlite:///runs.db")
    dash.add_argument("--name", default=None, help="the search to open (default: the newest)")
    dash.add_argument(
        "--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)"
    )
    dash.add_argument(
        "--port", type=int, default=5006, help="port (default 5006; 0 picks a free one)"
    )
    dash.add_argument(
        "--interval",
        type=int,
        default=1000,
        help="milliseconds between two looks at the store (default 1000)",
    )
    dash.set_defaults(func=cmd_dashboard)

    report = sub.add_parser(
        "report",
        help="write a stored search's plots and best trials to a standalone HTML file",
        description="Write the figures of the search NAME (best score so far, score against each "
        "parameter, rungs of adaptive searches, table of the best trials) to an HTML file that opens "
        "in any browser without a server.",
    )
    report.add_argument("name", help="a search in the store")
    report.add_argument("--storage", required=True, help="the store, such as sqlite:///runs.db")
    report.add_argument("--html", required=True, help="the file to write, such as report.html")
    report.add_argument(
        "--cdn",
        action="store_true",
        help="load bokeh's JavaScript from its CDN (a small file that needs the internet) instead of "
        "embedding it",
    )
    report.set_defaults(func=cmd_report)
