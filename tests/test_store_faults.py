"""The store file meets the faults users meet: deleted, replaced or made unwritable mid-run."""

from __future__ import annotations

import os
import threading
import time

import pytest
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.tree import DecisionTreeClassifier

import daskhpo
from daskhpo import GridSearchCV
from daskhpo.store import SQLiteStore, StoreFileWarning, StoreWriteError
from daskhpo.strategies import Job, Result, Status

X, y = load_iris(return_X_y=True)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _result(tid):
    return Result(
        Job(tid, {"a": tid}),
        Status.COMPLETE,
        0.5,
        {"score": (0.5, 0.6)},
        None,
        (0.1, 0.1),
        (0.0, 0.0),
        (None, None),
    )


def test_deleted_file_is_written_back_whole_before_the_next_write(tmp_path):
    path = tmp_path / "runs.db"
    other = SQLiteStore(path, "other")  # another search in the same file
    other.append(_result(0))
    store = SQLiteStore(path, "mine")
    store.start({"search": "GridSearchCV"}, "f")
    for tid in range(3):
        store.append(_result(tid))
    os.remove(path)  # a cleanup script, an rm in the wrong folder
    with pytest.warns(StoreFileWarning, match=rf"{path} was deleted .* written back to {path}"):
        store.append(_result(3))
    store.set_status("finished")
    fresh = SQLiteStore(path, "mine", create=False)
    assert [r["trial_id"] for r in fresh.records()] == [0, 1, 2, 3]
    assert fresh.info()["status"] == "finished"
    assert len(SQLiteStore(path, "other", create=False)) == 1  # the other search came back too


def test_deleted_folder_is_made_again(tmp_path):
    path = tmp_path / "runs" / "runs.db"
    store = SQLiteStore(path, "mine")
    store.append(_result(0))
    for name in os.listdir(path.parent):
        os.remove(path.parent / name)
    os.rmdir(path.parent)
    with pytest.warns(StoreFileWarning):
        store.append(_result(1))
    assert len(SQLiteStore(path, "mine", create=False)) == 2


def test_replaced_file_is_left_alone_and_the_trials_go_next_to_it(tmp_path):
    path = tmp_path / "runs.db"
    store = SQLiteStore(path, "mine")
    store.append(_result(0))
    # Another store file is moved over it (mv, cp). Made elsewhere: a new SQLite file created at
    # the very path while this store's connection is open would share its write-ahead log, which
    # SQLite cannot keep apart.
    elsewhere = SQLiteStore(tmp_path / "other.db", "someone-else")
    elsewhere.append(_result(7))
    elsewhere.close()
    os.replace(tmp_path / "other.db", path)
    with pytest.warns(StoreFileWarning, match="was replaced by another file") as rec:
        store.append(_result(1))
    assert len(SQLiteStore(path, "someone-else", create=False)) == 1
    assert "mine" not in [s["name"] for s in SQLiteStore(path, "someone-else").searches()]
    recovered = store.path
    assert recovered != path and recovered.name.startswith("runs.db.recovered-")
    assert str(recovered) in str(rec[0].message)
    assert len(SQLiteStore(recovered, "mine", create=False)) == 2


def test_immutable_file_raises_an_error_naming_the_path(tmp_path):
    """chattr +i on the file and its write-ahead log (the shared-memory index stays writable)."""
    import subprocess

    path = tmp_path / "runs.db"
    store = SQLiteStore(path, "mine")
    store.append(_result(0))
    locked = [str(path), f"{path}-wal"]
    subprocess.run(["chattr", "+i", *locked], check=True)
    try:
        with pytest.raises(
            StoreWriteError, match=rf"{path} \(search 'mine'\): it is read-only"
        ) as info:
            store.append(_result(1))
        assert "resume=True" in str(info.value)
    finally:
        subprocess.run(["chattr", "-i", *locked], check=True)
    assert [r["trial_id"] for r in store.records()] == [0]  # what was written is still there
    store.append(_result(1))  # and writing works again once the file is writable
    assert len(store) == 2


SHM_SCRIPT = """
import subprocess, sys
from daskhpo.store import SQLiteStore, StoreWriteError
from tests.test_store_faults import _result

path = sys.argv[1]
store = SQLiteStore(path, "mine")
store.append(_result(0))
subprocess.run(["chattr", "+i", path + "-shm"], check=True)
try:
    for step in (lambda: store.append(_result(1)), lambda: store.records()):
        try:
            step()
            print("no error")
        except StoreWriteError as exc:
            print("refused:", exc)
finally:
    subprocess.run(["chattr", "-i", path + "-shm"], check=True)
print("alive")
"""


