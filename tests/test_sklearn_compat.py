"""Drop-in behaviour a scikit-learn user relies on, checked on the real LocalCluster.

The cases of scikit-learn's own suite that cannot observe this from another process (see
tests/conformance/expected.py) are checked here in ways that can.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest
import sklearn
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.cluster import KMeans
from sklearn.datasets import make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, make_scorer
from sklearn.model_selection import GridSearchCV as SkGrid
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

import daskhpo
from daskhpo import BaseSearchCV, GridSearchCV, RandomizedSearchCV

X, y = make_classification(n_samples=120, n_features=6, n_informative=4, random_state=0)


def assert_same_results(ours, theirs):
    assert sorted(ours) == sorted(theirs)
    for key in theirs:
        if key.endswith("_time"):
            continue
        a, b = ours[key], theirs[key]
        if isinstance(b, np.ma.MaskedArray):
            assert list(np.ma.getmaskarray(a)) == list(np.ma.getmaskarray(b)), key
            a, b = a.compressed(), b.compressed()
        a, b = np.asarray(a), np.asarray(b)
        if b.dtype.kind == "O":
            assert list(a) == list(b), key
        else:
            np.testing.assert_allclose(a.astype(float), b.astype(float), err_msg=key)


class TwoRounds(BaseSearchCV):
    """A custom search, written as scikit-learn's users write them."""

    def _run_search(self, evaluate_candidates):
        self.seen_ = []
        results = evaluate_candidates([{"max_depth": 1}, {"max_depth": 2}])
        self.seen_.append(len(results["params"]))
        results = evaluate_candidates([{"min_samples_split": 5}, {"min_samples_split": 10}])
        self.seen_.append(len(results["params"]))


def test_custom_run_search_matches_grid_search(client, tmp_path):
    est = DecisionTreeRegressor(random_state=0)
    grid = [{"max_depth": [1, 2]}, {"min_samples_split": [5, 10]}]
    db = f"sqlite:///{tmp_path / 'custom.db'}"
    ours = TwoRounds(est, client=client, storage=db, name="two").fit(X, y)
    theirs = SkGrid(est, grid, return_train_score=True).fit(X, y)
    assert ours.seen_ == [2, 4]  # each call returns the results of every candidate so far
    assert_same_results(ours.cv_results_, theirs.cv_results_)
    assert ours.best_params_ == theirs.best_params_
    assert ours.best_score_ == pytest.approx(theirs.best_score_)
    assert ours.best_estimator_.get_params() == theirs.best_estimator_.get_params()
    # Every evaluation went through the store, with trial ids that go on across the calls.
    assert sorted(r.trial_id for r in ours.store_.results()) == [0, 1, 2, 3]
    # And a resume finds them all: nothing is computed again.
    again = TwoRounds(est, client=client, storage=db, name="two").fit(X, y, resume=True)
    assert again.stats_["trials_replayed"] == 4
    assert again.stats_["units_computed"] == 0
    assert_same_results(again.cv_results_, theirs.cv_results_)
    import pickle

    copy = pickle.loads(pickle.dumps(again))
    np.testing.assert_array_equal(copy.predict(X), theirs.predict(X))


def test_subclass_of_a_daskhpo_search_can_override_run_search(client):
    class OnlyTheFirst(GridSearchCV):
        def _run_search(self, evaluate_candidates):
            evaluate_candidates(list(sklearn.model_selection.ParameterGrid(self.param_grid))[:1])

    search = OnlyTheFirst(
        DecisionTreeClassifier(random_state=0), {"max_depth": [1, 2, 3]}, client=client
    )
    search.fit(X, y)
    assert [p["max_depth"] for p in search.cv_results_["params"]] == [1]


def test_base_search_without_run_search_says_what_to_override(client):
    class Nothing(BaseSearchCV):
        pass

    with pytest.raises(
        NotImplementedError, match=r"_run_search not implemented.*override _run_search"
    ):
        Nothing(DecisionTreeClassifier(), client=client).fit(X, y)


