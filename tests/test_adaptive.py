"""Adaptive search facades on a real cluster: parity with scikit-learn's halving searches, models that
continue between rungs (checked against a local replay), chunked dask input, errors and failures."""

from __future__ import annotations

import warnings

import dask.array as da
import numpy as np
import pytest
from scipy.stats import loguniform, uniform
from sklearn.datasets import make_classification
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.experimental import enable_halving_search_cv  # noqa: F401
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.model_selection import HalvingRandomSearchCV, KFold, StratifiedShuffleSplit
from sklearn.tree import DecisionTreeClassifier

from daskhpo import (
    ASHASearchCV,
    HyperbandSearchCV,
    IncrementalSearchCV,
    SuccessiveHalvingSearchCV,
)
from daskhpo.exceptions import InvalidSearchError
from daskhpo.execution.incremental import BlockPlan, row_order

X, y = make_classification(n_samples=600, n_features=8, n_informative=5, random_state=0)
SGD_SPACE = {"alpha": loguniform(1e-5, 1e-1), "eta0": loguniform(1e-3, 1e-1)}


def _rows(search) -> dict:
    """(params repr, rung) -> mean test score, the way both libraries can be compared."""
    res = search.cv_results_
    return {
        (repr(sorted(p.items())), int(i)): float(s)
        for p, i, s in zip(res["params"], res["iter"], res["mean_test_score"], strict=True)
    }


@pytest.mark.parametrize(
    ("estimator", "space", "resource", "budgets"),
    [
        (LogisticRegression(), {"C": loguniform(1e-3, 1e2)}, "n_samples", (30, 540)),
        (
            GradientBoostingClassifier(random_state=0),
            {"learning_rate": loguniform(1e-2, 1), "max_depth": [1, 2, 3]},
            "n_estimators",
            (2, 30),
        ),
    ],
    ids=["n_samples", "n_estimators"],
)
def test_successive_halving_equals_scikit_learn(client, estimator, space, resource, budgets):
    lo, hi = budgets
    cv = KFold(3, shuffle=True, random_state=0)
    ours = SuccessiveHalvingSearchCV(
        estimator,
        space,
        n_candidates=12,
        resource=resource,
        min_budget=lo,
        max_budget=hi,
        reduction_factor=3,
        cv=cv,
        scoring="neg_log_loss",
        random_state=0,
        client=client,
        best_from="top",  # scikit-learn's rule: the best of the last rung
    ).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = HalvingRandomSearchCV(
            estimator,
            space,
            n_candidates=12,
            resource=resource,
            min_resources=lo,
            max_resources=hi,
            factor=3,
            cv=cv,
            scoring="neg_log_loss",
            random_state=0,
        ).fit(X, y)
    assert ours.n_resources_ == theirs.n_resources_
    assert ours.n_candidates_ == theirs.n_candidates_
    a, b = _rows(ours), _rows(theirs)
    assert a.keys() == b.keys()
    for key in a:
        assert a[key] == pytest.approx(b[key], abs=1e-12), key
    assert ours.best_params_ == theirs.best_params_
    assert ours.best_score_ == pytest.approx(theirs.best_score_, abs=1e-12)


def test_hyperband_models_continue_between_rungs(client):
    """Every score equals a local replay: the trial's model trained on the same blocks, in the same
    order, for exactly its budget, in one go. A model re-trained from scratch at each rung, or
    trained on other blocks, would score differently."""
    search = HyperbandSearchCV(
        SGDClassifier(tol=None, random_state=0),
        SGD_SPACE,
        max_budget=9,
        chunk_size=60,
        test_size=0.25,
        random_state=0,
        client=client,
    ).fit(X, y)
    res = search.cv_results_
    assert set(res["bracket"]) == {0, 1, 2}
    assert max(res["budget"]) == 9
    # Hyperband's table for max_budget=9, reduction_factor=3.
    per_bracket_rung = {}
    for b, r in zip(res["bracket"], res["rung"], strict=True):
        per_bracket_rung[(int(b), int(r))] = per_bracket_rung.get((int(b), int(r)), 0) + 1
    assert per_bracket_rung == {(2, 0): 9, (2, 1): 3, (2, 2): 1, (1, 0): 5, (1, 1): 1, (0, 0): 3}

    train, test = next(StratifiedShuffleSplit(1, test_size=0.25, random_state=0).split(X, y))
    # Blocks of 60 rows of the seeded, stratified row order; the fold's rows of each, in that order.
    order = row_order(len(X), y, 0)
    position = np.empty(len(X), dtype=int)
    position[order] = np.arange(len(X))
    p = np.sort(position[train])
    blocks = [order[p[(p >= s) & (p < s + 60)]] for s in range(0, len(X), 60)]
    blocks = [(b, None, None) for b in blocks if len(b)]
    plan = BlockPlan(
        train=[blocks], test=[[]], held=True, n_blocks=len(blocks), nbytes=None, seed=0
    )
    classes = np.unique(y)
    for params, budget, score in zip(
        res["params"], res["budget"], res["mean_test_score"], strict=True
    ):
        model = SGDClassifier(tol=None, random_state=0).set_params(**params)
        for b, _, _ in plan.steps(0, 0, int(budget)):  # a new seeded block order each epoch
            model.partial_fit(X[b], y[b], classes=classes)
        assert model.score(X[test], y[test]) == pytest.approx(score, abs=1e-12)
    # Continuation: the calls spent are the budget increments, not the sum of the budgets evaluated.
    increments = {}
    for tid, budget in zip(res["trial_id"], res["budget"], strict=True):
        increments[int(tid)] = max(increments.get(int(tid), 0), int(budget))
    assert search.metadata_["partial_fit_calls"] == sum(increments.values())
    assert search.metadata_["partial_fit_calls"] < sum(int(b) for b in res["budget"])
    assert len(search.history_) == len(res["params"])
    best = search.best_index_
    assert res["budget"][best] == 9
    assert search.best_estimator_.score(X[test], y[test]) == pytest.approx(
        search.best_score_, abs=1e-12
    )


