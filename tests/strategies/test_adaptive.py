"""Adaptive strategies (successive halving, Hyperband, ASHA, incremental) driven by hand: no cluster.

A small simulator plays the executor: it keeps ``workers`` jobs in flight, finishes them in a random
order, scores them with a deterministic objective and checks the budget rules on every job it is given.
"""

from __future__ import annotations

import json
import math
import random
import warnings
import zlib
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import loguniform, uniform
from sklearn.experimental import enable_halving_search_cv  # noqa: F401
from sklearn.linear_model import Ridge
from sklearn.model_selection import HalvingRandomSearchCV, KFold, ParameterSampler

from daskhpo.exceptions import InvalidSearchError
from daskhpo.strategies import (
    ASHA,
    Hyperband,
    Incremental,
    Job,
    ListSource,
    RandomSource,
    Result,
    Status,
    Strategy,
    SuccessiveHalving,
)

SPACE = {"a": uniform(0, 1), "b": ["x", "y", "z"]}
FAST = settings(max_examples=25, deadline=None)


def _result(job: Job, score: float, failed: bool = False) -> Result:
    return Result(
        job,
        Status.FAILED if failed else Status.COMPLETE,
        math.nan if failed else score,
        {"score": (math.nan if failed else score,)},
        None,
        (0.01,),
        (0.001,),
        ("ValueError: boom",) if failed else (None,),
    )


def objective(job: Job) -> float:
    """Deterministic; the ranking changes with the budget so promotions are not trivial."""
    a = float(job.params["a"])
    return (
        -abs(a - 0.4 - 0.3 / float(job.budget or 1))
        + {"x": 0.0, "y": 0.01, "z": 0.02}[job.params["b"]]
    )


def failing(percent: int, seed: int = 0) -> Callable[[Job], bool]:
    """A job fails when a hash of (seed, trial, rung) says so: the same jobs fail in every run."""
    return lambda job: zlib.crc32(f"{seed}-{job.trial_id}-{job.rung}".encode()) % 100 < percent


class Run:
    """What a simulated search asked and was told, with the invariants checked along the way."""

    def __init__(self) -> None:
        self.asked: list[Job] = []
        self.told: list[Result] = []
        self.in_flight: list[Job] = []
        self.asks: list[tuple[int, list[Job]]] = []  # (requested, returned)


def simulate(
    strategy: Strategy,
    workers: int,
    order_seed: int = 0,
    *,
    max_budget: float,
    fails: Callable[[Job], bool] = lambda job: False,
    score: Callable[[Job], float] = objective,
    stop_after: int | None = None,
    on_ask: Callable[[list[Job]], None] | None = None,
    replayed: Sequence[Result] = (),
) -> Run:
    rng = random.Random(order_seed)
    run = Run()
    last: dict[int, Result] = {}
    for res in replayed:
        last[res.trial_id] = res
    while True:
        room = workers - len(run.in_flight)
        new = strategy.ask(room) if room else []
        run.asks.append((room, new))
        assert len(new) <= room
        busy = {j.trial_id for j in run.in_flight}
        finished = set(strategy.finished_trials())
        for job in new:
            assert job.trial_id not in finished, "a trial said to be finished was asked again"
            assert job.budget is not None and 0 < job.budget <= max_budget
            assert job.trial_id not in busy, "a trial was asked again before it was told"
            prev = last.get(job.trial_id)
            if prev is not None:
                assert not prev.failed, "a failed trial was asked again"
                assert job.budget >= prev.job.budget
                assert job.rung > prev.job.rung
            busy.add(job.trial_id)
        if on_ask is not None:
            on_ask(new)
        run.in_flight += new
        run.asked += new
        if not run.in_flight:
            assert strategy.done
            assert strategy.ask(workers) == []
            # Every trial ends finished, so the executor can release every model.
            assert set(strategy.finished_trials()) == {j.trial_id for j in run.asked} | {
                r.trial_id for r in replayed
            }
            return run
        assert not strategy.done
        job = run.in_flight.pop(rng.randrange(len(run.in_flight)))
        res = _result(job, score(job), fails(job))
        strategy.tell(res)
        last[job.trial_id] = res
        run.told.append(res)
        if stop_after is not None and len(run.told) >= stop_after:
            return run


