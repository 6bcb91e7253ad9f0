"""Search specs (YAML/JSON): validation messages, building searches, loading data, parity by hand."""

from __future__ import annotations

import copy
import inspect
import json
import math
import textwrap

import numpy as np
import pytest
from scipy.stats import loguniform
from sklearn.datasets import load_iris, make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier

from daskhpo import Categorical, Float, GridSearchCV, InvalidSearchError, RandomizedSearchCV
from daskhpo.registry import SEARCH_TYPES, register_search
from daskhpo.spec import SPEC_SCHEMA, build_search, load_data, load_spec, spec_to_json
from daskhpo.store import SQLiteStore

BASE = {
    "estimator": {"class": "sklearn.tree.DecisionTreeClassifier", "params": {"random_state": 0}},
    "search": {"type": "grid", "param_grid": {"max_depth": [1, 2, 3]}},
    "data": {"loader": "sklearn.datasets.load_iris"},
}


def make_xy(n=40, seed=0):
    """A loader for the tests: a small two-class problem as an (X, y) tuple."""
    return make_classification(n_samples=n, n_features=5, random_state=seed)


def not_a_dataset():
    return "no data here"


def spec_with(**changes):
    """BASE with top-level fields replaced (a value of None deletes the field)."""
    spec = copy.deepcopy(BASE)
    for key, value in changes.items():
        if value is None:
            spec.pop(key, None)
        else:
            spec[key] = value
    return spec


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def iris_frame():
    iris = load_iris(as_frame=True)
    frame = iris.data.copy()
    frame.columns = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    frame["species"] = iris.target
    return frame


def problem(spec, *, build=False, data=False):
    """The message of the InvalidSearchError that loading (or building from) ``spec`` raises."""
    with pytest.raises(InvalidSearchError) as info:
        if build:
            build_search(spec)
        elif data:
            load_data(spec)
        else:
            load_spec(spec)
    return str(info.value)


# -- valid specs run, and match the same search built by hand ---------------------------------------
def test_grid_yaml_csv_matches_hand_built(client, tmp_path):
    (tmp_path / "data").mkdir()
    iris_frame().to_csv(tmp_path / "data" / "iris.csv", index=False)
    path = write(
        tmp_path / "specs" / "trees.yaml",
        """\
        name: iris-trees
        estimator:
          class: sklearn.tree.DecisionTreeClassifier
          params: {random_state: 0}
        search:
          type: grid
          param_grid:
            - {max_depth: [1, 2, 3], criterion: [gini, entropy]}
            - {max_depth: [null], min_samples_leaf: [5, 10]}
        data:
          file: ../data/iris.csv      # relative to this file's folder
          target: species
        scoring: accuracy
        cv: 3
        """,
    )
    db = tmp_path / "runs.db"
    search = build_search(path, client=client, storage=f"sqlite:///{db}")
    assert isinstance(search, GridSearchCV) and search.name == "iris-trees"
    X, y = load_data(path)
    assert list(X.columns) == ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    assert y.name == "species" and len(X) == len(y) == 150
    search.fit(X, y)

    frame = iris_frame()
    y_hand = frame.pop("species")
    hand = GridSearchCV(
        DecisionTreeClassifier(random_state=0),
        [
            {"max_depth": [1, 2, 3], "criterion": ["gini", "entropy"]},
            {"max_depth": [None], "min_samples_leaf": [5, 10]},
        ],
        scoring="accuracy",
        cv=3,
        client=client,
    ).fit(frame, y_hand)
    assert search.best_params_ == hand.best_params_
    assert search.cv_results_["params"] == hand.cv_results_["params"]
    np.testing.assert_allclose(
        search.cv_results_["mean_test_score"], hand.cv_results_["mean_test_score"]
    )
    assert len(SQLiteStore(db, "iris-trees")) == 8


