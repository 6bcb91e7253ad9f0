"""Parity with scikit-learn: same estimator, grid and folds give the same ``cv_results_`` and best.

Every test fits a daskhpo search on the session's 2-worker LocalCluster and the scikit-learn search of
the same name on the same inputs, then compares what a user sees: the ``cv_results_`` keys, candidates,
masked ``param_*`` arrays, ranks and scores (within 1e-12), the best candidate, and the refitted model.
"""

from __future__ import annotations

import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
import scipy.stats as st
from numpy.testing import assert_allclose, assert_array_equal
from sklearn import model_selection as skms
from sklearn.base import clone
from sklearn.datasets import load_digits, load_iris, make_classification, make_regression
from sklearn.decomposition import PCA
from sklearn.exceptions import FitFailedWarning
from sklearn.feature_selection import SelectKBest
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, make_scorer
from sklearn.model_selection import (
    GroupKFold,
    KFold,
    LeaveOneGroupOut,
    RepeatedKFold,
    ShuffleSplit,
    StratifiedKFold,
)
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler, TargetEncoder
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from daskhpo import Categorical, Float, GridSearchCV, Int, RandomizedSearchCV

# --- data -------------------------------------------------------------------------------------------

X_IRIS, Y_IRIS = load_iris(return_X_y=True)
X_BIN, Y_BIN = make_classification(
    n_samples=200, n_features=10, n_informative=4, n_redundant=2, random_state=0
)
X_REG, Y_REG = make_regression(n_samples=150, n_features=6, noise=10.0, random_state=0)
X_DIGITS, Y_DIGITS = load_digits(return_X_y=True)
X_DIGITS, Y_DIGITS = X_DIGITS[:300], Y_DIGITS[:300]
GROUPS_IRIS = np.arange(len(Y_IRIS)) % 5
WEIGHTS_BIN = np.random.RandomState(0).uniform(0.1, 3.0, size=len(Y_BIN))
WEIGHTS_IRIS = np.random.RandomState(1).uniform(0.1, 3.0, size=len(Y_IRIS))

OURS = {"grid": GridSearchCV, "random": RandomizedSearchCV}
THEIRS = {"grid": skms.GridSearchCV, "random": skms.RandomizedSearchCV}
TIME_KEYS = {"mean_fit_time", "std_fit_time", "mean_score_time", "std_score_time"}


# --- helpers ----------------------------------------------------------------------------------------


def assert_same_results(ours, theirs):
    """``cv_results_`` and the best candidate of ``ours`` are the same as scikit-learn's ``theirs``."""
    a, b = ours.cv_results_, theirs.cv_results_
    assert set(a) == set(b), (
        f"keys differ: only ours {set(a) - set(b)}, only sklearn {set(b) - set(a)}"
    )
    assert any(k.startswith("split0_test_") for k in b)  # never a vacuous comparison
    assert a["params"] == b["params"]
    for key in b:
        if key in TIME_KEYS or key == "params":
            continue
        if key.startswith("param_"):
            assert isinstance(a[key], np.ma.MaskedArray), key
            assert a[key].dtype == b[key].dtype, key
            mask = np.ma.getmaskarray(b[key])
            assert_array_equal(np.ma.getmaskarray(a[key]), mask, err_msg=key)
            assert list(a[key].data[~mask]) == list(b[key].data[~mask]), key
        elif key.startswith("rank_"):
            assert a[key].dtype == b[key].dtype, key
            assert_array_equal(a[key], b[key], err_msg=key)
        else:
            assert_allclose(a[key], b[key], rtol=0, atol=1e-12, err_msg=key)
    assert ours.multimetric_ == theirs.multimetric_
    assert ours.n_splits_ == theirs.n_splits_
    for attr in ("best_index_", "best_params_"):
        assert hasattr(ours, attr) == hasattr(theirs, attr), attr
        if hasattr(theirs, attr):
            assert getattr(ours, attr) == getattr(theirs, attr), attr
    assert hasattr(ours, "best_score_") == hasattr(theirs, "best_score_")
    if hasattr(theirs, "best_score_"):
        assert_allclose(ours.best_score_, theirs.best_score_, rtol=0, atol=1e-12)
    assert hasattr(ours, "best_estimator_") == hasattr(theirs, "best_estimator_")


