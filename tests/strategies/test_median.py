"""Median stopping driven by hand: results are fed to the strategy directly, no cluster."""

from __future__ import annotations

import json
import math
import pickle
import random
import statistics
import zlib
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import uniform

from daskhpo.exceptions import InvalidSearchError, InvalidSearchTypeError
from daskhpo.strategies import Job, ListSource, RandomSource, Result, Status, Strategy
from daskhpo.strategies.median import MedianStopping

FAST = settings(max_examples=40, deadline=None)


def _result(job: Job, score: float, *, failed: bool = False) -> Result:
    value = math.nan if failed else score
    return Result(
        job,
        Status.FAILED if failed else Status.COMPLETE,
        value,
        {"score": (value,)},
        None,
        (0.01,),
        (0.001,),
        ("ValueError: boom",) if failed else (None,),
    )


def _source(n: int) -> ListSource:
    return ListSource([{"q": i} for i in range(n)])


def feed(strategy: MedianStopping, scores: dict[int, Sequence[float]]) -> list[Job]:
    """Run one trial at a time, in trial-id order, telling ``scores[trial][rung]``; returns the jobs."""
    jobs: list[Job] = []
    while True:
        asked = strategy.ask(1)
        if not asked:
            return jobs
        (job,) = asked
        jobs.append(job)
        strategy.tell(_result(job, scores[job.trial_id][job.rung]))


def jobs_of(jobs: list[Job], trial: int) -> list[Job]:
    return [j for j in jobs if j.trial_id == trial]


# -- schedule ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "budgets"),
    [
        ({"max_budget": 4, "step": 1}, [1, 2, 3, 4]),
        ({"max_budget": 10, "min_budget": 2, "step": 3}, [2, 5, 8, 10]),
        ({"max_budget": 9, "min_budget": 3}, [3, 6, 9]),
        ({"max_budget": 5, "min_budget": 5}, [5]),
        ({"max_budget": 1.0, "min_budget": 0.25}, [0.25, 0.5, 0.75, 1.0]),
        ({"max_budget": 1, "min_budget": 0.4, "step": 0.4}, [0.4, 0.8, 1.0]),
    ],
)
def test_budgets_step_from_min_budget_up_to_max_budget(
    kwargs: dict[str, Any], budgets: list[Any]
) -> None:
    s = MedianStopping(_source(2), 2, **kwargs)
    assert s.budgets == budgets
    integral = all(isinstance(v, int) for v in kwargs.values())  # min_budget=1 and step by default
    assert all(type(b) is (int if integral else float) for b in s.budgets)


def test_first_ask_starts_new_trials_at_min_budget() -> None:
    s = MedianStopping(_source(3), 3, max_budget=6, min_budget=2, step=2)
    jobs = s.ask(5)
    assert [(j.trial_id, j.params, j.budget, j.rung, j.bracket) for j in jobs] == [
        (t, {"q": t}, 2, 0, 0) for t in range(3)
    ]
    assert s.ask(5) == []  # every trial is running: wait for results
    assert not s.done
    assert isinstance(s, Strategy)


# -- the rule ---------------------------------------------------------------------------------------


def test_trial_below_the_median_is_stopped_at_that_budget_and_never_asked_again() -> None:
    s = MedianStopping(_source(5), 5, max_budget=4, step=1)
    good = [1.0, 1.1, 1.2, 1.3]
    scores = {0: good, 1: good, 2: good, 3: good, 4: [1.0, 0.2, 0.9, 0.9]}
    jobs = feed(s, scores)
    # Step 0: 1.0 is not below the median 1.0 of the others; step 1: best 1.0 < median 1.05.
    assert [j.budget for j in jobs_of(jobs, 4)] == [1, 2]
    assert s.stopped[4] == "median"
    assert 4 in s.finished_trials()
    assert s.done and s.ask(10) == []
    meta = s.metadata()
    assert meta["stopped_early"] == [{"trial_id": 4, "budget": 2, "rung": 1, "reason": "median"}]
    assert meta["completed"] == [0, 1, 2, 3]
    assert meta["budget_spent"] == 4 * 4 + 2
    assert s.stats["trials_stopped_early"] == 1
    assert s.stats["trials_completed"] == 4
    json.dumps(meta)
    json.dumps(s.stats)