def test_random_json_pipeline_npz_matches_hand_built(client, tmp_path):
    X, y = make_classification(n_samples=120, n_features=6, random_state=1)
    np.savez(tmp_path / "xy.npz", X=X, y=y)
    spec = {
        "name": "pipe-random",
        "estimator": {
            "pipeline": [
                {"name": "scale", "class": "sklearn.preprocessing.StandardScaler"},
                {
                    "name": "clf",
                    "class": "sklearn.linear_model.LogisticRegression",
                    "params": {"max_iter": 300},
                },
            ]
        },
        "search": {
            "type": "random",
            "param_distributions": {
                "clf__C": {"dist": "loguniform", "args": [1e-3, 1e2]},
                "clf__tol": {"type": "float", "low": 1e-5, "high": 1e-3, "log": True},
                "clf__fit_intercept": {"type": "categorical", "choices": [True, False]},
                "scale__with_mean": [True, False],
            },
            "n_iter": 6,
            "random_state": 0,
        },
        "data": {"file": "xy.npz"},
        "scoring": ["accuracy", "f1_macro"],
        "refit": "accuracy",
        "cv": {
            "class": "sklearn.model_selection.KFold",
            "params": {"n_splits": 3, "shuffle": True, "random_state": 0},
        },
        "error_score": "raise",
        "return_train_score": True,
    }
    path = tmp_path / "pipe.json"
    path.write_text(json.dumps(spec, indent=2))
    search = build_search(path, client=client)
    assert isinstance(search, RandomizedSearchCV)
    assert (search.n_iter, search.random_state, search.error_score) == (6, 0, "raise")
    X_spec, y_spec = load_data(path)
    np.testing.assert_array_equal(X_spec, X)
    search.fit(X_spec, y_spec)

    hand = RandomizedSearchCV(
        Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression(max_iter=300))]),
        {
            "clf__C": loguniform(1e-3, 1e2),
            "clf__tol": Float(1e-5, 1e-3, log=True),
            "clf__fit_intercept": Categorical([True, False]),
            "scale__with_mean": [True, False],
        },
        n_iter=6,
        random_state=0,
        scoring=["accuracy", "f1_macro"],
        refit="accuracy",
        cv=KFold(3, shuffle=True, random_state=0),
        error_score="raise",
        return_train_score=True,
        client=client,
    ).fit(X, y)
    assert search.cv_results_["params"] == hand.cv_results_["params"]
    assert search.best_params_ == hand.best_params_
    for key in ("mean_test_accuracy", "mean_test_f1_macro", "mean_train_accuracy"):
        np.testing.assert_allclose(search.cv_results_[key], hand.cv_results_[key])


def test_loaders_bunch_tuple_and_own_function():
    X, y = load_data(spec_with(data={"loader": "sklearn.datasets.load_iris"}))  # a Bunch
    assert X.shape == (150, 4) and y.shape == (150,)
    X, y = load_data(
        spec_with(data={"loader": "sklearn.datasets.load_iris", "kwargs": {"return_X_y": True}})
    )
    assert X.shape == (150, 4)
    X, y = load_data(spec_with(data={"loader": "tests.test_spec:make_xy", "kwargs": {"n": 30}}))
    assert X.shape == (30, 5) and set(y) == {0, 1}
    msg = problem(spec_with(data={"loader": "tests.test_spec.not_a_dataset"}), data=True)
    assert "spec.data.loader" in msg and "expected an (X, y) pair or a Bunch" in msg
    msg = problem(
        spec_with(data={"loader": "tests.test_spec.make_xy", "kwargs": {"nn": 3}}), data=True
    )
    assert "spec.data.kwargs.nn" in msg and "did you mean 'n'" in msg


def test_defaults_round_trip_and_schema():
    import jsonschema

    jsonschema.Draft202012Validator.check_schema(SPEC_SCHEMA)
    spec = load_spec(
        spec_with(search={"type": "random", "param_distributions": {"max_depth": [1, 2]}})
    )
    assert spec["search"]["n_iter"] == 10 and spec["search"]["random_state"] is None
    assert build_search(spec).n_iter == 10  # as scikit-learn's default
    assert (spec["cv"], spec["refit"], spec["scoring"], spec["name"]) == (5, True, None, None)
    assert math.isnan(spec["error_score"]) and spec["return_train_score"] is False
    for key in ("cv", "refit", "scoring", "name", "return_train_score"):
        assert spec[key] == SPEC_SCHEMA["properties"][key]["default"]
    text = spec_to_json(spec)
    assert '"error_score": "nan"' in text
    again = load_spec(json.loads(text))
    assert spec_to_json(again) == text and load_spec(again) == again
    assert again["_base_dir"] == spec["_base_dir"]


