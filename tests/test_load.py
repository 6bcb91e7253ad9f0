"""daskhpo.load: a stored search read back without a cluster, and resumed from its stored spec."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.exceptions import FitFailedWarning
from sklearn.tree import DecisionTreeClassifier

import daskhpo
from daskhpo import Float, GridSearchCV, InvalidSearchError, RandomizedSearchCV
from daskhpo.cli import main

ROOT = Path(__file__).resolve().parents[1]
X, y = load_iris(return_X_y=True)


def assert_same_results(ours: dict, loaded: dict) -> None:
    assert sorted(loaded) == sorted(ours)
    for key, value in ours.items():
        if key == "params":
            assert loaded[key] == value
        elif "_time" in key:
            np.testing.assert_allclose(np.asarray(loaded[key]), np.asarray(value))
        elif key.startswith("param_"):
            assert list(loaded[key]) == list(value), key
            np.testing.assert_array_equal(
                np.ma.getmaskarray(loaded[key]), np.ma.getmaskarray(value)
            )
        else:
            np.testing.assert_array_equal(np.asarray(loaded[key]), np.asarray(value), err_msg=key)


def test_load_gives_what_the_fitted_search_had(client, tmp_path):
    storage = f"sqlite:///{tmp_path / 'runs.db'}"
    # Several metrics, train scores, and a failing candidate (max_depth=-1) scored error_score.
    with pytest.warns(FitFailedWarning):
        search = GridSearchCV(
            DecisionTreeClassifier(random_state=0),
            {"max_depth": [-1, 1, 2, None], "criterion": ["gini", "entropy"]},
            scoring=["accuracy", "f1_macro"],
            refit="f1_macro",
            return_train_score=True,
            error_score=-1.0,
            cv=3,
            client=client,
            storage=storage,
            name="trees",
        ).fit(X, y)

    found = daskhpo.load("trees", storage=storage)
    assert isinstance(found, daskhpo.StoredSearch)
    assert (found.name, found.status, found.n_trials) == ("trees", "finished", 8)
    assert found.multimetric_ and found.n_splits_ == 3
    assert_same_results(search.cv_results_, found.cv_results_)
    assert found.cv_results_["mean_test_accuracy"][0] == -1.0  # the failed candidate
    assert found.best_index_ == search.best_index_
    assert found.best_score_ == search.best_score_
    assert found.best_params_ == search.best_params_
    assert found.document is None  # started from Python
    with pytest.raises(AttributeError, match=r"nothing fitted is stored.*\.resume\(\)"):
        found.best_estimator_  # noqa: B018
    with pytest.raises(InvalidSearchError, match="started from Python.*resume=True"):
        found.resume(client=client)

    # Another process, with no cluster at all, reads the same.
    script = textwrap.dedent(
        f"""
        import json, daskhpo
        from distributed.client import default_client
        found = daskhpo.load("trees", storage={storage!r})
        try:
            default_client()
            print("a client exists")
        except ValueError:
            pass
        print(json.dumps({{"best": found.best_params_, "score": found.best_score_,
                          "means": list(found.cv_results_["mean_test_f1_macro"])}}))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    assert "a client exists" not in out
    seen = json.loads(out.strip().splitlines()[-1])
    assert seen["best"] == search.best_params_
    assert seen["score"] == search.best_score_
    assert seen["means"] == list(search.cv_results_["mean_test_f1_macro"])


def test_load_a_randomized_search_with_float_parameters(client, tmp_path):
    storage = f"sqlite:///{tmp_path / 'runs.db'}"
    search = RandomizedSearchCV(
        DecisionTreeClassifier(random_state=0),
        {"max_depth": [1, 2, 3, None], "min_impurity_decrease": Float(0.0, 0.05)},
        n_iter=6,
        random_state=3,
        cv=3,
        client=client,
        storage=storage,
        name="random-trees",
    ).fit(X, y)
    found = daskhpo.load("random-trees", storage)
    assert_same_results(search.cv_results_, found.cv_results_)
    assert (found.best_index_, found.best_params_) == (search.best_index_, search.best_params_)
    assert "random-trees" in repr(found) and "finished" in repr(found)


def test_unknown_names_and_missing_stores_are_explained(client, tmp_path):
    storage = f"sqlite:///{tmp_path / 'runs.db'}"
    GridSearchCV(
        DecisionTreeClassifier(), {"max_depth": [1]}, cv=2, client=client, storage=storage, name="a"
    ).fit(X, y)
    with pytest.raises(InvalidSearchError, match=r"name='b': no search of that name.*'a'"):
        daskhpo.load("b", storage)
    missing = f"sqlite:///{tmp_path / 'nothing.db'}"
    with pytest.raises(InvalidSearchError, match="there is no store at"):
        daskhpo.load("a", missing)
    assert not (tmp_path / "nothing.db").exists()  # looking did not create it
    with pytest.raises(InvalidSearchError, match=r"storage='runs\.db'.*sqlite:///"):
        daskhpo.load("a", "runs.db")


def test_resume_command_errors_need_no_cluster(client, tmp_path, capsys):
    storage = f"sqlite:///{tmp_path / 'runs.db'}"
    GridSearchCV(
        DecisionTreeClassifier(),
        {"max_depth": [1]},
        cv=2,
        client=client,
        storage=storage,
        name="py",
    ).fit(X, y)
    assert main(["resume", "nope", "--storage", storage]) == 2
    err = capsys.readouterr().err
    assert "no search of that name" in err and "'py'" in err
    assert main(["resume", "py", "--storage", storage]) == 2
    assert "was started from Python" in capsys.readouterr().err


def test_a_search_run_from_a_spec_is_resumed_from_the_store_alone(client, tmp_path):
    spec = tmp_path / "trees.yaml"
    spec.write_text(
        "name: iris-trees\n"
        "estimator: {class: sklearn.tree.DecisionTreeClassifier, params: {random_state: 0}}\n"
        "search: {type: grid, param_grid: {max_depth: [1, 2, 3, 4]}}\n"
        "data: {loader: sklearn.datasets.load_iris}\n"
        "scoring: accuracy\n"
        "cv: 3\n"
    )
    storage = f"sqlite:///{tmp_path / 'runs.db'}"
    run = subprocess.run(
        [sys.executable, "-m", "daskhpo", "run", str(spec)]
        + ["--cluster", client.scheduler.address, "--storage", storage, "--trial-timeout", "30"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert run.returncode == 0, run.stderr
    spec.unlink()  # the store alone is enough from here on

    found = daskhpo.load("iris-trees", storage)
    assert found.document is not None and found.document["cv"] == 3
    assert found.document["trial_timeout"] == 30  # the command line's, kept with the spec
    search = found.resume(client=client)
    assert isinstance(search, GridSearchCV) and search.trial_timeout == 30
    assert search.stats_["trials_replayed"] == 4
    assert search.stats_["units_computed"] == 0  # nothing but the refit
    assert search.best_params_ == found.best_params_
    np.testing.assert_array_equal(
        search.cv_results_["mean_test_score"], found.cv_results_["mean_test_score"]
    )
    assert search.best_estimator_.score(X, y) > 0.9