def test_trial_above_the_median_goes_on_to_max_budget() -> None:
    s = MedianStopping(_source(5), 5, max_budget=4, step=1)
    scores = {t: [0.5, 0.5, 0.5, 0.5] for t in range(4)}
    scores[4] = [0.6, 0.7, 0.8, 0.9]
    jobs = feed(s, scores)
    assert [j.budget for j in jobs_of(jobs, 4)] == [1, 2, 3, 4]
    assert s.stopped == dict.fromkeys(range(5), "max_budget")
    assert s.metadata()["stopped_early"] == []


def test_best_score_so_far_is_compared_with_the_others_running_averages() -> None:
    # The others score 0.7 at every step; trial 3 drops to 0.3 at step 1. Its best (0.9) is above
    # the median running average (0.7), so it goes on although its last score and its own mean (0.6)
    # are below 0.7.
    s = MedianStopping(_source(4), 4, max_budget=3, step=1)
    scores = {0: [0.7] * 3, 1: [0.7] * 3, 2: [0.7] * 3, 3: [0.9, 0.3, 0.3]}
    feed(s, scores)
    assert s.stopped[3] == "max_budget"
    # Running averages, not last scores: the others score 0.0 then 1.0 (mean 0.5 at step 1), so a
    # best of 0.6 goes on, where comparing with their last score (1.0) would stop it.
    s = MedianStopping(_source(4), 4, max_budget=2, step=1)
    scores = {0: [0.0, 1.0], 1: [0.0, 1.0], 2: [0.0, 1.0], 3: [0.0, 0.6]}
    feed(s, scores)
    assert s.stopped[3] == "max_budget"
    # ... and a best of 0.4 is below the median running average 0.5: stopped at step 1.
    s = MedianStopping(_source(4), 4, max_budget=3, step=1)
    scores = {0: [0.0, 1.0, 1.0], 1: [0.0, 1.0, 1.0], 2: [0.0, 1.0, 1.0], 3: [0.0, 0.4, 1.0]}
    feed(s, scores)
    assert s.stopped[3] == "median"
    assert s.metadata()["stopped_early"][0]["budget"] == 2


def test_with_fewer_than_min_trials_others_nothing_is_stopped() -> None:
    s = MedianStopping(_source(3), 3, max_budget=3, step=1)  # min_trials=3: at most 2 others
    feed(s, {0: [1.0] * 3, 1: [1.0] * 3, 2: [0.0] * 3})
    assert s.stopped == dict.fromkeys(range(3), "max_budget")
    assert s.stats["median_checks"] == 0
    s = MedianStopping(_source(3), 3, max_budget=3, step=1, min_trials=2)
    feed(s, {0: [1.0] * 3, 1: [1.0] * 3, 2: [0.0] * 3})
    assert s.stopped[2] == "median"


def test_only_others_that_reached_the_budget_count() -> None:
    s = MedianStopping(_source(4), 4, max_budget=3, step=1)
    for job in s.ask(3):  # trials 0, 1, 2 at step 0
        s.tell(_result(job, 1.0))
    for rung in (1, 2):
        (job,) = s.ask(1)
        assert (job.trial_id, job.rung) == (0, rung)  # continued trials come before new ones
        s.tell(_result(job, 1.0))
    (job,) = s.ask(1)
    assert (job.trial_id, job.rung) == (1, 1)
    s.tell(_result(job, 1.0))
    jobs = s.ask(3)
    assert [(j.trial_id, j.rung) for j in jobs] == [(1, 2), (2, 1), (3, 0)]
    s.tell(_result(jobs[2], 1.0))  # three others at step 0, median 1.0: goes on
    (job,) = s.ask(1)
    assert (job.trial_id, job.rung) == (3, 1)
    s.tell(_result(job, 0.0))  # at step 1 only trials 0 and 1 have reported so far
    assert 3 not in s.stopped
    s.tell(_result(jobs[1], 1.0))  # trial 2 at step 1: judged against trials 0, 1 and 3
    assert 2 not in s.stopped


