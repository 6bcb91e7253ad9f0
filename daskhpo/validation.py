"""Every search parameter's rule, declared once (scikit-learn's ``_parameter_constraints`` idea).

A :class:`Param` says which types and range a parameter takes, which special values it accepts and
what they mean, and how to put a bad value right. Three things are read from that one declaration:

- :func:`check` raises :class:`~daskhpo.exceptions.InvalidSearchTypeError` for a value of the wrong
  type and :class:`~daskhpo.exceptions.InvalidSearchError` for a value out of range, with a message
  that names ``name=value`` and the fix (``"tol=-1: use a number >= 0 (...)."``);
- :func:`json_schema` is the parameter's JSON Schema fragment (Draft 2020-12): :mod:`daskhpo.spec`
  validates the spec fields of that name with it;
- the facades check their constructor parameters with it in one place before any cluster work
  (``_DaskSearchMixin._check_settings``), and the strategies check the same parameters with it.

What a single declaration cannot say stays with its caller: rules between parameters
(``min_budget <= max_budget``, ``test_size`` or ``cv``), rules that need the estimator or the data
(``resource`` must be one of its parameters), and defaults that depend on the search.

Values a caller has already resolved are checked with ``strict=True``: then ``None`` and the declared
special values (such as ``'exhaust'`` or ``'auto'``) are refused too, as a strategy taking
``max_budget`` needs a number where a facade takes ``None`` for "the search's default".

Pure Python: no dask, no numpy (numpy scalars pass as the numbers and booleans they are).

Examples
--------
>>> check("reduction_factor", 3)
3
>>> check("tol", -1)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
daskhpo.exceptions.InvalidSearchError: tol=-1: use a number >= 0 (how much a score must beat ...).
>>> json_schema("patience")["type"]
['integer', 'null']
"""

from __future__ import annotations

import math
import numbers
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .exceptions import InvalidSearchError, InvalidSearchTypeError

__all__ = ["Param", "PARAMETERS", "check", "json_schema"]

#: The kinds a declaration may name, with the JSON Schema type of each (``callable`` has none).
KINDS: dict[str, str | None] = {
    "int": "integer",
    "real": "number",
    "bool": "boolean",
    "str": "string",
    "mapping": "object",
    "callable": None,
}

# JSON Schema cannot say "finite": the largest float is the bound that refuses inf (YAML's .inf).
_LARGEST = sys.float_info.max


def _is_bool(value: Any) -> bool:
    # numpy.bool_ is neither a bool nor a number; it is recognised by name (no numpy import here).
    cls = type(value)
    return isinstance(value, bool) or (
        cls.__module__ == "numpy" and cls.__name__ in ("bool_", "bool")
    )


def _is_kind(value: Any, kind: str) -> bool:
    if kind == "int":
        return isinstance(value, numbers.Integral) and not _is_bool(value)
    if kind == "real":
        return isinstance(value, numbers.Real) and not _is_bool(value)
    if kind == "bool":
        return _is_bool(value)
    if kind == "str":
        return isinstance(value, str)
    if kind == "mapping":
        return isinstance(value, Mapping)
    return callable(value)


def _join(parts: list[str]) -> str:
    """``a``, ``a, or b``, ``a, b, or c``."""
    if len(parts) <= 2:
        return ", or ".join(parts)
    return ", ".join(parts[:-1]) + ", or " + parts[-1]


