"""Estimators that train across the cluster themselves (xgboost.dask, lightgbm.dask), tuned on it.

Each (candidate, fold) is one distributed fit on the session's real 2-worker LocalCluster: the test
checks on the scheduler's task stream that the training ran on both workers, that folds are whole
partitions, and that the search gives what a user expects from a search estimator.
"""

from __future__ import annotations

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
from distributed import get_task_stream
from sklearn.datasets import make_classification

import daskhpo
from daskhpo import InvalidSearchError
from daskhpo.cluster import workers_info
from daskhpo.execution.cluster_fit import partition_folds

xgb_dask = pytest.importorskip("xgboost.dask", reason="xgboost is in the test extra")
lgb = pytest.importorskip("lightgbm", reason="lightgbm is in the test extra")


def _data(n=3000, npartitions=6):
    X, y = make_classification(n, 10, n_informative=6, random_state=0)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(10)])
    return (
        dd.from_pandas(frame, npartitions=npartitions),
        dd.from_pandas(pd.Series(y, name="y"), npartitions=npartitions),
    )


def _workers_that_ran(stream):
    return {t["worker"] for t in stream.data}


def test_xgboost_dask_grid_search_trains_on_every_worker(client):
    dX, dy = _data()
    search = daskhpo.GridSearchCV(
        xgb_dask.DaskXGBClassifier(n_estimators=15, tree_method="hist"),
        {"max_depth": [2, 5]},
        cv=3,
        client=client,
    )
    with get_task_stream(client=client) as stream:
        search.fit(dX, dy)
    # 2 candidates x 3 folds, one distributed fit each, one at a time (each uses every worker).
    assert search.stats_["distributed_fits"] == 6 and search.stats_["fits_in_parallel"] == 1
    assert _workers_that_ran(stream) == set(workers_info(client))
    assert 0.85 < search.best_score_ <= 1.0
    assert search.best_params_ in ({"max_depth": 2}, {"max_depth": 5})
    assert list(search.cv_results_["mean_test_score"]) == pytest.approx(
        [np.mean([search.cv_results_[f"split{k}_test_score"][i] for k in range(3)]) for i in (0, 1)]
    )
    # The refitted model is the distributed estimator, trained on every partition. (xgboost.dask
    # predicts through the current client; this test's client is not the default one.)
    with client.as_current():
        pred = search.best_estimator_.predict(dX).compute()
    assert pred.shape == (3000,) and set(np.unique(pred)) == {0, 1}


def test_hyperband_budgets_are_boosting_rounds(client):
    dX, dy = _data()
    search = daskhpo.HyperbandSearchCV(
        xgb_dask.DaskXGBClassifier(tree_method="hist"),
        {"max_depth": [2, 4], "learning_rate": [0.1, 0.3]},
        max_budget=9,
        random_state=0,
        cv=2,
        client=client,
    )
    search.fit(dX, dy)
    assert search.metadata_["resource"] == "n_estimators"
    budgets = set(search.cv_results_["budget"])
    assert budgets <= {1, 3, 9} and 9 in budgets
    assert search.best_params_["n_estimators"] in budgets
    assert 0.8 < search.best_score_ <= 1.0
    assert (
        search.best_estimator_.get_params()["n_estimators"] == search.best_params_["n_estimators"]
    )


def test_lightgbm_dask_random_search_with_several_metrics(client):
    dX, dy = _data()
    search = daskhpo.RandomizedSearchCV(
        lgb.DaskLGBMClassifier(n_estimators=20, verbose=-1),
        {"num_leaves": [7, 15, 31], "learning_rate": [0.05, 0.2]},
        n_iter=3,
        cv=3,
        scoring=["accuracy", "roc_auc"],
        refit="roc_auc",
        random_state=0,
        client=client,
    )
    search.fit(dX, dy)
    assert search.stats_["distributed_fits"] == 9
    assert 0.85 < search.best_score_ <= 1.0
    assert set(search.cv_results_) >= {"mean_test_accuracy", "mean_test_roc_auc"}


def test_folds_are_whole_partitions_dealt_from_a_seeded_shuffle():
    folds = partition_folds(7, 3, seed=0)
    tests = [t for _, t in folds]
    assert sorted(i for t in tests for i in t) == list(range(7))
    for train, test in folds:
        assert sorted(train + test) == list(range(7)) and not set(train) & set(test)
    assert partition_folds(7, 3, seed=0) == folds and partition_folds(7, 3, seed=1) != folds


def test_refused_before_any_work_with_the_fix(client):
    X, y = make_classification(200, 5, random_state=0)
    est = xgb_dask.DaskXGBClassifier(n_estimators=5)
    with pytest.raises(InvalidSearchError, match="pass X and y as dask"):
        daskhpo.GridSearchCV(est, {"max_depth": [2]}, client=client).fit(X, y)
    with pytest.raises(InvalidSearchError, match="need at least 3 partitions"):
        daskhpo.GridSearchCV(est, {"max_depth": [2]}, cv=3, client=client).fit(
            *_data(npartitions=2)
        )
    dX, dy = _data()
    with pytest.raises(InvalidSearchError, match="trial_timeout=5: a distributed fit"):
        daskhpo.GridSearchCV(est, {"max_depth": [2]}, trial_timeout=5, client=client).fit(dX, dy)
    with pytest.raises(InvalidSearchError, match="budget must be one of its parameters"):
        daskhpo.HyperbandSearchCV(
            est, {"max_depth": [2]}, resource="n_samples", max_budget=9, client=client
        ).fit(dX, dy)


def test_parallel_distributed_fits_leave_dask_config_alone():
    import dask
    from distributed import Client, LocalCluster

    before = dask.config.get("scheduler", None)
    dX, dy = _data()
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=2, host="127.0.0.1", dashboard_address="127.0.0.1:0"
        ) as cluster,
        Client(cluster, set_as_default=False) as client,
    ):
        search = daskhpo.GridSearchCV(
            xgb_dask.DaskXGBClassifier(n_estimators=5, tree_method="hist"),
            {"max_depth": [2, 3]},
            cv=3,
            n_jobs=8,  # capped at 2: one fit per thread of the smallest worker
            client=client,
        ).fit(dX, dy)
        assert search.stats_["fits_in_parallel"] == 2
    # Two fits in threads at once: nothing of theirs is left in dask's global config.
    assert dask.config.get("scheduler", None) == before
