"""Budgets that continue: a promoted trial goes on from its model of the previous rung.

For an adaptive search whose budget is an estimator parameter, each (trial, fold) keeps its fitted
model on the cluster as a future. The next rung's task takes that future as an argument, so the
scheduler runs it on the worker that holds the model, and the task adds trees, rounds or epochs to it
(:mod:`daskhpo.continuation` says how, per estimator) instead of fitting from nothing. A small second
task reads the scores out of it: only they travel to the client.

- A unit whose estimator cannot continue (or may not: ``continuation="auto"`` and a continued model
  that would differ from a fresh one) is fitted from scratch, and starts a new chain.
- A lost worker loses the models it held; the scheduler computes them again from their tasks (the
  futures are kept), so a chain is never broken by a fault, only made longer.
- Units found in the store's unit cache are not computed; that trial's next rung starts from scratch.
  Units of exact continuations are stored under the same keys as fresh fits (their scores are equal).
- With ``trial_timeout`` or propagating callbacks, searches use :class:`DaskExecutor` (every rung
  from scratch).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sklearn.base import clone

from ..continuation import ContinuationRule, budget_value, continuation_rule, wanted
from ..strategies.base import Job
from .binning import shared_bins
from .executor import DaskExecutor, _JobState, _Unit
from .tasks import (
    SearchContext,
    UnitOutcome,
    _failure,
    _plain_fit,
    configured,
    recorded_warnings,
    score_fitted,
    single_threaded,
)
from .work import CrossValWork

__all__ = ["ContinuingExecutor", "Continued", "continue_unit"]

#: Units kept on the scheduler per worker thread (the scheduler queues them, so no slot waits for
#: the client between two fits).
ROOM_FACTOR = 4


@dataclass
class Continued:
    """A (trial, fold)'s model at a budget, with the outcome of scoring it; lives on a worker."""

    model: Any
    budget: float
    outcome: UnitOutcome


def continue_unit(
    ctx: SearchContext,
    key: str,
    params: Mapping[str, Any],
    fold: int,
    previous: Continued | None,
    rule: ContinuationRule | None,
) -> Continued:
    """Fit (or continue ``previous`` to) the budget in ``params`` on one fold and score it.

    ``previous``'s model is changed in place: the executor has let go of it, and no other task
    reads it.
    """
    ctx.realign()
    caught: list[tuple[type[Warning], str]] = []
    params = dict(params)
    target = float(params[rule.param]) if rule is not None else math.nan
    with single_threaded(), configured(ctx), recorded_warnings(caught):
        t0 = time.perf_counter()
        from_budget = None
        try:
            estimator = clone(ctx.estimator).set_params(**clone(params, safe=False))
            X_train, X_test, y_train, y_test = ctx.split(fold, estimator)
            train = ctx.folds[fold][0]
            fit_params = ctx.params_for(ctx.fit_params, train)
            go_on = (
                rule is not None
                and previous is not None
                and previous.model is not None
                and previous.budget < target
            )
            if go_on:
                assert previous is not None and rule is not None
                from_budget = previous.budget
                value = {rule.param: budget_value(rule, target, previous.budget)}
                if rule.how == "warm_start":
                    estimator = previous.model.set_params(**value)
                else:
                    booster = rule.final(previous.model)
                    booster = booster.get_booster() if rule.how == "xgb_model" else booster.booster_
                    estimator.set_params(**value)
                    fit_params = {**fit_params, rule.fit_param: booster}
            elif rule is not None and rule.how == "warm_start":
                estimator.set_params(**{rule.warm_param: True})
            with shared_bins(ctx, (fold, None), estimator, X_train):
                _plain_fit(estimator, X_train, y_train, fit_params)
        except Exception as exc:
            return Continued(None, target, _failure(key, exc, time.perf_counter() - t0))
        fit_time = time.perf_counter() - t0
        outcome = score_fitted(
            ctx, key, estimator, fold, (X_test, y_test), (X_train, y_train), fit_time
        )
        if outcome.error is not None:
            return Continued(None, target, outcome)
    outcome.continued_from = from_budget
    if caught:
        outcome.warnings = caught
    return Continued(estimator, target, outcome)


def outcome_of(continued: Continued) -> UnitOutcome:
    """The scores of a continued unit, without its model (what the client waits for)."""
    return continued.outcome


