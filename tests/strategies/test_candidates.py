"""Grid and random strategies, fed by hand: no cluster."""

from __future__ import annotations

import math

import pytest
import scipy.stats as st
from hypothesis import given, settings
from hypothesis import strategies as hs
from sklearn.model_selection import ParameterGrid, ParameterSampler

from daskhpo import Categorical, Float, Int
from daskhpo.strategies import GridStrategy, RandomStrategy, Result, Status


def _result(job, score=0.5, status=Status.COMPLETE):
    return Result(job, status, score, {"score": (score,)}, None, (0.0,), (0.0,))


def test_grid_order_matches_parameter_grid():
    grid = [{"a": [1, 2], "b": ["x", "y"]}, {"c": [None, 3]}]
    strategy = GridStrategy(grid)
    assert list(strategy.candidates) == list(ParameterGrid(grid))
    assert strategy.n_planned == 6


def test_random_candidates_match_parameter_sampler():
    dists = {"C": st.loguniform(1e-3, 1e3), "k": st.randint(1, 9), "kind": ["a", "b"]}
    strategy = RandomStrategy(dists, n_iter=7, random_state=3)
    assert strategy.candidates == list(ParameterSampler(dists, 7, random_state=3))


def test_ask_in_pieces_then_done_only_when_all_told():
    strategy = GridStrategy({"a": list(range(5))})
    first = strategy.ask(2)
    rest = strategy.ask(10)
    assert [j.trial_id for j in first + rest] == [0, 1, 2, 3, 4]
    assert strategy.ask(3) == []
    for job in first + rest[:-1]:
        strategy.tell(_result(job))
    assert not strategy.done
    strategy.tell(_result(rest[-1], math.nan, Status.FAILED))
    assert strategy.done


def test_replayed_results_are_not_asked_again():
    strategy = GridStrategy({"a": list(range(4))})
    jobs = strategy.ask(4)
    fresh = GridStrategy({"a": list(range(4))})
    for job in jobs[:2]:
        fresh.tell(_result(job))
    assert [j.trial_id for j in fresh.ask(10)] == [2, 3]


def test_tell_for_an_unknown_trial_is_refused():
    strategy = GridStrategy({"a": [1]})
    (job,) = strategy.ask(1)
    with pytest.raises(ValueError, match="unknown trial"):
        strategy.tell(_result(type(job)(trial_id=7, params={})))


@settings(max_examples=60, deadline=None)
@given(
    low=hs.floats(1e-6, 10.0),
    span=hs.floats(1e-3, 1e3),
    ilow=hs.integers(-50, 50),
    ispan=hs.integers(0, 100),
    seed=hs.integers(0, 2**31 - 1),
    log=hs.booleans(),
)
def test_dimensions_stay_inside_their_bounds_and_reproduce(low, span, ilow, ispan, seed, log):
    dists = {
        "f": Float(low, low + span, log=log),
        "i": Int(ilow, ilow + ispan),
        "c": Categorical(["a", "b", "c"]),
    }
    a = RandomStrategy(dists, n_iter=5, random_state=seed).candidates
    b = RandomStrategy(dists, n_iter=5, random_state=seed).candidates
    assert a == b
    for cand in a:
        assert low <= cand["f"] <= low + span
        assert ilow <= cand["i"] <= ilow + ispan and isinstance(cand["i"], int)
        assert cand["c"] in {"a", "b", "c"}


def test_int_log_scale_and_grid_listing():
    values = [Int(1, 1000, log=True).rvs(random_state=s) for s in range(200)]
    assert min(values) >= 1 and max(values) <= 1000
    assert sum(v < 32 for v in values) > 60  # log-uniform puts half the mass below sqrt(1000)
    assert GridStrategy({"k": Int(2, 4), "c": Categorical("ab")}).candidates == [
        {"c": c, "k": k} for c in "ab" for k in (2, 3, 4)
    ]


def test_dimensions_round_trip_through_json():
    from daskhpo.space import dimension_from_json

    for dim in (Float(0.1, 2.0, log=True), Int(1, 9), Categorical(["x", 1, None])):
        assert dimension_from_json(dim.to_json()) == dim