def fit_pair(kind, estimator, space, X, y=None, *, client, fit_params=None, **kwargs):
    """Fit daskhpo's and scikit-learn's search of ``kind`` on the same inputs; return both."""
    fit_params = fit_params or {}
    ours = OURS[kind](clone(estimator), space, client=client, **kwargs).fit(X, y, **fit_params)
    theirs = THEIRS[kind](clone(estimator), space, **kwargs).fit(X, y, **fit_params)
    return ours, theirs


def _pipe_score(est, X, y):
    """A plain scoring callable that needs the whole fitted pipeline, not only its last step."""
    if not isinstance(est, Pipeline):
        raise TypeError(f"expected the whole pipeline, got {type(est).__name__}")
    n_components = est.named_steps["pca"].n_components_
    return float(np.mean(est.predict(X) == y)) - 1e-3 * n_components


def _two_metrics(est, X, y):
    pred = est.predict(X)
    return {"acc": accuracy_score(y, pred), "f1": f1_score(y, pred, average="macro")}


def _worst_index(cv_results):
    """A refit callable that differs from the default choice: the lowest mean test score."""
    key = "mean_test_acc" if "mean_test_acc" in cv_results else "mean_test_score"
    return int(np.argmin(cv_results[key]))


# --- 1. estimators -------------------------------------------------------------------------------

ESTIMATOR_CASES = {
    "tree": (
        DecisionTreeClassifier(random_state=0),
        {"max_depth": [1, 2, 3, None], "criterion": ["gini", "entropy"]},
        X_IRIS,
        Y_IRIS,
        None,
    ),
    "logreg": (
        LogisticRegression(max_iter=2000),
        {"C": [0.01, 0.1, 1.0, 10.0]},
        X_BIN,
        Y_BIN,
        "neg_log_loss",
    ),
    "knn": (
        KNeighborsClassifier(),
        {"n_neighbors": [1, 3, 7, 15], "weights": ["uniform", "distance"]},
        X_IRIS,
        Y_IRIS,
        None,
    ),
    "ridge": (Ridge(), {"alpha": [0.01, 1.0, 100.0]}, X_REG, Y_REG, None),
    "tree_regressor": (
        DecisionTreeRegressor(random_state=0),
        {"max_depth": [2, 4, None], "min_samples_leaf": [1, 5]},
        X_REG,
        Y_REG,
        "neg_mean_absolute_error",
    ),
    "svc": (
        SVC(),
        {"C": [0.1, 1.0, 10.0], "kernel": ["linear", "rbf"]},
        X_BIN,
        Y_BIN,
        None,
    ),
}


@pytest.mark.parametrize("case", list(ESTIMATOR_CASES))
def test_estimators_match_sklearn(client, case):
    estimator, grid, X, y, scoring = ESTIMATOR_CASES[case]
    ours, theirs = fit_pair(
        "grid", estimator, grid, X, y, client=client, scoring=scoring, cv=4, return_train_score=True
    )
    assert_same_results(ours, theirs)
    assert any(k.startswith("split0_train_") for k in ours.cv_results_)
    assert ours.best_estimator_.get_params() == theirs.best_estimator_.get_params()
    assert_array_equal(ours.predict(X), theirs.predict(X))


def _digits_pipeline(final="clf"):
    return Pipeline(
        [
            ("scale", StandardScaler()),
            ("pca", PCA(random_state=0)),
            (final, LogisticRegression(max_iter=2000)),
        ]
    )


PIPE_GRID = {"pca__n_components": [5, 10, 20], "clf__C": [0.1, 1.0, 10.0]}


