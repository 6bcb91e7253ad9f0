"""daskhpo.validation: one declaration per parameter, read by the Python check, the spec's JSON Schema,
the facades (before any cluster work) and the strategies. No cluster is started here."""

from __future__ import annotations

import math
from typing import Any

import jsonschema
import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import SGDClassifier

import daskhpo
from daskhpo.exceptions import InvalidSearchError, InvalidSearchTypeError
from daskhpo.registry import SEARCH_TYPES
from daskhpo.validation import PARAMETERS, Param, check, json_schema

X, y = load_iris(return_X_y=True)

# Values each declared parameter takes (numpy scalars included): a new declaration needs its own row.
VALID: dict[str, list[Any]] = {
    "error_score": [np.nan, 0, 0.5, -1, np.float64(0.0), "raise"],
    "refit": [True, False, np.True_, "accuracy", lambda results: 0],
    "n_jobs": [None, 1, 4, -1, -2, np.int64(2)],
    "return_train_score": [True, False, np.True_, np.False_],
    "trial_timeout": [None, 0.5, 600, np.float64(2.0)],
    "n_iter": [1, 10, np.int64(3)],
    "n_candidates": [1, 50, np.int64(9), "exhaust"],
    "n_trials": [1, 7, "deprecated"],
    "sampler": ["tpe", "gp", "cmaes", "random", "nsga2", "auto"],
    "sampler_options": [None, {}, {"n_startup_trials": 5}],
    "n_parallel": [None, 1, 8],
    "resource": ["auto", "partial_fit", "n_samples", "n_estimators"],
    "min_budget": [None, 1, 0.5, np.int64(3)],
    "max_budget": [None, 1, 2.5, 81, np.float64(27.0)],
    "reduction_factor": [1.5, 2, 3, np.float64(3.0)],
    "test_size": [None, 0.2, 0.99, np.float64(0.5)],
    "chunk_size": [None, 1, 100],
    "persist": ["auto", True, False],
    "continuation": ["auto", True, False],
    "best_from": ["all", "top", "last"],
    "racing": [True, False, {"alpha": 0.1}, {}],
    "min_early_stopping_rate": [0, 2],
    "step": [None, 1, 0.3],
    "patience": [None, 1, 5],
    "tol": [0, 1e-3, 1.0, math.inf],
    "grace_budget": [None, 1, 0.5],
    "min_trials": [1, 3],
    "random_fraction": [0, 1 / 3, 1],
    "min_points": [None, 1, 4],
}

# Declarations whose every value of the right type is good (nothing is out of range).
NO_RANGE = {"refit", "return_train_score", "sampler_options", "racing"}

WRONG_TYPE = [1, 2]  # no parameter takes a list


def out_of_range(p: Param) -> list[Any]:
    """Values of an accepted type that the declaration refuses, read from its bounds and options."""
    bad: list[Any] = []
    if p.low is not None:
        bad.append(p.low if p.low_open else p.low - 1)
    if p.high is not None:
        bad.append(p.high if p.high_open else p.high + 1)
    if p.finite:
        bad.append(math.inf)
    if p.nonzero:
        bad.append(0)
    if p.nonempty:
        bad.append("")
    if p.options or p.specials:
        bad.append("not-an-option")
    return bad


BAD = [(name, value) for name, p in PARAMETERS.items() for value in out_of_range(p)]


def test_every_declaration_has_test_values():
    assert set(VALID) == set(PARAMETERS)
    assert {name for name, p in PARAMETERS.items() if not out_of_range(p)} == NO_RANGE


# -- the Python check --------------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "value"), [(n, v) for n, vs in VALID.items() for v in vs])
def test_check_accepts_and_returns_the_value_itself(name, value):
    assert check(name, value) is value


@pytest.mark.parametrize("name", list(PARAMETERS))
def test_a_wrong_type_is_refused_naming_the_parameter_and_the_fix(name):
    with pytest.raises(InvalidSearchTypeError) as info:
        check(name, WRONG_TYPE)
    assert isinstance(info.value, TypeError) and isinstance(info.value, ValueError)
    text = str(info.value)
    assert text.startswith(f"{name}={WRONG_TYPE!r}: use ")
    assert PARAMETERS[name].fix() in text


