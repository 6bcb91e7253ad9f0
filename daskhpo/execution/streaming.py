"""Worker-side functions for budgets counted in ``partial_fit`` calls. They never import distributed.

Data reaches these functions as *blocks*: ``(X_block, y_block, rows)`` tuples where the two parts are
either the block itself (a Future the scheduler resolved, when the data is held on the cluster) or a
small dask collection that the task computes itself with the synchronous scheduler (when the data is
larger than the cluster's memory and is read or generated block by block). ``rows`` optionally selects
rows of the block (a fold's share of it). A task therefore holds one block in memory at a time.
"""

from __future__ import annotations

import copy
import inspect
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.metrics import accuracy_score, r2_score
from sklearn.utils import _safe_indexing, get_tags

from .tasks import _num_samples, _picklable, single_threaded

__all__ = [
    "TrainOutcome",
    "load_block",
    "train_steps",
    "predict_parts",
    "combine_scores",
    "predict_and_score",
    "train_and_score",
]

# What a scorer may ask of an estimator; every method the model has is recorded on validation rows.
RESPONSE_METHODS = ("predict", "predict_proba", "decision_function", "predict_log_proba")


class TrainOutcome:
    """A model after some ``partial_fit`` calls, or the error that stopped it.

    ``scored`` is what :func:`combine_scores` returns for this model, when the task that trained it also
    scored it (:func:`train_and_score`).
    """

    __slots__ = ("model", "fit_time", "n_calls", "error", "exception", "scored")

    def __init__(
        self,
        model: Any,
        fit_time: float,
        n_calls: int,
        error: str | None = None,
        exception: BaseException | None = None,
        scored: tuple[Any, float, float, str | None, BaseException | None] | None = None,
    ) -> None:
        self.model = model
        self.fit_time = fit_time
        self.n_calls = n_calls
        self.error = error
        self.exception = exception
        self.scored = scored


class Lazy:
    """A one-block dask collection that the task computes itself.

    The wrapper hides the collection from distributed, which would otherwise turn a collection found
    among a task's arguments into scheduler tasks (and hold their results in worker memory).
    """

    __slots__ = ("collection",)

    def __init__(self, collection: Any) -> None:
        self.collection = collection

    def __getstate__(self) -> Any:
        return self.collection

    def __setstate__(self, state: Any) -> None:
        self.collection = state


def load_block(block: Sequence[Any]) -> tuple[Any, Any]:
    """``(X, y)`` of one block, computed here if it is still lazy, rows selected."""
    X, y, rows = block
    if isinstance(X, Lazy) or isinstance(y, Lazy):
        import dask

        # One compute for both, so a y derived from X shares X's tasks instead of redoing them.
        X, y = dask.compute(
            X.collection if isinstance(X, Lazy) else X,
            y.collection if isinstance(y, Lazy) else y,
            scheduler="synchronous",
        )
    if rows is not None:
        X = _safe_indexing(X, rows)
        y = None if y is None else _safe_indexing(y, rows)
    return X, y


def block_labels(block: Sequence[Any]) -> Any:
    """The distinct labels of one block's y (its rows selection ignored: every label counts)."""
    y = block[1]
    if isinstance(y, Lazy):
        import dask

        (y,) = dask.compute(y.collection, scheduler="synchronous")
    return np.unique(np.asarray(y))


def _accepts(method: Any, name: str) -> bool:
    try:
        return name in inspect.signature(method).parameters
    except (TypeError, ValueError):
        return False


