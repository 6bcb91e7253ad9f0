"""Records exchanged in the search loop, the :class:`Strategy` protocol and its optional capabilities.

No dask import here: a strategy is tested by feeding it results by hand. The loop asks for a capability
with ``isinstance(strategy, Releasing)`` (and so on), never by probing attributes.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "Job",
    "Result",
    "Status",
    "Strategy",
    "Releasing",
    "Describing",
    "Counting",
    "SlotAware",
    "Enumerated",
    "WarmStarting",
    "params_signature",
]


class Status(enum.Enum):
    """How a trial ended."""

    COMPLETE = "complete"
    FAILED = "failed"


@dataclass(frozen=True)
class Job:
    """One unit of work a strategy asks for: evaluate ``params`` (at ``budget``, for adaptive searches).

    ``trial_id`` numbers candidates from 0 in the order they were asked; ``rung`` and ``bracket`` are set
    by the adaptive strategies and stay 0 otherwise.
    """

    trial_id: int
    params: Mapping[str, Any]
    budget: float | None = None
    rung: int = 0
    bracket: int = 0
    # Evaluate only the first ``folds`` folds (racing, see daskhpo.strategies.racing); None: all.
    folds: int | None = None


@dataclass(frozen=True)
class Result:
    """What came back for a :class:`Job`.

    ``test_scores``/``train_scores`` map each metric name to the per-fold scores; ``score`` is the mean
    test score of the metric the strategy ranks by (``nan`` when the trial failed).
    """

    job: Job
    status: Status
    score: float
    test_scores: Mapping[str, tuple[float, ...]]
    train_scores: Mapping[str, tuple[float, ...]] | None
    fit_times: tuple[float, ...]
    score_times: tuple[float, ...]
    errors: tuple[str | None, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def trial_id(self) -> int:
        return self.job.trial_id

    @property
    def failed(self) -> bool:
        return self.status is Status.FAILED


@runtime_checkable
class Strategy(Protocol):
    """The algorithm plug-in of the search loop.

    ``ask(n)`` returns up to ``n`` new jobs (an empty list means: wait for results), ``tell`` takes a
    finished result, and ``done`` is true once no job will ever be asked again and all were told.
    ``restore`` and ``signature`` serve resuming: the loop fingerprints a search with ``signature()``
    and maps each stored trial back to the strategy's own parameter objects with ``restore``.
    """

    def ask(self, n: int) -> list[Job]: ...

    def tell(self, result: Result) -> None: ...

    @property
    def done(self) -> bool: ...

    @property
    def n_planned(self) -> int | None:
        """Number of jobs the strategy expects to run in all, if known (for progress bars)."""
        ...

    def restore(self, trial_id: int, params: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """This search's own params object for stored trial ``trial_id`` (``params``: its JSON
        stand-ins), or ``None`` when the trial does not belong to this search (it is skipped)."""
        ...

    def signature(self) -> Any:
        """Which candidates the strategy runs, as plain data ``dask.base.tokenize`` hashes the same
        way in every process (lists, tuples, numbers, strings and the candidates' own values)."""
        ...


@runtime_checkable
class Releasing(Protocol):
    """A strategy that says which trials it will never ask again (their models may be dropped)."""

    def finished_trials(self) -> list[int]: ...


@runtime_checkable
class Describing(Protocol):
    """A strategy with a JSON-safe description of its plan and progress (the search's ``metadata_``)."""

    def metadata(self) -> dict[str, Any]: ...


@runtime_checkable
class Counting(Protocol):
    """A strategy with counters of its own (merged into the search's ``stats_``)."""

    @property
    def stats(self) -> Mapping[str, Any]: ...


@runtime_checkable
class SlotAware(Protocol):
    """A strategy that adapts to the number of evaluations the cluster runs at once.

    ``set_slots`` is called once the cluster is known, before the first ``ask``.
    """

    def set_slots(self, n_slots: int) -> None: ...


@runtime_checkable
class Enumerated(Protocol):
    """A strategy whose every candidate is known up front (grid and random search), as a sequence
    (a grid's is made on demand: index it, do not copy it)."""

    candidates: Sequence[Mapping[str, Any]]


@runtime_checkable
class WarmStarting(Protocol):
    """A strategy that can learn from results of other searches before its first ask."""

    def warm(self, results: list[Result]) -> int: ...


def params_signature(params: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """A candidate as ``(name, value)`` pairs in name order: what ``signature()`` lists per candidate.

    The values stay the objects themselves, so ``dask.base.tokenize`` hashes them as it hashes any
    parameter value (the executor's ``params_token`` does the same), whatever the order of the keys.
    """
    return [(str(k), params[k]) for k in sorted(params, key=str)]