def test_grace_budget_protects_the_first_budgets() -> None:
    scores = {t: [1.0, 1.0, 1.0, 1.0] for t in range(3)}
    scores[3] = [0.0, 0.0, 0.0, 0.0]
    s = MedianStopping(_source(4), 4, max_budget=4, step=1, grace_budget=3)
    jobs = feed(s, scores)
    assert [j.budget for j in jobs_of(jobs, 3)] == [1, 2, 3]
    assert s.metadata()["stopped_early"] == [
        {"trial_id": 3, "budget": 3, "rung": 2, "reason": "median"}
    ]


@pytest.mark.parametrize("how", ["status", "nan"])
def test_failed_results_stop_the_trial(how: str) -> None:
    s = MedianStopping(_source(2), 2, max_budget=4, step=1)
    a, b = s.ask(2)
    s.tell(_result(a, 0.5))
    if how == "status":
        s.tell(_result(b, 0.0, failed=True))
    else:
        s.tell(Result(b, Status.COMPLETE, math.nan, {"score": (math.nan,)}, None, (0.1,), (0.1,)))
    assert s.stopped[b.trial_id] == "failed"
    assert b.trial_id in s.finished_trials()
    rest = feed(s, {0: [0.5] * 4})
    assert {j.trial_id for j in rest} == {0}
    assert s.done
    meta = s.metadata()
    assert meta["stopped_early"] == [{"trial_id": 1, "budget": 1, "rung": 0, "reason": "failed"}]
    assert meta["brackets"][0]["failed_trials"] == [1, 0, 0, 0]
    assert meta["budget_spent"] == 4 + 1
    assert s.stats["trials_failed"] == 1


def test_results_told_twice_count_once_and_inconsistent_ones_raise() -> None:
    s = MedianStopping(_source(2), 2, max_budget=3, step=1)
    a, b = s.ask(2)
    s.tell(_result(a, 0.5))
    s.tell(_result(a, 0.1))
    assert s.stats["evaluations"] == 1
    with pytest.raises(ValueError, match="unknown trial 7"):
        s.tell(_result(Job(7, {"q": 7}, 1, 0), 0.5))
    with pytest.raises(ValueError, match="rungs 0..2"):
        s.tell(_result(Job(1, {"q": 1}, 9, 5), 0.5))
    with pytest.raises(ValueError, match="before its rung 0"):
        s.tell(_result(Job(1, {"q": 1}, 3, 2), 0.5))
    s.tell(_result(b, 0.0, failed=True))
    with pytest.raises(ValueError, match="stopped at rung 0"):
        s.tell(_result(Job(1, {"q": 1}, 2, 1), 0.5))


# -- properties -------------------------------------------------------------------------------------


def _score(seed: int) -> Callable[[Job], float]:
    """Deterministic scores: a per-trial level that improves a little with the budget, plus noise."""

    def score(job: Job) -> float:
        level = zlib.crc32(f"{seed}-{job.trial_id}".encode()) % 1000 / 1000
        noise = zlib.crc32(f"{seed}-{job.trial_id}-{job.rung}".encode()) % 100 / 1000
        return level + 0.01 * job.rung + noise

    return score


