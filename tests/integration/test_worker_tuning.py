"""The allocator plugin on clusters the user starts (see daskhpo.cluster.tuning), on real LocalClusters."""

from __future__ import annotations

import os

import dask
import numpy as np
from distributed import Client, LocalCluster
from sklearn.datasets import load_iris
from sklearn.model_selection import GridSearchCV as SkGridSearchCV
from sklearn.tree import DecisionTreeClassifier

from daskhpo import GridSearchCV
from daskhpo.cluster import make_local_cluster

X, y = load_iris(return_X_y=True)


def _state(dask_worker):
    return getattr(dask_worker, "daskhpo_allocator", None)


def _search(client):
    return GridSearchCV(
        DecisionTreeClassifier(random_state=0), {"max_depth": [1, 2]}, cv=3, client=client
    )


def _cluster(**kw):
    return LocalCluster(
        n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address="127.0.0.1:0", **kw
    )


def _trim_set() -> bool:
    return "MALLOC_TRIM_THRESHOLD_" in os.environ


def test_a_plain_local_cluster_gets_the_thresholds_once_per_worker():
    with _cluster(memory_limit="4GB") as cluster, Client(cluster, set_as_default=False) as client:
        assert set(client.run(_state).values()) == {None}  # nothing before the first search
        first = _search(client).fit(X, y)
        states = list(client.run(_state).values())
        assert len(states) == 2
        for state in states:
            assert state == {
                "applied": True,
                "mmap_threshold": 4 * 2**20,
                "trim_threshold": 16 * 2**20,
            }
        # A worker that joins later gets it too, and results are the same as without it.
        cluster.scale(3)
        client.wait_for_workers(3)
        assert all(s and s["applied"] for s in client.run(_state).values())
        # The same scores as scikit-learn's (no embedded cluster started here: other tests count it).
        plain = SkGridSearchCV(DecisionTreeClassifier(random_state=0), {"max_depth": [1, 2]}, cv=3)
        plain.fit(X, y)
        np.testing.assert_array_equal(
            first.cv_results_["mean_test_score"], plain.cv_results_["mean_test_score"]
        )


def test_left_alone_when_opted_out_when_memory_is_tight_and_on_the_embedded_cluster():
    with (
        dask.config.set({"daskhpo.tune-workers": False}),
        _cluster(memory_limit="4GB") as cluster,
        Client(cluster, set_as_default=False) as client,
    ):
        _search(client).fit(X, y)
        assert set(client.run(_state).values()) == {None}
    with _cluster(memory_limit="1GB") as cluster, Client(cluster, set_as_default=False) as client:
        _search(client).fit(X, y)
        for state in client.run(_state).values():
            assert state["applied"] is False and "memory_limit 1.00 GB" in state["reason"]
    # The embedded cluster's workers start without the nanny's variable (glibc adapts by itself),
    # so the plugin is not even registered there: no round trip to every worker before a search.
    with (
        make_local_cluster(n_workers=1, dashboard_address="127.0.0.1:0") as cluster,
        Client(cluster, set_as_default=False) as client,
    ):
        _search(client).fit(X, y)
        assert set(client.run(_state).values()) == {None}
        assert set(client.run(_trim_set).values()) == {False}