@pytest.mark.parametrize(("name", "value"), BAD)
def test_an_out_of_range_value_is_refused_naming_the_parameter_and_the_fix(name, value):
    with pytest.raises(InvalidSearchError) as info:
        check(name, value)
    assert not isinstance(info.value, TypeError)  # the type was right
    assert str(info.value) == f"{name}={value!r}: {PARAMETERS[name].fix()}."


@pytest.mark.parametrize("name", list(PARAMETERS))
def test_none_and_bools(name):
    p = PARAMETERS[name]
    if p.none is None:
        with pytest.raises(InvalidSearchTypeError, match=f"^{name}=None: "):
            check(name, None)
    else:
        assert check(name, None) is None
    if "bool" not in p.kinds:  # True is an int to Python, never a count or a budget here
        with pytest.raises(InvalidSearchTypeError, match=f"^{name}=True: "):
            check(name, True)


@pytest.mark.parametrize("name", list(PARAMETERS))
def test_strict_refuses_none_and_the_special_values(name):
    p = PARAMETERS[name]
    for value in [*(v for v, _ in p.specials), *p.hidden, *([None] if p.none is not None else [])]:
        with pytest.raises(InvalidSearchError) as info:
            check(name, value, strict=True)
        assert str(info.value) == p.message(value, strict=True)
        for special, _ in p.specials:  # the fix does not offer what strict refuses
            assert repr(special) not in p.fix(strict=True)
        if p.none is not None:
            assert "None" not in p.fix(strict=True)
    refused = {*p.hidden, *(v for v, _ in p.specials)}
    for value in VALID[name]:
        if value is not None and not (isinstance(value, str) and value in refused):
            assert check(name, value, strict=True) is value


def test_messages_read_as_the_messages_tests_and_users_know():
    def message(name: str, value: Any, strict: bool = False) -> str:
        with pytest.raises(InvalidSearchError) as info:
            check(name, value, strict=strict)
        return str(info.value)

    assert message("n_candidates", 0).startswith("n_candidates=0: use an integer >= 1")
    assert message("max_budget", math.inf).startswith("max_budget=inf: use a positive, finite")
    assert "positive number of seconds" in message("trial_timeout", 0)
    assert "'exhaust'" in message("n_candidates", "all")
    assert message("n_candidates", "exhaust", strict=True).count("'exhaust'") == 1
    assert "'auto'" in message("sampler", "smac")
    assert message("reduction_factor", 1).startswith(
        "reduction_factor=1: use a finite number above 1"
    )


def test_an_undeclared_name_is_a_programming_error():
    with pytest.raises(KeyError, match="no declaration for 'max_bugdet'"):
        check("max_bugdet", 3)


# -- the JSON Schema fragment agrees with the check ----------------------------------------------------
# Plain JSON values (what load_spec sees); nan is left out: JSON has none, and JSON Schema's bounds
# cannot refuse it (every comparison with nan is false), so a YAML .nan is refused by the facade.
POOL: list[Any] = [
    None, True, False, 0, 1, -1, 2, 3, 100, 0.0, 0.5, 1.0, 1.5, 2.5, -0.5, 1e-9, 1e300,
    math.inf, -math.inf, "", "raise", "exhaust", "auto", "tpe", "nsga2", "deprecated", "n_samples",
    "x", [], [1], {}, {"a": 1},
]  # fmt: skip


def _accepts(name: str, value: Any) -> bool:
    try:
        check(name, value)
    except InvalidSearchError:
        return False
    return True


