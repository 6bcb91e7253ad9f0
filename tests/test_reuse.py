"""Never pay twice: fits reused across searches by content, extended searches, warm-started Bayes.

Every test runs real searches on the session's LocalCluster against real SQLite files, and checks
what a user sees: how many fits were computed and reused (``stats_``), and that the scores are the
ones a search computing everything gets (scikit-learn's, on deterministic estimators).
"""

from __future__ import annotations

import json
import pickle
import sqlite3

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV as SkGridSearchCV
from sklearn.model_selection import KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier

import daskhpo
from daskhpo import (
    BayesSearchCV,
    Float,
    GridSearchCV,
    InvalidSearchError,
    RandomizedSearchCV,
    SuccessiveHalvingSearchCV,
)
from daskhpo.cli import main
from daskhpo.reuse import random_sources
from daskhpo.store import MemoryStore

X, y = load_iris(return_X_y=True)
C5 = [0.1, 1, 10, 100, 1000]
SCORES = (
    "mean_test_score",
    "std_test_score",
    "rank_test_score",
    *(f"split{i}_test_score" for i in range(5)),
)


def _same_scores(ours, theirs, keys=SCORES):
    assert [dict(p) for p in ours.cv_results_["params"]] == [
        dict(p) for p in theirs.cv_results_["params"]
    ]
    for key in keys:
        np.testing.assert_array_equal(ours.cv_results_[key], theirs.cv_results_[key], err_msg=key)


def _svc_grid(values, storage, client, **kw):
    kw.setdefault("cv", 5)
    return GridSearchCV(SVC(), {"C": values, "gamma": [1e-3]}, storage=storage, client=client, **kw)


# -- the case ---------------------------------------------------------------------------
def test_one_more_grid_value_computes_only_its_folds(client, tmp_path):
    storage = f"sqlite:///{tmp_path / 'runs.db'}"
    first = _svc_grid(C5, storage, client, name="first").fit(X, y)
    assert first.stats_["units_computed"] == 25 and first.stats_["units_reused"] == 0

    again = _svc_grid([*C5, 3000], storage, client).fit(X, y)  # no name: another search
    assert again.stats_["units_computed"] == 5
    assert again.stats_["units_reused"] == 25
    sk = SkGridSearchCV(SVC(), {"C": [*C5, 3000], "gamma": [1e-3]}, cv=5).fit(X, y)
    _same_scores(again, sk)
    assert again.best_params_ == sk.best_params_ and again.best_score_ == sk.best_score_


def test_a_rerun_under_the_default_name_is_free_and_replaces_its_trials(client, tmp_path):
    storage = f"sqlite:///{tmp_path / 'runs.db'}"
    first = _svc_grid(C5, storage, client).fit(X, y)
    rerun = _svc_grid(C5, storage, client).fit(X, y)  # the notebook cell run twice
    assert rerun.stats_["units_computed"] == 0 and rerun.stats_["units_reused"] == 25
    assert rerun.store_.name == first.store_.name and len(rerun.store_) == 5
    _same_scores(rerun, first)
    # With a name the user chose, a second fit still needs resume=True (or another name).
    _svc_grid(C5, storage, client, name="mine").fit(X, y)
    with pytest.raises(InvalidSearchError, match="pass resume=True"):
        _svc_grid(C5, storage, client, name="mine").fit(X, y)


def test_searches_of_another_type_and_a_shared_memory_store_reuse_fits(client):
    store = MemoryStore("shared")
    grid = _svc_grid(C5, store, client).fit(X, y)
    assert grid.stats_["units_computed"] == 25
    # A random search drawing from a list meets the same candidates: all of them are reused.
    rand = RandomizedSearchCV(
        SVC(),
        {"C": C5, "gamma": [1e-3]},
        n_iter=5,
        cv=5,
        random_state=0,
        storage=store,
        client=client,
    ).fit(X, y)
    assert rand.stats_["units_computed"] == 0 and rand.stats_["units_reused"] == 25
    # storage=None keeps no cache: two plain fits compute everything.
    plain = _svc_grid(C5, None, client).fit(X, y)
    assert plain.stats_["units_computed"] == 25
    assert _svc_grid(C5, None, client).fit(X, y).stats_["units_computed"] == 25
    _same_scores(plain, grid)