@pytest.mark.parametrize("scoring", [None, "accuracy", "neg_log_loss"])
def test_pipeline_prefix_sharing_matches_sklearn(client, scoring):
    ours, theirs = fit_pair(
        "grid",
        _digits_pipeline(),
        PIPE_GRID,
        X_DIGITS,
        Y_DIGITS,
        client=client,
        scoring=scoring,
        cv=3,
        return_train_score=True,
    )
    assert_same_results(ours, theirs)
    # The leading steps were fitted once per (setting, fold) and shared by the 3 values of C.
    assert ours.stats_["prefix_tasks"] == 3 * 3
    assert_array_equal(ours.predict(X_DIGITS), theirs.predict(X_DIGITS))


@pytest.mark.parametrize(
    "final",
    [
        # ParameterGrid sorts keys: "clf__C" varies slowest, so the candidates sharing a prefix are
        # spread over the grid and the first ones finish before the later ones are submitted.
        "clf",
        "z_clf",  # "pca__n_components" varies slowest: candidates sharing a prefix are adjacent
    ],
)
def test_pipeline_prefix_fitted_once_per_setting_and_fold(client, final):
    grid = {"pca__n_components": [5, 10, 20], f"{final}__C": [0.1, 1.0, 10.0]}
    search = GridSearchCV(_digits_pipeline(final), grid, cv=3, client=client)
    search.fit(X_DIGITS, Y_DIGITS)
    # 3 distinct (scale, pca) settings x 3 folds, each fitted once and shared by the 3 values of C.
    assert search.stats_["prefix_tasks"] == 3 * 3


def test_pipeline_custom_scoring_callable_scores_whole_pipeline(client):
    ours, theirs = fit_pair(
        "grid",
        _digits_pipeline(),
        PIPE_GRID,
        X_DIGITS,
        Y_DIGITS,
        client=client,
        scoring=_pipe_score,
        cv=3,
        error_score="raise",
        return_train_score=True,
    )
    assert_same_results(ours, theirs)
    assert ours.stats_["prefix_tasks"] >= 3 * 3


def _categorical_data():
    rng = np.random.RandomState(0)
    X = rng.randint(0, 8, size=(300, 3))
    y = (X[:, 0] % 3 == 0).astype(int) ^ (rng.rand(300) < 0.2)
    return X, y


def test_pipeline_train_scores_use_transform_not_fit_transform(client):
    # TargetEncoder.fit_transform cross-fits, so it differs from fit(X).transform(X) on purpose.
    X, y = _categorical_data()
    pipe = Pipeline(
        [
            ("enc", TargetEncoder(cv=KFold(5, shuffle=True, random_state=0))),
            ("clf", LogisticRegression()),
        ]
    )
    grid = {"enc__smooth": [1.0, 10.0], "clf__C": [0.1, 1.0, 10.0]}
    ours, theirs = fit_pair(
        "grid",
        pipe,
        grid,
        X,
        y,
        client=client,
        cv=3,
        scoring="neg_log_loss",
        return_train_score=True,
    )
    assert ours.stats_["prefix_tasks"] > 0
    assert_same_results(ours, theirs)


def test_pipeline_failing_prefix_scores_error_score_like_sklearn(client):
    grid = {"pca__n_components": [5, 100], "clf__C": [0.1, 1.0, 10.0]}  # 100 > 64 features
    with pytest.warns(FitFailedWarning):
        ours = GridSearchCV(_digits_pipeline(), grid, cv=3, client=client).fit(X_DIGITS, Y_DIGITS)
    with pytest.warns(FitFailedWarning):
        theirs = skms.GridSearchCV(_digits_pipeline(), grid, cv=3).fit(X_DIGITS, Y_DIGITS)
    assert ours.stats_["prefix_tasks"] > 0
    assert_same_results(ours, theirs)
    failing = np.array([p["pca__n_components"] == 100 for p in ours.cv_results_["params"]])
    assert np.isnan(ours.cv_results_["mean_test_score"][failing]).all()
    assert np.isfinite(ours.cv_results_["mean_test_score"][~failing]).all()


# --- 2. CV splitters ------------------------------------------------------------------------------