@pytest.mark.parametrize("scoring", [None, ["accuracy", "roc_auc"]])
def test_dask_input_held_or_streamed_gives_the_same_results(client, scoring):
    """Held blocks are trained and scored in one task per evaluation; streamed blocks are scored by
    one task per validation block and a task that combines them. Both give the same scores, also for
    a metric computed from another response method than predict (roc_auc: decision_function)."""
    Xd = da.from_array(X, chunks=(60, 8))
    yd = da.from_array(y, chunks=60)
    results = []
    for persist in (True, False):
        search = HyperbandSearchCV(
            SGDClassifier(tol=None, random_state=0),
            SGD_SPACE,
            max_budget=9,
            cv=2,
            persist=persist,
            scoring=scoring,
            refit="roc_auc" if scoring else True,
            random_state=0,
            client=client,
        ).fit(Xd, yd)
        assert search.stats_["blocks_held"] is persist
        assert search.stats_["blocks_local"] is persist
        assert search.n_splits_ == 2
        results.append(search)
    a, b = results
    for metric in ["score"] if scoring is None else scoring:
        key = f"mean_test_{metric}"
        np.testing.assert_allclose(a.cv_results_[key], b.cv_results_[key])
        assert not np.isnan(a.cv_results_[key]).any()
    assert a.best_params_ == b.best_params_
    assert a.best_estimator_.predict(X[:5]).shape == (5,)


def test_asha_and_incremental_run_to_completion(client):
    asha = ASHASearchCV(
        SGDClassifier(tol=None, random_state=0),
        SGD_SPACE,
        n_trials=12,
        max_budget=9,
        chunk_size=100,
        random_state=0,
        client=client,
    ).fit(X, y)
    res = asha.cv_results_
    assert len(set(res["trial_id"])) == 12
    assert set(res["budget"]) <= {1, 3, 9}
    assert max(res["budget"]) == 9  # somebody was promoted to the top
    assert asha.best_score_ == max(res["mean_test_score"])  # best_from="all": any budget

    inc = IncrementalSearchCV(
        SGDClassifier(tol=None, random_state=0),
        SGD_SPACE,
        n_candidates=4,
        max_budget=8,
        step=2,
        patience=1,
        tol=1.0,  # nothing improves by a whole point of accuracy: every trial stops after 2 scores
        chunk_size=100,
        random_state=0,
        client=client,
    ).fit(X, y)
    per_trial = {}
    for tid, budget in zip(inc.cv_results_["trial_id"], inc.cv_results_["budget"], strict=True):
        per_trial.setdefault(int(tid), []).append(int(budget))
    assert len(per_trial) == 4
    assert all(b == [2, 4] for b in per_trial.values()), per_trial


