"""A driver killed with SIGKILL mid-search: resume from the SQLite store finishes the same search."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
from sklearn.datasets import load_iris

from daskhpo import GridSearchCV
from daskhpo.store import SQLiteStore
from tests.helpers import SlowTree

ROOT = Path(__file__).resolve().parents[2]
GRID = {"max_depth": list(range(1, 13)), "delay": [0.15]}

DRIVER = textwrap.dedent(
    """
    import sys
    from sklearn.datasets import load_iris
    from daskhpo import GridSearchCV
    from tests.helpers import SlowTree

    if __name__ == "__main__":
        X, y = load_iris(return_X_y=True)
        grid = {"max_depth": list(range(1, 13)), "delay": [0.15]}
        GridSearchCV(SlowTree(), grid, cv=3, storage=sys.argv[1], name="crash",
                     client=sys.argv[2]).fit(X, y)
    """
)


def _stored(path: Path) -> int:
    if not path.exists():
        return 0
    with sqlite3.connect(path) as conn:
        try:
            return conn.execute("SELECT COUNT(*) FROM trials WHERE search='crash'").fetchone()[0]
        except sqlite3.OperationalError:
            return 0


def test_sigkilled_driver_resumes_with_only_in_flight_work_redone(client, tmp_path):
    db = tmp_path / "runs.db"
    storage = f"sqlite:///{db}"
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    proc = subprocess.Popen(
        [sys.executable, str(script), storage, client.scheduler.address],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        deadline = time.monotonic() + 120
        while _stored(db) < 4 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert proc.poll() is None, "the driver finished or died before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    done_before = _stored(db)
    assert 4 <= done_before < 12
    assert SQLiteStore(db, "crash").info()["status"] == "running"  # it never got to say otherwise

    X, y = load_iris(return_X_y=True)
    resumed = GridSearchCV(SlowTree(), GRID, cv=3, storage=storage, name="crash", client=client)
    resumed.fit(X, y, resume=True)
    assert resumed.stats_["trials_replayed"] == done_before
    # Folds that finished before the kill but whose trial did not are in the unit cache.
    stats = resumed.stats_
    assert stats["units_computed"] + stats["units_reused"] == (12 - done_before) * 3
    assert SQLiteStore(db, "crash").info()["status"] == "finished"
    assert len(SQLiteStore(db, "crash")) == 12

    fresh = GridSearchCV(
        SlowTree(delay=0.0), {"max_depth": list(range(1, 13))}, cv=3, client=client
    )
    fresh.fit(X, y)
    np.testing.assert_array_equal(
        resumed.cv_results_["mean_test_score"], fresh.cv_results_["mean_test_score"]
    )
    assert resumed.best_params_["max_depth"] == fresh.best_params_["max_depth"]