def test_immutable_shared_memory_index_is_refused_without_sigbus(tmp_path):
    """SQLite maps the -shm index; writing through it once it is immutable would kill the process
    (SIGBUS). The store refuses first, so the process lives; run apart so a crash cannot take
    pytest down."""
    import subprocess
    import sys

    script = tmp_path / "shm.py"
    script.write_text(SHM_SCRIPT)
    with open(tmp_path / "out.txt", "w") as out:
        code = subprocess.run(
            [sys.executable, str(script), str(tmp_path / "runs.db")],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": ROOT},
            timeout=120,
        ).returncode
    text = (tmp_path / "out.txt").read_text()
    assert code == 0, text  # not -7 (SIGBUS)
    assert text.count("refused:") == 2 and "runs.db-shm" in text and "alive" in text, text


def test_store_deleted_while_a_search_runs_loses_no_trial(client, tmp_path):
    path = tmp_path / "runs.db"
    storage = f"sqlite:///{path}"
    deleted = threading.Event()

    def delete_when_trials_are_in():
        deadline = time.monotonic() + 120  # a hang guard for the helper thread, not a speed target
        while time.monotonic() < deadline:
            try:
                if path.exists() and len(SQLiteStore(path, "trees", create=False)) >= 3:
                    os.remove(path)
                    deleted.set()
                    return
            except Exception:
                pass
            time.sleep(0.01)

    class Slow(DecisionTreeClassifier):
        def fit(self, X, y, **kw):
            time.sleep(0.05)
            return super().fit(X, y, **kw)

    grid = {"max_depth": list(range(1, 21))}
    watcher = threading.Thread(target=delete_when_trials_are_in, daemon=True)
    watcher.start()
    with pytest.warns(StoreFileWarning, match="was deleted"):
        search = GridSearchCV(
            Slow(random_state=0), grid, cv=2, storage=storage, name="trees", client=client
        )
        search.fit(X, y)
    watcher.join(5)
    assert deleted.is_set()
    loaded = daskhpo.load("trees", storage=storage)
    assert sorted(loaded.cv_results_["params"], key=lambda p: p["max_depth"]) == [
        {"max_depth": d} for d in range(1, 21)
    ]
    assert loaded.best_score_ == search.best_score_


# -- one process per search name ----------------------------------------------------------------
def test_a_claimed_name_is_refused_to_a_second_store_until_released(tmp_path):
    from daskhpo.store import SearchClaimedError

    path = tmp_path / "runs.db"
    first, second = SQLiteStore(path, "shared"), SQLiteStore(path, "shared")
    first.claim()
    with pytest.raises(
        SearchClaimedError, match=rf"'shared' in {path} is running in process {os.getpid()}"
    ):
        second.claim()
    SQLiteStore(path, "another").claim()  # other names are free
    first.release()
    second.claim()
    second.release()


def test_the_heartbeat_keeps_a_quiet_search_claimed(tmp_path, monkeypatch):
    from daskhpo.store import SearchClaimedError

    monkeypatch.setenv("DASKHPO_LEASE_SECONDS", "0.4")
    path = tmp_path / "runs.db"
    first = SQLiteStore(path, "shared")
    first.claim()
    time.sleep(1.2)  # three lease lengths without a write: only the heartbeat renews it
    with pytest.raises(SearchClaimedError):
        SQLiteStore(path, "shared").claim()
    first.release()


def test_a_crashed_owners_claim_runs_out(tmp_path):
    import sqlite3

    path = tmp_path / "runs.db"
    SQLiteStore(path, "shared")
    with sqlite3.connect(path) as conn:  # what a killed process leaves: a lease nobody renews
        conn.execute(
            "INSERT INTO leases VALUES ('shared', 'gone:1:x', 'gone', 1, ?)", (time.time() - 1,)
        )
    store = SQLiteStore(path, "shared")
    store.claim()
    store.release()


def test_a_claim_left_by_a_dead_process_on_this_machine_ends_at_once(tmp_path):
    import socket
    import sqlite3
    import subprocess
    import sys

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a driver killed and reaped: its pid is gone
    path = tmp_path / "runs.db"
    SQLiteStore(path, "shared")
    with sqlite3.connect(path) as conn:  # its claim would still run for an hour
        conn.execute(
            "INSERT INTO leases VALUES ('shared', 'x', ?, ?, ?)",
            (socket.gethostname(), dead.pid, time.time() + 3600),
        )
    assert "running_in" not in SQLiteStore(path, "shared").info()
    store = SQLiteStore(path, "shared")
    store.claim()  # not refused
    store.release()


