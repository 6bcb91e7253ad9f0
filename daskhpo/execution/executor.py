"""Turns jobs into dask tasks on a ``distributed.Client``: the only module that imports distributed.

Each job (one candidate) expands into one *unit* per fold. Units get a deterministic key from the
search context and their params and fold, so a unit asked twice is computed once. Units are packed into
batches whose size adapts to the measured cost of a unit (tiny fits share a task, so scheduler overhead
stays small; slow fits stay one per task, so the cluster balances the load). For pipelines, the leading
steps are fitted once per (fold, leading-step params) as their own task and every candidate that shares
them fits only its final step.

With a ``trial_timeout``, every task runs one unit (and no prefix is shared), the workers are asked
about once a second how long each of this search's tasks has been running, and a unit running longer
than the limit is recorded as failed; its worker process is restarted through its nanny to free the
slot (a thread cannot be stopped), and this search's other units that were on that worker run again.
"""

from __future__ import annotations

import math
import time
import uuid
import warnings
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dask.base import tokenize
from distributed import Client, Future, as_completed

from ..reuse import KEY_VERSION, ReusePolicy, random_sources
from ..store import plain_value
from ..strategies.base import Job
from .tasks import (
    SAMPLES_KEY,
    Batch,
    SearchContext,
    UnitOutcome,
    fit_prefix,
    refit,
    run_units,
)
from .timeouts import CALL_TIMEOUT, RESTART_WAIT, WorkerRestart, running_for
from .work import CrossValWork

__all__ = ["DaskExecutor", "UnitKeys", "params_token", "prime_cache", "unit_context_of"]


def params_token(params: Mapping[str, Any]) -> str:
    """A deterministic token of a parameter dict, whatever the order of its keys."""
    return tokenize(sorted(params.items(), key=lambda kv: kv[0]))


#: Tasks are made long enough that a cluster of any size finishes about this many a second (see
#: ``DaskExecutor``'s ``target_task_seconds``).
TASKS_PER_SECOND = 32

#: How many finished units a run keeps for equal units asked again (see ``DaskExecutor._remember``);
#: about 300 bytes each.
FINISHED_KEPT = 50_000


@dataclass
class _Unit:
    key: str
    params: Mapping[str, Any]
    fold: int
    prefix_key: str | None
    waiters: list[tuple[int, int]] = field(default_factory=list)
    attempts: int = 0
    solo_failures: int = 0
    content_key: str | None = None  # its key in the store's unit cache (None: not stored)
    deterministic: bool = True


def _context_token(content: Any, folds: Sequence[tuple[Any, Any]]) -> str:
    return str(tokenize(KEY_VERSION, content, [(tr, te) for tr, te in folds]))


def unit_context_of(work: Any) -> str | None:
    """A token of everything a search's units depend on but their candidates (data, folds,
    estimator, scoring, settings, versions); None for work that keeps no unit cache."""
    content = getattr(work, "content", None)
    if not isinstance(work, CrossValWork) or content is None:
        return None
    return _context_token(content, work.folds)


class UnitKeys:
    """Content keys of a search's units in the store's unit cache, and what may be taken from it.

    Parameters
    ----------
    cache : UnitCache
        The store's unit cache.
    policy : ReusePolicy
    content : plain data
        Everything the units' scores depend on but their candidate and fold (CrossValWork.content).
    folds : list of (train, test) index arrays
    estimator : estimator
        The search's estimator, to tell deterministic candidates from others.
    versions : dict
        Package versions (already part of ``content``), stored with each unit for pruning.
    """

    def __init__(
        self,
        cache: Any,
        policy: ReusePolicy,
        content: Any,
        folds: Sequence[tuple[Any, Any]],
        estimator: Any,
        versions: Mapping[str, str],
    ) -> None:
        self.cache = cache
        self.policy = policy
        self.estimator = estimator
        self.versions = dict(versions)
        self.context = _context_token(content, folds)
        self.fold_tokens = [tokenize(KEY_VERSION, content, tr, te) for tr, te in folds]
        self._deterministic: dict[str, bool] = {}

    def key(self, job_token: str, fold: int) -> str:
        return tokenize(self.fold_tokens[fold], job_token)

    def deterministic(self, job_token: str, params: Mapping[str, Any]) -> bool:
        known = self._deterministic.get(job_token)
        if known is None:
            public = {k: v for k, v in params.items() if not str(k).startswith("__daskhpo")}
            known = not random_sources(self.estimator, public)
            self._deterministic[job_token] = known
        return known

    def row(self, unit: _Unit, outcome: UnitOutcome) -> dict[str, Any]:
        """The cache row of a unit just computed."""
        return {
            "key": unit.content_key,
            "context": self.context,
            "status": "ok" if outcome.error is None else "failed",
            "deterministic": unit.deterministic,
            "versions": self.versions,
            "search": self.policy.search,
            "data": {
                "params": plain_value(dict(unit.params)),
                "fold": unit.fold,
                "test_scores": outcome.test_scores,
                "train_scores": outcome.train_scores,
                "fit_time": outcome.fit_time,
                "score_time": outcome.score_time,
                "error": outcome.error,
            },
        }

    @staticmethod
    def outcome(key: str, row: Mapping[str, Any]) -> UnitOutcome:
        """A stored unit as the outcome of the unit ``key`` of this run."""
        d = row["data"]
        return UnitOutcome(
            key,
            _scores(d["test_scores"]),
            _scores(d["train_scores"]),
            float(d["fit_time"]),
            float(d["score_time"]),
            d.get("error"),
        )