# -- safety: what must never match ---------------------------------------------------------------
def test_other_data_folds_scoring_or_version_recompute(client, tmp_path, monkeypatch):
    storage = f"sqlite:///{tmp_path / 'runs.db'}"

    def computed(**kw):
        data = kw.pop("data", (X, y))
        search = _svc_grid(C5, storage, client, **kw).fit(*data)
        return search.stats_["units_computed"], search.stats_["units_reused"]

    assert computed() == (25, 0)
    assert computed() == (0, 25)
    X2 = X.copy()
    X2[0, 0] += 1e-9  # one value changed
    assert computed(data=(X2, y)) == (25, 0)
    assert computed(cv=KFold(5, shuffle=True, random_state=1)) == (25, 0)
    assert computed(scoring="balanced_accuracy") == (25, 0)
    assert computed(return_train_score=True) == (25, 0)
    # Another scikit-learn version: nothing made with this one matches.
    real = daskhpo.reuse.package_version
    monkeypatch.setattr(
        daskhpo.reuse, "package_version", lambda p: "99.0" if p == "sklearn" else real(p)
    )
    assert computed() == (25, 0)
    assert computed() == (0, 25)


def test_unseeded_estimators_are_reused_only_when_asked(client, tmp_path):
    storage = f"sqlite:///{tmp_path / 'runs.db'}"

    def search(estimator, **kw):
        return GridSearchCV(
            estimator, {"max_depth": [1, 2, 3]}, cv=3, storage=storage, client=client, **kw
        ).fit(X, y)

    search(DecisionTreeClassifier())
    again = search(DecisionTreeClassifier())
    assert again.stats_["units_reused"] == 0 and again.stats_["units_computed"] == 9
    taken = search(DecisionTreeClassifier(), reuse="all")
    assert taken.stats_["units_reused"] == 9
    # A seed makes the fits deterministic: reused by default; reuse=False computes everything.
    search(DecisionTreeClassifier(random_state=0))
    assert search(DecisionTreeClassifier(random_state=0)).stats_["units_reused"] == 9
    none = search(DecisionTreeClassifier(random_state=0), reuse=False)
    assert none.stats_["units_reused"] == 0 and none.stats_["units_computed"] == 9


def test_failed_fits_are_fitted_again_unless_asked(client, tmp_path):
    storage = f"sqlite:///{tmp_path / 'runs.db'}"

    def search(**kw):
        with pytest.warns(UserWarning):  # scikit-learn's warning about failed fits
            return GridSearchCV(
                SVC(), {"C": [-1.0, 1.0]}, cv=3, storage=storage, client=client, **kw
            ).fit(X, y)

    first = search()
    assert np.isnan(first.cv_results_["mean_test_score"][0])
    again = search()
    assert again.stats_["units_reused"] == 3 and again.stats_["units_computed"] == 3
    taken = search(reuse_failures=True)
    assert taken.stats_["units_reused"] == 6 and taken.stats_["units_computed"] == 0
    assert np.isnan(taken.cv_results_["mean_test_score"][0])
    assert "C" in taken.cv_results_["params"][0]


def test_the_cache_is_plain_json(client, tmp_path):
    path = tmp_path / "runs.db"
    _svc_grid(C5, f"sqlite:///{path}", client).fit(X, y)
    rows = sqlite3.connect(path).execute("SELECT data, versions FROM units").fetchall()
    assert len(rows) == 25
    for data, versions in rows:
        record = json.loads(data)
        assert set(record) >= {"params", "fold", "test_scores", "fit_time"}
        assert "sklearn" in json.loads(versions)


def test_random_sources_follow_the_documented_rules():
    assert random_sources(SVC()) == []
    assert random_sources(LogisticRegression()) == []
    assert random_sources(LogisticRegression(solver="saga")) == ["random_state"]
    assert random_sources(LogisticRegression(), {"solver": "saga"}) == ["random_state"]
    pipe = make_pipeline(StandardScaler(), DecisionTreeClassifier())
    assert random_sources(pipe) == ["decisiontreeclassifier__random_state"]
    assert random_sources(pipe, {"decisiontreeclassifier__random_state": 3}) == []
    assert random_sources(pipe, {"decisiontreeclassifier": SVC()}) == []
    assert random_sources(RandomForestClassifier(random_state=np.random.RandomState(0))) == [
        "random_state"
    ]


# -- budgets of adaptive searches -----------------------------------------------------------------
def test_halving_over_an_estimator_parameter_reuses_equal_budgets(client, tmp_path):
    storage = f"sqlite:///{tmp_path / 'runs.db'}"

    def search(name):
        return SuccessiveHalvingSearchCV(
            RandomForestClassifier(random_state=0),
            {"max_depth": [1, 2, 3, 4, 5, 6]},
            resource="n_estimators",
            min_budget=2,
            max_budget=8,
            cv=3,
            random_state=0,
            storage=storage,
            name=name,
            client=client,
        ).fit(X, y)

    first = search("a")
    again = search("b")
    assert again.stats_["units_computed"] == 0
    assert again.stats_["units_reused"] == first.stats_["units_computed"] > 0
    _same_scores(again, first, keys=("mean_test_score", "budget", "split2_test_score"))


