"""Every strategy against the Strategy protocol: capabilities, pickling, restore and signature."""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable

import pytest
from dask.base import tokenize
from scipy.stats import uniform
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

from daskhpo import Float
from daskhpo.store import result_from_json, result_to_json
from daskhpo.strategies import (
    ASHA,
    Counting,
    Describing,
    Enumerated,
    GridStrategy,
    Hyperband,
    Incremental,
    Job,
    ListSource,
    RandomSource,
    RandomStrategy,
    Releasing,
    Result,
    SlotAware,
    Status,
    Strategy,
    SuccessiveHalving,
)

pytest.importorskip("optuna", reason="optuna is in the test extra; this guards bare installs")

from daskhpo.strategies.bayes import BayesStrategy  # noqa: E402
from daskhpo.strategies.bohb import BOHB  # noqa: E402

SPACE = {"a": uniform(0, 1), "b": ["x", "y", "z"]}
BOX = {"a": Float(0.0, 1.0), "b": Float(-1.0, 1.0)}

MAKERS: dict[str, Callable[[], Strategy]] = {
    "grid": lambda: GridStrategy({"a": [0.1, 0.5, 0.9], "b": ["x", "y"]}),
    "random": lambda: RandomStrategy(SPACE, 8, random_state=0),
    "halving": lambda: SuccessiveHalving(RandomSource(SPACE, 1), 9, 1, 9),
    "hyperband": lambda: Hyperband(RandomSource(SPACE, 1), 9),
    "asha": lambda: ASHA(RandomSource(SPACE, 1), 12, 9),
    "incremental": lambda: Incremental(RandomSource(SPACE, 1), 5, 6, step=2, patience=2),
    "bayes": lambda: BayesStrategy(BOX, 12, random_state=0, max_in_flight=3),
    "bohb": lambda: BOHB(BOX, 9, random_state=0, min_points=3),
}


def score(job: Job) -> float:
    a = float(job.params["a"])
    b = job.params["b"]
    bonus = {"x": 0.0, "y": 0.05, "z": 0.1}[b] if isinstance(b, str) else -abs(b)
    return -abs(a - 0.3) + bonus - 1 / (1 + (job.budget or 1))


def result(job: Job) -> Result:
    s = score(job)
    return Result(job, Status.COMPLETE, s, {"score": (s,)}, None, (0.01,), (0.001,))


def key(job: Job) -> tuple:
    return (job.trial_id, job.rung, job.bracket, job.budget, repr(sorted(job.params.items())))


def drive(strategy: Strategy, in_flight: list[Job], rounds: int | None = None) -> list[tuple]:
    """Three workers, results told oldest first; the keys of the jobs told."""
    told = []
    while not strategy.done and (rounds is None or len(told) < rounds):
        in_flight += strategy.ask(3 - len(in_flight))
        job = in_flight.pop(0)
        strategy.tell(result(job))
        told.append(key(job))
    return told


CAPABILITIES = {
    "grid": {Enumerated},
    "random": {Enumerated},
    "halving": {Releasing, Describing},
    "hyperband": {Releasing, Describing},
    "asha": {Releasing, Describing},
    "incremental": {Releasing, Describing},
    "bayes": {Counting, SlotAware},
    "bohb": {Releasing, Describing},
}


@pytest.mark.parametrize("name", MAKERS)
def test_capabilities(name):
    strategy = MAKERS[name]()
    assert isinstance(strategy, Strategy)
    have = {
        c
        for c in (Releasing, Describing, Counting, SlotAware, Enumerated)
        if isinstance(strategy, c)
    }
    assert have == CAPABILITIES[name]
    if isinstance(strategy, Describing):
        json.dumps(strategy.metadata())


@pytest.mark.parametrize("name", MAKERS)
def test_every_strategy_pickles_and_goes_on_asking_the_same_jobs(name):
    strategy = MAKERS[name]()
    in_flight: list[Job] = []
    drive(strategy, in_flight, rounds=7)
    copy = pickle.loads(pickle.dumps(strategy))
    assert drive(copy, list(in_flight)) == drive(strategy, list(in_flight))
    assert copy.done and strategy.done
    # And a fresh one, pickled before its first ask, runs like one that never was.
    assert drive(pickle.loads(pickle.dumps(MAKERS[name]())), []) == drive(MAKERS[name](), [])


@pytest.mark.parametrize("name", MAKERS)
def test_signature_is_deterministic_and_does_not_change_while_the_search_runs(name):
    strategy = MAKERS[name]()
    token = tokenize(strategy.signature())
    assert tokenize(MAKERS[name]().signature()) == token
    drive(strategy, [], rounds=5)
    assert tokenize(strategy.signature()) == token
    assert tokenize(pickle.loads(pickle.dumps(strategy)).signature()) == token


