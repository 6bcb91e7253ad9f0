"""Search spaces: dimensions, grids and random sampling.

Grids are enumerated in scikit-learn's :class:`~sklearn.model_selection.ParameterGrid` order, one candidate
at a time from its index (:class:`LazyGrid`), and random sampling reuses scikit-learn's
:class:`~sklearn.model_selection.ParameterSampler`, so for the same ``param_grid``/``param_distributions``
and ``random_state`` daskhpo evaluates exactly the candidates scikit-learn would, in the same order.
The dimension classes (:class:`Float`, :class:`Int`, :class:`Categorical`) plug into both: they have an
``rvs`` method like a frozen ``scipy.stats`` distribution and can be listed for grids.
"""

from __future__ import annotations

import math
import numbers
import operator
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, overload

import numpy as np
from sklearn.model_selection import ParameterSampler

from .exceptions import InvalidSearchError, InvalidSearchTypeError
from .validation import check

__all__ = [
    "Float",
    "Int",
    "Categorical",
    "LazyGrid",
    "LazySample",
    "grid_candidates",
    "random_candidates",
    "normalize_grid",
    "normalize_distributions",
    "as_seed",
]


def as_seed(random_state: Any) -> int:
    """The one seed rule of daskhpo: a ``random_state`` as a 32-bit integer seed.

    An int is itself (modulo 2**32; negative ones are refused), a numpy ``RandomState`` or
    ``Generator`` gives one draw, and None draws a seed from the operating system (never from numpy's
    global generator). Every seeded component (random sources, Optuna samplers, block orders,
    subsamples) derives its randomness from this seed.
    """
    if random_state is None:
        return int(np.random.SeedSequence().generate_state(1)[0])
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(2**32 - 1, dtype=np.int64))
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(2**32 - 1))
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        if random_state < 0:
            raise InvalidSearchError(
                f"random_state={random_state!r}: use a non-negative integer, None, or a numpy "
                "RandomState/Generator."
            )
        return int(random_state) % 2**32
    raise InvalidSearchTypeError(
        f"random_state={random_state!r}: use an integer, None, or a numpy RandomState/Generator."
    )


def _rng(random_state: Any) -> np.random.RandomState:
    """A ``RandomState`` for scikit-learn's samplers: the caller's own, else one seeded by
    :func:`as_seed` (so an int seed draws exactly what scikit-learn draws with it)."""
    if isinstance(random_state, np.random.RandomState):
        return random_state
    return np.random.RandomState(as_seed(random_state))


@dataclass(frozen=True)
class Float:
    """A real-valued dimension on ``[low, high]``, sampled uniformly or log-uniformly."""

    low: float
    high: float
    log: bool = False

    def __post_init__(self) -> None:
        if not (math.isfinite(self.low) and math.isfinite(self.high)) or self.low >= self.high:
            raise InvalidSearchError(
                f"Float(low={self.low!r}, high={self.high!r}): low must be finite and below high."
            )
        if self.log and self.low <= 0:
            raise InvalidSearchError(
                f"Float(low={self.low!r}, log=True): a log-scaled dimension needs low > 0."
            )

    def rvs(self, random_state: Any = None) -> float:
        rng = _rng(random_state)
        if self.log:
            return float(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))
        return float(rng.uniform(self.low, self.high))

    def to_json(self) -> dict[str, Any]:
        return {"type": "float", "low": self.low, "high": self.high, "log": self.log}


@dataclass(frozen=True)
class Int:
    """An integer dimension on ``[low, high]`` (both included)."""

    low: int
    high: int
    log: bool = False

    def __post_init__(self) -> None:
        if self.low > self.high:
            raise InvalidSearchError(
                f"Int(low={self.low!r}, high={self.high!r}): low must be <= high."
            )
        if self.log and self.low <= 0:
            raise InvalidSearchError(
                f"Int(low={self.low!r}, log=True): a log-scaled dimension needs low > 0."
            )

    def rvs(self, random_state: Any = None) -> int:
        rng = _rng(random_state)
        if self.log:
            value = math.exp(rng.uniform(math.log(self.low), math.log(self.high + 1)))
            return int(min(self.high, math.floor(value)))
        return int(rng.randint(self.low, self.high + 1))

    def __iter__(self):  # lets an Int stand in a param_grid as the list of its values
        return iter(range(self.low, self.high + 1))

    def __len__(self) -> int:
        return self.high - self.low + 1

    def to_json(self) -> dict[str, Any]:
        return {"type": "int", "low": self.low, "high": self.high, "log": self.log}


