"""The search loop: keep the cluster busy, record every result, tell the strategy.

``Tuner.run`` asks the strategy for as many jobs as the executor has room for, submits them, and for each
finished job appends the :class:`~daskhpo.strategies.Result` to the store *before* telling the strategy,
so that the store always holds at least what the strategy has seen. There is no barrier unless the
strategy makes one (by answering ``ask`` with an empty list until it has been told enough).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .exceptions import DaskHPOError
from .execution.base import Executor
from .execution.tasks import UnitOutcome
from .store import MemoryStore, Store
from .strategies.base import Job, Result, Status, Strategy

__all__ = ["Tuner", "result_from_outcomes"]


def _as_dict(scores: float | dict[str, float] | None) -> dict[str, float] | None:
    if scores is None:
        return None
    if isinstance(scores, dict):
        return scores
    return {"score": scores}


def _mean(values: list[float]) -> float:
    """``float(np.mean(values))``, bit for bit, without NumPy's overhead for a few folds: below 8
    values NumPy adds them one by one from the first, as ``sum`` does."""
    if 0 < len(values) < 8:
        return sum(values) / len(values)
    return float(np.mean(values))


def result_from_outcomes(
    job: Job, outcomes: Sequence[UnitOutcome], metric: str | None, n_splits: int | None = None
) -> Result:
    """Fold the per-fold outcomes of one job into a :class:`Result` (failed folds score ``nan``).

    A job that asked for its first folds (``job.folds``, racing) says how many ran in
    ``extra["folds_run"]``; when that is fewer than ``n_splits``, the others get ``nan`` scores and
    times and the result a ``nan`` score.
    """
    if n_splits is not None and job.folds is not None:
        result = result_from_outcomes(job, outcomes, metric)
        extra = {**result.extra, "folds_run": len(outcomes)}
        pad = (math.nan,) * (n_splits - len(outcomes))
        if not pad:
            return dataclasses.replace(result, extra=extra)
        ran_train = result.train_scores
        return dataclasses.replace(
            result,
            score=math.nan,
            test_scores={n: v + pad for n, v in result.test_scores.items()},
            train_scores=None if ran_train is None else {n: v + pad for n, v in ran_train.items()},
            fit_times=result.fit_times + pad,
            score_times=result.score_times + pad,
            errors=result.errors + (None,) * len(pad),
            extra=extra,
        )
    names: list[str] = []
    for o in outcomes:
        scores = _as_dict(o.test_scores)
        if scores is not None:
            names = list(scores)
            break
    test: dict[str, list[float]] = {n: [] for n in names}
    train: dict[str, list[float]] = {n: [] for n in names}
    has_train = any(o.train_scores is not None for o in outcomes)
    for o in outcomes:
        t = _as_dict(o.test_scores) or {}
        r = _as_dict(o.train_scores) or {}
        for n in names:
            test[n].append(float(t.get(n, math.nan)))
            train[n].append(float(r.get(n, math.nan)))
    failed = any(o.error is not None for o in outcomes)
    rank_metric = metric if metric in test else (names[0] if names else None)
    score = _mean(test[rank_metric]) if rank_metric and not failed else math.nan
    return Result(
        job=job,
        status=Status.FAILED if failed else Status.COMPLETE,
        score=score,
        test_scores={n: tuple(v) for n, v in test.items()},
        train_scores={n: tuple(v) for n, v in train.items()} if has_train else None,
        fit_times=tuple(o.fit_time for o in outcomes),
        score_times=tuple(o.score_time for o in outcomes),
        errors=tuple(o.error for o in outcomes),
    )


class Tuner:
    """Drives one search: strategy ⇄ executor, every result logged to the store.

    Parameters
    ----------
    strategy : Strategy
    executor : Executor
    store : Store, optional
        Where results are appended (a fresh :class:`MemoryStore` by default).
    metric : str, optional
        The metric whose mean test score is a result's ``score``.
    on_result : callable, optional
        Called with each result after it is stored and told; may raise to stop the search
        (in-flight work is then cancelled; everything stored stays stored).
    on_submit : callable, optional
        Called with each list of jobs just handed to the executor.
    """

    def __init__(
        self,
        strategy: Strategy,
        executor: Executor,
        store: Store | None = None,
        *,
        metric: str | None = None,
        on_result: Callable[[Result, list[UnitOutcome]], Any] | None = None,
        on_submit: Callable[[list[Job]], Any] | None = None,
    ) -> None:
        self.strategy = strategy
        self.executor = executor
        self.store = store if store is not None else MemoryStore()
        self.metric = metric
        self.on_result = on_result
        self.on_submit = on_submit

    def run(self) -> Store:
        ex = self.executor
        try:
            while True:
                room = ex.room()
                if room and not self.strategy.done:
                    jobs = self.strategy.ask(room)
                    if jobs:
                        ex.submit(jobs)
                        if self.on_submit is not None:
                            self.on_submit(jobs)
                ex.dispatch()
                if not ex.busy:
                    if self.strategy.done:
                        break
                    # room() is never 0 while nothing is queued, so the strategy was just asked.
                    raise DaskHPOError(
                        f"{type(self.strategy).__name__} is not done but asked for no work while "
                        "nothing is running: the strategy is stuck."
                    )
                for job, outcomes in ex.wait():
                    result = result_from_outcomes(job, outcomes, self.metric, ex.n_splits)
                    self.store.append(result)
                    self.strategy.tell(result)
                    if self.on_result is not None:
                        self.on_result(result, outcomes)
        finally:
            # On success this only releases what no job needs any more (unused shared prefixes).
            ex.cancel()
        return self.store
