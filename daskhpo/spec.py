"""Searches described as YAML or JSON documents, for detached runs (``daskhpo run SPEC.yaml``).

A spec names the estimator (or pipeline), the search space, the data and the scoring settings; this
module validates it against :func:`spec_schema` (JSON Schema, Draft 2020-12), builds the search it
describes (the facade class registered for its ``search.type``) and loads its data::

    name: digits-trees
    estimator:
      class: sklearn.tree.DecisionTreeClassifier
      params: {random_state: 0}
    search:
      type: grid
      param_grid: {max_depth: [2, 4, 8]}
    data:
      loader: sklearn.datasets.load_digits
    scoring: accuracy
    cv: 3

Fields (defaults in brackets):

- ``name`` [null]: the search's name in the store; null lets the search pick one.
- ``estimator``: ``{class: IMPORT_PATH, params: {...} [{}]}`` or
  ``{pipeline: [{name: STEP, class: IMPORT_PATH, params: {...} [{}]}, ...]}``.
- ``search``: ``{type: TYPE, param_grid: GRID, ...}`` for a type that enumerates a grid (``grid``),
  or ``{type: TYPE, param_distributions: DISTS, ...}`` for one that samples (``random``, ``bayes``,
  ``halving``, ``hyperband``, ``asha``, ``incremental``, ``bohb``, ...). The types are the classes
  registered in :data:`daskhpo.registry.SEARCH_TYPES` (``grid`` is :class:`~daskhpo.GridSearchCV`,
  ``bohb`` :class:`~daskhpo.BOHBSearchCV`); the further fields of a type are the keyword parameters
  of its class, with the class's defaults (``sampler`` [tpe] excepted), except those set elsewhere:
  the estimator, the space, the top-level settings below, and ``client``, ``cluster``, ``storage``,
  ``name``, ``verbose``, ``n_jobs``, ``pre_dispatch`` (arguments of :func:`build_search`). So
  ``{type: random, n_iter: INT [10], random_state: INT or null [null]}``, ``{type: bayes,
  n_candidates: INT [50], sampler: tpe|gp|cmaes|random|nsga2|auto [tpe]}``, ``{type: halving,
  n_candidates: INT or exhaust [exhaust]}``, ``{type: incremental, step: INT [1], patience: ...}``;
  the adaptive types take ``max_budget``, ``min_budget``, ``reduction_factor`` and ``resource`` (see
  :class:`daskhpo.HyperbandSearchCV`). A field declared in :mod:`daskhpo.validation` (the counts,
  budgets, ``reduction_factor``, ``test_size``, ...) is checked by that declaration's JSON Schema, so a
  spec takes the values the class takes (a whole number written ``27.0`` is read as ``27`` where the
  class takes integers). A field another type takes is refused, naming the types that take it. A parameter renamed with scikit-learn's pattern (old name defaulting to ``"deprecated"``,
  such as ``n_trials`` for ``n_candidates``) is taken under both names. ``GRID`` maps parameter names
  to non-empty lists of values (or is a list of such mappings). In ``DISTS`` a value is a list, a
  dimension ``{type: float|int, low: L, high: H, log: BOOL [false]}`` or ``{type: categorical,
  choices: [...]}`` (see :mod:`daskhpo.space`), or a ``scipy.stats`` distribution by name,
  ``{dist: loguniform, args: [1e-3, 1e2], kwargs: {} [{}]}``.
- ``data``: ``{loader: IMPORT_PATH, kwargs: {...} [{}]}``, a function returning ``(X, y)`` or a Bunch
  (``data``, ``target``); or ``{file: PATH, format: csv|parquet|npz [from the extension], target:
  COLUMN, features: [COLUMN, ...] [all other columns], kwargs: {...} [{}]}``. ``target`` (the column
  popped as ``y``) is required for csv and parquet; an npz file holds arrays named ``X`` and ``y``.
  ``kwargs`` of a file go to :func:`pandas.read_csv` or :func:`pandas.read_parquet`.
- ``scoring`` [null]: a scorer name, a list of names, or a mapping of metric names to scorer names.
- ``refit`` [true]: true, false, or the metric to pick the best candidate by.
- ``cv`` [5]: a number of folds, or ``{class: IMPORT_PATH, params: {...} [{}]}`` (a splitter).
- ``error_score`` [nan]: ``raise``, a number, or ``nan``.
- ``return_train_score`` [false].
- ``trial_timeout`` [null]: seconds one fit (one candidate on one fold) may run before it is stopped
  and recorded as failed; null for no limit.

An ``IMPORT_PATH`` is ``"package.module.Name"`` (or ``"package.module:Name"``). Anywhere a parameter
value appears (estimator and step ``params``, grid and distribution values, ``cv`` params) a mapping
``{class: IMPORT_PATH, params: {...}}`` with no other key stands for an instance of that class, so a
pipeline step can be searched over: ``param_grid: {clf: [{class: sklearn.svm.SVC}, ...]}``.

Relative data file paths resolve against the spec file's folder, recorded in the validated spec under
the private key ``"_base_dir"`` (for a spec given as a mapping: the working directory when it was
loaded, unless ``base_dir=`` says otherwise).

.. warning::
   A spec names Python import paths, and loading it imports those modules and calls those classes and
   functions (``build_search`` imports the estimator and splitter classes, ``load_data`` calls the
   loader). Only run specs you trust. YAML is read with ``yaml.SafeLoader`` (no Python objects), npz
   files with ``allow_pickle=False``, and no string of a spec is ever passed to ``eval`` or ``exec``:
   names are resolved with :mod:`importlib` and ``getattr`` only.
"""

from __future__ import annotations

import copy
import difflib
import functools
import importlib
import inspect
import json
import math
import os
import pkgutil
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

# Importing the facade modules registers their search types (daskhpo.registry).
from . import adaptive as _adaptive  # noqa: F401
from . import bayes as _bayes  # noqa: F401
from . import search as _search  # noqa: F401
from .exceptions import InvalidSearchError
from .registry import SEARCH_TYPES as _REGISTERED
from .space import dimension_from_json
from .validation import json_schema

__all__ = [
    "SPEC_SCHEMA",
    "SEARCH_TYPES",
    "SpecSource",
    "spec_schema",
    "load_spec",
    "build_search",
    "load_data",
    "spec_to_json",
]

SpecSource = str | os.PathLike[str] | Mapping[str, Any]
"""What the functions of this module take: a spec file path, or a spec as a mapping."""

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
IMPORT_PATH_PATTERN = rf"^{_IDENT}(\.{_IDENT})*[.:]{_IDENT}(\.{_IDENT})*$"

_BASE_DIR = "_base_dir"
_TABLE_FORMATS = ("csv", "parquet")
_SUFFIX_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".npz": "npz"}
_COMPRESSION_SUFFIXES = (".gz", ".bz2", ".zip", ".xz", ".zst")


def _import_path(what: str, example: str) -> dict[str, Any]:
    return {
        "type": "string",
        "pattern": IMPORT_PATH_PATTERN,
        "description": f"the import path of {what}, such as {example!r}",
    }


def _forbid(message: str) -> dict[str, Any]:
    # "not: {}" always fails; "x-error" (an annotation JSON Schema ignores) is the message to show.
    return {"not": {}, "x-error": message}