def job_keys(jobs: list[Job]) -> set[tuple]:
    return {(j.trial_id, j.rung, j.bracket, j.budget, repr(sorted(j.params.items()))) for j in jobs}


def by_rung(jobs: list[Job]) -> dict[tuple[int, int], list[int]]:
    out: dict[tuple[int, int], list[int]] = defaultdict(list)
    for j in jobs:
        out[(j.bracket, j.rung)].append(j.trial_id)
    return out


# -- candidate sources ------------------------------------------------------------------------------


@given(groups=st.lists(st.integers(1, 7), min_size=1, max_size=6), seed=st.integers(0, 2**31 - 1))
@FAST
def test_random_source_draws_do_not_depend_on_grouping(groups, seed):
    space = [{"a": loguniform(1e-3, 1), "k": [1, 2, 3]}, {"c": uniform(0, 2)}]
    src = RandomSource(space, seed)
    drawn = [p for g in groups for p in src.sample(g)]
    assert drawn == list(ParameterSampler(space, sum(groups), random_state=seed))
    assert src.n_drawn == sum(groups) and src.distinct_left is None


def test_random_source_lists_only_walks_the_grid_without_replacement():
    space = {"a": list(range(10)), "b": ["p", "q", "r", "s", "t"]}  # 50 combinations
    for n in (2, 20, 49):  # ParameterSampler draws a permutation prefix for 1% < n/50 < 99%
        src = RandomSource(space, 7)
        assert src.sample(1) + src.sample(n - 1) == list(ParameterSampler(space, n, random_state=7))
    src = RandomSource(space, 7)
    first = src.sample(30) + src.sample(20)
    assert len({repr(sorted(p.items())) for p in first}) == 50
    assert src.distinct_left == 0
    assert len(src.sample(3)) == 3  # a new walk over the grid starts


def test_random_and_list_sources_ignore_what_they_are_told():
    told, untold = RandomSource(SPACE, 3), RandomSource(SPACE, 3)
    listed = ListSource([{"a": 0.5, "b": "x"}, {"a": 0.1, "b": "y"}])
    first = told.sample(2)
    assert first == untold.sample(2)
    for source in (told, listed):
        for i, params in enumerate(first):
            source.tell(_result(Job(i, params, 1), 10.0 * i))
    assert told.sample(5) == untold.sample(5)
    assert listed.sample(2) == [{"a": 0.5, "b": "x"}, {"a": 0.1, "b": "y"}]


def test_strategies_tell_their_source_every_new_result_once():
    class Recording(RandomSource):
        def __init__(self, *args):
            super().__init__(*args)
            self.told: list[tuple[int, int]] = []

        def tell(self, result):
            self.told.append((result.trial_id, result.job.rung))

    for make in (
        lambda src: SuccessiveHalving(src, 9, 1, 9),
        lambda src: Hyperband(src, 9),
        lambda src: ASHA(src, 9, 9),
        lambda src: Incremental(src, 4, 4),
    ):
        source = Recording(SPACE, 0)
        strategy = make(source)
        run = simulate(strategy, 3, max_budget=9)
        for res in run.told[:3]:
            strategy.tell(res)  # told again: not passed on
        assert source.told == [(r.trial_id, r.job.rung) for r in run.told]


def test_list_source_hands_out_in_order_and_raises_when_used_up():
    src = ListSource([{"a": 1}, {"a": 2}, {"a": 3}])
    assert len(src) == 3
    assert src.sample(2) == [{"a": 1}, {"a": 2}]
    with pytest.raises(InvalidSearchError, match="1 of its 3 candidates left"):
        src.sample(2)
    assert src.sample(1) == [{"a": 3}]


# -- Hyperband's table -----------------------------------------------------------------------------