class _PrimedCache:
    """The trials of the fit being extended, as cache rows, in front of the store's unit cache."""

    def __init__(self, rows: dict[str, dict[str, Any]], behind: Any) -> None:
        self.rows = rows
        self.behind = behind

    def units_get(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        found = {k: self.rows[k] for k in keys if k in self.rows}
        rest = [k for k in keys if k not in found]
        if rest and self.behind is not None:
            found.update(self.behind.units_get(rest))
        return found

    def units_put(self, rows: list[dict[str, Any]]) -> None:
        if self.behind is not None:
            self.behind.units_put(rows)


def prime_cache(
    carried: Sequence[Any],
    candidates: Sequence[Mapping[str, Any]],
    work: CrossValWork,
    policy: ReusePolicy,
    behind: Any,
) -> Any:
    """A unit cache that also holds the per-fold results of ``carried`` (the trials of the fit
    being extended, with JSON params) for those of ``candidates`` they match, whatever
    ``policy`` says of determinism: they are this search's own results."""
    import json

    by_params = {json.dumps(plain_value(dict(c)), sort_keys=True): c for c in candidates}
    keys = UnitKeys(None, policy, work.content, work.folds, work.estimator, work.versions)
    rows: dict[str, dict[str, Any]] = {}
    for result in carried:
        real = by_params.get(json.dumps(plain_value(dict(result.job.params)), sort_keys=True))
        if real is None:
            continue
        job_token = params_token(real)
        for fold in range(len(work.folds)):
            test = {k: v[fold] for k, v in result.test_scores.items()}
            train = (
                None
                if result.train_scores is None
                else {k: v[fold] for k, v in result.train_scores.items()}
            )
            error = result.errors[fold] if fold < len(result.errors) else None
            one = list(test) == ["score"]
            rows[keys.key(job_token, fold)] = {
                "status": "ok" if error is None else "failed",
                "deterministic": True,
                "data": {
                    "test_scores": test["score"] if one else test,
                    "train_scores": None if train is None else (train["score"] if one else train),
                    "fit_time": result.fit_times[fold],
                    "score_time": result.score_times[fold],
                    "error": error,
                },
            }
    return _PrimedCache(rows, behind)


def _scores(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, Mapping):
        return {k: float("nan") if v is None else float(v) for k, v in value.items()}
    return float(value)


@dataclass
class _JobState:
    job: Job
    outcomes: list[UnitOutcome | None]

    @property
    def complete(self) -> bool:
        return all(o is not None for o in self.outcomes)


class DaskExecutor:
    """Submits units of work for jobs and hands back each job once all its folds are done.

    Parameters
    ----------
    client : distributed.Client
    context : distributed.Future
        The :class:`~daskhpo.execution.tasks.SearchContext` already on the cluster.
    context_token : str
        A deterministic token of that context (data, estimator, scoring, folds).
    n_splits : int
        Number of folds each job is evaluated on.
    prefix_params : callable, optional
        For a pipeline, maps a candidate's params to the params that affect its leading steps (or
        ``None`` when the candidate cannot share them). Enables prefix sharing.
    prefix_demand : mapping, optional
        For each :func:`params_token` of leading-step params, how many distinct candidates use it. A
        shared prefix is then kept until all of them are done with a fold, even when they are asked at
        different times; without it, a prefix is released as soon as no queued unit needs it.
    n_slots : int
        How many tasks the cluster runs at once (total worker threads).
    target_task_seconds : float, optional
        Batches are sized so a task runs about this long once unit costs are known. By default
        1 s, and ``n_slots / 32`` s beyond 32 slots, so that the driver and the scheduler handle at
        most about 32 finished tasks a second however large the cluster. 1 s: on the digits grid
        (3,528 fits of about 6 ms) on a plain 2-worker LocalCluster, interleaved runs took a median
        12.62 s at 0.5 s, 12.28 s at 1 s and 12.15 s at 2 s; larger tasks coarsen progress and lose
        more work to a dead worker, for less gain. At 64 slots of 0.1 s fits (``benchmarks/scale.py``,
        three interleaved runs each on an idle machine), 1 s tasks kept 0.90-0.92 of the slots busy
        at 0.46-0.51 ms of driver+scheduler CPU a unit, 2 s tasks 0.89-0.92 at 0.33-0.37 ms.
    job_params : callable, optional
        Maps a job to the parameters its units run with (by default ``job.params``): adaptive searches
        add the job's budget to them.
    remake_context : callable, optional
        Sends the context to the cluster again. Scattered data cannot be recomputed, so when every
        worker that held it has died, this is how the search carries on.
    trial_timeout : float, optional
        Seconds one unit (one candidate on one fold) may run. A unit running longer is recorded as
        failed with a text saying it timed out, and the worker process running it is restarted (its
        nanny starts a fresh one) to free the slot; other units of this search that were on that
        worker run again and are not counted as failures. Units then run one per task and pipeline
        prefixes are not shared, so a timeout names exactly one candidate. None: no limit.
    share_units : bool
        Compute a (candidate, fold) unit once for every job with the same parameters (the default).
    unit_keys : UnitKeys, optional
        The store's unit cache: units found there are not computed, and computed ones are added.
    """

    def __init__(
        self,
        client: Client,
        context: Future,
        context_token: str,
        n_splits: int,
        *,
        prefix_params: Callable[[Mapping[str, Any]], dict[str, Any] | None] | None = None,
        prefix_demand: Mapping[str, int] | None = None,
        n_slots: int = 1,
        target_task_seconds: float | None = None,
        max_batch: int = 256,
        remake_context: Callable[[], Future] | None = None,
        job_params: Callable[[Job], Mapping[str, Any]] | None = None,
        trial_timeout: float | None = None,
        share_units: bool = True,
        unit_keys: UnitKeys | None = None,
    ) -> None:
        self.client = client
        # Dask keys carry a per-run prefix: reusing a key that an earlier (maybe cancelled) search is
        # still releasing races on the scheduler. Unit keys, which decide what is shared, stay deterministic.
        self.run_id = uuid.uuid4().hex[:12]
        self.context = context
        self.context_token = context_token
        self.n_splits = n_splits
        self.prefix_params = prefix_params
        self.prefix_demand = prefix_demand
        self.remake_context = remake_context
        self.job_params = job_params
        self._prefix_specs: dict[str, tuple[dict[str, Any] | None, int]] = {}
        self.n_context_resends = 0
        self.n_slots = max(1, n_slots)
        self.max_in_flight = 2 * self.n_slots
        self.target_task_seconds = (
            max(1.0, max(1, n_slots) / TASKS_PER_SECOND)
            if target_task_seconds is None
            else target_task_seconds
        )
        self.max_batch = max_batch
        self.trial_timeout = trial_timeout
        self.share_units = share_units
        self._poll_every = 1.0
        if trial_timeout is not None:
            self.max_batch = 1
            self.prefix_params = None
            self._poll_every = min(1.0, max(0.05, trial_timeout / 4))
        self._next_poll = 0.0
        # Workers being restarted after a timeout (by address), with the units parked until then.
        self._restarting: dict[str, WorkerRestart] = {}
        self.n_units_timed_out = 0
        self.n_worker_restarts = 0

        self._jobs: dict[int, _JobState] = {}
        self._units: dict[str, _Unit] = {}  # submitted or pending, not finished
        self._finished: dict[str, UnitOutcome] = {}
        self._pending: OrderedDict[str | None, deque[_Unit]] = OrderedDict()
        self._n_pending = 0
        # Units of a task that died (its worker was lost beyond distributed's retries) run again alone.
        self._solo: deque[_Unit] = deque()
        self.n_units_retried = 0
        self._solo_keys: set[str] = set()
        self._task_context: dict[str, str] = {}
        self.max_solo_failures = 2
        self._done_at_resend = 0
        self._prefix_futures: dict[str, Future] = {}
        self._prefix_refs: dict[str, int] = {}
        self._tasks: dict[str, list[_Unit]] = {}
        self._futures: dict[str, Future] = {}
        self._ac = as_completed(loop=client.loop)
        self._ready: list[tuple[Job, list[UnitOutcome]]] = []
        self._unit_seconds: float | None = None
        self.n_tasks = 0
        self.n_units_computed = 0
        self.n_units_shared = 0
        self.n_prefix_tasks = 0
        # Without sharing (callbacks watch every fit), nothing is taken from or given to the cache.
        self.unit_keys = unit_keys if share_units else None
        self.n_units_reused = 0
        self._to_cache: list[dict[str, Any]] = []
        self._prefix_skipped: dict[str, int] = {}  # demand met from the cache before the prefix ran

    @classmethod
    def for_work(cls, client: Client, work: CrossValWork, n_slots: int) -> DaskExecutor:
        """Ship ``work``'s data, folds, estimator and scorers to the cluster once; an executor over it."""
        from dask.base import is_dask_collection

        dask_x = is_dask_collection(work.X)
        ctx = SearchContext.from_work(work, with_data=not dask_x)

        def send_context() -> Future:
            scattered = client.scatter(ctx, broadcast=True, hash=False)
            if not dask_x:
                return scattered
            # The dask collection is computed on the cluster, never on this machine.
            return client.submit(_attach_data, scattered, client.compute(work.X), pure=False)

        unit_keys = None
        if work.reuse is not None and work.content is not None:
            cache, policy = work.reuse
            unit_keys = UnitKeys(
                cache, policy, work.content, work.folds, work.estimator, work.versions
            )
        return cls(
            client,
            send_context(),
            work.token,
            len(work.folds),
            # Callbacks propagate to the whole estimator of every fit: no shared pipeline prefixes.
            prefix_params=work.prefix_params if work.callback_parent is None else None,
            prefix_demand=work.prefix_demand,
            n_slots=n_slots,
            remake_context=send_context,
            job_params=_budget_into_params(work.budget_param),
            trial_timeout=work.trial_timeout,
            # Callbacks on the workers see every (candidate, fold) fit, as in scikit-learn.
            share_units=work.callback_parent is None,
            unit_keys=unit_keys,
        )

    # -- sizing -------------------------------------------------------------------------------
    def _ideal_batch(self) -> int:
        if self._unit_seconds is None:
            return 1
        return max(
            1, min(self.max_batch, int(self.target_task_seconds / max(self._unit_seconds, 1e-6)))
        )

    def _batch_size(self) -> int:
        # Never pack more than an even share of what is waiting, so that every slot gets work.
        share = math.ceil(self._n_pending / self.n_slots) if self._n_pending else 1
        return max(1, min(self._ideal_batch(), share))

    def room(self) -> int:
        """How many more jobs the executor would like buffered now."""
        want_units = 2 * self.max_in_flight * self._ideal_batch()
        missing = want_units - self._n_pending
        return max(0, math.ceil(missing / self.n_splits))

    @property
    def busy(self) -> bool:
        return (
            bool(self._futures)
            or self._n_pending > 0
            or bool(self._ready)
            or any(r.parked for r in self._restarting.values())
        )

    # -- submission -----------------------------------------------------------------------------
    def submit(self, jobs: list[Job]) -> None:
        """Queue the units of ``jobs`` (a job whose every unit was already computed is ready at once)."""
        planned = [self._plan(job) for job in jobs]
        reused = self._from_cache(planned) if self.unit_keys is not None else {}
        for job, params, job_token, keys in planned:
            n_folds = self._n_folds(job)
            state = _JobState(job, [None] * n_folds)
            self._jobs[job.trial_id] = state
            prefix = self.prefix_params(params) if self.prefix_params else None
            ptoken = params_token(prefix) if prefix is not None else None
            for fold, key in enumerate(keys[:n_folds]):
                if key in reused:
                    state.outcomes[fold] = outcome = reused.pop(key)
                    self._remember(key, outcome)
                    self.n_units_reused += 1
                    if ptoken is not None and self.prefix_demand:
                        self._prefix_not_needed(
                            tokenize(self.context_token, "prefix", ptoken, fold)
                        )
                    continue
                if key in self._finished:
                    state.outcomes[fold] = self._finished[key]
                    self.n_units_shared += 1
                    continue
                if key in self._units:
                    self._units[key].waiters.append((job.trial_id, fold))
                    self.n_units_shared += 1
                    continue
                prefix_key = None
                if ptoken is not None:
                    prefix_key = tokenize(self.context_token, "prefix", ptoken, fold)
                    self._hold_prefix(prefix_key, ptoken, prefix, fold)
                unit = _Unit(key, params, fold, prefix_key, [(job.trial_id, fold)])
                if self.unit_keys is not None:
                    unit.content_key = self.unit_keys.key(job_token, fold)
                    unit.deterministic = self.unit_keys.deterministic(job_token, params)
                self._units[key] = unit
                self._pending.setdefault(prefix_key, deque()).append(unit)
                self._n_pending += 1
            if state.complete:
                del self._jobs[job.trial_id]
                self._ready.append((job, [o for o in state.outcomes if o is not None]))

    def _remember(self, key: str, outcome: UnitOutcome) -> None:
        """Keep a finished unit for equal units asked later (a racing stage's first folds, a
        duplicate candidate), the latest ``FINISHED_KEPT`` of them: a million-unit grid must not
        hold every outcome on the driver. A unit forgotten is computed again (or read from the
        store's cache), never wrong."""
        finished = self._finished
        finished[key] = outcome
        if len(finished) > FINISHED_KEPT:
            del finished[next(iter(finished))]  # the oldest (dicts keep insertion order)

    def _n_folds(self, job: Job) -> int:
        """How many folds ``job`` runs: its first ``job.folds`` (racing), or all of them."""
        return self.n_splits if job.folds is None else min(job.folds, self.n_splits)

    def _plan(self, job: Job) -> tuple[Job, Mapping[str, Any], str, list[str]]:
        """A job with the params its units run with, its params token and its units' keys."""
        params = self.job_params(job) if self.job_params else job.params
        job_token = params_token(params)
        # Without sharing (callbacks watch every fit), equal candidates get keys of their own.
        job_token = job_token if self.share_units else tokenize(job_token, job.trial_id)
        # job_token is already a token of the params: the unit key only needs the fold added.
        keys = [f"{job_token}-{fold}" for fold in range(self.n_splits)]
        return job, params, job_token, keys

    def _from_cache(
        self, planned: list[tuple[Job, Mapping[str, Any], str, list[str]]]
    ) -> dict[str, UnitOutcome]:
        """The outcomes the store's unit cache holds for units of the ``planned`` jobs not known
        here yet, by this run's unit key (one query for the whole call)."""
        keys = self.unit_keys
        assert keys is not None
        if not keys.policy.reads:
            return {}
        wanted: dict[str, str] = {}  # content key -> unit key
        for job, _, job_token, unit_keys in planned:
            for fold, key in enumerate(unit_keys[: self._n_folds(job)]):
                if key not in self._finished and key not in self._units:
                    wanted[keys.key(job_token, fold)] = key
        if not wanted:
            return {}
        rows = keys.cache.units_get(list(wanted))
        return {
            wanted[ckey]: keys.outcome(wanted[ckey], row)
            for ckey, row in rows.items()
            if keys.policy.may_use(row)
        }

    def _hold_prefix(
        self, prefix_key: str, ptoken: str, prefix: dict[str, Any] | None, fold: int
    ) -> None:
        """Count one more unit that needs this shared prefix; fit it if it is not on its way yet."""
        demand = self.prefix_demand.get(ptoken) if self.prefix_demand else None
        if demand is not None:
            self._prefix_refs.setdefault(
                prefix_key, demand - self._prefix_skipped.pop(prefix_key, 0)
            )
        else:
            self._prefix_refs[prefix_key] = self._prefix_refs.get(prefix_key, 0) + 1
        if prefix_key not in self._prefix_futures:
            self._prefix_specs[prefix_key] = (prefix, fold)
            self._submit_prefix(prefix_key)

    def _prefix_not_needed(self, prefix_key: str) -> None:
        """One unit counted in a shared prefix's demand came from the unit cache: the prefix is
        released once the others are done (or never fitted, when none of them needs it)."""
        if prefix_key not in self._prefix_refs:
            self._prefix_skipped[prefix_key] = self._prefix_skipped.get(prefix_key, 0) + 1
            return
        self._prefix_refs[prefix_key] -= 1
        if self._prefix_refs[prefix_key] == 0:
            del self._prefix_refs[prefix_key]
            self._prefix_futures.pop(prefix_key).release()

    def _submit_prefix(self, prefix_key: str) -> None:
        prefix, fold = self._prefix_specs[prefix_key]
        self._prefix_futures[prefix_key] = self.client.submit(
            fit_prefix,
            self.context,
            prefix,
            fold,
            key=f"daskhpo-prefix-{self.run_id}-{prefix_key}-{self.n_context_resends}",
        )
        self.n_prefix_tasks += 1

    def _in_flight_limit(self) -> int:
        # While units suspected of killing their worker run again, queue nothing behind them: a task
        # waiting on a worker that dies is charged with its death too.
        if self._solo or self._solo_keys:
            return 1
        return self.max_in_flight

    def _may_resend(self) -> bool:
        # Re-sending is bounded by progress: a few times for free, then only after some unit finished
        # since the last time, so a cluster that keeps losing the data cannot loop forever.
        return self.n_context_resends < 3 or self.n_units_computed > self._done_at_resend

    def _context_lost(self, force: bool = False) -> bool:
        """True when no worker holds the context any more (it was re-sent if that is possible).

        ``force`` re-sends it anyway: after a cancellation for lost dependencies, the scheduler may
        still list a worker that is going away as holding it.
        """
        if self.remake_context is None:
            return False
        if not force and self.context.status == "finished":
            try:
                if self.client.who_has([self.context]).get(self.context.key):
                    return False
            except Exception:  # the scheduler already forgot it
                pass
        if not self._may_resend():
            return False
        for attempt in range(3):
            self.client.wait_for_workers(1, timeout=120)
            try:
                self.context = self.remake_context()
                break
            except (TimeoutError, OSError):  # the workers went away while it was being sent
                if attempt == 2:
                    raise
        self.n_context_resends += 1
        self._done_at_resend = self.n_units_computed
        for prefix_key in list(self._prefix_futures):
            self._submit_prefix(prefix_key)
        return True

    def dispatch(self) -> None:
        """Submit batches while fewer than ``max_in_flight`` tasks are on the cluster."""
        made: list[tuple[str, list[_Unit], list[Any], bool]] = []
        while self._n_pending and len(self._futures) + len(made) < self._in_flight_limit():
            from_solo = bool(self._solo)
            if from_solo:
                batch = [self._solo.popleft()]
                prefix_key = batch[0].prefix_key
            else:
                size = self._batch_size()
                prefix_key, queue = next(iter(self._pending.items()))
                batch = [queue.popleft() for _ in range(min(size, len(queue)))]
                if not queue:
                    del self._pending[prefix_key]
            self._n_pending -= len(batch)
            for unit in batch:
                unit.attempts += 1
            units: list[tuple[Any, ...]] = [(u.key, dict(u.params), u.fold) for u in batch]
            if not self.share_units:  # callbacks on the workers name each fit by its trial
                units = [(u.key, dict(u.params), u.fold, u.waiters[0][0]) for u in batch]
            # Every submission gets a key of its own: a unit that runs again must not reuse the key of
            # the task that just failed, which the scheduler may still be releasing.
            key = f"daskhpo-fit-{self.run_id}-{self.n_tasks + len(made)}-" + tokenize(
                [u.key for u in batch]
            )
            args: list[Any] = [self.context, Batch(units)]
            if prefix_key is not None:
                args.append(self._prefix_futures[prefix_key])
            made.append((key, batch, args, from_solo))
        self._submit_tasks(made)

    def _submit_tasks(self, made: list[tuple[str, list[_Unit], list[Any], bool]]) -> None:
        """Submit the tasks ``dispatch`` made, in one graph per argument shape: one message to the
        scheduler instead of one per task (``Client.submit`` per task cost the driver about a tenth
        of its CPU with 64 slots of 0.1 s fits)."""
        shapes: dict[int, list[tuple[str, list[_Unit], list[Any], bool]]] = {}
        for task in made:
            shapes.setdefault(len(task[2]), []).append(task)
        for tasks in shapes.values():
            columns = [list(column) for column in zip(*(t[2] for t in tasks), strict=True)]
            futures = self.client.map(run_units, *columns, key=[t[0] for t in tasks], pure=False)
            for (key, batch, _, from_solo), future in zip(tasks, futures, strict=True):
                if from_solo:
                    self._solo_keys.add(key)
                self._tasks[key] = batch
                self._task_context[key] = str(self.context.key)
                self._futures[key] = future
                self._ac.add(future)
                self.n_tasks += 1

    # -- completion -------------------------------------------------------------------------------
    def wait(self) -> list[tuple[Job, list[UnitOutcome]]]:
        """Block until at least one task finishes; return the jobs whose every fold is now done."""
        done_jobs, self._ready = self._ready, []
        if done_jobs or not (self._futures or any(r.parked for r in self._restarting.values())):
            return done_jobs
        if self.trial_timeout is None:
            finished = self._ac.next_batch(block=True)
        else:
            finished = self._next_batch_watching(done_jobs)
        finished = [f for f in finished if f.key in self._tasks]  # others: timed out, handled
        values = self._gather(finished)
        for future in finished:
            batch = self._tasks.pop(future.key)
            del self._futures[future.key]
            self._solo_keys.discard(future.key)
            used = self._task_context.pop(future.key, None)
            if future.key in values:
                outcomes: list[UnitOutcome] | None = list(values[future.key])
            else:
                outcomes = self._collect(future, batch, stale=used != str(self.context.key))
            future.release()
            if outcomes is None:
                continue
            self._observe(outcomes)
            for unit, outcome in zip(batch, outcomes, strict=True):
                self._finish_unit(unit, outcome, done_jobs)
        self._flush_cache()
        return done_jobs

    def _gather(self, futures: list[Future]) -> dict[Any, Any]:
        """The results of the tasks among ``futures`` that succeeded, fetched in one call (one
        request per worker rather than one per task: with 64 slots of 0.1 s fits, fetching each
        task's result by itself was a fifth of the driver's CPU). Anything else, or a fetch that
        fails (a worker lost its copy), goes through :meth:`_collect` one by one."""
        ok = [f for f in futures if f.status == "finished"]
        if len(ok) < 2:
            return {}
        try:
            values = self.client.gather(ok)
        except Exception:
            return {}
        return {str(f.key): v for f, v in zip(ok, values, strict=True)}

    def _flush_cache(self) -> None:
        """Store the units computed since the last call (one transaction for all of them)."""
        if self._to_cache and self.unit_keys is not None:
            rows, self._to_cache = self._to_cache, []
            self.unit_keys.cache.units_put(rows)

    def _collect(
        self, future: Future, batch: list[_Unit], stale: bool = False
    ) -> list[UnitOutcome] | None:
        """The outcomes of a finished task; None when its units were queued to run again alone.

        ``stale`` says the task ran against a context that has since been re-sent.
        """
        try:
            return list(future.result())
        except Exception as exc:
            # The task itself failed: its worker died more often than distributed retries (a unit that
            # crashes the process, say), or its output could not travel. Fit errors never get here.
            from distributed.client import FutureCancelledError

            # A cancelled task lost a dependency (the data, a shared prefix): never the units' fault.
            cancelled = isinstance(exc, FutureCancelledError)
            if stale or self._context_lost(force=cancelled):
                for unit in batch:
                    unit.attempts -= 1  # not the units' fault: the data they need had to be re-sent
                self._requeue_alone(batch)
                return None
            if len(batch) > 1:
                self._requeue_alone(batch)
                self.n_units_retried += len(batch)
                return None
            batch[0].solo_failures += 1
            if batch[0].solo_failures < self.max_solo_failures:
                self._requeue_alone(batch)
                self.n_units_retried += 1
                return None
            import traceback

            text = (
                f"daskhpo: the task running this candidate failed after {batch[0].attempts} "
                f"attempt(s) and distributed's own retries ({type(exc).__name__}); a fit that kills "
                "its worker process (a crash in native code, os._exit, running out of memory) "
                "looks like this.\n" + "".join(traceback.format_exception(exc))
            )
            return [
                UnitOutcome(u.key, None, None, 0.0, 0.0, text, exc, cacheable=False) for u in batch
            ]

    # -- trial timeouts ------------------------------------------------------------------------------
    def _next_batch_watching(self, done_jobs: list[tuple[Job, list[UnitOutcome]]]) -> list[Future]:
        """Wait for finished tasks while watching running ones; return early on a timeout.

        Returns the finished futures, or nothing when units timed out (their jobs are in
        ``done_jobs``) or a restarted worker is back (its parked units are queued again).
        """
        condition = getattr(self._ac, "thread_condition", None)
        while True:
            if self._ac.has_ready():
                return list(self._ac.next_batch(block=False))
            if self._release_restarted():
                return []
            if not self._futures:  # only units parked behind a restart: wait for it
                time.sleep(0.05)
                continue
            if time.monotonic() >= self._next_poll:
                self._check_timeouts(done_jobs)
                self._next_poll = time.monotonic() + self._poll_every
                if done_jobs:
                    return []
            pause = max(0.0, min(0.1, self._next_poll - time.monotonic()))
            if condition is None:
                time.sleep(min(pause, 0.01))
            else:
                with condition:
                    if not self._ac.has_ready():
                        condition.wait(timeout=pause)

    def _check_timeouts(self, done_jobs: list[tuple[Job, list[UnitOutcome]]]) -> None:
        if self.trial_timeout is None:
            return
        prefix = f"daskhpo-fit-{self.run_id}-"
        try:
            reports = self.client.run(
                running_for, prefix, on_error="return", callback_timeout=CALL_TIMEOUT
            )
        except Exception:  # a worker did not answer in time: try again at the next poll
            return
        limit = self.trial_timeout
        for address, running in reports.items():
            if not isinstance(running, dict):  # that worker failed to answer
                continue
            overdue = {
                key: seconds
                for key, seconds in running.items()
                if seconds > limit and key in self._futures and not self._futures[key].done()
            }
            if overdue:
                self._time_out(address, overdue, done_jobs)

    def _time_out(
        self,
        address: str,
        overdue: dict[str, float],
        done_jobs: list[tuple[Job, list[UnitOutcome]]],
    ) -> None:
        """Record the units of the ``overdue`` tasks as timed out; restart the worker running them.

        ``overdue`` maps task keys to the seconds they have been running on worker ``address``.
        """
        limit = self.trial_timeout
        # Cancel first: a task on a worker that goes away would otherwise be run again elsewhere.
        self.client.cancel([self._futures[k] for k in overdue])
        # This search's other tasks on that worker would be moved by the scheduler and counted as
        # suspects of its death; cancel them too and run them again once the worker is back.
        try:
            on_worker = set(self.client.processing([address]).get(address, ()))
        except Exception:
            on_worker = set()
        innocents = [k for k in on_worker if k in self._futures and k not in overdue]
        if innocents:
            self.client.cancel([self._futures[k] for k in innocents])
        parked: list[_Unit] = []
        for k in [*overdue, *innocents]:
            del self._futures[k]
            self._task_context.pop(k, None)
            self._solo_keys.discard(k)
            units = self._tasks.pop(k)
            if k in innocents:
                for unit in units:
                    unit.attempts -= 1  # not their fault
                parked.extend(units)
                continue
            for unit in units:
                seconds = overdue[k]
                text = (
                    f"TimeoutError: daskhpo: this fit timed out after {limit:g} s (trial_timeout="
                    f"{limit!r}; it had been running {seconds:.1f} s on fold {unit.fold}) and was "
                    f"stopped: its worker process {address} was restarted to free the slot. Raise "
                    "trial_timeout, or set it to None, to let such fits finish."
                )
                outcome = UnitOutcome(
                    unit.key, None, None, seconds, 0.0, text, TimeoutError(text), cacheable=False
                )
                self.n_units_timed_out += 1
                self._finish_unit(unit, outcome, done_jobs)
        self.n_units_retried += len(parked)
        if address in self._restarting:  # already on its way down
            self._restarting[address].parked.extend(parked)
        else:
            self._restarting[address] = WorkerRestart(self.client, address, parked)
            self.n_worker_restarts += 1

    def _release_restarted(self) -> bool:
        """Queue again the units parked behind restarts that are over; True if any came back."""
        released = False
        for restart in list(self._restarting.values()):
            if restart.back.is_set() and restart.parked:
                units, restart.parked = restart.parked, []
                by_prefix: dict[str | None, list[_Unit]] = {}
                for unit in units:
                    by_prefix.setdefault(unit.prefix_key, []).append(unit)
                for prefix_key, group in by_prefix.items():
                    queue = self._pending.setdefault(prefix_key, deque())
                    queue.extendleft(reversed(group))
                    self._pending.move_to_end(prefix_key, last=False)
                    self._n_pending += len(group)
                released = True
            if restart.back.is_set() and restart.error:
                warnings.warn(restart.error, RuntimeWarning, stacklevel=2)
                restart.error = None
            if restart.back.is_set() and restart.evacuate_error:
                warnings.warn(
                    f"daskhpo: worker {restart.address} was restarted to stop a fit past "
                    f"trial_timeout, but the data only it held could not be copied to another "
                    f"worker first ({restart.evacuate_error}): data scattered to it alone is lost, "
                    "and results only it held are computed again.",
                    RuntimeWarning,
                    stacklevel=2,
                )
                restart.evacuate_error = None
        if released:
            self._context_lost()  # the restarted worker may have held the last copy of the data
        return released

    def _join_restarts(self) -> None:
        deadline = time.monotonic() + RESTART_WAIT
        for restart in self._restarting.values():
            restart.join(max(0.0, deadline - time.monotonic()))
            if restart.error:
                warnings.warn(restart.error, RuntimeWarning, stacklevel=2)
        self._restarting.clear()

    def _requeue_alone(self, units: list[_Unit]) -> None:
        self._solo.extend(units)
        self._n_pending += len(units)

    def _observe(self, outcomes: list[UnitOutcome]) -> None:
        timed = [o.fit_time + o.score_time for o in outcomes if o.error is None]
        if not timed:
            return
        per_unit = sum(timed) / len(timed)
        if self._unit_seconds is None:
            self._unit_seconds = per_unit
        else:
            self._unit_seconds = 0.7 * self._unit_seconds + 0.3 * per_unit

    def _finish_unit(
        self, unit: _Unit, outcome: UnitOutcome, done_jobs: list[tuple[Job, list[UnitOutcome]]]
    ) -> None:
        self.n_units_computed += 1
        self._units.pop(unit.key, None)
        if self.unit_keys is not None and unit.content_key is not None and outcome.cacheable:
            self._to_cache.append(self.unit_keys.row(unit, outcome))
        if outcome.error is None:
            self._remember(unit.key, outcome)
        if unit.prefix_key is not None:
            self._prefix_refs[unit.prefix_key] -= 1
            if self._prefix_refs[unit.prefix_key] == 0:
                del self._prefix_refs[unit.prefix_key]
                self._prefix_futures.pop(unit.prefix_key).release()
        for trial_id, fold in unit.waiters:
            state = self._jobs[trial_id]
            state.outcomes[fold] = outcome
            if state.complete:
                del self._jobs[trial_id]
                done_jobs.append((state.job, [o for o in state.outcomes if o is not None]))

    # -- the rest of the Executor protocol ---------------------------------------------------------
    def release(self, trial_ids: Sequence[int]) -> None:
        """Nothing to free: units are fitted from scratch and keep no model on the cluster."""

    def refit(
        self,
        params: Mapping[str, Any],
        *,
        trial_id: int | None = None,
        budget: Any = None,
        callback_leaf: Any = None,
    ) -> tuple[Any, float]:
        """Fit ``params`` on all the data, on the cluster where the data is; (estimator, seconds).

        ``params`` already hold what the budget set (an estimator parameter); a budget counted in
        samples refits on every sample, as scikit-learn's halving searches do. ``callback_leaf``: the
        refit's scikit-learn callback context, which the estimator's own callbacks join.
        """
        from distributed.client import FutureCancelledError

        for attempt in range(3):
            # Re-send the data if every worker holding it has died (always, after a cancellation).
            self._context_lost(force=attempt > 0)
            try:
                estimator, seconds = self.client.submit(
                    refit, self.context, dict(params), callback_leaf, pure=False
                ).result()
                return estimator, float(seconds)
            except FutureCancelledError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def stats(self) -> dict[str, Any]:
        return {
            "tasks": self.n_tasks,
            "units_computed": self.n_units_computed,
            "units_reused": self.n_units_reused,
            "units_shared": self.n_units_shared,
            "prefix_tasks": self.n_prefix_tasks,
            "units_retried": self.n_units_retried,
            "units_timed_out": self.n_units_timed_out,
        }

    def close(self) -> None:
        """Cancel what is in flight and free the data held for the search."""
        self.cancel()
        self.context.release()

    def cancel(self) -> None:
        """Cancel everything in flight and forget what is pending (on error or interrupt)."""
        try:  # what was computed stays computed, for the next search
            self._flush_cache()
        except Exception as exc:  # noqa: BLE001 - the error that stops the search matters more
            warnings.warn(f"daskhpo: could not store the last computed fits: {exc}", stacklevel=2)
        futures = list(self._futures.values()) + list(self._prefix_futures.values())
        if futures:
            self.client.cancel(futures)
        self._futures.clear()
        self._tasks.clear()
        self._prefix_futures.clear()
        self._prefix_refs.clear()
        self._pending.clear()
        self._solo.clear()
        self._solo_keys.clear()
        self._task_context.clear()
        self._n_pending = 0
        self._ready.clear()
        self._ac.clear()
        # Give back a cluster with all its workers: wait for those stopped by a timeout.
        self._join_restarts()


def _attach_data(ctx: SearchContext, X: Any) -> SearchContext:
    ctx.X = X
    return ctx


def _budget_into_params(budget_param: str | None) -> Callable[[Job], Mapping[str, Any]] | None:
    """How a job's budget reaches its units: as a sample count, an estimator parameter, or not."""
    if budget_param is None or budget_param == "partial_fit":
        return None
    if budget_param == "n_samples":
        return _SamplesInto()
    return _ParamInto(budget_param)


class _SamplesInto:
    def __call__(self, job: Job) -> Mapping[str, Any]:
        return {**job.params, SAMPLES_KEY: int(job.budget or 0)}


@dataclass
class _ParamInto:
    name: str

    def __call__(self, job: Job) -> Mapping[str, Any]:
        budget = float(job.budget or 0)
        return {**job.params, self.name: int(budget) if budget.is_integer() else budget}