def test_failing_candidates_are_recorded_and_never_promoted(client):
    # eta0=0 with a constant learning rate makes SGDClassifier raise in partial_fit.
    space = {"eta0": [0.0, 0.01, 0.05, 0.1], "learning_rate": ["constant"]}
    with pytest.warns(Warning, match="fits failed"):
        search = SuccessiveHalvingSearchCV(
            SGDClassifier(tol=None, random_state=0),
            space,
            n_candidates=4,
            min_budget=1,
            max_budget=3,
            reduction_factor=2,
            chunk_size=100,
            random_state=0,
            client=client,
        ).fit(X, y)
    res = search.cv_results_
    failed = [p["eta0"] == 0.0 for p in res["params"]]
    assert any(failed)
    for is_failed, rung, score in zip(failed, res["rung"], res["mean_test_score"], strict=True):
        if is_failed:
            assert rung == 0 and np.isnan(score)
    assert search.best_params_["eta0"] != 0.0


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: SuccessiveHalvingSearchCV(
                DecisionTreeClassifier(), {"max_depth": [1, 2]}, resource="partial_fit"
            ),
            "resource='partial_fit' needs an estimator with partial_fit",
        ),
        (
            lambda: SuccessiveHalvingSearchCV(
                DecisionTreeClassifier(), {"max_depth": [1, 2]}, resource="max_leaf_node"
            ),
            "Did you mean 'max_leaf_nodes'",
        ),
        (
            lambda: HyperbandSearchCV(SGDClassifier(), SGD_SPACE),
            "max_budget is required",
        ),
        (
            lambda: HyperbandSearchCV(
                SGDClassifier(), SGD_SPACE, max_budget=9, cv=3, test_size=0.2
            ),
            "not both",
        ),
        (
            lambda: HyperbandSearchCV(
                SGDClassifier(), SGD_SPACE, max_budget=9, return_train_score=True
            ),
            "return_train_score=True",
        ),
        (
            lambda: HyperbandSearchCV(
                SGDClassifier(), SGD_SPACE, max_budget=9, scoring=lambda est, X, y: 0.0
            ),
            "make_scorer",
        ),
        (
            lambda: HyperbandSearchCV(SGDClassifier(), {"alpah": uniform(0, 1)}, max_budget=9),
            "Did you mean 'alpha'",
        ),
        (
            lambda: HyperbandSearchCV(SGDClassifier(), SGD_SPACE, max_budget=9, reduction_factor=1),
            "reduction_factor=1",
        ),
    ],
)
def test_bad_settings_fail_before_any_cluster_work(make, message):
    # client="tcp://127.0.0.1:9" would hang or fail differently if the cluster were contacted.
    search = make()
    search.set_params(client="tcp://127.0.0.1:9")
    with pytest.raises(InvalidSearchError, match=message):
        search.fit(X, y)


def test_sample_resources_take_dask_input_as_in_memory_data(client):
    """resource='n_samples' on dask arrays: X is computed on the cluster as a grid search does, and
    the folds, subsamples and scores are those of the same search on the arrays in memory."""

    def search():
        return SuccessiveHalvingSearchCV(
            LogisticRegression(max_iter=500),
            {"C": [0.01, 0.1, 1.0, 10.0]},
            resource="n_samples",
            cv=3,
            random_state=0,
            client=client,
        )

    on_dask = search().fit(da.from_array(X, chunks=100), da.from_array(y, chunks=100))
    in_memory = search().fit(X, y)
    for key in ("params", "budget", "mean_test_score", "split2_test_score"):
        assert list(on_dask.cv_results_[key]) == list(in_memory.cv_results_[key]), key


def test_hyperband_resumes_from_a_store_with_the_same_results(client, tmp_path):
    """A search cut off halfway (its store holds the first half of the evaluations) resumes to the
    uninterrupted run's results; trials promoted after the restart are retrained from the start."""
    from daskhpo.store import open_store

    def search(storage):
        return HyperbandSearchCV(
            SGDClassifier(tol=None, random_state=0),
            SGD_SPACE,
            max_budget=9,
            chunk_size=60,
            random_state=0,
            client=client,
            storage=storage,
            name="hb",
        )

    full_url = f"sqlite:///{tmp_path / 'full.db'}"
    full = search(full_url).fit(X, y)
    whole = open_store(full_url, "hb")
    info, records = whole.info(), whole.results()
    whole.close()

    cut_url = f"sqlite:///{tmp_path / 'cut.db'}"
    cut = open_store(cut_url, "hb")
    cut.start(info["spec"], info["fingerprint"])
    half = len(records) // 2
    for result in records[:half]:
        cut.append(result)
    cut.close()

    with pytest.raises(InvalidSearchError, match="resume=True"):
        search(cut_url).fit(X, y)
    resumed = search(cut_url).fit(X, y, resume=True)
    assert len(resumed.store_) == len(records)  # only the missing half was computed
    a, b = full.cv_results_, resumed.cv_results_
    assert list(a["trial_id"]) == list(b["trial_id"]) and list(a["rung"]) == list(b["rung"])
    np.testing.assert_allclose(a["mean_test_score"], b["mean_test_score"], rtol=0, atol=1e-12)
    assert resumed.best_params_ == full.best_params_


def test_bohb_search_runs_hyperbands_table_with_model_based_candidates(client):
    from daskhpo import BOHBSearchCV, Float

    search = BOHBSearchCV(
        SGDClassifier(tol=None, random_state=0),
        {"alpha": Float(1e-5, 1e-1, log=True), "eta0": Float(1e-3, 1e-1, log=True)},
        max_budget=9,
        chunk_size=60,
        random_state=0,
        client=client,
    ).fit(X, y)
    res = search.cv_results_
    assert set(res["bracket"]) == {0, 1, 2} and max(res["budget"]) == 9
    assert search.metadata_["n_model_based"] > 0
    for p in res["params"]:
        assert 1e-5 <= p["alpha"] <= 1e-1 and 1e-3 <= p["eta0"] <= 1e-1
    assert res["budget"][search.best_index_] == 9
