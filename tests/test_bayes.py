"""BayesSearchCV on a real 2-worker LocalCluster: scikit-learn parity, failures, Pareto fronts, resume."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
from scipy import stats
from sklearn.base import clone
from sklearn.datasets import load_iris
from sklearn.exceptions import FitFailedWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score, cross_validate
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier

from daskhpo import BayesSearchCV, Categorical, Float, Int, InvalidSearchError
from daskhpo.store import SQLiteStore
from tests.helpers import keep_first_trials

pytest.importorskip("optuna", reason="optuna is in the test extra; this guards bare installs")

X, y = load_iris(return_X_y=True)
CV = StratifiedKFold(3, shuffle=True, random_state=0)


def test_scores_equal_cross_val_score_and_sklearn_attributes(client):
    space = {
        "C": stats.loguniform(1e-2, 1e2),
        "gamma": Float(1e-3, 1.0, log=True),
        "shrinking": [True, False],
    }
    search = BayesSearchCV(
        SVC(), space, n_trials=8, cv=CV, random_state=0, client=client, return_train_score=True
    )
    search.fit(X, y)
    res = search.cv_results_
    assert len(res["params"]) == 8 and search.n_splits_ == 3
    for i, params in enumerate(res["params"]):
        assert 1e-2 <= params["C"] <= 1e2 and 1e-3 <= params["gamma"] <= 1.0
        expected = cross_val_score(clone(SVC()).set_params(**params), X, y, cv=CV)
        got = [res[f"split{k}_test_score"][i] for k in range(3)]
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    assert search.best_index_ == int(np.argmax(res["mean_test_score"]))
    assert search.best_score_ == res["mean_test_score"][search.best_index_]
    assert search.best_params_ == res["params"][search.best_index_]
    assert search.best_estimator_.get_params()["C"] == search.best_params_["C"]
    assert search.score(X, y) == pytest.approx(search.best_estimator_.score(X, y))
    assert "mean_train_score" in res and "rank_test_score" in res
    assert search.stats_["suggestions"] == 8 and search.stats_["max_trials_in_flight"] == 2
    assert search.stats_["sampler"] == "TPESampler"


def test_conditional_branches_and_multimetric_scoring(client):
    space = [
        {"kernel": ["rbf"], "C": Float(0.1, 10, log=True), "gamma": Float(1e-2, 1, log=True)},
        {"kernel": ["linear"], "C": Float(0.1, 10, log=True)},
    ]
    search = BayesSearchCV(
        SVC(),
        space,
        n_trials=10,
        cv=KFold(3, shuffle=True, random_state=1),
        scoring={"acc": "accuracy", "f1": "f1_macro"},
        refit="f1",
        random_state=2,
        client=client,
        n_parallel=3,
    )
    search.fit(X, y)
    kernels = set()
    for params in search.cv_results_["params"]:
        kernels.add(params["kernel"])
        assert ("gamma" in params) == (params["kernel"] == "rbf")
    assert kernels == {"rbf", "linear"}
    gamma = search.cv_results_["param_gamma"]
    assert list(np.ma.getmaskarray(gamma)) == [
        p["kernel"] != "rbf" for p in search.cv_results_["params"]
    ]
    best = search.best_index_
    assert best == int(np.argmax(search.cv_results_["mean_test_f1"]))
    assert search.stats_["max_trials_in_flight"] == 3
    i = 4
    expected = cross_validate(
        SVC().set_params(**search.cv_results_["params"][i]),
        X,
        y,
        cv=KFold(3, shuffle=True, random_state=1),
        scoring={"acc": "accuracy", "f1": "f1_macro"},
    )
    assert search.cv_results_["mean_test_acc"][i] == pytest.approx(expected["test_acc"].mean())


def test_pipeline_with_nested_choice_of_classifier(client):
    pipe = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression())])
    space = {
        "scale": ["passthrough", StandardScaler()],
        "clf": Categorical(
            [
                {"clf": [LogisticRegression(max_iter=500)], "clf__C": Float(1e-2, 10, log=True)},
                {"clf": [DecisionTreeClassifier(random_state=0)], "clf__max_depth": Int(1, 5)},
            ]
        ),
    }
    search = BayesSearchCV(pipe, space, n_trials=8, cv=3, random_state=0, client=client)
    search.fit(X, y)
    for params in search.cv_results_["params"]:
        if isinstance(params["clf"], LogisticRegression):
            assert set(params) == {"scale", "clf", "clf__C"}
        else:
            assert set(params) == {"scale", "clf", "clf__max_depth"}
    assert search.best_score_ > 0.9


def test_failed_trials_recorded_and_never_scored(client):
    # min_samples_leaf=0 makes DecisionTreeClassifier.fit raise: those trials fail on every fold.
    space = {"min_samples_leaf": [0, 1, 2], "max_depth": Int(1, 4)}
    search = BayesSearchCV(
        DecisionTreeClassifier(random_state=0),
        space,
        n_trials=10,
        cv=3,
        random_state=0,
        client=client,
        error_score=-1.0,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        search.fit(X, y)
    assert any(issubclass(w.category, FitFailedWarning) for w in caught)
    res = search.cv_results_
    failed = [p["min_samples_leaf"] == 0 for p in res["params"]]
    assert 0 < sum(failed) < 10
    assert search.stats_["trials_failed"] == sum(failed)
    for i, bad in enumerate(failed):
        assert (res["mean_test_score"][i] == -1.0) == bad
    assert search.best_params_["min_samples_leaf"] != 0


def test_error_score_raise_stops_the_search(client):
    search = BayesSearchCV(
        DecisionTreeClassifier(),
        {"min_samples_leaf": [0]},
        n_trials=3,
        cv=3,
        client=client,
        error_score="raise",
    )
    with pytest.raises(Exception, match="min_samples_leaf"):
        search.fit(X, y)


def test_multi_objective_pareto_front(client):
    search = BayesSearchCV(
        DecisionTreeClassifier(random_state=0),
        {"max_depth": Int(1, 8), "min_samples_leaf": Int(1, 20)},
        n_trials=14,
        cv=3,
        scoring=["accuracy", "f1_macro"],
        refit="accuracy",
        directions={"accuracy": "maximize", "f1_macro": "maximize", "fit_time": "minimize"},
        sampler_options={"population_size": 6},
        random_state=0,
        client=client,
    )
    search.fit(X, y)
    assert search.stats_["sampler"] == "NSGAIISampler"
    res = search.cv_results_
    acc, f1, t = res["mean_test_accuracy"], res["mean_test_f1_macro"], res["mean_fit_time"]
    points = np.column_stack([acc, f1, -t])
    front = {p["index"] for p in search.pareto_front_}

    def dominated(i):
        return any(
            np.all(points[j] >= points[i]) and np.any(points[j] > points[i])
            for j in range(len(points))
        )

    assert front == {i for i in range(len(points)) if not dominated(i)}
    assert list(res["is_pareto_optimal"]) == [i in front for i in range(len(points))]
    # The documented rule: the front's best mean test score of the refit metric.
    assert search.best_index_ == search.pareto_front_[0]["index"]
    assert acc[search.best_index_] == max(acc[i] for i in front)
    assert search.best_score_ == acc[search.best_index_]
    assert search.pareto_front_[0]["values"]["fit_time"] == t[search.best_index_]


def test_bad_settings_fail_before_any_cluster_work():
    unreachable = "tcp://127.0.0.1:1"  # connecting would fail: these errors must come first

    def fit(**kw):
        params = {"estimator": SVC(), "search_space": {"C": Float(0.1, 1)}, "client": unreachable}
        BayesSearchCV(**{**params, **kw}).fit(X, y)

    with pytest.raises(InvalidSearchError, match="'Cc', which is not a parameter of SVC"):
        fit(search_space={"Cc": Float(0.1, 1)})
    with pytest.raises(InvalidSearchError, match=r"search_space\['C'\] = scipy.stats.norm"):
        fit(search_space={"C": stats.norm(1, 0.1)})
    with pytest.raises(InvalidSearchError, match="sampler='bohb'"):
        fit(sampler="bohb")
    with pytest.raises(InvalidSearchError, match="n_parallel=0"):
        fit(n_parallel=0)
    with pytest.raises(InvalidSearchError, match="'maximise'"):
        fit(directions={"score": "maximise"})
    with pytest.raises(InvalidSearchError, match="'recall'.*neither a metric"):
        fit(directions={"recall": "maximize", "fit_time": "minimize"})
    with pytest.raises(InvalidSearchError, match="n_trials=-1"):
        fit(n_trials=-1)


def test_resume_replays_stored_trials_and_continues_the_same_way(client, tmp_path):
    storage = f"sqlite:///{tmp_path / 'bayes.db'}"

    def search(name):
        return BayesSearchCV(
            DecisionTreeClassifier(random_state=0),
            {"max_depth": Int(1, 6), "criterion": ["gini", "entropy"]},
            n_trials=9,
            cv=3,
            random_state=4,
            sampler_options={"n_startup_trials": 3},
            n_parallel=1,
            storage=storage,
            name=name,
            client=client,
        )

    full = search("full").fit(X, y)
    # Simulate a crash after 5 trials: copy them into another search with the same fingerprint.
    store = SQLiteStore(tmp_path / "bayes.db", "full")
    part = SQLiteStore(tmp_path / "bayes.db", "part")
    keep_first_trials(store, "part", 5)
    resumed = search("part")
    with pytest.raises(InvalidSearchError, match="pass resume=True"):
        resumed.fit(X, y)
    resumed.fit(X, y, resume=True)
    assert resumed.stats_["trials_replayed"] == 5
    assert resumed.stats_["suggestions"] == 4
    assert resumed.cv_results_["params"] == full.cv_results_["params"]
    np.testing.assert_array_equal(
        resumed.cv_results_["mean_test_score"], full.cv_results_["mean_test_score"]
    )
    assert len(part) == 9
    # Another space is another search: resuming it is refused.
    other = BayesSearchCV(
        DecisionTreeClassifier(random_state=0),
        {"max_depth": Int(1, 7), "criterion": ["gini", "entropy"]},
        n_trials=9,
        cv=3,
        random_state=4,
        storage=storage,
        name="part",
        client=client,
    )
    with pytest.raises(InvalidSearchError, match="other data, settings or candidates"):
        other.fit(X, y, resume=True)


def test_cmaes_and_random_samplers_run(client):
    for sampler in ("cmaes", "random"):
        search = BayesSearchCV(
            LogisticRegression(max_iter=300),
            {"C": Float(1e-3, 1e2, log=True), "tol": Float(1e-5, 1e-2, log=True)},
            sampler=sampler,
            n_trials=6,
            cv=3,
            random_state=0,
            client=client,
        )
        search.fit(X, y)
        assert (
            search.stats_["sampler"]
            == {"cmaes": "CmaEsSampler", "random": "RandomSampler"}[sampler]
        )
        assert all(1e-3 <= p["C"] <= 1e2 for p in search.cv_results_["params"])


_BLOCK = """
import sys

