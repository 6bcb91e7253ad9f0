"""Large searches from one driver: grids made on demand, results kept in columns, bounded memory."""

from __future__ import annotations

import _thread
import gc
import math
import pickle
import threading
import time
import tracemalloc

import numpy as np
import pytest
import scipy.stats as stats
from dask.base import tokenize
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.dummy import DummyClassifier
from sklearn.model_selection import GridSearchCV as SkGrid
from sklearn.model_selection import ParameterGrid, ParameterSampler

import daskhpo
from daskhpo.resultlog import ResultLog, latest_view
from daskhpo.results import latest_evaluations
from daskhpo.space import Float, Int, LazyGrid, LazySample
from daskhpo.store import MemoryStore
from daskhpo.strategies.base import Job, Result, Status
from daskhpo.strategies.candidates import GridStrategy, RandomStrategy


@pytest.mark.parametrize(
    "grid",
    [
        {"b": [1, 2, 3], "a": ["x", "y"], "c": [None, 0.5]},
        [{"k": [1, 2]}, {"k": [3], "z": np.array([0.1, 0.2])}, {}],
        {"only": list(range(7))},
    ],
)
def test_a_lazy_grid_is_parameter_grid_candidate_for_candidate(grid):
    expected = list(ParameterGrid(grid))
    lazy = LazyGrid(grid)
    assert len(lazy) == len(expected)
    got = [lazy[i] for i in range(len(lazy))]
    assert got == expected
    assert [list(c) for c in got] == [list(c) for c in expected]  # key order too
    assert lazy[-1] == expected[-1] and lazy[1:3] == expected[1:3]
    with pytest.raises(IndexError):
        lazy[len(lazy)]


def test_a_million_candidate_grid_is_not_listed():
    grid = {"a": list(range(1000)), "b": list(range(1000))}
    strategy = GridStrategy(grid)
    assert strategy.n_planned == 1_000_000
    assert isinstance(strategy.candidates, LazyGrid)
    # Asking reads candidates one at a time, in scikit-learn's order.
    assert [j.params for j in strategy.ask(3)] == [
        {"a": 0, "b": 0},
        {"a": 0, "b": 1},
        {"a": 0, "b": 2},
    ]
    assert strategy.candidates[999_999] == {"a": 999, "b": 999}
    # Equal grids give equal signatures; another order of the same values does not.
    assert GridStrategy(dict(grid)).signature() == strategy.signature()
    assert GridStrategy({"a": list(range(1000))[::-1], "b": grid["b"]}).signature() != (
        strategy.signature()
    )


@pytest.mark.parametrize(
    "dists",
    [
        {"C": stats.loguniform(1e-3, 1e3), "k": stats.randint(1, 9), "kind": ["a", "b"]},
        [{"a": [1, 2, 3]}, {"b": stats.uniform(0, 1)}],
        {"x": Float(0.1, 1.0, log=True), "y": Int(1, 5)},
    ],
)
def test_a_lazy_sample_draws_what_parameter_sampler_draws_in_any_reading_order(dists):
    expected = list(ParameterSampler(dists, 40, random_state=3))
    lazy = LazySample(dists, 40, 3)
    assert len(lazy) == 40 and lazy == expected
    backwards = [lazy[i] for i in range(39, -1, -1)]
    assert backwards[::-1] == expected
    assert lazy[5:8] == expected[5:8] and lazy[-1] == expected[-1]
    # The seed, the size and the distributions fix the sample, and so its signature.
    assert tokenize(lazy.signature()) == tokenize(LazySample(dists, 40, 3).signature())
    assert tokenize(lazy.signature()) != tokenize(LazySample(dists, 40, 4).signature())
    assert tokenize(lazy.signature()) != tokenize(LazySample(dists, 41, 3).signature())


def test_a_users_random_state_gives_scikit_learns_draws_and_is_not_advanced():
    rng = np.random.RandomState(5)
    before = rng.get_state()[1].copy()
    lazy = LazySample({"C": stats.uniform(0, 1)}, 5, rng)
    expected = list(
        ParameterSampler({"C": stats.uniform(0, 1)}, 5, random_state=np.random.RandomState(5))
    )
    assert list(lazy) == expected
    np.testing.assert_array_equal(rng.get_state()[1], before)


def test_a_million_candidate_random_search_is_not_drawn_up_front():
    strategy = RandomStrategy({"C": stats.loguniform(1e-3, 1e3)}, n_iter=1_000_000, random_state=0)
    assert isinstance(strategy.candidates, LazySample) and strategy.n_planned == 1_000_000
    first = [j.params for j in strategy.ask(3)]
    assert first == list(ParameterSampler({"C": stats.loguniform(1e-3, 1e3)}, 3, random_state=0))


def _result(tid, *, rung=0, budget=None, failed=False, folds=None, extra=None, train=False, k=3):
    scores = {"score": tuple(0.1 * tid + 0.01 * f for f in range(k))}
    return Result(
        job=Job(trial_id=tid, params={"x": tid}, budget=budget, rung=rung, folds=folds),
        status=Status.FAILED if failed else Status.COMPLETE,
        score=math.nan if failed else float(np.mean(scores["score"])),
        test_scores=scores,
        train_scores={"score": (1.0,) * k} if train else None,
        fit_times=tuple(0.5 + f for f in range(k)),
        score_times=(0.25,) * k,
        errors=(("Traceback: boom",) + (None,) * (k - 1)) if failed else (None,) * k,
        extra=extra or {},
    )