def test_yaml_reads_exponents_as_floats_and_nan(tmp_path):
    path = write(
        tmp_path / "s.yaml",
        """\
        estimator: {class: sklearn.svm.SVC}
        search:
          type: random
          param_distributions: {C: {type: float, low: 1e-3, high: 1E2, log: true}}
        data: {loader: sklearn.datasets.load_iris}
        error_score: .nan
        """,
    )
    spec = load_spec(path)
    assert spec["search"]["param_distributions"]["C"]["low"] == 1e-3
    assert spec["search"]["param_distributions"]["C"]["high"] == 100.0
    assert math.isnan(spec["error_score"])


def test_estimator_objects_as_parameter_values():
    spec = spec_with(
        estimator={
            "pipeline": [
                {"name": "scale", "class": "sklearn.preprocessing.StandardScaler"},
                {"name": "clf", "class": "sklearn.linear_model.LogisticRegression"},
            ]
        },
        search={
            "type": "grid",
            "param_grid": {
                "clf": [
                    {"class": "sklearn.svm.SVC", "params": {"kernel": "linear"}},
                    {"class": "sklearn.tree.DecisionTreeClassifier"},
                ],
                "clf__random_state": [0],
            },
        },
    )
    search = build_search(spec)
    first, second = search.param_grid["clf"]
    assert isinstance(first, SVC) and first.kernel == "linear"
    assert isinstance(second, DecisionTreeClassifier)


# -- error messages ---------------------------------------------------------------------------------
def test_unknown_top_level_key_suggests_the_closest():
    spec = spec_with(serach={"type": "grid"})
    msg = problem(spec)
    assert "spec.serach is not a valid key; did you mean 'search'?" in msg
    msg = problem(spec_with(scorng="accuracy"))
    assert "spec.scorng" in msg and "did you mean 'scoring'?" in msg


def test_missing_estimator_class():
    msg = problem(spec_with(estimator={"params": {"max_depth": 2}}))
    assert "spec.estimator.class is missing" in msg
    assert "sklearn.tree.DecisionTreeClassifier" in msg  # says what is expected


def test_bad_import_paths_name_the_field_and_the_import_error():
    msg = problem(spec_with(estimator={"class": "sklearn.tree.DecisionTreClassifier"}), build=True)
    assert "spec.estimator.class = 'sklearn.tree.DecisionTreClassifier' cannot be imported" in msg
    assert "has no attribute 'DecisionTreClassifier'" in msg
    assert "Did you mean 'sklearn.tree.DecisionTreeClassifier'?" in msg
    msg = problem(
        spec_with(estimator={"class": "sklearn.treez.DecisionTreeClassifier"}), build=True
    )
    assert "spec.estimator.class" in msg and "No module named 'sklearn.treez'" in msg
    msg = problem(spec_with(estimator={"class": "DecisionTreeClassifier"}))
    assert "spec.estimator.class: expected the import path of an estimator class" in msg
    steps = [
        {"name": "scale", "class": "sklearn.preprocessing.StandardScalar"},
        {"name": "clf", "class": "sklearn.svm.SVC"},
    ]
    msg = problem(spec_with(estimator={"pipeline": steps}), build=True)
    assert "spec.estimator.pipeline[0].class" in msg and "StandardScaler" in msg


def test_param_grid_value_not_a_list():
    msg = problem(spec_with(search={"type": "grid", "param_grid": {"max_depth": 3}}))
    assert "spec.search.param_grid.max_depth: expected a non-empty list" in msg
    assert "found the number 3" in msg and "[3]" in msg
    msg = problem(spec_with(search={"type": "grid", "param_grid": [{"max_depth": []}]}))
    assert "spec.search.param_grid[0].max_depth" in msg