def test_score_metadata_is_routed(client):
    """With metadata routing on, a scorer's requested weights reach it on the workers."""
    weights = np.random.RandomState(0).rand(len(y))
    with sklearn.config_context(enable_metadata_routing=True):
        scorer = make_scorer(accuracy_score).set_score_request(sample_weight="score_weights")
        scoring = {"weighted": scorer, "plain": "accuracy"}
        kwargs = dict(scoring=scoring, refit="plain", cv=3)
        est = LogisticRegression().set_fit_request(sample_weight=False)
        ours = GridSearchCV(est, {"C": [0.01, 1.0]}, client=client, **kwargs)
        ours.fit(X, y, score_weights=weights)
        theirs = SkGrid(est, {"C": [0.01, 1.0]}, **kwargs).fit(X, y, score_weights=weights)
    assert_same_results(ours.cv_results_, theirs.cv_results_)
    # The weights changed the weighted scores (so they really arrived).
    assert not np.allclose(
        ours.cv_results_["mean_test_weighted"], ours.cv_results_["mean_test_plain"]
    )


def test_scikit_learn_config_applies_on_the_workers(client):
    """set_config(transform_output="pandas") reaches the fits, as it does in the user's process."""

    class NeedsFrame(ClassifierMixin, BaseEstimator):
        def __init__(self, k=0):
            self.k = k

        def fit(self, X, y):
            assert isinstance(X, pd.DataFrame), type(X)
            self.classes_ = np.unique(y)
            return self

        def predict(self, X):
            return np.full(len(X), self.classes_[0])

    pipe = make_pipeline(StandardScaler(), NeedsFrame())
    with sklearn.config_context(transform_output="pandas"):
        search = GridSearchCV(
            pipe, {"needsframe__k": [0, 1]}, cv=2, error_score="raise", client=client
        )
        search.fit(X, y)
    assert len(search.cv_results_["params"]) == 2


def test_two_argument_scorer_for_unsupervised_estimators(client):
    def inertia(estimator, X):  # scikit-learn calls scorer(est, X) when y is None
        return -estimator.inertia_ / len(X)

    kwargs = dict(scoring=inertia, cv=KFold(3))
    ours = GridSearchCV(
        KMeans(n_init=2, random_state=0), {"n_clusters": [2, 4]}, client=client, **kwargs
    )
    ours.fit(X)
    theirs = SkGrid(KMeans(n_init=2, random_state=0), {"n_clusters": [2, 4]}, **kwargs).fit(X)
    np.testing.assert_allclose(
        ours.cv_results_["mean_test_score"], theirs.cv_results_["mean_test_score"]
    )
    assert ours.best_params_ == {"n_clusters": 4}


def test_scoring_failure_scores_error_score_with_scikit_learns_warning(client):
    def broken(estimator, X, y):
        raise RuntimeError("this scorer is broken")

    with pytest.warns(UserWarning, match=r"(?s)Scoring failed.*this scorer is broken"):
        search = GridSearchCV(
            DecisionTreeClassifier(),
            {"max_depth": [1, 2]},
            scoring=broken,
            error_score=-1.0,
            cv=2,
            refit=False,
            client=client,
        ).fit(X, y)
    assert list(search.cv_results_["mean_test_score"]) == [-1.0, -1.0]


def test_warnings_raised_on_the_workers_reach_the_user(client):
    with pytest.warns(ConvergenceWarning):
        GridSearchCV(
            LogisticRegression(max_iter=1), {"C": [1.0]}, cv=2, refit=False, client=client
        ).fit(X, y)


@pytest.mark.parametrize("return_train_score", [False, True])
def test_verbose_3_prints_one_line_per_fit_with_its_score(client, capsys, return_train_score):
    GridSearchCV(
        DecisionTreeClassifier(random_state=0),
        {"max_depth": [1, 2]},
        cv=3,
        verbose=3,
        return_train_score=return_train_score,
        client=client,
    ).fit(X, y)
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if "END" in line]
    assert len(lines) == 6
    pattern = r"score=\(train=[\d.]+, test=[\d.]+\)" if return_train_score else r"score=[\d.]+"
    assert all(re.search(pattern, line) for line in lines), lines
    assert any(line.startswith("[CV 2/3; 1/2] END") for line in lines), lines
    assert all("max_depth=" in line and "total time=" in line for line in lines)


