"""trial_timeout: a fit that hangs is stopped, recorded as failed, and its worker slot comes back."""

from __future__ import annotations

import math
import os

import dask
import numpy as np
import pytest
from distributed import Client
from sklearn.datasets import load_iris
from sklearn.exceptions import FitFailedWarning
from sklearn.tree import DecisionTreeClassifier

from daskhpo import GridSearchCV, InvalidSearchError, RandomizedSearchCV
from daskhpo.cluster import make_local_cluster
from daskhpo.store import SQLiteStore
from tests.helpers import Hanger

X, y = load_iris(return_X_y=True)
DEPTHS = [1, 2, 3, 4, 5, 6]


@pytest.fixture(scope="module")
def own_client():
    """A 2-worker cluster of this module's own: its workers get restarted by the tests.

    LocalCluster closes for good the nanny of a worker that is still missing this long after any
    removal of it; shortened from 15 s, a restart often falls in that window, and the searches must
    hand back their cluster whole all the same.
    """
    with (
        dask.config.set({"distributed.deploy.lost-worker-timeout": "3s"}),
        make_local_cluster(n_workers=2, dashboard_address="127.0.0.1:0") as cluster,
        Client(cluster, set_as_default=False) as c,
    ):
        c.wait_for_workers(2, timeout=60)
        yield c


# Hang guards, not speed targets: without trial_timeout these searches would wait on a 1000 s sleep.
@pytest.mark.timeout(240)
def test_hanging_candidate_is_failed_with_the_reason_and_the_search_goes_on(own_client, tmp_path):
    client = own_client
    reference = GridSearchCV(Hanger(), {"max_depth": DEPTHS}, cv=2, client=client).fit(X, y)
    pids_before = set(client.run(os.getpid).values())

    # The hanging candidate comes first: both its folds take both workers, and every other
    # unit queued behind them on those workers must run again, not be counted as failed.
    grid = [{"hang": [True], "max_depth": [2]}, {"hang": [False], "max_depth": DEPTHS}]
    storage = f"sqlite:///{tmp_path / 'runs.db'}"
    search = GridSearchCV(
        Hanger(), grid, cv=2, trial_timeout=2, client=client, storage=storage, name="hang"
    )
    # fit returned although one fit sleeps 1000 s: the hung candidate is failed with the timeout's
    # text, and every other candidate's result is there (below).
    with pytest.warns(FitFailedWarning, match="timed out after 2 s"):
        search.fit(X, y)

    params = search.cv_results_["params"]
    assert params[0] == {"hang": True, "max_depth": 2}
    scores = search.cv_results_["mean_test_score"]
    assert math.isnan(scores[0])
    # Every other candidate scores exactly what an undisturbed run gives.
    np.testing.assert_array_equal(scores[1:], reference.cv_results_["mean_test_score"])
    assert search.best_params_ == {"hang": False, **reference.best_params_}
    assert search.stats_["units_timed_out"] == 2

    stored = {r["trial_id"]: r for r in SQLiteStore(tmp_path / "runs.db", "hang").records()}
    assert sorted(stored) == list(range(len(DEPTHS) + 1))  # each trial stored once
    assert stored[0]["status"] == "failed"
    assert len(stored[0]["errors"]) == 2, stored[0]  # both folds of the hung candidate
    for error in stored[0]["errors"]:
        assert "TimeoutError" in error and "timed out after 2 s" in error, error
    assert all(stored[t]["status"] == "complete" for t in range(1, len(DEPTHS) + 1))

    # The slots came back: two workers, and the ones that ran the hanging fit are new processes.
    assert len(client.nthreads()) == 2
    assert set(client.run(os.getpid).values()) != pids_before


@pytest.mark.timeout(240)
def test_error_score_raise_stops_on_the_timeout_and_leaves_the_cluster_whole(own_client):
    client = own_client
    grid = [{"hang": [False], "max_depth": [1]}, {"hang": [True], "max_depth": [2]}]
    search = GridSearchCV(
        Hanger(), grid, cv=2, trial_timeout=1.5, error_score="raise", client=client
    )
    # fit stopped on the hung fit's timeout (not after its 1000 s sleep), and says so.
    with pytest.raises(TimeoutError, match=r"timed out after 1\.5 s") as info:
        search.fit(X, y)
    notes = "\n".join(getattr(info.value, "__notes__", []))
    assert "'hang': True" in notes and "error_score='raise'" in notes
    assert len(client.nthreads()) == 2
    # The cluster is usable right away: a search on it runs and scores as usual.
    after = GridSearchCV(
        DecisionTreeClassifier(random_state=0), {"max_depth": [1, 2]}, cv=2, client=client
    ).fit(X, y)
    assert np.isfinite(after.cv_results_["mean_test_score"]).all()


