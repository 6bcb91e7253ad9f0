"""Executor for estimators that train across the cluster themselves (``xgboost.dask``, ``lightgbm.dask``).

One (candidate, fold) is one distributed fit: the client calls the estimator's ``fit`` on the dask
collections of the fold's training partitions, and the estimator spreads its work over the workers
that hold them. Such a fit keeps a thread busy on every worker it uses while it runs (the workers
train together), so at most ``n_parallel`` fits run at once, by default as many as the smallest
worker has threads: more would wait on each other for threads and could block for good.

Scoring computes the fitted model's predictions on the test partitions on the cluster and brings back
only the predictions and the test labels (one value, or one row of class probabilities, per row), so
no fold's X ever comes to the client; any scikit-learn scorer then scores them.
"""

from __future__ import annotations

import math
import time
import traceback
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from typing import Any

import numpy as np
from sklearn.base import clone

from ..strategies.base import Job
from .executor import _budget_into_params
from .tasks import UnitOutcome
from .work import DISTRIBUTED_MODULES, ClusterFitWork

__all__ = ["ClusterFitExecutor", "partition_folds"]


def partition_folds(n_parts: int, n_folds: int, seed: int) -> list[tuple[list[int], list[int]]]:
    """``n_folds`` folds of whole partitions: a seeded shuffle of the partitions, dealt in turn."""
    order = np.random.default_rng([seed, 7]).permutation(n_parts)
    tests = [sorted(int(i) for i in order[k::n_folds]) for k in range(n_folds)]
    return [([i for i in range(n_parts) if i not in set(t)], t) for t in tests]


def _parts(data: Any, idx: Sequence[int]) -> Any:
    """The partitions ``idx`` of a dask DataFrame, Series or array (row blocks), as one collection."""
    if data is None:
        return None
    if hasattr(data, "partitions"):
        return data.partitions[list(idx)]
    import dask.array as da

    blocks = [data.blocks[i] for i in idx]
    return blocks[0] if len(blocks) == 1 else da.concatenate(blocks)


def _bind(estimator: Any, client: Any) -> Any:
    """Point a distributed estimator (or a pipeline's last step) at the search's client."""
    final = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    if "client" in final.get_params(deep=False):  # lightgbm.dask
        final.set_params(client=client)
    elif isinstance(getattr(type(final), "client", None), property):  # xgboost.dask
        final.client = client
    return estimator


class _Predictions:
    """A fitted distributed estimator as scikit-learn's scorers see it: each prediction method runs
    on the cluster once for the fold's data and returns NumPy values (whatever X they are given)."""

    def __init__(self, estimator: Any, X: Any, client: Any) -> None:
        self._estimator = estimator
        self._X = X
        self._client = client
        self._cache: dict[str, Any] = {}
        for name in ("classes_", "n_features_in_", "feature_names_in_"):
            if hasattr(estimator, name):
                setattr(self, name, getattr(estimator, name))

    def __sklearn_tags__(self) -> Any:
        return self._estimator.__sklearn_tags__()

    def _values(self, method: str) -> Any:
        if method not in self._cache:
            out = getattr(self._estimator, method)(self._X)
            self._cache[method] = np.asarray(_computed(out, self._client))
        return self._cache[method]

    def predict(self, X: Any = None) -> Any:
        return self._values("predict")

    def predict_proba(self, X: Any = None) -> Any:
        return self._values("predict_proba")

    @property
    def decision_function(self) -> Any:
        # lightgbm.dask's classifiers inherit a decision_function that works on local data only:
        # offered only when the class defines it for dask collections (scorers then fall back).
        method = getattr(type(self._estimator), "decision_function", None)
        module = getattr(method, "__module__", "") or ""
        if method is None or not any(module.startswith(m) for m in DISTRIBUTED_MODULES):
            raise AttributeError("decision_function")
        return lambda X=None: self._values("decision_function")

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """The estimator's default score (accuracy or R^2, as scikit-learn's mixins define it),
        on the cluster's predictions."""
        from sklearn.base import is_classifier
        from sklearn.metrics import accuracy_score, r2_score

        metric = accuracy_score if is_classifier(self) else r2_score
        return float(metric(np.asarray(y), self.predict(), sample_weight=sample_weight))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name in ("decision_function", "predict_log_proba"):
            raise AttributeError(name)
        return getattr(self._estimator, name)


def _computed(value: Any, client: Any) -> Any:
    """A dask collection computed on the search's cluster (never by a local scheduler)."""
    return value.compute(scheduler=client) if hasattr(value, "compute") else value


def _labels(y: Any, client: Any) -> Any:
    return None if y is None else np.asarray(_computed(y, client))


@contextmanager
def _current(client: Any) -> Iterator[None]:
    """``client`` as the current one in this thread only: xgboost.dask asks distributed for "the"
    client even when given one. (``Client.as_current`` would also set dask's global scheduler
    config, which threads entering and leaving it at once would leave behind.)"""
    from distributed.client import _current_client

    token = _current_client.set(client)
    try:
        yield
    finally:
        _current_client.reset(token)