_PERM = np.random.RandomState(0).permutation(len(Y_IRIS))
CV_CASES = {
    "int": (3, False),
    "kfold_shuffle": (KFold(4, shuffle=True, random_state=0), False),
    "stratified": (StratifiedKFold(4, shuffle=True, random_state=1), False),
    "shuffle_split": (ShuffleSplit(n_splits=4, test_size=0.25, random_state=0), False),
    "group_kfold": (GroupKFold(n_splits=3), True),
    "explicit_pairs": (
        [(_PERM[:100], _PERM[100:]), (_PERM[50:], _PERM[:50]), (_PERM[:120], _PERM[120:])],
        False,
    ),
    "leave_one_group_out": (LeaveOneGroupOut(), True),
    "repeated_kfold": (RepeatedKFold(n_splits=3, n_repeats=2, random_state=0), False),
}


@pytest.mark.parametrize("case", list(CV_CASES))
def test_cv_splitters_match_sklearn(client, case):
    cv, needs_groups = CV_CASES[case]
    fit_params = {"groups": GROUPS_IRIS} if needs_groups else None
    ours, theirs = fit_pair(
        "grid",
        LogisticRegression(max_iter=2000),
        {"C": [0.03, 0.3, 3.0]},
        X_IRIS,
        Y_IRIS,
        client=client,
        scoring="neg_log_loss",
        cv=cv,
        fit_params=fit_params,
    )
    assert_same_results(ours, theirs)
    expected = {"group_kfold": 3, "leave_one_group_out": 5, "repeated_kfold": 6}.get(case)
    if expected is not None:
        assert ours.n_splits_ == expected


# --- 3./4. multi-metric scoring and refit ------------------------------------------------------------

KNN_GRID = {"n_neighbors": [1, 5, 15, 40]}
MULTI_CASES = {
    "list": dict(scoring=["accuracy", "f1_macro"], refit="accuracy"),
    "dict": dict(
        scoring={"acc": "accuracy", "bal": make_scorer(balanced_accuracy_score)}, refit="acc"
    ),
    "refit_false": dict(scoring=["accuracy", "f1_macro"], refit=False),
    "refit_callable_single": dict(scoring="accuracy", refit=_worst_index),
    "refit_callable_multi": dict(
        scoring={"acc": "accuracy", "bal": make_scorer(balanced_accuracy_score)},
        refit=_worst_index,
    ),
    "callable_returning_dict": dict(scoring=_two_metrics, refit="acc"),
}


@pytest.mark.parametrize("case", list(MULTI_CASES))
def test_multimetric_and_refit_match_sklearn(client, case):
    kwargs = MULTI_CASES[case]
    ours, theirs = fit_pair(
        "grid",
        KNeighborsClassifier(),
        KNN_GRID,
        X_BIN,
        Y_BIN,
        client=client,
        cv=StratifiedKFold(4, shuffle=True, random_state=0),
        return_train_score=True,
        **kwargs,
    )
    assert_same_results(ours, theirs)
    if case == "refit_false":
        assert ours.multimetric_ is True
        assert not hasattr(ours, "best_estimator_")
        assert not hasattr(ours, "best_index_")
        assert not hasattr(ours, "predict")
    elif callable(kwargs["refit"]):
        assert not hasattr(ours, "best_score_")
        # The callable picks the worst candidate, not the one the default refit would pick.
        assert ours.best_params_ == {"n_neighbors": 40}
        assert_array_equal(ours.predict(X_BIN), theirs.predict(X_BIN))
    else:
        assert ours.multimetric_ is True
        assert_array_equal(ours.predict(X_BIN), theirs.predict(X_BIN))


# --- 5. randomized search ---------------------------------------------------------------------------

