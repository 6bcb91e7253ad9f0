"""Two epochs over a dask array several times larger than a worker's memory, on a real LocalCluster.

The workers get a hard ``memory_limit``; the array is generated lazily block by block and never exists
in full anywhere. The search must visit every block (each leaves a file when it is made), finish with
the same workers it started with (none killed by its nanny), none of them paused for memory, and keep
a peak RSS well under the limit.
"""

from __future__ import annotations

import threading

import dask.array as da
import numpy as np
import pytest
from distributed import Client
from scipy.stats import loguniform
from sklearn.linear_model import SGDClassifier

import daskhpo
from daskhpo.cluster import make_local_cluster, workers_info

# A worker that has imported scikit-learn and dask.array already holds about 280 MB (measured here), so
# the limit leaves room for a few blocks, not for the data: the array is 4x one worker's limit and 2x the
# whole cluster's.
MEMORY_LIMIT = 700e6


def _rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


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


def touched_block(block_id=None, *, rows: int, n_features: int, seed: int, marks: str):
    """Block ``block_id`` of a lazily generated array, leaving a file behind as proof it was made."""
    from pathlib import Path

    i = block_id[0]
    Path(marks, str(i)).touch()
    return np.random.default_rng([seed, i]).normal(size=(rows, n_features))


@pytest.mark.timeout(600)
def test_two_epochs_stream_every_block_of_data_larger_than_a_worker(tmp_path):
    """Two passes over an array 3.6x one worker's memory limit, every block computed, none held."""
    n_features, block_bytes = 40, 50e6
    rows = int(block_bytes // (8 * n_features))
    n_blocks = 51
    marks = tmp_path / "blocks"
    marks.mkdir()
    X = da.map_blocks(
        touched_block,
        rows=rows,
        n_features=n_features,
        seed=0,
        marks=str(marks),
        chunks=((rows,) * n_blocks, (n_features,)),
        dtype=float,
    )
    w = np.linspace(-1, 1, n_features)
    y = (X @ w + 0.5 * X[:, 0] ** 2 > 0.5).astype("int64")
    assert X.nbytes >= 3.5 * MEMORY_LIMIT

    cluster = make_local_cluster(
        n_workers=2, memory_limit=MEMORY_LIMIT, dashboard_address="127.0.0.1:0"
    )
    with cluster, Client(cluster, set_as_default=False) as client:
        workers_before = set(workers_info(client))
        n_test = 3
        n_train = n_blocks - n_test
        search = daskhpo.ASHASearchCV(
            SGDClassifier(tol=None, random_state=0),
            {"alpha": loguniform(1e-6, 1e-1)},
            n_candidates=2,
            min_budget=2 * n_train,  # one rung: both trials make two full passes
            max_budget=2 * n_train,
            test_size=n_test / n_blocks,
            random_state=0,
            client=client,
        )
        with PeakRSS(client) as rss:
            search.fit(X, y, classes=[0, 1])

        workers_after = set(workers_info(client))
        assert workers_after == workers_before, "a worker was restarted during the search"
        logs = client.get_worker_logs()
        text = "\n".join(line for lines in logs.values() for _, line in lines)
        assert "Pausing worker" not in text
        assert "Restarting worker" not in text
        assert not search.stats_["blocks_held"], "the data should have been streamed, not held"
        assert search.metadata_["train_blocks_per_fold"] == [n_train]
        assert set(search.metadata_["epochs"].values()) == {2.0}
        assert search.stats_["partial_fit_calls"] == 2 * 2 * n_train
        # Every block was made on the cluster: every training block, and the held-out ones.
        assert sorted(int(f.name) for f in marks.iterdir()) == list(range(n_blocks))
        assert rss.peak and max(rss.peak.values()) < 0.8 * MEMORY_LIMIT, rss.peak
        assert 0.5 < search.best_score_ <= 1.0
        assert search.best_estimator_.predict(X[:1000].compute()).shape == (1000,)
