"""Executor for budgets counted in ``partial_fit`` calls: models live on the cluster between rungs.

A trial's model is a future. A job that raises a trial's budget from ``b0`` to ``b1`` runs ``b1 - b0``
``partial_fit`` calls, one per next training block of its fold, starting from the trial's previous model
(never from scratch), and then scores the model. A fold's training blocks are visited in a seeded
order that changes every epoch (a new permutation each time every block was seen once; step ``s`` of
every trial is the same block, whatever the number of workers), and in-memory data is cut into blocks
after a seeded shuffle of its rows (stratified by class for classifiers), so data sorted by label or
time still gives every block a fair sample. Blocks are either held on the cluster (futures computed
or scattered once) or, when the data is larger than the cluster's memory, small dask graphs each task
computes for itself, so no step ever gathers the array on one worker or on the client. How a job becomes
tasks depends on that:

- small held data: one task trains and scores (its result is the model and the score);
- larger held data: one task per call, each where its block is, then one task per validation block
  records the model's outputs and a last task scores them;
- streamed data: one task runs all the calls, reading each block itself; scoring as above.
"""

from __future__ import annotations

import math
import numbers
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from dask.base import is_dask_collection
from sklearn.base import is_classifier

from ..exceptions import InvalidSearchError
from ..strategies.base import Job
from .streaming import (
    Lazy,
    TrainOutcome,
    block_labels,
    combine_scores,
    model_of,
    predict_parts,
    train_and_score,
    train_steps,
)
from .tasks import UnitOutcome
from .work import StreamWork

__all__ = ["BlockPlan", "plan_blocks", "plan_labels", "StreamingExecutor"]

Block = tuple[Any, Any, Any]  # (X part, y part, rows or None)

# Jobs kept in flight per worker thread: each job is a short chain of tasks, so a few per thread keep
# the workers fed while the client collects results and asks for more.
ROOM_FACTOR = 4


@dataclass
class BlockPlan:
    """The blocks of a search and how the folds use them."""

    train: list[list[Block]]  # per fold, its training blocks in the order partial_fit visits them
    test: list[list[Block]]  # per fold, its validation blocks
    held: bool  # True: parts are futures on the cluster; False: lazy graphs computed by each task
    n_blocks: int
    nbytes: float | None
    futures: list[Any] = field(default_factory=list)
    # Small data (every worker could hold all of it): one task trains and scores an evaluation,
    # fetching whatever blocks its worker lacks. (Copies made up front would not last: the Active
    # Memory Manager drops extra replicas within seconds.)
    local: bool = False
    seed: int = 0  # of the per-epoch block orders
    _orders: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)

    @property
    def n_splits(self) -> int:
        return len(self.train)

    def order(self, fold: int, epoch: int, n: int) -> np.ndarray:
        """The order in which ``fold``'s ``n`` training blocks are visited in ``epoch`` (fold -1:
        every block, for the refit): a seeded permutation, a new one every epoch."""
        key = (fold, epoch)
        if key not in self._orders:
            rng = np.random.default_rng([self.seed, fold + 1, epoch])
            self._orders[key] = rng.permutation(n)
        return self._orders[key]

    def steps(
        self, fold: int, start: int, stop: int, blocks: Sequence[Block] | None = None
    ) -> list[Block]:
        """The blocks of ``partial_fit`` calls ``start`` to ``stop - 1`` of a trial on ``fold``
        (``blocks``: another list to visit, such as every block for the refit with ``fold=-1``)."""
        blocks = self.train[fold] if blocks is None else blocks
        n = len(blocks)
        out = []
        for step in range(start, stop):
            epoch, i = divmod(step, n)
            out.append(blocks[int(self.order(fold, epoch, n)[i])])
        return out

    def epochs(self, calls: float) -> float:
        """How many passes over its training blocks ``calls`` partial_fit calls make (on the fold
        with the fewest blocks, so the number is never too small)."""
        n = min(len(t) for t in self.train) if self.train else 1
        return float(calls) / max(1, n)


def _total_memory(client: Any) -> float:
    from ..cluster.options import workers_info

    limits = [w.get("memory_limit") or 0 for w in workers_info(client).values()]
    if not limits or any(lim == 0 for lim in limits):
        return math.inf
    return float(sum(limits))


def _n_workers(client: Any) -> int:
    return max(1, len(client.nthreads()))


