"""``daskhpo demo``: the grid of the Dask "parallel grid search" tutorial on the digits data."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from .common import add_cluster_option

__all__ = ["DEMO_GRID", "demo_search", "results_table", "cmd_demo", "add_demo_command"]

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

    from ..search import GridSearchCV

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


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the demo grid on ``args.cluster`` and print the best candidates; return 0."""
    import pandas as pd
    from sklearn.datasets import load_digits

    from ..cluster import get_client

    X, y = load_digits(return_X_y=True)
    start = time.perf_counter()
    client = get_client(args.cluster, verbose=1)
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


def add_demo_command(sub: Any) -> None:
    """Register ``daskhpo demo`` on the CLI's subparsers."""
    demo = sub.add_parser(
        "demo",
        help="run the digits decision-tree grid (1,176 candidates) on a Dask cluster",
        description=(
            "Run the grid of the Dask 'parallel grid search' tutorial: DecisionTreeClassifier on the "
            "digits data, criterion x max_depth x min_samples_split x max_features x min_samples_leaf "
            "(1,176 candidates), with a progress bar, the dashboard link, the best score and params "
            "and the ten best candidates. Uses an embedded LocalCluster unless --cluster is given."
        ),
    )
    add_cluster_option(demo)
    demo.add_argument(
        "--cv", type=int, default=3, help="number of cross-validation folds (default 3)"
    )
    demo.set_defaults(func=cmd_demo)