@pytest.mark.parametrize(
    "a, b",
    [
        (lambda: RandomStrategy(SPACE, 8, random_state=0), lambda: RandomStrategy(SPACE, 8, 1)),
        (lambda: GridStrategy({"a": [1, 2]}), lambda: GridStrategy({"a": [1, 3]})),
        (
            lambda: GridStrategy({"m": [DecisionTreeClassifier(max_depth=2)]}),
            lambda: GridStrategy({"m": [DecisionTreeClassifier(max_depth=3)]}),
        ),
        (
            lambda: Hyperband(RandomSource(SPACE, 1), 9),
            lambda: Hyperband(RandomSource(SPACE, 2), 9),
        ),
        (
            lambda: Hyperband(RandomSource(SPACE, 1), 9),
            lambda: Hyperband(RandomSource(SPACE, 1), 27),
        ),
        (
            lambda: SuccessiveHalving(RandomSource(SPACE, 1), 9, 1, 9),
            lambda: SuccessiveHalving(RandomSource(SPACE, 1), 9, 1, 9, reduction_factor=2),
        ),
        (lambda: ASHA(RandomSource(SPACE, 1), 12, 9), lambda: ASHA(RandomSource(SPACE, 1), 13, 9)),
        (
            lambda: Incremental(RandomSource(SPACE, 1), 5, 6, patience=2),
            lambda: Incremental(RandomSource(SPACE, 1), 5, 6, patience=3),
        ),
        (lambda: BOHB(BOX, 9, random_state=0), lambda: BOHB(BOX, 9, random_state=1)),
        (
            lambda: BOHB(BOX, 9, random_state=0),
            lambda: BOHB(BOX, 9, random_state=0, random_fraction=0.5),
        ),
        (
            lambda: BayesStrategy(BOX, 5, random_state=0),
            lambda: BayesStrategy(BOX, 6, random_state=0),
        ),
    ],
)
def test_signature_tells_other_searches_apart(a, b):
    assert tokenize(a().signature()) != tokenize(b().signature())


def test_candidate_list_signature_sees_estimator_parameters_in_any_key_order():
    one = GridStrategy([{"m": [DecisionTreeClassifier(max_depth=2)], "k": [1]}])
    two = GridStrategy([{"k": [1], "m": [DecisionTreeClassifier(max_depth=2)]}])
    assert tokenize(one.signature()) == tokenize(two.signature())


def _stored(job: Job) -> dict:
    return json.loads(json.dumps(result_to_json(result(job))))


@pytest.mark.parametrize("name", ["grid", "random", "halving", "hyperband", "asha", "incremental"])
def test_restore_gives_the_strategys_own_params_and_none_for_other_trials(name):
    strategy = MAKERS[name]()
    jobs = strategy.ask(4)
    for job in jobs:
        assert strategy.restore(job.trial_id, _stored(job)["params"]) is job.params
    assert strategy.restore(-1, {}) is None
    assert strategy.restore(10_000, {}) is None
    # A fresh strategy maps the stored trials back the same way (this is how a search resumes).
    fresh = MAKERS[name]()
    for job in jobs:
        record = _stored(job)
        restored = result_from_json(record, fresh.restore(job.trial_id, record["params"]))
        assert key(restored.job) == key(job)
        fresh.tell(restored)


def test_restore_of_a_grid_keeps_the_estimator_objects():
    tree = DecisionTreeClassifier(max_depth=3)
    grid = GridStrategy({"m": [tree, LogisticRegression()]})
    assert grid.restore(0, {"m": {"__repr__": repr(tree)}})["m"] is tree


def test_hyperband_over_a_list_restores_every_bracket_up_front():
    candidates = [{"a": i / 20, "b": "x"} for i in range(20)]
    hb = Hyperband(ListSource(candidates), 9)
    n = sum(rows[0][0] for rows in hb.bracket_table().values())
    assert [hb.restore(t, {}) for t in range(n)] == candidates[:n]
    assert hb.restore(n, {}) is None


def test_bohb_restores_stored_params_for_brackets_not_open_yet():
    model = LogisticRegression()
    bohb = BOHB({"a": Float(0.0, 1.0), "m": [model, None]}, 9, random_state=0)
    n = sum(rows[0][0] for rows in bohb.bracket_table().values())
    tid = n - 1  # a trial of the last bracket, which opens last
    restored = bohb.restore(tid, {"a": 0.25, "m": {"__repr__": "LogisticRegression()"}})
    assert restored == {"a": 0.25, "m": model} and restored["m"] is model
    assert bohb.restore(tid, {"a": 0.99, "m": None}) is restored  # restored once, then its own
    assert bohb.restore(n, {}) is None and bohb.restore(-1, {}) is None
    # Its bracket keeps the stored candidate when it opens; every other trial draws one.
    jobs = []
    while not bohb.done:
        new = bohb.ask(100)
        jobs += new
        for job in new:
            s = -abs(float(job.params["a"]) - 0.3) - 1 / (1 + job.budget)
            bohb.tell(Result(job, Status.COMPLETE, s, {"score": (s,)}, None, (0.0,), (0.0,)))
    mine = [j for j in jobs if j.trial_id == tid]
    assert mine and all(j.params is restored for j in mine)
    assert bohb.n_model_based + bohb.n_random == n - 1