def test_grid_type_with_param_distributions():
    search = {"type": "grid", "param_distributions": {"max_depth": [1, 2]}, "n_iter": 5}
    msg = problem(spec_with(search=search))
    assert "spec.search.param_distributions: not allowed with type: grid" in msg
    assert "spec.search.n_iter: not allowed with type: grid" in msg
    assert "spec.search.param_grid is missing" in msg
    search = {"type": "random", "param_grid": {"max_depth": [1, 2]}}
    assert "spec.search.param_grid: not allowed with type: random" in problem(
        spec_with(search=search)
    )


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    path = write(
        tmp_path / "broken.yaml",
        """\
        estimator:
          class: sklearn.tree.DecisionTreeClassifier
        search:
          type: grid
          param_grid: {max_depth: [1, 2]
        data: {loader: sklearn.datasets.load_iris}
        """,
    )
    msg = problem(path)
    assert str(path) in msg and "not valid YAML" in msg and "line 6" in msg
    assert "line 5" in msg  # where the unclosed mapping starts
    dup = write(tmp_path / "dup.yaml", "name: a\nname: b\n")
    msg = problem(dup)
    assert str(dup) in msg and "line 2" in msg and "'name' twice" in msg
    bad_json = tmp_path / "s.json"
    bad_json.write_text('{"name": "a",\n "search": }')
    msg = problem(bad_json)
    assert str(bad_json) in msg and "line 2" in msg


def test_cv_as_an_unknown_class():
    msg = problem(spec_with(cv={"class": "sklearn.model_selection.KFolds"}), build=True)
    assert "spec.cv.class = 'sklearn.model_selection.KFolds' cannot be imported" in msg
    assert "Did you mean 'sklearn.model_selection.KFold'?" in msg
    msg = problem(spec_with(cv={"class": "sklearn.svm.SVC"}), build=True)
    assert "spec.cv.class" in msg and "no split method" in msg and "KFold" in msg
    assert "spec.cv: expected a number of folds" in problem(spec_with(cv=1))


def test_data_file_missing_names_the_resolved_path(tmp_path):
    path = write(
        tmp_path / "specs" / "s.yaml",
        """\
        estimator: {class: sklearn.tree.DecisionTreeClassifier}
        search: {type: grid, param_grid: {max_depth: [1]}}
        data: {file: ../data/missing.csv, target: y}
        """,
    )
    msg = problem(path, data=True)
    assert "spec.data.file" in msg and str(tmp_path / "data" / "missing.csv") in msg
    msg = problem(spec_with(data={"file": "x.csv"}))
    assert "spec.data.target is missing" in msg
    msg = problem(spec_with(data={"file": "x.txt", "target": "y"}))
    assert "spec.data.file: cannot tell the format" in msg


def test_csv_target_column_misspelled(tmp_path):
    iris_frame().to_csv(tmp_path / "iris.csv", index=False)
    spec = spec_with(data={"file": "iris.csv", "target": "specie"})
    msg = problem(load_spec(spec, base_dir=tmp_path), data=True)
    assert "spec.data.target" in msg and "did you mean 'species'" in msg


