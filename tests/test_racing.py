"""Racing over CV folds: candidates run fold by fold and stop once a paired test says they lose.

The rule is checked on its own (no cluster), then as users meet it: a grid, a random and a Bayesian
search with ``racing=True`` on the session's cluster reach the full search's best with fewer fits,
and the folds a raced-out candidate did not run are ``nan`` in ``cv_results_``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import randint
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV as SkGridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

import daskhpo
from daskhpo import InvalidSearchError
from daskhpo.strategies.base import Job, Result, Status
from daskhpo.strategies.candidates import CandidateList
from daskhpo.strategies.racing import Racing, loses

X, Y = load_digits(return_X_y=True)
TREE = DecisionTreeClassifier(random_state=0)
GRID = {"max_depth": [1, 2, 3, 6, 10, None], "min_samples_leaf": [1, 4, 16]}


def test_a_paired_test_drops_only_a_clear_loser():
    leader = (0.90, 0.88, 0.91, 0.89, 0.90)
    assert loses((0.60, 0.58), leader, 0.05)  # far below on both folds
    assert not loses((0.89, 0.89), leader, 0.05)  # above on one fold, below on the other
    assert not loses((0.95, 0.93), leader, 0.05)  # better
    assert not loses((0.50,), leader, 0.05)  # one fold is no test
    assert loses((0.85, 0.83), leader, 0.05)  # the same margin on both folds
    assert not loses((0.80, 0.85), leader, 0.01) and loses((0.80, 0.85, 0.83), leader, 0.05)


def _result(job: Job, folds: tuple[float, ...], n_splits: int) -> Result:
    ran = job.folds or n_splits
    scores = folds[:ran] + (math.nan,) * (n_splits - ran)
    extra = {"folds_run": ran}
    score = float(np.mean(scores)) if ran == n_splits else math.nan
    times = (0.0,) * n_splits
    return Result(job, Status.COMPLETE, score, {"score": scores}, None, times, times, extra=extra)


def test_racing_stages_drop_and_tell_the_inner_strategy_once_per_candidate():
    truth = {
        0: (0.90, 0.91, 0.89, 0.90, 0.92),  # the leader
        1: (0.50, 0.52, 0.49, 0.51, 0.50),  # clearly worse: dropped after 2 folds
        2: (0.91, 0.89, 0.92, 0.90, 0.91),  # as good: runs every fold
    }
    told: list[Result] = []

    class Inner(CandidateList):
        def tell(self, result: Result) -> None:
            told.append(result)
            super().tell(result)

    racing = Racing(Inner([{"c": 0}, {"c": 1}, {"c": 2}]), 5)
    first = racing.ask(1)
    assert [(j.trial_id, j.folds) for j in first] == [(0, 2)]
    racing.tell(_result(first[0], truth[0], 5))
    # Stages double: 2, 4, then every fold.
    (second,) = racing.ask(1)
    assert (second.trial_id, second.folds) == (0, 4)
    racing.tell(_result(second, truth[0], 5))
    (third,) = racing.ask(1)
    assert (third.trial_id, third.folds) == (0, 5)
    racing.tell(_result(third, truth[0], 5))
    jobs = racing.ask(5)
    assert [(j.trial_id, j.folds) for j in jobs] == [(1, 2), (2, 2)]
    for job in jobs:
        racing.tell(_result(job, truth[job.trial_id], 5))
    assert racing.n_dropped == 1 and racing.n_fits_skipped == 3
    while not racing.done:
        for job in racing.ask(5):
            racing.tell(_result(job, truth[job.trial_id], 5))
    assert sorted(r.trial_id for r in told) == [0, 1, 2]
    dropped = next(r for r in told if r.trial_id == 1)
    assert dropped.job.folds is None and dropped.score == pytest.approx(0.51)
    assert racing.stats["candidates_raced_out"] == 1


def _grid(**kw):
    return daskhpo.GridSearchCV(TREE, GRID, cv=5, **kw)


def test_a_raced_grid_finds_the_full_grids_best_with_fewer_fits(client):
    full = _grid(client=client).fit(X, Y)
    raced = _grid(client=client, racing=True).fit(X, Y)
    assert raced.best_params_ == full.best_params_
    assert raced.best_score_ == full.best_score_
    assert raced.stats_["units_computed"] < full.stats_["units_computed"] == 18 * 5
    r, f = raced.cv_results_, full.cv_results_
    assert r["params"] == f["params"]
    ran = r["n_folds_run"]
    out = ran < 5
    assert out.sum() == raced.stats_["candidates_raced_out"] > 0
    assert raced.stats_["units_computed"] == ran.sum()
    # A raced-out candidate keeps the folds it ran (the full grid's very scores), nan elsewhere,
    # and ranks after every candidate that ran all of its folds.
    for i in np.flatnonzero(out):
        for k in range(5):
            ours, theirs = r[f"split{k}_test_score"][i], f[f"split{k}_test_score"][i]
            assert (ours == theirs) if k < ran[i] else np.isnan(ours)
        assert np.isnan(r["mean_test_score"][i])
    assert r["rank_test_score"][out].min() > r["rank_test_score"][~out].max()
    # Candidates that ran every fold score as in scikit-learn.
    sk = SkGridSearchCV(TREE, GRID, cv=5).fit(X, Y)
    np.testing.assert_array_equal(
        r["mean_test_score"][~out], sk.cv_results_["mean_test_score"][~out]
    )


def test_racing_combines_with_random_and_bayesian_search(client):
    space = {"max_depth": randint(1, 20), "min_samples_leaf": randint(1, 30)}
    random = daskhpo.RandomizedSearchCV(
        TREE, space, n_iter=15, cv=5, random_state=0, racing=True, client=client
    ).fit(X, Y)
    assert random.stats_["candidates_raced_out"] > 0
    assert len(random.cv_results_["params"]) == 15
    pytest.importorskip("optuna")
    bayes = daskhpo.BayesSearchCV(
        TREE, space, n_candidates=12, cv=5, random_state=0, racing={"alpha": 0.1}, client=client
    ).fit(X, Y)
    assert len(bayes.cv_results_["params"]) == 12
    assert bayes.stats_["candidates_raced_out"] > 0
    ran = bayes.cv_results_["n_folds_run"]
    assert ran[bayes.best_index_] == 5  # only candidates run on every fold can be best


def test_a_raced_pipeline_and_a_rerun_from_the_store(client, tmp_path):
    pipe = make_pipeline(StandardScaler(), DecisionTreeClassifier(random_state=0))
    grid = {"decisiontreeclassifier__max_depth": [1, 3, None]}
    storage = f"sqlite:///{tmp_path / 'runs.db'}"
    first = daskhpo.GridSearchCV(pipe, grid, cv=5, racing=True, client=client, storage=storage)
    first.fit(X, Y)
    again = daskhpo.GridSearchCV(pipe, grid, cv=5, racing=True, client=client, storage=storage)
    again.fit(X, Y)
    # Which stage a candidate is dropped at can depend on the order results arrive in (the leader
    # it meets), so the rerun may need a fold the first run never ran; all the others come back.
    f = first.cv_results_
    ran = dict(zip(map(repr, f["params"]), f["n_folds_run"], strict=True))
    r = again.cv_results_
    overlap = sum(min(ran[repr(p)], k) for p, k in zip(r["params"], r["n_folds_run"], strict=True))
    assert again.stats_["units_reused"] == overlap > 0
    assert again.stats_["units_reused"] + again.stats_["units_computed"] == sum(r["n_folds_run"])
    assert again.best_params_ == first.best_params_ == {"decisiontreeclassifier__max_depth": None}


@pytest.mark.parametrize(
    ("racing", "cv", "match"),
    [
        ("yes", 5, "racing='yes': use True"),
        ({"alpha": 2}, 5, "racing alpha=2: use a p-value"),
        ({"folds": 2}, 5, r"unknown setting\(s\) \['folds'\]"),
        ({"min_folds": 1}, 5, "min_folds=1: use an integer >= 2"),
        (True, 2, "racing needs at least 3 folds.*cv=5"),
    ],
)
def test_bad_racing_settings_are_refused_before_any_work(racing, cv, match):
    search = daskhpo.GridSearchCV(TREE, GRID, cv=cv, racing=racing, client="tcp://127.0.0.1:1")
    with pytest.raises(InvalidSearchError, match=match):
        search.fit(X, Y)