def test_verbose_2_prints_lines_without_scores(client, capsys):
    GridSearchCV(
        DecisionTreeClassifier(random_state=0), {"max_depth": [1]}, cv=2, verbose=2, client=client
    ).fit(X, y)
    lines = [line for line in capsys.readouterr().out.splitlines() if "END" in line]
    assert len(lines) == 2
    assert not any("score=" in line for line in lines)


def test_step_replaced_with_its_own_parameters_in_a_random_search(client):
    from sklearn.svm import LinearSVC
    from sklearn.utils._testing import MinimalTransformer

    pipe = sklearn.pipeline.Pipeline([("trs", MinimalTransformer()), ("clf", None)])
    params = {"clf": [LinearSVC()], "clf__C": [0.01]}
    search = RandomizedSearchCV(pipe, params, n_iter=1, cv=2, scoring="accuracy", client=client)
    search.fit(X, y)
    assert search.best_estimator_.named_steps["clf"].C == 0.01
    assert params["clf"][0].C == 1.0  # the user's object is not changed


def test_inconsistent_splitter_is_refused_before_any_fit():
    class Broken(KFold):
        def get_n_splits(self, *args, **kwargs):
            return 1

    with pytest.raises(
        ValueError, match=r"cv.split and cv.get_n_splits return inconsistent results"
    ):
        RandomizedSearchCV(DecisionTreeClassifier(), {"max_depth": [1, 2]}, cv=Broken(3)).fit(X, y)


@pytest.mark.parametrize("name", ["HalvingGridSearchCV", "HalvingRandomSearchCV"])
def test_halving_searches_equal_scikit_learns(client, name):
    from sklearn import model_selection
    from sklearn.experimental import enable_halving_search_cv  # noqa: F401

    space = {"max_depth": [1, 2, 3, 4, 5, 6], "min_samples_leaf": [1, 5]}
    kwargs = dict(factor=2, cv=StratifiedKFold(3), random_state=0)
    if name == "HalvingRandomSearchCV":
        kwargs["n_candidates"] = 8
    ours = getattr(daskhpo, name)(
        DecisionTreeClassifier(random_state=0), space, client=client, **kwargs
    )
    ours.fit(X, y)
    theirs = getattr(model_selection, name)(DecisionTreeClassifier(random_state=0), space, **kwargs)
    theirs.fit(X, y)
    assert_same_results(ours.cv_results_, theirs.cv_results_)
    for attr in ("best_params_", "best_score_", "n_resources_", "n_candidates_", "n_iterations_"):
        assert getattr(ours, attr) == getattr(theirs, attr), attr
    assert ours.stats_["units_computed"] == sum(ours.n_candidates_) * 3
    import pickle

    copy = pickle.loads(pickle.dumps(ours))
    assert copy.client is None  # the live client is not pickled
    np.testing.assert_array_equal(copy.predict(X), theirs.predict(X))


def test_callbacks_are_called_once_per_fit_task(client):
    pytest.importorskip("sklearn.callback")

    class Counting:
        def __init__(self):
            self.calls = []

        def setup(self, estimator, context):
            self.calls.append(("setup", None, estimator))

        def on_fit_task_begin(self, estimator, context, **kwargs):
            self.calls.append(("begin", context.task_name, estimator))

        def on_fit_task_end(self, estimator, context, **kwargs):
            self.calls.append(("end", context.task_name, estimator))

        def teardown(self, estimator, context):
            self.calls.append(("teardown", None, estimator))

    cb = Counting()
    search = GridSearchCV(DecisionTreeClassifier(), {"max_depth": [1, 2, 3]}, cv=2, client=client)
    search.set_callbacks(cb).fit(X, y)
    names = [(kind, task) for kind, task, _ in cb.calls]
    assert names[0] == ("setup", None) and names[-1] == ("teardown", None)
    assert names.count(("begin", "candidate-split-evaluation")) == 6
    assert names.count(("end", "candidate-split-evaluation")) == 6
    assert names.count(("begin", "refit-with-best-params")) == 1
    assert all(est is search for _, _, est in cb.calls)
    # teardown also runs when the fit fails
    cb2 = Counting()
    with pytest.raises(ValueError, match="max_depth"):
        GridSearchCV(
            DecisionTreeClassifier(), {"max_depth": [-1]}, cv=2, error_score="raise", client=client
        ).set_callbacks(cb2).fit(X, y)
    assert cb2.calls[-1][0] == "teardown"