class ContinuingExecutor(DaskExecutor):
    """A :class:`DaskExecutor` whose units keep their models for the trial's next budget.

    The data, folds and estimator are shipped once, as for every search; each (trial, fold) is a
    chain of tasks, one per rung, each continuing the model of the one before where the estimator
    allows (``continuation``: ``"auto"``, ``True``; see :mod:`daskhpo.continuation`).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.mode: Any = "auto"
        self.estimator: Any = None
        self.budget_param = ""
        self.n_train: int | None = None
        self._models: dict[tuple[int, int], Any] = {}  # (trial, fold) -> future of a Continued
        self._flights: dict[str, _Unit] = {}  # key of a scores task -> its unit
        self._rules: dict[str, ContinuationRule | None] = {}
        self.n_units_continued = 0

    @classmethod
    def for_work(cls, client: Any, work: CrossValWork, n_slots: int) -> ContinuingExecutor:
        executor = super().for_work(client, work, n_slots)
        assert isinstance(executor, ContinuingExecutor)
        executor.mode = work.continuation
        executor.estimator = work.estimator
        executor.budget_param = str(work.budget_param)
        executor.n_train = max((len(tr) for tr, _ in work.folds), default=None)
        return executor

    # -- sizing: the scheduler queues the tasks, this keeps enough of them there ----------------------
    def room(self) -> int:
        in_flight = len(self._flights)
        want = ROOM_FACTOR * self.n_slots - in_flight
        return max(0, math.ceil(want / max(1, self.n_splits)))

    @property
    def busy(self) -> bool:
        return bool(self._flights) or bool(self._ready)

    def _rule(self, params: Mapping[str, Any], job_token: str) -> ContinuationRule | None:
        """How this job's units continue (None: from scratch), once per distinct candidate."""
        if job_token not in self._rules:
            estimator = clone(self.estimator).set_params(**clone(dict(params), safe=False))
            rule = continuation_rule(estimator, self.budget_param, self.n_train)
            self._rules[job_token] = rule if wanted(rule, self.mode) else None
        return self._rules[job_token]

    def submit(self, jobs: list[Job]) -> None:
        planned = [self._plan(job) for job in jobs]
        # The cache holds fresh fits' scores: they stand in only for exact continuations (and for
        # jobs that refit), never for a continuation that differs from a fresh fit.
        cacheable = [p for p in planned if (r := self._rule(p[1], p[2])) is None or r.exact]
        reused = self._from_cache(cacheable) if self.unit_keys is not None and cacheable else {}
        for job, params, job_token, keys in planned:
            state = _JobState(job, [None] * self.n_splits)
            self._jobs[job.trial_id] = state
            rule = self._rule(params, job_token)
            for fold, key in enumerate(keys):
                chain = (job.trial_id, fold)
                if key in reused:
                    state.outcomes[fold] = reused.pop(key)
                    self.n_units_reused += 1
                    self._drop(chain)  # the model is not at this budget: next rung from scratch
                    continue
                unit = _Unit(key, params, fold, None, [(job.trial_id, fold)])
                # Only scores equal to a fresh fit's go to the unit cache, under a fresh fit's key.
                if self.unit_keys is not None and (rule is None or rule.exact):
                    unit.content_key = self.unit_keys.key(job_token, fold)
                    unit.deterministic = self.unit_keys.deterministic(job_token, params)
                previous = self._models.pop(chain, None) if rule is not None else None
                if rule is None:
                    self._drop(chain)
                tag = f"{self.run_id}-{job.trial_id}-{fold}-{self.n_tasks}"
                model = self.client.submit(
                    continue_unit,
                    self.context,
                    key,
                    params,
                    fold,
                    previous,
                    rule,
                    key=f"daskhpo-continue-{tag}",
                )
                scores_key = f"daskhpo-scores-{tag}"
                outcome = self.client.submit(outcome_of, model, key=scores_key)
                if previous is not None:
                    previous.release()  # the scheduler keeps it until the new task has run
                self.n_tasks += 2
                if rule is not None:
                    self._models[chain] = model
                else:
                    model.release()
                self._flights[scores_key] = unit
                self._futures[scores_key] = outcome
                self._ac.add(outcome)
            if state.complete:
                del self._jobs[job.trial_id]
                self._ready.append((job, [o for o in state.outcomes if o is not None]))

    def _drop(self, chain: tuple[int, int]) -> None:
        future = self._models.pop(chain, None)
        if future is not None:
            future.release()

    def dispatch(self) -> None:
        """Nothing to do: units go to the scheduler as they are submitted."""

    def wait(self) -> list[tuple[Job, list[UnitOutcome]]]:
        done_jobs, self._ready = self._ready, []
        if done_jobs or not self._flights:
            return done_jobs
        for future in self._ac.next_batch(block=True):
            unit = self._flights.pop(str(future.key))
            self._futures.pop(str(future.key), None)
            try:
                outcome = future.result()
            except Exception as exc:  # the task itself died (its worker, beyond retries)
                outcome = _failure(unit.key, exc, 0.0)
                outcome.cacheable = False
                self._drop(unit.waiters[0])
            future.release()
            if outcome.continued_from is not None:
                self.n_units_continued += 1
            self._finish_unit(unit, outcome, done_jobs)
        self._flush_cache()
        return done_jobs

    def release(self, trial_ids: Sequence[int]) -> None:
        """Forget the models of trials that will not be trained again."""
        for tid in trial_ids:
            for fold in range(self.n_splits):
                self._drop((tid, fold))

    @property
    def trials_held(self) -> list[int]:
        return sorted({tid for tid, _ in self._models})

    def stats(self) -> dict[str, Any]:
        return {**super().stats(), "units_continued": self.n_units_continued}

    def cancel(self) -> None:
        models = list(self._models.values())
        self._models.clear()
        self._flights.clear()
        self._jobs.clear()
        if models:
            self.client.cancel(models)
        super().cancel()