@dataclass(frozen=True)
class Categorical:
    """A dimension over a fixed list of choices."""

    choices: tuple[Any, ...]

    def __init__(self, choices: Iterable[Any]) -> None:
        values = tuple(choices)
        if not values:
            raise InvalidSearchError("Categorical(choices=[]): give at least one choice.")
        object.__setattr__(self, "choices", values)

    def rvs(self, random_state: Any = None) -> Any:
        rng = _rng(random_state)
        return self.choices[rng.randint(len(self.choices))]

    def __iter__(self):
        return iter(self.choices)

    def __len__(self) -> int:
        return len(self.choices)

    def to_json(self) -> dict[str, Any]:
        return {"type": "categorical", "choices": list(self.choices)}


def dimension_from_json(data: Mapping[str, Any]) -> Float | Int | Categorical:
    """Rebuild a dimension written by ``to_json``."""
    kind = data.get("type")
    if kind == "float":
        return Float(data["low"], data["high"], log=bool(data.get("log", False)))
    if kind == "int":
        return Int(data["low"], data["high"], log=bool(data.get("log", False)))
    if kind == "categorical":
        return Categorical(data["choices"])
    raise InvalidSearchError(
        f"unknown dimension type {kind!r}: expected 'float', 'int' or 'categorical'."
    )


def _as_list_of_dicts(
    value: Any,
    name: str,
    *,
    values: str = "candidate values",
    example: str = "{'max_depth': [2, 4, 8]}",
    entries: str = "grids",
    note: str = "",
) -> list[Mapping[str, Any]]:
    """``value`` as a list of dicts (one dict, or a non-empty list of them), or a clear error.

    ``values`` names what the dicts map parameter names to, ``example`` is a valid dict for the
    error message, ``entries`` what the list's items are, ``note`` a remark on what a list means.
    """
    if isinstance(value, Mapping):
        return [value]
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        if len(value) == 0:
            raise InvalidSearchError(
                f"{name}=[] is empty: give a dict of parameter names to {values}, "
                f"for example {name}={example}."
            )
        for i, item in enumerate(value):
            if not isinstance(item, Mapping):
                raise InvalidSearchTypeError(
                    f"{name}[{i}] is a {type(item).__name__}: every entry of a list of {entries} "
                    "must be a dict."
                )
        return list(value)
    raise InvalidSearchTypeError(
        f"{name} must be a dict (or a list of dicts{note}) of parameter names to {values}, "
        f"got {type(value).__name__}."
    )


def normalize_grid(param_grid: Any, name: str = "param_grid") -> list[dict[str, list[Any]]]:
    """Check a scikit-learn style ``param_grid`` and return it as a list of dicts of lists."""
    grids = []
    for grid in _as_list_of_dicts(param_grid, name):
        out: dict[str, list[Any]] = {}
        for key, values in grid.items():
            if not isinstance(key, str):
                raise InvalidSearchTypeError(
                    f"{name} has a non-string key {key!r}: keys are parameter names."
                )
            if (
                isinstance(values, (str, bytes))
                or not isinstance(values, Iterable)
                or (isinstance(values, np.ndarray) and values.ndim != 1)
            ):
                # The second sentence is scikit-learn's own wording, which its users search for.
                raise InvalidSearchTypeError(
                    f"{name}[{key!r}] = {values!r} is not a sequence of candidate values. "
                    f"Parameter grid for parameter {key!r} needs to be a list or a numpy array, but "
                    f"got {values!r} (of type {type(values).__name__}) instead. Single values need "
                    f"to be wrapped in a list with one element. Here: {name}[{key!r}] = "
                    f"[{values!r}]."
                )
            listed = list(values)
            if not listed:
                raise InvalidSearchError(
                    f"{name}[{key!r}] is empty: give at least one candidate value for {key!r}, "
                    "or remove the key to keep the estimator's own value. Parameter grid for "
                    f"parameter {key!r} need to be a non-empty sequence, got: {values!r}"
                )
            out[key] = listed
        grids.append(out)
    return grids


