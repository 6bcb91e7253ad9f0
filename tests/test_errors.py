"""Bad input fails before any cluster work, with an error that names the parameter and the fix."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from daskhpo import (
    DaskHPOError,
    GridSearchCV,
    InvalidSearchError,
    InvalidSearchTypeError,
    RandomizedSearchCV,
)

X, y = load_iris(return_X_y=True)


class _NoCluster:
    """Stands where a client would be: any use of it means cluster work started."""

    def __getattr__(self, name):
        raise AssertionError(f"cluster work started before validation (client.{name})")


@pytest.fixture
def no_cluster(monkeypatch):
    import daskhpo.run

    def refuse(*args, **kwargs):
        raise AssertionError("get_client was called before validation finished")

    monkeypatch.setattr(daskhpo.run, "get_client", refuse)


TREE = DecisionTreeClassifier(random_state=0)


@pytest.mark.parametrize(
    ("make", "exc", "words"),
    [
        (
            lambda: GridSearchCV(TREE, {"max_dept": [1, 2]}),
            InvalidSearchError,
            ["'max_dept'", "'max_depth'"],
        ),
        (
            lambda: GridSearchCV(TREE, {"max_depth": []}),
            InvalidSearchError,
            ["param_grid['max_depth']", "empty"],
        ),
        (lambda: GridSearchCV(TREE, []), InvalidSearchError, ["param_grid=[]", "empty"]),
        (
            lambda: GridSearchCV(TREE, {"max_depth": 3}),
            InvalidSearchTypeError,
            ["param_grid['max_depth']", "[3]"],
        ),
        (
            lambda: GridSearchCV(TREE, {"criterion": "gini"}),
            InvalidSearchTypeError,
            ["wrapped in a list", "['gini']"],
        ),
        (
            lambda: GridSearchCV(TREE, "max_depth"),
            InvalidSearchTypeError,
            ["param_grid must be a dict"],
        ),
        (
            lambda: RandomizedSearchCV(TREE, {"max_depth": [1, 2]}, n_iter=0),
            InvalidSearchError,
            ["n_iter=0"],
        ),
        (
            lambda: RandomizedSearchCV(TREE, {"max_depth": [1, 2]}, n_iter=-3),
            InvalidSearchError,
            ["n_iter=-3"],
        ),
        (
            lambda: RandomizedSearchCV(TREE, {"max_depth": 5}),
            InvalidSearchTypeError,
            ["param_distributions['max_depth']"],
        ),
        (
            lambda: GridSearchCV(TREE, {"max_depth": [1]}, scoring="acuracy"),
            InvalidSearchError,
            ["scoring='acuracy'", "'accuracy'"],
        ),
        (
            lambda: GridSearchCV(TREE, {"max_depth": [1]}, error_score="ignore"),
            InvalidSearchError,
            ["error_score='ignore'"],
        ),
        (
            lambda: GridSearchCV(TREE, {"max_depth": [1]}, n_jobs=0),
            InvalidSearchError,
            ["n_jobs=0"],
        ),
        (
            lambda: GridSearchCV(TREE, {"max_depth": [1]}, refit=3.5),
            InvalidSearchTypeError,
            ["refit=3.5"],
        ),
        (
            lambda: GridSearchCV(
                TREE, {"max_depth": [1]}, scoring=["accuracy", "f1_macro"], refit="auc"
            ),
            InvalidSearchError,
            ["refit='auc'", "'accuracy'"],
        ),
        (
            lambda: GridSearchCV("tree", {"max_depth": [1]}),
            InvalidSearchTypeError,
            ["estimator='tree'", "fit"],
        ),
        (
            lambda: GridSearchCV(
                Pipeline([("sc", StandardScaler()), ("lr", LogisticRegression())]),
                {"lr__CC": [1.0]},
            ),
            InvalidSearchError,
            ["'lr__CC'", "'lr__C'"],
        ),
    ],
)
def test_bad_settings_name_the_parameter(make, exc, words, no_cluster):
    search = make()
    with pytest.raises(exc) as info:
        search.fit(X, y)
    assert isinstance(info.value, DaskHPOError)
    assert isinstance(info.value, ValueError)
    for word in words:
        assert word in str(info.value)


def test_mismatched_lengths_name_x_and_y(no_cluster):
    with pytest.raises(InvalidSearchError, match=r"X has 150 samples but y has 149"):
        GridSearchCV(TREE, {"max_depth": [1]}).fit(X, y[:-1])


def test_cv_larger_than_the_smallest_class_warns_before_any_cluster_work(no_cluster):
    # scikit-learn splits such data with a warning, so daskhpo does too, in clearer words.
    y_rare = y.copy()
    y_rare[:48] = 1  # class 0 keeps 2 members
    with (
        pytest.warns(
            UserWarning, match=r"cv=5 asks for 5 stratified folds but class 0 .* only 2"
        ) as rec,
        pytest.raises(AssertionError, match="get_client was called"),
    ):
        GridSearchCV(TREE, {"max_depth": [1]}, cv=5).fit(X, y_rare)
    text = "\n".join(str(w.message) for w in rec)
    assert "cv=2" in text
    assert "The least populated class in y has only 2 members" in text
    assert text.count("least populated") == 1  # scikit-learn's own warning is not repeated


def test_stratified_cv_no_class_can_fill_refused(no_cluster):
    with pytest.raises(InvalidSearchError, match=r"cv=5 asks for 5 stratified folds"):
        GridSearchCV(TREE, {"max_depth": [1]}, cv=5).fit(X[:8], np.array([0, 1, 2, 3] * 2))


def test_cv_larger_than_the_samples(no_cluster):
    with pytest.raises(InvalidSearchError, match=r"cv=10 cannot split"):
        GridSearchCV(DecisionTreeRegressor(), {"max_depth": [1]}, cv=10).fit(X[:5], np.arange(5.0))


def test_class_with_one_member_is_named_in_the_warning(no_cluster):
    y_one = y.copy()
    y_one[:49] = 1
    with (
        pytest.warns(UserWarning, match=r"only 1 member\(s\): drop or merge that class"),
        pytest.raises(AssertionError, match="get_client was called"),
    ):
        GridSearchCV(TREE, {"max_depth": [1]}, cv=3).fit(X, y_one)


def test_bad_client_type(no_cluster):
    import daskhpo.cluster

    with pytest.raises(InvalidSearchTypeError, match=r"client=42"):
        daskhpo.cluster.get_client(42)


@pytest.mark.timeout(60)  # a hang guard, not a speed target
def test_unreachable_scheduler_fails_fast():
    from daskhpo import ClusterError
    from daskhpo.cluster import get_client

    # The call gave up on its own 2 s timeout, and the error says so.
    with pytest.raises(ClusterError, match=r"cluster='tcp://127.0.0.1:1'") as info:
        get_client("tcp://127.0.0.1:1", timeout=2)
    assert "no Dask scheduler answered at tcp://127.0.0.1:1 within 2 s" in str(info.value)


def test_space_dimensions_reject_bad_bounds():
    from daskhpo import Categorical, Float, Int

    with pytest.raises(InvalidSearchError, match="low must be finite and below high"):
        Float(1.0, 0.5)
    with pytest.raises(InvalidSearchError, match="log=True"):
        Float(0.0, 1.0, log=True)
    with pytest.raises(InvalidSearchError, match="low must be <= high"):
        Int(5, 1)
    with pytest.raises(InvalidSearchError, match="at least one choice"):
        Categorical([])


def test_unknown_scoring_name_suggests_the_close_one_not_every_name(no_cluster):
    with pytest.raises(InvalidSearchError) as info:
        GridSearchCV(TREE, {"max_depth": [1]}, scoring="acuracy").fit(X, y)
    text = str(info.value)
    assert "'acuracy' is not a valid scoring value. Did you mean 'accuracy'" in text
    assert "neg_mean_squared_error" not in text  # not the list of every scorer
    with pytest.raises(InvalidSearchError, match=r"'f1_macr' is not a valid.*'f1_macro'"):
        GridSearchCV(
            TREE, {"max_depth": [1]}, scoring={"a": "accuracy", "b": "f1_macr"}, refit="a"
        ).fit(X, y)


def test_unfrozen_scipy_distribution_is_named_with_the_fix(no_cluster):
    import scipy.stats

    with pytest.raises(InvalidSearchTypeError) as info:
        RandomizedSearchCV(TREE, {"max_depth": scipy.stats.randint}).fit(X, y)
    text = str(info.value)
    assert "param_distributions['max_depth'] = scipy.stats.randint is a family" in text
    assert "scipy.stats.randint(1, 10)" in text


def test_default_min_budget_above_max_budget_says_what_the_budget_counts(no_cluster):
    from daskhpo import HyperbandSearchCV

    with pytest.raises(InvalidSearchError) as info:
        HyperbandSearchCV(TREE, {"max_depth": [1, 2, 3]}, max_budget=2).fit(X, y)
    text = str(info.value)
    assert "max_budget=2 is below the smallest budget 30 (the default min_budget" in text
    assert "training samples per fit" in text and "resource='n_samples'" in text
