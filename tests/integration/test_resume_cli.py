"""`daskhpo run` killed with SIGKILL, then `daskhpo resume NAME` finishes it from the store alone."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import daskhpo
from daskhpo.spec import build_search, load_data

ROOT = Path(__file__).resolve().parents[2]
N = 12

SPEC = (
    "name: killed\n"
    "estimator: {class: tests.helpers.SlowTree, params: {delay: 0.15}}\n"
    f"search: {{type: grid, param_grid: {{max_depth: {list(range(1, N + 1))}}}}}\n"
    "data: {loader: sklearn.datasets.load_iris}\n"
    "scoring: accuracy\n"
    "cv: 3\n"
)


def _trial_rows(db: Path) -> list[tuple[int, float]]:
    """(trial_id, time stored) of every stored trial row of the search, in the order stored."""
    if not db.exists():
        return []
    try:
        with sqlite3.connect(db) as conn:
            return conn.execute(
                "SELECT trial_id, created FROM trials WHERE search='killed' ORDER BY seq"
            ).fetchall()
    except sqlite3.OperationalError:  # the tables are not there yet
        return []


def test_killed_run_is_finished_by_resume_without_the_spec_file(client, tmp_path):
    spec = tmp_path / "killed.yaml"
    spec.write_text(SPEC)
    db = tmp_path / "runs.db"
    storage = f"sqlite:///{db}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cluster = ["--cluster", client.scheduler.address]
    log = tmp_path / "run.log"  # a file, not a pipe: the run's cluster children may outlive it
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "daskhpo", "run", str(spec), "--storage", storage, *cluster],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 120  # when to stop waiting for 4 trials, not a speed target
        while len(_trial_rows(db)) < 4 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert proc.poll() is None, (
            f"the run finished or died before it could be killed:\n{log.read_text()[-3000:]}"
        )
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    killed_at = time.time()
    before = _trial_rows(db)
    stored_before = {t for t, _ in before}
    assert 4 <= len(stored_before) < N, f"{len(stored_before)} stored:\n{log.read_text()[-3000:]}"

    # What was stored is readable at once, without a cluster: a partial search.
    partial = daskhpo.load("killed", storage)
    assert partial.status == "running"  # it never got to say otherwise
    assert partial.n_trials == len(stored_before)
    assert sorted(partial.cv_results_["param_max_depth"]) == sorted(t + 1 for t in stored_before)

    spec.unlink()  # resume needs only the store
    resumed = subprocess.run(
        [sys.executable, "-m", "daskhpo", "resume", "killed", "--storage", storage, *cluster],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"{len(stored_before)} trials read from the store" in resumed.stdout
    # Folds that finished before the kill, in trials that did not, come from the unit cache.
    found = re.search(r"(\d+) fits computed, (\d+) taken from the unit cache", resumed.stdout)
    assert found is not None, resumed.stdout
    assert int(found[1]) + int(found[2]) == (N - len(stored_before)) * 3

    # Counted from the store: every trial once; what resume stored is exactly what was missing, so
    # at most the trials that were in flight (or not started) at the kill were computed again.
    after = _trial_rows(db)
    assert sorted(t for t, _ in after) == list(range(N))
    new = {t for t, created in after if created >= killed_at}
    assert new == set(range(N)) - stored_before
    assert len(after) == len(before) + len(new)

    # The same final results as an uninterrupted run of the same spec.
    spec.write_text(SPEC)
    reference = build_search(str(spec), client=client).fit(*load_data(str(spec)))
    final = daskhpo.load("killed", storage)
    assert final.status == "finished" and final.n_trials == N
    np.testing.assert_array_equal(
        final.cv_results_["mean_test_score"], reference.cv_results_["mean_test_score"]
    )
    assert final.cv_results_["params"] == reference.cv_results_["params"]
    assert final.best_params_ == reference.best_params_