def _dask_blocks(X: Any) -> tuple[list[Any], str]:
    """The row blocks of a dask array or DataFrame, as lazy one-block collections."""
    import dask

    if hasattr(X, "partitions"):  # DataFrame or Series
        return [dask.optimize(X.partitions[i])[0] for i in range(X.npartitions)], "frame"
    if X.ndim == 2 and len(X.chunks[1]) > 1:
        X = X.rechunk({1: -1})
    return [dask.optimize(X.blocks[i])[0] for i in range(X.numblocks[0])], "array"


def plan_blocks(
    client: Any,
    X: Any,
    y: Any,
    *,
    folds: Sequence[tuple[np.ndarray, np.ndarray]] | None,
    n_folds: int | None,
    test_size: float | None,
    chunk_size: int | None,
    persist: bool | str,
    random_state: int,
    stratify: bool = False,
) -> BlockPlan:
    """Cut the data into blocks and assign them to folds.

    In-memory data (``folds`` given, as row indices from a scikit-learn splitter) is scattered once in
    blocks of ``chunk_size`` rows; each fold selects its rows inside every block. A dask collection keeps
    its own chunks, and folds are made of whole blocks: ``test_size`` holds out a seeded random share of
    the blocks, ``n_folds`` splits the blocks into that many groups (so rows should be in random order
    across blocks, as they are for most data sets that were shuffled once when written).
    """
    if not is_dask_collection(X):
        assert folds is not None
        n = X.shape[0] if hasattr(X, "shape") else len(X)
        size = chunk_size or max(1, math.ceil(n / 10))
        starts = list(range(0, n, size))
        # Blocks of shuffled rows (stratified for classifiers): sorted data gives fair blocks.
        rows = row_order(n, y if stratify else None, random_state)
        position = np.empty(n, dtype=np.intp)
        position[rows] = np.arange(n)
        Xs, ys = _take(X, rows), None if y is None else _take(y, rows)
        parts_X = [_take(Xs, slice(s, s + size)) for s in starts]
        parts_y = [None if ys is None else _take(ys, slice(s, s + size)) for s in starts]
        nb = _nbytes(X)
        local = nb is not None and nb * _n_workers(client) <= 0.25 * _total_memory(client)
        fx = client.scatter(parts_X, hash=False, broadcast=local)
        fy = (
            [None] * len(starts)
            if y is None
            else client.scatter(parts_y, hash=False, broadcast=local)
        )

        def blocks_of(idx: np.ndarray) -> list[Block]:
            idx = np.sort(position[np.asarray(idx)])
            out: list[Block] = []
            for b, s in enumerate(starts):
                lo, hi = np.searchsorted(idx, [s, s + size])
                if hi > lo:
                    out.append((fx[b], fy[b], idx[lo:hi] - s))
            return out

        return BlockPlan(
            train=[blocks_of(tr) for tr, _ in folds],
            test=[blocks_of(te) for _, te in folds],
            held=True,
            local=local,
            n_blocks=len(starts),
            nbytes=nb,
            futures=[*fx, *(f for f in fy if f is not None)],
            seed=random_state,
        )

    xb, kind = _dask_blocks(X)
    if y is None:
        yb: list[Any] = [None] * len(xb)
    elif is_dask_collection(y):
        if kind == "array" and not hasattr(y, "partitions"):
            chunks = X.chunks[0]
            if not any(math.isnan(c) for c in chunks) and y.chunks[0] != chunks:
                y = y.rechunk({0: chunks})
        yb, _ = _dask_blocks(y)
    else:
        raise InvalidSearchError(
            "y is in memory while X is a dask collection: pass y as a dask array or Series with the "
            "same blocks as X (for example dask.array.from_array(y, chunks=X.chunks[0]))."
        )
    if len(yb) != len(xb):
        raise InvalidSearchError(
            f"X has {len(xb)} blocks but y has {len(yb)}: give y the same row blocks as X."
        )
    n_blocks = len(xb)
    nbytes = _nbytes(X)
    if persist == "auto":
        held = nbytes is not None and nbytes <= 0.5 * _total_memory(client)
    else:
        held = bool(persist)
    rng = np.random.RandomState(random_state)
    order = rng.permutation(n_blocks)
    if n_folds is not None:
        if n_folds > n_blocks:
            raise InvalidSearchError(
                f"cv={n_folds} folds of whole blocks need at least {n_folds} blocks; X has {n_blocks}: "
                "rechunk X into more row blocks or use fewer folds."
            )
        groups = [sorted(order[k::n_folds].tolist()) for k in range(n_folds)]
        fold_tests = groups
    else:
        assert test_size is not None
        n_test = max(1, int(round(test_size * n_blocks)))
        if n_test >= n_blocks:
            raise InvalidSearchError(
                f"test_size={test_size} leaves no training block out of X's {n_blocks} blocks: rechunk "
                "X into more row blocks or lower test_size."
            )
        fold_tests = [sorted(order[:n_test].tolist())]
    futures: list[Any] = []
    if held:
        futures_x = client.compute(xb)
        futures_y = [None] * n_blocks if y is None else client.compute(yb)
        futures = [*futures_x, *(f for f in futures_y if f is not None)]
        # Small enough for every worker to hold all of it: one task per job, which fetches the blocks
        # its worker lacks. No replicate() up front: the workers would idle while it copies, and the
        # Active Memory Manager drops the extra copies again within seconds anyway.
        local = nbytes is not None and nbytes * _n_workers(client) <= 0.25 * _total_memory(client)
        parts = [(futures_x[b], futures_y[b], None) for b in range(n_blocks)]
    else:
        local = False
        parts = [
            (Lazy(xb[b]), None if yb[b] is None else Lazy(yb[b]), None) for b in range(n_blocks)
        ]
    train = [[parts[b] for b in range(n_blocks) if b not in set(test)] for test in fold_tests]
    test_blocks = [[parts[b] for b in test] for test in fold_tests]
    return BlockPlan(train, test_blocks, held, n_blocks, nbytes, futures, local, seed=random_state)