@pytest.mark.parametrize(
    "changes, expected",
    [
        (
            {
                "estimator": {
                    "class": "sklearn.tree.DecisionTreeClassifier",
                    "params": {"max_dept": 2},
                }
            },
            ["spec.estimator.params.max_dept", "did you mean 'max_depth'"],
        ),
        (
            {"search": {"type": "grid", "param_grid": {"max_dept": [2]}}},
            ["spec.search.param_grid.max_dept", "did you mean 'max_depth'"],
        ),
        (
            {
                "search": {
                    "type": "random",
                    "param_distributions": {"max_depth": {"dist": "randit"}},
                }
            },
            ["spec.search.param_distributions.max_depth.dist", "did you mean 'randint'"],
        ),
        (
            {
                "search": {
                    "type": "random",
                    "param_distributions": {"ccp_alpha": {"dist": "loguniform", "args": [1, 0.1]}},
                }
            },
            ["spec.search.param_distributions.ccp_alpha", "loguniform(1, 0.1)"],
        ),
        (
            {"search": {"type": "random", "param_distributions": {"max_depth": {"type": "itn"}}}},
            ["spec.search.param_distributions.max_depth.type", "did you mean 'int'"],
        ),
        (
            {
                "search": {
                    "type": "random",
                    "param_distributions": {"max_depth": {"type": "int", "low": 1, "hihg": 5}},
                }
            },
            [
                "spec.search.param_distributions.max_depth.hihg",
                "did you mean 'high'",
                "max_depth.high is missing: expected an integer",
            ],
        ),
        (
            {
                "search": {
                    "type": "random",
                    "param_distributions": {"ccp_alpha": {"type": "float", "low": 1, "high": 0}},
                }
            },
            ["spec.search.param_distributions.ccp_alpha", "low must be finite and below high"],
        ),
        ({"search": {"type": "grd"}}, ["spec.search.type", "did you mean 'grid'"]),
        ({"scoring": "acuracy"}, ["spec.scoring", "did you mean 'accuracy'"]),
        (
            {"scoring": ["accuracy", "f1_macro"], "refit": "f1"},
            ["spec.refit", "'accuracy', 'f1_macro'"],
        ),
        ({"error_score": "maybe"}, ["spec.error_score", "'raise', a number, or nan"]),
        (
            {"data": {"loader": "sklearn.datasets.load_iris", "target": "y"}},
            ["spec.data.target: not used with data.loader"],
        ),
        (
            {
                "estimator": {
                    "pipeline": [
                        {"name": "a", "class": "sklearn.preprocessing.StandardScaler"},
                        {"name": "a", "class": "sklearn.svm.SVC"},
                    ]
                }
            },
            ["spec.estimator.pipeline[1].name", "must be unique"],
        ),
    ],
)
def test_more_error_messages(changes, expected):
    msg = problem(spec_with(**changes), build=True)
    for text in expected:
        assert text in msg


def test_not_a_mapping(tmp_path):
    msg = problem(write(tmp_path / "list.yaml", "- a\n- b\n"))
    assert "spec: expected a mapping" in msg and "found a list" in msg


def test_parquet_file_with_features(tmp_path):
    pytest.importorskip("pyarrow")
    iris_frame().to_parquet(tmp_path / "iris.parquet")
    spec = spec_with(
        data={
            "file": "iris.parquet",
            "target": "species",
            "features": ["petal_length", "sepal_width"],
        }
    )
    X, y = load_data(spec, base_dir=tmp_path)
    assert list(X.columns) == ["petal_length", "sepal_width"] and len(y) == 150
    spec["data"]["features"] = ["petal_lenght"]
    msg = problem(load_spec(spec, base_dir=tmp_path), data=True)
    assert "spec.data.features[0]" in msg and "did you mean 'petal_length'" in msg


