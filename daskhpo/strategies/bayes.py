"""Bayesian optimization as an ask/tell strategy, with Optuna's samplers making the suggestions.

Nothing here is a hand-written surrogate: every suggestion comes from an Optuna sampler (TPE, a
Gaussian process, CMA-ES, NSGA-II or random) asked through ``study.ask()`` on an in-memory study, and every
finished trial is told back with ``study.tell()``. Three layers, each usable on its own:

- :class:`OptunaSpace` turns a daskhpo search space (``Float``/``Int``/``Categorical``, lists of values,
  scipy.stats distributions, conditional branches as a list of dicts, nested choices) into Optuna
  define-by-run suggestions, and maps stored parameters back (for resuming).
- :class:`OptunaSuggester` suggests configurations given the results told so far; trials still being
  evaluated stay ``RUNNING`` in the study, so the sampler accounts for them. It knows nothing about jobs
  or budgets (BOHB can keep one per budget and ask the right one).
- :class:`BayesStrategy` is the :class:`~daskhpo.strategies.Strategy` of :class:`~daskhpo.BayesSearchCV`:
  it keeps at most ``max_in_flight`` trials running and asks a new one as soon as one is told.

Everything pickles: the in-memory Optuna study (with its running trials) is saved as it is; only the
reference to the ``optuna`` module is dropped and imported again on unpickling.

Optuna is an optional dependency (``pip install "daskhpo[bayes]"``); it is imported when a strategy is
built, never when daskhpo is imported. No dask import here.
"""

from __future__ import annotations

import importlib
import math
import numbers
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..exceptions import DaskHPOError, InvalidSearchError, InvalidSearchTypeError
from ..space import Categorical, Float, Int, _as_list_of_dicts, as_seed
from ..validation import check
from .base import Job, Result

__all__ = [
    "MissingDependencyError",
    "SAMPLERS",
    "OptunaSpace",
    "OptunaSuggester",
    "BayesStrategy",
    "import_optuna",
]

#: Sampler names accepted by ``sampler=`` and the Optuna class each one builds (the names are the
#: options of the ``sampler`` declaration in :mod:`daskhpo.validation`; tests check they agree).
SAMPLERS = {
    "tpe": "TPESampler",
    "gp": "GPSampler",
    "cmaes": "CmaEsSampler",
    "random": "RandomSampler",
    "nsga2": "NSGAIISampler",
}

# Extra packages some Optuna samplers import only when they first sample.
_SAMPLER_NEEDS = {"gp": ("torch", "PyTorch"), "cmaes": ("cmaes", "cmaes")}

# Names of the objectives that are timings rather than scores (mean over the folds).
TIMING_OBJECTIVES = ("fit_time", "score_time")


class MissingDependencyError(DaskHPOError, ImportError):
    """An optional package that the requested feature needs is not installed."""


def import_optuna() -> Any:
    """Import Optuna, or say how to install it."""
    try:
        return importlib.import_module("optuna")
    except ImportError as exc:
        raise MissingDependencyError(
            "BayesSearchCV needs Optuna, which is not installed: run "
            '`pip install "daskhpo[bayes]"` (or `pip install optuna`).'
        ) from exc


def _quiet_optuna(optuna: Any) -> Any:
    """A context manager that hides Optuna's INFO log lines and experimental-feature warnings."""

    class _Quiet:
        def __enter__(self) -> None:
            self._level = optuna.logging.get_verbosity()
            optuna.logging.set_verbosity(optuna.logging.WARNING)
            self._warnings = warnings.catch_warnings()
            self._warnings.__enter__()
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)

        def __exit__(self, *exc: Any) -> None:
            self._warnings.__exit__(*exc)
            optuna.logging.set_verbosity(self._level)

    return _Quiet()


# -- the search space ------------------------------------------------------------------------------


def _is_primitive(value: Any) -> bool:
    return value is None or type(value) in (bool, int, float, str)


def _plain(value: Any) -> Any:
    """The JSON stand-in a stored trial keeps for a value (the store's own conversion)."""
    from ..store import _plain as store_plain

    return store_plain(value)


def _same(stored: Any, choice: Any) -> bool:
    """Whether a (possibly stored, JSON stand-in) value is this categorical choice."""
    if stored is choice:
        return True
    try:
        a, b = _plain(stored), _plain(choice)
        # Types too: True, 1 and 1.0 are different choices (numpy scalars compare as Python's).
        return type(a) is type(b) and bool(a == b)
    except Exception:  # an object whose comparison raises is simply not this choice
        return False