def row_order(n: int, y: Any, seed: int) -> np.ndarray:
    """A seeded shuffle of ``n`` rows; with labels ``y``, stratified: each class's rows are spread
    evenly over the order, so every stretch of it has about the class shares of the whole."""
    rng = np.random.default_rng([seed, 0])
    labels = None if y is None else np.asarray(y)
    if labels is None or labels.ndim != 1:
        return rng.permutation(n)
    rank = np.empty(n)
    for label in np.unique(labels):
        idx = np.flatnonzero(labels == label)
        rng.shuffle(idx)
        rank[idx] = (np.arange(len(idx)) + rng.random()) / len(idx)
    return np.argsort(rank, kind="stable")


def _take(data: Any, rows: Any) -> Any:
    """Rows of an array, sparse matrix, DataFrame, Series or list by position."""
    from sklearn.utils import _safe_indexing

    return _safe_indexing(data, rows)


def plan_labels(client: Any, plan: BlockPlan) -> np.ndarray:
    """The sorted distinct labels of y, one task per block (no block travels to the client)."""
    blocks = {id(b[1]): b for fold in (*plan.train, *plan.test) for b in fold}.values()
    futures = [client.submit(block_labels, b, pure=False) for b in blocks]
    labels = client.gather(futures)
    return np.unique(np.concatenate([np.asarray(v) for v in labels]))


def _nbytes(X: Any) -> float | None:
    try:
        value = getattr(X, "nbytes", None)
    except NotImplementedError:  # dask DataFrames: unknown until computed
        return None
    if isinstance(value, numbers.Real) and not math.isnan(float(value)):
        return float(value)
    return None


@dataclass
class _Flight:
    job: Job
    scores: list[Any]  # one future per fold
    outcomes: list[UnitOutcome | None]