class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == {module!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, Block())
"""


def _run_blocked(module: str, body: str) -> subprocess.CompletedProcess:
    code = _BLOCK.format(module=module) + textwrap.dedent(body)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_missing_optuna_says_how_to_install_it():
    done = _run_blocked(
        "optuna",
        """
        import daskhpo  # importing daskhpo itself needs no optuna
        from daskhpo import BayesSearchCV, Int
        from daskhpo.exceptions import DaskHPOError
        from sklearn.tree import DecisionTreeClassifier
        search = BayesSearchCV(DecisionTreeClassifier(), {"max_depth": Int(1, 3)}, n_trials=3,
                               client="tcp://127.0.0.1:1")
        try:
            search.fit([[0], [1], [0], [1]], [0, 1, 0, 1])
        except ImportError as exc:
            print("ERROR", isinstance(exc, DaskHPOError), exc)
        """,
    )
    assert done.returncode == 0, done.stderr
    assert "ERROR True" in done.stdout
    assert 'pip install "daskhpo[bayes]"' in done.stdout


def test_gp_without_pytorch_says_how_to_install_it():
    done = _run_blocked(
        "torch",
        """
        from daskhpo import BayesSearchCV, Float
        from sklearn.svm import SVC
        search = BayesSearchCV(SVC(), {"C": Float(0.1, 1)}, sampler="gp", client="tcp://127.0.0.1:1")
        try:
            search.fit([[0], [1], [0], [1]], [0, 1, 0, 1])
        except ImportError as exc:
            print("ERROR", exc)
        """,
    )
    assert done.returncode == 0, done.stderr
    assert "ERROR sampler='gp' needs PyTorch" in done.stdout and "pip install torch" in done.stdout


def test_gp_sampler_on_the_cluster(client):
    pytest.importorskip(
        "torch", reason="Optuna's GPSampler needs PyTorch, a ~3 GB optional dependency"
    )
    search = BayesSearchCV(
        SVC(),
        {"C": Float(1e-2, 1e2, log=True)},
        sampler="gp",
        sampler_options={"n_startup_trials": 3},
        n_trials=6,
        cv=3,
        random_state=0,
        client=client,
    )
    search.fit(X, y)
    assert search.stats_["sampler"] == "GPSampler"
    assert search.best_score_ > 0.9
