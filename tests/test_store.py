"""Trial stores: the SQLite contract, and resuming searches from it."""

from __future__ import annotations

import json
import math
import multiprocessing
import pickle
import sqlite3
import time

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.tree import DecisionTreeClassifier

from daskhpo import GridSearchCV, InvalidSearchError, RandomizedSearchCV
from daskhpo.exceptions import DaskHPOError
from daskhpo.store import (
    MemoryStore,
    SQLiteStore,
    Store,
    StoreNotFoundError,
    StoreVersionError,
    open_store,
    result_to_json,
)
from daskhpo.strategies import Job, Result, Status
from tests.helpers import keep_first_trials

X, y = load_iris(return_X_y=True)
GRID = {"max_depth": [1, 2, 3, 4], "min_samples_leaf": [1, 5]}


def _result(tid, score=0.5, status=Status.COMPLETE, params=None):
    return Result(
        Job(tid, params if params is not None else {"a": tid, "b": None}),
        status,
        score,
        {"score": (score, score + 0.1)},
        {"score": (1.0, 0.9)},
        (0.01, 0.02),
        (0.001, 0.002),
        (None, "Traceback: boom") if status is Status.FAILED else (None, None),
    )


def test_append_and_read_back(tmp_path):
    store = SQLiteStore(tmp_path / "s.db", "one")
    originals = [_result(0), _result(1, math.nan, Status.FAILED), _result(2, 0.75)]
    for r in originals:
        store.append(r)
    again = SQLiteStore(tmp_path / "s.db", "one").results()
    assert len(again) == 3
    for a, b in zip(originals, again, strict=True):
        assert (a.trial_id, a.status, dict(a.job.params)) == (
            b.trial_id,
            b.status,
            dict(b.job.params),
        )
        np.testing.assert_equal(dict(b.test_scores), dict(a.test_scores))  # nan equals nan here
        np.testing.assert_equal(dict(b.train_scores), dict(a.train_scores))
        assert a.fit_times == b.fit_times and a.errors == b.errors
        np.testing.assert_equal(b.score, a.score)


def test_many_searches_in_one_file_and_plain_json(tmp_path):
    path = tmp_path / "s.db"
    a, b = SQLiteStore(path, "a"), SQLiteStore(path, "b")
    a.append(_result(0, params={"clf": DecisionTreeClassifier(max_depth=3), "C": np.float64(0.5)}))
    b.append(_result(0))
    b.append(_result(1))
    assert [(s["name"], s["n_trials"]) for s in a.searches()] == [("a", 1), ("b", 2)]
    with sqlite3.connect(path) as conn:
        (text,) = conn.execute("SELECT data FROM trials WHERE search='a'").fetchone()
    data = json.loads(text)  # plain JSON, nothing to unpickle
    assert data["params"]["C"] == 0.5
    assert data["params"]["clf"] == {"__repr__": "DecisionTreeClassifier(max_depth=3)"}


def _writer(path, name, n):
    store = SQLiteStore(path, name)
    for i in range(n):
        store.append(_result(i))


def test_concurrent_writers_do_not_corrupt(tmp_path):
    path = str(tmp_path / "s.db")
    SQLiteStore(path, "setup")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, name, 150)) for name in ("x", "y", "x")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    counts = {s["name"]: s["n_trials"] for s in SQLiteStore(path, "setup").searches()}
    assert counts == {"setup": 0, "x": 300, "y": 150}
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_other_schema_versions_are_refused(tmp_path):
    path = tmp_path / "s.db"
    SQLiteStore(path, "a").append(_result(0))
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    with pytest.raises(StoreVersionError, match=r"schema version 99.*reads version 1"):
        SQLiteStore(path, "a")


def test_storage_argument_is_checked():
    with pytest.raises(InvalidSearchError, match=r"storage='postgres://x'"):
        open_store("postgres://x", "a")
    with pytest.raises(InvalidSearchError, match=r"names no file"):
        open_store("sqlite:///", "a")


def _store(kind, tmp_path, name="s"):
    return MemoryStore(name) if kind == "memory" else SQLiteStore(tmp_path / "s.db", name)


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_both_stores_implement_the_whole_protocol(kind, tmp_path):
    store = _store(kind, tmp_path)
    assert isinstance(store, Store) and store.name == "s"
    assert store.persistent is (kind == "sqlite")
    info = store.info()
    assert info["status"] == "new" and info["spec"] == {} and info["fingerprint"] is None
    assert info["n_trials"] == 0 and info["created"] <= info["updated"] <= time.time()
    store.start({"search": "GridSearchCV", "n": np.int64(3)}, "fp1")
    store.start({"more": [1, 2]}, None)  # merged; a None fingerprint keeps the one there
    originals = [_result(0), _result(1, math.nan, Status.FAILED), _result(2, 0.75)]
    for r in originals:
        store.append(r)
    store.set_status("finished")
    info = store.info()
    assert {k: info[k] for k in ("name", "spec", "fingerprint", "status", "n_trials")} == {
        "name": "s",
        "spec": {"search": "GridSearchCV", "n": 3, "more": [1, 2]},
        "fingerprint": "fp1",
        "status": "finished",
        "n_trials": 3,
    }
    assert len(store) == 3
    # As JSON text: the failed trial's nan score equals itself there.
    assert [json.dumps(d) for d in store.records()] == [
        json.dumps(result_to_json(r)) for r in originals
    ]
    assert [(r.trial_id, r.status) for r in store.results()] == [
        (r.trial_id, r.status) for r in originals
    ]
    (row,) = [s for s in store.searches() if s["name"] == "s"]
    assert row == {"name": "s", "status": "finished", "updated": info["updated"], "n_trials": 3}
    store.close()