@pytest.mark.parametrize("name", list(PARAMETERS))
def test_the_fragment_takes_the_json_values_the_check_takes(name):
    p = PARAMETERS[name]
    schema = json_schema(name)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    pool = [*POOL, *VALID[name], *out_of_range(p)]
    for value in pool:
        if callable(value) or isinstance(value, np.generic):
            continue  # not JSON
        if isinstance(value, float) and math.isnan(value):
            continue
        valid = validator.is_valid(value)
        if isinstance(value, str) and value in p.hidden:
            assert not valid, value  # accepted in Python, never written in a spec
        elif isinstance(value, float) and value.is_integer() and p.kinds == ("int",):
            # JSON Schema counts 3.0 as the integer 3, and load_spec passes it on as 3.
            assert valid == _accepts(name, int(value)), value
        else:
            assert valid == _accepts(name, value), (value, valid)


def test_fragments_are_new_dicts_with_a_description():
    for name in PARAMETERS:
        schema = json_schema(name)
        assert isinstance(schema["description"], str) and schema["description"]
        schema["description"] = "changed"
        assert json_schema(name)["description"] != "changed"


def test_the_spec_uses_the_fragments():
    import daskhpo.spec as spec

    declared = [f for f in spec._FIELD_SCHEMAS if f in PARAMETERS]
    assert {"n_iter", "n_candidates", "max_budget", "test_size", "step", "random_fraction"} <= set(
        declared
    )
    for field in declared:
        own = spec._FIELD_SCHEMAS[field]
        for key, value in json_schema(field).items():
            assert own[key] == value, (field, key)
    top = spec._STATIC_SCHEMA["properties"]
    for field in ("refit", "return_train_score", "trial_timeout"):
        assert {**top[field], "default": None} == {**json_schema(field), "default": None}
    assert all(
        option in top["error_score"]["anyOf"] for option in json_schema("error_score")["anyOf"]
    )


def test_the_spec_takes_and_refuses_what_the_facades_do():
    from daskhpo.spec import load_spec

    base = {
        "estimator": {"class": "sklearn.linear_model.SGDClassifier"},
        "data": {"loader": "sklearn.datasets.load_iris"},
    }
    dists = {"alpha": [0.1, 1.0]}

    def search(**fields: Any) -> dict[str, Any]:
        return {**base, "search": {"type": "hyperband", "param_distributions": dists, **fields}}

    loaded = load_spec(search(max_budget=2.5, min_budget=0.5, test_size=0.25))["search"]
    assert (loaded["max_budget"], loaded["min_budget"]) == (2.5, 0.5)
    assert isinstance(load_spec(search(max_budget=27.0))["search"]["max_budget"], int)
    for field, value in (("test_size", 1.5), ("max_budget", 0), ("reduction_factor", math.inf)):
        with pytest.raises(InvalidSearchError) as info:
            load_spec(search(**{field: value}))
        assert f"spec.search.{field}: expected {json_schema(field)['description']}" in str(
            info.value
        )


# -- strategies say what the declarations say ----------------------------------------------------------
def test_strategies_refuse_with_the_declared_messages():
    from daskhpo.strategies import ASHA, Hyperband, Incremental, ListSource, SuccessiveHalving
    from daskhpo.strategies.bayes import SAMPLERS, BayesStrategy, check_sampler
    from daskhpo.strategies.median import MedianStopping

    def source() -> ListSource:
        return ListSource([{"a": i} for i in range(200)])

    cases = [
        (lambda: Hyperband(source(), max_budget=0), "max_budget", 0, True),
        (lambda: Hyperband(source(), max_budget=None), "max_budget", None, True),
        (lambda: Hyperband(source(), 9, reduction_factor=math.inf), "reduction_factor", math.inf, True),
        (lambda: SuccessiveHalving(source(), "all", 1, 9), "n_candidates", "all", False),
        (lambda: ASHA(source(), 0, 9), "n_trials", 0, True),
        (lambda: ASHA(source(), 5, 9, min_early_stopping_rate=-1), "min_early_stopping_rate", -1, True),
        (lambda: Incremental(source(), "exhaust", 9), "n_candidates", "exhaust", True),
        (lambda: Incremental(source(), 5, 9, step=None), "step", None, True),
        (lambda: Incremental(source(), 5, 9, tol=-1), "tol", -1, True),
        (lambda: MedianStopping(source(), 5, 9, min_trials=0), "min_trials", 0, True),
        (lambda: MedianStopping(source(), 5, 9, grace_budget=math.inf), "grace_budget", math.inf, False),
        (lambda: BayesStrategy({"a": [1, 2]}, 0), "n_trials", 0, True),
        (lambda: check_sampler("auto", 1), "sampler", "auto", True),
    ]  # fmt: skip
    for build, name, value, strict in cases:
        with pytest.raises(InvalidSearchError) as info:
            build()
        assert str(info.value) == PARAMETERS[name].message(value, strict=strict), name
    assert set(SAMPLERS) == set(PARAMETERS["sampler"].options)