def test_stratified_warning_matches_scikit_learns_behaviour(client):
    """Too few members of one class for the folds: both libraries warn and search anyway."""
    data = ["one", "two", "three", "four", "five"]
    target = [0, 0, 1, 0, 1]
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.naive_bayes import ComplementNB

    pipe = make_pipeline(TfidfVectorizer(), ComplementNB())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        search = RandomizedSearchCV(
            pipe,
            {"tfidfvectorizer__norm": ["l1", "l2"]},
            n_iter=2,
            cv=3,
            random_state=0,
            client=client,
        ).fit(data, target)
    assert any("least populated class" in str(w.message) for w in caught)
    assert len(search.cv_results_["params"]) == 2


@pytest.mark.parametrize("kind", ["multilabel", "multioutput", "column"])
def test_two_dimensional_y_is_searched_as_scikit_learn_does(client, kind):
    from sklearn.datasets import make_multilabel_classification, make_regression

    if kind == "multilabel":
        Xs, Y = make_multilabel_classification(n_samples=80, n_classes=3, random_state=0)
        est = DecisionTreeClassifier(random_state=0)
    elif kind == "multioutput":
        Xs, Y = make_regression(n_samples=80, n_targets=2, random_state=0)
        est = DecisionTreeRegressor(random_state=0)
    else:
        Xs, Y = X, y.reshape(-1, 1)
        est = DecisionTreeClassifier(random_state=0)
    ours = GridSearchCV(est, {"max_depth": [1, 3]}, cv=3, client=client).fit(Xs, Y)
    theirs = SkGrid(est, {"max_depth": [1, 3]}, cv=3).fit(Xs, Y)
    np.testing.assert_allclose(
        ours.cv_results_["mean_test_score"], theirs.cv_results_["mean_test_score"]
    )
    assert ours.predict(Xs[:4]).shape == theirs.predict(Xs[:4]).shape


class PipelineRounds(BaseSearchCV):
    """Two rounds over one pipeline: the second shares more candidates per prefix than the first."""

    def _run_search(self, evaluate_candidates):
        self.status_between_ = []
        evaluate_candidates([{"scale__with_mean": True, "tree__max_depth": 1}])
        self.status_between_.append(self.store_.info()["status"])
        evaluate_candidates(
            [{"scale__with_mean": True, "tree__max_depth": d} for d in (2, 3, 4, 5)]
        )


def test_custom_search_over_a_pipeline_in_rounds_keeps_running_status(client, tmp_path):
    pipe = sklearn.pipeline.Pipeline(
        [("scale", StandardScaler()), ("tree", DecisionTreeClassifier(random_state=0))]
    )
    db = f"sqlite:///{tmp_path / 'rounds.db'}"
    search = PipelineRounds(pipe, cv=3, client=client, storage=db, name="rounds").fit(X, y)
    assert search.status_between_ == ["running"]  # not "finished" between the two calls
    assert search.store_.info()["status"] == "finished"
    grid = [{"scale__with_mean": [True], "tree__max_depth": [1, 2, 3, 4, 5]}]
    theirs = SkGrid(pipe, grid, cv=3, return_train_score=True).fit(X, y)
    np.testing.assert_allclose(
        search.cv_results_["mean_test_score"], theirs.cv_results_["mean_test_score"]
    )