@dataclass(frozen=True)
class Param:
    """The declaration of one search parameter.

    Parameters
    ----------
    name : str
        The parameter's name, the same in every facade, strategy and spec that takes it.
    kinds : tuple of str
        Accepted types, from :data:`KINDS`: ``"int"`` (an integer, not a bool), ``"real"`` (any real
        number, ints included, not a bool), ``"bool"`` (also numpy's), ``"str"``, ``"mapping"``,
        ``"callable"``. ``("int", "real")`` takes the same values as ``("real",)`` but says that whole
        numbers are kept as ints (a spec reads ``27.0`` as ``27``).
    expects : str
        What a value of those kinds must be, as a noun phrase (``"a number >= 0 (...)"``); booleans
        are named by the message itself.
    low, high : float, optional
        Bounds of the numbers; ``low_open``/``high_open`` exclude the bound itself.
    finite : bool
        Refuse ``inf`` and ``nan`` (bounds already refuse ``nan``).
    nonzero : bool
        Refuse ``0`` (``n_jobs``).
    nonempty : bool
        Refuse the empty string.
    options : tuple of str
        More accepted values, listed as "one of ..." (``sampler``'s names).
    specials : tuple of (str, str)
        Accepted values that stand for a mode or a default, each with what it means
        (``("exhaust", "for max_budget // min_budget candidates")``); refused by ``strict`` checks.
    none : str, optional
        ``None`` is accepted (unless ``strict``) and means this (``"for no limit"``; ``""`` when
        nothing needs saying). ``None`` (the default): ``None`` is refused.
    hidden : tuple of str
        Accepted, never shown, not in the JSON Schema (the ``"deprecated"`` default of an old name).
    example : str
        Advice added to the Python message only (``"such as trial_timeout=600"``).
    description : str, optional
        The JSON Schema description, when the one made from the above does not fit JSON (a kind
        JSON cannot hold, such as ``callable``).
    """

    name: str
    kinds: tuple[str, ...] = ()
    expects: str = ""
    low: float | None = None
    low_open: bool = False
    high: float | None = None
    high_open: bool = False
    finite: bool = False
    nonzero: bool = False
    nonempty: bool = False
    options: tuple[str, ...] = ()
    specials: tuple[tuple[str, str], ...] = ()
    none: str | None = None
    hidden: tuple[str, ...] = ()
    example: str = ""
    description: str | None = None

    def __post_init__(self) -> None:
        unknown = [k for k in self.kinds if k not in KINDS]
        if unknown:
            raise ValueError(f"Param({self.name!r}): unknown kinds {unknown}; use {list(KINDS)}")

    # -- the Python check ------------------------------------------------------------------------
    def _in_range(self, value: Any) -> bool:
        # Written so that nan fails every bound (every comparison with nan is False).
        if self.low is not None and not (value > self.low if self.low_open else value >= self.low):
            return False
        if self.high is not None and not (
            value < self.high if self.high_open else value <= self.high
        ):
            return False
        if self.nonzero and value == 0:
            return False
        if self.finite and not isinstance(value, numbers.Integral):
            return math.isfinite(value)
        return True

    def check(self, value: Any, *, strict: bool = False) -> Any:
        """``value`` itself if the declaration accepts it; else raise (see :func:`check`)."""
        if value is None:
            if self.none is not None and not strict:
                return value
            raise InvalidSearchTypeError(self.message(value, strict=strict))
        if isinstance(value, str):
            plain = self.options if strict else (*self.options, *self.hidden)
            if value in plain or (not strict and value in {v for v, _ in self.specials}):
                return value
        numeric = [k for k in self.kinds if k in ("int", "real")]
        if any(_is_kind(value, k) for k in numeric):
            if self._in_range(value):
                return value
            raise InvalidSearchError(self.message(value, strict=strict))
        if "str" in self.kinds and isinstance(value, str):
            if value or not self.nonempty:
                return value
            raise InvalidSearchError(self.message(value, strict=strict))
        if any(_is_kind(value, k) for k in self.kinds if k not in numeric):
            return value
        # A string that is not one of the accepted ones is a bad value; anything else a bad type.
        strings = (*self.options, *self.hidden, *(v for v, _ in self.specials))
        error = InvalidSearchError if isinstance(value, str) and strings else InvalidSearchTypeError
        raise error(self.message(value, strict=strict))

    def _alternatives(self, *, strict: bool, json: bool) -> list[str]:
        parts = []
        if "bool" in self.kinds:
            parts.append("true or false" if json else "True or False")
        if self.expects:
            parts.append(self.expects)
        if self.options:
            shown = ", ".join(map(repr, self.options))
            parts.append(f"one of {shown}" if len(self.options) > 1 else shown)
        if not strict:
            parts += [f"{v!r} {meaning}".rstrip() for v, meaning in self.specials]
            if self.none is not None:
                parts.append(f"{'null' if json else 'None'} {self.none}".rstrip())
        return parts

    def fix(self, *, strict: bool = False) -> str:
        """What to do instead of a bad value: ``"use ..."``."""
        text = "use " + _join(self._alternatives(strict=strict, json=False))
        return text + (f" ({self.example})" if self.example else "")

    def message(self, value: Any, *, strict: bool = False) -> str:
        """The error message for a bad ``value``: ``"name=value: use ...".``"""
        return f"{self.name}={value!r}: {self.fix(strict=strict)}."

    # -- the JSON Schema fragment ------------------------------------------------------------------
    def json_schema(self) -> dict[str, Any]:
        """The JSON Schema fragment that accepts the JSON values :meth:`check` accepts."""
        types = [t for t in (KINDS[k] for k in self.kinds) if t is not None]
        if self.none is not None:
            types.append("null")
        typed: dict[str, Any] = {}
        if types:
            typed["type"] = types[0] if len(types) == 1 else types
        if any(k in self.kinds for k in ("int", "real")):
            if self.low is not None:
                typed["exclusiveMinimum" if self.low_open else "minimum"] = self.low
            elif self.finite:
                typed["minimum"] = -_LARGEST
            if self.high is not None:
                typed["exclusiveMaximum" if self.high_open else "maximum"] = self.high
            elif self.finite:
                typed["maximum"] = _LARGEST
            if self.nonzero:
                typed["not"] = {"const": 0}
        if "str" in self.kinds and self.nonempty:
            typed["minLength"] = 1
        constants = [*self.options, *(v for v, _ in self.specials)]
        out: dict[str, Any]
        if not constants:
            out = typed
        elif not typed:
            out = {"enum": constants}
        else:
            extra = {"const": constants[0]} if len(constants) == 1 else {"enum": constants}
            out = {"anyOf": [typed, extra]}
        description = self.description or _join(self._alternatives(strict=False, json=True))
        return {**out, "description": description}