def normalize_distributions(
    param_distributions: Any, name: str = "param_distributions"
) -> list[dict[str, Any]]:
    """Check scikit-learn style ``param_distributions`` (lists or objects with ``rvs``)."""
    dists = []
    for grid in _as_list_of_dicts(param_distributions, name):
        out: dict[str, Any] = {}
        for key, values in grid.items():
            if not isinstance(key, str):
                raise InvalidSearchTypeError(
                    f"{name} has a non-string key {key!r}: keys are parameter names."
                )
            if hasattr(values, "rvs"):
                family = _unfrozen_family(values)
                if family is not None:
                    raise InvalidSearchTypeError(
                        f"{name}[{key!r}] = scipy.stats.{family} is a family of distributions, not a "
                        f"distribution: freeze it with its parameters, e.g. {name}[{key!r}] = "
                        f"scipy.stats.{family}({_example_args(values)})."
                    )
                out[key] = values
                continue
            if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
                raise InvalidSearchTypeError(
                    f"{name}[{key!r}] = {values!r} is neither a list of values nor a distribution with "
                    f"an rvs method: use a list, e.g. [{values!r}], or scipy.stats.uniform(...)."
                )
            listed = list(values)
            if not listed:
                raise InvalidSearchError(
                    f"{name}[{key!r}] is empty: give at least one candidate value for {key!r}."
                )
            out[key] = listed
        dists.append(out)
    return dists


#: Lists longer than this are described by their first and last values and their length.
DESCRIBED_VALUES = 50


def describe_space(space: Any) -> str:
    """A search space as text a person reads: lists of plain values (NumPy scalars as numbers),
    frozen scipy.stats distributions as ``name(args)``, daskhpo dimensions as themselves."""
    if isinstance(space, Mapping):
        return "{" + ", ".join(f"{k!r}: {describe_space(v)}" for k, v in space.items()) + "}"
    if isinstance(space, (list, tuple)):
        if len(space) > DESCRIBED_VALUES:  # a grid of a million values: its ends and its length
            head = ", ".join(describe_space(v) for v in space[:3])
            tail = ", ".join(describe_space(v) for v in space[-2:])
            return f"[{head}, ... {len(space) - 5} more ..., {tail}]"
        inner = ", ".join(describe_space(v) for v in space)
        return (
            f"[{inner}]"
            if isinstance(space, list)
            else f"({inner}{',' if len(space) == 1 else ''})"
        )
    if hasattr(space, "dist") and hasattr(space, "rvs") and hasattr(space, "args"):
        args = [repr(_plain_number(a)) for a in space.args]
        args += [f"{k}={_plain_number(v)!r}" for k, v in getattr(space, "kwds", {}).items()]
        return f"{space.dist.name}({', '.join(args)})"
    if isinstance(space, np.ndarray):
        return describe_space(space.tolist())
    return repr(_plain_number(space))


