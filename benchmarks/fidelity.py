"""Fidelity that continues: budgets that go on from the previous rung, racing over folds, and the
digits grid on a user's own LocalCluster, each against scikit-learn, in one run.

Run ``python benchmarks/fidelity.py [--only continuation,racing,cluster] [--repeat 3] [--json FILE]``.

``continuation``
    Successive halving over an estimator parameter (27 candidates, budget 3 to 81, cv=3, seed 0):
    scikit-learn's ``HalvingRandomSearchCV(n_jobs=-1)`` against daskhpo's
    ``SuccessiveHalvingSearchCV`` fitting every rung from scratch (``continuation=False``) and
    continuing promoted trials (the default), for HistGradientBoosting (``max_iter``, on the issue's
    ``make_classification(20000, 30)``), RandomForest and XGBoost (``n_estimators``). Both daskhpo runs
    use ``best_from="top"``, scikit-learn's rule, so the best candidates can be compared. "fit s" is
    the sum of every (candidate, fold) fit's seconds, from ``cv_results_``.
``racing``
    The seed's digits grid (1,176 decision trees) with cv=3 and cv=5, all folds against
    ``racing=True``: fits run, wall seconds and the best candidate.
``cluster``
    The digits grid on a plain ``LocalCluster(2 workers x 1 thread)`` against scikit-learn
    ``GridSearchCV(n_jobs=-1)``, median of ``--repeat`` runs (``benchmarks/user_cluster.py``).

Every search runs on the embedded cluster after a warm-up fit, so start-up is not timed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def _summed_fit_seconds(cv_results: dict[str, Any], n_splits: int) -> float:
    import numpy as np

    return float(np.nansum(cv_results["mean_fit_time"]) * n_splits)


def continuation(rows: list[dict[str, Any]]) -> None:
    import numpy as np
    from scipy.stats import loguniform, randint
    from sklearn.datasets import make_classification
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.experimental import enable_halving_search_cv  # noqa: F401
    from sklearn.model_selection import HalvingRandomSearchCV

    import daskhpo

    cases: list[tuple[str, Any, dict[str, Any], str, Any]] = []
    X, y = make_classification(20_000, 30, random_state=0)
    cases.append(
        (
            "HistGradientBoosting max_iter",
            HistGradientBoostingClassifier(early_stopping=False, random_state=0),
            {"learning_rate": loguniform(0.01, 0.5), "max_leaf_nodes": randint(8, 64)},
            "max_iter",
            (X, y),
        )
    )
    Xs, ys = make_classification(5_000, 20, random_state=0)
    cases.append(
        (
            "RandomForest n_estimators",
            RandomForestClassifier(random_state=0),
            {"max_features": loguniform(0.05, 1.0), "min_samples_leaf": randint(1, 20)},
            "n_estimators",
            (Xs, ys),
        )
    )
    try:
        import xgboost

        cases.append(
            (
                "XGBoost n_estimators",
                xgboost.XGBClassifier(n_jobs=1, random_state=0, tree_method="hist"),
                {"learning_rate": loguniform(0.01, 0.5), "max_depth": randint(2, 8)},
                "n_estimators",
                (X, y),
            )
        )
    except ImportError:
        print("xgboost is not installed: its case is left out", file=sys.stderr)
    settings = dict(n_candidates=27, cv=3, random_state=0)
    print(
        f"\n{'continuation':34} {'run':22} {'wall s':>7} {'fit s':>7} {'fit/sklearn':>11} "
        f"{'continued':>9} {'best score':>10} {'same best':>9}"
    )
    for label, estimator, space, resource, (Xc, yc) in cases:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t = time.perf_counter()
            sk = HalvingRandomSearchCV(
                estimator,
                space,
                resource=resource,
                min_resources=3,
                max_resources=81,
                factor=3,
                n_jobs=-1,
                **settings,
            ).fit(Xc, yc)
            sk_wall = time.perf_counter() - t
        sk_fit = _summed_fit_seconds(sk.cv_results_, 3)
        runs = [("scikit-learn n_jobs=-1", sk_wall, sk_fit, None, sk.best_score_, True)]
        for name, mode in (("daskhpo from scratch", False), ("daskhpo continuing", "auto")):
            search = daskhpo.SuccessiveHalvingSearchCV(
                estimator,
                space,
                resource=resource,
                min_budget=3,
                max_budget=81,
                continuation=mode,
                best_from="top",
                **settings,
            )
            t = time.perf_counter()
            search.fit(Xc, yc)
            wall = time.perf_counter() - t
            same = search.best_params_ == sk.best_params_ and np.isclose(
                search.best_score_, sk.best_score_
            )
            runs.append(
                (
                    name,
                    wall,
                    _summed_fit_seconds(search.cv_results_, 3),
                    search.stats_.get("units_continued", 0),
                    search.best_score_,
                    bool(same),
                )
            )
        for name, wall, fit, continued, best, same in runs:
            shown = "" if continued is None else str(continued)
            print(
                f"{label:34} {name:22} {wall:7.2f} {fit:7.2f} {fit / sk_fit:11.2f} "
                f"{shown:>9} {best:10.4f} {str(same):>9}"
            )
            rows.append(
                {
                    "part": "continuation",
                    "case": label,
                    "run": name,
                    "wall_s": wall,
                    "fit_s": fit,
                    "fit_over_sklearn": fit / sk_fit,
                    "units_continued": continued,
                    "best_score": float(best),
                    "same_best_as_sklearn": same,
                }
            )


def racing(rows: list[dict[str, Any]]) -> None:
    from sklearn.datasets import load_digits
    from sklearn.tree import DecisionTreeClassifier

    import daskhpo
    from daskhpo.cli import DEMO_GRID

    X, y = load_digits(return_X_y=True)
    tree = DecisionTreeClassifier(random_state=0)
    print(
        f"\n{'racing (digits grid)':22} {'run':10} {'fits':>6} {'fits/all':>8} {'wall s':>7} "
        f"{'speed-up':>8} {'best score':>10} {'same best':>9}"
    )
    for cv in (3, 5):
        measured = {}
        for name, race in (("all folds", False), ("racing", True)):
            t = time.perf_counter()
            search = daskhpo.GridSearchCV(tree, DEMO_GRID, cv=cv, racing=race).fit(X, y)
            measured[name] = (search, time.perf_counter() - t)
        full, full_wall = measured["all folds"]
        for name, (search, wall) in measured.items():
            fits = search.stats_["units_computed"]
            same = search.best_params_ == full.best_params_
            print(
                f"cv={cv:<19} {name:10} {fits:6d} {fits / full.stats_['units_computed']:8.2f} "
                f"{wall:7.2f} {full_wall / wall:8.2f} {search.best_score_:10.4f} {str(same):>9}"
            )
            rows.append(
                {
                    "part": "racing",
                    "cv": cv,
                    "run": name,
                    "fits": fits,
                    "raced_out": search.stats_.get("candidates_raced_out", 0),
                    "wall_s": wall,
                    "best_score": float(search.best_score_),
                    "same_best": same,
                }
            )


def cluster(rows: list[dict[str, Any]], repeat: int) -> None:
    from user_cluster import measure

    results = measure(repeat)
    base = statistics.median(results["scikit-learn GridSearchCV(n_jobs=-1)"])
    print(f"\n{'digits grid, user cluster':42} {'median s':>9} {'sklearn/this':>13}")
    for label, times in results.items():
        med = statistics.median(times)
        print(f"{label:42} {med:9.2f} {base / med:13.2f}")
        rows.append({"part": "cluster", "run": label, "median_s": med, "runs": times})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="continuation,racing,cluster")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    parts = set(args.only.split(","))
    import os
    import platform

    from sklearn.datasets import load_iris
    from sklearn.tree import DecisionTreeClassifier

    import daskhpo

    print(f"daskhpo {daskhpo.__version__}, {platform.python_version()}, {os.cpu_count()} cores")
    X, y = load_iris(return_X_y=True)  # warm-up: the embedded cluster starts here, untimed
    daskhpo.GridSearchCV(DecisionTreeClassifier(), {"max_depth": [1, 2]}, cv=3).fit(X, y)
    rows: list[dict[str, Any]] = []
    if "continuation" in parts:
        continuation(rows)
    if "racing" in parts:
        racing(rows)
    if "cluster" in parts:
        cluster(rows, args.repeat)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2, default=str))


if __name__ == "__main__":
    main()