# -- Bayesian and adaptive search types ------------------------------------------------------------
def test_bayes_and_adaptive_types_build_their_facades():
    from daskhpo import ASHASearchCV, BayesSearchCV, HyperbandSearchCV, SuccessiveHalvingSearchCV

    dists = {"max_depth": {"type": "int", "low": 1, "high": 6}}
    cases = [
        ({"type": "bayes", "n_trials": 7, "sampler": "random"}, BayesSearchCV),
        (
            {"type": "halving", "n_candidates": 9, "resource": "n_samples"},
            SuccessiveHalvingSearchCV,
        ),
        ({"type": "hyperband", "max_budget": 81, "reduction_factor": 3}, HyperbandSearchCV),
        ({"type": "asha", "n_trials": 12, "min_budget": 3, "max_budget": 27}, ASHASearchCV),
    ]
    for fields, facade in cases:
        search_spec = {**fields, "param_distributions": dists, "random_state": 4}
        spec = load_spec(spec_with(search=search_spec))
        search = build_search(spec)
        assert type(search) is facade
        params = search.get_params()
        for field, value in fields.items():
            if field != "type":
                assert params[field] == value, field
        assert params["random_state"] == 4
    # Defaults are filled per type, and only the fields the type takes appear.
    spec = load_spec(spec_with(search={"type": "bayes", "param_distributions": dists}))
    # n_candidates is the name every facade counts by now; n_trials, its old name, is not filled in.
    assert (spec["search"]["n_candidates"], spec["search"]["sampler"]) == (50, "tpe")
    assert "n_trials" not in spec["search"]
    assert "n_iter" not in spec["search"] and "max_budget" not in spec["search"]
    spec = load_spec(spec_with(search={"type": "hyperband", "param_distributions": dists}))
    assert spec["search"]["resource"] == "auto" and spec["search"]["reduction_factor"] == 3
    spec = load_spec(spec_with(search={"type": "halving", "param_distributions": dists}))
    assert build_search(spec).n_candidates == "exhaust"
    assert "spec.search.n_candidates" in problem(
        spec_with(search={"type": "halving", "param_distributions": dists, "n_candidates": 0})
    )


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        (
            {"type": "random", "n_trials": 5},
            "spec.search.n_trials: not allowed with this search type; only type: bayes or type: asha",
        ),
        (
            {"type": "hyperband", "sampler": "tpe"},
            "spec.search.sampler: not allowed with this search type; only type: bayes use it",
        ),
        (
            {"type": "bayes", "n_iter": 5},
            "spec.search.n_iter: not allowed with this type; only type: random counts",
        ),
        ({"type": "bayes", "sampler": "tep"}, "spec.search.sampler"),
        ({"type": "asha", "reduction_factor": 1}, "spec.search.reduction_factor"),
        (
            {"type": "grid", "max_budget": 9},
            "spec.search.max_budget: not allowed with this search type",
        ),
    ],
)
def test_fields_of_other_search_types_are_refused_by_name(search, expected):
    if search["type"] == "grid":
        search = {**search, "param_grid": {"max_depth": [1, 2]}}
    else:
        search = {**search, "param_distributions": {"max_depth": [1, 2]}}
    assert expected in problem(spec_with(search=search))


def test_trial_timeout_with_an_adaptive_type_is_refused():
    search = {"type": "hyperband", "param_distributions": {"max_depth": [1, 2]}}
    msg = problem(spec_with(search=search, trial_timeout=30), build=True)
    assert "spec.trial_timeout: not supported with type: hyperband" in msg


def test_hyperband_spec_scores_as_the_same_search_built_by_hand(client):
    from daskhpo import HyperbandSearchCV

    spec = spec_with(
        search={
            "type": "hyperband",
            "param_distributions": {"max_depth": [1, 2, 3, 4], "criterion": ["gini", "entropy"]},
            "resource": "n_samples",
            "max_budget": 120,
            "min_budget": 30,
            "random_state": 0,
        },
        cv=3,
    )
    from_spec = build_search(spec, client=client).fit(*load_data(spec))
    X, y = load_iris(return_X_y=True)
    by_hand = HyperbandSearchCV(
        DecisionTreeClassifier(random_state=0),
        {"max_depth": [1, 2, 3, 4], "criterion": ["gini", "entropy"]},
        resource="n_samples",
        max_budget=120,
        min_budget=30,
        random_state=0,
        cv=3,
        client=client,
    ).fit(X, y)
    assert from_spec.cv_results_["params"] == by_hand.cv_results_["params"]
    np.testing.assert_array_equal(
        from_spec.cv_results_["mean_test_score"], by_hand.cv_results_["mean_test_score"]
    )
    assert from_spec.best_params_ == by_hand.best_params_


# -- search types come from the registry ------------------------------------------------------------
DISTS = {"max_depth": {"type": "int", "low": 1, "high": 6}}
# What a spec sets elsewhere than under search (the spec's top level, build_search's arguments).
NOT_SEARCH_FIELDS = {
    "estimator", "scoring", "refit", "cv", "error_score", "return_train_score", "trial_timeout",
    "client", "cluster", "storage", "name", "verbose", "n_jobs", "pre_dispatch",
}  # fmt: skip


def search_fields(facade):
    """The spec fields of a facade, read from its signature here independently of daskhpo.spec."""
    params = list(inspect.signature(facade).parameters.values())
    return {p.name: p for p in params[2:] if p.name not in NOT_SEARCH_FIELDS}