def _count(name: str, what: str, **more: Any) -> Param:
    return Param(name, ("int",), f"an integer >= 1 ({what})", low=1, **more)


def _budget(name: str, what: str, **more: Any) -> Param:
    return Param(
        name,
        ("int", "real"),
        f"a positive, finite number ({what})",
        low=0,
        low_open=True,
        finite=True,
        **more,
    )


_DECLARED = (
    # -- every search (daskhpo.search) ------------------------------------------------------------
    Param(
        "error_score",
        ("real",),
        "a number (such as np.nan or 0) to record failing fits with that score",
        specials=(("raise", "to stop on the first failing fit"),),
    ),
    Param(
        "refit",
        ("bool", "str", "callable"),
        "the name of a scorer (the metric that picks the best candidate), or a callable that "
        "picks the best index from cv_results_",
        description="true, false, or the name of the metric that picks the best candidate",
    ),
    Param(
        "n_jobs",
        ("int",),
        "a positive number of concurrent tasks, or a negative one (-1: every worker thread of the "
        "cluster, -2: all but one, ...)",
        nonzero=True,
        none="for every worker thread of the cluster",
    ),
    Param("return_train_score", ("bool",)),
    Param(
        "trial_timeout",
        ("real",),
        "a positive number of seconds that one fit (one candidate on one fold) may run before it "
        "is stopped",
        low=0,
        low_open=True,
        finite=True,
        none="for no limit",
        example="such as trial_timeout=600",
    ),
    Param(
        "racing",
        ("bool", "mapping"),
        "True, or a mapping of racing settings such as {'alpha': 0.05, 'min_folds': 2}",
        description="race candidates over the folds: true, false, or settings (alpha, min_folds)",
    ),
    # -- how many candidates ------------------------------------------------------------------
    _count("n_iter", "the number of candidates to sample"),
    _count(
        "n_candidates",
        "the number of candidates",
        specials=(
            ("exhaust", "for max_budget // min_budget candidates (successive halving only)"),
        ),
    ),
    _count("n_trials", "the number of trials", hidden=("deprecated",)),
    # -- Bayesian search ----------------------------------------------------------------------
    Param(
        "sampler",
        options=("tpe", "gp", "cmaes", "random", "nsga2"),
        specials=(("auto", "(TPE for one objective, NSGA-II for several)"),),
    ),
    Param(
        "sampler_options",
        ("mapping",),
        "a mapping of keyword arguments for the Optuna sampler",
        none="",
    ),
    _count(
        "n_parallel",
        "how many trials to evaluate at once",
        none="for one trial per worker thread",
    ),
    # -- adaptive searches ---------------------------------------------------------------------
    Param(
        "resource",
        ("str",),
        "'auto', 'partial_fit', 'n_samples' or the name of an estimator parameter such as "
        "'n_estimators' or 'max_iter'",
        nonempty=True,
    ),
    _budget(
        "min_budget",
        "the budget every trial starts with, at most max_budget",
        none="for the search's default",
    ),
    _budget(
        "max_budget",
        "the most budget a trial gets: partial_fit calls, samples or the value of the budget "
        "parameter",
        none="for the search's default",
    ),
    Param(
        "reduction_factor",
        ("real",),
        "a finite number above 1 (each rung keeps the best 1/reduction_factor of the trials; 3, "
        "the usual choice, keeps a third)",
        low=1,
        low_open=True,
        finite=True,
    ),
    Param(
        "test_size",
        ("real",),
        "a fraction between 0 and 1 (the held-out share of the data, such as 0.2)",
        low=0,
        low_open=True,
        high=1,
        high_open=True,
        none="to validate with cv (or on a 0.2 share when cv is not given either)",
    ),
    _count("chunk_size", "rows per partial_fit call", none="for a tenth of the rows"),
    Param(
        "persist",
        ("bool",),
        specials=(
            ("auto", "to hold the blocks in cluster memory when they take at most half of it"),
        ),
    ),
    Param(
        "continuation",
        ("bool",),
        specials=(
            (
                "auto",
                "to continue a promoted trial's model only where that equals a fresh fit (forests, "
                "boosting without subsampling)",
            ),
        ),
    ),
    Param(
        "best_from",
        options=("all", "top", "last"),
        description="which evaluations compete for best_*: all of them, those at the largest "
        "budget evaluated (scikit-learn's halving rule), or each trial's last",
    ),
    Param(
        "min_early_stopping_rate",
        ("int",),
        "an integer >= 0 (how many rungs ASHA skips at the bottom)",
        low=0,
    ),
    Param(
        "step",
        ("real",),
        "a positive, finite budget to train a trial by between two of its scores",
        low=0,
        low_open=True,
        finite=True,
        none="for min_budget (median stopping)",
    ),
    Param(
        "patience",
        ("int",),
        "an integer >= 1 (how many scores in a row without improvement stop a trial)",
        low=1,
        none="to train every trial to max_budget",
    ),
    Param(
        "tol",
        ("real",),
        "a number >= 0 (how much a score must beat the trial's best to count as an improvement)",
        low=0,
    ),
    Param(
        "grace_budget",
        ("real",),
        "a positive, finite budget below which no trial is stopped",
        low=0,
        low_open=True,
        finite=True,
        none="for min_budget",
    ),
    _count(
        "min_trials",
        "how many other trials need a score at a budget before the median there can stop a trial",
    ),
    Param(
        "random_fraction",
        ("real",),
        "a share between 0 and 1 of the candidates drawn at random (1/3 is usual)",
        low=0,
        high=1,
    ),
    _count(
        "min_points",
        "how many completed results a budget needs before its model suggests candidates",
        none="for the number of searched parameters + 1",
    ),
)

