"""The engine on a real cluster: batching, shared work, data shipped once, client selection."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.tree import DecisionTreeClassifier

from daskhpo import GridSearchCV
from daskhpo.cluster import workers_info

X, y = load_digits(return_X_y=True)
X, y = X[:600], y[:600]


def test_tiny_fits_are_batched_and_data_travels_once(client):
    from distributed import get_task_stream

    grid = {"max_depth": [2, 3, 4, 5, 6, 7, 8, 9], "min_samples_leaf": [1, 2, 3, 4, 5]}
    with get_task_stream(client=client) as stream:
        search = GridSearchCV(
            DecisionTreeClassifier(random_state=0), grid, cv=3, client=client
        ).fit(X, y)
    units = 40 * 3
    assert search.stats_["units_computed"] == units
    assert search.stats_["tasks"] < units / 2, search.stats_
    fits = [t for t in stream.data if t["key"].startswith("daskhpo-fit-")]
    assert len(fits) == search.stats_["tasks"]
    # Each fit task carries only unit descriptions; the arrays come from the one shared context.
    transfers = [s for t in fits for s in t["startstops"] if s["action"] == "transfer"]
    assert len(transfers) <= 2  # at most a fetch of the context by each of the two workers


def test_identical_candidates_are_computed_once(client):
    grid = [{"max_depth": [2, 4]}, {"max_depth": [4, 2, 6]}]
    search = GridSearchCV(DecisionTreeClassifier(random_state=0), grid, cv=3, client=client).fit(
        X, y
    )
    assert search.stats_["units_computed"] == 3 * 3
    assert search.stats_["units_shared"] == 2 * 3
    scores = search.cv_results_["mean_test_score"]
    assert scores[0] == scores[3] and scores[1] == scores[2]


def test_n_jobs_caps_the_concurrency(client):
    search = GridSearchCV(
        DecisionTreeClassifier(random_state=0), {"max_depth": [2, 3]}, cv=2, n_jobs=1, client=client
    ).fit(X, y)
    assert search.stats_["worker_threads"] == 1


def test_active_client_is_used_and_scheduler_address_works(client):
    from distributed import Client

    from daskhpo.cluster import get_client

    with Client(client.scheduler.address) as active:
        assert get_client(None) is active
    by_address = get_client(client.scheduler.address)
    assert by_address.scheduler.address == client.scheduler.address
    assert get_client(client.scheduler.address) is by_address


def test_embedded_cluster_is_started_once_and_announced_once(capsys):
    from daskhpo.cluster import close_local, get_client

    first = get_client(None, verbose=1)
    second = get_client(None, verbose=1)
    assert first is second
    assert first.scheduler.address.startswith("tcp://127.0.0.1:")
    info = {"workers": workers_info(first)}
    assert len(info["workers"]) >= 1
    assert all(w["nthreads"] == 1 for w in info["workers"].values())
    err = capsys.readouterr().err
    assert err.count("Dask dashboard: http://127.0.0.1:") == 1
    search = GridSearchCV(DecisionTreeClassifier(random_state=0), {"max_depth": [2, 4]}, cv=2).fit(
        X, y
    )
    assert search.best_params_["max_depth"] in (2, 4)
    assert np.isfinite(search.best_score_)
    close_local()
    assert first.status == "closed"


@pytest.mark.parametrize("verbose", [0, 1])
def test_progress_bar_only_when_verbose(client, capsys, verbose):
    GridSearchCV(
        DecisionTreeClassifier(random_state=0),
        {"max_depth": [2, 4, 6]},
        cv=2,
        verbose=verbose,
        client=client,
    ).fit(X, y)
    err = capsys.readouterr().err
    if verbose:
        assert "Fitting 2 folds for each of 3 candidates, totalling 6 fits" in err
        assert "3/3" in err
    else:
        assert err == ""


def test_precomputed_kernel_and_sparse_input_match_sklearn(client):
    import scipy.sparse as sp
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV as SkGridSearchCV
    from sklearn.svm import SVC

    Xs, ys = X[:300] / 16.0, y[:300]
    kernel = Xs @ Xs.T
    grid = {"C": [0.01, 1.0, 100.0]}
    ours = GridSearchCV(SVC(kernel="precomputed"), grid, cv=3, client=client).fit(kernel, ys)
    theirs = SkGridSearchCV(SVC(kernel="precomputed"), grid, cv=3).fit(kernel, ys)
    np.testing.assert_allclose(
        ours.cv_results_["mean_test_score"],
        theirs.cv_results_["mean_test_score"],
        rtol=0,
        atol=1e-12,
    )
    assert ours.best_params_ == theirs.best_params_

    sparse = sp.csr_matrix(Xs)
    lr = LogisticRegression(max_iter=300)
    ours = GridSearchCV(lr, grid, cv=3, client=client).fit(sparse, ys)
    theirs = SkGridSearchCV(lr, grid, cv=3).fit(sparse, ys)
    np.testing.assert_allclose(
        ours.cv_results_["split1_test_score"],
        theirs.cv_results_["split1_test_score"],
        rtol=0,
        atol=1e-12,
    )


def test_embedded_cluster_workers_keep_the_default_allocator_even_after_a_plain_cluster():
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        """
        import os
        from distributed import Client, LocalCluster
        from daskhpo.cluster import make_local_cluster

        def env():
            return os.environ.get("MALLOC_TRIM_THRESHOLD_")

        if __name__ == "__main__":
            kw = dict(n_workers=1, threads_per_worker=1, dashboard_address=":0")
            with LocalCluster(host="127.0.0.1", **kw) as c, Client(c) as client:
                print("plain", list(client.run(env).values()))
            with make_local_cluster(**kw) as c, Client(c) as client:
                print("embedded", list(client.run(env).values()))
            print("parent", os.environ.get("MALLOC_TRIM_THRESHOLD_"))
        """
    )
    env = {k: v for k, v in __import__("os").environ.items() if k != "MALLOC_TRIM_THRESHOLD_"}
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, env=env
    ).stdout
    assert "plain ['65536']" in out  # distributed's default, which also lands in the parent
    assert "embedded [None]" in out
    assert "parent 65536" in out  # what another cluster's nanny set is put back afterwards


def test_worker_tasks_hold_native_thread_pools_to_one_thread_and_restore_them():
    from threadpoolctl import threadpool_info, threadpool_limits

    from daskhpo.execution.tasks import single_threaded

    with threadpool_limits(2):
        assert threadpool_info() and all(p["num_threads"] == 2 for p in threadpool_info())
        for _ in range(2):  # the second time from the kept scan of loaded libraries
            with single_threaded():
                assert all(p["num_threads"] == 1 for p in threadpool_info())
            assert all(p["num_threads"] == 2 for p in threadpool_info())
