"""Median stopping (Golovin et al. 2017, "Google Vizier: a service for black-box optimization", 3.2.2).

Every trial trains in steps of budget and is scored after each step; after each score it may be stopped
early. The rule implemented is Vizier's *median stopping rule*:

    trial ``t`` is stopped after its evaluation at step ``k`` (budget ``b_k``) when its **best** score
    over steps ``0..k`` is strictly lower than the **median of the running averages** over steps
    ``0..k`` of the other trials that reported a score at step ``k``.

A trial's running average up to step ``k`` is the mean of its scores at steps ``0..k``. Higher scores
are better. The rule applies only once ``b_k >= grace_budget`` and only when at least ``min_trials``
other trials have a (completed, not ``nan``) score at step ``k``; with fewer, the trial goes on. No
trial is judged at ``max_budget``: it has finished anyway. A failed result (:attr:`Status.FAILED` or a
``nan`` score) stops its trial at once. Ray Tune's ``MedianStoppingRule`` compares the same two
quantities; Vizier compares with the *completed* trials only, here every other trial that reached
``b_k`` counts (the search is asynchronous and most trials are still running).

There is no barrier: a trial is judged when its result is told, against whatever the other trials
reported at that step *so far*. So, as with :class:`~daskhpo.strategies.adaptive.ASHA`, which trials are
stopped depends on the order results arrive in (the number of workers and the timings); for a given
order of asks and tells every decision is deterministic, and replaying the stored results in the order
they were told into a fresh strategy rebuilds the same state (that is how a search resumes).
No dask import here.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from typing import Any

from ..exceptions import InvalidSearchError, InvalidSearchTypeError
from ..validation import check
from .adaptive import (
    Budget,
    CandidateSource,
    _budget,
    _check_bounds,
    _check_place,
    _distinct_cap,
    _frac,
    _is_int,
    _plain,
    _planned_budget,
    _rankable,
    _totals,
)
from .base import Job, Result

__all__ = ["MedianStopping"]

#: Why a trial will never be asked again (values of :attr:`MedianStopping.stopped`).
STOP_REASONS = ("median", "failed", "max_budget")


def _same_value(value: Any, stored: Any) -> bool:
    """Whether a stored JSON value can stand for ``value``: equal where JSON keeps the value itself
    (``None``, bools, numbers, also numpy scalars, and strings; ``nan`` equals ``nan``); any other value
    is stored as a repr or a list and is not compared."""
    if hasattr(value, "item") and getattr(value, "shape", None) == ():
        value = value.item()
    if isinstance(value, float) and isinstance(stored, float) and math.isnan(value):
        return math.isnan(stored)
    if value is None or isinstance(value, (bool, int, float, str)):
        return bool(value == stored)
    return True


class MedianStopping:
    """Median stopping rule (Vizier) over ``n_candidates`` trials trained step by step.

    Trial ``t``'s ``k``-th job (``rung=k``) has budget ``min(min_budget + k * step, max_budget)``, for
    ``k = 0 .. ceil((max_budget - min_budget) / step)``; budgets are ints when ``min_budget``, ``step``
    and ``max_budget`` are ints, floats otherwise, and they grow strictly up to ``max_budget`` itself.
    After each result the trial is stopped or continued as the module docstring says. ``Job.bracket``
    is 0.

    ``ask(n)`` returns up to ``n`` jobs: first the trials that were told their last step and go on, in
    trial-id order, then new candidates (trial ids in order) until ``n_candidates`` were started. So each
    worker tends to carry one trial to its end before the next starts, as in Vizier, and later trials
    are judged against the earlier ones. A trial is never asked again while one of its jobs is running.

    Candidates come from ``source``: all ``n_candidates`` are drawn when the strategy is built (trial
    ``i`` is the ``i``-th candidate), as :class:`~daskhpo.strategies.adaptive.Incremental` and
    :class:`~daskhpo.strategies.adaptive.ASHA` draw theirs. A source with a ``tell`` method is kept and
    told every new result (a result told twice is passed on once); a source without one is not kept.
    The strategy pickles when its source does.

    Which evaluations pick the best: those at the largest budget any trial reached (``max_budget`` once
    a trial completed; a trial stopped early ranked below the median when it stopped).

    ``n_planned`` and ``budget_planned`` are ``None``: how many steps are run depends on the scores.

    Parameters
    ----------
    source : RandomSource or ListSource
        Gives the candidates (``sample(n)``; ``tell(result)`` is called if the source has it).
    n_candidates : int
        Number of trials. Capped (with a warning) to the distinct candidates the source holds.
    max_budget : int or float
        The budget a trial that is never stopped ends with.
    min_budget : int or float, default=1
        Budget of every trial's first evaluation.
    step : int or float, optional
        Budget added between two evaluations of a trial (default: ``min_budget``, so the budgets are
        ``min_budget, 2 * min_budget, ...``).
    grace_budget : int or float, optional
        No trial is stopped at a budget below this one (default: ``min_budget``: every evaluation
        before ``max_budget`` may stop its trial).
    min_trials : int, default=3
        How many other trials must have a score at a budget before the median there can stop a trial.

    Attributes
    ----------
    budgets : list
        Budget of every step.

    Examples
    --------
    >>> from daskhpo.strategies import ListSource
    >>> s = MedianStopping(ListSource([{"alpha": a} for a in (0.1, 1.0)]), 2, max_budget=4, step=1)
    >>> s.budgets
    [1, 2, 3, 4]
    >>> [(j.trial_id, j.budget) for j in s.ask(4)]
    [(0, 1), (1, 1)]
    """

    def __init__(
        self,
        source: CandidateSource,
        n_candidates: int,
        max_budget: Budget,
        min_budget: Budget | None = 1,
        step: Budget | None = None,
        grace_budget: Budget | None = None,
        min_trials: int = 3,
    ) -> None:
        # Not isinstance(source, CandidateSource): a source without tell() is fine here.
        if not callable(getattr(source, "sample", None)) or not hasattr(source, "distinct_left"):
            raise InvalidSearchTypeError(
                f"source={source!r}: use a candidate source such as RandomSource(param_distributions, "
                "random_state) or ListSource(candidates) (an object with sample(n) and distinct_left)."
            )
        n = int(check("n_candidates", n_candidates, strict=True))
        min_budget, max_budget = _check_bounds(min_budget, max_budget)
        check("step", step)
        step = min_budget if step is None else step
        check("grace_budget", grace_budget)
        grace = min_budget if grace_budget is None else grace_budget
        if grace > max_budget:
            raise InvalidSearchError(
                f"grace_budget={grace_budget!r} is above max_budget={max_budget!r}, so no trial could "
                "ever be stopped: lower grace_budget (or use IncrementalSearchCV to train every "
                "candidate to max_budget)."
            )
        self.min_trials: int = int(check("min_trials", min_trials))
        self.min_budget: Budget = min_budget
        self.max_budget: Budget = max_budget
        self.step: Budget = step
        self.grace_budget: Budget = grace
        integral = _is_int(min_budget) and _is_int(step) and _is_int(max_budget)
        lo, hi, inc = _frac(min_budget), _frac(max_budget), _frac(step)
        n_steps = math.ceil((hi - lo) / inc) + 1
        self.budgets: list[Budget] = [
            _budget(min(lo + k * inc, hi), integral) for k in range(n_steps)
        ]
        self.n_candidates: int = _distinct_cap(source, n, "n_candidates")
        self._grace = _frac(grace)
        # Sources learn through tell(result); a source from before that method is not told.
        self._source: Any = source if callable(getattr(source, "tell", None)) else None
        self._params: dict[int, dict[str, Any]] = dict(enumerate(source.sample(self.n_candidates)))
        self._scores: dict[int, list[float]] = {}  # trial -> its scores, step by step
        self._averages: list[dict[int, float]] = [{} for _ in self.budgets]  # step -> running means
        self._failed: dict[int, int] = {}  # trial -> step of its failed result
        self._in_flight: dict[int, int] = {}
        self._stopped: dict[int, str] = {}
        self._stopped_at: dict[int, int] = {}
        self._next_new: int = 0
        self._n_checks: int = 0
        self._n_told: int = 0

    # -- the rule ------------------------------------------------------------------------------------
    def _judge(self, tid: int, k: int) -> str | None:
        """Why trial ``tid`` stops after its result at step ``k``, or ``None`` when it goes on."""
        if k == len(self.budgets) - 1:
            return "max_budget"
        if _frac(self.budgets[k]) < self._grace:
            return None
        others = [avg for t, avg in self._averages[k].items() if t != tid]
        if len(others) < self.min_trials:
            return None
        self._n_checks += 1
        return "median" if max(self._scores[tid]) < statistics.median(others) else None

    # -- Strategy protocol ---------------------------------------------------------------------------
    def _started(self, tid: int) -> bool:
        return tid in self._scores or tid in self._in_flight or tid in self._stopped

    def _next_step(self, tid: int) -> int:
        return len(self._scores.get(tid, ()))

    def _job(self, tid: int, k: int) -> Job:
        self._in_flight[tid] = k
        return Job(trial_id=tid, params=self._params[tid], budget=self.budgets[k], rung=k)

    def ask(self, n: int) -> list[Job]:
        """Continued trials first (trial-id order), then new candidates."""
        jobs: list[Job] = []
        for tid in sorted(self._scores):
            if len(jobs) >= n:
                break
            if tid not in self._stopped and tid not in self._in_flight:
                jobs.append(self._job(tid, self._next_step(tid)))
        while len(jobs) < n:
            while self._next_new < self.n_candidates and self._started(self._next_new):
                self._next_new += 1
            if self._next_new >= self.n_candidates:
                break
            jobs.append(self._job(self._next_new, 0))
            self._next_new += 1
        return jobs

    def tell(self, result: Result) -> None:
        """Record a result and stop or continue its trial (results told twice count once)."""
        tid, k = _check_place(
            result, 0 <= result.trial_id < self.n_candidates, self.n_candidates, len(self.budgets)
        )
        if self._in_flight.get(tid) == k:
            del self._in_flight[tid]
        if k < self._next_step(tid) or self._failed.get(tid) == k:
            return  # told twice: the first one counts
        if tid in self._stopped:
            raise ValueError(
                f"result for trial {tid} at rung {k}, but it stopped at rung "
                f"{self._stopped_at[tid]} ({self._stopped[tid]}): the result belongs to another "
                "search or was told out of order."
            )
        if k != self._next_step(tid):
            raise ValueError(
                f"result for trial {tid} at rung {k} before its rung {self._next_step(tid)}: tell "
                "every trial's results in the order they were asked."
            )
        self._n_told += 1
        if not _rankable(result):
            self._failed[tid] = k
            reason: str | None = "failed"
        else:
            scores = self._scores.setdefault(tid, [])
            scores.append(float(result.score))
            self._averages[k][tid] = math.fsum(scores) / len(scores)
            reason = self._judge(tid, k)
        if reason is not None:
            self._stopped[tid] = reason
            self._stopped_at[tid] = k
            self._in_flight.pop(tid, None)
        if self._source is not None:
            self._source.tell(result)

    @property
    def done(self) -> bool:
        return not self._in_flight and len(self._stopped) == self.n_candidates

    @property
    def n_planned(self) -> None:
        return None

    @property
    def budget_planned(self) -> None:
        return None

    def restore(self, trial_id: int, params: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """The candidate of stored trial ``trial_id``, or ``None`` when it is not one of this search's.

        The stored JSON ``params`` must have the candidate's parameter names and, wherever JSON keeps
        a value itself (numbers, strings, ``None``), its values.
        """
        own = self._params.get(int(trial_id))
        if own is None or set(own) != set(params):
            return None
        return own if all(_same_value(v, params[k]) for k, v in own.items()) else None

    def signature(self) -> Any:
        """The step budgets, the stopping rule and every candidate (its values themselves, in name
        order, so ``dask.base.tokenize`` hashes them as it hashes any parameter value)."""
        candidates = [sorted(self._params[t].items()) for t in range(self.n_candidates)]
        return [
            "MedianStopping",
            list(self.budgets),
            _plain(self.grace_budget),
            self.min_trials,
            candidates,
        ]

    # -- what the search estimator reads -------------------------------------------------------------
    def finished_trials(self) -> list[int]:
        """Trials that will never be asked again (their models can be released)."""
        return sorted(self._stopped)

    @property
    def stopped(self) -> dict[int, str]:
        """Finished trials with why: ``'median'`` (stopped early), ``'failed'`` or ``'max_budget'``."""
        return dict(self._stopped)

    def _spent(self) -> Budget:
        """Budget of every trial's last evaluation told (a model goes on from its previous step)."""
        spent: Budget = 0
        for tid in self._scores.keys() | self._failed.keys():
            spent += self.budgets[self._failed.get(tid, len(self._scores.get(tid, ())) - 1)]
        return spent

    @property
    def stats(self) -> dict[str, Any]:
        reasons = list(self._stopped.values())
        return {
            "trials_started": sum(1 for t in range(self.n_candidates) if self._started(t)),
            "trials_stopped_early": reasons.count("median"),
            "trials_failed": reasons.count("failed"),
            "trials_completed": reasons.count("max_budget"),
            "evaluations": self._n_told,
            "median_checks": self._n_checks,
            "budget_spent": self._spent(),
        }

    def metadata(self) -> dict[str, Any]:
        """Per-step counts, the trials stopped early (and where), the completed ones and the budget
        spent; JSON-serialisable. Planned counts are upper bounds (every trial to ``max_budget``)."""
        asked, told, failed = [], [], []
        for k in range(len(self.budgets)):
            n_scores = len(self._averages[k])
            n_failed = sum(1 for s in self._failed.values() if s == k)
            in_flight = sum(1 for s in self._in_flight.values() if s == k)
            told.append(n_scores + n_failed)
            failed.append(n_failed)
            asked.append(n_scores + n_failed + in_flight)
        planned = [self.n_candidates] * len(self.budgets)
        bracket = {
            "bracket": 0,
            "budgets": list(self.budgets),
            "planned_trials": planned,
            "asked_trials": asked,
            "told_trials": told,
            "failed_trials": failed,
            "planned_budget": _planned_budget(self.budgets, planned),
            "budget_spent": self._spent(),
            "planned_is_upper_bound": True,
        }
        finished = sorted(self._stopped.items())
        return {
            "strategy": "MedianStopping",
            "rule": "best score so far < median of the other trials' running averages at the budget",
            "min_trials": self.min_trials,
            "grace_budget": _plain(self.grace_budget),
            "step": _plain(self.step),
            "stopped_early": [
                {
                    "trial_id": t,
                    "budget": self.budgets[self._stopped_at[t]],
                    "rung": self._stopped_at[t],
                    "reason": why,
                }
                for t, why in finished
                if why != "max_budget"
            ],
            "completed": [t for t, why in finished if why == "max_budget"],
            "budget_spent": self._spent(),
            "brackets": [bracket],
            "totals": _totals([bracket], exact=False),
        }
