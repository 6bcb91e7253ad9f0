"""Measure where time goes around the fits, on this machine.

Run ``python benchmarks/overhead.py``. It prints, in one process:

1. Allocation on a worker: a 1200x64 float array allocated 20,000 times, in this process, on a worker of
   distributed's default ``LocalCluster`` (whose nanny sets ``MALLOC_TRIM_THRESHOLD_=65536``) and on a
   worker of daskhpo's embedded cluster (which leaves it unset).
2. The same scikit-learn work (a PCA + LogisticRegression loop on digits) in the same three places.
3. The demo grid (1,176 decision trees x 3 folds) on the embedded cluster: wall time, tasks submitted,
   and CPU seconds used by this process (client, scheduler and nannies live here) against the workers'.
"""

from __future__ import annotations

import resource
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def allocate(n: int = 20_000) -> float:
    start = time.perf_counter()
    for _ in range(n):
        a = np.empty((1200, 64))
        a[:] = 1.0
    return time.perf_counter() - start


def sklearn_loop() -> float:
    from sklearn.datasets import load_digits
    from sklearn.decomposition import PCA
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from threadpoolctl import threadpool_limits

    X, y = load_digits(return_X_y=True)
    folds = list(StratifiedKFold(3).split(X, y))
    start = time.perf_counter()
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for C in np.logspace(-3, 3, 10):
            for train, _ in folds:
                Xt = PCA(20).fit_transform(X[train])
                LogisticRegression(max_iter=200, C=C).fit(Xt, y[train])
    return time.perf_counter() - start


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def on_workers(cluster_factory) -> tuple[float, float]:
    from distributed import Client

    with cluster_factory() as cluster, Client(cluster) as client:
        client.submit(sklearn_loop, pure=False).result()  # imports and warm-up
        return (
            client.submit(allocate, pure=False).result(),
            client.submit(sklearn_loop, pure=False).result(),
        )


def main() -> int:
    import os

    from distributed import Client, LocalCluster
    from sklearn.datasets import load_digits
    from sklearn.tree import DecisionTreeClassifier

    from daskhpo import GridSearchCV
    from daskhpo.cli import DEMO_GRID
    from daskhpo.cluster import make_local_cluster

    print(
        f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, {time.strftime('%Y-%m-%d')}"
    )

    def plain() -> LocalCluster:
        return LocalCluster(
            n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=":0"
        )

    def embedded() -> LocalCluster:
        return make_local_cluster(n_workers=2, dashboard_address=":0")

    sklearn_loop()
    rows = [("this process", allocate(), sklearn_loop())]
    rows.append(("worker, distributed defaults", *on_workers(plain)))
    rows.append(("worker, daskhpo embedded cluster", *on_workers(embedded)))
    print(f"\n{'where':34} {'allocate 20,000x':>17} {'PCA+LogReg loop':>16}")
    for where, alloc, loop in rows:
        print(f"{where:34} {alloc:16.2f}s {loop:15.2f}s")

    X, y = load_digits(return_X_y=True)
    with embedded() as cluster, Client(cluster) as client:
        GridSearchCV(
            DecisionTreeClassifier(random_state=0), {"max_depth": [2, 3]}, cv=3, client=client
        ).fit(X, y)
        before, workers_before = cpu_seconds(), client.run(cpu_seconds)
        start = time.perf_counter()
        search = GridSearchCV(
            DecisionTreeClassifier(random_state=0), DEMO_GRID, cv=3, client=client
        )
        search.fit(X, y)
        wall = time.perf_counter() - start
        driver = cpu_seconds() - before
        workers_after = client.run(cpu_seconds)
    worker_cpu = sum(workers_after[w] - workers_before[w] for w in workers_before)
    print(
        f"\ndemo grid (3,528 fits) on the embedded cluster: {wall:.2f} s wall, "
        f"{search.stats_['tasks']} tasks, CPU: this process {driver:.2f} s, workers {worker_cpu:.2f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
