"""Racing over CV folds: a candidate runs fold by fold, and stops once it is shown to lose.

Any strategy (grid, random, Bayesian) supplies the candidates; :class:`Racing` evaluates each on its
first ``min_folds`` folds, then on twice as many, and so on up to every fold. After each stage the
candidate is compared with the *leader* of that stage: of the candidates that have run at least as
many folds, the one with the best mean on those same folds (a paired comparison: the same training
and test rows). It is dropped when a one-sided paired t-test says it scores lower with p below
``alpha``; otherwise it goes on. Leading on the first folds is enough to make others lose, so a race
does not wait for a candidate to run every fold before it drops anything. A
dropped candidate's results keep the folds it ran, the others are ``nan`` (as scikit-learn shows a
fold that did not give a score), so its ``mean_test_score`` is ``nan`` and it ranks last; the
search's ``cv_results_`` says how many folds each candidate ran (``n_folds_run``).

The inner strategy is told each candidate once it is finished: with its full result, or, for a
dropped candidate, with the mean of the folds it ran as its score (a Bayesian sampler learns that
the region is poor). Only candidates run on every fold can be ``best_*``.

Which leader a candidate meets can depend on the order results arrive in, so, as with ASHA, the
stage a candidate is dropped at may differ between runs on different clusters; a candidate that runs
every fold has the same scores whatever happened.

The same idea as SMAC's intensification and Optuna's ``WilcoxonPruner``, inside a drop-in SearchCV.
A t-test needs two pairs at least, so ``min_folds`` is at least 2; with 3 folds a candidate can only
be dropped before its third.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections import deque
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..exceptions import InvalidSearchError
from .base import Job, Result, Status

__all__ = ["Racing", "racing_settings"]

DEFAULTS = {"min_folds": 2, "alpha": 0.05}


def racing_settings(value: Any, n_splits: int | None = None) -> dict[str, Any] | None:
    """``racing=`` as its settings (None: no racing); refuses bad values with the fix."""
    if value is False or value is None:
        return None
    if value is True:
        settings = dict(DEFAULTS)
    elif isinstance(value, Mapping):
        unknown = sorted(set(value) - set(DEFAULTS))
        if unknown:
            raise InvalidSearchError(
                f"racing={dict(value)!r}: unknown setting(s) {unknown}; racing takes "
                f"{sorted(DEFAULTS)} (such as racing={{'alpha': 0.05, 'min_folds': 2}})."
            )
        settings = {**DEFAULTS, **value}
    else:
        raise InvalidSearchError(
            f"racing={value!r}: use True (race candidates over the folds with alpha=0.05, from 2 "
            "folds) or a mapping such as {'alpha': 0.01, 'min_folds': 3}, or False."
        )
    alpha, min_folds = settings["alpha"], settings["min_folds"]
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < 1:
        raise InvalidSearchError(
            f"racing alpha={alpha!r}: use a p-value threshold between 0 and 1 (0.05 drops a "
            "candidate once a paired t-test says it loses with 95% confidence)."
        )
    if isinstance(min_folds, bool) or not isinstance(min_folds, int) or min_folds < 2:
        raise InvalidSearchError(
            f"racing min_folds={min_folds!r}: use an integer >= 2 (a paired test needs two folds)."
        )
    if n_splits is not None and n_splits < 3:
        raise InvalidSearchError(
            f"racing needs at least 3 folds to drop anything before the last one, and cv gives "
            f"{n_splits}: use cv=5 (or more), or racing=False."
        )
    return {"alpha": float(alpha), "min_folds": int(min_folds)}


def loses(challenger: tuple[float, ...], leader: tuple[float, ...], alpha: float) -> bool:
    """Whether ``challenger``'s fold scores are lower than ``leader``'s on the same folds, by a
    one-sided paired t-test at level ``alpha``."""
    from scipy import stats

    a = np.asarray(challenger, dtype=float)
    b = np.asarray(leader[: len(a)], dtype=float)
    d = b - a
    if len(d) < 2 or not np.all(np.isfinite(d)) or d.mean() <= 0:
        return False
    if np.allclose(d, d[0], rtol=1e-9, atol=1e-12):  # the same margin on every fold: a sure loss
        return True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # near-equal margins: t is large anyway
        p = stats.ttest_rel(b, a, alternative="greater").pvalue
    return bool(math.isfinite(p) and p < alpha)


class Racing:
    """Wraps ``inner`` so its candidates race over ``n_splits`` folds (see the module docstring).

    Other capabilities of the inner strategy (``set_slots``, ``warm``, ``restore``, ...) are its
    own, reached through this object.
    """

    def __init__(
        self,
        inner: Any,
        n_splits: int,
        *,
        min_folds: int = 2,
        alpha: float = 0.05,
        metric: str | None = None,
    ) -> None:
        self.inner = inner
        self.n_splits = n_splits
        self.min_folds = min(min_folds, n_splits)
        self.alpha = alpha
        self.metric = metric
        self._queue: deque[Job] = deque()  # next stages of running candidates
        self._jobs: dict[int, Job] = {}  # trial -> the inner strategy's job
        # How many folds each stage but the last runs: min_folds, twice that, ... below n_splits.
        self._stages: list[int] = []
        k = self.min_folds
        while k < n_splits:
            self._stages.append(k)
            k *= 2
        # folds k -> (mean of the first k folds, those scores, trial) of the best trial that ran
        # at least k folds: what a trial that has run k folds races against.
        self._leader: dict[int, tuple[float, tuple[float, ...], int]] = {}
        self._open = 0  # candidates asked and not finished
        self.max_open = 4  # set from the cluster's slots (set_slots)
        self.n_dropped = 0
        self.n_fits_skipped = 0

    def __getattr__(self, name: str) -> Any:
        if name == "inner":  # not set yet (unpickling)
            raise AttributeError(name)
        return getattr(self.inner, name)

    # -- the Strategy protocol ----------------------------------------------------------------
    def ask(self, n: int) -> list[Job]:
        jobs: list[Job] = []
        while self._queue and len(jobs) < n:
            jobs.append(self._queue.popleft())
        # Few candidates open until one has a score, so that the others have a leader to race
        # against; then as many as the executor wants (short fits need many).
        room = n - len(jobs)
        if not self._leader:
            room = min(room, self.max_open - self._open)
        if room > 0:
            for job in self.inner.ask(room):
                if job.trial_id in self._jobs:  # already racing (told before, on a resume)
                    continue
                self._jobs[job.trial_id] = job
                self._open += 1
                jobs.append(self._staged(job, self.min_folds))
        return jobs

    def _staged(self, job: Job, folds: int) -> Job:
        return dataclasses.replace(job, folds=min(folds, self.n_splits))

    def tell(self, result: Result) -> None:
        tid = result.trial_id
        job = self._jobs.get(tid)
        if job is None:  # replayed before any ask: the inner strategy hands it out again later
            job = dataclasses.replace(result.job, folds=None)
            self._jobs[tid] = job
            self._open += 1
        ran = int(result.extra.get("folds_run", self.n_splits))
        scores = self._fold_scores(result)[:ran]
        if ran >= self.n_splits or result.failed:
            if not result.failed and math.isfinite(result.score):
                self._lead(tid, scores)
            self._finish(job, result, result.score)
            return
        leader = self._leader.get(ran)
        if leader is not None and leader[2] != tid and loses(scores, leader[1], self.alpha):
            self.n_dropped += 1
            self.n_fits_skipped += self.n_splits - ran
            self._finish(job, result, float(np.mean(scores)))
            return
        self._lead(tid, scores)
        self._queue.append(self._staged(job, min(2 * ran, self.n_splits)))

    def _lead(self, tid: int, scores: tuple[float, ...]) -> None:
        """Let a trial's fold scores lead every stage they cover where they are the best so far."""
        if not all(math.isfinite(v) for v in scores):
            return
        for k in self._stages:
            if k > len(scores):
                break
            mean = float(np.mean(scores[:k]))
            best = self._leader.get(k)
            if best is None or mean > best[0]:
                self._leader[k] = (mean, scores[:k], tid)

    def _fold_scores(self, result: Result) -> tuple[float, ...]:
        tests = result.test_scores
        if not tests:
            return ()
        name = (
            self.metric if self.metric is not None and self.metric in tests else next(iter(tests))
        )
        return tuple(float(v) for v in tests[name])

    def _finish(self, job: Job, result: Result, score: float) -> None:
        self._open -= 1
        told = dataclasses.replace(result, job=job, score=score)
        if not result.failed and not math.isfinite(score):
            told = dataclasses.replace(told, status=Status.FAILED)
        self.inner.tell(told)

    @property
    def done(self) -> bool:
        return not self._queue and self._open <= 0 and bool(self.inner.done)

    @property
    def n_planned(self) -> int | None:
        return None  # each candidate is one to log2(folds) evaluations

    def restore(self, trial_id: int, params: Mapping[str, Any]) -> Mapping[str, Any] | None:
        restored: Mapping[str, Any] | None = self.inner.restore(trial_id, params)
        return restored

    def signature(self) -> Any:
        return ["racing", self.min_folds, self.alpha, self.inner.signature()]

    def set_slots(self, n_slots: int) -> None:
        """Keep about two candidates per worker thread racing (each has one stage in flight)."""
        self.max_open = max(2, 2 * n_slots)
        if hasattr(self.inner, "set_slots"):
            self.inner.set_slots(n_slots)

    @property
    def stats(self) -> dict[str, Any]:
        own = {
            "candidates_raced_out": self.n_dropped,
            "fits_skipped_by_racing": self.n_fits_skipped,
        }
        inner = getattr(self.inner, "stats", None)
        return {**(dict(inner) if isinstance(inner, Mapping) else {}), **own}