# -- extend ---------------------------------------------------------------------------------------
def test_extending_a_seeded_random_search_computes_only_the_new_candidates(client):
    space = {"C": Float(1e-2, 1e2, log=True), "gamma": [1e-3, 1e-2]}
    search = RandomizedSearchCV(SVC(), space, n_iter=20, cv=3, random_state=0, client=client)
    search.fit(X, y)
    first = [dict(p) for p in search.cv_results_["params"]]
    assert search.extend(X, y, n_iter=30) is search
    assert search.stats_["units_computed"] == 10 * 3
    assert search.stats_["units_reused"] == 20 * 3
    assert [dict(p) for p in search.cv_results_["params"]][:20] == first
    fresh = RandomizedSearchCV(SVC(), space, n_iter=30, cv=3, random_state=0, client=client)
    _same_scores(search, fresh.fit(X, y), keys=("mean_test_score", "split1_test_score"))
    assert search.best_params_ == fresh.best_params_ and search.n_iter == 30


def test_extending_a_grid_keeps_unseeded_fits_and_matches_scikit_learn(client, tmp_path):
    storage = f"sqlite:///{tmp_path / 'runs.db'}"
    tree = DecisionTreeClassifier()  # unseeded: not reused across searches, but kept by extend
    search = GridSearchCV(tree, {"max_depth": [1, 2]}, cv=5, storage=storage, client=client)
    search.fit(X, y)
    before = search.cv_results_["split0_test_score"].copy()
    search.extend(X, y, param_grid={"max_depth": [3, 2, 4]})  # 2 is there already
    assert [p["max_depth"] for p in search.cv_results_["params"]] == [1, 2, 3, 4]
    assert search.stats_["units_computed"] == 10 and search.stats_["units_reused"] == 10
    np.testing.assert_array_equal(search.cv_results_["split0_test_score"][:2], before)

    svc = _svc_grid(C5[:3], None, client).fit(X, y)
    svc.extend(X, y, param_grid={"C": C5[3:]})
    assert svc.stats_["units_computed"] == 10
    _same_scores(svc, SkGridSearchCV(SVC(), {"C": C5, "gamma": [1e-3]}, cv=5).fit(X, y))


def test_extending_a_bayesian_search_tells_it_its_trials(client, tmp_path):
    storage = f"sqlite:///{tmp_path / 'runs.db'}"
    space = {"C": Float(1e-2, 1e2, log=True), "gamma": Float(1e-4, 1.0, log=True)}
    search = BayesSearchCV(
        SVC(),
        space,
        n_candidates=8,
        cv=3,
        random_state=0,
        storage=storage,
        name="b",
        client=client,
    ).fit(X, y)
    first = search.cv_results_["mean_test_score"].copy()
    search.extend(X, y, n_candidates=12)
    assert search.stats_["trials_replayed"] == 8
    assert search.stats_["units_computed"] == 4 * 3
    assert len(search.cv_results_["params"]) == 12 and len(search.store_) == 12
    np.testing.assert_array_equal(search.cv_results_["mean_test_score"][:8], first)
    assert search.best_score_ == max(search.cv_results_["mean_test_score"])


def test_extend_refuses_what_it_cannot_keep_before_any_work(client):
    search = RandomizedSearchCV(
        SVC(), {"C": Float(0.1, 10)}, n_iter=4, cv=3, random_state=0, client=client
    )
    with pytest.raises(InvalidSearchError, match="not fitted"):
        search.extend(X, y, n_iter=6)
    search.fit(X, y)
    best = search.best_params_
    with pytest.raises(InvalidSearchError, match=r"n_iter=3: give the new total"):
        search.extend(X, y, n_iter=3)
    with pytest.raises(InvalidSearchError, match=r"say what to add \(n_iter=\)"):
        search.extend(X, y)
    with pytest.raises(InvalidSearchError, match="the data, folds"):
        search.extend(X[:100], y[:100], n_iter=6)
    assert search.n_iter == 4 and search.best_params_ == best  # as it was
    unseeded = RandomizedSearchCV(SVC(), {"C": Float(0.1, 10)}, n_iter=2, cv=3, client=client)
    with pytest.raises(InvalidSearchError, match="integer random_state"):
        unseeded.fit(X, y).extend(X, y, n_iter=4)
    with pytest.raises(InvalidSearchError, match=r"reuse='yes'"):
        _svc_grid(C5, None, client, reuse="yes").fit(X, y)