def simulate(
    s: MedianStopping,
    workers: int,
    order_seed: int,
    score: Callable[[Job], float],
    fail_percent: int = 0,
    stop_after: int | None = None,
) -> tuple[list[Result], list[Job]]:
    """Keep ``workers`` jobs in flight, finish them in a random order; check the budget rules."""
    rng = random.Random(order_seed)
    told: list[Result] = []
    in_flight: list[Job] = []
    last: dict[int, Job] = {}
    integral = all(isinstance(v, int) for v in (s.min_budget, s.step, s.max_budget))
    while True:
        new = s.ask(workers - len(in_flight))
        assert len(new) <= workers - len(in_flight)
        finished = set(s.finished_trials())
        busy = {j.trial_id for j in in_flight}
        for job in new:
            assert job.trial_id not in finished, "a finished trial was asked again"
            assert job.trial_id not in busy, "a running trial was asked again"
            assert job.budget is not None and 0 < job.budget <= s.max_budget
            assert job.budget == s.budgets[job.rung] and job.bracket == 0
            assert type(job.budget) is (int if integral else float)
            prev = last.get(job.trial_id)
            if prev is None:
                assert job.rung == 0 and job.budget == s.budgets[0]
            else:
                assert job.rung == prev.rung + 1 and job.budget > prev.budget
            last[job.trial_id] = job
            busy.add(job.trial_id)
        in_flight += new
        if not in_flight:
            assert s.done and s.ask(workers) == []
            assert s.finished_trials() == list(range(s.n_candidates))
            return told, in_flight
        assert not s.done
        job = in_flight.pop(rng.randrange(len(in_flight)))
        failed = zlib.crc32(f"f-{job.trial_id}-{job.rung}".encode()) % 100 < fail_percent
        res = _result(job, score(job), failed=failed)
        s.tell(res)
        told.append(res)
        if stop_after is not None and len(told) >= stop_after:
            return told, in_flight


def check_decisions(s: MedianStopping, told: list[Result]) -> None:
    """Every stop and every continuation follows the rule, given what was told before it."""
    scores: dict[int, list[float]] = {}
    averages: list[dict[int, float]] = [{} for _ in s.budgets]
    expected: dict[int, str] = {}
    for res in told:
        tid, k = res.trial_id, res.job.rung
        if res.failed or math.isnan(res.score):
            expected[tid] = "failed"
            continue
        scores.setdefault(tid, []).append(res.score)
        averages[k][tid] = sum(scores[tid]) / len(scores[tid])
        others = [v for t, v in averages[k].items() if t != tid]
        if k == len(s.budgets) - 1:
            expected[tid] = "max_budget"
        elif (
            s.budgets[k] >= s.grace_budget
            and len(others) >= s.min_trials
            and max(scores[tid]) < statistics.median(others)
        ):
            expected[tid] = "median"
    assert s.stopped == expected


@FAST
@given(
    integral=st.booleans(),
    min_budget=st.integers(1, 4),
    step=st.integers(1, 4),
    n_steps=st.integers(0, 5),
    n_candidates=st.integers(1, 14),
    workers=st.integers(1, 5),
    min_trials=st.integers(1, 4),
    grace_steps=st.integers(0, 3),
    fail_percent=st.sampled_from([0, 0, 15]),
    seed=st.integers(0, 10_000),
)
def test_budgets_never_exceed_max_and_never_decrease(
    integral: bool,
    min_budget: int,
    step: int,
    n_steps: int,
    n_candidates: int,
    workers: int,
    min_trials: int,
    grace_steps: int,
    fail_percent: int,
    seed: int,
) -> None:
    scale: Any = 1 if integral else 0.5
    lo, inc = min_budget * scale, step * scale
    hi = lo + n_steps * inc - (1 if integral and n_steps and step > 1 else 0)
    grace = min(lo + grace_steps * inc, hi)
    s = MedianStopping(
        RandomSource({"a": uniform(0, 1)}, seed),
        n_candidates,
        max_budget=hi,
        min_budget=lo,
        step=inc,
        grace_budget=grace,
        min_trials=min_trials,
    )
    told, _ = simulate(s, workers, seed, _score(seed), fail_percent)
    check_decisions(s, told)
    meta = s.metadata()
    json.dumps(meta)
    assert meta["budget_spent"] == s.stats["budget_spent"] <= n_candidates * hi
    assert len(meta["stopped_early"]) + len(meta["completed"]) == n_candidates
    assert s.stats["evaluations"] == len(told)


