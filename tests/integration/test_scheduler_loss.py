"""A scheduler killed under a running search: the error says how to continue, and resume does."""

from __future__ import annotations

import signal
import sys
import threading
import time
from pathlib import Path

import dask
import pytest
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier

from daskhpo import GridSearchCV
from daskhpo.store import SQLiteStore
from tests.integration._clusters import start_logged, stop_process, wait_for_line

BIN = Path(sys.executable).parent
X, y = load_iris(return_X_y=True)
FOREST = RandomForestClassifier(n_estimators=60, random_state=0)  # about 0.1 s a fit
GRID = {"max_depth": list(range(1, 31))}


def _cluster(tmp_path: Path, tag: str):
    slog, wlog = tmp_path / f"scheduler-{tag}.log", tmp_path / f"worker-{tag}.log"
    sched = start_logged(
        [str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard"],
        slog,
    )
    address = wait_for_line(slog, "Scheduler at:", sched)
    worker = start_logged(
        [str(BIN / "dask"), "worker", address, "--nthreads", "2", "--no-dashboard"], wlog
    )
    return sched, worker, address


@pytest.mark.timeout(240)  # a hang guard, not a speed target
def test_killed_scheduler_fails_with_the_resume_call_and_resume_continues(tmp_path):
    db = tmp_path / "runs.db"
    storage = f"sqlite:///{db}"
    sched, worker, address = _cluster(tmp_path, "first")
    running = threading.Event()

    def kill_when_trials_are_in():
        deadline = time.monotonic() + 120  # a hang guard for the helper thread
        while time.monotonic() < deadline:
            try:
                if db.exists() and len(SQLiteStore(db, "forest", create=False)) >= 3:
                    break
            except Exception:
                pass
            time.sleep(0.05)
        running.set()
        sched.send_signal(signal.SIGKILL)

    threading.Thread(target=kill_when_trials_are_in, daemon=True).start()
    try:
        # distributed's own connect timeout bounds how long the client tries the dead scheduler.
        with (
            dask.config.set({"distributed.comm.timeouts.connect": "5s"}),
            pytest.raises(BaseException) as info,
        ):
            GridSearchCV(FOREST, GRID, cv=2, storage=storage, name="forest", client=address).fit(
                X, y
            )
    finally:
        stop_process(worker)
        stop_process(sched)
    assert running.is_set()  # the search was running when the scheduler died
    assert not isinstance(info.value, (KeyboardInterrupt, AssertionError)), info.value
    notes = "\n".join(getattr(info.value, "__notes__", []))
    assert f"kept in {storage} as 'forest'" in notes and "fit(..., resume=True)" in notes
    stored = SQLiteStore(db, "forest", create=False)
    assert stored.info()["status"] == "failed"
    before = len(stored)
    assert 3 <= before < 30

    sched, worker, address = _cluster(tmp_path, "second")
    try:
        search = GridSearchCV(FOREST, GRID, cv=2, storage=storage, name="forest", client=address)
        search.fit(X, y, resume=True)
    finally:
        stop_process(worker)
        stop_process(sched)
    assert search.stats_["trials_replayed"] == before
    ids = sorted(r["trial_id"] for r in SQLiteStore(db, "forest", create=False).records())
    assert ids == list(range(30))  # every trial once: the replayed ones were not computed again