def test_a_pickled_search_can_be_extended(client):
    search = _svc_grid(C5[:2], None, client).fit(X, y)
    copy = pickle.loads(pickle.dumps(search))
    copy.client = client
    copy.extend(X, y, param_grid={"C": [C5[2]]})
    assert copy.stats_["units_computed"] == 5 and copy.stats_["units_reused"] == 10


# -- warm-started Bayes ---------------------------------------------------------------------------
def test_a_bayesian_search_is_warm_started_from_earlier_searches(client, tmp_path):
    storage = f"sqlite:///{tmp_path / 'runs.db'}"
    space = {"C": Float(1e-2, 1e3, log=True), "gamma": Float(1e-4, 1.0, log=True)}
    _svc_grid(C5, storage, client).fit(X, y)  # 5 candidates, all inside the space
    cold = BayesSearchCV(
        SVC(), space, n_candidates=3, cv=5, random_state=1, storage=storage, client=client
    ).fit(X, y)
    assert cold.stats_["warm_start_trials"] == 0
    warm = BayesSearchCV(
        SVC(),
        space,
        n_candidates=3,
        cv=5,
        random_state=1,
        storage=storage,
        client=client,
        warm_start=True,
    ).fit(X, y)
    # The grid's 5 and the cold search's 3 trials were told to the sampler first.
    assert warm.stats_["warm_start_trials"] == 8
    assert len(warm.cv_results_["params"]) == 3
    # Another scoring makes the earlier trials incomparable: none is told.
    other = BayesSearchCV(
        SVC(),
        space,
        n_candidates=2,
        cv=5,
        random_state=1,
        storage=storage,
        client=client,
        warm_start=True,
        scoring="balanced_accuracy",
    ).fit(X, y)
    assert other.stats_["warm_start_trials"] == 0
    with pytest.raises(InvalidSearchError, match=r"warm_start=True\) learns from earlier searches"):
        BayesSearchCV(SVC(), space, n_candidates=2, client=client, warm_start=True).fit(X, y)


# -- the cache commands ----------------------------------------------------------------------------
def test_cache_stats_and_prune(client, tmp_path, capsys, monkeypatch):
    storage = f"sqlite:///{tmp_path / 'runs.db'}"
    _svc_grid(C5, storage, client).fit(X, y)
    _svc_grid(C5[:2], storage, client).fit(X, y)  # 10 hits
    assert main(["cache", "stats", "--storage", storage]) == 0
    out = capsys.readouterr().out
    assert "units: 25 (0 stale" in out and "hits: 10" in out

    real = daskhpo.reuse.package_version
    monkeypatch.setattr(
        daskhpo.reuse, "package_version", lambda p: "99.0" if p == "sklearn" else real(p)
    )
    assert main(["cache", "stats", "--storage", storage]) == 0
    assert "units: 25 (25 stale" in capsys.readouterr().out
    assert main(["cache", "prune", "--stale", "--storage", storage]) == 0
    assert "deleted 25 cached fits" in capsys.readouterr().out
    monkeypatch.undo()
    assert _svc_grid(C5, storage, client).fit(X, y).stats_["units_computed"] == 25
    assert main(["cache", "prune", "--all", "--storage", storage]) == 0
    assert "deleted 25" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="say what to delete"):
        main(["cache", "prune", "--storage", storage])


def test_multimetric_pipelines_and_halving_come_back_identical(client, tmp_path):
    storage = f"sqlite:///{tmp_path / 'runs.db'}"
    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
    grid = {"standardscaler__with_mean": [True, False], "logisticregression__C": [0.1, 1.0, 10.0]}

    def search():
        return GridSearchCV(
            pipe,
            grid,
            cv=3,
            scoring=["accuracy", "f1_macro"],
            refit="f1_macro",
            return_train_score=True,
            storage=storage,
            client=client,
        ).fit(X, y)

    first, again = search(), search()
    assert again.stats_["units_computed"] == 0 and again.stats_["units_reused"] == 18
    keys = [k for k in first.cv_results_ if "_test_" in k or "_train_" in k]
    assert "split2_train_f1_macro" in keys
    _same_scores(again, first, keys=keys)
    assert again.best_params_ == first.best_params_

    def halving(name):
        return daskhpo.HalvingGridSearchCV(
            DecisionTreeClassifier(random_state=0),
            {"max_depth": [1, 2, 3, 4], "min_samples_leaf": [1, 3]},
            cv=3,
            factor=2,
            random_state=0,
            storage=storage,
            name=name,
            client=client,
        ).fit(X, y)

    h1, h2 = halving("h1"), halving("h2")
    assert h2.stats_["units_computed"] == 0 and h2.stats_["units_reused"] > 0
    _same_scores(h2, h1, keys=("mean_test_score", "iter", "n_resources"))


