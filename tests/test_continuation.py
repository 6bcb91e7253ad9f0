"""Budgets that continue: promoted trials go on from their model of the previous rung.

The rules (:mod:`daskhpo.continuation`) are checked against the estimators themselves: where a rule
says "exact", continuing a fit must give the model a fresh fit at the larger budget gives. Searches
then run on the session's real cluster and must give the same ``cv_results_`` as fitting every rung
from scratch (and as scikit-learn's halving search), with fewer trees, rounds or iterations fitted.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import loguniform, randint
from sklearn.base import clone
from sklearn.datasets import make_classification
from sklearn.ensemble import (
    BaggingClassifier,
    ExtraTreesClassifier,
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.experimental import enable_halving_search_cv  # noqa: F401
from sklearn.linear_model import SGDClassifier
from sklearn.model_selection import HalvingRandomSearchCV
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

import daskhpo
from daskhpo import InvalidSearchError
from daskhpo.continuation import continuation_rule

X, Y = make_classification(1200, 12, n_informative=6, random_state=0)
X_TRAIN, Y_TRAIN, X_VAL = X[:800], Y[:800], X[800:]


def _xgb(**kw):
    xgboost = pytest.importorskip("xgboost")
    return xgboost.XGBClassifier(n_jobs=1, random_state=0, **kw)


def _lgbm(**kw):
    lightgbm = pytest.importorskip("lightgbm")
    return lightgbm.LGBMClassifier(n_jobs=1, random_state=0, verbose=-1, **kw)


def _continue(estimator, rule, small, large):
    """Fit ``estimator`` at ``small`` and go on to ``large`` the way the executor does."""
    first = clone(estimator).set_params(**{rule.param: small})
    if rule.how == "warm_start":
        first.set_params(**{rule.warm_param: True}).fit(X_TRAIN, Y_TRAIN)
        return first.set_params(**{rule.param: large}).fit(X_TRAIN, Y_TRAIN)
    first.fit(X_TRAIN, Y_TRAIN)
    booster = first.get_booster() if rule.how == "xgb_model" else first.booster_
    more = clone(estimator).set_params(**{rule.param: large - small})
    return more.fit(X_TRAIN, Y_TRAIN, **{rule.how: booster})


EXACT = [
    ("random forest", lambda: RandomForestClassifier(random_state=0), "n_estimators"),
    ("forest, row subsample", lambda: RandomForestClassifier(random_state=0, max_samples=0.5), "n_estimators"),
    ("extra trees", lambda: ExtraTreesClassifier(random_state=0), "n_estimators"),
    ("bagging", lambda: BaggingClassifier(random_state=0), "n_estimators"),
    ("gradient boosting, subsampled", lambda: GradientBoostingClassifier(random_state=0, subsample=0.5, max_features=0.5), "n_estimators"),
    ("hist gradient boosting", lambda: HistGradientBoostingClassifier(random_state=0, early_stopping=False), "max_iter"),
    ("xgboost", _xgb, "n_estimators"),
    ("lightgbm", _lgbm, "n_estimators"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "make", "param"), EXACT, ids=[e[0] for e in EXACT])
def test_a_continuation_called_exact_gives_the_fresh_fits_model(name, make, param):
    estimator = make()
    rule = continuation_rule(estimator, param, n_train=len(X_TRAIN))
    assert rule is not None and rule.exact, name
    fresh = clone(estimator).set_params(**{param: 12}).fit(X_TRAIN, Y_TRAIN)
    continued = _continue(estimator, rule, 4, 12)
    np.testing.assert_array_equal(continued.predict_proba(X_VAL), fresh.predict_proba(X_VAL))


APPROXIMATE = [
    ("xgboost, row subsample", lambda: _xgb(subsample=0.5), "n_estimators"),
    ("lightgbm, bagging", lambda: _lgbm(subsample=0.5, subsample_freq=1), "n_estimators"),
    ("lightgbm, feature subsample", lambda: _lgbm(colsample_bytree=0.5), "n_estimators"),
    ("mlp epochs", lambda: MLPClassifier(random_state=0), "max_iter"),
    ("sgd epochs", lambda: SGDClassifier(random_state=0), "max_iter"),
    ("gradient boosting, early stopping", lambda: GradientBoostingClassifier(n_iter_no_change=2), "n_estimators"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "make", "param"), APPROXIMATE, ids=[a[0] for a in APPROXIMATE])
def test_continuations_that_differ_from_a_fresh_fit_are_called_so(name, make, param):
    rule = continuation_rule(make(), param, n_train=len(X_TRAIN))
    assert rule is not None and not rule.exact, name


def test_estimators_and_parameters_that_cannot_continue_have_no_rule():
    assert continuation_rule(LinearSVC(), "max_iter") is None
    assert continuation_rule(RandomForestClassifier(), "max_depth") is None
    # HistGradientBoosting stops early by default above 10,000 samples: not exact there.
    hgb = HistGradientBoostingClassifier()
    assert continuation_rule(hgb, "max_iter", n_train=5_000).exact
    assert not continuation_rule(hgb, "max_iter", n_train=50_000).exact
    # The step of a pipeline is found by the parameter's path.
    pipe = make_pipeline(StandardScaler(), RandomForestClassifier())
    rule = continuation_rule(pipe, "randomforestclassifier__n_estimators")
    assert rule is not None and rule.step == "randomforestclassifier" and rule.exact


SPACE = {"max_features": [0.3, 0.6, 1.0], "min_samples_leaf": randint(1, 8)}


def _halving(estimator, space=SPACE, resource="n_estimators", **kw):
    settings = dict(
        resource=resource, min_budget=3, max_budget=27, n_candidates=9, cv=3, random_state=0
    )
    return daskhpo.SuccessiveHalvingSearchCV(estimator, space, **{**settings, **kw})


def _same_results(a, b):
    assert a["params"] == b["params"]
    for key in ("mean_test_score", "split0_test_score", "split2_test_score", "rank_test_score"):
        np.testing.assert_array_equal(a[key], b[key])


def test_promoted_forest_trials_continue_and_score_as_fresh_fits_and_as_scikit_learn(client):
    rf = RandomForestClassifier(random_state=0)
    continued = _halving(rf, client=client, best_from="top").fit(X, Y)
    fresh = _halving(rf, client=client, continuation=False, best_from="top").fit(X, Y)
    _same_results(continued.cv_results_, fresh.cv_results_)
    # Every promoted (trial, fold) went on from its model: rungs 1 and 2, 3 folds each.
    n_promoted = sum(continued.n_candidates_[1:]) * 3
    assert continued.stats_["units_continued"] == n_promoted
    assert "units_continued" not in fresh.stats_
    ours = continued.cv_results_
    theirs = HalvingRandomSearchCV(
        rf,
        SPACE,
        resource="n_estimators",
        min_resources=3,
        max_resources=27,
        n_candidates=9,
        factor=3,
        cv=3,
        random_state=0,
    ).fit(X, Y)

    # The same evaluations (scikit-learn orders each rung's rows its own way).
    def evaluations(r, budget):
        return sorted(
            (int(b), repr(p), round(float(s), 12))
            for b, p, s in zip(r[budget], r["params"], r["mean_test_score"], strict=True)
        )

    assert evaluations(ours, "budget") == evaluations(theirs.cv_results_, "n_resources")
    assert continued.best_params_ == theirs.best_params_
    assert continued.best_estimator_.n_estimators == theirs.best_estimator_.n_estimators


@pytest.mark.parametrize(
    ("make", "space"),
    [
        (lambda: HistGradientBoostingClassifier(early_stopping=False, random_state=0), {"learning_rate": loguniform(0.03, 0.5)}),
        (lambda: _xgb(max_depth=3), {"learning_rate": loguniform(0.03, 0.5)}),
        (lambda: _lgbm(num_leaves=7), {"learning_rate": loguniform(0.03, 0.5)}),
    ],
    ids=["hist-gradient-boosting", "xgboost", "lightgbm"],
)  # fmt: skip
def test_boosters_continue_in_a_search_with_the_fresh_fits_scores(client, make, space):
    estimator = make()
    resource = (
        "max_iter" if isinstance(estimator, HistGradientBoostingClassifier) else "n_estimators"
    )
    continued = _halving(estimator, space, resource, client=client).fit(X, Y)
    fresh = _halving(estimator, space, resource, client=client, continuation=False).fit(X, Y)
    _same_results(continued.cv_results_, fresh.cv_results_)
    assert continued.stats_["units_continued"] == sum(continued.n_candidates_[1:]) * 3
    assert continued.best_params_ == fresh.best_params_


def test_a_pipeline_continues_its_last_step(client):
    pipe = make_pipeline(StandardScaler(), RandomForestClassifier(random_state=0))
    space = {"randomforestclassifier__min_samples_leaf": randint(1, 20)}
    kw = dict(resource="randomforestclassifier__n_estimators", n_candidates=4, client=client)
    continued = _halving(pipe, space, **kw).fit(X, Y)
    fresh = _halving(pipe, space, continuation=False, **kw).fit(X, Y)
    _same_results(continued.cv_results_, fresh.cv_results_)
    assert continued.stats_["units_continued"] == sum(continued.n_candidates_[1:]) * 3 > 0


def test_epochs_continue_only_when_asked(client):
    mlp = MLPClassifier(hidden_layer_sizes=(8,), random_state=0)
    space = {"alpha": loguniform(1e-5, 1e-1)}
    # "auto": more epochs from the weights it has is not a fresh fit, so every rung starts over.
    auto = _halving(mlp, space, "max_iter", client=client, n_candidates=3)
    with pytest.warns(Warning):  # few epochs do not converge
        auto.fit(X, Y)
    assert auto.stats_.get("units_continued", 0) == 0
    asked = _halving(mlp, space, "max_iter", client=client, n_candidates=3, continuation=True)
    with pytest.warns(Warning):
        asked.fit(X, Y)
    assert asked.stats_["units_continued"] == sum(asked.n_candidates_[1:]) * 3
    # The budget counts the epochs a trial was trained for in all; best_estimator_ is fitted with as
    # many, on all the data.
    assert asked.best_estimator_.max_iter == asked.best_budget_


def test_continuations_unlike_a_fresh_fit_never_take_fresh_fits_from_the_cache(client, tmp_path):
    storage = f"sqlite:///{tmp_path / 'runs.db'}"
    mlp = MLPClassifier(hidden_layer_sizes=(8,), random_state=0)
    space = {"alpha": loguniform(1e-5, 1e-1)}
    kw = dict(client=client, n_candidates=3, storage=storage)
    with pytest.warns(Warning):  # few epochs do not converge
        _halving(mlp, space, "max_iter", **kw).fit(X, Y)  # fresh fits of every rung, stored
    asked = _halving(mlp, space, "max_iter", continuation=True, **kw)
    with pytest.warns(Warning):
        asked.fit(X, Y)
    # The same candidates and budgets are in the store, but continuing epochs is not a fresh fit.
    assert asked.stats_["units_reused"] == 0
    assert asked.stats_["units_continued"] == sum(asked.n_candidates_[1:]) * 3


def test_continued_units_are_reused_from_the_store_by_the_same_search(client, tmp_path):
    storage = f"sqlite:///{tmp_path / 'runs.db'}"
    rf = RandomForestClassifier(random_state=0)
    first = _halving(rf, client=client, storage=storage).fit(X, Y)
    again = _halving(rf, client=client, storage=storage).fit(X, Y)
    assert again.stats_["units_computed"] == 0
    assert again.stats_["units_reused"] == first.stats_["units_computed"]
    _same_results(first.cv_results_, again.cv_results_)


def test_a_bad_continuation_is_refused_before_any_work():
    search = _halving(RandomForestClassifier(), continuation="yes")
    with pytest.raises(InvalidSearchError, match="continuation='yes'.*'auto'"):
        search.fit(X, Y)


# -- which evaluations compete for best_* -----------------------------------------------------


def test_best_from_all_takes_the_best_evaluation_of_any_rung_and_refits_at_its_budget(client):
    rf = RandomForestRegressor(random_state=0)
    Xr, yr = X[:, :6], X[:, 6] + 0.5 * X[:, 7] ** 2
    space = {"max_features": [0.2, 0.5, 1.0], "max_depth": [2, 4, None]}
    search = _halving(rf, space, client=client, n_candidates=9).fit(Xr, yr)
    r = search.cv_results_
    best = int(np.argmax(r["mean_test_score"]))
    assert search.best_index_ == best
    assert search.best_score_ == r["mean_test_score"].max()
    assert search.best_budget_ == r["budget"][best]
    assert search.best_estimator_.n_estimators == r["budget"][best]
    top = _halving(rf, space, client=client, n_candidates=9, best_from="top").fit(Xr, yr)
    assert r["budget"][top.best_index_] == max(r["budget"])
    assert top.best_score_ <= search.best_score_


def test_ties_go_to_the_larger_budget():
    from daskhpo.results import BestSoFar, best_position
    from daskhpo.strategies.base import Job, Result, Status

    def result(tid, budget, score):
        job = Job(tid, {}, budget=budget, rung=int(budget > 1))
        return Result(job, Status.COMPLETE, score, {"score": (score,)}, None, (0.0,), (0.0,))

    rows = [result(0, 1, 0.9), result(1, 1, 0.8), result(0, 3, 0.9)]
    assert best_position(rows, "all") == 2
    best = BestSoFar("all")
    for row in rows:
        best.update(row)
    assert (best.trial_id, best.score) == (0, 0.9) and best._budget == 3


def test_partial_fit_best_at_an_earlier_rung_is_trained_to_that_budget(client):
    # Seed 0: the best evaluation is trial 3's at 3 partial_fit calls, and trial 3 went on to 9.
    search = daskhpo.HyperbandSearchCV(
        SGDClassifier(random_state=0),
        {"alpha": loguniform(1e-5, 1)},
        max_budget=9,
        test_size=0.25,
        random_state=0,
        client=client,
    ).fit(X, Y, classes=[0, 1])
    r = search.cv_results_
    assert search.best_score_ == r["mean_test_score"].max()
    budgets = [
        b for t, b in zip(r["trial_id"], r["budget"], strict=True) if t == search.best_trial_id_
    ]
    assert search.best_budget_ < max(budgets)
    # One held-out share: best_estimator_ is that trial's model as it was scored, trained for
    # best_budget_ blocks (SGD's t_ counts the rows it has seen, plus one), not the later one.
    n_blocks = search.metadata_["train_blocks_per_fold"][0]
    rows_per_block = 0.75 * len(X) / n_blocks
    seen = search.best_estimator_.t_ - 1
    assert abs(seen - search.best_budget_ * rows_per_block) < rows_per_block


# -- HistGradientBoosting fits share their binned folds -----------------------------------------


def _bin_hits(client) -> int:
    def hits() -> int:
        from daskhpo.execution import binning

        return binning.hits

    return sum(client.run(hits).values())


def test_hist_gradient_boosting_candidates_share_binned_folds_and_score_as_scikit_learn(client):
    import dask
    from sklearn.model_selection import GridSearchCV as SkGridSearchCV

    hgb = HistGradientBoostingClassifier(early_stopping=False, random_state=0)
    grid = {"learning_rate": [0.05, 0.1, 0.3], "max_iter": [5, 20], "max_bins": [63, 255]}
    before = _bin_hits(client)
    ours = daskhpo.GridSearchCV(hgb, grid, cv=3, client=client).fit(X, Y)
    # 12 candidates x 3 folds, 2 binning settings: at most 2 x 3 binnings per worker.
    assert _bin_hits(client) - before >= 36 - 2 * 3 * len(client.nthreads())
    theirs = SkGridSearchCV(hgb, grid, cv=3).fit(X, Y)
    np.testing.assert_array_equal(
        ours.cv_results_["mean_test_score"], theirs.cv_results_["mean_test_score"]
    )
    assert ours.best_params_ == theirs.best_params_
    # Opting out in the process that calls fit bins every fit again, with the same scores.
    before = _bin_hits(client)
    with dask.config.set({"daskhpo.share-bins": False}):
        plain = daskhpo.GridSearchCV(hgb, grid, cv=3, client=client).fit(X, Y)
    assert _bin_hits(client) == before
    np.testing.assert_array_equal(
        plain.cv_results_["mean_test_score"], ours.cv_results_["mean_test_score"]
    )


def test_binned_folds_are_not_shared_across_data_the_estimator_does_not_bin_itself(client):
    # Sample weights, a pipeline before the booster, early stopping's own split: binned as usual.
    hgb = HistGradientBoostingClassifier(random_state=0, early_stopping=True, max_iter=10)
    grid = {"learning_rate": [0.1, 0.3]}
    weights = np.linspace(0.5, 1.5, len(Y))
    before = _bin_hits(client)
    daskhpo.GridSearchCV(hgb, grid, cv=3, client=client).fit(X, Y)
    daskhpo.GridSearchCV(hgb.set_params(early_stopping=False), grid, cv=3, client=client).fit(
        X, Y, sample_weight=weights
    )
    pipe = make_pipeline(StandardScaler(), HistGradientBoostingClassifier(max_iter=10))
    daskhpo.GridSearchCV(
        pipe, {"histgradientboostingclassifier__learning_rate": [0.1, 0.3]}, cv=3, client=client
    ).fit(X, Y)
    assert _bin_hits(client) == before
