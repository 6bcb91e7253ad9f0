"""The digits grid on a LocalCluster the user made, against scikit-learn ``GridSearchCV(n_jobs=-1)``.

Run ``python benchmarks/user_cluster.py [--repeat 3] [--json FILE]``. In one process: the seed's
digits grid (1,176 decision trees x 3 folds = 3,528 fits, ``daskhpo.cli.DEMO_GRID``) with

- scikit-learn ``GridSearchCV(n_jobs=-1)`` (loky, 2 processes here);
- daskhpo on a plain ``distributed.LocalCluster(n_workers=2, threads_per_worker=1)`` made as a user
  makes one (its nanny sets ``MALLOC_TRIM_THRESHOLD_`` in the workers), with daskhpo's worker plugin
  (``daskhpo.cluster.tuning``, the default);
- the same with the plugin turned off (``daskhpo.tune-workers: false``), on a fresh cluster.

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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def measure(repeat: int) -> dict[str, list[float]]:
    """Seconds of each run, by label (scikit-learn first)."""
    import dask
    from distributed import Client, LocalCluster
    from sklearn.datasets import load_digits
    from sklearn.model_selection import GridSearchCV as SkGrid
    from sklearn.tree import DecisionTreeClassifier

    from daskhpo import GridSearchCV
    from daskhpo.cli import DEMO_GRID

    X, y = load_digits(return_X_y=True)
    tree = DecisionTreeClassifier(random_state=0)

    def sklearn() -> None:
        SkGrid(tree, DEMO_GRID, cv=3, n_jobs=-1).fit(X, y)

    labels = {
        "daskhpo, user LocalCluster, plugin": True,
        "daskhpo, user LocalCluster, no plugin": False,
    }
    sk_label = "scikit-learn GridSearchCV(n_jobs=-1)"
    results: dict[str, list[float]] = {sk_label: [], **{label: [] for label in labels}}
    sklearn()  # warm-up: imports, loky's workers
    # The runs take turns, so a machine that gets busier or quieter weighs on every column alike;
    # each daskhpo run gets a fresh cluster (warmed up by one untimed search) that is closed
    # before the next run, so no idle cluster shares the cores with scikit-learn.
    for _ in range(repeat):
        t = time.perf_counter()
        sklearn()
        results[sk_label].append(time.perf_counter() - t)
        for label, tune in labels.items():
            with (
                dask.config.set({"daskhpo.tune-workers": tune}),
                LocalCluster(
                    n_workers=2, threads_per_worker=1, dashboard_address="127.0.0.1:0"
                ) as cluster,
                Client(cluster) as client,
            ):
                GridSearchCV(tree, DEMO_GRID, cv=3, client=client).fit(X, y)  # warm-up
                t = time.perf_counter()
                GridSearchCV(tree, DEMO_GRID, cv=3, client=client).fit(X, y)
                results[label].append(time.perf_counter() - t)
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
