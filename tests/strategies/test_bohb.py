"""BOHB as a strategy, fed by hand: Hyperband's table, brackets opened in turn, model-based candidates."""

from __future__ import annotations

import math

from daskhpo import Float
from daskhpo.strategies.adaptive import Hyperband
from daskhpo.strategies.base import Job, Result, Status
from daskhpo.strategies.bohb import BOHB, TPESource

SPACE = {"x": Float(-5.0, 5.0), "y": Float(-5.0, 5.0)}


def score(job: Job) -> float:
    return -((job.params["x"] - 1.5) ** 2) - (job.params["y"] + 2.0) ** 2 - 5.0 / (1 + job.budget)


def tell(strategy, job: Job) -> None:
    s = score(job)
    strategy.tell(Result(job, Status.COMPLETE, s, {"score": (s,)}, None, (0.0,), (0.0,)))


def run(strategy, workers: int = 3) -> list[Job]:
    jobs, running = [], []
    while not strategy.done:
        running += strategy.ask(workers - len(running))
        job = running.pop(0)
        jobs.append(job)
        tell(strategy, job)
    return jobs


def test_bohb_keeps_hyperbands_table_and_opens_brackets_in_turn():
    bohb = BOHB(SPACE, max_budget=27, random_state=0)
    assert bohb.bracket_table() == Hyperband(_Dummy(), max_budget=27).bracket_table()
    first = bohb.ask(1000)
    # Only the first bracket is open until its jobs are handed out and some come back.
    assert {j.bracket for j in first} == {3} and len(first) == 27
    jobs = first
    for j in first:
        tell(bohb, j)
    jobs += run(bohb)
    counts: dict = {}
    for j in jobs:
        counts[(j.bracket, j.budget)] = counts.get((j.bracket, j.budget), 0) + 1
    expected = {(s, b): n for s, rows in bohb.bracket_table().items() for n, b in rows}
    assert counts == expected
    for j in jobs:
        assert -5 <= j.params["x"] <= 5 and -5 <= j.params["y"] <= 5


def test_later_brackets_learn_from_earlier_ones():
    bohb = BOHB(SPACE, max_budget=81, random_state=0, random_fraction=0.0, min_points=8)
    jobs = run(bohb)
    md = bohb.metadata()
    assert md["n_model_based"] > 0 and md["n_random"] >= 81  # the first bracket has no model yet
    starts = [j for j in jobs if j.rung == 0]
    model = [j for j in starts if j.trial_id in bohb.model_based_trials]
    random = [j for j in starts if j.trial_id not in bohb.model_based_trials]
    assert len(model) == md["n_model_based"] and len(random) == md["n_random"]

    def dist(j):
        return math.hypot(j.params["x"] - 1.5, j.params["y"] + 2.0)

    # Model-based candidates sit much closer to the optimum than the random ones.
    ratio = (sum(map(dist, model)) / len(model)) / (sum(map(dist, random)) / len(random))
    assert ratio < 0.75, ratio


def test_same_seed_same_candidates():
    a = [(j.trial_id, tuple(j.params.values())) for j in run(BOHB(SPACE, 9, random_state=3), 1)]
    b = [(j.trial_id, tuple(j.params.values())) for j in run(BOHB(SPACE, 9, random_state=3), 1)]
    assert a == b


def test_bohb_is_hyperband_over_a_tpe_source():
    bohb = BOHB(SPACE, 27, random_state=4, min_points=4)
    plain = Hyperband(TPESource(SPACE, random_state=4, min_points=4), 27)
    assert isinstance(bohb, Hyperband) and isinstance(bohb.source, TPESource)
    a = [(j.trial_id, j.budget, tuple(j.params.values())) for j in run(bohb)]
    b = [(j.trial_id, j.budget, tuple(j.params.values())) for j in run(plain)]
    assert a == b
    assert bohb.metadata()["n_model_based"] == plain.metadata()["n_model_based"] > 0


def test_a_tpe_sources_candidates_depend_on_what_it_was_told():
    def source():
        return TPESource(SPACE, random_state=0, random_fraction=0.0, min_points=5)

    told, again, untold = source(), source(), source()
    for s in (told, again):
        for i in range(12):  # results at one budget, best near x=1.5, y=-2
            params = {
                "x": -5.0 + 10.0 * ((i * 7) % 12) / 11,
                "y": -5.0 + 10.0 * ((i * 5) % 12) / 11,
            }
            tell(s, Job(100 + i, params, budget=3))
    drawn = told.sample(4, trial_ids=[0, 1, 2, 3])
    assert drawn == again.sample(4, trial_ids=[0, 1, 2, 3])  # same history, same candidates
    assert drawn != untold.sample(4, trial_ids=[0, 1, 2, 3])
    assert (told.n_model_based, untold.n_model_based) == (4, 0)  # no results: random draws
    assert told.model_based_trials == {0, 1, 2, 3}


class _Dummy:
    distinct_left = None

    def sample(self, n):
        return [{} for _ in range(n)]