#: Every declared parameter, by name.
PARAMETERS: Mapping[str, Param] = {p.name: p for p in _DECLARED}


def _declaration(name: str) -> Param:
    try:
        return PARAMETERS[name]
    except KeyError:
        raise KeyError(
            f"no declaration for {name!r}: declare it in daskhpo.validation (known: "
            f"{', '.join(PARAMETERS)})"
        ) from None


def check(name: str, value: Any, *, strict: bool = False) -> Any:
    """Check ``value`` against the declaration of parameter ``name``; return it unchanged.

    Parameters
    ----------
    name : str
        A declared parameter (a key of :data:`PARAMETERS`).
    value : object
    strict : bool
        Also refuse ``None`` and the declared special values: for callers that take the value after
        its default was resolved (a strategy's ``max_budget``, ``n_candidates`` other than halving's).

    Returns
    -------
    object
        ``value``.

    Raises
    ------
    InvalidSearchTypeError
        For a value of the wrong type (also a ``TypeError``).
    InvalidSearchError
        For a value of the right type out of range, or a string that is not an accepted one. The
        message is ``"name=value: use ..."``.
    KeyError
        If ``name`` is not declared (a programming error, not a user's).
    """
    return _declaration(name).check(value, strict=strict)


def json_schema(name: str) -> dict[str, Any]:
    """The JSON Schema fragment of parameter ``name`` (a new dict each call).

    It accepts the JSON values :func:`check` accepts (non-strict), with two differences JSON itself
    makes: an integer parameter takes ``3.0`` (JSON Schema counts it as the integer 3, which
    :func:`daskhpo.spec.load_spec` turns into ``3``), and hidden values (``"deprecated"``) are not
    in it. Its ``description`` says what is expected, as the spec's error messages show it.
    """
    return _declaration(name).json_schema()
