"""Failing fits: error_score semantics like scikit-learn's, nothing computed is lost."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.datasets import load_iris
from sklearn.exceptions import FitFailedWarning
from sklearn.model_selection import GridSearchCV as SkGridSearchCV

from daskhpo import FitFailedError, GridSearchCV

X, y = load_iris(return_X_y=True)


class Fragile(ClassifierMixin, BaseEstimator):
    """Predicts the majority class; raises in fit when ``fail`` says so."""

    def __init__(self, fail="never", level=0):
        self.fail = fail
        self.level = level

    def fit(self, X, y):
        if self.fail == "always":
            raise ValueError(f"Fragile refuses level={self.level}")
        if self.fail == "type":
            raise TypeError("Fragile got a bad type")
        self.classes_ = np.unique(y)
        values, counts = np.unique(y, return_counts=True)
        self.majority_ = values[counts.argmax()]
        return self

    def predict(self, X):
        return np.full(len(X), self.majority_)


GRID = {"fail": ["never", "always"], "level": [0, 1]}


def test_numeric_error_score_records_and_warns_like_sklearn(client):
    with pytest.warns(FitFailedWarning) as ours:
        search = GridSearchCV(Fragile(), GRID, cv=3, error_score=-1.0, client=client).fit(X, y)
    with pytest.warns(FitFailedWarning):
        theirs = SkGridSearchCV(Fragile(), GRID, cv=3, error_score=-1.0).fit(X, y)
    for key in ("mean_test_score", "rank_test_score", "split0_test_score"):
        np.testing.assert_array_equal(search.cv_results_[key], theirs.cv_results_[key])
    assert search.best_params_ == theirs.best_params_
    text = str(ours[0].message)
    assert "6 fits failed out of a total of 12" in text
    assert "6 fits failed with the following error" not in text  # two different messages, grouped
    assert text.count("fits failed with the following error") == 2
    assert "Fragile refuses level=0" in text and "Fragile refuses level=1" in text
    failed = [r for r in search.store_.results() if r.failed]
    assert len(failed) == 2
    assert all("Traceback" in e and "Fragile refuses" in e for r in failed for e in r.errors)


def test_nan_error_score_ranks_failures_last(client):
    with pytest.warns(FitFailedWarning):
        search = GridSearchCV(Fragile(), GRID, cv=3, client=client).fit(X, y)
    means = search.cv_results_["mean_test_score"]
    failed = np.isnan(means)
    assert failed.sum() == 2
    assert (
        search.cv_results_["rank_test_score"][failed].min()
        > search.cv_results_["rank_test_score"][~failed].max()
    )


def test_error_score_raise_reraises_with_the_candidate(client):
    search = GridSearchCV(
        Fragile(), {"fail": ["never", "type"]}, cv=3, error_score="raise", client=client
    )
    with pytest.raises(TypeError, match="Fragile got a bad type") as info:
        search.fit(X, y)
    notes = "\n".join(getattr(info.value, "__notes__", []))
    assert "'fail': 'type'" in notes
    assert "error_score=np.nan" in notes
    # What finished before the failure is kept.
    assert all(not r.failed for r in search.store_.results()[:-1])


def test_every_fit_failing_raises_with_grouped_errors(client):
    with pytest.raises(FitFailedError, match=r"All the 6 fits failed") as info:
        GridSearchCV(Fragile(fail="always"), {"level": [0, 1]}, cv=3, client=client).fit(X, y)
    assert "3 fits failed with the following error" in str(info.value)
    assert isinstance(info.value, ValueError)
