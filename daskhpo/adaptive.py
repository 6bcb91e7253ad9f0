"""Adaptive searches: successive halving, Hyperband, ASHA and incremental training.

Each facade pairs a strategy from :mod:`daskhpo.strategies.adaptive` with one of two executors, chosen by
what the *budget* of a trial counts (``resource=``):

``"partial_fit"``
    Calls of ``partial_fit``, one block of rows each. Models stay on the cluster between rungs and go
    on from where they were; data larger than memory is read block by block by the tasks themselves
    (:mod:`daskhpo.execution.incremental`). Validation is a held-out share (``test_size``) or k folds
    (``cv``); for dask collections both are made of whole blocks.
``"n_samples"``
    Training rows, as in scikit-learn's halving searches: each rung fits from scratch on a subsample of
    every fold (scikit-learn's own subsampling, so results match ``HalvingRandomSearchCV``). Any estimator.
any other string
    An estimator parameter such as ``n_estimators`` or ``max_iter``: each rung fits from scratch with
    the parameter set to the budget. Any estimator that has that parameter.

``"auto"`` (the default) is ``"partial_fit"`` when the estimator has ``partial_fit``, else ``"n_samples"``.
"""

from __future__ import annotations

import difflib
import math
import numbers
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from dask.base import is_dask_collection, tokenize
from sklearn.base import clone, is_classifier
from sklearn.metrics._scorer import _BaseScorer, _MultimetricScorer, _PassthroughScorer
from sklearn.model_selection import ShuffleSplit, StratifiedShuffleSplit
from sklearn.utils import get_tags

from .cluster import get_client
from .exceptions import InvalidSearchError, InvalidSearchTypeError
from .execution.executor import DaskExecutor
from .execution.incremental import StreamingExecutor, plan_blocks, plan_labels
from .execution.streaming import train_steps
from .execution.tasks import SAMPLES_KEY, SearchContext, UnitOutcome, refit
from .progress import ProgressBar
from .registry import register_search
from .search import _DaskSearchMixin
from .store import SQLiteStore, open_store, result_from_json
from .strategies.adaptive import ASHA, Hyperband, Incremental, RandomSource, SuccessiveHalving
from .strategies.base import Job, Result
from .tuner import Tuner

__all__ = [
    "SuccessiveHalvingSearchCV",
    "HyperbandSearchCV",
    "ASHASearchCV",
    "IncrementalSearchCV",
    "BOHBSearchCV",
]

_BUILTIN_RESOURCES = ("partial_fit", "n_samples")