kinds = st.sampled_from(["plain", "failed", "budget", "raced", "extra", "train", "short"])


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 2), kinds), max_size=30))
def test_the_log_reads_back_every_result_as_appended(items):
    results = []
    for tid, rung, kind in items:
        results.append(
            _result(
                tid,
                rung=rung,
                budget=3.0**rung if kind == "budget" else None,
                failed=kind == "failed",
                folds=2 if kind == "raced" else None,
                extra={"folds_run": 2} if kind == "extra" else None,
                train=kind == "train",
                k=2 if kind == "short" else 3,
            )
        )
    log = ResultLog()
    for r in results:
        log.append(r)
    assert list(log.view()) == results
    # The rows of cv_results_: the same as the general rule computes on Result objects.
    assert list(latest_view(log.view())) == list(latest_evaluations(list(results)))
    again = pickle.loads(pickle.dumps(log))
    assert repr(list(again.view())) == repr(results)  # repr: nan scores compare equal


def test_a_store_pickled_with_a_list_of_results_still_loads():
    store = MemoryStore("old")
    results = [_result(0), _result(1, failed=True)]
    for r in results:
        store.append(r)
    state = store.__getstate__()
    state["_results"] = list(results)  # how stores were pickled before the columns
    old = MemoryStore.__new__(MemoryStore)
    old.__setstate__(state)
    assert list(old.results()) == results
    old.append(_result(2))
    assert len(old) == 3


def _interrupt_when(condition, timeout: float = 120.0) -> threading.Thread:
    def watch() -> None:
        end = time.monotonic() + timeout
        while not condition() and time.monotonic() < end:
            time.sleep(0.02)
        _thread.interrupt_main()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_a_million_candidate_grid_starts_at_once_and_keeps_what_finished(client, capsys):
    X = np.random.RandomState(0).rand(40, 2)
    y = np.arange(40) % 2
    store = MemoryStore("big")
    search = daskhpo.GridSearchCV(
        DummyClassifier(strategy="prior"),
        {"random_state": list(range(1_000_000))},
        cv=2,
        refit=False,
        client=client,
        storage=store,
        verbose=1,
    )
    watcher = _interrupt_when(lambda: len(store) >= 50)
    with pytest.raises(KeyboardInterrupt):
        search.fit(X, y)
    watcher.join()
    err = capsys.readouterr().err
    assert "Fitting 2 folds for each of 1000000 candidates, totalling 2000000 fits" in err
    finished = store.results()
    assert 50 <= len(finished) < 1_000_000
    assert store.info()["status"] == "interrupted"
    # What finished comes from the start of the grid (tasks finish in any order), each trial with
    # its own candidate and scikit-learn's score.
    ids = [r.trial_id for r in finished]
    assert len(set(ids)) == len(ids) and max(ids) < 100_000
    assert all(r.job.params == {"random_state": r.trial_id} for r in finished)
    assert all(r.score == pytest.approx(0.5) for r in finished)


def _kept_by_a_search(client, n: int, X, y):
    """Bytes still allocated once a finished n-candidate search is kept (its store and results),
    and the search."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        search = daskhpo.GridSearchCV(
            DummyClassifier(strategy="prior"),
            {"random_state": list(range(n))},
            cv=2,
            refit=False,
            client=client,
        ).fit(X, y)
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - before, search
    finally:
        tracemalloc.stop()


def test_driver_memory_kept_per_candidate_is_under_a_kilobyte(client):
    """What each more candidate of a finished search keeps on the driver (this process runs the
    client, and the session cluster's scheduler runs here too): results in columns, cv_results_
    included. The difference of two sizes leaves out what any search allocates once."""
    X = np.random.RandomState(0).rand(60, 2)
    y = np.arange(60) % 2
    small, _ = _kept_by_a_search(client, 1_000, X, y)
    large, search = _kept_by_a_search(client, 4_000, X, y)
    per_candidate = (large - small) / 3_000
    assert per_candidate < 1024, f"{per_candidate:.0f} bytes per candidate"
    n = 4_000
    assert len(search.cv_results_["params"]) == n
    assert search.cv_results_["params"][n - 1] == {"random_state": n - 1}
    # And the results are scikit-learn's.
    theirs = SkGrid(
        DummyClassifier(strategy="prior"), {"random_state": list(range(n))}, cv=2, refit=False
    ).fit(X, y)
    for key in ("mean_test_score", "split0_test_score", "rank_test_score", "params"):
        assert list(search.cv_results_[key]) == list(theirs.cv_results_[key])


@settings(max_examples=500, deadline=None)
@given(st.lists(st.floats(-1e12, 1e12, allow_nan=False), min_size=1, max_size=12))
def test_a_results_score_is_numpys_mean_bit_for_bit(values):
    from daskhpo.tuner import _mean

    assert _mean(values) == float(np.mean(values))