def _plain_number(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value


def _unfrozen_family(value: Any) -> str | None:
    """The name of a scipy.stats distribution family given without its parameters (None otherwise)."""
    try:
        from scipy.stats import rv_continuous, rv_discrete
    except ImportError:  # pragma: no cover - scipy comes with scikit-learn
        return None
    if isinstance(value, (rv_continuous, rv_discrete)):
        return str(getattr(value, "name", type(value).__name__.removesuffix("_gen")))
    return None


def _example_args(family: Any) -> str:
    shapes = [s.strip() for s in (family.shapes or "").split(",") if s.strip()]
    if type(family).__name__ == "randint_gen":
        return "1, 10"
    if shapes:
        return ", ".join(f"{s}=..." for s in shapes)
    return "loc=0, scale=1"


class _LazyCandidates(Sequence[dict[str, Any]]):
    """What :class:`LazyGrid` and :class:`LazySample` share: a sequence of candidates made by
    ``_candidate(i)`` when they are read, equal to any sequence of the same candidates."""

    _len: int
    _noun = "sequence"

    def _candidate(self, i: int) -> dict[str, Any]:
        raise NotImplementedError

    def __len__(self) -> int:
        return self._len

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...

    @overload
    def __getitem__(self, index: slice) -> list[dict[str, Any]]: ...

    def __getitem__(self, index: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._len))]
        i = operator.index(index)
        if i < 0:
            i += self._len
        if not 0 <= i < self._len:
            raise IndexError(f"candidate {index} of a {self._noun} of {self._len}")
        return self._candidate(i)

    def __eq__(self, other: object) -> bool:
        """Equal to any sequence of the same candidates in the same order (a list of them, say)."""
        if not isinstance(other, Sequence) or isinstance(other, (str, bytes)):
            return NotImplemented
        return len(other) == self._len and all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]  # equal to lists, which do not hash


class LazyGrid(_LazyCandidates):
    """The candidates of a grid, in scikit-learn's :class:`ParameterGrid` order, made on demand.

    ``grid[i]`` is ``list(ParameterGrid(param_grid))[i]`` (same values, same key order) computed from
    ``i`` alone, so a grid of a million candidates costs nothing until its candidates are asked for,
    and nothing after: no candidate is kept.
    """

    def __init__(self, param_grid: Any) -> None:
        # Per sub-grid: its names in scikit-learn's (sorted) order, their value lists, its size.
        self._grids: list[tuple[tuple[str, ...], tuple[list[Any], ...], int]] = []
        for grid in normalize_grid(param_grid):
            names = tuple(sorted(grid))
            values = tuple(list(grid[k]) for k in names)
            self._grids.append((names, values, math.prod(len(v) for v in values)))
        self._len = sum(size for *_, size in self._grids)

    _noun = "grid"

    def _candidate(self, i: int) -> dict[str, Any]:
        for names, values, size in self._grids:
            if i >= size:
                i -= size
                continue
            # The last name varies fastest, as in itertools.product.
            picked: list[Any] = [None] * len(names)
            for k in range(len(names) - 1, -1, -1):
                i, offset = divmod(i, len(values[k]))
                picked[k] = values[k][offset]
            return dict(zip(names, picked, strict=True))
        raise AssertionError("unreachable")  # pragma: no cover

    def __eq__(self, other: object) -> bool:
        if isinstance(other, LazyGrid):
            return self._grids == other._grids
        return super().__eq__(other)

    __hash__ = None

    def examples(self) -> list[dict[str, Any]]:
        """The first candidate of each sub-grid: every set of names the grid sets, once."""
        out, start = [], 0
        for *_, size in self._grids:
            if size:
                out.append(self[start])
            start += size
        return out

    def signature(self) -> list[Any]:
        """The grid itself (names in order, their values): equal for grids of equal candidates in
        equal order, without listing them."""
        return [
            "grid",
            [
                [(name, _hashable_values(v)) for name, v in zip(names, values, strict=True)]
                for names, values, _ in self._grids
            ],
        ]


def _hashable_values(values: list[Any]) -> Any:
    """A grid's values as ``tokenize`` hashes them fast: a long list of plain ints or floats as one
    NumPy array (hashing a million values one by one takes half a second), anything else as is."""
    if len(values) > 1000:
        for kind, dtype in ((int, np.int64), (float, np.float64)):
            if all(type(v) is kind for v in values):
                try:
                    return (dtype.__name__, np.array(values, dtype=dtype))
                except OverflowError:  # ints beyond 64 bits
                    return values
    return values


def grid_candidates(param_grid: Any) -> LazyGrid:
    """All candidates of a grid, in scikit-learn's :class:`ParameterGrid` order (made on demand)."""
    return LazyGrid(param_grid)