# -- search types and their fields, from the registry ---------------------------------------------
# A search type is a facade registered in daskhpo.registry; its fields are the keyword parameters of
# the facade's constructor, except the estimator and the space (its first two parameters, given by
# spec.estimator and spec.search.param_grid or param_distributions) and the parameters below.
_TOP_LEVEL_SETTINGS = (
    "scoring",
    "refit",
    "cv",
    "error_score",
    "return_train_score",
    "trial_timeout",
)
"""Facade parameters set at the spec's top level (same meaning for every search type)."""
_RUN_SETTINGS = ("client", "cluster", "storage", "name", "verbose", "n_jobs", "pre_dispatch")
"""Facade parameters that say how and where to run: build_search's arguments, the command line's."""
_SPACE_FIELDS = ("param_grid", "param_distributions")
# scikit-learn's default for the old name of a renamed parameter: accepted, never filled in.
_DEPRECATED = "deprecated"
_REFUSED = "not allowed with this search type; only {types} use it"

# The JSON Schema fragment of each search field, for every type that takes a field of that name. A
# field missing here takes any value (its facade checks it). A field with a declaration in
# daskhpo.validation takes that declaration's fragment (the one rule the facades and strategies check
# in Python too). Annotations JSON Schema ignores: "default" overrides the facade's own default for
# every type (leave it out to use each facade's); "x-counts" marks the names a type may count its
# candidates by (a type taking two takes them as two names of one parameter); "x-refused" maps the
# space field of a type refusing the field to the message it shows instead of _REFUSED.
_FIELD_SCHEMAS: dict[str, dict[str, Any]] = {
    "param_grid": {
        "description": "a mapping of parameter names to non-empty lists of values "
        "(or a list of such mappings)",
        "if": {"type": "array"},
        "then": {"minItems": 1, "items": {"$ref": "#/$defs/grid"}},
        "else": {"$ref": "#/$defs/grid"},
    },
    "param_distributions": {
        "description": "a mapping of parameter names to lists, dimensions or "
        "distributions (or a list of such mappings)",
        "if": {"type": "array"},
        "then": {"minItems": 1, "items": {"$ref": "#/$defs/distributions"}},
        "else": {"$ref": "#/$defs/distributions"},
    },
    "n_iter": {
        **json_schema("n_iter"),
        "x-counts": True,
        "x-refused": {
            "param_grid": "not allowed with type: {kind}, which tries every candidate; n_iter is "
            "for {types}",
            "param_distributions": "not allowed with this type; only {types} counts its "
            "candidates with n_iter",
        },
    },
    "n_trials": {**json_schema("n_trials"), "x-counts": True},
    "n_candidates": {**json_schema("n_candidates"), "x-counts": True},
    "random_state": {
        # Not a declaration: Python also takes numpy generators (daskhpo.space.as_seed checks it).
        "type": ["integer", "null"],
        "minimum": 0,
        "maximum": 2**32 - 1,
        "description": "a seed (an integer from 0 to 2**32 - 1) or null",
        "x-refused": {
            "param_grid": "not allowed with type: {kind}, which draws nothing at random; "
            "random_state is for {types}",
        },
    },
    "sampler": {**json_schema("sampler"), "default": "tpe"},
    **{
        name: json_schema(name)
        for name in (
            "sampler_options",
            "n_parallel",
            "max_budget",
            "min_budget",
            "reduction_factor",
            "resource",
            "test_size",
            "chunk_size",
            "persist",
            "step",
            "grace_budget",
            "min_trials",
            "patience",
            "tol",
            "random_fraction",
            "min_points",
        )
    },
}


def _field_schema(field: str) -> dict[str, Any]:
    return _FIELD_SCHEMAS.get(field) or {
        "description": f"a value for the search class's {field} parameter (see its documentation)"
    }


@dataclass(frozen=True)
class _SearchType:
    """What a spec needs to know of one registered facade: read from its constructor's signature."""

    kind: str
    facade: type
    space: str  # the spec field of its search space: "param_grid" (enumerated) or "param_distributions"
    fields: Mapping[str, inspect.Parameter]  # its search fields, in the order of the signature
    accepts: frozenset[str]  # every keyword parameter of its constructor

    @property
    def required(self) -> list[str]:
        return [f for f, p in self.fields.items() if p.default is inspect.Parameter.empty]

    @property
    def counts(self) -> list[str]:
        """The names this type takes for its number of candidates (two: a new name and an old)."""
        return [f for f in self.fields if _field_schema(f).get("x-counts")]


def _is_old_name(param: inspect.Parameter) -> bool:
    """Whether a parameter is the old name of a renamed one (scikit-learn's pattern)."""
    return isinstance(param.default, str) and param.default == _DEPRECATED


def _describe(kind: str, facade: type) -> _SearchType:
    usable = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    params = [p for p in inspect.signature(facade).parameters.values() if p.kind in usable]
    if len(params) < 2:
        raise InvalidSearchError(
            f"search type {kind!r}: {facade.__name__}({', '.join(p.name for p in params)}) cannot "
            "be built from a spec, which needs a constructor (estimator, space, *, ...): give the "
            "class an estimator and a search space as its first two parameters."
        )
    space = "param_grid" if params[1].name == "param_grid" else "param_distributions"
    skip = {*_TOP_LEVEL_SETTINGS, *_RUN_SETTINGS, *_SPACE_FIELDS, "type"}
    fields = {p.name: p for p in params[2:] if p.name not in skip}
    return _SearchType(kind, facade, space, fields, frozenset(p.name for p in params))


def _public_rank(facade: type) -> int:
    # Messages list types in the order daskhpo exports their classes (grid, random, bayes, ...);
    # types not exported (registered elsewhere) come after, in the order they were registered.
    package = sys.modules.get(__name__.rpartition(".")[0])
    names = list(getattr(package, "__all__", ()))
    if facade.__name__ in names and getattr(package, facade.__name__, None) is facade:
        return names.index(facade.__name__)
    return len(names)


@functools.lru_cache(maxsize=8)
def _types_of(registered: tuple[tuple[str, type], ...]) -> dict[str, _SearchType]:
    order = sorted(range(len(registered)), key=lambda i: (_public_rank(registered[i][1]), i))
    return {registered[i][0]: _describe(*registered[i]) for i in order}


def _types() -> dict[str, _SearchType]:
    """The registered search types (as facades register now), in the order messages list them."""
    return _types_of(tuple(_REGISTERED.items()))


def _types_text(kinds: Sequence[str]) -> str:
    """``type: a``, ``type: a or type: b``, ``type: a, b or c``."""
    if len(kinds) <= 2:
        return " or ".join(f"type: {k}" for k in kinds)
    return f"type: {', '.join(kinds[:-1])} or {kinds[-1]}"


def _refusal(field: str, own: _SearchType, types: Mapping[str, _SearchType]) -> str:
    """The message of a search field that the type ``own`` does not take."""
    takers = [k for k, t in types.items() if field in t.fields]
    schema = _field_schema(field)
    template = schema.get("x-refused", {}).get(own.space, _REFUSED)
    text = str(template).format(kind=own.kind, types=_types_text(takers))
    current = [f for f in own.counts if not _is_old_name(own.fields[f])]
    if schema.get("x-counts") and current:
        return f"{text}; type: {own.kind} counts its candidates with {' or '.join(current)}"
    return text + _did_you_mean(field, list(own.fields))


def _space_refusal(field: str, own: _SearchType, types: Mapping[str, _SearchType]) -> str:
    others = [k for k, t in types.items() if t.space == field]
    if field == "param_distributions":
        such = f" (such as {_types_text(others[:1])})" if others else ""
        return (
            f"not allowed with type: {own.kind}, which enumerates param_grid; use param_grid, "
            f"or a type{such} to sample param_distributions"
        )
    return (
        f"not allowed with type: {own.kind}, which samples param_distributions; use "
        f"param_distributions, or {_types_text(others) or 'a grid type'} to enumerate param_grid"
    )


