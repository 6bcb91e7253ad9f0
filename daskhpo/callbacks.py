"""scikit-learn's callbacks (``sklearn.callback``, scikit-learn 1.9 and later) on daskhpo searches.

``search.set_callbacks(cb)`` works as on scikit-learn's searches: ``cb.setup`` once, then
``on_fit_task_begin``/``on_fit_task_end`` for the fit itself, for the search, for every
(candidate, fold) evaluation (task name ``"candidate-split-evaluation"``) and for the refit
(``"refit-with-best-params"``), then ``cb.teardown``.

Where the hooks run: the search's own hooks run in the user's process, with the search itself as
``estimator``; an evaluation's hooks are called when its unit is sent to the cluster and when its
result comes back (``X`` and ``y`` are the training fold, computed only if a hook asks for them).
Auto-propagated callbacks (those with ``max_propagation_depth``) also reach the estimators fitted on
the workers, as scikit-learn propagates them to its sub-estimators: they travel with the data, in a
detached copy of the search's context (its path from the root, without the siblings), and report
back the way scikit-learn's own callbacks do from other processes.

Nothing here imports dask; with an older scikit-learn every function is a no-op.
"""

from __future__ import annotations

import contextlib
import copy
import functools
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["SearchCallbacks", "management", "worker_leaf"]

EVALUATION = "candidate-split-evaluation"
REFIT = "refit-with-best-params"


def _support() -> Any:
    try:
        from sklearn.callback import AutoPropagatedCallback
        from sklearn.callback._callback_support import callback_management_context
    except ImportError:  # scikit-learn before 1.9
        return None
    return AutoPropagatedCallback, callback_management_context


@contextlib.contextmanager
def management(search: Any) -> Iterator[None]:
    """Calls the callbacks' ``teardown`` when ``fit`` ends, whether it succeeded or not."""
    support = _support()
    if support is None:
        yield
        return
    with support[1](search):
        yield


def _detached(ctx: Any, callbacks: Sequence[Any]) -> Any:
    """A copy of ``ctx`` and its ancestors only (no siblings) that holds ``callbacks``: what a worker
    needs to attach an estimator's own task tree below ``ctx``, small enough to ship."""
    path = []
    node = ctx
    while node is not None:
        path.append(node)
        node = node.parent
    copies: list[Any] = []
    for node in reversed(path):
        twin = copy.copy(node)
        twin._callbacks = list(callbacks)
        twin._children_map = {}
        twin.__dict__.pop("_propagated_callbacks", None)
        if copies:
            twin.parent = copies[-1]
            copies[-1]._children_map[twin.task_id] = twin
        else:
            twin.parent = None
        copies.append(twin)
    return copies[-1]


@contextlib.contextmanager
def worker_leaf(parent: Any, key: Any, estimator: Any) -> Iterator[None]:
    """On a worker: evaluation ``key`` (its task id) under ``parent``, propagated to ``estimator``
    while it fits.

    The leaf is removed again afterwards, so the worker's copy of the parent stays small.
    """
    leaf = parent.subcontext(task_name=EVALUATION, task_id=key)
    try:
        with leaf.propagate_callback_context(estimator):
            yield
    finally:
        parent._children_map.pop(key, None)