SCRIPT = """
import sys
from daskhpo import GridSearchCV
from tests.test_store_faults import FOREST, GRID, X, y

if __name__ == "__main__":
    search = GridSearchCV(FOREST, GRID, cv=2, storage=sys.argv[1], name="shared", client=sys.argv[2])
    search.fit(X, y, resume=len(sys.argv) > 3)
    print("done", len(search.store_))
"""
# Fits of about 0.1 s each, so that the other process is still running when the test acts.
FOREST = RandomForestClassifier(n_estimators=60, random_state=0)
GRID = {"max_depth": list(range(1, 31))}


def _started(path, name="shared", n=1, timeout=120):
    deadline = time.monotonic() + timeout  # a hang guard, not a speed target
    while time.monotonic() < deadline:
        try:
            if path.exists() and len(SQLiteStore(path, name, create=False)) >= n:
                return
        except Exception:
            pass
        time.sleep(0.05)
    raise AssertionError(f"the other process stored fewer than {n} trials")


def test_same_name_from_two_processes_computes_one_search(client, tmp_path, capsys):
    import subprocess
    import sys

    from daskhpo.store import SearchClaimedError

    path = tmp_path / "runs.db"
    storage = f"sqlite:///{path}"
    script = tmp_path / "search.py"
    script.write_text(SCRIPT)
    with open(tmp_path / "out.txt", "w") as out:
        other = subprocess.Popen(
            [sys.executable, str(script), storage, client.scheduler.address],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        try:
            _started(path)
            from daskhpo.cli import main

            main(["status", "shared", "--storage", storage])
            assert f"status: running (process {other.pid} on " in capsys.readouterr().out
            with pytest.raises(SearchClaimedError, match=rf"running in process {other.pid}"):
                GridSearchCV(FOREST, GRID, cv=2, storage=storage, name="shared", client=client).fit(
                    X, y, resume=True
                )
        finally:
            assert other.wait(timeout=300) == 0, (tmp_path / "out.txt").read_text()
    store = SQLiteStore(path, "shared", create=False)
    ids = [r["trial_id"] for r in store.records()]
    assert sorted(ids) == list(range(30))  # one row per trial: nothing computed twice
    assert store.info()["status"] == "finished"


def test_resume_takes_over_once_a_killed_owners_claim_runs_out(client, tmp_path, capsys):
    import signal
    import subprocess
    import sys

    path = tmp_path / "runs.db"
    storage = f"sqlite:///{path}"
    script = tmp_path / "search.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "DASKHPO_LEASE_SECONDS": "2", "PYTHONPATH": str(ROOT)}
    with open(tmp_path / "out.txt", "w") as out:
        other = subprocess.Popen(
            [sys.executable, str(script), storage, client.scheduler.address],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
        _started(path, n=4)
        other.send_signal(signal.SIGKILL)
        other.wait(timeout=60)
    before = len(SQLiteStore(path, "shared", create=False))
    assert before < 30  # killed mid-run
    from daskhpo.store import SearchClaimedError

    deadline = time.monotonic() + 60  # a hang guard: the claim runs out 2 s after the last renewal
    while "running_in" in SQLiteStore(path, "shared", create=False).info():
        assert time.monotonic() < deadline
        time.sleep(0.2)
    from daskhpo.cli import main

    main(["status", "shared", "--storage", storage])
    assert "status: stopped (it says running, but no process has run it" in capsys.readouterr().out
    search = GridSearchCV(FOREST, GRID, cv=2, storage=storage, name="shared", client=client)
    while True:
        try:
            search.fit(X, y, resume=True)
            break
        except SearchClaimedError:
            assert time.monotonic() < deadline
            time.sleep(0.5)
    assert search.stats_["trials_replayed"] == before
    ids = [r["trial_id"] for r in SQLiteStore(path, "shared", create=False).records()]
    assert sorted(ids) == list(range(30))


def test_a_claim_taken_over_while_this_process_was_stopped_stops_its_writes(tmp_path):
    import sqlite3

    from daskhpo.store import SearchClaimedError

    path = tmp_path / "runs.db"
    store = SQLiteStore(path, "shared")
    store.claim()
    store.append(_result(0))
    with sqlite3.connect(path) as conn:  # what another process does once this one's claim ran out
        conn.execute("UPDATE leases SET owner='other:9:x', host='other', pid=9 WHERE name='shared'")
    with pytest.raises(SearchClaimedError, match="was taken over by process 9 on other"):
        store.append(_result(1))
    with pytest.raises(SearchClaimedError):  # and every later write, too
        store.append(_result(2))
    store.release()  # leaves the other process's claim alone
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT owner FROM leases").fetchall() == [("other:9:x",)]
    assert len(SQLiteStore(path, "shared", create=False)) == 1
