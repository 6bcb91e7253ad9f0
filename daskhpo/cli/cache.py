"""``daskhpo cache stats`` and ``daskhpo cache prune``: the unit cache of a SQLite store.

Every (candidate, fold) fit a search makes is kept in its store under a key of its content (see
:mod:`daskhpo.reuse`), and later searches take it from there. These commands show what the cache
holds (by the package versions its fits were made with: rows made with other versions than the ones
installed here can never match again) and delete what is stale or unused.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from typing import Any

from ..reuse import stale
from .common import open_existing

__all__ = ["add_cache_command", "cmd_cache_stats", "cmd_cache_prune", "installed_versions"]


def installed_versions(rows: list[dict[str, Any]]) -> dict[str, str]:
    """The versions installed here of every package the rows name (``unknown`` if not installed)."""
    from ..reuse import package_version

    # "code:" entries hash the user's own classes: not a package to look up.
    names = sorted({p for r in rows for p in r["versions"] if not p.startswith("code:")})
    return {p: package_version(p) for p in names}


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def cmd_cache_stats(args: argparse.Namespace) -> int:
    store = open_existing(args.storage)
    groups = store.units_summary()
    here = installed_versions(groups)
    total = sum(g["units"] for g in groups)
    hits = sum(g["hits"] for g in groups)
    size = sum(g["bytes"] for g in groups)
    n_stale = sum(g["units"] for g in groups if stale(g["versions"], here))
    print(f"store: {args.storage}")
    print(f"units: {total} ({n_stale} stale: made with other package versions than installed here)")
    print(f"hits: {hits} (fits taken from the cache instead of computed)")
    print(f"size: {_size(size)}")
    for g in groups:
        versions = ", ".join(f"{k} {v}" for k, v in sorted(g["versions"].items()))
        mark = "stale" if stale(g["versions"], here) else "current"
        when = dt.datetime.fromtimestamp(g["newest"]).isoformat(timespec="seconds")
        print(
            f"  {g['units']:>8} {g['status']:<6} {mark:<7} hits {g['hits']:<6} "
            f"{_size(g['bytes']):>9}  newest {when}  [{versions}]"
        )
    return 0


def cmd_cache_prune(args: argparse.Namespace) -> int:
    if not (args.stale or args.unused_days is not None or args.all):
        raise SystemExit(
            "daskhpo cache prune: say what to delete: --stale (rows of other package versions), "
            "--unused-days N (rows not used for N days) or --all"
        )
    store = open_existing(args.storage)
    if args.all:
        n = store.units_prune()
    else:
        keep = installed_versions(store.units_summary()) if args.stale else None
        older = time.time() - args.unused_days * 86400 if args.unused_days is not None else None
        n = store.units_prune(keep_versions=keep, older_than=older)
    print(f"deleted {n} cached fits from {args.storage}")
    return 0


def add_cache_command(sub: Any) -> None:
    """Register ``daskhpo cache stats|prune`` on the CLI's subparsers."""
    cache = sub.add_parser(
        "cache",
        help="show or prune the cache of fits a store shares between searches (no cluster needed)",
        description="Every (candidate, fold) fit is kept in the store by its content and reused by "
        "later searches; 'stats' shows what is there, 'prune' deletes stale or unused rows.",
    )
    verbs = cache.add_subparsers(dest="verb", metavar="VERB", required=True)
    stats = verbs.add_parser("stats", help="units, hits, size, by package versions")
    stats.add_argument("--storage", required=True, help="the store, such as sqlite:///runs.db")
    stats.set_defaults(func=cmd_cache_stats)
    prune = verbs.add_parser("prune", help="delete stale, unused or all cached fits")
    prune.add_argument("--storage", required=True, help="the store, such as sqlite:///runs.db")
    prune.add_argument(
        "--stale", action="store_true", help="rows made with other package versions than here"
    )
    prune.add_argument(
        "--unused-days", type=float, default=None, metavar="N", help="rows not used for N days"
    )
    prune.add_argument("--all", action="store_true", help="every row (searches stay)")
    prune.set_defaults(func=cmd_cache_prune)
