"""``daskhpo status`` and ``daskhpo results``: read a SQLite trial store (no cluster needed)."""

from __future__ import annotations

import argparse
from typing import Any

from ..load import StoredSearch
from .common import open_existing

__all__ = [
    "trials_frame",
    "cmd_status",
    "cmd_results",
    "add_status_command",
    "add_results_command",
]


def trials_frame(records: list[dict[str, Any]]) -> Any:
    """One row per stored trial: id, status, mean and std test score per metric, fit time, params."""
    import math

    import pandas as pd

    rows = []
    for r in records:
        row: dict[str, Any] = {"trial_id": r["trial_id"], "status": r["status"]}
        for metric, scores in r["test_scores"].items():
            finite = [v for v in scores if v is not None and not math.isnan(v)]
            mean = sum(finite) / len(finite) if len(finite) == len(scores) and scores else math.nan
            row[f"mean_test_{metric}"] = mean
        row["mean_fit_time"] = sum(r["fit_times"]) / max(1, len(r["fit_times"]))
        for key, value in r["params"].items():
            row[f"param_{key}"] = value.get("__repr__") if isinstance(value, dict) else value
        rows.append(row)
    frame = pd.DataFrame(rows)
    if not frame.empty:
        frame = frame.drop_duplicates("trial_id", keep="last").sort_values("trial_id")
    return frame.reset_index(drop=True)


def cmd_status(args: argparse.Namespace) -> int:
    import datetime as dt

    store = open_existing(args.storage, args.name)
    if args.name is None:
        for s in store.searches():
            when = dt.datetime.fromtimestamp(s["updated"]).isoformat(timespec="seconds")
            print(f"{s['name']}\t{s['status']}\t{s['n_trials']} trials\tupdated {when}")
        return 0
    info = store.info()
    status = info["status"]
    if status == "running" and "running_in" in info:
        where = info["running_in"]
        status = f"running (process {where['pid']} on {where['host']})"
    elif status == "running":
        # No process holds the search's claim: it ended (killed, crashed, lost its store) before
        # it could record how. What it stored is there to resume.
        when = dt.datetime.fromtimestamp(info["updated"]).isoformat(timespec="seconds")
        status = (
            f"stopped (it says running, but no process has run it since {when}: the process "
            "ended without recording it; fit(..., resume=True) or 'daskhpo resume' continues it)"
        )
    print(f"search: {info['name']}\nstatus: {status}\ntrials: {info['n_trials']}")
    for key, value in info["spec"].items():
        print(f"{key}: {value}")
    # The same best as the search's best_score_ and the dashboard's: daskhpo.load's rule.
    found = StoredSearch(info["name"], args.storage, info, store.records())
    if "best_score_" in found.__dict__:
        at = f" at budget {found.best_budget_}" if "best_budget_" in found.__dict__ else ""
        print(f"best so far: {found.best_score_:.6g} (trial {found.best_trial_id_}{at})")
    return 0


def cmd_results(args: argparse.Namespace) -> int:
    store = open_existing(args.storage, args.name)
    frame = trials_frame(store.records())
    if args.format == "csv":
        print(frame.to_csv(index=False), end="")
    elif args.format == "json":
        print(frame.to_json(orient="records", indent=2))
    else:
        import pandas as pd

        with pd.option_context(
            "display.width", 200, "display.max_columns", 50, "display.max_rows", 500
        ):
            print(frame.to_string(index=False))
    return 0


def add_status_command(sub: Any) -> None:
    """Register ``daskhpo status`` on the CLI's subparsers."""
    status = sub.add_parser(
        "status",
        help="list the searches in a store, or show one (no cluster needed)",
        description="Read a SQLite trial store: every search with its status and trial count, or the "
        "settings, status and best score so far of the search NAME.",
    )
    status.add_argument(
        "name", nargs="?", default=None, help="a search in the store (default: list all)"
    )
    status.add_argument("--storage", required=True, help="the store, such as sqlite:///runs.db")
    status.set_defaults(func=cmd_status)


def add_results_command(sub: Any) -> None:
    """Register ``daskhpo results`` on the CLI's subparsers."""
    results = sub.add_parser(
        "results",
        help="print the trials of a stored search as a table, CSV or JSON (no cluster needed)",
        description="One row per finished trial of the search NAME: status, mean test score per "
        "metric, mean fit time and the parameters.",
    )
    results.add_argument("name", help="a search in the store")
    results.add_argument("--storage", required=True, help="the store, such as sqlite:///runs.db")
    results.add_argument("--format", choices=["table", "csv", "json"], default="table")
    results.set_defaults(func=cmd_results)
