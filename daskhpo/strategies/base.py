"""Records exchanged in the search loop and the :class:`Strategy` protocol.

No dask import here: a strategy is tested by feeding it results by hand.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

__all__ = ["Job", "Result", "Status", "Strategy"]


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
    """

    def ask(self, n: int) -> list[Job]: ...

    def tell(self, result: Result) -> None: ...

    @property
    def done(self) -> bool: ...

    @property
    def n_planned(self) -> int | None:
        """Number of jobs the strategy expects to run in all, if known (for progress bars)."""
        ...