def _search_schema(types: Mapping[str, _SearchType]) -> dict[str, Any]:
    """The schema of ``spec.search``: the union of the fields of the types, and one rule per type."""
    names = [f for t in types.values() for f in t.fields]
    ordered = [*_SPACE_FIELDS, *(f for f in _FIELD_SCHEMAS if f in names), *names]
    fields = {f: _field_schema(f) for f in ordered}  # the table's order, then the signatures'
    rules = []
    for own in types.values():
        refused = {
            f: _forbid(
                _space_refusal(f, own, types) if f in _SPACE_FIELDS else _refusal(f, own, types)
            )
            for f in fields
            if f != own.space and f not in own.fields
        }
        rules.append(
            {
                "if": {"required": ["type"], "properties": {"type": {"const": own.kind}}},
                "then": {"required": [own.space, *own.required], "properties": refused},
            }
        )
    kinds = list(types)
    return {
        "type": "object",
        "description": "{type: grid, param_grid: ...} or {type: random, param_distributions: ...} "
        "(or another search type)",
        "required": ["type"],
        "additionalProperties": False,
        "properties": {
            "type": {"enum": kinds, "description": "one of " + ", ".join(map(repr, kinds))},
            **fields,
        },
        "allOf": rules,
    }


_PARAMS: dict[str, Any] = {
    "type": "object",
    "description": "a mapping of constructor parameter names to values",
}

_STATIC_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "daskhpo search spec",
    "type": "object",
    "description": "a mapping with estimator, search and data (and optional settings)",
    "required": ["estimator", "search", "data"],
    "additionalProperties": False,
    "properties": {
        "name": {
            "type": ["string", "null"],
            "minLength": 1,
            "default": None,
            "description": "the search's name in the store (a non-empty string)",
        },
        "estimator": {
            "type": "object",
            "description": "{class: import path, params: {...}} or {pipeline: [steps]}",
            "additionalProperties": False,
            "properties": {
                "class": _import_path("an estimator class", "sklearn.tree.DecisionTreeClassifier"),
                "params": _PARAMS,
                "pipeline": {
                    "type": "array",
                    "minItems": 1,
                    "description": "a non-empty list of steps {name, class, params}",
                    "items": {"$ref": "#/$defs/step"},
                },
            },
            "if": {"required": ["pipeline"]},
            "then": {
                "properties": {
                    "class": _forbid(
                        "give either estimator.class (with params) or estimator.pipeline, not both"
                    ),
                    "params": _forbid(
                        "a pipeline takes the params of each step under that step: "
                        "pipeline: [{name: ..., class: ..., params: {...}}]"
                    ),
                },
            },
            "else": {
                "required": ["class"],
                "x-error": "the import path of an estimator class, such as "
                "'sklearn.tree.DecisionTreeClassifier' (or give estimator.pipeline, a list of steps)",
            },
        },
        "search": {},  # filled from the registry by spec_schema()
        "data": {
            "type": "object",
            "description": "{loader: import path, kwargs: {...}} or {file: path, target: column}",
            "additionalProperties": False,
            "properties": {
                "loader": _import_path(
                    "a function returning (X, y) or a Bunch", "sklearn.datasets.load_digits"
                ),
                "kwargs": {
                    "type": "object",
                    "default": {},
                    "description": "keyword arguments for the loader, or for pandas.read_csv / "
                    "pandas.read_parquet",
                },
                "file": {
                    "type": "string",
                    "minLength": 1,
                    "description": "the path of a .csv, .parquet or .npz file (relative paths "
                    "start at the spec file's folder)",
                },
                "format": {"enum": ["csv", "parquet", "npz"]},
                "target": {
                    "type": "string",
                    "minLength": 1,
                    "description": "the name of the column holding y",
                },
                "features": {
                    "type": "array",
                    "minItems": 1,
                    "uniqueItems": True,
                    "items": {"type": "string"},
                    "description": "a non-empty list of distinct column names for X",
                },
            },
            "if": {"required": ["loader"]},
            "then": {
                "properties": {
                    key: _forbid(
                        "not used with data.loader, which returns (X, y) itself: give either "
                        "data.loader or data.file"
                    )
                    for key in ("file", "format", "target", "features")
                },
            },
            "else": {
                "required": ["file"],
                "x-error": "a data file in data.file (.csv, .parquet or .npz), or the import path "
                "of a loader function in data.loader",
            },
        },
        "scoring": {
            "default": None,
            "description": "a scorer name, a list of scorer names, or a mapping of metric names "
            "to scorer names",
            "if": {"type": "array"},
            "then": {
                "minItems": 1,
                "uniqueItems": True,
                "items": {"type": "string", "minLength": 1, "description": "a scorer name"},
            },
            "else": {
                "if": {"type": "object"},
                "then": {
                    "minProperties": 1,
                    "additionalProperties": {
                        "type": "string",
                        "minLength": 1,
                        "description": "a scorer name such as 'accuracy'",
                    },
                },
                "else": {
                    "type": ["string", "null"],
                    "minLength": 1,
                    "description": "a scorer name such as 'accuracy', a list of scorer names, or "
                    "a mapping of metric names to scorer names",
                },
            },
        },
        "refit": {**json_schema("refit"), "default": True},
        "cv": {
            "default": 5,
            "description": "a number of folds (2 or more), or {class: import path of a splitter, "
            "params: {...}}",
            "if": {"type": "object"},
            "then": {"$ref": "#/$defs/splitter"},
            "else": {
                "type": "integer",
                "minimum": 2,
                "description": "a number of folds (2 or more), or {class: import path of a "
                "splitter, params: {...}}",
            },
        },
        # JSON has no NaN: a spec writes it as a string, which load_spec turns into a float.
        "error_score": {
            "anyOf": [*json_schema("error_score")["anyOf"], {"enum": ["nan", "NaN", "NAN"]}],
            "default": "nan",
            "description": "'raise', a number, or nan",
        },
        "return_train_score": {**json_schema("return_train_score"), "default": False},
        "trial_timeout": {**json_schema("trial_timeout"), "default": None},
    },
    "$defs": {
        "step": {
            "type": "object",
            "description": "a pipeline step {name, class, params}",
            "required": ["name", "class"],
            "additionalProperties": False,
            "properties": {
                "name": {
                    "type": "string",
                    "pattern": "^(?!.*__)[A-Za-z_][A-Za-z0-9_]*$",
                    "description": "a step name (letters, digits, single underscores)",
                },
                "class": _import_path("an estimator class", "sklearn.decomposition.PCA"),
                "params": _PARAMS,
            },
        },
        "splitter": {
            "type": "object",
            "required": ["class"],
            "additionalProperties": False,
            "properties": {
                "class": _import_path("a CV splitter class", "sklearn.model_selection.KFold"),
                "params": _PARAMS,
            },
        },
        "grid": {
            "type": "object",
            "minProperties": 1,
            "description": "a mapping of parameter names to non-empty lists of values",
            "additionalProperties": {
                "type": "array",
                "minItems": 1,
                "description": "a non-empty list of candidate values",
            },
        },
        "distributions": {
            "type": "object",
            "minProperties": 1,
            "description": "a mapping of parameter names to lists, dimensions or distributions",
            "additionalProperties": {"$ref": "#/$defs/distribution"},
        },
        "distribution": {
            "if": {"type": "array"},
            "then": {"minItems": 1, "description": "a non-empty list of candidate values"},
            "else": {
                "if": {"type": "object", "required": ["dist"]},
                "then": {"$ref": "#/$defs/scipy_distribution"},
                "else": {
                    "if": {"type": "object"},
                    "then": {"$ref": "#/$defs/dimension"},
                    "else": {
                        "type": ["array", "object"],
                        "description": "a non-empty list of values, a dimension "
                        "{type: float|int|categorical, ...}, or a scipy.stats distribution "
                        "{dist: name, args: [...]}",
                    },
                },
            },
        },
        "scipy_distribution": {
            "type": "object",
            "required": ["dist"],
            "additionalProperties": False,
            "properties": {
                "dist": {
                    "type": "string",
                    "description": "the name of a scipy.stats distribution, such as 'loguniform'",
                },
                "args": {"type": "array", "description": "a list of positional arguments"},
                "kwargs": {"type": "object", "description": "a mapping of keyword arguments"},
            },
        },
        "dimension": {
            "type": "object",
            "required": ["type"],
            "description": "{type: float|int, low, high, log} or {type: categorical, choices}",
            "properties": {"type": {"enum": ["float", "int", "categorical"]}},
            "allOf": [
                {
                    "if": {"required": ["type"], "properties": {"type": {"const": kind}}},
                    "then": {
                        "required": ["low", "high"],
                        "additionalProperties": False,
                        "properties": {
                            "type": {},
                            "low": {"type": number, "description": f"{article} {number}"},
                            "high": {"type": number, "description": f"{article} {number}"},
                            "log": {"type": "boolean", "description": "true or false"},
                        },
                    },
                }
                for kind, number, article in (
                    ("float", "number", "a"),
                    ("int", "integer", "an"),
                )
            ]
            + [
                {
                    "if": {"required": ["type"], "properties": {"type": {"const": "categorical"}}},
                    "then": {
                        "required": ["choices"],
                        "additionalProperties": False,
                        "properties": {
                            "type": {},
                            "choices": {
                                "type": "array",
                                "minItems": 1,
                                "description": "a non-empty list of choices",
                            },
                        },
                    },
                }
            ],
        },
    },
}
"""The parts of the spec schema that do not depend on the registered search types."""


