"""The one seed rule (:func:`daskhpo.space.as_seed`) and what every facade does with a random_state."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import loguniform
from sklearn.datasets import load_iris
from sklearn.linear_model import SGDClassifier
from sklearn.tree import DecisionTreeClassifier

from daskhpo import (
    ASHASearchCV,
    BayesSearchCV,
    Float,
    HyperbandSearchCV,
    InvalidSearchError,
    InvalidSearchTypeError,
    RandomizedSearchCV,
)
from daskhpo.space import _rng, as_seed

X, y = load_iris(return_X_y=True)


def test_an_int_seed_is_itself_and_draws_what_scikit_learn_draws():
    assert as_seed(7) == 7
    assert as_seed(2**32 + 7) == 7
    assert (
        _rng(7).randint(1000, size=5).tolist()
        == np.random.RandomState(7).randint(1000, size=5).tolist()
    )


def test_generators_give_one_reproducible_draw_and_none_comes_from_the_os():
    assert as_seed(np.random.default_rng(3)) == as_seed(np.random.default_rng(3))
    assert as_seed(np.random.RandomState(3)) == as_seed(np.random.RandomState(3))
    before = np.random.get_state()[1].copy()
    seeds = {as_seed(None) for _ in range(5)}
    assert len(seeds) > 1
    np.testing.assert_array_equal(np.random.get_state()[1], before)  # global generator untouched


def test_a_random_state_instance_is_used_as_it_is_for_sampling():
    rs = np.random.RandomState(0)
    assert _rng(rs) is rs


@pytest.mark.parametrize(
    ("bad", "exc"),
    [(-1, InvalidSearchError), (True, InvalidSearchTypeError), ("0", InvalidSearchTypeError)],
)
@pytest.mark.parametrize(
    "make",
    [
        lambda rs: RandomizedSearchCV(
            DecisionTreeClassifier(), {"max_depth": [1, 2]}, n_iter=2, random_state=rs
        ),
        lambda rs: BayesSearchCV(
            DecisionTreeClassifier(), {"max_depth": [1, 2]}, n_candidates=2, random_state=rs
        ),
        lambda rs: HyperbandSearchCV(
            SGDClassifier(), {"alpha": loguniform(1e-4, 1)}, max_budget=3, random_state=rs
        ),
        lambda rs: ASHASearchCV(
            SGDClassifier(), {"alpha": Float(1e-4, 1, log=True)}, max_budget=3, random_state=rs
        ),
    ],
)
def test_every_facade_refuses_a_bad_random_state_by_one_rule(make, bad, exc, monkeypatch):
    import daskhpo.run

    def refuse(*args, **kwargs):
        raise AssertionError("get_client was called before validation finished")

    monkeypatch.setattr(daskhpo.run, "get_client", refuse)
    with pytest.raises(exc, match=r"random_state=.*use .*integer, None, or a numpy RandomState"):
        make(bad).fit(X, y)