@dataclass
class _Dim:
    """One searched parameter: an Optuna distribution, or a single fixed value."""

    name: str
    spec: Any  # what the user wrote, for messages and the fingerprint
    kind: str  # "float", "int", "categorical" or "fixed"
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    choices: tuple[Any, ...] = ()
    by_index: bool = False  # categorical over choice indices (choices Optuna cannot hold)
    key: str = ""  # the Optuna parameter name, set once the whole space is known
    path: str = ""

    def distribution(self, optuna: Any) -> Any:
        d = optuna.distributions
        if self.kind == "float":
            return d.FloatDistribution(self.low, self.high, log=self.log)
        if self.kind == "int":
            return d.IntDistribution(int(self.low), int(self.high), log=self.log)
        if self.kind == "categorical":
            return d.CategoricalDistribution(
                list(range(len(self.choices))) if self.by_index else list(self.choices)
            )
        return None

    def value(self, internal: Any) -> Any:
        """The estimator's parameter value for Optuna's value ``internal``."""
        if self.kind == "float":
            return float(internal)
        if self.kind == "int":
            return int(internal)
        if self.kind == "categorical":
            return self.choices[int(internal)] if self.by_index else internal
        return self.choices[0]

    def match(self, stored: Any) -> tuple[bool, Any, Any]:
        """(matches, real value, Optuna value) for a stored or given parameter value."""
        if self.kind in ("float", "int"):
            if isinstance(stored, bool) or not isinstance(stored, numbers.Real):
                return False, None, None
            v = float(stored)
            if not (self.low <= v <= self.high):
                return False, None, None
            if self.kind == "int":
                if v != int(v):
                    return False, None, None
                return True, int(v), int(v)
            return True, v, v
        for i, choice in enumerate(self.choices):
            if _same(stored, choice):
                if self.kind == "fixed":
                    return True, choice, None
                return True, choice, (i if self.by_index else choice)
        return False, None, None

    def example(self) -> Any:
        if self.kind == "float":
            return float(self.low)
        if self.kind == "int":
            return int(self.low)
        return self.choices[0]

    def describe(self) -> Any:
        if self.kind in ("float", "int"):
            return [self.kind, self.low, self.high, self.log]
        return [self.kind, [_plain(c) for c in self.choices]]


@dataclass
class _Branch:
    path: str
    entries: list[tuple[str, _Dim | _Choice]] = field(default_factory=list)


@dataclass
class _Choice:
    """A nested choice: one of several sub-spaces is picked, and its parameters join the trial's."""

    label: str
    branches: list[_Branch]
    key: str = ""
    path: str = ""


def _frozen_scipy(value: Any) -> bool:
    return hasattr(value, "dist") and hasattr(value, "support") and hasattr(value, "rvs")


def _from_scipy(name: str, where: str, dist: Any) -> _Dim:
    kind = getattr(dist.dist, "name", type(dist.dist).__name__)
    try:
        low, high = (float(v) for v in dist.support())
    except Exception as exc:  # pragma: no cover - every frozen scipy distribution has a support
        raise InvalidSearchError(f"{where}: cannot read the support of {dist!r}: {exc}") from exc
    fix = (
        f"give {where} as daskhpo.Float(low, high, log=...)/daskhpo.Int(low, high) or as one of "
        "scipy.stats.uniform, loguniform (reciprocal) or randint"
    )
    if kind == "uniform":
        return _Dim(name, dist, "float", low, high)
    if kind in ("loguniform", "reciprocal"):
        if dist.kwds.get("loc", 0) not in (0, 0.0) or (len(dist.args) > 2 and dist.args[2] != 0):
            raise InvalidSearchError(
                f"{where} = {kind} with loc != 0 is not log-uniform on an interval Optuna can "
                f"search: {fix}."
            )
        return _Dim(name, dist, "float", low, high, log=True)
    if kind == "randint":
        return (
            _Dim(name, dist, "int", low, high)
            if low < high
            else _Dim(name, dist, "fixed", choices=(int(low),))
        )
    raise InvalidSearchError(
        f"{where} = scipy.stats.{kind}(...) cannot be mapped to an Optuna distribution (Bayesian "
        f"search needs a bounded uniform, log-uniform or integer range): {fix}."
    )