@functools.lru_cache(maxsize=8)
def _schema_of(registered: tuple[tuple[str, type], ...]) -> dict[str, Any]:
    properties = dict(_STATIC_SCHEMA["properties"])
    properties["search"] = _search_schema(_types_of(registered))
    return {**_STATIC_SCHEMA, "properties": properties}


def _schema() -> dict[str, Any]:
    # Shared, not copied: read it, never change it (spec_schema() gives a copy).
    return _schema_of(tuple(_REGISTERED.items()))


def spec_schema() -> dict[str, Any]:
    """The JSON Schema (Draft 2020-12) a spec is validated against, for the search types registered now.

    ``spec.search`` takes the fields of every registered search type (:data:`daskhpo.registry.SEARCH_TYPES`):
    the keyword parameters of its class's constructor, except the estimator, the search space and the
    settings given elsewhere (the spec's top level, and where to run). Each field has one schema,
    whatever the type; a field of another type is refused with a message naming the types that take it.

    Descriptions say what each field expects; the ``x-error`` annotations (ignored by JSON Schema) are
    the messages shown when a conditional rule fails. Defaults are filled by :func:`load_spec`, not by
    the schema; the ``default`` annotations of the top-level fields document them, and a search field
    takes its class's default unless its schema has a ``default``.

    Returns
    -------
    dict
        A new copy: changing it changes nothing here.
    """
    return copy.deepcopy(_schema())


SPEC_SCHEMA: dict[str, Any]
"""The schema of :func:`spec_schema` for the search types registered when it is read (a new copy)."""
SEARCH_TYPES: tuple[str, ...]
"""The names of the registered search types, in the order messages list them (read from the registry)."""


def __getattr__(name: str) -> Any:
    # SPEC_SCHEMA and SEARCH_TYPES follow the registry, so a facade registered later is in them too.
    if name == "SPEC_SCHEMA":
        return spec_schema()
    if name == "SEARCH_TYPES":
        return tuple(_types())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# -- error messages -------------------------------------------------------------------------------
def _where(path: Sequence[Any]) -> str:
    out = "spec"
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", part):
            out += f".{part}"
        else:
            out += f"[{part!r}]"
    return out


def _show(value: Any) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"the number {text}"
    if isinstance(value, str):
        return f"the string {text}"
    if isinstance(value, Mapping):
        return f"a mapping {text}"
    if isinstance(value, (list, tuple)):
        return f"a list {text}"
    return f"a {type(value).__name__} {text}"


def _did_you_mean(word: Any, options: Sequence[str]) -> str:
    if not isinstance(word, str):
        return ""
    close = difflib.get_close_matches(word, list(options), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


_TYPE_NAMES = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "null": "null",
}


def _schema_at(path: Sequence[Any]) -> dict[str, Any]:
    """The main schema of the field at ``path`` (properties, items and additionalProperties only)."""
    node: Any = _schema()
    for part in path:
        node = _deref(node)
        if isinstance(part, int):
            node = node.get("items") or node.get("then", {}).get("items") or {}
        else:
            props = node.get("properties", {})
            extra = node.get("additionalProperties")
            node = props.get(part, extra if isinstance(extra, dict) else {})
    return _deref(node)


def _deref(node: Any) -> dict[str, Any]:
    while isinstance(node, dict) and "$ref" in node:
        node = _STATIC_SCHEMA["$defs"][node["$ref"].rsplit("/", 1)[1]]
    return node if isinstance(node, dict) else {}


def _expected(error: Any) -> str:
    schema = error.schema if isinstance(error.schema, dict) else {}
    validator, value = error.validator, error.validator_value
    if validator in ("enum", "const"):
        choices = value if validator == "enum" else [value]
        return "one of " + ", ".join(repr(c) for c in choices)
    if schema.get("description"):
        return str(schema["description"])
    if validator == "type":
        types = [value] if isinstance(value, str) else list(value)
        return " or ".join(_TYPE_NAMES.get(t, t) for t in types)
    if validator == "minItems":
        return f"a list of at least {value} item(s)"
    if validator == "minProperties":
        return f"a mapping with at least {value} key(s)"
    if validator == "minLength":
        return "a non-empty string"
    if validator == "uniqueItems":
        return "a list of distinct items"
    if validator in ("minimum", "maximum"):
        return f"a number {'>=' if validator == 'minimum' else '<='} {value}"
    if validator == "pattern":
        return f"a string matching {value}"
    return str(error.message)


def _error_lines(error: Any) -> list[str]:
    path = list(error.absolute_path)
    where = _where(path)
    schema = error.schema if isinstance(error.schema, dict) else {}
    instance = error.instance
    if error.validator == "additionalProperties":
        known = sorted(schema.get("properties", {}))
        extras = [k for k in instance if k not in schema.get("properties", {})]
        return [
            f"{_where([*path, key])} is not a valid key{_did_you_mean(key, known) or '.'} "
            f"Valid keys of {where}: {', '.join(known)}."
            for key in extras
        ]
    if error.validator == "required":
        lines = []
        for key in error.validator_value:
            if isinstance(instance, Mapping) and key not in instance:
                own = schema.get("properties", {}).get(key, {})
                hint = (
                    schema.get("x-error")
                    or (own.get("description") if isinstance(own, dict) else None)
                    or _schema_at([*path, key]).get("description")
                    or "a value"
                )
                lines.append(f"{_where([*path, key])} is missing: expected {hint}.")
        return lines
    if "x-error" in schema:
        return [f"{where}: {schema['x-error']}."]
    line = f"{where}: expected {_expected(error)}, found {_show(instance)}"
    if error.validator in ("enum", "const"):
        choices = error.validator_value if error.validator == "enum" else [error.validator_value]
        line += _did_you_mean(instance, [c for c in choices if isinstance(c, str)]) or "."
    elif (
        error.validator == "type"
        and "array" in (error.validator_value or ())
        and not isinstance(instance, (list, Mapping))
    ):
        line += f"; wrap a single value in a list: [{json.dumps(instance)}]."
    else:
        line += "."
    return [line]