RANDOM_CASES = {
    "loguniform": (
        LogisticRegression(max_iter=2000),
        {"C": st.loguniform(1e-3, 1e2)},
        "neg_log_loss",
    ),
    "randint": (
        DecisionTreeClassifier(random_state=0),
        {"max_depth": st.randint(1, 8), "min_samples_leaf": st.randint(1, 20)},
        None,
    ),
    "mixed": (
        DecisionTreeClassifier(random_state=0),
        {"max_depth": st.randint(1, 8), "criterion": ["gini", "entropy"]},
        None,
    ),
    "lists_only": (
        DecisionTreeClassifier(random_state=0),
        {"max_depth": [1, 2, 3, 4, 5, None], "criterion": ["gini", "entropy", "log_loss"]},
        None,
    ),
}


@pytest.mark.parametrize("case", list(RANDOM_CASES))
def test_randomized_search_matches_sklearn(client, case):
    estimator, dists, scoring = RANDOM_CASES[case]
    ours, theirs = fit_pair(
        "random",
        estimator,
        dists,
        X_BIN,
        Y_BIN,
        client=client,
        n_iter=8,
        random_state=0,
        scoring=scoring,
        cv=3,
    )
    assert_same_results(ours, theirs)
    assert len(ours.cv_results_["params"]) == 8
    if case == "lists_only":  # sampled without replacement
        assert len({tuple(sorted(p.items(), key=str)) for p in ours.cv_results_["params"]}) == 8


def _dims_pipeline():
    return Pipeline([("select", SelectKBest()), ("clf", LogisticRegression(max_iter=2000))])


DIMS = {
    "select__k": Int(1, 10),
    "clf__C": Float(1e-3, 1e2, log=True),
    "clf__class_weight": Categorical([None, "balanced"]),
}


def test_randomized_search_with_daskhpo_dimensions(client):
    kwargs = dict(n_iter=8, cv=3, scoring="neg_log_loss")
    first = RandomizedSearchCV(_dims_pipeline(), DIMS, random_state=0, client=client, **kwargs)
    first.fit(X_BIN, Y_BIN)
    params = first.cv_results_["params"]
    assert len(params) == 8
    for p in params:
        assert isinstance(p["select__k"], int) and 1 <= p["select__k"] <= 10
        assert 1e-3 <= p["clf__C"] <= 1e2
        assert p["clf__class_weight"] in (None, "balanced")
    assert len({p["clf__C"] for p in params}) == 8
    assert np.isfinite(first.cv_results_["mean_test_score"]).all()

    again = RandomizedSearchCV(_dims_pipeline(), DIMS, random_state=0, client=client, **kwargs)
    again.fit(X_BIN, Y_BIN)
    assert again.cv_results_["params"] == params
    assert_allclose(
        again.cv_results_["mean_test_score"], first.cv_results_["mean_test_score"], rtol=0, atol=0
    )
    other = RandomizedSearchCV(_dims_pipeline(), DIMS, random_state=1, client=client, **kwargs)
    other.fit(X_BIN, Y_BIN)
    assert other.cv_results_["params"] != params

    # The dimensions have an rvs method, so scikit-learn's own search samples them identically.
    theirs = skms.RandomizedSearchCV(_dims_pipeline(), DIMS, random_state=0, **kwargs)
    assert_same_results(first, theirs.fit(X_BIN, Y_BIN))


# --- 6. inputs --------------------------------------------------------------------------------------

IRIS_COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
DF_IRIS = pd.DataFrame(X_IRIS, columns=IRIS_COLUMNS)
S_IRIS = pd.Series(Y_IRIS, name="species")
INPUT_GRID = {"C": [0.03, 0.3, 3.0]}
INPUT_KW = dict(scoring="neg_log_loss", cv=StratifiedKFold(3, shuffle=True, random_state=0))


def test_pandas_input_matches_sklearn(client):
    ours, theirs = fit_pair(
        "grid",
        LogisticRegression(max_iter=2000),
        INPUT_GRID,
        DF_IRIS,
        S_IRIS,
        client=client,
        **INPUT_KW,
    )
    assert_same_results(ours, theirs)
    assert_array_equal(ours.feature_names_in_, theirs.feature_names_in_)
    assert list(ours.feature_names_in_) == IRIS_COLUMNS
    assert_array_equal(ours.predict(DF_IRIS), theirs.predict(DF_IRIS))


