"""The digits grid on a LocalCluster the user made, against scikit-learn ``GridSearchCV(n_jobs=-1)``.

Run ``python benchmarks/user_cluster.py [--repeat 3] [--json FILE]``. In one process: the seed's
digits grid (1,176 decision trees x 3 folds = 3,528 fits, ``daskhpo.cli.DEMO_GRID``) with

- scikit-learn ``GridSearchCV(n_jobs=-1)`` (loky, 2 processes here);
- daskhpo on a plain ``distributed.LocalCluster(n_workers=2, threads_per_worker=1)`` made as a user
  makes one (its nanny sets ``MALLOC_TRIM_THRESHOLD_`` in the workers), with daskhpo's worker plugin
  (``daskhpo.cluster.tuning``, the default);
- the same with the plugin turned off (``daskhpo.tune-workers: false``), on a fresh cluster;
- daskhpo on its embedded cluster (``daskhpo.cluster.make_local_cluster(2)``), which the plugin's
  cluster should match;
- the floor: the same 3,528 fits as a bare ``clone``/``fit``/``score`` loop, half on each worker of the
  plugin's cluster, with the folds already cut there (no search, no scheduling, no results to
  gather). No search on these two workers can be faster.

Each is run ``--repeat`` times, taking turns; every daskhpo run is on a fresh cluster warmed up by
one untimed search and closed before the next run. The table shows the median and the ratio of
scikit-learn's median to each (above 1: faster than scikit-learn). Target: >= 1.3x with the plugin.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def bare_fits(X: Any, y: Any, folds: Any, estimator: Any, units: Any) -> list[float]:
    """Fit and score ``(params, fold)`` units in a plain loop; returns the test scores."""
    from sklearn.base import clone

    pieces = [(X[train], X[test], y[train], y[test]) for train, test in folds]
    scores = []
    for params, fold in units:
        X_train, X_test, y_train, y_test = pieces[fold]
        fitted = clone(estimator).set_params(**params).fit(X_train, y_train)
        scores.append(fitted.score(X_test, y_test))
    return scores


def floor_seconds(client: Any, X: Any, y: Any, estimator: Any, grid: Any, cv: int) -> float:
    """Seconds of the bare loop over every (candidate, fold), split evenly over the workers."""
    from distributed import wait
    from sklearn.base import is_classifier
    from sklearn.model_selection import ParameterGrid, check_cv

    from daskhpo.cluster import workers_info

    # The folds a search with this cv cuts (scikit-learn's rule: stratified for a classifier).
    folds = list(check_cv(cv, y, classifier=is_classifier(estimator)).split(X, y))
    units = [(params, fold) for params in ParameterGrid(grid) for fold in range(len(folds))]
    workers = sorted(workers_info(client))
    data = client.scatter([X, y, folds, estimator], broadcast=True)
    wait(data)
    parts = [units[i :: len(workers)] for i in range(len(workers))]
    t = time.perf_counter()
    futures = [
        client.submit(bare_fits, *data, part, workers=[w], pure=False)
        for w, part in zip(workers, parts, strict=True)
    ]
    scores = client.gather(futures)
    elapsed = time.perf_counter() - t
    assert sum(map(len, scores)) == len(units)
    return elapsed


def measure(repeat: int) -> dict[str, list[float]]:
    """Seconds of each run, by label (scikit-learn first)."""
    import dask
    from distributed import Client, LocalCluster
    from sklearn.datasets import load_digits
    from sklearn.model_selection import GridSearchCV as SkGrid
    from sklearn.tree import DecisionTreeClassifier

    from daskhpo import GridSearchCV
    from daskhpo.cli import DEMO_GRID
    from daskhpo.cluster import make_local_cluster

    X, y = load_digits(return_X_y=True)
    tree = DecisionTreeClassifier(random_state=0)

    def sklearn() -> None:
        SkGrid(tree, DEMO_GRID, cv=3, n_jobs=-1).fit(X, y)

    labels = {
        "daskhpo, user LocalCluster, plugin": True,
        "daskhpo, user LocalCluster, no plugin": False,
        "daskhpo, embedded cluster": None,
    }
    sk_label = "scikit-learn GridSearchCV(n_jobs=-1)"
    floor_label = "floor: bare fit loop, same 2 workers"
    results: dict[str, list[float]] = {
        sk_label: [],
        **{label: [] for label in labels},
        floor_label: [],
    }
    sklearn()  # warm-up: imports, loky's workers
    # The runs take turns, so a machine that gets busier or quieter weighs on every column alike;
    # each daskhpo run gets a fresh cluster (warmed up by one untimed search) that is closed
    # before the next run, so no idle cluster shares the cores with scikit-learn.
    for _ in range(repeat):
        t = time.perf_counter()
        sklearn()
        results[sk_label].append(time.perf_counter() - t)
        for label, tune in labels.items():
            if tune is None:
                cluster = make_local_cluster(2, dashboard_address="127.0.0.1:0")
            else:
                cluster = LocalCluster(
                    n_workers=2, threads_per_worker=1, dashboard_address="127.0.0.1:0"
                )
            with (
                dask.config.set({"daskhpo.tune-workers": bool(tune)}),
                cluster,
                Client(cluster) as client,
            ):
                GridSearchCV(tree, DEMO_GRID, cv=3, client=client).fit(X, y)  # warm-up
                t = time.perf_counter()
                GridSearchCV(tree, DEMO_GRID, cv=3, client=client).fit(X, y)
                results[label].append(time.perf_counter() - t)
                if tune:
                    results[floor_label].append(floor_seconds(client, X, y, tree, DEMO_GRID, 3))
                states = client.run(
                    lambda dask_worker: getattr(dask_worker, "daskhpo_allocator", None)
                )
                shown = sorted(map(str, states.values()))
                print(f"{label}: worker plugin state {shown}", file=sys.stderr)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    results = measure(args.repeat)
    base = statistics.median(results["scikit-learn GridSearchCV(n_jobs=-1)"])
    print(f"{'run':42} {'median s':>9} {'runs':>24} {'sklearn/this':>13}")
    rows = []
    for label, times in results.items():
        med = statistics.median(times)
        runs = ", ".join(f"{t:.2f}" for t in times)
        print(f"{label:42} {med:9.2f} {runs:>24} {base / med:13.2f}")
        rows.append({"run": label, "median_s": med, "runs": times, "sklearn_over_this": base / med})
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