def test_memory_store_is_named_and_pickles_with_its_results():
    assert MemoryStore().name == "default" and open_store(None, "trees").name == "trees"
    assert open_store("memory", "x").name == "x"
    store = MemoryStore("m")
    store.start({"a": 1}, "fp")
    store.append(_result(0))
    copy = pickle.loads(pickle.dumps(store))
    assert copy.records() == store.records() and copy.info() == store.info()
    copy.append(_result(1))  # the lock was made again
    assert (len(copy), len(store)) == (2, 1)
    assert open_store(copy, "ignored") is copy


def test_sqlite_store_pickles_as_its_path_and_reopens_the_file(tmp_path):
    store = SQLiteStore(tmp_path / "s.db", "one")
    store.start({"a": 1}, "fp")
    store.append(_result(0))
    store.append(_result(1, 0.25))
    data = pickle.dumps(store)
    assert len(data) < 500  # the path and name, not the trials
    copy = pickle.loads(data)
    assert copy.persistent and copy.records() == store.records()
    assert copy.info() == store.info()
    copy.append(_result(2))  # both handles write the same file
    assert len(store) == 3 and store.records()[-1]["trial_id"] == 2
    copy.close()


def test_an_unpickled_sqlite_store_whose_file_is_gone_says_so(tmp_path):
    path = tmp_path / "runs.db"
    store = SQLiteStore(path, "one")
    store.append(_result(0))
    data = pickle.dumps(store)
    store.close()
    for p in tmp_path.iterdir():  # the file and its WAL companions
        p.unlink()
    copy = pickle.loads(data)  # unpickling alone does not touch the file
    with pytest.raises(StoreNotFoundError, match=r"runs\.db.*is gone") as err:
        copy.records()
    assert isinstance(err.value, DaskHPOError)
    assert not path.exists()  # and it was not created empty either


def _tree_search(storage, **kw):
    return GridSearchCV(DecisionTreeClassifier(random_state=0), GRID, cv=3, storage=storage, **kw)


def test_stored_search_resumes_without_recomputing(client, tmp_path):
    storage = f"sqlite:///{tmp_path / 'runs.db'}"
    full = _tree_search(storage, name="full", client=client).fit(X, y)
    store = SQLiteStore(tmp_path / "runs.db", "full")
    assert len(store) == 8 and store.info()["status"] == "finished"

    # Simulate a crash after 5 trials: keep only those in a second search's log.
    part = SQLiteStore(tmp_path / "runs.db", "part")
    resumed_search = _tree_search(storage, name="part", client=client)
    keep_first_trials(store, "part", 5)
    with pytest.raises(InvalidSearchError, match=r"already holds 5 trials: pass resume=True"):
        resumed_search.fit(X, y)
    resumed_search.fit(X, y, resume=True)
    assert resumed_search.stats_["trials_replayed"] == 5
    # The 3 trials left were fitted by the search "full" in the same store: they come from its
    # unit cache instead of being computed.
    assert resumed_search.stats_["units_computed"] == 0
    assert resumed_search.stats_["units_reused"] == 3 * 3
    for key in ("mean_test_score", "rank_test_score", "split2_test_score"):
        np.testing.assert_array_equal(resumed_search.cv_results_[key], full.cv_results_[key])
    assert resumed_search.best_params_ == full.best_params_
    assert len(part) == 8


def test_resume_refuses_other_data_or_unseeded_random_search(client, tmp_path):
    storage = f"sqlite:///{tmp_path / 'runs.db'}"
    _tree_search(storage, name="s", client=client).fit(X, y)
    with pytest.raises(InvalidSearchError, match=r"other data, settings or candidates"):
        _tree_search(storage, name="s", client=client).fit(X[:120], y[:120], resume=True)
    rand = RandomizedSearchCV(
        DecisionTreeClassifier(random_state=0),
        {"max_depth": list(range(1, 9))},
        n_iter=3,
        cv=3,
        storage=storage,
        name="r",
        client=client,
    )
    rand.fit(X, y)
    with pytest.raises(InvalidSearchError, match=r"unless random_state is set"):
        rand.fit(X, y, resume=True)
    with pytest.raises(InvalidSearchError, match=r"resume=True needs a stored search"):
        _tree_search(None, client=client).fit(X, y, resume=True)