def _dask_inputs(kind):
    if kind == "dask_array":
        return da.from_array(X_IRIS, chunks=(40, 4)), da.from_array(Y_IRIS, chunks=40)
    if kind == "dask_array_numpy_y":
        return da.from_array(X_IRIS, chunks=(50, 4)), Y_IRIS
    if kind == "dask_dataframe":
        return dd.from_pandas(DF_IRIS, npartitions=3), dd.from_pandas(S_IRIS, npartitions=3)
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["dask_array", "dask_array_numpy_y", "dask_dataframe"])
def test_dask_inputs_match_numpy(client, kind):
    X, y = _dask_inputs(kind)
    est = LogisticRegression(max_iter=2000)
    ours = GridSearchCV(est, INPUT_GRID, client=client, **INPUT_KW).fit(X, y)
    sk_X = DF_IRIS if kind == "dask_dataframe" else X_IRIS
    theirs = skms.GridSearchCV(est, INPUT_GRID, **INPUT_KW).fit(sk_X, Y_IRIS)
    assert_same_results(ours, theirs)
    assert hasattr(ours, "feature_names_in_") == hasattr(theirs, "feature_names_in_")
    if kind == "dask_dataframe":
        assert_array_equal(ours.feature_names_in_, theirs.feature_names_in_)
    assert_array_equal(ours.predict(sk_X), theirs.predict(sk_X))


# --- 7. delegation, clone, params ---------------------------------------------------------------------


def test_fitted_search_delegates_like_sklearn(client):
    ours, theirs = fit_pair(
        "grid",
        LogisticRegression(max_iter=2000),
        {"C": [0.01, 0.1, 1.0]},
        X_IRIS,
        Y_IRIS,
        client=client,
        cv=5,
    )
    assert_same_results(ours, theirs)
    assert ours.best_estimator_.get_params() == theirs.best_estimator_.get_params()
    assert_array_equal(ours.classes_, theirs.classes_)
    assert ours.n_features_in_ == theirs.n_features_in_ == 4
    assert ours.n_splits_ == 5
    assert_array_equal(ours.predict(X_IRIS), theirs.predict(X_IRIS))
    assert_allclose(ours.predict_proba(X_IRIS), theirs.predict_proba(X_IRIS), rtol=0, atol=1e-12)
    assert_allclose(
        ours.decision_function(X_IRIS), theirs.decision_function(X_IRIS), rtol=0, atol=1e-12
    )
    assert ours.score(X_IRIS, Y_IRIS) == theirs.score(X_IRIS, Y_IRIS)
    assert isinstance(ours.refit_time_, float) and ours.refit_time_ >= 0
    assert type(ours.scorer_) is type(theirs.scorer_)


def test_clone_keeps_client_and_is_unfitted(client):
    search = GridSearchCV(
        LogisticRegression(max_iter=2000), {"C": [0.1, 1.0]}, cv=3, client=client
    ).fit(X_IRIS, Y_IRIS)
    copy = clone(search)
    assert copy.client is client
    assert not hasattr(copy, "cv_results_") and not hasattr(copy, "best_estimator_")
    assert copy.param_grid == search.param_grid and copy.param_grid is not search.param_grid
    assert copy.estimator is not search.estimator
    assert copy.get_params(deep=False).keys() == search.get_params(deep=False).keys()
    copy.fit(X_IRIS, Y_IRIS)
    assert_allclose(
        copy.cv_results_["mean_test_score"],
        search.cv_results_["mean_test_score"],
        rtol=0,
        atol=1e-12,
    )
    assert copy.best_params_ == search.best_params_


def test_get_params_set_params_round_trip(client):
    search = RandomizedSearchCV(
        LogisticRegression(), {"C": st.loguniform(1e-2, 1e2)}, n_iter=3, client=client
    )
    params = search.get_params(deep=False)
    assert params["client"] is client
    assert params["n_iter"] == 3
    fresh = RandomizedSearchCV(DecisionTreeClassifier(), {"max_depth": [1]})
    fresh.set_params(**params)
    round_trip = fresh.get_params(deep=False)
    assert round_trip.keys() == params.keys()
    assert all(round_trip[k] is params[k] for k in params)
    deep = search.get_params(deep=True)
    assert deep["estimator__C"] == 1.0
    search.set_params(estimator__C=5.0, cv=4)
    assert search.estimator.C == 5.0 and search.get_params()["cv"] == 4


