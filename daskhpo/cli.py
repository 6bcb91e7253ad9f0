"""The ``daskhpo`` command line."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

__all__ = ["main", "demo_search"]

DEMO_GRID: dict[str, list[Any]] = {
    "criterion": ["gini", "entropy"],
    "max_depth": [None, 2, 4, 6, 8, 10, 12],
    "min_samples_split": [2, 3, 4, 5, 6, 7, 8],
    "max_features": [None, "sqrt", "log2"],
    "min_samples_leaf": [1, 2, 3, 4],
}


def demo_search(client: Any = None, cv: int = 3, verbose: int = 1) -> Any:
    """The grid of the Dask "parallel grid search" tutorial: 1,176 decision trees on digits."""
    from sklearn.tree import DecisionTreeClassifier

    from .search import GridSearchCV

    return GridSearchCV(
        DecisionTreeClassifier(random_state=0),
        DEMO_GRID,
        cv=cv,
        scoring="accuracy",
        verbose=verbose,
        client=client,
    )


def results_table(search: Any, top: int = 10) -> Any:
    """The ``top`` best candidates of a fitted search as a pandas DataFrame."""
    import pandas as pd

    frame = pd.DataFrame(search.cv_results_)
    rank = (
        "rank_test_score"
        if "rank_test_score" in frame
        else sorted(c for c in frame if c.startswith("rank_"))[0]
    )
    cols = [rank, *[c for c in frame if c.startswith("mean_test_") or c.startswith("std_test_")]]
    cols += [c for c in frame if c.startswith("param_")] + ["mean_fit_time"]
    return frame.sort_values(rank)[cols].head(top).reset_index(drop=True)


def _cmd_demo(args: argparse.Namespace) -> int:
    import pandas as pd
    from sklearn.datasets import load_digits

    from .cluster import get_client

    X, y = load_digits(return_X_y=True)
    start = time.perf_counter()
    client = get_client(args.client, verbose=1)
    print(f"cluster ready in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    search = demo_search(client=client, cv=args.cv, verbose=1)
    n = 1
    for values in DEMO_GRID.values():
        n *= len(values)
    print(
        f"daskhpo demo: DecisionTreeClassifier on digits ({X.shape[0]} samples), {n} candidates x "
        f"{args.cv} folds = {n * args.cv} fits",
        file=sys.stderr,
    )
    start = time.perf_counter()
    search.fit(X, y)
    wall = time.perf_counter() - start
    print(
        f"\nsearch took {wall:.1f} s ({search.stats_['tasks']} tasks on {search.stats_['worker_threads']} "
        f"worker threads); refit {search.refit_time_:.3f} s"
    )
    print(f"best score (mean CV accuracy): {search.best_score_:.4f}")
    print(f"best params: {search.best_params_}")
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print("\ntop 10 candidates:")
        print(results_table(search, 10).to_string())
    return 0


def _open_existing(storage: str, name: str | None = None) -> Any:
    from pathlib import Path

    from .store import SQLiteStore

    if not storage.startswith("sqlite:///"):
        raise SystemExit(f"daskhpo: --storage {storage!r}: give a store such as sqlite:///runs.db")
    path = Path(storage[len("sqlite:///") :])
    if not path.exists():
        raise SystemExit(f"daskhpo: no store at {path}: check the --storage path")
    store = SQLiteStore(path, name or "", create=False)
    if name is not None and name not in {s["name"] for s in store.searches()}:
        known = ", ".join(s["name"] for s in store.searches()) or "none"
        raise SystemExit(f"daskhpo: no search named {name!r} in {path} (searches there: {known})")
    return store


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


def _cmd_run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .exceptions import DaskHPOError
    from .spec import build_search, load_data, load_spec, spec_to_json
    from .store import SQLiteStore

    name = args.name or Path(args.spec).stem
    try:
        spec = load_spec(args.spec)
        if args.trial_timeout is not None:  # kept in the stored spec, so that resume uses it too
            spec = load_spec({**spec, "trial_timeout": args.trial_timeout})
        name = args.name or spec.get("name") or name
        search = build_search(spec, client=args.cluster, storage=args.storage, verbose=1, name=name)
        if args.storage and args.storage.startswith("sqlite:///"):
            SQLiteStore(args.storage[len("sqlite:///") :], name).start(
                {"document": json.loads(spec_to_json(spec))}, None
            )
        X, y = load_data(spec)
        search.fit(X, y, resume=args.resume)
    except DaskHPOError as exc:
        print(f"daskhpo run: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if args.storage:
            print(
                f"daskhpo run: continue with: daskhpo run {args.spec} --storage {args.storage} "
                f"--name {name} --resume",
                file=sys.stderr,
            )
        return 130
    print(f"search {name!r}: best score {search.best_score_:.6g} with {search.best_params_}")
    if args.storage:
        print(f"results: daskhpo results {name} --storage {args.storage}")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    import datetime as dt

    store = _open_existing(args.storage, args.name)
    if args.name is None:
        for s in store.searches():
            when = dt.datetime.fromtimestamp(s["updated"]).isoformat(timespec="seconds")
            print(f"{s['name']}\t{s['status']}\t{s['n_trials']} trials\tupdated {when}")
        return 0
    info = store.info()
    print(f"search: {info['name']}\nstatus: {info['status']}\ntrials: {info['n_trials']}")
    for key, value in info["spec"].items():
        print(f"{key}: {value}")
    frame = trials_frame(store.records())
    score_cols = [c for c in frame if c.startswith("mean_test_")]
    if score_cols and frame[score_cols[0]].notna().any():
        best = frame.loc[frame[score_cols[0]].idxmax()]
        print(f"best so far: {best[score_cols[0]]:.6g} (trial {best['trial_id']})")
    return 0


def _cmd_results(args: argparse.Namespace) -> int:
    store = _open_existing(args.storage, args.name)
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="daskhpo",
        description="Hyperparameter search for scikit-learn estimators on Dask clusters.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = sub.add_parser(
        "demo",
        help="run the digits decision-tree grid (1,176 candidates) on a Dask cluster",
        description=(
            "Run the grid of the Dask 'parallel grid search' tutorial: DecisionTreeClassifier on the "
            "digits data, criterion x max_depth x min_samples_split x max_features x min_samples_leaf "
            "(1,176 candidates), with a progress bar, the dashboard link, the best score and params "
            "and the ten best candidates. Uses an embedded LocalCluster unless --client is given."
        ),
    )
    demo.add_argument(
        "--client",
        metavar="ADDRESS",
        default=None,
        help="scheduler address such as tcp://127.0.0.1:8786 (default: embedded LocalCluster)",
    )
    demo.add_argument(
        "--cv", type=int, default=3, help="number of cross-validation folds (default 3)"
    )
    demo.set_defaults(func=_cmd_demo)

    run = sub.add_parser(
        "run",
        help="run a search described in a YAML or JSON spec (for detached runs)",
        description="Run the search a spec file describes (estimator, search space, data loader, "
        "scoring, cv) on a cluster, logging every trial to --storage so that it can be watched with "
        "'daskhpo status' and continued with --resume after a crash. A spec names Python import "
        "paths: only run specs you trust.",
    )
    run.add_argument("spec", help="the spec file (.yaml, .yml or .json)")
    run.add_argument(
        "--cluster",
        default=None,
        help="scheduler address such as tcp://host:8786 (default: embedded)",
    )
    run.add_argument("--storage", default=None, help="trial store such as sqlite:///runs.db")
    run.add_argument(
        "--name", default=None, help="search name (default: the spec's name or file stem)"
    )
    run.add_argument(
        "--resume", action="store_true", help="continue the stored search of that name"
    )
    from .load import positive_seconds

    run.add_argument(
        "--trial-timeout",
        type=positive_seconds,
        default=None,
        metavar="SECONDS",
        help="stop and record as failed any fit running longer (overrides the spec's)",
    )
    run.set_defaults(func=_cmd_run)

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
    status.set_defaults(func=_cmd_status)

    results = sub.add_parser(
        "results",
        help="print the trials of a stored search as a table, CSV or JSON (no cluster needed)",
        description="One row per finished trial of the search NAME: status, mean test score per "
        "metric, mean fit time and the parameters.",
    )
    results.add_argument("name", help="a search in the store")
    results.add_argument("--storage", required=True, help="the store, such as sqlite:///runs.db")
    results.add_argument("--format", choices=["table", "csv", "json"], default="table")
    results.set_defaults(func=_cmd_results)

    from .load import add_resume_command

    add_resume_command(sub)  # daskhpo resume NAME: its options and logic live in daskhpo/load.py

    from .kube import add_k8s_spec_command

    add_k8s_spec_command(sub)  # daskhpo k8s-spec: its options and logic live in daskhpo/kube.py

    from .dashboard.cli import add_dashboard_commands

    add_dashboard_commands(sub)  # daskhpo dashboard, daskhpo report: see daskhpo/dashboard/cli.py
    return parser


def _version() -> str:
    from . import __version__

    return __version__


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 0
    if args.command == "demo" and args.cv < 2:
        parser.error(f"--cv {args.cv}: cross-validation needs at least 2 folds")
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