def _compile_value(name: str, value: Any, where: str, path: str) -> _Dim | _Choice:
    node = _compile_node(name, value, where, path)
    node.path = path
    return node


def _compile_node(name: str, value: Any, where: str, path: str) -> _Dim | _Choice:
    if isinstance(value, Float):
        return _Dim(name, value, "float", value.low, value.high, log=value.log)
    if isinstance(value, Int):
        if value.low == value.high:
            return _Dim(name, value, "fixed", choices=(value.low,))
        return _Dim(name, value, "int", value.low, value.high, log=value.log)
    if isinstance(value, Categorical):
        choices = value.choices
        if all(isinstance(c, Mapping) for c in choices) and all(
            all(isinstance(k, str) for k in c) and len(c) > 0 for c in choices
        ):
            branches = [
                _compile_branch(c, f"{where}.choices[{i}]", f"{path}/{name}={i}")
                for i, c in enumerate(choices)
            ]
            return _Choice(name, branches, path=path)
        return _categorical(name, value, choices)
    if _frozen_scipy(value):
        return _from_scipy(name, where, value)
    if hasattr(value, "rvs"):
        raise InvalidSearchError(
            f"{where} = {value!r} is a distribution Bayesian search cannot map to an Optuna "
            "distribution: use daskhpo.Float(low, high, log=...), daskhpo.Int(low, high), "
            "daskhpo.Categorical([...]), a list of values, or scipy.stats.uniform/loguniform/randint."
        )
    if (
        isinstance(value, (str, bytes))
        or not isinstance(value, Iterable)
        or isinstance(value, Mapping)
    ):
        raise InvalidSearchTypeError(
            f"{where} = {value!r} is neither a list of values nor a dimension: wrap a single value in "
            f"a list ([{value!r}]) or use daskhpo.Float/Int/Categorical."
        )
    if isinstance(value, np.ndarray) and value.ndim != 1:
        raise InvalidSearchTypeError(
            f"{where} is a {value.ndim}-d array: give a 1-d list of values."
        )
    listed = tuple(value)
    if not listed:
        raise InvalidSearchError(f"{where} is empty: give at least one value for {name!r}.")
    return _categorical(name, value, listed)


def _categorical(name: str, spec: Any, choices: tuple[Any, ...]) -> _Dim:
    if len(choices) == 1:
        return _Dim(name, spec, "fixed", choices=choices)
    plain = all(_is_primitive(c) for c in choices)
    # Optuna compares choices with ==, so 1, 1.0 and True would be one choice to it: use indices.
    unique = plain and len(set(choices)) == len(choices)
    return _Dim(name, spec, "categorical", choices=choices, by_index=not (plain and unique))


def _compile_branch(space: Mapping[str, Any], where: str, path: str) -> _Branch:
    branch = _Branch(path)
    for key, value in space.items():
        if not isinstance(key, str):
            raise InvalidSearchTypeError(
                f"{where} has a non-string key {key!r}: keys are parameter names."
            )
        branch.entries.append((key, _compile_value(key, value, f"{where}[{key!r}]", path)))
    return branch


