"""A fitted search is an ordinary scikit-learn object: it pickles, joblib-dumps and predicts the same.

Every facade is fitted on a real LocalCluster, then round-tripped through ``pickle`` and ``joblib``;
the copy (in this process, and in a fresh Python process for the SQLite-stored one) keeps
``cv_results_``, ``best_*`` and ``store_``, and predicts what the original predicts.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap

import joblib
import numpy as np
import pytest
from scipy.stats import loguniform
from sklearn.datasets import load_iris
from sklearn.linear_model import SGDClassifier
from sklearn.tree import DecisionTreeClassifier

import daskhpo
from daskhpo import (
    ASHASearchCV,
    BayesSearchCV,
    BOHBSearchCV,
    Categorical,
    GridSearchCV,
    HyperbandSearchCV,
    IncrementalSearchCV,
    MedianStoppingSearchCV,
    RandomizedSearchCV,
    SuccessiveHalvingSearchCV,
)

X, y = load_iris(return_X_y=True)
rng = np.random.RandomState(0)
order = rng.permutation(len(y))
X, y = X[order], y[order]
SGD_SPACE = {"alpha": loguniform(1e-5, 1e-1)}


def _facades():
    tree = DecisionTreeClassifier(random_state=0)
    sgd = SGDClassifier(random_state=0)
    common = {"random_state": 0, "cv": 3}
    return {
        "grid": GridSearchCV(tree, {"max_depth": [1, 2, 3]}, cv=3),
        "random": RandomizedSearchCV(tree, {"max_depth": [1, 2, 3, 4]}, n_iter=3, **common),
        "bayes": BayesSearchCV(
            tree, {"max_depth": Categorical([1, 2, 3, 4])}, n_candidates=4, **common
        ),
        "halving": SuccessiveHalvingSearchCV(
            tree, {"max_depth": [1, 2, 3, 4]}, n_candidates=4, resource="n_samples", **common
        ),
        "hyperband": HyperbandSearchCV(sgd, SGD_SPACE, max_budget=9, **common),
        "asha": ASHASearchCV(sgd, SGD_SPACE, n_candidates=6, max_budget=9, **common),
        "incremental": IncrementalSearchCV(sgd, SGD_SPACE, n_candidates=3, max_budget=3, **common),
        "bohb": BOHBSearchCV(sgd, SGD_SPACE, max_budget=9, **common),
        "median": MedianStoppingSearchCV(sgd, SGD_SPACE, n_candidates=5, max_budget=3, **common),
    }


@pytest.mark.parametrize("kind", list(_facades()))
def test_every_fitted_facade_survives_pickle_and_joblib(kind, client, tmp_path):
    search = _facades()[kind].set_params(client=client)
    search.fit(X, y)
    expected = search.predict(X)
    for copy in (
        pickle.loads(pickle.dumps(search)),
        _joblib_round_trip(search, tmp_path / f"{kind}.joblib"),
    ):
        np.testing.assert_array_equal(copy.predict(X), expected)
        assert copy.best_params_ == search.best_params_
        assert copy.best_score_ == search.best_score_
        assert sorted(copy.cv_results_) == sorted(search.cv_results_)
        np.testing.assert_array_equal(
            copy.cv_results_["mean_test_score"], search.cv_results_["mean_test_score"]
        )
        assert len(copy.store_) == len(search.store_)
        assert [r.score for r in copy.store_.results()] == [
            r.score for r in search.store_.results()
        ]


def _joblib_round_trip(search, path):
    joblib.dump(search, path)
    return joblib.load(path)


def test_a_stored_search_pickles_and_reopens_its_store_in_a_fresh_process(client, tmp_path):
    db = tmp_path / "runs.db"
    search = GridSearchCV(
        DecisionTreeClassifier(random_state=0),
        {"max_depth": [1, 2, 3]},
        cv=3,
        client=client,
        storage=f"sqlite:///{db}",
        name="trees",
    ).fit(X, y)
    path = tmp_path / "search.joblib"
    joblib.dump(search, path)
    np.save(tmp_path / "X.npy", X)
    script = textwrap.dedent(
        f"""
        import joblib, numpy as np
        search = joblib.load({str(path)!r})
        X = np.load({str(tmp_path / "X.npy")!r})
        print(len(search.store_), search.store_.info()["status"], search.best_params_["max_depth"])
        np.save({str(tmp_path / "pred.npy")!r}, search.predict(X))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    ).stdout.split()
    assert out == ["3", "finished", str(search.best_params_["max_depth"])]
    np.testing.assert_array_equal(np.load(tmp_path / "pred.npy"), search.predict(X))


def _stored_hyperband(client, storage):
    """A Hyperband search fitted with its evaluations stored in ``storage`` under the name "hb"."""
    return HyperbandSearchCV(
        SGDClassifier(random_state=0),
        SGD_SPACE,
        max_budget=9,
        random_state=0,
        client=client,
        storage=storage,
        name="hb",
    ).fit(X, y)


def test_a_loaded_hyperband_search_equals_the_live_one(client, tmp_path):
    storage = f"sqlite:///{tmp_path / 'runs.db'}"
    search = _stored_hyperband(client, storage)
    found = daskhpo.load("hb", storage=storage)
    live, loaded = search.cv_results_, found.cv_results_
    assert sorted(loaded) == sorted(live)
    assert {"trial_id", "bracket", "rung", "budget"} <= set(loaded)
    assert len(loaded["params"]) == len(live["params"]) == len(search.store_)
    for key in ("trial_id", "bracket", "rung", "budget", "mean_test_score", "rank_test_score"):
        np.testing.assert_array_equal(np.asarray(loaded[key]), np.asarray(live[key]), err_msg=key)
    np.testing.assert_allclose(
        [p["alpha"] for p in loaded["params"]], [p["alpha"] for p in live["params"]]
    )
    assert found.best_index_ == search.best_index_
    assert found.best_score_ == search.best_score_
    assert found.best_trial_id_ == search.best_trial_id_
    assert found.best_budget_ == search.best_budget_


def test_progress_bar_dashboard_and_status_name_the_same_best(client, tmp_path, capsys):
    from daskhpo.cli import main
    from daskhpo.dashboard.data import store_records, summarize

    storage = f"sqlite:///{tmp_path / 'runs.db'}"
    search = _stored_hyperband(client, storage)
    summary = summarize(
        store_records(search.store_), rule=search.store_.info()["spec"]["best_rule"]
    )
    assert summary.best["trial_id"] == search.best_trial_id_
    assert summary.best["score"] == search.best_score_
    # The budget rule puts the best at the largest budget: a trial stopped early never wins.
    assert summary.best["budget"] == search.best_budget_ == 9

    from daskhpo.progress import ProgressBar

    bar = ProgressBar(None, enabled=False, rule="top")
    for result in search.store_.results():
        bar.update(result)
    assert bar.best == search.best_score_

    capsys.readouterr()
    assert main(["status", "hb", "--storage", storage]) == 0
    out = capsys.readouterr().out
    assert f"(trial {search.best_trial_id_}" in out