class StreamingExecutor:
    """Runs jobs whose budget is a number of ``partial_fit`` calls (see the module docstring).

    Same interface as :class:`~daskhpo.execution.executor.DaskExecutor` for the tuner: ``room``,
    ``submit``, ``dispatch``, ``busy``, ``wait``, ``cancel``.
    """

    def __init__(
        self,
        client: Any,
        plan: BlockPlan,
        estimator: Any,
        scorer: Any,
        *,
        fit_params: Mapping[str, Any] | None = None,
        classes: Any = None,
        n_slots: int = 1,
        budget_of: Callable[[Job], int] | None = None,
    ) -> None:
        self.client = client
        self.plan = plan
        self.run_id = uuid.uuid4().hex[:12]
        self.n_slots = max(1, n_slots)
        self.fit_params = dict(fit_params or {})
        self.budget_of = budget_of or (lambda job: int(round(float(job.budget or 0))))
        # The (unfitted) estimator and the scorer are small: they travel with each task, so nothing
        # is lost with a worker that dies.
        self._estimator = estimator
        self._scorer = scorer
        self._classes = classes
        self._models: dict[tuple[int, int], Any] = {}  # (trial, fold) -> future of a TrainOutcome
        self._budgets: dict[int, int] = {}
        self._flights: dict[str, tuple[_Flight, int]] = {}  # score future key -> (flight, fold)
        self._n_jobs_in_flight = 0
        from distributed import as_completed

        self._ac = as_completed(loop=client.loop)
        self._counter = 0
        self.n_partial_fit_calls = 0
        self.n_tasks = 0

    @classmethod
    def for_work(cls, client: Any, work: StreamWork, n_slots: int) -> StreamingExecutor:
        """Cut ``work``'s data into blocks (held on the cluster or streamed); an executor over them."""
        plan = plan_blocks(
            client,
            work.X,
            work.y,
            folds=work.folds,
            n_folds=work.n_folds,
            test_size=work.test_size,
            chunk_size=work.chunk_size,
            persist=work.persist,
            random_state=work.seed,
            stratify=work.y is not None and is_classifier(work.estimator),
        )
        classes = work.classes
        if classes is None and work.y is not None and is_classifier(work.estimator):
            # partial_fit needs every label up front: read them block by block on the cluster.
            classes = plan_labels(client, plan)
        return cls(
            client,
            plan,
            work.estimator,
            work.scorer,
            fit_params=work.fit_params,
            classes=classes,
            n_slots=n_slots,
        )

    @property
    def n_splits(self) -> int:
        return self.plan.n_splits

    @property
    def classes(self) -> Any:
        return self._classes

    def _key(self, kind: str) -> str:
        self._counter += 1
        return f"daskhpo-{kind}-{self.run_id}-{self._counter}"

    def room(self) -> int:
        per_job = self.plan.n_splits
        want = max(1, math.ceil(ROOM_FACTOR * self.n_slots / per_job))
        return max(0, want - self._n_jobs_in_flight)

    @property
    def busy(self) -> bool:
        return self._n_jobs_in_flight > 0

    def submit(self, jobs: list[Job]) -> None:
        for job in jobs:
            target = self.budget_of(job)
            start = self._budgets.get(job.trial_id, 0)
            if target < start:
                raise ValueError(
                    f"trial {job.trial_id} asked for budget {target} after reaching {start}"
                )
            flight = _Flight(job, [], [None] * self.plan.n_splits)
            for fold in range(self.plan.n_splits):
                model = self._models.get((job.trial_id, fold))
                steps = self.plan.steps(fold, start, target)
                test = self.plan.test[fold]
                old = model
                if self.plan.local:
                    # Small data: one task trains and scores, and its result (the model with its
                    # score) is both the trial's model and what the search waits for.
                    model = score = self.client.submit(
                        train_and_score,
                        model,
                        self._estimator,
                        dict(job.params),
                        steps,
                        self.fit_params,
                        self._classes,
                        test,
                        self._scorer,
                        key=self._key("train-score"),
                    )
                    self.n_tasks += 1
                else:
                    # Blocks read by the task itself: one task runs all the calls. Blocks spread
                    # over workers: one task per call, each where its block is.
                    grouped = not self.plan.held
                    for group in [steps] if grouped and steps else [[b] for b in steps]:
                        model = self.client.submit(
                            train_steps,
                            model,
                            self._estimator,
                            dict(job.params),
                            group,
                            self.fit_params,
                            self._classes,
                            key=self._key("partial-fit"),
                        )
                        self.n_tasks += 1
                    parts = [
                        self.client.submit(predict_parts, model, [b], key=self._key("predict"))
                        for b in test
                    ]
                    score = self.client.submit(
                        combine_scores, model, parts, self._scorer, key=self._key("score")
                    )
                    self.n_tasks += len(parts) + 1
                self.n_partial_fit_calls += len(steps)
                self._models[(job.trial_id, fold)] = model
                if old is not None and old is not model:
                    old.release()
                flight.scores.append(score)
                self._flights[score.key] = (flight, fold)
                self._ac.add(score)
            self._budgets[job.trial_id] = target
            self._n_jobs_in_flight += 1

    def dispatch(self) -> None:
        """Nothing to do: jobs go to the scheduler as they are submitted (their chains order them)."""

    def wait(self) -> list[tuple[Job, list[UnitOutcome]]]:
        if not self._flights:
            return []
        done: list[tuple[Job, list[UnitOutcome]]] = []
        for future in self._ac.next_batch(block=True):
            flight, fold = self._flights.pop(future.key)
            try:
                value = future.result()
                if isinstance(value, TrainOutcome):  # trained and scored in one task
                    assert value.scored is not None
                    value = value.scored
                scores, fit_time, score_time, error, exc = value
            except Exception as task_exc:
                import traceback

                scores, fit_time, score_time, exc = None, 0.0, 0.0, task_exc
                error = (
                    "daskhpo: a partial_fit or scoring task failed beyond distributed's retries "
                    f"({type(task_exc).__name__}); a fit that kills its worker process looks like "
                    "this.\n" + "".join(traceback.format_exception(task_exc))
                )
            if self._models.get((flight.job.trial_id, fold)) is not future:
                future.release()  # a score alone; a model stays held for the trial's next rung
            flight.outcomes[fold] = UnitOutcome(
                f"{flight.job.trial_id}-{fold}", scores, None, fit_time, score_time, error, exc
            )
            if all(o is not None for o in flight.outcomes):
                self._n_jobs_in_flight -= 1
                done.append((flight.job, [o for o in flight.outcomes if o is not None]))
        return done

    def model(self, trial_id: int, params: Mapping[str, Any], budget: int, fold: int = 0) -> Any:
        """The fitted model of a trial, fetched from the cluster; trained again on the same blocks
        (giving the same model) if it was released or lost."""
        future = self._models.get((trial_id, fold))
        if self._budgets.get(trial_id) != budget:
            future = None  # trained on since (the best evaluation was at an earlier rung)
        if future is None:
            future = self.client.submit(
                train_steps,
                None,
                self._estimator,
                dict(params),
                self.plan.steps(fold, 0, budget),
                self.fit_params,
                self._classes,
                key=self._key("partial-fit"),
            )
        trained = self.client.submit(model_of, future, key=self._key("model")).result()
        if trained is None:
            raise RuntimeError(f"the model of trial {trial_id} could not be trained again")
        return trained

    def release(self, trial_ids: Sequence[int]) -> None:
        """Forget the models of trials that will never be trained again."""
        for tid in trial_ids:
            for fold in range(self.plan.n_splits):
                future = self._models.pop((tid, fold), None)
                if future is not None:
                    future.release()

    def refit(
        self,
        params: Mapping[str, Any],
        *,
        trial_id: int | None = None,
        budget: Any = None,
        callback_leaf: Any = None,
    ) -> tuple[Any, float]:
        """The chosen trial's model: with one fold, the model that was scored (fetched, or trained
        again on the same blocks if it was released); with several, a fresh model trained for
        ``budget`` calls over every block. Returns it with the seconds it took."""
        import time

        t0 = time.perf_counter()
        calls = int(round(float(budget or 0)))
        if calls < 1:
            raise InvalidSearchError(
                f"the best trial ({trial_id}) has budget {budget!r}: nothing to refit with"
            )
        if self.plan.n_splits == 1 and trial_id is not None:
            return self.model(trial_id, params, calls), time.perf_counter() - t0
        seen: dict[int, Any] = {}
        for fold in (*self.plan.train, *self.plan.test):
            for b in fold:
                seen.setdefault(id(b[0]), b)
        blocks = [(b[0], b[1], None) for b in seen.values()]
        model = None
        for block in self.plan.steps(-1, 0, calls, blocks):
            model = self.client.submit(
                train_steps,
                model,
                self._estimator,
                dict(params),
                [block],
                self.fit_params,
                self._classes,
                pure=False,
            )
        assert model is not None
        trained = model.result()
        if trained.error is not None:
            raise RuntimeError(f"refitting the best candidate failed:\n{trained.error}")
        return trained.model, time.perf_counter() - t0

    def stats(self) -> dict[str, Any]:
        return {
            "tasks": self.n_tasks,
            "partial_fit_calls": self.n_partial_fit_calls,
            "blocks": self.plan.n_blocks,
            "train_blocks_per_fold": [len(t) for t in self.plan.train],
            "blocks_held": self.plan.held,
            "blocks_local": self.plan.local,
        }

    @property
    def trials_held(self) -> list[int]:
        return sorted({tid for tid, _ in self._models})

    def cancel(self) -> None:
        """Cancel the jobs in flight (their trials' models go too); finished trials' models stay."""
        in_flight = {id(f): f for f, _ in self._flights.values()}
        futures = []
        for flight in in_flight.values():
            futures.extend(flight.scores)
            for fold in range(self.plan.n_splits):
                model = self._models.pop((flight.job.trial_id, fold), None)
                if model is not None:
                    futures.append(model)
        if futures:
            self.client.cancel(futures)
        self._flights.clear()
        self._n_jobs_in_flight = 0
        self._ac.clear()

    def close(self) -> None:
        """Release every model and every block held for the search."""
        self.cancel()
        self.release([tid for tid, _ in list(self._models)])
        for future in self.plan.futures:
            future.release()
        self.plan.futures = []