def minimal_search(kind):
    facade = SEARCH_TYPES[kind]
    space = list(inspect.signature(facade).parameters)[1]
    if space == "param_grid":
        return {"type": kind, "param_grid": {"max_depth": [1, 2]}}
    return {"type": kind, "param_distributions": DISTS}


def test_every_registered_type_builds_its_facade():
    from daskhpo import BOHBSearchCV, IncrementalSearchCV

    assert {
        "grid",
        "random",
        "bayes",
        "halving",
        "hyperband",
        "asha",
        "incremental",
        "bohb",
    } <= set(SEARCH_TYPES)
    import daskhpo.spec

    assert set(daskhpo.spec.SEARCH_TYPES) == set(SEARCH_TYPES)
    for kind, facade in SEARCH_TYPES.items():
        spec = load_spec(spec_with(search=minimal_search(kind)))
        assert type(build_search(spec)) is facade, kind
        assert load_spec(spec) == spec and load_spec(json.loads(spec_to_json(spec))) == spec
        # Every field of the type is in the loaded spec, at the class's default (JSON values only);
        # the old name of a renamed parameter (default "deprecated") is not filled in.
        for field, param in search_fields(facade).items():
            if param.default == "deprecated":
                assert field not in spec["search"], (kind, field)
            elif field == "sampler":
                assert spec["search"][field] == "tpe"  # the spec's default, not the class's "auto"
            elif param.default is None or isinstance(param.default, (bool, int, float, str)):
                assert spec["search"][field] == param.default, (kind, field)

    bohb = {
        **minimal_search("bohb"),
        "max_budget": 27,
        "min_budget": 3,
        "random_fraction": 0.5,
        "min_points": 4,
        "random_state": 1,
    }
    incremental = {
        **minimal_search("incremental"),
        "n_candidates": 4,
        "max_budget": 20,
        "step": 2,
        "patience": 3,
        "tol": 0.01,
        "resource": "n_samples",
    }
    for fields, facade in ((bohb, BOHBSearchCV), (incremental, IncrementalSearchCV)):
        search = build_search(spec_with(search=fields))
        assert type(search) is facade
        params = search.get_params()
        for field, value in fields.items():
            if field not in ("type", "param_distributions"):
                assert params[field] == value, field


def test_numbers_keep_their_kind():
    # 3.0 is a whole number to JSON Schema: an int for integer fields, a float for number fields.
    search = {**minimal_search("hyperband"), "max_budget": 27.0, "reduction_factor": 2.5}
    spec = load_spec(spec_with(search=search))
    assert spec["search"]["max_budget"] == 27 and isinstance(spec["search"]["max_budget"], int)
    assert spec["search"]["reduction_factor"] == 2.5
    assert build_search(spec).reduction_factor == 2.5


def test_old_and_new_names_of_a_renamed_field():
    # A type whose class takes n_candidates and its old name n_trials (default "deprecated") takes
    # either in a spec; the old name goes to the class as given (which warns), and is never filled.
    for kind in ("bayes", "asha"):
        assert search_fields(SEARCH_TYPES[kind])["n_trials"].default == "deprecated"
        spec = load_spec(spec_with(search={**minimal_search(kind), "n_trials": 7}))
        assert spec["search"]["n_trials"] == 7 and "n_candidates" not in spec["search"]
        assert build_search(spec).get_params()["n_trials"] == 7
        spec = load_spec(spec_with(search={**minimal_search(kind), "n_candidates": 8}))
        assert spec["search"]["n_candidates"] == 8 and "n_trials" not in spec["search"]
        assert build_search(spec).get_params()["n_candidates"] == 8
        msg = problem(spec_with(search={**minimal_search(kind), "n_candidates": 8, "n_trials": 7}))
        assert f"spec.search.n_trials: type: {kind} takes n_candidates and n_trials" in msg
        assert "give only n_candidates" in msg


