"""Faults on a real cluster: a worker killed mid-search, a candidate that kills its worker every time."""

from __future__ import annotations

import os
import signal
import threading
import time

import dask
import numpy as np
import pytest
from distributed import Client
from sklearn.datasets import load_iris
from sklearn.exceptions import FitFailedWarning

from daskhpo import GridSearchCV
from daskhpo.cluster import make_local_cluster
from tests.helpers import Crasher, SlowTree

X, y = load_iris(return_X_y=True)


def test_worker_killed_mid_search_loses_and_repeats_nothing(client):
    grid = {"max_depth": list(range(1, 13)), "delay": [0.1]}
    reference = GridSearchCV(
        SlowTree(), {"max_depth": list(range(1, 13)), "delay": [0.0]}, cv=3, client=client
    )
    reference.fit(X, y)

    search = GridSearchCV(SlowTree(), grid, cv=3, client=client)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            search.fit(X, y)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 60  # when to stop waiting for 3 trials, not a speed target
    while len(getattr(search, "store_", ())) < 3:
        assert thread.is_alive(), f"the search ended before 3 trials were stored: {errors}"
        if time.monotonic() > deadline:
            thread.join(120)
            pytest.fail(f"fewer than 3 of 12 trials stored after 60 s; errors: {errors}")
        time.sleep(0.02)
    pids = client.run(os.getpid)
    victim = sorted(pids.values())[0]
    os.kill(victim, signal.SIGKILL)
    # Read after the kill landed: the store grows only, so fewer than the 12 planned trials now
    # means fewer when the worker died. The kill came mid-search, not after it.
    stored_at_kill = len(search.store_)
    assert 3 <= stored_at_kill < 12, f"{stored_at_kill} of 12 trials stored at the kill"
    assert thread.is_alive(), "fit had returned before the kill"
    thread.join(120)
    assert not thread.is_alive() and not errors, errors
    client.wait_for_workers(2, timeout=60)

    trial_ids = sorted(r.trial_id for r in search.store_.results())
    assert trial_ids == list(range(12))  # every trial once: none lost, none counted twice
    assert not any(r.failed for r in search.store_.results())
    np.testing.assert_array_equal(
        search.cv_results_["mean_test_score"], reference.cv_results_["mean_test_score"]
    )
    assert victim not in client.run(os.getpid).values()  # the worker really was replaced


@pytest.fixture
def fragile_cluster():
    # Give up on a task after its first worker death so the test stays short.
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = make_local_cluster(n_workers=2, dashboard_address="127.0.0.1:0")
    with cluster, Client(cluster, set_as_default=False) as c:
        yield c


def test_candidate_that_kills_its_worker_is_recorded_failed_and_the_search_goes_on(fragile_cluster):
    grid = [{"crash": [False], "max_depth": [1, 2, 3, 4]}, {"crash": [True], "max_depth": [2]}]
    search = GridSearchCV(Crasher(), grid, cv=2, client=fragile_cluster)
    with pytest.warns(FitFailedWarning):
        search.fit(X, y)
    results = {r.trial_id: r for r in search.store_.results()}
    crashed = [i for i, p in enumerate(search.cv_results_["params"]) if p["crash"]]
    innocent = [r for i, r in results.items() if r.failed and i not in crashed]
    assert not innocent, [e[:3000] for r in innocent for e in r.errors if e]
    assert sorted(i for i, r in results.items() if r.failed) == crashed
    for i in crashed:
        for error in results[i].errors:
            assert "failed after" in error and "kills its worker process" in error, error[:2000]
    scores = search.cv_results_["mean_test_score"]
    assert np.isnan(scores[crashed]).all()
    assert np.isfinite(np.delete(scores, crashed)).all()
    assert search.best_params_["crash"] is False


def test_worker_killed_while_trials_continue_their_models(client):
    """Promoted trials continue models held on the workers; killing one loses the models it held,
    which the scheduler computes again from their tasks: the search ends with the results of
    fitting every rung from scratch, nothing failed."""
    from daskhpo import SuccessiveHalvingSearchCV
    from tests.helpers import SlowForest

    space = {"max_features": [0.25, 0.5, 0.75, 1.0], "delay": [0.15]}
    settings = dict(
        resource="n_estimators", min_budget=2, max_budget=18, n_candidates=9, cv=3, random_state=0
    )
    reference = SuccessiveHalvingSearchCV(
        SlowForest(), {**space, "delay": [0.0]}, continuation=False, client=client, **settings
    ).fit(X, y)
    search = SuccessiveHalvingSearchCV(SlowForest(), space, client=client, **settings)
    errors: list[BaseException] = []
    thread = threading.Thread(target=lambda: _fit_into(search, errors))
    thread.start()
    n_first = 4  # distinct candidates of the space: the first rung's trials
    deadline = time.monotonic() + 60  # when to stop waiting, not a speed target
    while len(getattr(search, "store_", ())) < n_first:
        assert thread.is_alive(), f"the search ended before its first rung was stored: {errors}"
        if time.monotonic() > deadline:
            thread.join(120)
            pytest.fail(f"the first rung was not stored after 60 s; errors: {errors}")
        time.sleep(0.02)
    victim = sorted(client.run(os.getpid).values())[0]
    os.kill(victim, signal.SIGKILL)
    assert thread.is_alive(), "fit had returned before the kill"
    thread.join(120)
    assert not thread.is_alive() and not errors, errors
    client.wait_for_workers(2, timeout=60)
    assert not any(r.failed for r in search.store_.results())
    assert search.stats_["units_continued"] > 0
    ours, theirs = search.cv_results_, reference.cv_results_
    strip = [{k: v for k, v in p.items() if k != "delay"} for p in ours["params"]]
    assert strip == [{k: v for k, v in p.items() if k != "delay"} for p in theirs["params"]]
    np.testing.assert_array_equal(ours["mean_test_score"], theirs["mean_test_score"])


def _fit_into(search, errors: list[BaseException]) -> None:
    try:
        search.fit(X, y)
    except BaseException as exc:  # pragma: no cover - reported by the test
        errors.append(exc)