@pytest.mark.timeout(240)
def test_bayesian_trials_that_hang_are_failed_and_told_as_failures(own_client):
    from daskhpo import BayesSearchCV, Categorical, Int

    client = own_client
    space = {"hang": Categorical([True, False]), "max_depth": Int(1, 4)}
    search = BayesSearchCV(
        Hanger(),
        space,
        n_trials=4,
        sampler="random",
        random_state=1,
        cv=2,
        trial_timeout=2,
        client=client,
    )
    with pytest.warns(FitFailedWarning, match="timed out after 2 s"):
        search.fit(X, y)
    hung = [p["hang"] for p in search.cv_results_["params"]]
    assert 0 < sum(hung) < len(hung), hung  # this seed draws both kinds of trial
    scores = search.cv_results_["mean_test_score"]
    for hang, score in zip(hung, scores, strict=True):
        assert math.isnan(score) == hang
    assert search.best_params_["hang"] is False
    assert search.stats_["trials_failed"] == sum(hung)
    assert len(client.nthreads()) == 2


@pytest.mark.parametrize("bad", [0, -3, float("nan"), float("inf"), "10", True])
def test_bad_trial_timeout_is_refused_before_any_cluster_work(bad):
    # No scheduler listens there: reaching it would fail differently, after a connect timeout.
    for search in (
        GridSearchCV(
            DecisionTreeClassifier(),
            {"max_depth": [1, 2]},
            trial_timeout=bad,
            client="tcp://127.0.0.1:9",
        ),
        RandomizedSearchCV(
            DecisionTreeClassifier(),
            {"max_depth": [1, 2]},
            n_iter=2,
            trial_timeout=bad,
            client="tcp://127.0.0.1:9",
        ),
    ):
        with pytest.raises(InvalidSearchError, match=r"trial_timeout=.*positive number of seconds"):
            search.fit(X, y)


def test_trial_timeout_in_a_spec_and_on_the_command_line(tmp_path, capsys):
    from daskhpo.cli import main
    from daskhpo.spec import build_search, load_spec

    spec = {
        "estimator": {"class": "sklearn.tree.DecisionTreeClassifier"},
        "search": {"type": "grid", "param_grid": {"max_depth": [1, 2]}},
        "data": {"loader": "sklearn.datasets.load_iris"},
    }
    assert load_spec(spec)["trial_timeout"] is None
    assert build_search({**spec, "trial_timeout": 30}).trial_timeout == 30
    assert build_search(spec).get_params()["trial_timeout"] is None
    with pytest.raises(InvalidSearchError, match=r"spec\.trial_timeout: expected a positive"):
        load_spec({**spec, "trial_timeout": 0})

    for command in (["run", "spec.yaml"], ["resume", "name", "--storage", "sqlite:///x.db"]):
        with pytest.raises(SystemExit) as info:
            main([*command, "--trial-timeout", "-5"])
        assert info.value.code == 2
        assert (
            "--trial-timeout: '-5' is not a positive number of seconds" in capsys.readouterr().err
        )


@pytest.mark.timeout(240)
def test_data_the_user_scattered_survives_the_restart_of_a_hung_fits_worker(own_client):
    """The worker running a hung fit is restarted; what only it held is copied off first."""
    client = own_client
    client.wait_for_workers(2, timeout=60)
    workers = sorted(client.nthreads())
    # One array on each worker alone: whichever worker the hung fit lands on, one of them is there.
    arrays = {w: np.arange(1000) * (i + 1) for i, w in enumerate(workers)}
    futures = {w: client.scatter(a, workers=[w]) for w, a in arrays.items()}
    pids_before = set(client.run(os.getpid).values())
    grid = [{"hang": [True], "max_depth": [2]}, {"hang": [False], "max_depth": [1, 2]}]
    search = GridSearchCV(Hanger(), grid, cv=2, trial_timeout=2, client=client)
    with pytest.warns(FitFailedWarning, match="timed out after 2 s"):
        search.fit(X, y)
    assert search.stats_["units_timed_out"] == 2
    assert set(client.run(os.getpid).values()) != pids_before  # a worker really was restarted
    for w, future in futures.items():
        np.testing.assert_array_equal(future.result(timeout=30), arrays[w])
