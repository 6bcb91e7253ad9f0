"""One name per concept: n_candidates everywhere, n_trials still accepted with a FutureWarning."""

from __future__ import annotations

import warnings

import pytest
from scipy.stats import loguniform
from sklearn.datasets import load_iris
from sklearn.linear_model import SGDClassifier
from sklearn.tree import DecisionTreeClassifier

from daskhpo import ASHASearchCV, BayesSearchCV, Categorical

X, y = load_iris(return_X_y=True)


def _bayes(**count):
    return BayesSearchCV(
        DecisionTreeClassifier(random_state=0),
        {"max_depth": Categorical([1, 2, 3, 4])},
        cv=3,
        random_state=0,
        **count,
    )


def test_the_old_name_still_works_and_says_the_new_one(client):
    with pytest.warns(FutureWarning, match=r"n_trials was renamed n_candidates"):
        old = _bayes(n_trials=3).set_params(client=client).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        new = _bayes(n_candidates=3).set_params(client=client).fit(X, y)
    assert len(old.cv_results_["params"]) == len(new.cv_results_["params"]) == 3
    assert old.cv_results_["params"] == new.cv_results_["params"]


def test_asha_counts_its_trials_with_n_candidates(client):
    search = ASHASearchCV(
        SGDClassifier(random_state=0),
        {"alpha": loguniform(1e-5, 1e-1)},
        n_candidates=5,
        max_budget=3,
        random_state=0,
        client=client,
    ).fit(X, y)
    assert len(set(search.cv_results_["trial_id"])) == 5
    assert "n_trials" in search.get_params()  # the alias stays a parameter, so clone() keeps it