class ClusterFitExecutor:
    """Runs each (candidate, fold) as one distributed fit from a thread of the client process.

    Same interface as :class:`~daskhpo.execution.executor.DaskExecutor` for the loop.
    """

    def __init__(self, client: Any, work: ClusterFitWork, n_slots: int) -> None:
        self.client = client
        self.work = work
        threads = list(client.nthreads().values()) or [1]
        # Never more than the smallest worker has threads, whatever n_jobs says: each fit holds a
        # thread on every worker, and fits waiting on each other for threads would never finish.
        self.n_parallel = max(1, min(int(work.n_parallel or min(threads)), min(threads), n_slots))
        self._pool = ThreadPoolExecutor(self.n_parallel, thread_name_prefix="daskhpo-fit")
        self._queue: deque[tuple[Job, int]] = deque()
        self._running: dict[Future[UnitOutcome], tuple[Job, int]] = {}
        self._outcomes: dict[int, list[UnitOutcome | None]] = {}
        self._jobs: dict[int, Job] = {}
        self.n_fits = 0

    @property
    def n_splits(self) -> int:
        return len(self.work.folds)

    def room(self) -> int:
        # Ask for about as many jobs as can run now, so a strategy learns before it asks again.
        waiting = len(self._queue) + len(self._running)
        return max(0, math.ceil((2 * self.n_parallel - waiting) / self.n_splits))

    @property
    def busy(self) -> bool:
        return bool(self._queue or self._running)

    def submit(self, jobs: list[Job]) -> None:
        for job in jobs:
            self._jobs[job.trial_id] = job
            self._outcomes[job.trial_id] = [None] * self.n_splits
            self._queue.extend((job, fold) for fold in range(self.n_splits))

    def dispatch(self) -> None:
        while self._queue and len(self._running) < self.n_parallel:
            job, fold = self._queue.popleft()
            self._running[self._pool.submit(self._fit_fold, job, fold)] = (job, fold)
            self.n_fits += 1

    def _params(self, job: Job) -> dict[str, Any]:
        # The budget goes into its estimator parameter as it does for the DaskExecutor's units.
        into = _budget_into_params(self.work.budget_param)
        return dict(into(job) if into is not None else job.params)

    def _fitted(self, params: Mapping[str, Any], idx: Sequence[int]) -> tuple[Any, float]:
        w = self.work
        estimator = _bind(
            clone(w.estimator).set_params(**clone(dict(params), safe=False)), self.client
        )
        t0 = time.perf_counter()
        estimator.fit(_parts(w.X, idx), _parts(w.y, idx), **w.fit_params)
        return estimator, time.perf_counter() - t0

    def _fit_fold(self, job: Job, fold: int) -> UnitOutcome:
        with _current(self.client):
            return self._fit_and_score(job, fold)

    def _fit_and_score(self, job: Job, fold: int) -> UnitOutcome:
        w = self.work
        train, test = w.folds[fold]
        key = f"{job.trial_id}-{fold}"
        fit_time = 0.0
        try:
            estimator, fit_time = self._fitted(self._params(job), train)
            t0 = time.perf_counter()
            Xte = _parts(w.X, test)
            ytest = _labels(_parts(w.y, test), self.client)
            test_scores = w.scorer(_Predictions(estimator, Xte, self.client), Xte, ytest)
            train_scores = None
            if w.return_train_score:
                Xtr = _parts(w.X, train)
                train_scores = w.scorer(
                    _Predictions(estimator, Xtr, self.client),
                    Xtr,
                    _labels(_parts(w.y, train), self.client),
                )
            return UnitOutcome(key, test_scores, train_scores, fit_time, time.perf_counter() - t0)
        except Exception as exc:  # a fit or scoring error is the candidate's, as in scikit-learn
            text = "".join(traceback.format_exception(exc))
            return UnitOutcome(key, None, None, fit_time, 0.0, text, exc)

    def wait(self) -> list[tuple[Job, list[UnitOutcome]]]:
        if not self._running:
            return []
        done, _ = wait(list(self._running), return_when=FIRST_COMPLETED)
        finished: list[tuple[Job, list[UnitOutcome]]] = []
        for future in done:
            job, fold = self._running.pop(future)
            outcomes = self._outcomes[job.trial_id]
            outcomes[fold] = future.result()
            if all(o is not None for o in outcomes):
                del self._outcomes[job.trial_id]
                finished.append((self._jobs.pop(job.trial_id), [o for o in outcomes if o]))
        self.dispatch()
        return finished

    def release(self, trial_ids: Sequence[int]) -> None:
        """Nothing to free: each fit's model is dropped once it is scored."""

    def refit(
        self,
        params: Mapping[str, Any],
        *,
        trial_id: int | None = None,
        budget: Any = None,
        callback_leaf: Any = None,
    ) -> tuple[Any, float]:
        """A distributed fit of ``params`` on every partition (``params`` hold the budget already)."""
        n_parts = len(self.work.folds[0][0]) + len(self.work.folds[0][1])
        with _current(self.client):
            return self._fitted(params, list(range(n_parts)))

    def stats(self) -> dict[str, Any]:
        return {
            "tasks": self.n_fits,
            "units_computed": self.n_fits,
            "distributed_fits": self.n_fits,
            "fits_in_parallel": self.n_parallel,
        }

    def cancel(self) -> None:
        """Drop the fits not started; the ones running finish in the background (a distributed fit
        cannot be stopped half-way) and their results are ignored."""
        self._queue.clear()
        for future in list(self._running):
            future.cancel()
        self._running.clear()

    def close(self) -> None:
        self.cancel()
        self._pool.shutdown(wait=False, cancel_futures=True)