def test_hyperband_bracket_table_equals_the_paper():
    """Li et al. 2018, Table 1: R=81, eta=3."""
    hb = Hyperband(RandomSource(SPACE, 0), max_budget=81, min_budget=1, reduction_factor=3)
    assert hb.bracket_table() == {
        4: [(81, 1), (27, 3), (9, 9), (3, 27), (1, 81)],
        3: [(34, 3), (11, 9), (3, 27), (1, 81)],
        2: [(15, 9), (5, 27), (1, 81)],
        1: [(8, 27), (2, 81)],
        0: [(5, 81)],
    }
    assert hb.n_planned == 206
    # Planned budget, continuing models: every rung pays only the increment over the previous one.
    assert hb.budget_planned == (
        81 * 1 + 27 * 2 + 9 * 6 + 3 * 18 + 54
        + 34 * 3 + 11 * 6 + 3 * 18 + 54
        + 15 * 9 + 5 * 18 + 54
        + 8 * 27 + 2 * 54
        + 5 * 81
    )  # fmt: skip


def test_hyperband_runs_the_table_and_numbers_trials_across_brackets():
    hb = Hyperband(RandomSource(SPACE, 0), max_budget=81)
    run = simulate(hb, 5, max_budget=81)
    counts = {k: len(v) for k, v in by_rung(run.asked).items()}
    for s, rungs in hb.bracket_table().items():
        for i, (n_i, _) in enumerate(rungs):
            assert counts[(s, i)] == n_i
    starts = sorted(j.trial_id for j in run.asked if j.rung == 0)
    assert starts == list(range(81 + 34 + 15 + 8 + 5)) and len(run.asked) == 206
    first_ask = list(dict.fromkeys(j.trial_id for j in run.asked))
    assert first_ask == starts  # trial ids number the trials in ask order
    assert {j.budget for j in run.asked if j.rung == j.bracket} == {81}
    assert all(type(j.budget) is int for j in run.asked)


def test_float_bounds_give_float_budgets_and_exact_powers():
    hb = Hyperband(RandomSource(SPACE, 0), max_budget=1.0, min_budget=0.1, reduction_factor=10)
    assert hb.bracket_table() == {1: [(10, 0.1), (1, 1.0)], 0: [(2, 1.0)]}
    run = simulate(hb, 3, max_budget=1.0)
    assert all(type(j.budget) is float for j in run.asked)


# -- successive halving ----------------------------------------------------------------------------

X_SMALL = np.random.RandomState(0).normal(size=(200, 3))
Y_SMALL = X_SMALL @ np.array([1.0, -2.0, 0.5]) + np.random.RandomState(1).normal(size=200)