class SearchCallbacks:
    """The callback contexts of one ``fit`` of a search (see the module docstring).

    Made by :meth:`start`, which returns None when the search has no callbacks (or scikit-learn has
    no callback API): nothing is then created per evaluation.
    """

    def __init__(self, search: Any, root: Any, X: Any, y: Any, fit_params: Mapping[str, Any]):
        auto_propagated = _support()[0]
        self.search = search
        self.root = root
        self.X, self.y = X, y
        self.sample_weight = fit_params.get("sample_weight")
        self.metadata = (
            None if self.sample_weight is None else {"sample_weight": self.sample_weight}
        )
        self.propagated = [
            cb
            for cb in root._callbacks
            if isinstance(cb, auto_propagated)
            and (
                cb.max_propagation_depth is None
                or root._propagation_depth < cb.max_propagation_depth
            )
        ]
        self._next_id: dict[int, int] = {}
        self._open: dict[tuple[Any, ...], list[Any]] = {}
        self.search_ctx: Any = None
        self._warned = False

    @classmethod
    def start(
        cls, search: Any, X: Any, y: Any, fit_params: Mapping[str, Any], *, always: bool = False
    ) -> SearchCallbacks | None:
        """The root context, with the fit's begin hooks called; None without callbacks.

        ``always``: make the root context even without callbacks (a custom ``_run_search`` that takes
        ``callback_ctx`` makes sub-contexts of it).
        """
        if _support() is None or not hasattr(search, "_init_callback_context"):
            return None
        if not getattr(search, "_skl_callbacks", None) and not always:
            return None
        root = search._init_callback_context(max_subtasks=1 + (search.refit is not False))
        made = cls(search, root, X, y, fit_params)
        root.call_on_fit_task_begin(estimator=search, X=X, y=y, metadata=made.metadata)
        return made

    @property
    def active(self) -> bool:
        return bool(self.root._callbacks)

    # -- the search and its evaluations --------------------------------------------------------
    def open_search(self, n_evaluations: int | None) -> Any:
        """The ``"search"`` task under the root, begun."""
        self.search_ctx = self.root.subcontext(
            task_name="search", max_subtasks=n_evaluations, sequential_subtasks=False
        ).call_on_fit_task_begin(estimator=self.search)
        return self.search_ctx

    def close_search(self) -> None:
        if self.search_ctx is not None:
            self.search_ctx.call_on_fit_task_end(estimator=self.search)

    def worker_parent(self, parent: Any, estimator: Any) -> Any:
        """What the workers' estimators attach to (None when nothing propagates to them)."""
        if not self.propagated:
            return None
        if not hasattr(estimator, "set_callbacks"):
            if not self._warned:
                import warnings

                warnings.warn(
                    f"The estimator {type(estimator).__name__} does not support callbacks. The "
                    f"callbacks attached to {type(self.search).__name__} will not be propagated to "
                    "this estimator.",
                    UserWarning,
                    stacklevel=6,
                )
                self._warned = True
            return None
        return _detached(parent, self.propagated)

    def _propagates(self, estimator: Any) -> bool:
        return bool(self.propagated) and hasattr(estimator, "set_callbacks")

    def begin(
        self, parent: Any, job_key: tuple[Any, ...], folds: Sequence[Any] | None, n_splits: int
    ) -> None:
        """Begin one evaluation task per fold of a job that was just sent to the cluster."""
        if not self.active:
            return
        leaves = []
        start = self._next_id.get(id(parent), 0)
        self._next_id[id(parent)] = start + n_splits
        propagates = self._propagates(self.search.estimator)
        for fold in range(n_splits):
            leaf = parent.subcontext(task_name=EVALUATION, task_id=start + fold)
            if propagates:
                # Their hooks for this task are called by the estimator's own context on the worker.
                leaf._propagated_callbacks = self.propagated
            train = None if folds is None else folds[fold][0]
            leaf.call_on_fit_task_begin(estimator=self.search, **self._fold_args(train))
            leaves.append((leaf, train))
        self._open[job_key] = leaves

    def end(self, job_key: tuple[Any, ...]) -> None:
        """End the evaluation tasks of a job whose result came back."""
        for leaf, train in self._open.pop(job_key, []):
            leaf.call_on_fit_task_end(estimator=self.search, **self._fold_args(train))

    def _fold_args(self, train: Any) -> dict[str, Any]:
        if train is None:
            return {"metadata": self.metadata}
        metadata = None
        if self.sample_weight is not None:
            metadata = {"sample_weight": np.asarray(self.sample_weight)[train]}
        return {
            "X": functools.partial(_rows, self.X, train),
            "y": functools.partial(_rows, self.y, train),
            "metadata": metadata,
        }

    # -- the refit and the end -------------------------------------------------------------------
    def begin_refit(self) -> Any:
        """The refit task, begun; returns what the refit on the cluster attaches to (or None)."""
        ctx = self.root.subcontext(task_name=REFIT)
        self._refit_ctx = ctx
        propagates = self._propagates(self.search.estimator)
        if propagates:
            ctx._propagated_callbacks = self.propagated
        ctx.call_on_fit_task_begin(
            estimator=self.search, X=self.X, y=self.y, metadata=self.metadata
        )
        return _detached(ctx, self.propagated) if propagates else None

    def end_refit(self) -> None:
        self._refit_ctx.call_on_fit_task_end(
            estimator=self.search, X=self.X, y=self.y, metadata=self.metadata
        )

    def finish(self) -> None:
        self.root.call_on_fit_task_end(
            estimator=self.search, X=self.X, y=self.y, metadata=self.metadata
        )


def _rows(data: Any, rows: Any) -> Any:
    if data is None or hasattr(data, "__dask_graph__"):  # a dask collection stays on the cluster
        return None
    from sklearn.utils import _safe_indexing

    return _safe_indexing(data, rows)