@FAST
@given(
    n_candidates=st.integers(1, 12),
    workers=st.integers(1, 4),
    seed=st.integers(0, 10_000),
    fraction=st.floats(0, 1),
)
def test_replaying_the_same_results_gives_the_same_state(
    n_candidates: int, workers: int, seed: int, fraction: float
) -> None:
    def make() -> MedianStopping:
        return MedianStopping(
            RandomSource({"a": uniform(0, 1)}, seed), n_candidates, max_budget=5, min_trials=2
        )

    s = make()
    full, _ = simulate(s, workers, seed, _score(seed), fail_percent=10)
    fresh = make()
    for res in full:
        fresh.tell(res)
    assert fresh.done and fresh.ask(workers) == []
    assert fresh.stopped == s.stopped
    assert fresh.metadata() == s.metadata()
    assert fresh.stats == s.stats
    assert fresh.signature() == s.signature()

    # Stopped part way: the fresh strategy knows the same and asks again what was still running.
    s = make()
    told, in_flight = simulate(
        s, workers, seed, _score(seed), fail_percent=10, stop_after=int(fraction * len(full))
    )
    fresh = make()
    for res in told:
        fresh.tell(res)
    assert fresh.stopped == s.stopped
    assert fresh.finished_trials() == s.finished_trials()
    keys = {(j.trial_id, j.rung, j.budget) for j in fresh.ask(n_candidates)}
    assert {(j.trial_id, j.rung, j.budget) for j in in_flight} <= keys


def test_pickle_round_trip_goes_on_the_same_way() -> None:
    s = MedianStopping(RandomSource({"a": uniform(0, 1), "b": [1, 2]}, 0), 8, max_budget=4)
    told, in_flight = simulate(s, 3, 1, _score(1), stop_after=9)
    copy = pickle.loads(pickle.dumps(s))
    assert copy.metadata() == s.metadata()
    assert copy.signature() == s.signature()
    for strategy in (s, copy):
        for job in in_flight:
            strategy.tell(_result(job, _score(1)(job)))
    assert copy.ask(3) == s.ask(3)
    assert copy.stats == s.stats


# -- sources, restore, signature ---------------------------------------------------------------------


class Told(ListSource):
    """A list source that records what it was told and how it was drawn from."""

    def __init__(self, n: int) -> None:
        super().__init__([{"q": i} for i in range(n)])
        self.draws: list[int] = []
        self.told: list[tuple[int, int]] = []

    def sample(self, n: int, trial_ids: Any = None) -> list[dict[str, Any]]:
        self.draws.append(n)
        return super().sample(n)

    def tell(self, result: Result) -> None:
        self.told.append((result.trial_id, result.job.rung))


def test_the_source_is_drawn_from_once_and_told_every_new_result() -> None:
    src = Told(4)
    s = MedianStopping(src, 4, max_budget=2, step=1, min_trials=1)
    assert src.draws == [4]
    a, b = s.ask(2)
    s.tell(_result(a, 1.0))
    s.tell(_result(a, 1.0))  # told twice: passed on once
    s.tell(_result(b, 0.0))  # below trial 0: stopped
    assert src.told == [(0, 0), (1, 0)]
    copy = pickle.loads(pickle.dumps(s))
    assert copy.metadata() == s.metadata() and copy._source.told == src.told
    feed(s, {t: [1.0, 1.0] for t in range(4)})
    assert src.draws == [4] and len(src.told) == s.stats["evaluations"]


