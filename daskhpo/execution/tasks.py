"""Functions that run on the workers. They import scikit-learn, never distributed.

The data, folds, estimator and scorers travel once, as one :class:`SearchContext` kept on the cluster;
each task then receives only a small list of units: ``(unit key, params, fold index)``.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dask
import numpy as np
from distributed.protocol import pickle as dask_pickle
from sklearn.base import clone
from sklearn.utils import _safe_indexing, get_tags
from sklearn.utils.metaestimators import _safe_split

from .binning import shared_bins
from .work import CrossValWork

__all__ = [
    "SearchContext",
    "UnitOutcome",
    "PrefixOutcome",
    "make_context",
    "run_units",
    "Batch",
    "fit_prefix",
    "refit",
    "SAMPLES_KEY",
]

# A job's parameters carry its budget under this key when the budget is a number of training samples:
# the fold is then subsampled to that size before fitting (no estimator parameter has this name).
SAMPLES_KEY = "__daskhpo_n_samples__"


@dataclass
class SearchContext:
    """Everything the tasks of one search share, shipped to the workers once."""

    X: Any
    y: Any
    folds: list[tuple[np.ndarray, np.ndarray]]
    estimator: Any
    scorer: Any
    fit_params: dict[str, Any] = field(default_factory=dict)
    score_params: dict[str, Any] = field(default_factory=dict)
    return_train_score: bool = False
    # With a shared pipeline prefix, score the final step on the already transformed test fold (exactly
    # what Pipeline.predict computes). Off for custom scoring callables, which may look at the pipeline.
    score_transformed: bool = True
    # Seed for the row subsamples of budgets counted in training samples (see ``fold_indices``).
    subsample_seed: Any = None
    # A scoring failure scores error_score with a warning, as in scikit-learn ("raise": the fit fails).
    error_score: Any = "raise"
    # scikit-learn's configuration on the client when fit was called (sklearn.get_config()): metadata
    # routing, transform_output and the rest apply on the workers as they would in the user's process.
    config: dict[str, Any] | None = None
    # scikit-learn callbacks (1.9+) that the fitted estimators inherit, as a detached copy of the
    # search's callback context (see daskhpo.callbacks); None without auto-propagated callbacks.
    callback_parent: Any = None
    # HistGradientBoosting fits on a fold share their binned training data (daskhpo.execution.binning);
    # the dask config daskhpo.share-bins of the process that calls fit.
    share_bins: bool = True

    @classmethod
    def from_work(cls, work: CrossValWork, *, with_data: bool = True) -> SearchContext:
        """The context of ``work``; ``with_data=False`` leaves ``X`` out (a dask collection that is
        computed on the cluster and attached there)."""
        return cls(
            X=work.X if with_data else None,
            y=work.y,
            folds=work.folds,
            estimator=work.estimator,
            scorer=work.scorer,
            fit_params=dict(work.fit_params),
            score_params=dict(work.score_params),
            return_train_score=work.return_train_score,
            score_transformed=work.score_transformed,
            subsample_seed=work.subsample_seed,
            error_score=work.error_score,
            config=work.config,
            callback_parent=work.callback_parent,
            share_bins=bool(dask.config.get("daskhpo.share-bins", True)),
        )

    def realign(self) -> None:
        """Fix unaligned arrays in place (see :func:`_aligned`); cheap once done."""
        if getattr(self, "_realigned", False):
            return
        self.X, self.y = _aligned(self.X), _aligned(self.y)
        self.folds = [(_aligned(tr), _aligned(te)) for tr, te in self.folds]
        self._realigned = True

    @property
    def n_samples(self) -> int:
        return _num_samples(self.X)

    def fold_indices(self, fold: int, n_samples: int | None = None) -> tuple[Any, Any]:
        """Train and test row indices of a fold; with ``n_samples``, the subsample of both sides that
        scikit-learn's successive halving uses for a budget of that many samples (the same fraction of
        each side, drawn without replacement with ``subsample_seed``)."""
        train, test = self.folds[fold]
        if n_samples is None:
            return train, test
        from sklearn.utils import resample

        fraction = n_samples / self.n_samples
        return tuple(
            resample(
                idx,
                replace=False,
                random_state=self.subsample_seed,
                n_samples=int(fraction * len(idx)),
            )
            for idx in (train, test)
        )

    def split(
        self,
        fold: int,
        estimator: Any,
        cache: dict[Any, Any] | None = None,
        n_samples: int | None = None,
    ) -> tuple[Any, ...]:
        """``(X_train, X_test, y_train, y_test)`` of a fold, as scikit-learn's cross-validation cuts it.

        For pairwise estimators (a precomputed kernel, say) both axes of X are cut, as in
        ``sklearn.model_selection.cross_validate``. ``cache`` keeps the cut pieces for the rest of a task.
        """
        key = (fold, bool(get_tags(estimator).input_tags.pairwise), n_samples)
        if cache is not None and key in cache:
            return cache[key]
        train, test = self.fold_indices(fold, n_samples)
        X_train, y_train = _safe_split(estimator, self.X, self.y, train)
        X_test, y_test = _safe_split(estimator, self.X, self.y, test, train)
        pieces = (X_train, X_test, y_train, y_test)
        if cache is not None:
            cache[key] = pieces
        return pieces

    def params_for(self, params: Mapping[str, Any], indices: np.ndarray) -> dict[str, Any]:
        """Index every per-sample parameter by ``indices``; pass the others through."""
        n = self.n_samples
        out = {}
        for key, value in params.items():
            if value is not None and not np.isscalar(value) and _num_samples_or_none(value) == n:
                out[key] = _safe_indexing(value, indices)
            else:
                out[key] = value
        return out


def _aligned(x: Any) -> Any:
    """``x`` itself, or an aligned copy when it is a NumPy array that deserialization left unaligned.

    Arrays that travel inside a pickled object can land at any byte offset; compiled fitting code then
    takes slow paths. The copy is made once per worker, as the shared objects are fixed in place.
    """
    if isinstance(x, np.ndarray) and not x.flags.aligned:
        return x.copy()
    return x


def _num_samples(x: Any) -> int:
    shape = getattr(x, "shape", None)
    if shape is not None and len(shape) > 0:
        return int(shape[0])
    return len(x)


def _num_samples_or_none(x: Any) -> int | None:
    try:
        return _num_samples(x)
    except TypeError:
        return None


def make_context(
    X: Any,
    y: Any,
    estimator: Any,
    scorer: Any,
    cv: Any,
    folds: list[tuple[np.ndarray, np.ndarray]] | None,
    groups: Any,
    fit_params: dict[str, Any],
    score_params: dict[str, Any],
    return_train_score: bool,
    score_transformed: bool = True,
) -> SearchContext:
    """Build the shared context on a worker; splits the folds there when the client could not."""
    if folds is None:
        folds = [(np.asarray(tr), np.asarray(te)) for tr, te in cv.split(X, y, groups)]
    return SearchContext(
        X=X,
        y=y,
        folds=folds,
        estimator=estimator,
        scorer=scorer,
        fit_params=dict(fit_params),
        score_params=dict(score_params),
        return_train_score=return_train_score,
        score_transformed=score_transformed,
    )


@dataclass
class UnitOutcome:
    """The result of fitting and scoring one candidate on one fold."""

    key: str
    test_scores: float | dict[str, float] | None
    train_scores: float | dict[str, float] | None
    fit_time: float
    score_time: float
    error: str | None = None
    exception: BaseException | None = None
    # Warnings raised while fitting and scoring, as (category, message), to be shown on the client.
    warnings: list[tuple[type[Warning], str]] | None = None
    # False for what the executor records itself (a time-out, a task that kept dying): those depend
    # on the run, not on the candidate, and are never stored for other searches.
    cacheable: bool = True
    # The budget a continued model started from (daskhpo.execution.continued); None: fitted afresh.
    continued_from: float | None = None


@dataclass
class PrefixOutcome:
    """The fitted leading steps of a pipeline on one fold, with the data they transformed."""

    steps: list[tuple[str, Any]] | None
    Xt_train: Any
    Xt_test: Any
    fit_time: float
    error: str | None = None
    exception: BaseException | None = None
    # transform(X_train) for train scores: fit_transform may differ from it on purpose (TargetEncoder
    # cross-fits), and a fitted pipeline scores the train fold through transform.
    Xt_train_eval: Any = None

    def realign(self) -> None:
        """Fix unaligned arrays in place (see :func:`_aligned`)."""
        self.Xt_train, self.Xt_test = _aligned(self.Xt_train), _aligned(self.Xt_test)
        self.Xt_train_eval = _aligned(self.Xt_train_eval)


def _score(
    scorer: Any, estimator: Any, X: Any, y: Any, params: dict[str, Any], error_score: Any
) -> float | dict[str, float]:
    """scikit-learn's scoring of one fold: ``scorer(est, X)`` when there is no y, error_score on a
    scoring failure (with scikit-learn's warning) unless it is ``"raise"``."""
    from sklearn.model_selection._validation import _score as sklearn_score

    value = sklearn_score(estimator, X, y, scorer, params, error_score)
    if isinstance(value, Mapping):
        return {name: float(v) for name, v in value.items()}
    return float(value)


@contextlib.contextmanager
def configured(ctx: SearchContext) -> Iterator[None]:
    """scikit-learn's configuration of the client, for the code run inside."""
    if not ctx.config:
        yield
        return
    from sklearn import config_context, get_config

    known = get_config()
    with config_context(**{k: v for k, v in ctx.config.items() if k in known}):
        yield


MAX_WARNINGS = 5  # distinct warnings kept per unit

_sinks = threading.local()
_hook_lock = threading.Lock()
_hook_installed = False


def _install_warning_hook() -> None:
    """Once per process: show every warning, and hand those raised inside a unit to its sink.

    ``warnings.catch_warnings`` swaps process-wide state on entry and exit, so units running in
    several threads of one worker would undo each other's; one hook, installed once, reads the
    calling thread's sink instead. Filters set later (``filterwarnings("ignore", ...)`` in a user's
    fit) come first and still apply.
    """
    global _hook_installed
    if _hook_installed:  # every unit comes here: no lock once it is done
        return
    with _hook_lock:
        if _hook_installed:
            return
        original = warnings.showwarning

        def route(message: Any, category: Any, filename: Any, lineno: Any, *rest: Any, **kw: Any):
            sink = getattr(_sinks, "sink", None)
            if sink is None:
                return original(message, category, filename, lineno, *rest, **kw)
            entry = (category, str(message))
            if entry not in sink and len(sink) < MAX_WARNINGS:
                sink.append(entry)
            return None

        warnings.showwarning = route
        warnings.simplefilter("always")  # each unit reports its own warnings, not only the first
        _hook_installed = True


@contextlib.contextmanager
def recorded_warnings(sink: list[tuple[type[Warning], str]]) -> Iterator[None]:
    """Collect the distinct warnings raised inside (in this thread) into ``sink``."""
    _install_warning_hook()
    outer = getattr(_sinks, "sink", None)
    _sinks.sink = sink
    try:
        yield
    finally:
        _sinks.sink = outer


def _picklable(exc: BaseException) -> BaseException | None:
    import pickle

    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return None
    return exc


def _failure(key: str, exc: BaseException, fit_time: float, score_time: float = 0.0) -> UnitOutcome:
    return UnitOutcome(
        key=key,
        test_scores=None,
        train_scores=None,
        fit_time=fit_time,
        score_time=score_time,
        error="".join(traceback.format_exception(exc)),
        exception=_picklable(exc),
    )


def _fit_score_one(
    ctx: SearchContext,
    key: str,
    params: Mapping[str, Any],
    fold: int,
    prefix: PrefixOutcome | None,
    cache: dict[Any, Any],
    trial_id: int | None = None,
) -> UnitOutcome:
    caught: list[tuple[type[Warning], str]] = []
    task_id = key if trial_id is None else trial_id * len(ctx.folds) + fold
    with recorded_warnings(caught):
        outcome = _fit_score_unit(ctx, key, params, fold, prefix, cache, task_id)
    if caught:
        outcome.warnings = caught
    return outcome


def _fit(ctx: SearchContext, estimator: Any, key: Any, X: Any, y: Any, fit_params: Any) -> None:
    """``estimator.fit``, inside the callback context of its evaluation when callbacks propagate."""
    parent = ctx.callback_parent
    if parent is None or not hasattr(estimator, "set_callbacks"):
        _plain_fit(estimator, X, y, fit_params)
        return
    from ..callbacks import worker_leaf

    with worker_leaf(parent, key, estimator):
        _plain_fit(estimator, X, y, fit_params)


def _fit_score_unit(
    ctx: SearchContext,
    key: str,
    params: Mapping[str, Any],
    fold: int,
    prefix: PrefixOutcome | None,
    cache: dict[Any, Any],
    task_id: Any,
) -> UnitOutcome:
    params = dict(params)
    n_samples = params.pop(SAMPLES_KEY, None)
    train, test = ctx.fold_indices(fold, n_samples)
    fit_params = ctx.params_for(ctx.fit_params, train)
    t0 = time.perf_counter()
    try:
        estimator = clone(ctx.estimator).set_params(**clone(dict(params), safe=False))
        if prefix is None:
            X_train, X_test, y_train, y_test = ctx.split(fold, estimator, cache, n_samples)
            X_train_eval = X_train
            to_score = estimator
        else:
            if prefix.error is not None:
                return UnitOutcome(
                    key, None, None, prefix.fit_time, 0.0, prefix.error, prefix.exception
                )
            # The leading steps were fitted once for every candidate that shares them: fit the final step
            # on their output and score it on the transformed test fold, which is what Pipeline.predict does.
            y_train = None if ctx.y is None else _safe_indexing(ctx.y, train)
            y_test = None if ctx.y is None else _safe_indexing(ctx.y, test)
            pipe = estimator
            estimator = pipe.steps[-1][1]
            X_train, X_test = prefix.Xt_train, prefix.Xt_test
            to_score = estimator
            X_train_eval = prefix.Xt_train_eval
        # Binned data is shared per (fold, subsample) of the raw data, not of a prefix's output.
        bins = shared_bins(ctx, (fold, n_samples), estimator, X_train) if prefix is None else None
        with bins or contextlib.nullcontext():
            _fit(ctx, estimator, task_id, X_train, y_train, fit_params)
        if prefix is not None and not ctx.score_transformed:
            pipe.steps = [*(prefix.steps or []), pipe.steps[-1]]
            to_score = pipe
            X_train_eval, X_test, _, _ = ctx.split(fold, pipe, cache)
    except Exception as exc:
        return _failure(key, exc, time.perf_counter() - t0 + (prefix.fit_time if prefix else 0.0))
    fit_time = time.perf_counter() - t0 + (prefix.fit_time if prefix else 0.0)
    return score_fitted(
        ctx, key, to_score, fold, (X_test, y_test), (X_train_eval, y_train), fit_time
    )


def score_fitted(
    ctx: SearchContext,
    key: str,
    estimator: Any,
    fold: int,
    test_side: tuple[Any, Any],
    train_side: tuple[Any, Any],
    fit_time: float,
) -> UnitOutcome:
    """Score a fitted estimator on a fold's test side (and train side with ``return_train_score``);
    ``score_time`` counts the test side only, as scikit-learn does. Failures are returned."""
    train, test = ctx.folds[fold]
    t1 = time.perf_counter()
    try:
        test_scores = _score(
            ctx.scorer,
            estimator,
            *test_side,
            ctx.params_for(ctx.score_params, test),
            ctx.error_score,
        )
        train_scores = None
        score_time = time.perf_counter() - t1
        if ctx.return_train_score:
            train_scores = _score(
                ctx.scorer,
                estimator,
                *train_side,
                ctx.params_for(ctx.score_params, train),
                ctx.error_score,
            )
    except Exception as exc:
        return _failure(key, exc, fit_time, time.perf_counter() - t1)
    return UnitOutcome(key, test_scores, train_scores, fit_time, score_time)


_controller: tuple[int, Any] | None = None


def single_threaded() -> Any:
    """A context manager that holds native thread pools (BLAS, OpenMP) to one thread.

    Workers run one task per thread, so nested BLAS threads would only fight over the same cores.
    threadpoolctl's ``threadpool_limits`` scans every loaded shared library on each call, which takes
    milliseconds: as long as a short ``partial_fit``. The scan is kept per process and redone only
    after more modules were imported (a module import is what loads a new native library).
    """
    global _controller
    from threadpoolctl import ThreadpoolController

    n_modules = len(sys.modules)
    if _controller is None or _controller[0] != n_modules:
        _controller = (n_modules, ThreadpoolController())
    return _controller[1].limit(limits=1)


class Batch:
    """The units of one task, pickled once where the batch is made and unpickled where it runs.

    Opaque to dask twice over. A plain list of tuples of dicts given to ``Client.submit`` is walked
    element by element for futures and tasks (a fifth of the client's CPU time in a grid of 3,528 tiny
    fits). And the scheduler never unpickles the units: it only forwards the bytes, and the copies
    distributed keeps of recent messages (``distributed.admin.low-level-log-length``, 1,000 per
    worker) hold those bytes rather than every unit's params as Python objects: with the scheduler
    in the driver's process, a finished 3,000-candidate grid still held 620 bytes a candidate of
    them (tracemalloc).
    """

    __slots__ = ("_payload",)

    def __init__(self, units: Sequence[tuple[Any, ...]]) -> None:
        # distributed's pickle: plain pickle, or cloudpickle for what lives in __main__ (a notebook).
        self._payload = dask_pickle.dumps(list(units))

    @property
    def units(self) -> list[tuple[Any, ...]]:
        return dask_pickle.loads(self._payload)

    def __getstate__(self) -> bytes:
        return self._payload

    def __setstate__(self, payload: bytes) -> None:
        self._payload = payload


def run_units(
    ctx: SearchContext,
    units: Batch | Sequence[tuple[Any, ...]],
    prefix: PrefixOutcome | None = None,
) -> list[UnitOutcome]:
    """Fit and score a batch of ``(key, params, fold)`` units (``(key, params, fold, trial_id)`` when
    callbacks follow the fits); failures are returned, never raised."""
    if isinstance(units, Batch):
        units = units.units
    ctx.realign()
    if prefix is not None:
        prefix.realign()
    with single_threaded(), configured(ctx):
        cache: dict[Any, Any] = {}
        return [
            _fit_score_one(ctx, key, params, fold, prefix, cache, *trial)
            for key, params, fold, *trial in units
        ]


def fit_prefix(ctx: SearchContext, params: Mapping[str, Any], fold: int) -> PrefixOutcome:
    """Fit every step but the last of a pipeline on one fold and transform both sides of the fold."""
    ctx.realign()
    t0 = time.perf_counter()
    try:
        with single_threaded(), configured(ctx):
            pipe = clone(ctx.estimator).set_params(**clone(dict(params), safe=False))
            X_train, X_test, y_train, _ = ctx.split(fold, pipe)
            head = pipe[:-1]
            Xt_train = head.fit_transform(X_train, y_train)
            Xt_test = head.transform(X_test)
            Xt_train_eval = head.transform(X_train) if ctx.return_train_score else None
    except Exception as exc:
        return PrefixOutcome(
            None,
            None,
            None,
            time.perf_counter() - t0,
            "".join(traceback.format_exception(exc)),
            _picklable(exc),
        )
    return PrefixOutcome(
        list(head.steps), Xt_train, Xt_test, time.perf_counter() - t0, Xt_train_eval=Xt_train_eval
    )


def refit(
    ctx: SearchContext, params: Mapping[str, Any], callback_leaf: Any = None
) -> tuple[Any, float]:
    """Fit the estimator with ``params`` on all the data; returns it with the seconds it took.

    ``callback_leaf``: the refit's callback context, which the estimator's own callbacks join.
    """
    ctx.realign()
    estimator = clone(ctx.estimator).set_params(**clone(dict(params), safe=False))
    t0 = time.perf_counter()
    with single_threaded(), configured(ctx):
        if callback_leaf is not None and hasattr(estimator, "set_callbacks"):
            with callback_leaf.propagate_callback_context(estimator):
                _plain_fit(estimator, ctx.X, ctx.y, ctx.fit_params)
        else:
            _plain_fit(estimator, ctx.X, ctx.y, ctx.fit_params)
    return estimator, time.perf_counter() - t0


def _plain_fit(estimator: Any, X: Any, y: Any, fit_params: Mapping[str, Any]) -> None:
    if y is None:
        estimator.fit(X, **fit_params)
    else:
        estimator.fit(X, y, **fit_params)