def train_steps(
    previous: TrainOutcome | None,
    estimator: Any,
    params: Mapping[str, Any],
    blocks: Sequence[Sequence[Any]],
    fit_params: Mapping[str, Any],
    classes: Any = None,
) -> TrainOutcome:
    """Continue ``previous`` (or start a fresh ``estimator`` with ``params``) with one ``partial_fit``
    call per block, in order. The previous model is copied, never changed in place: its future may
    be needed again if this task has to run twice.
    """
    if previous is not None and previous.error is not None:
        return previous
    t0 = time.perf_counter()
    try:
        with single_threaded():
            if previous is None:
                model = clone(estimator).set_params(**clone(dict(params), safe=False))
                done = 0
                spent = 0.0
            else:
                model = copy.deepcopy(previous.model)
                done = previous.n_calls
                spent = previous.fit_time
            kwargs = dict(fit_params)
            if (
                classes is not None
                and "classes" not in kwargs
                and _accepts(model.partial_fit, "classes")
            ):
                kwargs["classes"] = classes
            for block in blocks:
                X, y = load_block(block)
                if y is None:
                    model.partial_fit(X, **kwargs)
                else:
                    model.partial_fit(X, y, **kwargs)
                done += 1
    except Exception as exc:
        return TrainOutcome(
            None,
            time.perf_counter() - t0,
            0,
            "".join(traceback.format_exception(exc)),
            _picklable(exc),
        )
    return TrainOutcome(model, spent + time.perf_counter() - t0, done)


def predict_parts(
    trained: TrainOutcome, blocks: Sequence[Sequence[Any]]
) -> tuple[list[Any], dict[str, list[Any]], float] | str:
    """The model's answers on validation blocks: true targets and the output of every response method
    the model has (small: one row of output per validation row). A string is the error instead."""
    if trained.error is not None:
        return trained.error
    t0 = time.perf_counter()
    model = trained.model
    methods = [m for m in RESPONSE_METHODS if hasattr(model, m)]
    y_parts: list[Any] = []
    outputs: dict[str, list[Any]] = {m: [] for m in methods}
    try:
        with single_threaded():
            for block in blocks:
                X, y = load_block(block)
                y_parts.append(None if y is None else np.asarray(y))
                for m in methods:
                    outputs[m].append(getattr(model, m)(X))
    except Exception as exc:
        return "".join(traceback.format_exception(exc))
    return y_parts, outputs, time.perf_counter() - t0


class RecordedModel:
    """Stands in for a fitted model when scoring: answers with outputs recorded on the validation rows.

    scikit-learn scorers only call the response methods (and read ``classes_`` and the tags), so this
    gives every scorer the same value it would compute on the model and the concatenated rows.
    """

    def __init__(
        self,
        model: Any,
        outputs: Mapping[str, Any],
        compute: Callable[[str], Any] | None = None,
    ) -> None:
        # ``outputs`` maps each response method to its output, or (with ``compute``) to None until a
        # scorer first asks for it: ``compute(name)`` then gives it, so unused methods never run.
        self._model = model
        self._outputs = dict(outputs)
        self._compute = compute
        if hasattr(model, "classes_"):
            self.classes_ = model.classes_

    def __sklearn_tags__(self) -> Any:
        return get_tags(self._model)

    def _output(self, name: str) -> Any:
        if self._outputs[name] is None and self._compute is not None:
            self._outputs[name] = self._compute(name)
        return self._outputs[name]

    def __getattr__(self, name: str) -> Any:
        outputs = self.__dict__.get("_outputs", {})
        if name in outputs:
            # Computed when called, not when looked up: scikit-learn looks up every method a scorer
            # accepts and then calls only the first the model has.
            def recorded(X: Any = None, **kwargs: Any) -> Any:
                return self._output(name)

            # Scorers look at the method's name to post-process probabilities and decisions.
            recorded.__name__ = recorded.__qualname__ = name
            return recorded
        raise AttributeError(name)

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """The model's own default score (accuracy for classifiers, R² for regressors)."""
        kind = get_tags(self._model).estimator_type
        if kind == "classifier":
            return float(accuracy_score(y, self._output("predict"), sample_weight=sample_weight))
        if kind == "regressor":
            return float(r2_score(y, self._output("predict"), sample_weight=sample_weight))
        raise TypeError("the default score is only known for classifiers and regressors")