@pytest.mark.parametrize(
    ("kind", "field", "value"),
    [
        ("random", "random_fraction", 0.5),
        ("hyperband", "step", 2),
        ("bayes", "min_points", 3),
        ("grid", "sampler", "tpe"),
        ("asha", "sampler_options", {}),
        ("halving", "patience", 2),
        ("incremental", "reduction_factor", 3),
        ("bohb", "n_candidates", 5),
    ],
)
def test_a_field_of_other_types_is_refused_naming_them(kind, field, value):
    msg = problem(spec_with(search={**minimal_search(kind), field: value}))
    assert f"spec.search.{field}: not allowed with this search type; only type: " in msg
    named = msg.split("only ", 1)[1].split(" use it", 1)[0]
    takers = [k for k, facade in SEARCH_TYPES.items() if field in search_fields(facade)]
    assert takers and kind not in takers
    for taker in takers:
        assert taker in named.replace("type: ", "").replace(" or ", ", ").split(", "), taker


def test_a_setting_the_class_does_not_take_is_refused():
    msg = problem(spec_with(search=minimal_search("incremental"), trial_timeout=5), build=True)
    assert "spec.trial_timeout: not supported with type: incremental" in msg
    assert "IncrementalSearchCV has no trial_timeout parameter" in msg and "type: grid" in msg
    with pytest.raises(InvalidSearchError, match="pre_dispatch='all' is not a parameter"):
        build_search(spec_with(search=minimal_search("hyperband")), pre_dispatch="all")
    assert build_search(spec_with(search=minimal_search("hyperband")), pre_dispatch=None)


class ThresholdSearchCV(RandomizedSearchCV):
    """A search type only this test module registers: random search with two more parameters."""

    def __init__(
        self,
        estimator,
        param_distributions,
        *,
        threshold,
        flavour="plain",
        random_state=None,
        scoring=None,
        refit=True,
        cv=None,
        error_score=np.nan,
        return_train_score=False,
        client=None,
        storage=None,
        name=None,
        verbose=0,
    ):
        super().__init__(
            estimator,
            param_distributions,
            random_state=random_state,
            scoring=scoring,
            refit=refit,
            cv=cv,
            error_score=error_score,
            return_train_score=return_train_score,
            client=client,
            storage=storage,
            name=name,
            verbose=verbose,
        )
        self.threshold = threshold
        self.flavour = flavour


@pytest.fixture
def test_only_type():
    register_search("test-only")(ThresholdSearchCV)
    try:
        yield "test-only"
    finally:
        del SEARCH_TYPES["test-only"]


def test_a_facade_registered_later_is_reachable_from_a_spec(test_only_type):
    search = {"type": "test-only", "param_distributions": DISTS, "threshold": 0.5}
    spec = load_spec(spec_with(search=search))
    assert spec["search"] == {**search, "flavour": "plain", "random_state": None}
    built = build_search(spec)
    assert type(built) is ThresholdSearchCV
    assert (built.threshold, built.flavour) == (0.5, "plain")
    built = build_search(spec_with(search={**search, "flavour": "spicy", "random_state": 3}))
    assert (built.flavour, built.random_state) == ("spicy", 3)
    # Its required parameter is required, and fields it lacks are refused naming who takes them.
    msg = problem(spec_with(search={"type": "test-only", "param_distributions": DISTS}))
    assert "spec.search.threshold is missing" in msg
    msg = problem(spec_with(search={**search, "n_iter": 5}))
    assert "spec.search.n_iter: not allowed with this type; only type: random counts" in msg
    msg = problem(spec_with(search={**minimal_search("random"), "flavour": "spicy"}))
    assert "spec.search.flavour: not allowed with this search type; only type: test-only" in msg
    # A setting at the spec's top level that the class has no parameter for.
    msg = problem(spec_with(search=search, trial_timeout=3), build=True)
    assert "spec.trial_timeout: not supported with type: test-only" in msg


def test_an_unregistered_type_is_gone_from_specs():
    assert "test-only" not in SEARCH_TYPES
    msg = problem(spec_with(search={"type": "test-only", "param_distributions": DISTS}))
    assert "spec.search.type: expected one of 'grid'" in msg
    msg = problem(spec_with(search={**minimal_search("random"), "threshold": 1}))
    assert "spec.search.threshold is not a valid key" in msg