class OptunaSpace:
    """A search space as Optuna define-by-run suggestions.

    Parameters
    ----------
    space : dict or list of dicts
        Parameter names mapped to a :class:`~daskhpo.Float`, :class:`~daskhpo.Int` or
        :class:`~daskhpo.Categorical`, a list of values, or a frozen ``scipy.stats`` distribution
        (``uniform``, ``loguniform``/``reciprocal``, ``randint``; others cannot be searched by a
        model and raise an error naming the parameter). A list of dicts is a set of conditional
        branches: a trial first picks a branch, and only that branch's parameters are set.
        A ``Categorical`` whose choices are all dicts is a nested choice: a trial picks one of the
        dicts and its entries (which may nest further) join the trial's parameters; the key it sits
        under only names the choice. To search over dict-valued parameters, list them instead.
    name : str
        How the space is called in error messages (``search_space``).

    Notes
    -----
    Optuna parameter names are the estimator's parameter names, except where one name is searched
    with different ranges in different branches: then each gets ``@`` and the branch path appended,
    so the sampler keeps them apart. Branch choices are Optuna parameters named ``branch`` (top
    level) and ``<key>#choice`` (nested). Choices Optuna cannot hold (estimators, tuples, ...) are
    searched by their index.
    """

    def __init__(self, space: Any, name: str = "search_space") -> None:
        self.name = name
        spaces = _as_list_of_dicts(
            space,
            name,
            values="dimensions",
            example="{'C': daskhpo.Float(1e-3, 1e3, log=True)}",
            entries="branches",
            note=", one per conditional branch",
        )
        wheres = (
            [name] if isinstance(space, Mapping) else [f"{name}[{i}]" for i in range(len(spaces))]
        )
        multi = len(spaces) > 1
        self.branches = [
            _compile_branch(s, w, f"{i}" if multi else "")
            for i, (s, w) in enumerate(zip(spaces, wheres, strict=True))
        ]
        if not any(b.entries for b in self.branches):
            raise InvalidSearchError(
                f"{name} has no parameters: give at least one parameter name and its range."
            )
        self._assign_keys()

    # -- naming ---------------------------------------------------------------------------------
    def _nodes(self) -> Iterable[_Dim | _Choice]:
        def walk(branch: _Branch) -> Iterable[_Dim | _Choice]:
            for _, node in branch.entries:
                yield node
                if isinstance(node, _Choice):
                    for b in node.branches:
                        yield from walk(b)

        for b in self.branches:
            yield from walk(b)

    def _assign_keys(self) -> None:
        optuna = import_optuna()
        groups: dict[str, list[tuple[_Dim | _Choice, Any]]] = {}
        for node in self._nodes():
            if isinstance(node, _Choice):
                base = f"{node.label}#choice"
                dist = optuna.distributions.CategoricalDistribution(list(range(len(node.branches))))
            elif node.kind == "fixed":
                continue
            else:
                base = node.name
                dist = node.distribution(optuna)
            groups.setdefault(base, []).append((node, dist))
        self._branch_key = "branch"
        for base, members in groups.items():
            # A name searched the same way in several branches stays one Optuna parameter (the
            # sampler learns from all of them); each other way of searching it gets a name of its own.
            # A nested choice is a sub-space of its own, so only a unique one keeps its bare name.
            first = members[0][1]
            for node, dist in members:
                shared = base != self._branch_key and (
                    len(members) == 1 or (not isinstance(node, _Choice) and dist == first)
                )
                node.key = base if shared else f"{base}@{node.path or 'root'}"

    # -- suggesting -----------------------------------------------------------------------------
    def suggest(self, trial: Any) -> dict[str, Any]:
        """Ask ``trial`` (an Optuna trial) for one configuration; returns the estimator's params."""
        if len(self.branches) > 1:
            i = trial.suggest_categorical(self._branch_key, list(range(len(self.branches))))
            branch = self.branches[int(i)]
        else:
            branch = self.branches[0]
        params: dict[str, Any] = {}
        self._suggest_branch(trial, branch, params)
        return params

    def _suggest_branch(self, trial: Any, branch: _Branch, params: dict[str, Any]) -> None:
        for name, node in branch.entries:
            if isinstance(node, _Choice):
                i = trial.suggest_categorical(node.key, list(range(len(node.branches))))
                self._suggest_branch(trial, node.branches[int(i)], params)
            elif node.kind == "fixed":
                params[name] = node.choices[0]
            elif node.kind == "float":
                params[name] = float(
                    trial.suggest_float(node.key, node.low, node.high, log=node.log)
                )
            elif node.kind == "int":
                params[name] = int(
                    trial.suggest_int(node.key, int(node.low), int(node.high), log=node.log)
                )
            else:
                choices = list(range(len(node.choices))) if node.by_index else list(node.choices)
                params[name] = node.value(trial.suggest_categorical(node.key, choices))

    # -- mapping stored params back -------------------------------------------------------------
    def match(self, params: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """(real params, Optuna params) of a configuration of this space, or None if it is not one.

        ``params`` may hold the objects themselves or the JSON stand-ins a store keeps for them.
        Branches are tried in order; a configuration that fits several branches is given to the first.
        """
        for i, branch in enumerate(self.branches):
            internal: dict[str, Any] = {}
            if len(self.branches) > 1:
                internal[self._branch_key] = i
            found = self._match_branch(branch, dict(params), {}, internal)
            if found is not None:
                real, internal, rest = found
                if not rest:
                    return {k: real[k] for k in params}, internal
        return None

    def _match_branch(
        self,
        branch: _Branch,
        rest: dict[str, Any],
        real: dict[str, Any],
        internal: dict[str, Any],
    ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]] | None:
        return self._match_entries(branch.entries, 0, rest, real, internal)

    def _match_entries(
        self,
        entries: list[tuple[str, _Dim | _Choice]],
        start: int,
        rest: dict[str, Any],
        real: dict[str, Any],
        internal: dict[str, Any],
    ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]] | None:
        if start == len(entries):
            return real, internal, rest
        name, node = entries[start]
        if isinstance(node, _Choice):
            for i, sub in enumerate(node.branches):
                found = self._match_entries(
                    [*sub.entries, *entries[start + 1 :]],
                    0,
                    dict(rest),
                    dict(real),
                    {**internal, node.key: i},
                )
                if found is not None:
                    return found
            return None
        if name not in rest:
            return None
        ok, value, inner = node.match(rest[name])
        if not ok:
            return None
        rest = {k: v for k, v in rest.items() if k != name}
        inner_map = dict(internal)
        if node.kind != "fixed":
            inner_map[node.key] = inner
        return self._match_entries(entries, start + 1, rest, {**real, name: value}, inner_map)

    def distributions(self, internal: Mapping[str, Any]) -> dict[str, Any]:
        """The Optuna distributions of the Optuna parameters named in ``internal``."""
        optuna = import_optuna()
        out: dict[str, Any] = {}
        if self._branch_key in internal and len(self.branches) > 1:
            out[self._branch_key] = optuna.distributions.CategoricalDistribution(
                list(range(len(self.branches)))
            )
        for node in self._nodes():
            if node.key in internal:
                if isinstance(node, _Choice):
                    out[node.key] = optuna.distributions.CategoricalDistribution(
                        list(range(len(node.branches)))
                    )
                else:
                    out[node.key] = node.distribution(optuna)
        return out

    def restore(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """A stored configuration with the space's own objects in place of their JSON stand-ins.

        Raises
        ------
        InvalidSearchError
            If ``params`` is not a configuration of this space.
        """
        found = self.match(params)
        if found is None:
            raise InvalidSearchError(
                f"the stored configuration {dict(params)!r} is not in {self.name}: resume with "
                "the search space the search was started with, or pass another name= to start a new "
                "search."
            )
        return found[0]

    # -- for checks and fingerprints ----------------------------------------------------------------
    def examples(self, limit: int = 200) -> list[dict[str, Any]]:
        """One configuration per combination of branches (at most ``limit``), for name checks."""
        out: list[dict[str, Any]] = []

        def expand(entries: list[tuple[str, _Dim | _Choice]], acc: dict[str, Any]) -> None:
            if len(out) >= limit:
                return
            if not entries:
                out.append(acc)
                return
            (name, node), tail = entries[0], entries[1:]
            if isinstance(node, _Choice):
                for sub in node.branches:
                    expand([*sub.entries, *tail], dict(acc))
            else:
                expand(tail, {**acc, name: node.example()})

        for branch in self.branches:
            expand(list(branch.entries), {})
        return out

    def describe(self) -> Any:
        """A plain, JSON-safe description of the space (for fingerprints and stored specs)."""

        def branch(b: _Branch) -> Any:
            return [
                [name, ["choice", [branch(s) for s in node.branches]]]
                if isinstance(node, _Choice)
                else [name, node.describe()]
                for name, node in b.entries
            ]

        return [branch(b) for b in self.branches]


# -- suggestions given told results ----------------------------------------------------------------


def _seed_for(base: int, key: int) -> int:
    return int(np.random.SeedSequence([base, key]).generate_state(1)[0])


class OptunaSuggester:
    """Suggests configurations of a space from the results told so far, through an Optuna sampler.

    Each ``ask`` opens a trial in an in-memory Optuna study and leaves it ``RUNNING`` until it is told,
    so the sampler sees the configurations still being evaluated (TPE's constant liar; the GP sampler's
    batch acquisition; CMA-ES and NSGA-II draw each trial independently from the current population).
    The sampler is rebuilt for each ask with a seed derived from ``seed`` and the caller's key, so a
    suggestion depends only on the seed, the key and the history, not on how many asks came before.

    Parameters
    ----------
    space : OptunaSpace
    sampler : str
        One of ``"tpe"``, ``"gp"``, ``"cmaes"``, ``"random"``, ``"nsga2"``.
    sampler_options : dict, optional
        Keyword arguments for the Optuna sampler's constructor (``n_startup_trials``, ...).
    seed : int
    directions : sequence of str
        ``"maximize"``/``"minimize"`` for each objective.
    """

    def __init__(
        self,
        space: OptunaSpace,
        *,
        sampler: str = "tpe",
        sampler_options: Mapping[str, Any] | None = None,
        seed: int = 0,
        directions: Sequence[str] = ("maximize",),
    ) -> None:
        self.optuna = import_optuna()
        self.space = space
        self.sampler_name = sampler
        self.sampler_options = dict(sampler_options or {})
        self.seed = int(seed)
        self.directions = list(directions)
        self._make_sampler(self.seed)  # fail now on bad options, not on the first ask
        with _quiet_optuna(self.optuna):
            self.study = self.optuna.create_study(
                directions=self.directions, sampler=self._make_sampler(self.seed)
            )
        self._running: dict[int, Any] = {}  # key -> optuna trial
        self._seen: dict[tuple[Any, ...], int] = {}  # configuration -> times suggested/observed
        self._running_configs: dict[int, tuple[Any, ...]] = {}
        self.n_asked = 0
        self.n_duplicates = 0
        self.n_duplicates_of_running = 0
        self.n_observed = 0

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["optuna"]  # a module does not pickle
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.optuna = import_optuna()

    def _make_sampler(self, seed: int) -> Any:
        s = self.optuna.samplers
        opts = dict(self.sampler_options)
        if self.sampler_name == "tpe":
            opts.setdefault("constant_liar", True)
        if self.sampler_name in ("gp", "cmaes"):
            opts.setdefault("warn_independent_sampling", False)
        cls = getattr(s, SAMPLERS[self.sampler_name])
        try:
            with _quiet_optuna(self.optuna):
                return cls(seed=seed, **opts)
        except TypeError as exc:
            raise InvalidSearchError(
                f"sampler_options={self.sampler_options!r} do not fit optuna.samplers."
                f"{cls.__name__}: {exc}. See Optuna's documentation of {cls.__name__} for its options."
            ) from exc

    @staticmethod
    def _config(internal: Mapping[str, Any]) -> tuple[Any, ...]:
        return tuple(sorted((k, repr(v)) for k, v in internal.items()))

    def _count(self, config: tuple[Any, ...], *, asked: bool) -> None:
        if asked and self._seen.get(config):
            self.n_duplicates += 1
            if config in self._running_configs.values():
                self.n_duplicates_of_running += 1
        self._seen[config] = self._seen.get(config, 0) + 1

    def ask(self, key: int) -> dict[str, Any]:
        """A new configuration (the estimator's params) for the caller's trial ``key``."""
        if key in self._running:
            raise ValueError(f"trial {key} was already asked and not told")
        self.study.sampler = self._make_sampler(_seed_for(self.seed, key))
        with _quiet_optuna(self.optuna):
            trial = self.study.ask()
            params = self.space.suggest(trial)
        config = self._config(trial.params)
        self._count(config, asked=True)
        self._running[key] = trial
        self._running_configs[key] = config
        self.n_asked += 1
        return params

    @property
    def n_running(self) -> int:
        return len(self._running)

    def is_running(self, key: int) -> bool:
        return key in self._running

    def tell(self, key: int, values: Sequence[float] | None) -> None:
        """Report the objective values of trial ``key``; None (or a non-finite value) is a failure."""
        trial = self._running.pop(key)
        self._running_configs.pop(key, None)
        state = self.optuna.trial.TrialState
        with _quiet_optuna(self.optuna):
            if values is None or not all(math.isfinite(v) for v in values):
                self.study.tell(trial, state=state.FAIL)
            else:
                self.study.tell(trial, list(values))

    def observe(self, params: Mapping[str, Any], values: Sequence[float] | None) -> dict[str, Any]:
        """Add a configuration evaluated elsewhere (a stored trial being replayed) with its result.

        Returns the configuration's real parameter values (stand-ins of a store replaced by the
        space's own objects). Raises :class:`InvalidSearchError` if it is not a configuration of the space.
        """
        found = self.space.match(params)
        if found is None:
            raise InvalidSearchError(
                f"the stored configuration {dict(params)!r} is not in {self.space.name}: resume with the "
                "search space the search was started with, or pass another name= to start a new search."
            )
        real, internal = found
        state = self.optuna.trial.TrialState
        failed = values is None or not all(math.isfinite(v) for v in values)
        frozen = self.optuna.trial.create_trial(
            state=state.FAIL if failed else state.COMPLETE,
            values=None if failed else list(values or ()),
            params=internal,
            distributions=self.space.distributions(internal),
        )
        with _quiet_optuna(self.optuna):
            self.study.add_trial(frozen)
        self._count(self._config(internal), asked=False)
        self.n_observed += 1
        return real


# -- the strategy ----------------------------------------------------------------------------------


class BayesStrategy:
    """Sequential model-based search as a :class:`~daskhpo.strategies.Strategy`.

    At most ``max_in_flight`` trials are asked and not yet told at any time; ``ask(n)`` hands out up to
    that many and a new one as soon as one is told. A trial's objective values are the mean test
    scores of the named metrics (or its mean fit/score time); a failed trial, or one whose objective
    is not finite, is told to the sampler as a failure.

    Parameters
    ----------
    space : dict, list of dicts or OptunaSpace
        See :class:`OptunaSpace`.
    n_trials : int
        Trials in all, counting replayed ones.
    sampler, sampler_options
        See :class:`OptunaSuggester`.
    random_state : int, RandomState, Generator or None
    objectives : sequence of (name, direction), optional
        What to optimize: metric names (or ``"fit_time"``/``"score_time"``) with ``"maximize"`` or
        ``"minimize"``. By default, maximize each result's ``score`` (the ranking metric).
    max_in_flight : int, optional
        Trials evaluated at once. ``None`` (default): one until :meth:`set_slots` gives the number of
        evaluations the cluster runs at once; an explicit value is kept whatever ``set_slots`` says.
    """

    def __init__(
        self,
        space: Any,
        n_trials: int,
        *,
        sampler: str = "tpe",
        sampler_options: Mapping[str, Any] | None = None,
        random_state: Any = None,
        objectives: Sequence[tuple[str, str]] | None = None,
        max_in_flight: int | None = None,
    ) -> None:
        check("n_trials", n_trials, strict=True)
        objectives = list(objectives) if objectives else []
        check_sampler(sampler, len(objectives) or 1)
        self.space = space if isinstance(space, OptunaSpace) else OptunaSpace(space)
        self.n_trials = int(n_trials)
        self.random_state = random_state
        self.objectives = objectives
        directions = [d for _, d in objectives] or ["maximize"]
        self.suggester = OptunaSuggester(
            self.space,
            sampler=sampler,
            sampler_options=sampler_options,
            seed=as_seed(random_state),
            directions=directions,
        )
        self._explicit_in_flight = max_in_flight is not None
        self.max_in_flight = 1 if max_in_flight is None else max(1, int(max_in_flight))
        self._next_id = 0
        self._n_told = 0
        self._told: set[int] = set()
        self.n_failed = 0

    # -- Strategy protocol --------------------------------------------------------------------------
    def set_slots(self, n_slots: int) -> None:
        """Run as many trials at once as the cluster has slots, unless ``max_in_flight`` was given."""
        if not self._explicit_in_flight:
            self.max_in_flight = max(1, int(n_slots))

    @property
    def n_planned(self) -> int:
        return self.n_trials

    @property
    def done(self) -> bool:
        return self._n_told >= self.n_trials

    def ask(self, n: int) -> list[Job]:
        room = min(
            n,
            self.max_in_flight - self.suggester.n_running,
            self.n_trials - self._n_told - self.suggester.n_running,
        )
        jobs = []
        for _ in range(max(0, room)):
            tid = self._next_id
            self._next_id += 1
            jobs.append(Job(trial_id=tid, params=self.suggester.ask(tid)))
        return jobs

    def tell(self, result: Result) -> None:
        tid = result.job.trial_id
        if tid in self._told:
            raise ValueError(f"trial {tid} was already told")
        values = self.objective_values(result)
        if self.suggester.is_running(tid):
            self.suggester.tell(tid, values)
        else:  # a stored trial being replayed before the search goes on
            if self.suggester.n_running:
                raise ValueError(f"result for trial {tid}, which was never asked")
            self.suggester.observe(result.job.params, values)
            self._next_id = max(self._next_id, tid + 1)
        self._told.add(tid)
        self._n_told += 1
        if values is None:
            self.n_failed += 1

    def warm(self, results: Sequence[Result]) -> int:
        """Tell the sampler configurations evaluated by other searches, before the first ask (they
        are not trials of this search). Results outside the space are skipped; returns how many
        were told."""
        if self.suggester.n_running or self._n_told:
            raise ValueError("warm results are told before the first ask")
        told = 0
        for result in results:
            try:
                self.suggester.observe(result.job.params, self.objective_values(result))
            except InvalidSearchError:
                continue
            told += 1
        self.n_warm += told
        return told

    n_warm = 0

    # -- objectives ---------------------------------------------------------------------------------
    def objective_values(self, result: Result) -> list[float] | None:
        """What the sampler is told for a result: None for a failed trial."""
        if result.failed:
            return None
        if not self.objectives:
            return [float(result.score)] if math.isfinite(result.score) else None
        values = []
        for name, _ in self.objectives:
            if name in TIMING_OBJECTIVES:
                times = result.fit_times if name == "fit_time" else result.score_times
                v = float(np.mean(times)) if times else math.nan
            elif name in result.test_scores:
                v = float(np.mean(result.test_scores[name]))
            else:
                known = ", ".join(map(repr, [*result.test_scores, *TIMING_OBJECTIVES]))
                raise InvalidSearchError(
                    f"directions names the objective {name!r}, but the trials are scored on "
                    f"{known}: name one of those."
                )
            if not math.isfinite(v):
                return None
            values.append(v)
        return values

    # -- what the search estimator reads ------------------------------------------------------------
    @property
    def stats(self) -> dict[str, Any]:
        s = self.suggester
        return {
            "suggestions": s.n_asked,
            "duplicate_suggestions": s.n_duplicates,
            "duplicates_of_running": s.n_duplicates_of_running,
            "trials_failed": self.n_failed,
            "max_trials_in_flight": self.max_in_flight,
            "warm_start_trials": self.n_warm,
            "sampler": type(s.study.sampler).__name__,
        }

    def example_params(self) -> list[dict[str, Any]]:
        """Configurations covering every parameter name of the space (for name checks)."""
        return self.space.examples()

    def signature(self) -> Any:
        """A plain description of what this strategy will search, for fingerprints."""
        return [
            self.space.describe(),
            self.suggester.sampler_name,
            sorted((k, repr(v)) for k, v in self.suggester.sampler_options.items()),
            repr(self.random_state),
            self.n_trials,
            [list(o) for o in self.objectives],
        ]

    def restore(
        self, trial_id: int | Mapping[str, Any], params: Mapping[str, Any] | None = None
    ) -> dict[str, Any] | None:
        """Stored trial ``trial_id``'s params with the space's own objects in place of their JSON
        stand-ins; ``None`` for a trial id outside ``0 .. n_trials - 1``.

        ``restore(params)`` (one argument) is the older form, kept while facades still call it.

        Raises
        ------
        InvalidSearchError
            If ``params`` is not a configuration of the search space.
        """
        if params is None and isinstance(trial_id, Mapping):
            return self.space.restore(trial_id)
        if isinstance(trial_id, Mapping) or params is None:
            raise TypeError("restore takes (trial_id, params)")
        if not 0 <= int(trial_id) < self.n_trials:
            return None
        return self.space.restore(params)


def check_sampler(sampler: Any, n_objectives: int) -> None:
    """Raise a clear error for a sampler name that is unknown or cannot run here."""
    check("sampler", sampler, strict=True)  # a sampler's name ('auto' is resolved by then)
    if sampler == "cmaes" and n_objectives > 1:
        raise InvalidSearchError(
            "sampler='cmaes' optimizes a single objective, but directions= names "
            f"{n_objectives}: use sampler='nsga2', 'tpe' or 'gp' for several objectives."
        )
    needs = _SAMPLER_NEEDS.get(sampler)
    if needs is None:
        return
    try:
        importlib.import_module(needs[0])
    except ImportError as exc:
        raise MissingDependencyError(
            f"sampler={sampler!r} needs {needs[1]}, which is not installed: run "
            f"`pip install {needs[0]}`"
            + (' (or `pip install "daskhpo[bayes]"`).' if sampler == "cmaes" else ".")
        ) from exc
