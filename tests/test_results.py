"""daskhpo.results: the best rules, and the incremental tracker that must agree with them."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from daskhpo.results import BEST_RULES, BestSoFar, best_position, contenders
from daskhpo.strategies.base import Job, Result, Status


def _result(tid: int, rung: int, budget: float | None, score: float, failed: bool) -> Result:
    return Result(
        job=Job(trial_id=tid, params={"x": tid}, budget=budget, rung=rung),
        status=Status.FAILED if failed else Status.COMPLETE,
        score=math.nan if failed else score,
        test_scores={"score": (score,)},
        train_scores=None,
        fit_times=(0.0,),
        score_times=(0.0,),
        errors=("boom" if failed else None,),
    )


evaluations = st.lists(
    st.tuples(
        st.integers(0, 5),  # trial
        st.integers(0, 3),  # rung; budget = 3**rung
        st.sampled_from([0.1, 0.5, 0.5, 0.9, math.nan]),
        st.booleans(),  # failed
    ),
    max_size=25,
)


@settings(max_examples=300, deadline=None)
@given(evaluations, st.sampled_from(BEST_RULES))
def test_the_tracker_names_the_row_best_position_picks(items, rule):
    results = [_result(t, r, float(3**r), s, f) for t, r, s, f in items]
    tracker = BestSoFar(rule)
    for n, result in enumerate(results, start=1):
        tracker.update(result)
        seen = results[:n]
        best = best_position(seen, rule)
        if best is None:
            assert tracker.trial_id is None and tracker.score == -math.inf
        else:
            assert (tracker.trial_id, tracker.score) == (seen[best].trial_id, seen[best].score)


def test_rules_pick_the_largest_budget_or_each_trials_last_evaluation():
    rows = [
        _result(0, 0, 1, 0.9, False),  # the highest score, but at a small budget
        _result(1, 0, 1, 0.5, False),
        _result(1, 1, 3, 0.6, False),
        _result(2, 1, 3, 0.7, True),  # failed: never competes
    ]
    assert best_position(rows, "all") == 0
    assert best_position(rows, "top") == 2
    assert contenders(rows, "last") == [0, 2]
    assert best_position(rows, "last") == 0