def test_a_pipeline_with_shared_prefixes_fits_only_what_the_new_value_needs(client, tmp_path):
    from sklearn.decomposition import PCA

    storage = f"sqlite:///{tmp_path / 'runs.db'}"
    pipe = make_pipeline(PCA(svd_solver="full"), LogisticRegression(max_iter=300))
    grid = {"pca__n_components": [1, 2, 3], "logisticregression__C": [0.1, 1, 10, 100]}
    GridSearchCV(pipe, grid, cv=3, storage=storage, client=client).fit(X, y)
    more = {**grid, "logisticregression__C": [0.1, 1, 10, 100, 1000]}
    again = GridSearchCV(pipe, more, cv=3, storage=storage, client=client).fit(X, y)
    assert again.stats_["units_computed"] == 9 and again.stats_["units_reused"] == 36
    assert again.stats_["prefix_tasks"] == 9  # the 3 x 3 prefixes the new candidates share
    _same_scores(again, SkGridSearchCV(pipe, more, cv=3).fit(X, y), keys=("mean_test_score",))
    assert random_sources(PCA()) == ["random_state"]  # "auto" may pick the randomized solver


# -- found in review ------------------------------------------------------------------------------
def test_a_refused_extend_leaves_the_search_extendable(client):
    search = RandomizedSearchCV(
        SVC(), {"C": Float(0.1, 10)}, n_iter=4, cv=3, random_state=0, client=client
    ).fit(X, y)
    store = search.store_
    with pytest.raises(InvalidSearchError, match="the data, folds"):
        search.extend(X[:100], y[:100], n_iter=6)
    assert search.store_ is store
    search.extend(X, y, n_iter=6)
    assert search.stats_["units_computed"] == 2 * 3 and search.stats_["units_reused"] == 4 * 3


def test_an_unfinished_search_under_its_default_name_still_needs_resume(client, tmp_path):
    storage = f"sqlite:///{tmp_path / 'runs.db'}"
    first = _svc_grid(C5, storage, client).fit(X, y)
    first.store_.set_status("interrupted")  # as a Ctrl-C leaves it
    with pytest.raises(InvalidSearchError, match="pass resume=True"):
        _svc_grid(C5, storage, client).fit(X, y)
    assert len(first.store_) == 5  # its trials are still there


def test_searches_sharing_a_memory_store_warm_start_each_other(client):
    store = MemoryStore("shared")
    space = {"C": Float(1e-2, 1e3, log=True), "gamma": Float(1e-4, 1.0, log=True)}
    _svc_grid(C5, store, client).fit(X, y)
    warm = BayesSearchCV(
        SVC(),
        space,
        n_candidates=2,
        cv=5,
        random_state=0,
        storage=store,
        client=client,
        warm_start=True,
    ).fit(X, y)
    assert warm.stats_["warm_start_trials"] == 5


def test_editing_a_users_own_estimator_changes_its_keys(tmp_path, monkeypatch):
    import importlib
    import sys

    from daskhpo.reuse import versions_of

    source = (
        "from sklearn.base import BaseEstimator, TransformerMixin\n"
        "class Shift(TransformerMixin, BaseEstimator):\n"
        "    def fit(self, X, y=None):\n        return self\n"
        "    def transform(self, X):\n        return X + {}\n"
    )
    (tmp_path / "my_steps.py").write_text(source.format(1))
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("my_steps")
    before = versions_of(make_pipeline(module.Shift(), SVC()))
    assert "code:my_steps.Shift" in before and "scipy" in before
    (tmp_path / "my_steps.py").write_text(source.format(2))  # the user fixes a bug
    module = importlib.reload(module)
    after = versions_of(make_pipeline(module.Shift(), SVC()))
    assert after["code:my_steps.Shift"] != before["code:my_steps.Shift"]
    assert {k: v for k, v in after.items() if not k.startswith("code:")} == {
        k: v for k, v in before.items() if not k.startswith("code:")
    }
    sys.modules.pop("my_steps", None)


def test_dask_series_with_the_same_name_but_other_data_do_not_match():
    import dask.dataframe as dd
    import pandas as pd

    a = dd.from_pandas(pd.Series([0, 1, 0, 1], name="target"), npartitions=2)
    b = dd.from_pandas(pd.Series([1, 1, 0, 0], name="target"), npartitions=2)
    assert GridSearchCV._data_token(a) != GridSearchCV._data_token(b)
    assert GridSearchCV._data_token(a) == GridSearchCV._data_token(a)