class _AdaptiveSearchCV(_DaskSearchMixin):
    """The fit loop shared by the adaptive searches; subclasses build the strategy."""

    _space_name = "param_distributions"
    # Which evaluations compete for best_*: "top" = those at the largest budget evaluated,
    # "last" = every trial's last evaluation.
    _best_rule = "top"
    _needs_max_budget = True
    _uses_reduction_factor = True

    def _make_adaptive(self, source: RandomSource, min_budget: Any, max_budget: Any) -> Any:
        raise NotImplementedError  # pragma: no cover - abstract

    # -- validation --------------------------------------------------------------------------
    def _space_dicts(self) -> list[Mapping[str, Any]]:
        space = self.param_distributions
        dicts = [space] if isinstance(space, Mapping) else list(space or [])
        if not dicts or not all(isinstance(d, Mapping) and d for d in dicts):
            raise InvalidSearchError(
                f"param_distributions={space!r}: pass a non-empty dict (or list of dicts) mapping "
                "estimator parameter names to lists or scipy.stats distributions."
            )
        return dicts

    def _checked_resource(self, X: Any) -> str:
        resource = self.resource
        has_pf = hasattr(self.estimator, "partial_fit")
        if resource == "auto":
            resource = "partial_fit" if has_pf else "n_samples"
        if not isinstance(resource, str):
            raise InvalidSearchTypeError(
                f"resource={self.resource!r}: use 'auto', 'partial_fit', 'n_samples' or the name of "
                "an estimator parameter such as 'n_estimators' or 'max_iter'."
            )
        names = sorted(clone(self.estimator).get_params(deep=True))
        if resource == "partial_fit" and not has_pf:
            alternatives = [n for n in names if n.split("__")[-1] in _BUDGET_PARAMS]
            extra = f", or resource={alternatives[0]!r}" if alternatives else ""
            raise InvalidSearchError(
                f"resource='partial_fit' needs an estimator with partial_fit, and "
                f"{type(self.estimator).__name__} has none: use resource='n_samples'{extra} (an "
                "estimator parameter that sets the amount of training)."
            )
        if resource not in _BUILTIN_RESOURCES:
            if resource not in names:
                close = difflib.get_close_matches(resource, names, n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise InvalidSearchError(
                    f"resource={resource!r} is neither 'partial_fit', 'n_samples' nor a parameter of "
                    f"{type(self.estimator).__name__}.{hint}"
                )
            if any(resource in d for d in self._space_dicts()):
                raise InvalidSearchError(
                    f"resource={resource!r} is also in param_distributions: the budget sets it, so "
                    "remove it from the search space."
                )
        if resource != "partial_fit" and is_dask_collection(X):
            raise InvalidSearchError(
                f"resource={resource!r} fits each candidate from scratch on data in memory, but X is "
                "a dask collection: use resource='partial_fit' with an estimator that has partial_fit "
                "for data larger than memory, or pass X.compute()."
            )
        return resource

    def _check_adaptive_settings(self, resource: str, scorers: Any) -> None:
        if self._uses_reduction_factor and not (
            isinstance(self.reduction_factor, numbers.Real) and float(self.reduction_factor) > 1
        ):
            raise InvalidSearchError(
                f"reduction_factor={self.reduction_factor!r}: use a number above 1 (3 is usual): "
                "each rung keeps 1/reduction_factor of the trials."
            )
        if self.test_size is not None and self.cv is not None:
            raise InvalidSearchError(
                f"test_size={self.test_size!r} and cv={self.cv!r} both given: validate on a held-out "
                "share (test_size) or by cross-validation (cv), not both."
            )
        if self.test_size is not None and not (
            isinstance(self.test_size, numbers.Real) and 0 < float(self.test_size) < 1
        ):
            raise InvalidSearchError(
                f"test_size={self.test_size!r}: use a fraction between 0 and 1, such as 0.2."
            )
        if resource == "partial_fit":
            if self.return_train_score:
                raise InvalidSearchError(
                    "return_train_score=True is not available with resource='partial_fit' (the "
                    "training blocks would have to be read again for every score): set it to False."
                )
            plain = (_BaseScorer, _PassthroughScorer)
            ok = isinstance(scorers, plain) or (
                isinstance(scorers, _MultimetricScorer)
                and all(isinstance(s, plain) for s in scorers._scorers.values())
            )
            if not ok:
                raise InvalidSearchError(
                    f"scoring={self.scoring!r}: with resource='partial_fit' the model is scored from "
                    "its outputs on the validation blocks, so scoring must be a scorer name or made by "
                    "sklearn.metrics.make_scorer (wrap your metric function with make_scorer)."
                )
            if isinstance(scorers, _PassthroughScorer) and get_tags(
                self.estimator
            ).estimator_type not in ("classifier", "regressor"):
                raise InvalidSearchError(
                    f"scoring=None: {type(self.estimator).__name__} is neither a classifier nor a "
                    "regressor, so name a scorer (scoring='...')."
                )
        for label in ("min_budget", "max_budget"):
            value = getattr(self, label, None)
            if value is not None and not (isinstance(value, numbers.Real) and float(value) > 0):
                raise InvalidSearchError(f"{label}={value!r}: use a positive number.")
        if self._needs_max_budget and resource != "n_samples" and self.max_budget is None:
            unit = "partial_fit calls" if resource == "partial_fit" else f"the value of {resource}"
            raise InvalidSearchError(
                f"max_budget is required with resource={resource!r}: the most {unit} a trial gets."
            )

    def _seed(self) -> int:
        rs = self.random_state
        if isinstance(rs, numbers.Integral):
            return int(rs)
        return int(np.random.RandomState(rs).randint(2**31 - 1))

    def _budget_bounds(self, resource: str, X: Any, y: Any, n_splits: int) -> tuple[Any, Any]:
        min_budget = getattr(self, "min_budget", None)
        max_budget = self.max_budget
        if resource == "n_samples":
            n = _n_rows(X)
            if max_budget is None:
                max_budget = n
            if min_budget is None:
                # scikit-learn's 'smallest': two samples per fold, per class for classifiers.
                min_budget = 2 * n_splits
                if is_classifier(self.estimator) and y is not None:
                    min_budget *= len(np.unique(np.asarray(y)))
            if max_budget > n:
                raise InvalidSearchError(
                    f"max_budget={max_budget} is more samples than X has ({n}): lower it or leave it "
                    "unset to use every sample."
                )
        elif min_budget is None:
            min_budget = 1
        if max_budget is not None and min_budget > max_budget:
            raise InvalidSearchError(
                f"min_budget={min_budget} is above max_budget={max_budget}: lower min_budget."
            )
        return min_budget, max_budget

    # -- fit ------------------------------------------------------------------------------------
    def fit(self, X: Any, y: Any = None, *, resume: bool = False, **params: Any) -> Any:
        """Run the adaptive search on the Dask cluster.

        Parameters
        ----------
        X, y : array-like, pandas or dask collections
            Dask arrays and DataFrames stay on the cluster and are read block by block.
        **params : dict
            Passed to the estimator's ``fit``/``partial_fit`` (``classes=`` for instance; for a
            classifier trained with ``partial_fit``, ``classes`` defaults to the labels found in y).
        """
        self._check_settings()
        dicts = self._space_dicts()
        self._check_param_names([{k: d[k] for k in d} for d in dicts])
        scorers, refit_metric = self._checked_scorers()
        X, y = self._checked_xy(X, y)
        resource = self._checked_resource(X)
        self._check_adaptive_settings(resource, scorers)
        seed = self._seed()
        fit_params = dict(params)
        groups = fit_params.pop("groups", None)

        folds = None
        if not is_dask_collection(X):
            folds = self._adaptive_folds(X, y, groups, seed, resource)
            n_splits = len(folds)
        else:
            n_splits = int(self.cv) if isinstance(self.cv, numbers.Integral) else 1
            if self.cv is not None and not isinstance(self.cv, numbers.Integral):
                raise InvalidSearchError(
                    f"cv={self.cv!r}: with a dask collection, folds are made of whole blocks, so cv "
                    "must be a number of folds (or use test_size for a held-out share)."
                )
        min_budget, max_budget = self._budget_bounds(resource, X, y, n_splits)
        source = RandomSource(self.param_distributions, seed)
        strategy = self._make_adaptive(source, min_budget, max_budget)
        self._strategy = strategy
        if resource == "partial_fit":
            per_sample = [k for k, v in fit_params.items() if _n_rows(v) == _n_rows(X)]
            if per_sample:
                raise InvalidSearchError(
                    f"fit parameter(s) {per_sample} have one value per sample, which resource="
                    "'partial_fit' cannot split into blocks yet: pass them as part of the data or use "
                    "resource='n_samples'."
                )

        data_token = X.name if is_dask_collection(X) and hasattr(X, "name") else tokenize(X)
        fingerprint = tokenize(
            data_token,
            y if not is_dask_collection(y) else getattr(y, "name", None),
            self.estimator,
            repr(self.param_distributions),
            seed,
            resource,
            min_budget,
            max_budget,
            getattr(self, "reduction_factor", None),
            self.scoring,
            repr(self.cv),
            self.test_size,
            type(self).__name__,
        )
        name = self.name or f"{type(self).__name__}-{fingerprint[:12]}"
        store = open_store(self.storage, name)
        replayed = self._replay_adaptive(store, name, fingerprint, strategy, resume)
        self.store_ = store
        client = get_client(self._cluster_target(), verbose=self.verbose)
        n_slots = self._slots(client)
        self._multimetric = isinstance(scorers, _MultimetricScorer)

        executor: Any
        self._plan = None
        if resource == "partial_fit":
            classes = fit_params.pop("classes", None)
            plan = plan_blocks(
                client,
                X,
                y,
                folds=folds,
                n_folds=n_splits if (is_dask_collection(X) and self.cv is not None) else None,
                test_size=self.test_size if self.test_size is not None else 0.2,
                chunk_size=self.chunk_size,
                persist=self.persist,
                random_state=seed,
            )
            self._plan = plan
            n_splits = plan.n_splits
            if classes is None and is_classifier(self.estimator) and y is not None:
                # partial_fit needs every label up front: read them block by block on the cluster.
                classes = plan_labels(client, plan)
            executor = StreamingExecutor(
                client,
                plan,
                clone(self.estimator),
                scorers,
                fit_params=fit_params,
                classes=classes,
                n_slots=n_slots,
            )
            self._classes = classes
        else:
            executor = self._budget_executor(
                client, X, y, folds, scorers, fit_params, seed, resource, n_slots
            )

        if isinstance(store, SQLiteStore):
            store.start(
                self._adaptive_spec(resource, min_budget, max_budget, n_splits), fingerprint
            )
        if self.verbose > 0:
            print(
                f"{type(self).__name__}: budget = {resource}, from {min_budget} to {max_budget}, "
                f"{n_splits} fold(s), on {n_slots} Dask worker threads",
                file=sys.stderr,
            )
        watch = self._watch(store, name, client)
        bar = ProgressBar(strategy.n_planned, enabled=self.verbose > 0, desc=type(self).__name__)
        results: list[Result] = list(replayed)
        history: list[dict[str, Any]] = []
        t_start = time.perf_counter()
        for result in replayed:
            bar.update(result)
            history.append(_history_row(result, 0.0, None))

        def on_result(result: Result, outcomes: list[UnitOutcome]) -> None:
            results.append(result)
            bar.update(result)
            history.append(
                _history_row(
                    result,
                    time.perf_counter() - t_start,
                    getattr(executor, "n_partial_fit_calls", None),
                )
            )
            if result.failed and self.error_score == "raise":
                self._raise_failure(result, outcomes, len(store))
            if resource == "partial_fit":
                finished = _finished_trials(strategy)
                if finished:
                    keep = self._best_so_far(results)
                    executor.release([t for t in finished if t != keep])

        metric = refit_metric if isinstance(refit_metric, str) else None
        status = "interrupted"
        try:
            Tuner(strategy, executor, store, metric=metric, on_result=on_result).run()
            status = "finished"
        except KeyboardInterrupt:
            bar.close()
            print(
                f"\ndaskhpo: search interrupted; in-flight work was cancelled. {len(store)} finished "
                "evaluations are kept in search.store_.",
                file=sys.stderr,
            )
            if resource == "partial_fit":
                executor.close()
            raise
        except Exception:
            status = "failed"
            if resource == "partial_fit":
                executor.close()
            raise
        finally:
            bar.close()
            if isinstance(store, SQLiteStore):
                store.set_status(status)
            if watch is not None:
                watch.finish(status)

        self.history_ = history
        meta = dict(strategy.metadata())
        meta["resource"] = resource
        meta["min_budget"] = min_budget
        meta["max_budget"] = max_budget
        if resource == "partial_fit":
            meta["partial_fit_calls"] = executor.n_partial_fit_calls
        else:
            # Every evaluation fits from scratch: the budget spent is the sum of the budgets evaluated.
            meta["budget_spent"] = float(sum(float(r.job.budget or 0) for r in results)) * n_splits
        meta["tasks"] = executor.n_tasks
        self.metadata_ = meta
        self.stats_ = {"tasks": executor.n_tasks, "worker_threads": n_slots}
        if resource == "partial_fit":
            self.stats_["partial_fit_calls"] = executor.n_partial_fit_calls
        try:
            self._finish_adaptive(results, n_splits, scorers, refit_metric, resource, executor)
        finally:
            if resource == "partial_fit":
                executor.close()
        return self

    def _replay_adaptive(
        self, store: Any, name: str, fingerprint: str, strategy: Any, resume: bool
    ) -> list[Result]:
        """Stored evaluations of this very search, told to the fresh strategy (``resume=True``).

        Models are not stored: a trial promoted after the restart is trained again from the start
        on the same blocks in the same order, which gives the model it would have had.
        """
        records = self._stored_records(
            store, name, fingerprint, resume, "evaluations", "data or settings"
        )
        candidates = getattr(strategy, "_params", {})
        latest: dict[tuple[int, int], Result] = {}
        for record in records:
            tid = int(record["trial_id"])
            if tid in candidates:
                latest[(tid, int(record.get("rung", 0)))] = result_from_json(
                    record, candidates[tid]
                )
        replayed = list(latest.values())
        for result in replayed:
            strategy.tell(result)
        return replayed

    def _adaptive_folds(
        self, X: Any, y: Any, groups: Any, seed: int, resource: str
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        if self.cv is None and (self.test_size is not None or resource == "partial_fit"):
            size = self.test_size if self.test_size is not None else 0.2
            splitter_cls = (
                StratifiedShuffleSplit
                if is_classifier(self.estimator) and y is not None
                else ShuffleSplit
            )
            splitter = splitter_cls(n_splits=1, test_size=size, random_state=seed)
            try:
                return [
                    (np.asarray(tr), np.asarray(te))
                    for tr, te in splitter.split(np.empty((_n_rows(X) or 0, 0)), y, groups)
                ]
            except ValueError as exc:
                raise InvalidSearchError(
                    f"test_size={size!r} cannot split this data: {exc}"
                ) from exc
        return self._plan_folds(X, y, groups)

    def _budget_executor(
        self,
        client: Any,
        X: Any,
        y: Any,
        folds: Any,
        scorers: Any,
        fit_params: dict[str, Any],
        seed: int,
        resource: str,
        n_slots: int,
    ) -> DaskExecutor:
        """The cross-validation executor of the grid searches, with the budget put into each job."""
        score_transformed = True
        ctx = SearchContext(
            X=X,
            y=y,
            folds=folds,
            estimator=clone(self.estimator),
            scorer=scorers,
            fit_params=fit_params,
            score_params={},
            return_train_score=bool(self.return_train_score),
            score_transformed=score_transformed,
            subsample_seed=seed
            if not isinstance(self.random_state, numbers.Integral)
            else self.random_state,
        )
        context_token = tokenize(tokenize(X), y, folds, self.estimator, self.scoring, seed)

        def send_context() -> Any:
            return client.scatter(ctx, broadcast=True, hash=False)

        if resource == "n_samples":

            def job_params(job: Job) -> Mapping[str, Any]:
                return {**job.params, SAMPLES_KEY: int(job.budget or 0)}
        else:

            def job_params(job: Job) -> Mapping[str, Any]:
                return {**job.params, resource: _as_number(job.budget)}

        self._ctx_sender = send_context
        return DaskExecutor(
            client,
            send_context(),
            context_token,
            len(folds),
            n_slots=n_slots,
            remake_context=send_context,
            job_params=job_params,
        )

    def _adaptive_spec(
        self, resource: str, min_budget: Any, max_budget: Any, n_splits: int
    ) -> dict[str, Any]:
        return {
            "search": type(self).__name__,
            "estimator": repr(self.estimator),
            "space": repr(self.param_distributions),
            "scoring": repr(self.scoring),
            "resource": resource,
            "min_budget": min_budget,
            "max_budget": max_budget,
            "reduction_factor": getattr(self, "reduction_factor", None),
            "n_splits": n_splits,
        }

    # -- results --------------------------------------------------------------------------------
    def _contenders(self, results: Sequence[Result]) -> list[int]:
        """Indices into ``results`` of the evaluations that compete for best_* (see ``_best_rule``)."""
        done = [i for i, r in enumerate(results) if not r.failed]
        if not done:
            return []
        if self._best_rule == "last":
            last: dict[int, int] = {}
            for i in done:
                last[results[i].trial_id] = i
            return sorted(last.values())
        top = max(float(results[i].job.budget or 0) for i in done)
        return [i for i in done if float(results[i].job.budget or 0) == top]

    def _best_so_far(self, results: Sequence[Result]) -> int | None:
        idx = self._contenders(results)
        if not idx:
            return None
        best = max(idx, key=lambda i: (results[i].score, -results[i].trial_id))
        return results[best].trial_id

    def _finish_adaptive(
        self,
        results: list[Result],
        n_splits: int,
        scorers: Any,
        refit_metric: Any,
        resource: str,
        executor: Any,
    ) -> None:
        results = sorted(results, key=lambda r: (r.job.bracket, r.job.rung, r.trial_id))
        self._check_failures(results, n_splits)
        self.multimetric_ = bool(self._multimetric)
        out = self._fold_entries(results, n_splits)
        candidates = []
        for r in results:
            params = dict(r.job.params)
            if resource not in _BUILTIN_RESOURCES:
                params[resource] = _as_number(r.job.budget)
            candidates.append(params)
        cv_results = self._format_results(candidates, n_splits, out)
        cv_results["trial_id"] = np.array([r.trial_id for r in results])
        cv_results["bracket"] = np.array([r.job.bracket for r in results])
        cv_results["rung"] = np.array([r.job.rung for r in results])
        cv_results["budget"] = np.array([_as_number(r.job.budget) for r in results])
        # scikit-learn's halving searches call these iter and n_resources.
        cv_results["iter"] = cv_results["rung"]
        cv_results["n_resources"] = cv_results["budget"]
        self.cv_results_ = cv_results
        self.n_splits_ = n_splits
        self.scorer_ = scorers._scorers if isinstance(scorers, _MultimetricScorer) else scorers

        if self.refit or not self.multimetric_:
            if callable(self.refit):
                self.best_index_ = int(self.refit(cv_results))
            else:
                key = f"mean_test_{refit_metric}"
                contenders = self._contenders(results)
                if not contenders:
                    contenders = list(range(len(results)))
                scores = np.asarray(cv_results[key], dtype=float)
                # Ties go to the lower trial id, as in the strategies (and when models are released).
                best = max(
                    contenders,
                    key=lambda i: (
                        -math.inf if np.isnan(scores[i]) else scores[i],
                        -results[i].trial_id,
                    ),
                )
                self.best_index_ = int(best)
                self.best_score_ = float(scores[best])
            self.best_params_ = cv_results["params"][self.best_index_]
            self.best_trial_id_ = int(cv_results["trial_id"][self.best_index_])
            self.best_budget_ = cv_results["budget"][self.best_index_]
        if self.refit:
            t0 = time.perf_counter()
            self.best_estimator_ = self._refit_best(results, resource, executor)
            self.refit_time_ = time.perf_counter() - t0
            if hasattr(self.best_estimator_, "feature_names_in_"):
                self.feature_names_in_ = self.best_estimator_.feature_names_in_

    def _refit_best(self, results: list[Result], resource: str, executor: Any) -> Any:
        client = executor.client
        if resource == "partial_fit":
            plan = self._plan
            assert plan is not None
            if plan.n_splits == 1:
                # The model trained on the training blocks is the one that was scored: keep it.
                return executor.model(
                    self.best_trial_id_, self.best_params_, int(round(float(self.best_budget_)))
                )
            # Several folds: train a fresh model on every block for the best budget.
            blocks = [(b[0], b[1], None) for b in _whole_blocks(plan)]
            budget = int(round(float(self.best_budget_)))
            model = None
            for step in range(budget):
                model = client.submit(
                    train_steps,
                    model,
                    clone(self.estimator),
                    dict(self.best_params_),
                    [blocks[step % len(blocks)]],
                    executor.fit_params,
                    self._classes,
                    pure=False,
                )
            if model is None:
                raise InvalidSearchError("the best trial has no budget to refit with")
            trained = model.result()
            if trained.error is not None:
                raise RuntimeError(f"refitting the best candidate failed:\n{trained.error}")
            return trained.model
        ctx_future = executor.context
        return client.submit(refit, ctx_future, self.best_params_, pure=False).result()[0]


_BUDGET_PARAMS = ("n_estimators", "max_iter", "n_iter", "max_epochs", "num_boost_round")


def _history_row(result: Result, elapsed: float, calls: int | None) -> dict[str, Any]:
    return {
        "trial_id": result.trial_id,
        "bracket": result.job.bracket,
        "rung": result.job.rung,
        "budget": result.job.budget,
        "score": result.score,
        "status": result.status.value,
        "elapsed": elapsed,
        "partial_fit_calls": calls,
    }


def _whole_blocks(plan: Any) -> list[Any]:
    seen: dict[int, Any] = {}
    for fold in (*plan.train, *plan.test):
        for b in fold:
            seen.setdefault(id(b[0]), b)
    return list(seen.values())


def _finished_trials(strategy: Any) -> list[int]:
    """Trials the strategy will never ask again, when it says so (their models can be released)."""
    fn = getattr(strategy, "finished_trials", None)
    if fn is None:
        return []
    return list(fn())


def _as_number(value: Any) -> Any:
    if value is None:
        return None
    f = float(value)
    return int(f) if f.is_integer() else f


def _n_rows(x: Any) -> int | None:
    shape = getattr(x, "shape", None)
    if shape is not None and len(shape) > 0:
        try:
            return int(shape[0])
        except (TypeError, ValueError):
            return None
    try:
        return len(x)
    except TypeError:
        return None


_COMMON_DOC = """
    resource : 'auto', 'partial_fit', 'n_samples' or str
        What the budget counts (see :mod:`daskhpo.adaptive`).
    test_size : float, optional
        Held-out share of the data for scoring (default 0.2 when neither it nor ``cv`` is given and the
        budget is ``partial_fit``).
    cv : int, splitter or None
        Cross-validation instead of a held-out share (dask collections: a number of block folds).
    chunk_size : int, optional
        Rows per ``partial_fit`` call for in-memory data (default: a tenth of the rows). Dask
        collections keep their own chunks.
    persist : 'auto' or bool
        Hold the blocks of a dask collection in cluster memory ('auto': when the data takes at most half
        of it); otherwise each task reads or computes the one block it needs.
"""


@register_search("halving")
class SuccessiveHalvingSearchCV(_AdaptiveSearchCV):
    """Successive halving over ``n_candidates`` random candidates, with a barrier at every rung.

    The schedule equals scikit-learn's ``HalvingRandomSearchCV`` (without aggressive elimination): rung
    ``i`` gives ``min_budget * reduction_factor**i`` of the budget to the best
    ``ceil(n / reduction_factor)`` of the previous rung. ``best_*`` come from the last rung.
    """

    _needs_max_budget = False

    def __init__(
        self,
        estimator: Any,
        param_distributions: Any,
        *,
        n_candidates: int | str = "exhaust",
        resource: str = "auto",
        min_budget: Any = None,
        max_budget: Any = None,
        reduction_factor: float = 3,
        test_size: float | None = None,
        cv: Any = None,
        scoring: Any = None,
        refit: Any = True,
        error_score: Any = np.nan,
        return_train_score: bool = False,
        random_state: Any = None,
        chunk_size: int | None = None,
        persist: Any = "auto",
        n_jobs: int | None = None,
        verbose: int = 0,
        client: Any = None,
        cluster: Any = None,
        storage: str | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(
            estimator,
            scoring=scoring,
            n_jobs=n_jobs,
            refit=refit,
            cv=cv,
            verbose=verbose,
            error_score=error_score,
            return_train_score=return_train_score,
        )
        self.param_distributions = param_distributions
        self.n_candidates = n_candidates
        self.resource = resource
        self.min_budget = min_budget
        self.max_budget = max_budget
        self.reduction_factor = reduction_factor
        self.test_size = test_size
        self.random_state = random_state
        self.chunk_size = chunk_size
        self.persist = persist
        self.client = client
        self.cluster = cluster
        self.storage = storage
        self.name = name

    def _budget_bounds(self, resource: str, X: Any, y: Any, n_splits: int) -> tuple[Any, Any]:
        min_budget, max_budget = super()._budget_bounds(resource, X, y, n_splits)
        if max_budget is None:
            if resource != "partial_fit":
                raise InvalidSearchError(
                    f"max_budget is required with resource={resource!r}: the largest value a "
                    "trial's budget may reach."
                )
            # One pass over the training blocks.
            max_budget = max(min_budget, self._n_training_blocks(X))
        return min_budget, max_budget

    def _n_training_blocks(self, X: Any) -> int:
        if not is_dask_collection(X):
            n = _n_rows(X) or 1
            return math.ceil(n / (self.chunk_size or max(1, math.ceil(n / 10))))
        n = X.npartitions if hasattr(X, "npartitions") else X.numblocks[0]
        if isinstance(self.cv, numbers.Integral):
            return n - math.ceil(n / int(self.cv))
        return n - max(1, int(round((self.test_size or 0.2) * n)))

    def _make_adaptive(self, source: RandomSource, min_budget: Any, max_budget: Any) -> Any:
        return SuccessiveHalving(
            source,
            n_candidates=self.n_candidates,
            min_budget=min_budget,
            max_budget=max_budget,
            reduction_factor=self.reduction_factor,
        )

    def _finish_adaptive(self, results: list[Result], *args: Any, **kwargs: Any) -> None:
        super()._finish_adaptive(results, *args, **kwargs)
        # scikit-learn's names for the schedule that was run.
        self.n_resources_ = list(getattr(self._strategy, "n_resources", []))
        self.n_candidates_ = list(getattr(self._strategy, "n_candidates", []))


@register_search("hyperband")
class HyperbandSearchCV(_AdaptiveSearchCV):
    """Hyperband (Li et al. 2018): brackets of successive halving that trade the number of candidates
    against the budget each starts with. Brackets run side by side, each with its own rung barrier.
    ``best_*`` come from the evaluations at ``max_budget``."""

    def __init__(
        self,
        estimator: Any,
        param_distributions: Any,
        *,
        max_budget: Any = None,
        min_budget: Any = None,
        reduction_factor: float = 3,
        resource: str = "auto",
        test_size: float | None = None,
        cv: Any = None,
        scoring: Any = None,
        refit: Any = True,
        error_score: Any = np.nan,
        return_train_score: bool = False,
        random_state: Any = None,
        chunk_size: int | None = None,
        persist: Any = "auto",
        n_jobs: int | None = None,
        verbose: int = 0,
        client: Any = None,
        cluster: Any = None,
        storage: str | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(
            estimator,
            scoring=scoring,
            n_jobs=n_jobs,
            refit=refit,
            cv=cv,
            verbose=verbose,
            error_score=error_score,
            return_train_score=return_train_score,
        )
        self.param_distributions = param_distributions
        self.max_budget = max_budget
        self.min_budget = min_budget
        self.reduction_factor = reduction_factor
        self.resource = resource
        self.test_size = test_size
        self.random_state = random_state
        self.chunk_size = chunk_size
        self.persist = persist
        self.client = client
        self.cluster = cluster
        self.storage = storage
        self.name = name

    def _make_adaptive(self, source: RandomSource, min_budget: Any, max_budget: Any) -> Any:
        return Hyperband(
            source,
            max_budget=max_budget,
            min_budget=min_budget,
            reduction_factor=self.reduction_factor,
        )


@register_search("asha")
class ASHASearchCV(_AdaptiveSearchCV):
    """Asynchronous successive halving (Li et al. 2020): a trial moves up a rung as soon as it is in the
    top ``1/reduction_factor`` of the trials finished at its rung, with no barrier, so no worker waits
    for a rung to fill. Which candidates exist depends only on the seed; which are promoted also depends
    on the order results arrive in. ``best_*`` come from the evaluations at the largest budget reached."""

    def __init__(
        self,
        estimator: Any,
        param_distributions: Any,
        *,
        n_trials: int = 50,
        max_budget: Any = None,
        min_budget: Any = None,
        reduction_factor: float = 3,
        resource: str = "auto",
        test_size: float | None = None,
        cv: Any = None,
        scoring: Any = None,
        refit: Any = True,
        error_score: Any = np.nan,
        return_train_score: bool = False,
        random_state: Any = None,
        chunk_size: int | None = None,
        persist: Any = "auto",
        n_jobs: int | None = None,
        verbose: int = 0,
        client: Any = None,
        cluster: Any = None,
        storage: str | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(
            estimator,
            scoring=scoring,
            n_jobs=n_jobs,
            refit=refit,
            cv=cv,
            verbose=verbose,
            error_score=error_score,
            return_train_score=return_train_score,
        )
        self.param_distributions = param_distributions
        self.n_trials = n_trials
        self.max_budget = max_budget
        self.min_budget = min_budget
        self.reduction_factor = reduction_factor
        self.resource = resource
        self.test_size = test_size
        self.random_state = random_state
        self.chunk_size = chunk_size
        self.persist = persist
        self.client = client
        self.cluster = cluster
        self.storage = storage
        self.name = name

    def _make_adaptive(self, source: RandomSource, min_budget: Any, max_budget: Any) -> Any:
        if not isinstance(self.n_trials, numbers.Integral) or self.n_trials < 1:
            raise InvalidSearchError(f"n_trials={self.n_trials!r}: use a positive integer.")
        return ASHA(
            source,
            n_trials=int(self.n_trials),
            max_budget=max_budget,
            min_budget=min_budget,
            reduction_factor=self.reduction_factor,
        )


@register_search("incremental")
class IncrementalSearchCV(_AdaptiveSearchCV):
    """Train every candidate in steps of ``step`` budget, scoring after each; a candidate stops when its
    score has not improved by more than ``tol`` for ``patience`` scores, or at ``max_budget``.
    ``best_*`` come from each candidate's last score."""

    _best_rule = "last"
    _uses_reduction_factor = False

    def __init__(
        self,
        estimator: Any,
        param_distributions: Any,
        *,
        n_candidates: int = 10,
        max_budget: Any = None,
        step: int = 1,
        patience: int | None = None,
        tol: float = 1e-3,
        resource: str = "auto",
        test_size: float | None = None,
        cv: Any = None,
        scoring: Any = None,
        refit: Any = True,
        error_score: Any = np.nan,
        return_train_score: bool = False,
        random_state: Any = None,
        chunk_size: int | None = None,
        persist: Any = "auto",
        n_jobs: int | None = None,
        verbose: int = 0,
        client: Any = None,
        cluster: Any = None,
        storage: str | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(
            estimator,
            scoring=scoring,
            n_jobs=n_jobs,
            refit=refit,
            cv=cv,
            verbose=verbose,
            error_score=error_score,
            return_train_score=return_train_score,
        )
        self.param_distributions = param_distributions
        self.n_candidates = n_candidates
        self.max_budget = max_budget
        self.step = step
        self.patience = patience
        self.tol = tol
        self.resource = resource
        self.test_size = test_size
        self.random_state = random_state
        self.chunk_size = chunk_size
        self.persist = persist
        self.client = client
        self.cluster = cluster
        self.storage = storage
        self.name = name

    def _make_adaptive(self, source: RandomSource, min_budget: Any, max_budget: Any) -> Any:
        return Incremental(
            source,
            n_candidates=self.n_candidates,
            max_budget=max_budget,
            step=self.step,
            patience=self.patience,
            tol=self.tol,
        )


@register_search("bohb")
class BOHBSearchCV(HyperbandSearchCV):
    """BOHB (Falkner et al. 2018): Hyperband whose candidates come from Optuna's TPE sampler fitted on
    the results of the largest budget with enough of them (a share ``random_fraction`` stays random).
    Brackets open one after the other so that later ones learn from earlier ones. Needs Optuna
    (``pip install "daskhpo[bayes]"``). ``param_distributions`` may use daskhpo's ``Float``/``Int``/
    ``Categorical``, lists, or scipy.stats ``uniform``/``loguniform``/``randint``.
    """

    def __init__(
        self,
        estimator: Any,
        param_distributions: Any,
        *,
        max_budget: Any = None,
        min_budget: Any = None,
        reduction_factor: float = 3,
        random_fraction: float = 1 / 3,
        min_points: int | None = None,
        resource: str = "auto",
        test_size: float | None = None,
        cv: Any = None,
        scoring: Any = None,
        refit: Any = True,
        error_score: Any = np.nan,
        return_train_score: bool = False,
        random_state: Any = None,
        chunk_size: int | None = None,
        persist: Any = "auto",
        n_jobs: int | None = None,
        verbose: int = 0,
        client: Any = None,
        cluster: Any = None,
        storage: str | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(
            estimator,
            param_distributions,
            max_budget=max_budget,
            min_budget=min_budget,
            reduction_factor=reduction_factor,
            resource=resource,
            test_size=test_size,
            cv=cv,
            scoring=scoring,
            refit=refit,
            error_score=error_score,
            return_train_score=return_train_score,
            random_state=random_state,
            chunk_size=chunk_size,
            persist=persist,
            n_jobs=n_jobs,
            verbose=verbose,
            client=client,
            cluster=cluster,
            storage=storage,
            name=name,
        )
        self.random_fraction = random_fraction
        self.min_points = min_points

    def _make_adaptive(self, source: RandomSource, min_budget: Any, max_budget: Any) -> Any:
        from .strategies.bohb import BOHB

        if not (0 <= float(self.random_fraction) <= 1):
            raise InvalidSearchError(
                f"random_fraction={self.random_fraction!r}: use a share between 0 and 1 (1/3 is usual)."
            )
        return BOHB(
            self.param_distributions,
            max_budget=max_budget,
            min_budget=min_budget,
            reduction_factor=self.reduction_factor,
            random_fraction=self.random_fraction,
            min_points=self.min_points,
            random_state=self._seed(),
        )
