"""Hyperband on a dask array several times larger than the workers' memory, on a real LocalCluster.

The workers get a hard ``memory_limit``; the array is built lazily with ``dask.array.random`` and never
exists in full anywhere. The search must finish with the same workers it started with (none killed by
its nanny), none of them paused for memory, and a peak RSS well under the limit.
"""

from __future__ import annotations

import threading

import dask.array as da
import numpy as np
import pytest
from distributed import Client
from scipy.stats import loguniform
from sklearn.linear_model import SGDClassifier

from daskhpo import HyperbandSearchCV
from daskhpo.cluster import make_local_cluster

# A worker that has imported scikit-learn and dask.array already holds about 280 MB (measured here), so
# the limit leaves room for a few blocks, not for the data: the array is 4x one worker's limit and 2x the
# whole cluster's.
MEMORY_LIMIT = 700e6


def _rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def make_data(nbytes: float, n_features: int = 40, block_bytes: float = 25e6, seed: int = 0):
    """A lazily generated classification problem of about ``nbytes`` (X only), in row blocks."""
    rows_per_block = int(block_bytes // (8 * n_features))
    n_blocks = max(2, int(round(nbytes / block_bytes)))
    rs = da.random.RandomState(seed)
    X = rs.normal(size=(rows_per_block * n_blocks, n_features), chunks=(rows_per_block, n_features))
    w = np.linspace(-1, 1, n_features)
    y = (X @ w + 0.5 * X[:, 0] ** 2 > 0.5).astype("int64")
    return X, y


class PeakRSS:
    """Samples every worker's RSS in a background thread while a block runs."""

    def __init__(self, client: Client, every: float = 0.25) -> None:
        self.client = client
        self.every = every
        self.peak: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                for addr, rss in self.client.run(_rss).items():
                    self.peak[addr] = max(self.peak.get(addr, 0), rss)
            except Exception:  # a worker going away shows up in the assertions instead
                pass
            self._stop.wait(self.every)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@pytest.mark.timeout(600)
def test_hyperband_on_data_larger_than_worker_memory():
    cluster = make_local_cluster(
        n_workers=2, memory_limit=MEMORY_LIMIT, dashboard_address="127.0.0.1:0"
    )
    with cluster, Client(cluster, set_as_default=False) as client:
        X, y = make_data(2.8e9)
        assert X.nbytes > 3.9 * MEMORY_LIMIT
        assert X.nbytes > 1.9 * 2 * MEMORY_LIMIT  # about twice what the whole cluster holds
        workers_before = set(client.scheduler_info()["workers"])
        search = HyperbandSearchCV(
            SGDClassifier(tol=None, random_state=0),
            {"alpha": loguniform(1e-6, 1e-1)},
            max_budget=3,
            test_size=0.05,
            random_state=0,
            client=client,
        )
        with PeakRSS(client) as rss:
            search.fit(X, y, classes=[0, 1])

        workers_after = set(client.scheduler_info()["workers"])
        assert workers_after == workers_before, "a worker was restarted during the search"
        logs = client.get_worker_logs()
        text = "\n".join(line for lines in logs.values() for _, line in lines)
        assert "Pausing worker" not in text
        assert "Restarting worker" not in text
        assert not search.stats_["blocks_held"], (
            "the data should have been streamed, not held in memory"
        )
        # Peak RSS stays well under the limit: the array is never gathered on a worker.
        assert rss.peak and max(rss.peak.values()) < 0.8 * MEMORY_LIMIT, rss.peak
        # A real search ran: all three brackets' evaluations, a model that predicts.
        assert len(search.cv_results_["params"]) == search.metadata_["totals"]["told_jobs"]
        assert 0.5 < search.best_score_ <= 1.0
        Xs = X[:1000].compute()
        assert search.best_estimator_.predict(Xs).shape == (1000,)