def test_tpe_source_checks_its_settings():
    pytest.importorskip("optuna")
    from daskhpo.strategies.bohb import TPESource

    for name, value in (("random_fraction", 1.5), ("min_points", 0), ("sampler_options", [1])):
        with pytest.raises(InvalidSearchError, match=f"^{name}="):
            TPESource({"a": [1, 2]}, **{name: value})


# -- facades check before any cluster work -------------------------------------------------------------
@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if a fit gets past its settings: no client, and not even the facade's setup."""
    import daskhpo.run

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a fit went on past bad settings")

    monkeypatch.setattr(daskhpo.run, "get_client", refuse)
    for facade in set(SEARCH_TYPES.values()):
        monkeypatch.setattr(facade, "_setup", refuse)
    monkeypatch.setattr(daskhpo.run.SearchRun, "_replay", refuse)


def _build(facade: type, **params: Any) -> Any:
    space = {"alpha": [1e-4, 1e-3]}
    return facade(SGDClassifier(), space, **params)


def _declared_params(facade: type) -> list[str]:
    return [n for n in facade._get_param_names() if n in PARAMETERS]


FACADE_CASES = [
    (kind, name, value)
    for kind, facade in sorted(SEARCH_TYPES.items())
    for name in _declared_params(facade)
    for value in [WRONG_TYPE, *out_of_range(PARAMETERS[name])[:1]]
]


@pytest.mark.parametrize(("kind", "name", "value"), FACADE_CASES)
def test_a_facade_refuses_a_bad_setting_before_any_work(kind, name, value, no_work):
    search = _build(SEARCH_TYPES[kind], **{name: value})
    with pytest.raises(InvalidSearchError) as info:
        search.fit(X, y)
    strict = name in search._strict_params
    assert str(info.value) == PARAMETERS[name].message(value, strict=strict)


def test_every_facade_takes_its_defaults():
    assert {"grid", "random", "bayes", "halving", "hyperband", "asha", "bohb"} <= set(SEARCH_TYPES)
    for facade in SEARCH_TYPES.values():
        _build(facade)._check_settings()


def test_only_successive_halving_counts_by_exhaust(no_work):
    from daskhpo import SuccessiveHalvingSearchCV

    assert _build(SuccessiveHalvingSearchCV).n_candidates == "exhaust"
    _build(SuccessiveHalvingSearchCV)._check_settings()
    others = [f for f in SEARCH_TYPES.values() if "n_candidates" in _declared_params(f)]
    others = [f for f in others if f is not SuccessiveHalvingSearchCV]
    assert {f.__name__ for f in others} >= {"ASHASearchCV", "BayesSearchCV", "IncrementalSearchCV"}
    for facade in others:
        with pytest.raises(InvalidSearchError, match=r"^n_candidates='exhaust': use an integer"):
            _build(facade, n_candidates="exhaust").fit(X, y)


def test_the_deprecated_name_is_checked_too(no_work):
    for facade in (daskhpo.ASHASearchCV, daskhpo.BayesSearchCV):
        _build(facade, n_trials="deprecated")._check_settings()
        with pytest.raises(InvalidSearchError, match=r"^n_trials=-1: use an integer >= 1"):
            _build(facade, n_trials=-1).fit(X, y)