# --- 8. fit params ---------------------------------------------------------------------------------

WEIGHT_CASES = {
    "logreg": (
        LogisticRegression(max_iter=2000),
        {"C": [0.01, 0.1, 1.0]},
        X_BIN,
        Y_BIN,
        "sample_weight",
        WEIGHTS_BIN,
    ),
    "tree": (
        DecisionTreeClassifier(random_state=0),
        {"max_depth": [2, 3, None]},
        X_IRIS,
        Y_IRIS,
        "sample_weight",
        WEIGHTS_IRIS,
    ),
    "pipeline": (
        Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression(max_iter=2000))]),
        {"scale__with_mean": [True, False], "clf__C": [0.01, 0.1, 1.0]},
        X_BIN,
        Y_BIN,
        "clf__sample_weight",
        WEIGHTS_BIN,
    ),
}


@pytest.mark.parametrize("case", list(WEIGHT_CASES))
def test_sample_weight_matches_sklearn(client, case):
    estimator, grid, X, y, name, weights = WEIGHT_CASES[case]
    ours, theirs = fit_pair(
        "grid",
        estimator,
        grid,
        X,
        y,
        client=client,
        cv=3,
        scoring="neg_log_loss",
        return_train_score=True,
        fit_params={name: weights},
    )
    assert_same_results(ours, theirs)
    unweighted = GridSearchCV(estimator, grid, cv=3, scoring="neg_log_loss", client=client).fit(
        X, y
    )
    # The weights reached the fits: scores differ from an unweighted search.
    assert not np.allclose(
        unweighted.cv_results_["mean_test_score"], ours.cv_results_["mean_test_score"]
    )


# --- 9. duplicated candidates ---------------------------------------------------------------------

DUPLICATE_CASES = {
    "overlapping_lists": ([{"max_depth": [1, 2, 3]}, {"max_depth": [3, 4]}], 1),
    "overlap_other_key_order": (
        [
            {"max_depth": [2, 3], "criterion": ["gini"]},
            {"criterion": ["gini", "entropy"], "max_depth": [3]},
        ],
        1,
    ),
    "int_and_float_are_different": ({"max_features": [1, 1.0, 2]}, 0),
}


@pytest.mark.parametrize("case", list(DUPLICATE_CASES))
def test_duplicated_candidates_computed_once(client, case):
    grid, n_duplicates = DUPLICATE_CASES[case]
    ours, theirs = fit_pair(
        "grid", DecisionTreeClassifier(random_state=0), grid, X_IRIS, Y_IRIS, client=client, cv=4
    )
    assert_same_results(ours, theirs)
    assert ours.stats_["units_shared"] == 4 * n_duplicates
    n_candidates = len(ours.cv_results_["params"])
    assert ours.stats_["units_computed"] == 4 * (n_candidates - n_duplicates)


# --- failing fits ----------------------------------------------------------------------------------


def test_failing_candidates_score_error_score_like_sklearn(client):
    grid = {"max_depth": [-1, 2, 3]}  # max_depth=-1 fails every fit
    with pytest.warns(FitFailedWarning):
        ours = GridSearchCV(
            DecisionTreeClassifier(random_state=0), grid, cv=3, error_score=np.nan, client=client
        ).fit(X_IRIS, Y_IRIS)
    with pytest.warns(FitFailedWarning):
        theirs = skms.GridSearchCV(
            DecisionTreeClassifier(random_state=0), grid, cv=3, error_score=np.nan
        ).fit(X_IRIS, Y_IRIS)
    assert_same_results(ours, theirs)
    assert np.isnan(ours.cv_results_["mean_test_score"][0])