def _raise_errors(lines: list[str], source: str | None) -> None:
    unique = list(dict.fromkeys(lines))
    prefix = f"{source}: " if source else ""
    if len(unique) == 1:
        raise InvalidSearchError(prefix + unique[0])
    body = "\n".join(f"  - {line}" for line in unique)
    raise InvalidSearchError(f"{prefix}the spec has {len(unique)} problems:\n{body}")


@functools.lru_cache(maxsize=8)
def _validator_of(registered: tuple[tuple[str, type], ...]) -> Any:
    import jsonschema

    schema = _schema_of(registered)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _validator() -> Any:
    return _validator_of(tuple(_REGISTERED.items()))


# -- reading files --------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _yaml_loader() -> Any:
    import yaml

    class SpecLoader(yaml.SafeLoader):
        """SafeLoader that rejects duplicate keys and reads 1e-3 as a float (as YAML 1.2 does)."""

        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            if isinstance(node, yaml.MappingNode):
                seen: set[Any] = set()
                for key_node, _ in node.value:
                    if key_node.tag == "tag:yaml.org,2002:merge":
                        continue
                    key = self.construct_object(key_node, deep=True)
                    if isinstance(key, (str, int, float, bool)) or key is None:
                        if key in seen:
                            raise yaml.constructor.ConstructorError(
                                "while reading a mapping",
                                node.start_mark,
                                f"found the key {key!r} twice",
                                key_node.start_mark,
                            )
                        seen.add(key)
            return super().construct_mapping(node, deep=deep)

    SpecLoader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
        list("-+0123456789"),
    )
    return SpecLoader


def _read_file(path: Path) -> Any:
    if not path.is_file():
        raise InvalidSearchError(f"spec file {path} does not exist (or is not a file).")
    suffix = path.suffix.lower()
    text = path.read_text(encoding="utf-8")
    if suffix in (".yaml", ".yml"):
        import yaml

        try:
            return yaml.load(text, Loader=_yaml_loader())  # noqa: S506 - a SafeLoader subclass
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
            what = exc.problem or exc.context or "unreadable YAML"
            if exc.context and exc.problem:
                start = exc.context_mark
                what += f" ({exc.context}" + (
                    f" that starts on line {start.line + 1})" if start is not None else ")"
                )
            raise InvalidSearchError(
                f"spec file {path} is not valid YAML: {where}: {what}."
            ) from exc
        except yaml.YAMLError as exc:
            raise InvalidSearchError(f"spec file {path} is not valid YAML: {exc}") from exc
    if suffix == ".json":

        def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for key, value in pairs:
                if key in out:
                    raise ValueError(f"found the key {key!r} twice")
                out[key] = value
            return out

        try:
            return json.loads(text, object_pairs_hook=no_duplicates)
        except json.JSONDecodeError as exc:
            raise InvalidSearchError(
                f"spec file {path} is not valid JSON: line {exc.lineno}, column {exc.colno}: "
                f"{exc.msg}."
            ) from exc
        except ValueError as exc:
            raise InvalidSearchError(f"spec file {path} is not valid JSON: {exc}.") from exc
    raise InvalidSearchError(
        f"spec file {path}: expected a .yaml, .yml or .json file, found a {suffix or 'suffix-less'} file."
    )