@pytest.mark.parametrize(
    ("n_candidates", "lo", "hi", "factor"),
    [
        (12, 20, 200, 3),
        ("exhaust", 10, 200, 3),
        (30, 5, 200, 2),
        (7, 50, 200, 4),
        (100, 10, 90, 3),  # more candidates than rungs allow: the last rung keeps several
        (20, 8, 150, 2.5),
        (1, 10, 100, 3),
    ],
)
def test_successive_halving_follows_scikit_learn(n_candidates, lo, hi, factor):
    """Same schedule and, told scikit-learn's own scores, the same candidates at every rung."""
    space = {"alpha": loguniform(1e-3, 1e3)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = HalvingRandomSearchCV(
            Ridge(),
            space,
            n_candidates=n_candidates,
            resource="n_samples",
            min_resources=lo,
            max_resources=hi,
            factor=factor,
            cv=KFold(2),
            random_state=0,
            refit=False,
        ).fit(X_SMALL, Y_SMALL)
    res = theirs.cv_results_
    scores = {
        (repr(p), int(i)): float(s)
        for p, i, s in zip(res["params"], res["iter"], res["mean_test_score"], strict=True)
    }
    ours = SuccessiveHalving(RandomSource(space, 0), n_candidates, lo, hi, reduction_factor=factor)
    assert ours.n_required_iterations == theirs.n_required_iterations_
    assert ours.n_possible_iterations == theirs.n_possible_iterations_
    assert ours.n_iterations == theirs.n_iterations_
    run = simulate(
        ours, 3, max_budget=hi, score=lambda job: scores[(repr(dict(job.params)), job.rung)]
    )
    assert ours.n_resources == theirs.n_resources_
    assert ours.n_candidates == theirs.n_candidates_
    assert ours.n_planned == sum(theirs.n_candidates_)
    for itr in range(theirs.n_iterations_):
        theirs_at = [repr(p) for p, i in zip(res["params"], res["iter"], strict=True) if i == itr]
        ours_at = [repr(dict(j.params)) for j in run.asked if j.rung == itr]
        if itr == 0:
            assert ours_at == theirs_at  # same candidates, same order
        assert sorted(ours_at) == sorted(theirs_at)
        assert {j.budget for j in run.asked if j.rung == itr} == {theirs.n_resources_[itr]}


def test_successive_halving_has_a_barrier_and_breaks_ties_by_trial_id():
    sh = SuccessiveHalving(RandomSource(SPACE, 0), 9, 1, 9)
    first = sh.ask(100)
    assert [j.trial_id for j in first] == list(range(9)) and {j.budget for j in first} == {1}
    for job in first[:-1]:
        sh.tell(_result(job, 0.5))
        assert sh.ask(5) == [] and not sh.done  # rung 1 waits for the whole of rung 0
    sh.tell(_result(first[-1], 0.5))
    second = sh.ask(100)
    assert sorted(j.trial_id for j in second) == [0, 1, 2]  # all tied: lower ids win
    assert {(j.rung, j.budget) for j in second} == {(1, 3)}
    assert sh.n_candidates == [9, 3] and sh.n_resources == [1, 3]


def test_exhaust_uses_max_over_min_candidates():
    sh = SuccessiveHalving(RandomSource(SPACE, 0), "exhaust", 2, 54)
    assert sh.metadata()["brackets"][0]["planned_trials"] == [27, 9, 3, 1]
    assert sh.metadata()["brackets"][0]["budgets"] == [2, 6, 18, 54]


# -- properties of the synchronous strategies ------------------------------------------------------

sync_settings = st.one_of(
    st.tuples(
        st.just("sh"),
        st.integers(1, 40),  # n_candidates
        st.integers(1, 5),  # min_budget
        st.integers(1, 60),  # max_budget / min_budget
        st.sampled_from([2, 3, 4, 2.5]),
    ),
    st.tuples(
        st.just("hb"),
        st.just(0),
        st.integers(1, 3),
        st.integers(1, 30),
        st.sampled_from([2, 3, 4, 2.5]),
    ),
)


def make_sync(kind, n, lo, ratio, factor, seed=0):
    hi = lo * ratio
    if kind == "sh":
        return SuccessiveHalving(RandomSource(SPACE, seed), n, lo, hi, reduction_factor=factor), hi
    return Hyperband(RandomSource(SPACE, seed), hi, lo, reduction_factor=factor), hi


def check_halving(strategy, run: Run, fails) -> None:
    """Every rung holds exactly the best completed trials of the rung below, as many as planned."""
    told = {(r.job.bracket, r.job.rung, r.trial_id): r for r in run.told}
    rungs = by_rung(run.asked)
    brackets = strategy.metadata()["brackets"]
    for meta in brackets:
        b = meta["bracket"]
        for i in range(len(meta["budgets"]) - 1):
            below = [told[(b, i, t)] for t in rungs.get((b, i), [])]
            above = sorted(rungs.get((b, i + 1), []))
            if isinstance(strategy, SuccessiveHalving):
                n_keep = math.ceil(len(below) / strategy.reduction_factor)
            else:
                n_keep = meta["planned_trials"][i + 1]
            done = sorted((r for r in below if not r.failed), key=lambda r: (-r.score, r.trial_id))
            assert above == sorted(r.trial_id for r in done[:n_keep])
            assert not {r.trial_id for r in below if r.failed} & set(above)
            if not any(r.failed for r in below) and len(below) == meta["planned_trials"][i]:
                assert len(above) == n_keep == meta["planned_trials"][i + 1]
                assert math.ceil(len(below) / strategy.reduction_factor) >= len(above)
                assert len(above) >= math.floor(len(below) / strategy.reduction_factor)
        assert meta["told_trials"] == [
            len(rungs.get((b, i), [])) for i in range(len(meta["budgets"]))
        ]
        assert meta["failed_trials"] == [
            sum(fails(j) for j in run.asked if (j.bracket, j.rung) == (b, i))
            for i in range(len(meta["budgets"]))
        ]


@given(setting=sync_settings, order=st.integers(0, 10**6), percent=st.sampled_from([0, 0, 20, 60]))
@FAST
def test_sync_strategies_keep_the_best_and_do_not_depend_on_workers(setting, order, percent):
    fails = failing(percent, order)
    runs = []
    for workers, order_seed in ((1, order), (2, order + 1), (7, order + 2)):
        strategy, hi = make_sync(*setting)
        run = simulate(strategy, workers, order_seed, max_budget=hi, fails=fails)
        check_halving(strategy, run, fails)
        meta = strategy.metadata()
        json.dumps(meta)
        spent = 0
        prev: dict[int, float] = {}
        for job in run.asked:
            spent += job.budget - prev.get(job.trial_id, 0)
            prev[job.trial_id] = job.budget
        assert meta["totals"]["budget_spent"] == pytest.approx(spent)
        assert meta["totals"]["told_jobs"] == len(run.told) == len(run.asked)
        if percent == 0:
            assert len(run.asked) == strategy.n_planned == meta["totals"]["planned_jobs"]
            assert spent == pytest.approx(strategy.budget_planned)
        runs.append((job_keys(run.asked), strategy.survivors()))
    assert runs[0] == runs[1] == runs[2]


@given(setting=sync_settings, seed=st.integers(0, 10**6))
@settings(max_examples=15, deadline=None)
def test_sync_strategies_are_seed_deterministic(setting, seed):
    a, hi = make_sync(*setting, seed=seed)
    b, _ = make_sync(*setting, seed=seed)
    assert job_keys(simulate(a, 4, 1, max_budget=hi).asked) == job_keys(
        simulate(b, 4, 2, max_budget=hi).asked
    )


def test_all_failed_rung_ends_the_bracket():
    sh = SuccessiveHalving(RandomSource(SPACE, 0), 9, 1, 9)
    run = simulate(sh, 4, max_budget=9, fails=lambda job: True)
    assert len(run.asked) == 9 and sh.done
    assert sh.n_candidates == [9]
    meta = sh.metadata()["totals"]
    assert (meta["failed_jobs"], meta["planned_jobs"]) == (9, 13)


# -- resume by replay --------------------------------------------------------------------------------


def _replay(make, workers, stop_after, hi, fails):
    full = simulate(make(), workers, 3, max_budget=hi, fails=fails)
    first = make()
    part = simulate(first, workers, 5, max_budget=hi, fails=fails, stop_after=stop_after)
    resumed = make()
    for res in part.told:  # what the store holds, in the order it was written
        resumed.tell(res)
    rest = simulate(resumed, workers, 7, max_budget=hi, fails=fails, replayed=part.told)
    return full, part, rest, resumed


@pytest.mark.parametrize(
    "make",
    [
        lambda: SuccessiveHalving(RandomSource(SPACE, 4), 27, 1, 27),
        lambda: Hyperband(RandomSource(SPACE, 4), 27),
        lambda: Incremental(RandomSource(SPACE, 4), 6, 10, step=2, patience=2, tol=0.0),
    ],
    ids=["successive_halving", "hyperband", "incremental"],
)
@pytest.mark.parametrize("stop_after", [1, 10, 30])
def test_replayed_results_are_not_asked_again(make, stop_after):
    fails = failing(15, 1)
    full, part, rest, resumed = _replay(make, 3, stop_after, 27, fails)
    told = job_keys([r.job for r in part.told])
    assert not told & job_keys(rest.asked)
    # The resumed search asks exactly what the uninterrupted one asked and was not told yet.
    assert job_keys(rest.asked) == job_keys(full.asked) - told
    if hasattr(resumed, "survivors"):
        reference = make()
        simulate(reference, 2, 9, max_budget=27, fails=fails)
        assert resumed.survivors() == reference.survivors()


def test_replay_of_the_whole_search_leaves_nothing_to_do():
    sh = SuccessiveHalving(RandomSource(SPACE, 0), 9, 1, 9)
    run = simulate(sh, 2, max_budget=9)
    again = SuccessiveHalving(RandomSource(SPACE, 0), 9, 1, 9)
    for res in run.told:
        again.tell(res)
    assert again.done and again.ask(10) == []
    assert again.metadata() == sh.metadata()


def test_a_result_from_another_search_is_refused():
    sh = SuccessiveHalving(RandomSource(SPACE, 0), 9, 1, 9)
    jobs = sh.ask(9)
    with pytest.raises(ValueError, match="unknown trial"):
        sh.tell(_result(Job(99, jobs[0].params, 1, 0, 0), 0.1))
    with pytest.raises(ValueError, match="brackets"):
        sh.tell(_result(Job(0, jobs[0].params, 1, 0, 5), 0.1))
    for job in jobs:
        sh.tell(_result(job, 0.5))
    assert sorted(j.trial_id for j in sh.ask(9)) == [0, 1, 2]
    with pytest.raises(ValueError, match="does not hold"):
        sh.tell(_result(Job(5, jobs[5].params, 3, 1, 0), 0.1))


# -- ASHA ------------------------------------------------------------------------------------------


def test_asha_rung_budgets():
    def budgets(**kw):
        return ASHA(RandomSource(SPACE, 0), 5, **kw).budgets

    assert budgets(max_budget=81) == [1, 3, 9, 27, 81]
    assert budgets(max_budget=100) == [1, 3, 9, 27, 100]
    assert budgets(max_budget=81, min_early_stopping_rate=1) == [3, 9, 27, 81]
    assert budgets(max_budget=8.0, min_budget=0.5, reduction_factor=2) == [0.5, 1.0, 2.0, 4.0, 8.0]
    assert budgets(max_budget=4, min_budget=4) == [4]


class AshaRule:
    """Checks, at every ask, that each promotion is in the top floor(t/eta) of its rung right then."""

    def __init__(self, asha: ASHA) -> None:
        self.asha = asha
        self.promotions = 0

    def __call__(self, jobs: list[Job]) -> None:
        eta = self.asha.reduction_factor
        for job in jobs:
            if job.rung == 0:
                continue
            self.promotions += 1
            told = self.asha._results[job.rung - 1]
            ranked = sorted(
                (r for r in told.values() if not r.failed), key=lambda r: (-r.score, r.trial_id)
            )
            top = ranked[: math.floor(len(told) / eta)]
            assert job.trial_id in {r.trial_id for r in top}


@given(
    n_trials=st.integers(1, 60),
    ratio_power=st.integers(0, 4),
    eta=st.sampled_from([2, 3, 4]),
    workers=st.integers(1, 9),
    order=st.integers(0, 10**6),
    percent=st.sampled_from([0, 25]),
)
@FAST
def test_asha_promotes_the_top_without_idling_and_finishes(
    n_trials, ratio_power, eta, workers, order, percent
):
    hi = eta**ratio_power
    asha = ASHA(RandomSource(SPACE, order), n_trials, hi, 1, eta)
    rule = AshaRule(asha)
    fails = failing(percent, order)
    run = simulate(asha, workers, order, max_budget=hi, fails=fails, on_ask=rule)
    # No worker idles while new candidates remain.
    started = 0
    for requested, returned in run.asks:
        assert len(returned) >= min(requested, n_trials - started)
        started += sum(j.rung == 0 for j in returned)
    assert sorted(j.trial_id for j in run.asked if j.rung == 0) == list(range(n_trials))
    # At the end every completed trial in the top floor(t/eta) of a rung went up a rung.
    told = {(r.job.rung, r.trial_id): r for r in run.told}
    for k in range(len(asha.budgets) - 1):
        at_k = [r for (rung, _), r in told.items() if rung == k]
        ranked = sorted((r for r in at_k if not r.failed), key=lambda r: (-r.score, r.trial_id))
        top = {r.trial_id for r in ranked[: math.floor(len(at_k) / eta)]}
        up = {t for (rung, t) in told if rung == k + 1}
        assert top <= up
        assert not up & {r.trial_id for r in at_k if r.failed}
    meta = asha.metadata()
    json.dumps(meta)
    assert meta["totals"]["told_jobs"] == len(run.asked)
    assert rule.promotions == len(run.asked) - n_trials


def test_asha_keeps_workers_busy_where_successive_halving_waits():
    """8 workers, 27 candidates: ASHA hands out a full batch at every ask until the candidates run
    out; successive halving answers with fewer (or none) at its rung barriers."""
    asha = ASHA(RandomSource(SPACE, 0), 27, 27)
    sh = SuccessiveHalving(RandomSource(SPACE, 0), 27, 1, 27)
    asha_run = simulate(asha, 8, 1, max_budget=27)
    sh_run = simulate(sh, 8, 1, max_budget=27)
    first_short = next(i for i, (req, got) in enumerate(asha_run.asks) if len(got) < req)
    assert sum(len(got) for _, got in asha_run.asks[:first_short]) >= 27
    last_rung_opens = max(i for i, (_, got) in enumerate(sh_run.asks) if got)
    assert any(len(got) < req for req, got in sh_run.asks[:last_rung_opens])


def test_asha_is_deterministic_for_a_seed_and_an_order():
    def run(seed, order):
        return simulate(ASHA(RandomSource(SPACE, seed), 30, 27), 4, order, max_budget=27).asked

    assert run(1, 2) == run(1, 2)
    assert {j.trial_id: dict(j.params) for j in run(1, 2)} == {
        j.trial_id: dict(j.params) for j in run(1, 3)
    }  # which candidates exist does not depend on the order results arrive in
    assert run(1, 2)[0].params != run(2, 2)[0].params


def test_asha_replay_skips_told_jobs_and_restarts_lost_ones():
    part = simulate(ASHA(RandomSource(SPACE, 0), 20, 9), 4, 0, max_budget=9, stop_after=12)
    lost_new = {j.trial_id for j in part.in_flight if j.rung == 0}
    resumed = ASHA(RandomSource(SPACE, 0), 20, 9)
    for res in part.told:
        resumed.tell(res)
    rest = simulate(resumed, 4, 1, max_budget=9, replayed=part.told)
    assert not job_keys([r.job for r in part.told]) & job_keys(rest.asked)
    restarted = [j.trial_id for j in rest.asked if j.rung == 0]
    assert lost_new <= set(restarted)
    assert sorted({r.trial_id for r in part.told if r.job.rung == 0} | set(restarted)) == list(
        range(20)
    )


# -- Incremental -------------------------------------------------------------------------------------


def test_incremental_trains_everything_to_max_budget_without_patience():
    inc = Incremental(RandomSource(SPACE, 0), 4, 10, step=3)
    assert inc.budgets == [3, 6, 9, 10]
    run = simulate(inc, 3, max_budget=10)
    assert Counter(j.trial_id for j in run.asked) == dict.fromkeys(range(4), 4)
    assert len(run.asked) == inc.n_planned == 16
    assert [j.rung for j in run.asked if j.trial_id == 2] == [0, 1, 2, 3]
    assert inc.stopped == dict.fromkeys(range(4), "max_budget")
    assert inc.metadata()["totals"]["budget_spent"] == 40 == inc.budget_planned


def test_incremental_drops_on_patience():
    # Trial t improves for t steps, then stays flat (within tol): it stops after t + 1 + patience scores.
    def score(job):
        return min(job.rung, job.trial_id) + 0.0001 * job.rung

    inc = Incremental(ListSource([{"a": i} for i in range(5)]), 5, 20, step=1, patience=3, tol=0.01)
    run = simulate(inc, 2, max_budget=20, score=score)
    counts = Counter(j.trial_id for j in run.asked)
    assert counts == {t: t + 1 + 3 for t in range(5)}
    assert inc.stopped == dict.fromkeys(range(5), "patience")
    assert inc.n_planned is None
    meta = inc.metadata()
    assert meta["brackets"][0]["planned_is_upper_bound"]
    assert meta["totals"]["told_jobs"] == sum(counts.values())


def test_incremental_stops_failed_trials_and_ignores_tell_order():
    fails = failing(20, 3)
    keys = []
    for workers, order in ((1, 0), (3, 1), (7, 2)):
        inc = Incremental(RandomSource(SPACE, 5), 8, 6, step=1, patience=2, tol=0.05)
        run = simulate(inc, workers, order, max_budget=6, fails=fails)
        for t, reason in inc.stopped.items():
            last = max((j for j in run.asked if j.trial_id == t), key=lambda j: j.rung)
            assert (reason == "failed") == fails(last)
        keys.append(job_keys(run.asked))
    assert keys[0] == keys[1] == keys[2]


@pytest.mark.parametrize(
    "build",
    [
        lambda s: SuccessiveHalving(s, np.int64(9), np.int64(1), np.int64(9), np.int64(3)),
        lambda s: Hyperband(s, np.int64(27), np.int64(1), np.float64(3.0)),
        lambda s: ASHA(s, np.int64(9), np.int64(27), np.int64(1), np.int64(3)),
        lambda s: Incremental(s, np.int64(3), np.int64(5), np.int64(2)),
    ],
)
def test_numpy_settings_give_plain_budgets_and_json_metadata(build):
    strategy = build(RandomSource(SPACE, 0))
    run = simulate(strategy, 3, max_budget=27)
    assert {type(j.budget) for j in run.asked} == {int}
    json.dumps(strategy.metadata())


def test_incremental_float_budgets():
    inc = Incremental(RandomSource(SPACE, 0), 2, 1.0, step=0.3)
    assert inc.budgets == [0.3, 0.6, 0.9, 1.0]


# -- bad input -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda s: SuccessiveHalving(s, 10, 1, 9, reduction_factor=1), "reduction_factor=1"),
        (lambda s: SuccessiveHalving(s, 0, 1, 9), "n_candidates=0"),
        (lambda s: SuccessiveHalving(s, "all", 1, 9), "n_candidates='all'"),
        (lambda s: SuccessiveHalving(s, 5, 10, 9), "min_budget=10 is larger than max_budget=9"),
        (lambda s: Hyperband(s, max_budget=0), "max_budget=0"),
        (lambda s: Hyperband(s, max_budget=81, min_budget=-1), "min_budget=-1"),
        (lambda s: ASHA(s, 0, 9), "n_trials=0"),
        (lambda s: ASHA(s, 5, 9, min_early_stopping_rate=3), "min_early_stopping_rate=3"),
        (lambda s: Incremental(s, 5, 9, step=0), "step=0"),
        (lambda s: Incremental(s, 5, 9, patience=0), "patience=0"),
        (lambda s: Incremental(s, 5, 9, tol=-1), "tol=-1"),
    ],
)
def test_bad_settings_name_the_parameter(build, match):
    with pytest.raises(InvalidSearchError, match=match):
        build(RandomSource(SPACE, 0))


def test_hyperband_refuses_a_list_too_short_and_small_grids_warn():
    with pytest.raises(InvalidSearchError, match="needs 143 candidates but the list has 3"):
        Hyperband(ListSource([{"a": 1}, {"a": 2}, {"a": 3}]), 81)
    with pytest.warns(UserWarning, match="4 distinct candidates, fewer than n_candidates=9"):
        sh = SuccessiveHalving(RandomSource({"a": [1, 2, 3, 4]}, 0), 9, 1, 9)
    assert sh.n_candidates == [4]