def test_a_source_without_tell_is_not_kept() -> None:
    class Plain:
        distinct_left = None

        def sample(self, n: int) -> list[dict[str, Any]]:
            return [{"q": i} for i in range(n)]

    s = MedianStopping(Plain(), 3, max_budget=2)
    assert pickle.loads(pickle.dumps(s)).signature() == s.signature()
    feed(s, {t: [1.0, 1.0] for t in range(3)})
    assert s.done


def test_restore_returns_own_params_or_none() -> None:
    s = MedianStopping(RandomSource({"a": uniform(0, 1), "b": ["x", "y"]}, 3), 4, max_budget=3)
    (job,) = s.ask(1)
    own = job.params
    stored = json.loads(json.dumps({"a": float(own["a"]), "b": str(own["b"])}))
    assert s.restore(0, stored) is own
    assert s.restore(0, {**stored, "b": "z"}) is None
    assert s.restore(0, {"a": stored["a"]}) is None
    assert s.restore(4, stored) is None
    assert s.restore(-1, stored) is None
    nan = MedianStopping(ListSource([{"m": math.nan, "k": None}]), 1, max_budget=2)
    assert nan.restore(0, json.loads(json.dumps({"m": math.nan, "k": None}))) is not None
    other = MedianStopping(RandomSource({"a": uniform(0, 1), "b": ["x", "y"]}, 3), 4, max_budget=3)
    assert other.restore(0, stored) == own  # same seed: same candidates, before any ask


def test_signature_is_deterministic_and_says_what_runs() -> None:
    def make(seed: int, **kwargs: Any) -> MedianStopping:
        return MedianStopping(RandomSource({"a": uniform(0, 1)}, seed), 3, max_budget=4, **kwargs)

    assert make(0).signature() == make(0).signature()
    assert pickle.loads(pickle.dumps(make(0))).signature() == make(0).signature()
    assert make(0).signature() != make(1).signature()
    assert make(0).signature() != make(0, min_trials=2).signature()
    assert make(0).signature() != make(0, grace_budget=2).signature()
    assert make(0).signature() != make(0, step=2).signature()


def test_candidates_are_capped_to_the_distinct_ones() -> None:
    with pytest.warns(UserWarning, match="2 distinct candidates, fewer than n_candidates=5"):
        s = MedianStopping(RandomSource({"b": ["x", "y"]}, 0), 5, max_budget=2)
    assert s.n_candidates == 2


# -- arguments --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_candidates": 0}, r"n_candidates=0: use an integer >= 1"),
        ({"n_candidates": 2.5}, r"n_candidates=2.5: use an integer"),
        ({"max_budget": 0}, r"max_budget=0: use a positive"),
        ({"max_budget": math.inf}, r"max_budget=inf: use a positive, finite"),
        ({"min_budget": 5, "max_budget": 4}, r"min_budget=5 is larger than max_budget=4"),
        ({"step": 0}, r"step=0: use a positive"),
        ({"step": -1.0}, r"step=-1.0: use a positive"),
        ({"grace_budget": 9}, r"grace_budget=9 is above max_budget=4.*lower grace_budget"),
        ({"grace_budget": 0}, r"grace_budget=0: use a positive"),
        ({"min_trials": 0}, r"min_trials=0: use an integer >= 1"),
        ({"min_trials": True}, r"min_trials=True: use an integer"),
    ],
)
def test_bad_arguments_name_the_parameter_and_the_fix(kwargs: dict[str, Any], match: str) -> None:
    args: dict[str, Any] = {"n_candidates": 3, "max_budget": 4, **kwargs}
    with pytest.raises(InvalidSearchError, match=match):
        MedianStopping(_source(3), **args)


def test_a_source_must_be_a_candidate_source() -> None:
    with pytest.raises(InvalidSearchTypeError, match=r"source=\[.*RandomSource"):
        MedianStopping([{"q": 1}], 1, max_budget=2)  # type: ignore[arg-type]