def _plain(value: Any) -> Any:
    """A deep copy with tuples as lists and NumPy scalars as Python scalars (what JSON Schema reads)."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


# -- load_spec ------------------------------------------------------------------------------------
def load_spec(
    source: SpecSource, *, base_dir: str | os.PathLike[str] | None = None
) -> dict[str, Any]:
    """Read and validate a search spec, and fill in its defaults.

    Parameters
    ----------
    source : str, os.PathLike or Mapping
        The path of a ``.yaml``, ``.yml`` or ``.json`` spec file, or a spec as a mapping (such as the
        output of :func:`load_spec` itself: loading a loaded spec gives an equal spec).
    base_dir : str or os.PathLike, optional
        The folder relative data file paths start at. By default the spec's own ``"_base_dir"`` key
        if it has one, else the spec file's folder, else the current working directory.

    Returns
    -------
    dict
        The validated spec with every optional field filled in (see the module docstring for the
        defaults), ``data.format`` inferred from the file extension, ``error_score: nan`` as a float,
        and the private key ``"_base_dir"``: the absolute folder relative data paths resolve against.

    Raises
    ------
    InvalidSearchError
        When the file is missing or is not valid YAML/JSON (naming the file, line and column), or the
        spec breaks the schema: the message names each bad field by its path (such as
        ``spec.search.param_grid.max_depth``), what was expected and what was found, and suggests the
        closest valid key for a misspelled one.

    Examples
    --------
    >>> spec = load_spec({
    ...     "estimator": {"class": "sklearn.tree.DecisionTreeClassifier"},
    ...     "search": {"type": "random", "param_distributions": {"max_depth": [2, 4]}},
    ...     "data": {"loader": "sklearn.datasets.load_iris"},
    ... })
    >>> spec["search"]["n_iter"], spec["cv"], spec["refit"]
    (10, 5, True)
    """
    source_name: str | None = None
    if isinstance(source, Mapping):
        doc = _plain(source)
        default_dir = Path.cwd()
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source).expanduser().resolve()
        source_name = str(path)
        doc = _read_file(path)
        default_dir = path.parent
    else:
        raise InvalidSearchError(
            f"load_spec takes the path of a spec file or a mapping, got {type(source).__name__}."
        )
    if not isinstance(doc, Mapping):
        raise InvalidSearchError(
            f"{source_name + ': ' if source_name else ''}spec: expected a mapping with estimator, "
            f"search and data, found {_show(doc)}."
        )
    doc = dict(doc)
    stored_dir = doc.pop(_BASE_DIR, None)
    if base_dir is not None:
        folder = Path(base_dir).expanduser().resolve()
    elif isinstance(stored_dir, str):
        folder = Path(stored_dir)
    else:
        folder = default_dir

    order = {key: i for i, key in enumerate(_STATIC_SCHEMA["properties"])}
    errors = sorted(  # in the order of the fields in the schema, then by path
        _validator().iter_errors(doc),
        key=lambda e: (
            [order.get(p, -1) for p in list(e.absolute_path)[:1]],
            [str(p) for p in list(e.absolute_path)[1:]],
            e.validator != "additionalProperties",
        ),
    )
    if errors:
        _raise_errors([line for e in errors for line in _error_lines(e)], source_name)

    lines = _semantic_problems(doc)
    if lines:
        _raise_errors(lines, source_name)
    spec = _with_defaults(doc)
    spec[_BASE_DIR] = str(folder)
    return spec


def _file_format(data: Mapping[str, Any]) -> str | None:
    if "format" in data:
        return str(data["format"])
    name = str(data["file"]).lower()
    for comp in _COMPRESSION_SUFFIXES:
        if name.endswith(".csv" + comp):
            return "csv"
    return _SUFFIX_FORMATS.get(Path(name).suffix)


@functools.lru_cache(maxsize=1)
def _scipy_distribution_names() -> tuple[str, ...]:
    from scipy import stats

    return tuple(
        sorted(
            name
            for name in dir(stats)
            if not name.startswith("_")
            and isinstance(getattr(stats, name), (stats.rv_continuous, stats.rv_discrete))
        )
    )


def _semantic_problems(doc: Mapping[str, Any]) -> list[str]:
    """What the schema cannot say: unique step names, data file formats, scipy.stats names."""
    lines = []
    steps = doc["estimator"].get("pipeline", [])
    first: dict[str, int] = {}
    for i, step in enumerate(steps):
        if step["name"] in first:
            lines.append(
                f"{_where(['estimator', 'pipeline', i, 'name'])}: the step name {step['name']!r} is "
                f"also used by step {first[step['name']]}: step names must be unique."
            )
        first.setdefault(step["name"], i)

    data = doc["data"]
    if "file" in data:
        fmt = _file_format(data)
        if fmt is None:
            lines.append(
                f"{_where(['data', 'file'])}: cannot tell the format of {data['file']!r} from its "
                "extension: name a .csv, .parquet or .npz file, or give data.format."
            )
        elif fmt in _TABLE_FORMATS and "target" not in data:
            lines.append(
                f"{_where(['data', 'target'])} is missing: expected the name of the column of "
                f"the {fmt} file that holds y."
            )
        elif fmt == "npz":
            for key in ("target", "features"):
                if key in data:
                    lines.append(
                        f"{_where(['data', key])}: not used with npz files, which hold arrays "
                        "named X and y; remove it."
                    )

    search = doc["search"]
    given = [f for f in _types()[search["type"]].counts if f in search]
    if len(given) > 1:
        lines.append(
            f"{_where(['search', given[1]])}: type: {search['type']} takes {' and '.join(given)} as "
            f"two names of its number of candidates: give only {given[0]}."
        )

    space = search.get("param_distributions")
    if space is not None:
        spaces = space if isinstance(space, list) else [space]
        names = _scipy_distribution_names()
        for i, dists in enumerate(spaces):
            for key, value in dists.items():
                if isinstance(value, Mapping) and "dist" in value and value["dist"] not in names:
                    at = [
                        "search",
                        "param_distributions",
                        *([i] if isinstance(space, list) else []),
                    ]
                    hint = _did_you_mean(value["dist"], names) or "."
                    lines.append(
                        f"{_where([*at, key, 'dist'])}: expected the name of a scipy.stats "
                        f"distribution, found {_show(value['dist'])}{hint}"
                    )
    return lines


def _int(value: Any) -> Any:
    # JSON Schema counts 3.0 as an integer; scikit-learn wants a real int.
    return int(value) if isinstance(value, float) else value


def _schema_types(schema: Mapping[str, Any]) -> set[str]:
    kinds = schema.get("type", [])
    found = {kinds} if isinstance(kinds, str) else set(kinds)
    for option in schema.get("anyOf", []):
        found |= _schema_types(option)
    return found


def _whole(value: Any, schema: Mapping[str, Any]) -> Any:
    """``value``, with a whole float such as 3.0 as an int where the field takes integers (only, or
    as well as other numbers: a budget of 27.0 is 27, a budget of 2.5 stays 2.5)."""
    types = _schema_types(schema)
    if isinstance(value, float) and "integer" in types and value.is_integer():
        return _int(value)
    return value


def _is_json(value: Any) -> bool:
    if value is None or isinstance(value, (bool, int, str)):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, (list, tuple)):
        return all(_is_json(v) for v in value)
    if isinstance(value, Mapping):
        return all(isinstance(k, str) and _is_json(v) for k, v in value.items())
    return False


@functools.lru_cache(maxsize=256)
def _field_validator(field: str) -> Any:
    import jsonschema

    return jsonschema.Draft202012Validator(
        {**_field_schema(field), "$defs": _STATIC_SCHEMA["$defs"]}
    )


def _search_with_defaults(search: Mapping[str, Any]) -> dict[str, Any]:
    """``spec.search`` with every field of its type, as given or at its default."""
    own = _types()[search["type"]]
    out: dict[str, Any] = {"type": own.kind, own.space: search[own.space]}
    counted = any(f in search for f in own.counts)
    for field, param in own.fields.items():
        schema = _field_schema(field)
        if field in search:
            out[field] = _whole(search[field], schema)
            continue
        default = schema.get("default", param.default)
        if (
            param.default is inspect.Parameter.empty  # required: the schema saw it is given
            or _is_old_name(param)  # accepted when given, never filled in
            or (counted and field in own.counts)  # the candidates are counted by another name
            or not _is_json(default)  # left to the class (a spec holds JSON values only)
            or not _field_validator(field).is_valid(default)  # no valid spec could give it
        ):
            continue
        out[field] = _plain(default)
    return out


def _with_defaults(doc: Mapping[str, Any]) -> dict[str, Any]:
    est = doc["estimator"]
    if "pipeline" in est:
        estimator: dict[str, Any] = {
            "pipeline": [
                {"name": s["name"], "class": s["class"], "params": dict(s.get("params", {}))}
                for s in est["pipeline"]
            ]
        }
    else:
        estimator = {"class": est["class"], "params": dict(est.get("params", {}))}

    search_out = _search_with_defaults(doc["search"])

    data = doc["data"]
    if "loader" in data:
        data_out: dict[str, Any] = {
            "loader": data["loader"],
            "kwargs": dict(data.get("kwargs", {})),
        }
    else:
        data_out = {"file": data["file"], "format": _file_format(data)}
        for key in ("target", "features"):
            if key in data:
                data_out[key] = data[key]
        data_out["kwargs"] = dict(data.get("kwargs", {}))

    error_score = doc.get("error_score", "nan")
    if isinstance(error_score, str) and error_score.lower() == "nan":
        error_score = math.nan
    cv = doc.get("cv", 5)
    return {
        "name": doc.get("name"),
        "estimator": estimator,
        "search": search_out,
        "data": data_out,
        "scoring": doc.get("scoring"),
        "refit": doc.get("refit", True),
        "cv": dict(cv) if isinstance(cv, Mapping) else _int(cv),
        "error_score": error_score,
        "return_train_score": doc.get("return_train_score", False),
        "trial_timeout": doc.get("trial_timeout"),
    }


# -- imports and instances ------------------------------------------------------------------------
def _import(path_text: str, where: str) -> Any:
    """The object an import path names, or an InvalidSearchError naming ``where``."""

    def fail(reason: str) -> InvalidSearchError:
        return InvalidSearchError(f"{where} = {path_text!r} cannot be imported: {reason}")

    if ":" in path_text:
        head, tail = path_text.split(":", 1)
        candidates = [(head, tail.split("."))]
    else:
        parts = path_text.split(".")
        candidates = [(".".join(parts[:i]), parts[i:]) for i in range(len(parts) - 1, 0, -1)]
    missing: ModuleNotFoundError | None = None
    for module_name, attrs in candidates:
        try:
            obj: Any = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and (module_name + ".").startswith(exc.name + "."):
                missing = missing or exc  # that module itself is missing: try a shorter prefix
                continue
            raise fail(f"importing {module_name!r} failed: {exc}.") from exc
        except Exception as exc:
            raise fail(f"importing {module_name!r} failed: {type(exc).__name__}: {exc}") from exc
        done = module_name
        for attr in attrs:
            if not hasattr(obj, attr) and hasattr(obj, "__path__"):
                sub = f"{obj.__name__}.{attr}"
                try:  # a submodule its package does not import itself
                    obj = importlib.import_module(sub)
                    done += "." + attr
                    continue
                except ModuleNotFoundError as exc:
                    if exc.name != sub:
                        raise fail(f"importing {sub!r} failed: {exc}.") from exc
                except Exception as exc:
                    raise fail(f"importing {sub!r} failed: {type(exc).__name__}: {exc}") from exc
            if not hasattr(obj, attr):
                options = [n for n in dir(obj) if not n.startswith("_")]
                if hasattr(obj, "__path__"):
                    options += [m.name for m in pkgutil.iter_modules(obj.__path__)]
                close = difflib.get_close_matches(attr, options, n=1)
                hint = f" Did you mean {done + '.' + close[0]!r}?" if close else ""
                reason = str(missing) if missing else f"{done!r} has no attribute {attr!r}"
                raise fail(f"{reason}.{hint}") from missing
            obj = getattr(obj, attr)
            done += "." + attr
        return obj
    raise fail(f"{missing}.") from missing


def _call(factory: Any, kwargs: Mapping[str, Any], where: str, params_at: list[Any]) -> Any:
    """``factory(**kwargs)``, with unknown keyword names reported at their spec path."""
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        signature = None
    if signature is not None:
        try:
            signature.bind(**kwargs)
        except TypeError as exc:
            accepted = [
                n
                for n, p in signature.parameters.items()
                if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
            ]
            bad = [k for k in kwargs if k not in accepted]
            name = getattr(factory, "__name__", repr(factory))
            if bad:
                raise InvalidSearchError(
                    f"{_where([*params_at, bad[0]])}: {name} has no parameter {bad[0]!r}"
                    f"{_did_you_mean(bad[0], accepted) or '.'} Its parameters: {', '.join(accepted)}."
                ) from exc
            raise InvalidSearchError(
                f"{where}: cannot call {name} with {dict(kwargs)!r}: {exc}"
            ) from exc
    return factory(**kwargs)


def _is_component(value: Any) -> bool:
    return (
        isinstance(value, Mapping)
        and isinstance(value.get("class"), str)
        and set(value) <= {"class", "params"}
        and isinstance(value.get("params", {}), Mapping)
    )


def _component(value: Mapping[str, Any], path: list[Any], kind: str = "estimator") -> Any:
    factory = _import(value["class"], _where([*path, "class"]))
    if not callable(factory):
        raise InvalidSearchError(
            f"{_where([*path, 'class'])} = {value['class']!r} is {_show(factory)}: expected a class."
        )
    params = {k: _value(v, [*path, "params", k]) for k, v in dict(value.get("params", {})).items()}
    obj = _call(factory, params, _where([*path, "class"]), [*path, "params"])
    needs = {"estimator": "fit", "splitter": "split"}[kind]
    if not hasattr(obj, needs):
        expected = (
            "a scikit-learn estimator class"
            if kind == "estimator"
            else "a CV splitter class such as 'sklearn.model_selection.KFold'"
        )
        raise InvalidSearchError(
            f"{_where([*path, 'class'])} = {value['class']!r} gives {type(obj).__name__} objects, "
            f"which have no {needs} method: expected {expected}."
        )
    return obj


def _value(value: Any, path: list[Any]) -> Any:
    """A parameter value: ``{class, params}`` mappings become instances, at any depth."""
    if _is_component(value):
        return _component(value, path)
    if isinstance(value, Mapping):
        return {k: _value(v, [*path, k]) for k, v in value.items()}
    if isinstance(value, list):
        return [_value(v, [*path, i]) for i, v in enumerate(value)]
    return value


def _build_estimator(spec: Mapping[str, Any]) -> Any:
    est = spec["estimator"]
    if "pipeline" not in est:
        return _component(est, ["estimator"])
    from sklearn.pipeline import Pipeline

    steps = [
        (step["name"], _component(step, ["estimator", "pipeline", i]))
        for i, step in enumerate(est["pipeline"])
    ]
    return Pipeline(steps)


def _distribution(value: Any, path: list[Any]) -> Any:
    if isinstance(value, list):
        return _value(value, path)
    if "dist" in value:
        from scipy import stats

        args, kwargs = list(value.get("args", [])), dict(value.get("kwargs", {}))
        generator = getattr(stats, value["dist"])
        shown = ", ".join([*map(repr, args), *(f"{k}={v!r}" for k, v in kwargs.items())])
        try:
            frozen = generator(*args, **kwargs)
            # Frozen distributions check their arguments only when used: draw once, from our own RNG.
            frozen.rvs(random_state=np.random.RandomState(0))
        except (TypeError, ValueError) as exc:
            raise InvalidSearchError(
                f"{_where(path)}: scipy.stats.{value['dist']}({shown}) is not a usable distribution: "
                f"{exc}"
            ) from exc
        return frozen
    data = dict(value)
    if data.get("type") == "categorical":
        data["choices"] = _value(list(data["choices"]), [*path, "choices"])
    try:
        return dimension_from_json(data)
    except InvalidSearchError as exc:
        raise InvalidSearchError(f"{_where(path)}: {exc}") from exc


def _check_names(estimator: Any, space: Any, key: str) -> None:
    valid = sorted(estimator.get_params(deep=True))
    spaces = space if isinstance(space, list) else [space]
    for i, grid in enumerate(spaces):
        for name in grid:
            if name in valid or any(name.startswith(other + "__") for other in grid):
                continue  # the latter sets a parameter of an estimator that is itself searched
            at = ["search", key, *([i] if isinstance(space, list) else []), name]
            shown = ", ".join(valid[:40]) + (", ..." if len(valid) > 40 else "")
            raise InvalidSearchError(
                f"{_where(at)}: {name!r} is not a parameter of {type(estimator).__name__}"
                f"{_did_you_mean(name, valid) or '.'} Valid names: {shown}."
            )


def _check_scoring(scoring: Any, refit: Any) -> None:
    from sklearn.metrics import get_scorer_names

    names = get_scorer_names()
    if isinstance(scoring, str):
        entries: list[tuple[list[Any], str]] = [(["scoring"], scoring)]
    elif isinstance(scoring, list):
        entries = [(["scoring", i], s) for i, s in enumerate(scoring)]
    elif isinstance(scoring, Mapping):
        entries = [(["scoring", k], s) for k, s in scoring.items()]
    else:
        entries = []
    for at, name in entries:
        if name not in names:
            raise InvalidSearchError(
                f"{_where(at)}: expected a scorer name, found {_show(name)}"
                f"{_did_you_mean(name, names) or '.'} See sklearn.metrics.get_scorer_names()."
            )
    metrics = list(scoring) if isinstance(scoring, (list, Mapping)) else []
    if isinstance(refit, str) and metrics and refit not in metrics:
        raise InvalidSearchError(
            f"spec.refit: expected true, false or one of the scoring metrics "
            f"({', '.join(map(repr, metrics))}), found {_show(refit)}"
            f"{_did_you_mean(refit, metrics) or '.'}"
        )


def build_search(
    spec: SpecSource,
    *,
    client: Any = None,
    storage: Any = None,
    **kwargs: Any,
) -> Any:
    """Build the search a spec describes (without fitting it).

    Parameters
    ----------
    spec : str, os.PathLike or Mapping
        A spec file path or mapping; validated with :func:`load_spec` (a loaded spec passes as is).
    client : distributed.Client or str, optional
        Passed to the search: the cluster to run on.
    storage : str, optional
        Passed to the search: where trials are stored, such as ``"sqlite:///runs.db"``.
    **kwargs
        More constructor arguments of the search (such as ``verbose=1`` or ``n_jobs=4``); they
        override the spec's.

    Returns
    -------
    BaseSearchCV
        An instance of the class registered for ``search.type`` (:data:`daskhpo.registry.SEARCH_TYPES`:
        ``grid`` is :class:`~daskhpo.GridSearchCV`, ``bohb`` :class:`~daskhpo.BOHBSearchCV`, ...),
        named ``spec["name"]``; fit it with ``search.fit(*load_data(spec))``.

    Raises
    ------
    InvalidSearchError
        For an invalid spec; a class that cannot be imported (naming the field, such as
        ``spec.estimator.class``, the import error and the closest name); a constructor parameter
        that the class does not take; an unknown scipy.stats distribution or bad arguments; a
        searched parameter that the estimator does not have; an unknown scorer name; a top-level
        setting (such as ``trial_timeout``) or keyword argument that the search type's class does
        not take.

    Examples
    --------
    >>> search = build_search("search.yaml", client="tcp://10.0.0.5:8786")  # doctest: +SKIP
    >>> search.fit(*load_data("search.yaml"))  # doctest: +SKIP
    """
    spec = load_spec(spec)
    estimator = _build_estimator(spec)
    search = spec["search"]
    own = _types()[search["type"]]
    key = own.space
    space = search[key]
    spaces = space if isinstance(space, list) else [space]
    at: list[Any] = ["search", key]
    element = _value if key == "param_grid" else _distribution
    built = [
        {
            k: element(v, [*at, *([i] if isinstance(space, list) else []), k])
            for k, v in grid.items()
        }
        for i, grid in enumerate(spaces)
    ]
    space_arg = built if isinstance(space, list) else built[0]
    _check_names(estimator, space_arg, key)
    _check_scoring(spec["scoring"], spec["refit"])

    cv = spec["cv"]
    if isinstance(cv, Mapping):
        cv = _component(cv, ["cv"], kind="splitter")
    scoring = spec["scoring"]
    top_level: dict[str, Any] = {
        "scoring": list(scoring) if isinstance(scoring, list) else scoring,
        "refit": spec["refit"],
        "cv": cv,
        "error_score": spec["error_score"],
        "return_train_score": spec["return_train_score"],
        "trial_timeout": spec["trial_timeout"],
    }
    settings = {f: search[f] for f in own.fields if f in search}
    settings.update(top_level)
    settings.update(client=client, storage=storage, name=spec["name"])
    settings.update(kwargs)
    for field in [f for f in settings if f not in own.accepts]:
        value = settings.pop(field)
        if _unset(field, value):
            continue  # a setting at its default, which the class does without
        takers = [k for k, t in _types().items() if field in t.accepts]
        if field in top_level:
            flag = f" (or --{field.replace('_', '-')})" if field == "trial_timeout" else ""
            raise InvalidSearchError(
                f"spec.{field}: not supported with type: {own.kind} ({own.facade.__name__} has no "
                f"{field} parameter); remove it{flag}"
                + (f", or use {_types_text(takers)}." if takers else ".")
            )
        raise InvalidSearchError(
            f"build_search: {field}={value!r} is not a parameter of {own.facade.__name__} "
            f"(type: {own.kind}); leave it out"
            + (f", or use {_types_text(takers)}." if takers else ".")
        )
    return own.facade(estimator, space_arg, **settings)


def _unset(field: str, value: Any) -> bool:
    """Whether a setting is at the value it has when the spec and the caller leave it out."""
    if value is None:
        return True
    default = _STATIC_SCHEMA["properties"].get(field, {}).get("default")
    if field == "error_score":
        return isinstance(value, float) and math.isnan(value)
    return field in _TOP_LEVEL_SETTINGS and value == default and type(value) is type(default)


# -- data -----------------------------------------------------------------------------------------
def _data_path(spec: Mapping[str, Any]) -> Path:
    path = Path(spec["data"]["file"]).expanduser()
    if not path.is_absolute():
        path = Path(spec[_BASE_DIR]) / path
    return path.resolve()


def load_data(
    spec: SpecSource, *, base_dir: str | os.PathLike[str] | None = None
) -> tuple[Any, Any]:
    """Load the data a spec names, as ``(X, y)``.

    Parameters
    ----------
    spec : str, os.PathLike or Mapping
        A spec file path or mapping; validated with :func:`load_spec`.
    base_dir : str or os.PathLike, optional
        The folder a relative ``data.file`` starts at; by default the spec's ``"_base_dir"`` (the
        spec file's folder, see :func:`load_spec`).

    Returns
    -------
    X, y
        For ``data.loader``: what the function returns when called with ``data.kwargs``, either an
        ``(X, y)`` pair or a Bunch's ``data`` and ``target``. For a csv or parquet file: the table
        without its ``target`` column (or only the ``features`` columns) as a pandas DataFrame, and
        the ``target`` column as a Series. For an npz file: its arrays ``X`` and ``y``.

    Raises
    ------
    InvalidSearchError
        When the loader cannot be imported or called with its kwargs, returns something else than
        ``(X, y)`` or a Bunch; when the file does not exist (naming the resolved path), lacks the
        target, feature columns or arrays, or needs a missing parquet engine.
    """
    spec = load_spec(spec, base_dir=base_dir)
    data = spec["data"]
    if "loader" in data:
        where = _where(["data", "loader"])
        loader = _import(data["loader"], where)
        if not callable(loader):
            raise InvalidSearchError(f"{where} = {data['loader']!r} is not a function.")
        result = _call(loader, data["kwargs"], where, ["data", "kwargs"])
        if isinstance(result, Mapping) and "data" in result and "target" in result:
            return result["data"], result["target"]
        if isinstance(result, (tuple, list)) and len(result) == 2:
            return result[0], result[1]
        raise InvalidSearchError(
            f"{where} = {data['loader']!r} returned {_show(result)}: expected an (X, y) pair or a "
            "Bunch with data and target (for scikit-learn's loaders, both work)."
        )

    path = _data_path(spec)
    where = _where(["data", "file"])
    if not path.is_file():
        raise InvalidSearchError(
            f"{where}: {path} does not exist (data.file {data['file']!r}, relative paths start at "
            f"{spec[_BASE_DIR]})."
        )
    fmt = data["format"]
    if fmt == "npz":
        with np.load(path, allow_pickle=False) as arrays:
            missing = [k for k in ("X", "y") if k not in arrays.files]
            if missing:
                raise InvalidSearchError(
                    f"{where}: {path} has no array named {missing[0]!r}: expected arrays X and y, "
                    f"found {', '.join(arrays.files) or 'none'} (save with np.savez(path, X=X, y=y))."
                )
            return arrays["X"], arrays["y"]

    import pandas as pd

    if fmt == "csv":
        frame = pd.read_csv(path, **data["kwargs"])
    else:
        try:
            frame = pd.read_parquet(path, **data["kwargs"])
        except ImportError as exc:
            raise InvalidSearchError(
                f"{where}: reading {path} needs a parquet engine: pip install pyarrow ({exc})."
            ) from exc
    columns = [str(c) for c in frame.columns]
    for at, name in [(["data", "target"], data["target"])] + [
        (["data", "features", i], f) for i, f in enumerate(data.get("features", []))
    ]:
        if name not in frame.columns:
            raise InvalidSearchError(
                f"{_where(at)}: {path} has no column {name!r}{_did_you_mean(name, columns) or '.'} "
                f"Its columns: {', '.join(columns)}."
            )
    y = frame.pop(data["target"])
    if "features" in data:
        frame = frame[data["features"]]
    return frame, y


def spec_to_json(spec: SpecSource) -> str:
    """The validated spec, defaults filled in, as one line of JSON (to store next to a search).

    ``load_spec(json.loads(spec_to_json(spec)))`` gives the spec back; ``error_score: nan`` is written
    as the string ``"nan"``, and ``"_base_dir"`` is kept so relative data paths still resolve.

    Parameters
    ----------
    spec : str, os.PathLike or Mapping
        A spec file path or mapping; validated with :func:`load_spec`.

    Returns
    -------
    str
    """
    out = load_spec(spec)
    if isinstance(out["error_score"], float) and math.isnan(out["error_score"]):
        out["error_score"] = "nan"
    return json.dumps(out)
