"""The executor contract and the one factory that makes executors.

The search loop (:mod:`daskhpo.run`) never touches a client or an executor's internals: a facade
describes *what* to evaluate as plain data (:mod:`daskhpo.execution.work`), and
:func:`make_executor` turns that into an :class:`Executor` on a cluster. Only this package imports
``distributed``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from ..strategies.base import Job
from .tasks import UnitOutcome
from .work import ClusterFitWork, CrossValWork, StreamWork

__all__ = ["Executor", "ClusterFitWork", "CrossValWork", "StreamWork", "make_executor"]


@runtime_checkable
class Executor(Protocol):
    """What the search loop needs from an executor.

    ``submit`` queues jobs, ``dispatch`` sends queued work to the cluster while ``room`` says how many
    more jobs it wants buffered; ``wait`` blocks until at least one task finishes and returns the jobs
    whose every fold is done. ``release`` forgets what finished trials hold on the cluster (models),
    ``refit`` fits the chosen candidate on all the data and returns it with the seconds it took.
    ``cancel`` drops the work in flight; ``close`` also frees everything the search holds.
    """

    @property
    def n_splits(self) -> int:
        """Folds each job is evaluated on."""
        ...

    def room(self) -> int: ...

    def submit(self, jobs: list[Job]) -> None: ...

    def dispatch(self) -> None: ...

    @property
    def busy(self) -> bool: ...

    def wait(self) -> list[tuple[Job, list[UnitOutcome]]]: ...

    def release(self, trial_ids: Sequence[int]) -> None: ...

    def refit(
        self,
        params: Mapping[str, Any],
        *,
        trial_id: int | None = None,
        budget: Any = None,
        callback_leaf: Any = None,
    ) -> tuple[Any, float]: ...

    def stats(self) -> dict[str, Any]:
        """Counters merged into the search's ``stats_``; always has ``"tasks"`` (tasks submitted)."""
        ...

    def cancel(self) -> None: ...

    def close(self) -> None: ...


def make_executor(
    client: Any, work: CrossValWork | StreamWork | ClusterFitWork, n_slots: int
) -> Executor:
    """The executor that runs ``work`` on ``client``'s cluster with ``n_slots`` worker threads."""
    if isinstance(work, ClusterFitWork):
        from .cluster_fit import ClusterFitExecutor

        return ClusterFitExecutor(client, work, n_slots)
    if isinstance(work, StreamWork):
        from .incremental import StreamingExecutor

        return StreamingExecutor.for_work(client, work, n_slots)
    if _continues(work):
        from .continued import ContinuingExecutor

        return ContinuingExecutor.for_work(client, work, n_slots)
    from .executor import DaskExecutor

    return DaskExecutor.for_work(client, work, n_slots)


def _continues(work: CrossValWork) -> bool:
    """Whether ``work``'s budgets continue models (an estimator that can, and nothing that needs
    one fit per task: no trial_timeout, no callbacks watching every fit)."""
    from ..continuation import continuation_rule

    param = work.budget_param
    if work.continuation is False or param in (None, "n_samples", "partial_fit"):
        return False
    if work.trial_timeout is not None or work.callback_parent is not None:
        return False
    return continuation_rule(work.estimator, str(param)) is not None