def combine_scores(
    trained: TrainOutcome, parts: Sequence[Any], scorer: Any
) -> tuple[float | dict[str, float] | None, float, float, str | None, BaseException | None]:
    """Score the model from the recorded outputs of all validation blocks.

    Returns ``(scores, fit_time, score_time, error, exception)``.
    """
    if trained.error is not None:
        return None, trained.fit_time, 0.0, trained.error, trained.exception
    for part in parts:
        if isinstance(part, str):
            return None, trained.fit_time, 0.0, part, None

    def recorded() -> tuple[RecordedModel, Any, int]:
        y_parts = [p[0][i] for p in parts for i in range(len(p[0]))]
        methods = list(parts[0][1]) if parts else []
        outputs = {m: np.concatenate([o for p in parts for o in p[1][m]]) for m in methods}
        y = None if any(v is None for v in y_parts) else np.concatenate(y_parts)
        n = len(y) if y is not None else len(next(iter(outputs.values())))
        return RecordedModel(trained.model, outputs), y, n

    return _score(trained, scorer, recorded, sum(p[2] for p in parts))


def _score(
    trained: TrainOutcome,
    scorer: Any,
    stand_in: Callable[[], tuple[RecordedModel, Any, int]],
    predict_time: float = 0.0,
) -> tuple[float | dict[str, float] | None, float, float, str | None, BaseException | None]:
    """Call ``scorer`` on the stand-in model that ``stand_in()`` gives (with the validation targets and
    row count); an exception from either becomes the error of the result. ``predict_time`` is time
    already spent on the model's outputs elsewhere, added to the score time."""
    t0 = time.perf_counter()
    try:
        model, y, n = stand_in()
        value = scorer(model, np.empty((n, 0)), y)
        scores: float | dict[str, float] = (
            {k: float(v) for k, v in value.items()} if isinstance(value, Mapping) else float(value)
        )
    except Exception as exc:
        return (
            None,
            trained.fit_time,
            0.0,
            "".join(traceback.format_exception(exc)),
            _picklable(exc),
        )
    return scores, trained.fit_time, predict_time + time.perf_counter() - t0, None, None


def model_of(trained: TrainOutcome) -> Any:
    """The fitted model inside a :class:`TrainOutcome` (for ``best_estimator_``)."""
    return trained.model


def predict_and_score(
    trained: TrainOutcome, blocks: Sequence[Sequence[Any]], scorer: Any
) -> tuple[float | dict[str, float] | None, float, float, str | None, BaseException | None]:
    """Score the model on validation blocks this worker holds, in one task.

    Gives what :func:`predict_parts` then :func:`combine_scores` give, but a response method runs only
    when the scorer asks for it (accuracy needs ``predict`` alone, not ``predict_proba`` as well).
    """
    if trained.error is not None:
        return None, trained.fit_time, 0.0, trained.error, trained.exception
    model = trained.model

    def lazy() -> tuple[RecordedModel, Any, int]:
        loaded = [load_block(block) for block in blocks]
        y_parts = [y for _, y in loaded]
        y = None if any(v is None for v in y_parts) else np.concatenate(y_parts)

        def compute(name: str) -> Any:
            with single_threaded():
                return np.concatenate([getattr(model, name)(X) for X, _ in loaded])

        n = len(y) if y is not None else sum(_num_samples(X) for X, _ in loaded)
        methods = {m: None for m in RESPONSE_METHODS if hasattr(model, m)}
        return RecordedModel(model, methods, compute), y, n

    return _score(trained, scorer, lazy)


def train_and_score(
    previous: TrainOutcome | None,
    estimator: Any,
    params: Mapping[str, Any],
    blocks: Sequence[Sequence[Any]],
    fit_params: Mapping[str, Any],
    classes: Any,
    test_blocks: Sequence[Sequence[Any]],
    scorer: Any,
) -> TrainOutcome:
    """:func:`train_steps` then :func:`predict_and_score` in one task, for blocks this worker holds.

    One task per evaluation instead of two: on short ``partial_fit`` calls the time a worker spends
    between tasks is a large share of the search. The score travels in the outcome's ``scored``.
    """
    trained = train_steps(previous, estimator, params, blocks, fit_params, classes)
    return TrainOutcome(
        trained.model,
        trained.fit_time,
        trained.n_calls,
        trained.error,
        trained.exception,
        scored=predict_and_score(trained, test_blocks, scorer),
    )
