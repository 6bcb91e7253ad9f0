"""Trial stores: the SQLite contract, and resuming searches from it."""

from __future__ import annotations

import json
import math
import multiprocessing
import sqlite3

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.tree import DecisionTreeClassifier

from daskhpo import GridSearchCV, InvalidSearchError, RandomizedSearchCV
from daskhpo.store import SQLiteStore, StoreVersionError, open_store
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
    assert resumed_search.stats_["units_computed"] == 3 * 3
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