class LazySample(_LazyCandidates):
    """``n_iter`` candidates drawn exactly as scikit-learn's :class:`ParameterSampler` draws them,
    drawn when they are read, in order.

    The generator's state is taken when the sample is made, so reading candidate ``i`` again (or
    reading backwards) draws the sequence again from that state: reading in order costs one draw per
    candidate, and no candidate is kept but the last few read. A ``RandomState`` passed by the user
    is copied, not advanced.
    """

    _KEEP = 1024  # candidates kept after they are read (a job and its restore read them twice)

    def __init__(self, param_distributions: Any, n_iter: int, random_state: Any = None) -> None:
        check("n_iter", n_iter, strict=True)
        self._dists = normalize_distributions(param_distributions)
        self._n_iter = int(n_iter)
        self._state = _rng(random_state).get_state()
        # scikit-learn's own count: n_iter, or the size of the grid when every value is a list.
        self._len = len(ParameterSampler(self._dists, self._n_iter, random_state=0))
        self._draws: Iterator[dict[str, Any]] | None = None
        self._position = 0  # the index of the next draw
        self._kept: dict[int, dict[str, Any]] = {}
        self._warned = False

    def _sampler(self) -> Iterator[dict[str, Any]]:
        rng = np.random.RandomState()
        rng.set_state(self._state)
        sampler = ParameterSampler(self._dists, self._n_iter, random_state=rng)
        if not self._warned:  # scikit-learn's warning for a grid smaller than n_iter, once
            self._warned = True
            return iter(sampler)
        return _quietly(iter(sampler))

    def __getstate__(self) -> dict[str, Any]:
        # A generator does not pickle: the copy draws again from the stored state.
        return {**self.__dict__, "_draws": None, "_position": 0}

    _noun = "sample"

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for candidate in self._sampler():
            yield dict(candidate)

    def _candidate(self, i: int) -> dict[str, Any]:
        if i in self._kept:
            return dict(self._kept[i])
        if self._draws is None or i < self._position:
            self._draws, self._position = self._sampler(), 0
        while self._position <= i:
            candidate = dict(next(self._draws))
            self._kept[self._position] = candidate
            if len(self._kept) > self._KEEP:
                del self._kept[next(iter(self._kept))]
            self._position += 1
        return dict(self._kept[i])

    def examples(self) -> list[dict[str, Any]]:
        """One candidate per dict of distributions (every set of names the sample sets), drawn
        from a generator of their own."""
        rng = np.random.RandomState(0)
        return [
            {k: v.rvs(random_state=rng) if hasattr(v, "rvs") else v[0] for k, v in d.items()}
            for d in self._dists
        ]

    def signature(self) -> list[Any] | None:
        """The distributions, ``n_iter`` and the generator's state; None when a distribution has no
        description that stays the same from run to run (then the candidates must be listed)."""
        described = []
        for d in self._dists:
            row = []
            for name in sorted(d):
                text = _distribution_signature(d[name])
                if text is None:
                    return None
                row.append((name, text))
            described.append(row)
        return ["sample", described, self._n_iter, self._state]


def _quietly(draws: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """``draws`` without the UserWarnings scikit-learn's sampler gives (already shown once)."""
    while True:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            try:
                candidate = next(draws)
            except StopIteration:
                return
        yield candidate


def _distribution_signature(value: Any) -> Any:
    """What fixes a distribution's draws: a list's values, a frozen scipy.stats distribution's
    family and parameters, a daskhpo dimension itself; None for anything else."""
    if isinstance(value, list):
        return _hashable_values(value)
    if isinstance(value, (Float, Int, Categorical)):
        return value
    dist = getattr(value, "dist", None)
    if dist is not None and hasattr(value, "args") and hasattr(dist, "name"):
        kwds = getattr(value, "kwds", {})
        return [
            "scipy.stats",
            type(dist).__name__,
            dist.name,
            list(value.args),
            sorted(kwds.items()),
        ]
    return None


def random_candidates(
    param_distributions: Any, n_iter: int, random_state: Any = None
) -> LazySample:
    """``n_iter`` candidates drawn exactly as scikit-learn's :class:`ParameterSampler` draws them
    (for an int or a ``RandomState``; None seeds from the operating system, see :func:`as_seed`),
    drawn on demand (:class:`LazySample`)."""
    return LazySample(param_distributions, n_iter, random_state)
