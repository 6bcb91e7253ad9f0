"""scikit-learn compatible search estimators that run on a Dask cluster.

:class:`GridSearchCV` and :class:`RandomizedSearchCV` take the same arguments as their scikit-learn
namesakes (plus ``client=``), evaluate the same candidates on the same folds, and end with the same
fitted attributes: ``cv_results_``, ``best_index_``, ``best_params_``, ``best_score_``,
``best_estimator_``, ``refit_time_``, ``scorer_``, ``n_splits_``, ``multimetric_``. Prediction methods
delegate to ``best_estimator_`` through scikit-learn's own ``BaseSearchCV``, which these classes extend.
"""

from __future__ import annotations

import dataclasses
import difflib
import numbers
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import sklearn
from dask.base import is_dask_collection, tokenize
from sklearn.base import clone, is_classifier
from sklearn.metrics._scorer import _BaseScorer, _MultimetricScorer, _PassthroughScorer
from sklearn.model_selection import (
    RepeatedStratifiedKFold,
    StratifiedGroupKFold,
    StratifiedKFold,
    check_cv,
)
from sklearn.model_selection._search import BaseSearchCV as _SklearnBaseSearchCV
from sklearn.pipeline import Pipeline
from sklearn.utils import indexable

from .exceptions import InvalidSearchError, InvalidSearchTypeError
from .execution.cluster_fit import partition_folds
from .execution.executor import params_token
from .execution.work import ClusterFitWork, CrossValWork, is_distributed
from .registry import register_search
from .reuse import check_reuse, estimator_form, versions_of
from .run import FitInput, SearchRun, Setup
from .space import describe_space
from .strategies.base import Describing, Enumerated, Result
from .strategies.candidates import CandidateList, GridStrategy, RandomStrategy
from .strategies.racing import Racing, racing_settings
from .validation import PARAMETERS, check

__all__ = ["BaseSearchCV", "GridSearchCV", "RandomizedSearchCV"]


def _n_rows(x: Any) -> int | None:
    shape = getattr(x, "shape", None)
    if shape is not None and len(shape) and isinstance(shape[0], numbers.Integral):
        return int(shape[0])
    if shape is None and hasattr(x, "__len__") and not is_dask_collection(x):
        return len(x)
    return None


def _pipeline_prefix(estimator: Any) -> Any:
    """For a Pipeline, a function giving the params of a candidate that touch its leading steps."""
    if not isinstance(estimator, Pipeline) or len(estimator.steps) < 2:
        return None
    final = estimator.steps[-1][0]
    if estimator.steps[-1][1] in (None, "passthrough"):
        return None
    leading = {name for name, _ in estimator.steps[:-1]}

    def prefix(params: Mapping[str, Any]) -> dict[str, Any] | None:
        out = {}
        for key, value in params.items():
            head = key.split("__", 1)[0]
            if head == final:
                continue
            if head not in leading:  # a pipeline-level parameter such as steps or memory
                return None
            out[key] = value
        return out

    return prefix


def larger_count(name: str, now: Any, new: Any, cls: type) -> int:
    """``new``, checked to be a whole number larger than the search's ``now``."""
    if not isinstance(new, numbers.Integral) or isinstance(new, bool) or new <= now:
        raise InvalidSearchError(
            f"{cls.__name__}.extend: {name}={new!r}: give the new total, a whole number larger "
            f"than the {now} of the fitted search."
        )
    return int(new)


def extended_grid(grid: Any, more: Any) -> Any:
    """``grid`` with ``more``: a dict adds values to the grid's parameters (values already there are
    skipped); for a list of grids, or a dict with other parameters, ``more`` is one more grid."""
    from .store import plain_value

    def same(a: Any, b: Any) -> bool:
        return bool(plain_value(a) == plain_value(b))

    if isinstance(grid, Mapping) and isinstance(more, Mapping) and set(more) <= set(grid):
        out = {k: list(v) for k, v in grid.items()}
        for k, values in more.items():
            if isinstance(values, np.ndarray):
                values = list(values)
            if isinstance(values, str) or not isinstance(values, Sequence):
                raise InvalidSearchError(
                    f"extend: param_grid[{k!r}]={values!r}: give a list of values to add."
                )
            out[k] += [v for v in values if not any(same(v, w) for w in out[k])]
        return out
    grids = [grid] if isinstance(grid, Mapping) else list(grid)
    return [*grids, *([more] if isinstance(more, Mapping) else list(more))]


#: Pipelines share fitted leading steps among candidates only in spaces up to this size (see
#: ``_prefix_sharing``).
PREFIX_SCAN_LIMIT = 100_000


class _DaskSearchMixin(_SklearnBaseSearchCV):
    """The fit loop shared by the search estimators; subclasses say which strategy to run."""

    _space_name = "param_grid"

    def _make_strategy(self) -> Any:
        # A CandidateList, or a strategy without upfront candidates that offers example_params(),
        # signature(), restore() and n_planned (see daskhpo.strategies.bayes.BayesStrategy).
        raise NotImplementedError(
            f"_run_search not implemented. {type(self).__name__} says neither which candidates to "
            "evaluate nor how: override _run_search(self, evaluate_candidates) as with "
            "scikit-learn's BaseSearchCV, or _make_strategy(self) to return a daskhpo strategy."
        )

    def __getstate__(self) -> dict[str, Any]:
        # A fitted search pickles without its cluster: a live Client (or cluster object) holds
        # sockets and threads. Target strings such as "tcp://host:8786" are kept.
        state = dict(super().__getstate__())
        for key in ("client", "cluster"):
            if not (state.get(key) is None or isinstance(state[key], str)):
                state[key] = None
        return state

    def __sklearn_clone__(self) -> Any:
        # clone() deep-copies non-estimator parameters; a live Client must be shared, not copied.
        params = self.get_params(deep=False)
        client = params.pop("client", None)
        return type(self)(**{k: clone(v, safe=False) for k, v in params.items()}, client=client)

    # -- validation, all before any cluster work -----------------------------------------------
    # Declared parameters (daskhpo.validation) whose special values (None, 'exhaust', ...) this
    # search does not take: only successive halving counts its candidates by 'exhaust'.
    _strict_params: frozenset[str] = frozenset({"n_candidates"})

    def _check_settings(self) -> None:
        self._check_target_and_estimator()
        # Every constructor parameter that has a declaration, in the order of the declarations.
        own = set(self._get_param_names())
        for name in PARAMETERS:
            if name in own:
                check(name, getattr(self, name), strict=name in self._strict_params)
        check_reuse(getattr(self, "reuse", True), getattr(self, "reuse_failures", False))

    def _check_target_and_estimator(self) -> None:
        """What every search checks first: one cluster target at most, an estimator that fits."""
        self._cluster_target()
        if not hasattr(self.estimator, "fit"):
            raise InvalidSearchTypeError(
                f"estimator={self.estimator!r} has no fit method: pass a scikit-learn estimator or pipeline."
            )

    def _n_candidates(self) -> Any:
        """``n_candidates``, or the value of its deprecated alias ``n_trials`` when that was given."""
        old = getattr(self, "n_trials", "deprecated")
        if isinstance(old, str) and old == "deprecated":
            return self.n_candidates
        warnings.warn(
            f"{type(self).__name__}(n_trials={old!r}): n_trials was renamed n_candidates, the name "
            "every daskhpo search uses; pass n_candidates instead (n_trials will be removed).",
            FutureWarning,
            stacklevel=5,
        )
        return old

    def _cluster_target(self) -> Any:
        """What ``client=`` or ``cluster=`` names (at most one of them may be set)."""
        client, cluster = getattr(self, "client", None), getattr(self, "cluster", None)
        if client is not None and cluster is not None:
            raise InvalidSearchError(
                f"client={client!r} and cluster={cluster!r} are both set: they name the same thing "
                "(where the search runs); keep one of them."
            )
        return cluster if cluster is not None else client

    def _check_param_names(self, candidates: Sequence[Mapping[str, Any]]) -> None:
        seen: set[tuple[str, ...]] = set()
        for params in candidates:
            keys = tuple(params)
            if keys in seen:
                continue
            seen.add(keys)
            try:
                # All at once, as the fits set them: a step replaced in the same candidate
                # ({"clf": LinearSVC(), "clf__C": 1}) is set before its own parameters.
                clone(self.estimator).set_params(**clone(dict(params), safe=False))
            except ValueError as exc:
                valid = sorted(clone(self.estimator).get_params(deep=True))
                key = next((k for k in keys if k not in valid), keys[0])
                close = difflib.get_close_matches(key, valid, n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise InvalidSearchError(
                    f"{self._space_name} has {key!r}, which is not a parameter of "
                    f"{type(self.estimator).__name__}.{hint} Valid names: {', '.join(valid)}."
                ) from exc

    def _checked_scorers(self) -> tuple[Any, str]:
        try:
            return self._get_scorers()
        except ValueError as exc:
            text = str(exc)
            if "refit" in text:
                raise InvalidSearchError(
                    f"refit={self.refit!r}: For multi-metric scoring, the parameter refit must be set "
                    f"to a scorer key or a callable, or be False; the keys of scoring are "
                    f"{', '.join(map(repr, self._metric_names()))}."
                ) from exc
            from sklearn.metrics import get_scorer_names

            names = [self.scoring] if isinstance(self.scoring, str) else list(self._metric_names())
            if isinstance(self.scoring, Mapping):
                names = list(self.scoring.values())
            bad = [n for n in names if isinstance(n, str) and n not in get_scorer_names()]
            if not bad:
                raise InvalidSearchError(
                    f"scoring={self.scoring!r} is not a valid scoring: {text}"
                ) from exc
            close = difflib.get_close_matches(bad[0], get_scorer_names(), n=3)
            hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
            # scikit-learn's own message lists every scorer name; a close match helps more.
            raise InvalidSearchError(
                f"scoring={self.scoring!r}: {bad[0]!r} is not a valid scoring value.{hint} "
                f"sklearn.metrics.get_scorer_names() lists all {len(get_scorer_names())} names; a "
                "callable scorer(estimator, X, y) works too."
            ) from exc

    def _metric_names(self) -> list[str]:
        if isinstance(self.scoring, Mapping):
            return list(self.scoring)
        if isinstance(self.scoring, (list, tuple, set)):
            return list(self.scoring)
        return ["score"]

    def _checked_xy(self, X: Any, y: Any) -> tuple[Any, Any]:
        nx, ny = _n_rows(X), (None if y is None else _n_rows(y))
        if nx is not None and ny is not None and nx != ny:
            raise InvalidSearchError(
                f"X has {nx} samples but y has {ny}: X and y need one row per sample."
            )
        if is_dask_collection(X) or is_dask_collection(y):
            return X, y
        try:
            X, y = indexable(X, y)
            return X, y
        except ValueError as exc:
            raise InvalidSearchError(f"X and y do not line up: {exc}") from exc

    def _plan_folds(
        self, X: Any, y: Any, groups: Any, cv: Any = None
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """The (train, test) indices of the search's ``cv`` (or of the splitter ``cv``)."""
        if cv is None:
            cv = check_cv(self.cv, y, classifier=is_classifier(self.estimator))
        if y is not None and isinstance(
            cv, (StratifiedKFold, RepeatedStratifiedKFold, StratifiedGroupKFold)
        ):
            n_splits = cv.n_splits if hasattr(cv, "n_splits") else cv.get_n_splits()
            if isinstance(cv, RepeatedStratifiedKFold):
                n_splits = cv.cvargs["n_splits"]
            labels, counts = np.unique(np.asarray(y), return_counts=True)
            if counts.min() < n_splits:
                rare = labels[counts.argmin()]
                rare = rare.item() if hasattr(rare, "item") else rare
                fix = (
                    f"use cv={int(counts.min())} or fewer folds"
                    if counts.min() >= 2
                    else "drop or merge that class"
                )
                text = (
                    f"cv={self.cv!r} asks for {n_splits} stratified folds but class {rare!r} of y has "
                    f"only {counts.min()} member(s): {fix}, use a KFold splitter, or add samples of "
                    "that class."
                )
                if counts.max() < n_splits:  # scikit-learn cannot split this either
                    raise InvalidSearchError(text)
                # scikit-learn splits it with a warning (some test folds then lack that class).
                warnings.warn(
                    f"{text} The least populated class in y has only {counts.min()} members, which "
                    f"is less than n_splits={n_splits}.",
                    UserWarning,
                    stacklevel=6,
                )
        n = _n_rows(X)
        placeholder = X if n is not None else np.empty((len(y), 0))
        split = {} if groups is None else {"groups": groups}  # a user's splitter may take (X, y)
        try:
            with warnings.catch_warnings():
                # Said above, in daskhpo's words.
                warnings.filterwarnings("ignore", message="The least populated class in y")
                folds = [
                    (np.asarray(tr), np.asarray(te)) for tr, te in cv.split(placeholder, y, **split)
                ]
        except ValueError as exc:
            raise InvalidSearchError(f"cv={self.cv!r} cannot split this data: {exc}") from exc
        if not folds:
            raise InvalidSearchError(
                f"cv={self.cv!r} produced no train/test splits: pass a splitter (or an iterable of "
                "(train, test) index pairs) that yields at least one. No fits were performed. Was "
                "the CV iterator empty? Were there no candidates?"
            )
        expected = cv.get_n_splits(placeholder, y, **split) if hasattr(cv, "get_n_splits") else None
        if expected is not None and expected != len(folds):
            raise InvalidSearchError(
                f"cv={self.cv!r}: cv.split and cv.get_n_splits return inconsistent results. "
                f"Expected {expected} splits, got {len(folds)}: fix the splitter's get_n_splits."
            )
        return folds

    # -- fit --------------------------------------------------------------------------------------------
    def fit(self, X: Any, y: Any = None, *, resume: bool = False, **params: Any) -> Any:
        """Run the search on the Dask cluster, then refit the best candidate there.

        Parameters
        ----------
        X : array-like, pandas DataFrame, or dask array/DataFrame of shape (n_samples, n_features)
        y : array-like, pandas Series, or dask array/Series of shape (n_samples,), optional
        resume : bool
            Continue the search stored under ``name`` in ``storage``: trials already stored are not
            recomputed. The data, settings and candidates must be the ones it was started with.
        **params : dict
            Passed to the estimator's ``fit`` (per-sample values are split with the folds), plus
            ``groups`` for group-aware splitters, as in scikit-learn.

        Returns
        -------
        self

        Raises
        ------
        InvalidSearchError
            On bad settings or data, before any work is sent to the cluster.
        FitFailedError
            When every fit failed.
        """
        return SearchRun(self).fit(X, y, resume=resume, params=params)

    def extend(self, X: Any, y: Any = None, **params: Any) -> Any:
        """Search further from a finished fit, computing only the new candidates.

        Give the same ``X``, ``y`` and fit parameters as to ``fit``, and what to add:
        ``n_iter=`` (a larger total) for :class:`RandomizedSearchCV`, ``param_grid=`` (values added
        to the grid's parameters, or more grids) for :class:`GridSearchCV`, ``n_candidates=`` (a
        larger total) for :class:`~daskhpo.BayesSearchCV`. Every (candidate, fold) this fit
        computed is kept, deterministic or not; ``cv_results_`` then equals a fit of the extended
        search (scikit-learn's, on deterministic estimators), and ``best_*`` and the refit follow.
        A seeded random search's first ``n_iter`` candidates are the same whatever ``n_iter`` is
        (when one of its distributions is continuous, as in scikit-learn), so only the new ones run;
        a Bayesian search is told its finished trials before it asks for more.

        Parameters
        ----------
        X, y
            The data of the fit being extended.
        **params
            The extension (``n_iter``, ``param_grid`` or ``n_candidates``); the other keywords go
            to the estimator's ``fit`` as in :meth:`fit`.

        Returns
        -------
        self

        Raises
        ------
        InvalidSearchError
            Before any work: the search was not fitted, the extension is not one this search
            takes, it would shrink the search, or the data differ from the fit's.
        """
        if not hasattr(self, "store_") or not hasattr(self, "cv_results_"):
            raise InvalidSearchError(
                f"{type(self).__name__}.extend: this search was not fitted; call fit(X, y) first."
            )
        changes = {k: params.pop(k) for k in self._extension_names if k in params}
        if not changes:
            names = " or ".join(f"{n}=" for n in self._extension_names) or "nothing"
            raise InvalidSearchError(
                f"{type(self).__name__}.extend: say what to add ({names})."
                if self._extension_names
                else f"{type(self).__name__}.extend: this search cannot be extended; fit a new "
                "search over the larger space (with storage=, every fit made before is reused)."
            )
        new = self._extended_settings(changes)
        old = {k: getattr(self, k) for k in new}
        previous: Any = self.store_
        self.set_params(**new)
        try:
            return SearchRun(self).fit(X, y, resume=False, params=params, previous=previous)
        except InvalidSearchError:
            # Refused before any work: the fitted search is as it was, store included.
            self.set_params(**old)
            self.store_ = previous
            raise

    store_: Any  # set by fit (daskhpo.run.SearchRun); annotated only, so unfitted searches lack it

    #: The keywords :meth:`extend` takes for this search (none: it cannot be extended).
    _extension_names: tuple[str, ...] = ()

    def _extended_settings(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        """The constructor settings of the extended search (``changes``: what ``extend`` got)."""
        raise NotImplementedError

    def _setup(self, data: FitInput) -> Setup:
        """What this search evaluates: its strategy and work (see :class:`daskhpo.run.Setup`)."""
        strategy = self._make_strategy()
        setup = self._crossval_setup(data, strategy)
        n_splits = len(setup.work.folds or ())
        settings = racing_settings(getattr(self, "racing", False), n_splits)
        if settings is None:
            return setup
        if not isinstance(setup.work, CrossValWork):
            raise InvalidSearchError(
                f"racing={self.racing!r}: {type(self.estimator).__name__} trains across the "
                "cluster, one fit at a time per trial; racing runs fits fold by fold on the "
                "workers. Use racing=False with distributed estimators."
            )
        metric = data.refit_metric if isinstance(data.refit_metric, str) else None
        # A pipeline prefix is kept for the candidates that will come; raced ones may never come.
        setup.work.prefix_demand = None
        return dataclasses.replace(
            setup,
            strategy=Racing(strategy, n_splits, metric=metric, **settings),
            fingerprint=tokenize(setup.fingerprint, "racing", sorted(settings.items())),
            header=setup.header + f", racing over the folds (alpha={settings['alpha']})",
        )

    def _example_params(self, strategy: Any) -> Sequence[Mapping[str, Any]]:
        """Candidates showing every parameter name the search sets (checked before any work)."""
        examples = getattr(strategy, "examples", None)
        return examples() if callable(examples) else strategy.candidates

    def _crossval_setup(self, data: FitInput, strategy: Any) -> Setup:
        """Every candidate fitted from scratch on every fold (grid, random and Bayesian searches)."""
        candidates = strategy.candidates if isinstance(strategy, Enumerated) else None
        self._check_param_names(self._example_params(strategy))
        work: Any
        if is_distributed(self.estimator):
            work = self._cluster_fit_work(data)
            folds: Sequence[Any] = work.folds
        else:
            folds = self._plan_folds(*self._labels(data))
            work = self._crossval_work(data, folds, candidates)
        token = work.token
        n_planned = int(strategy.n_planned)
        noun = "candidates" if candidates is not None else "trials"
        return Setup(
            strategy=strategy,
            work=work,
            fingerprint=tokenize(
                token,
                strategy.signature(),
                *(["warm"] if getattr(self, "warm_start", False) else []),
            ),
            settings=self._spec(n_planned, len(folds)),
            best_rule="all",
            name_prefix=type(self.estimator).__name__,
            header=f"Fitting {len(folds)} folds for each of {n_planned} {noun}, totalling "
            f"{len(folds) * n_planned} fits on {{n_slots}} Dask worker threads",
        )

    def _cluster_fit_work(
        self,
        data: FitInput,
        budget_param: str | None = None,
        seed: int = 0,
        default_folds: int = 5,
    ) -> ClusterFitWork:
        """Distributed fits (xgboost.dask, lightgbm.dask): folds of whole partitions, fits from the
        client a few at a time (see :mod:`daskhpo.execution.cluster_fit`)."""
        X, y = data.X, data.y
        name = type(self.estimator).__name__
        if not is_dask_collection(X) or (y is not None and not is_dask_collection(y)):
            raise InvalidSearchError(
                f"{name} trains on dask collections across the cluster: pass X and y as dask "
                "DataFrames/Series or arrays (dask.dataframe.from_pandas(X, npartitions=8), say), "
                "with the same partitions."
            )
        if self.cv is not None and not isinstance(self.cv, numbers.Integral):
            raise InvalidSearchError(
                f"cv={self.cv!r}: with {name}, folds are made of whole partitions, so cv must be a "
                "number of folds."
            )
        n_folds = int(self.cv) if self.cv is not None else default_folds
        n_parts = X.npartitions if hasattr(X, "npartitions") else X.numblocks[0]
        if n_parts < n_folds:
            raise InvalidSearchError(
                f"cv={n_folds} folds of whole partitions need at least {n_folds} partitions; X has "
                f"{n_parts}: repartition X (X.repartition(npartitions={2 * n_folds})) or lower cv."
            )
        if data.groups is not None:
            raise InvalidSearchError(
                f"groups= are not supported with {name}, whose folds are whole partitions: "
                "leave groups out, or put each group in partitions of its own and drop groups=."
            )
        if getattr(self, "trial_timeout", None) is not None:
            raise InvalidSearchError(
                f"trial_timeout={self.trial_timeout!r}: a distributed fit of {name} cannot be "
                "stopped half-way; leave trial_timeout unset."
            )
        token = tokenize(
            self._data_token(X),
            self._data_token(y) if y is not None else None,
            self.estimator,
            self.scoring,
            data.fit_params,
            n_folds,
            seed,
            budget_param,
            bool(self.return_train_score),
        )
        n_parallel = getattr(self, "n_parallel", None) or (
            self.n_jobs if self.n_jobs and self.n_jobs > 0 else None
        )
        return ClusterFitWork(
            X=X,
            y=y,
            folds=partition_folds(n_parts, n_folds, seed),
            estimator=clone(self.estimator),
            scorer=data.scorers,
            token=token,
            fit_params=dict(data.fit_params),
            return_train_score=bool(self.return_train_score),
            budget_param=budget_param,
            n_parallel=n_parallel,
            error_score=self.error_score,
        )

    def _labels(self, data: FitInput) -> tuple[Any, Any, Any]:
        """X, and y and groups on the client (the folds are planned there)."""
        if is_dask_collection(data.y):
            data.y = np.asarray(data.y.compute())
        if is_dask_collection(data.groups):
            data.groups = np.asarray(data.groups.compute())
        return data.X, data.y, data.groups

    @staticmethod
    def _data_token(X: Any) -> str:
        # A dask collection's token comes from its graph (cheap); a dask Series' .name would be its
        # column name, the same for other data.
        return str(tokenize(X))

    def _crossval_work(
        self,
        data: FitInput,
        folds: list[tuple[np.ndarray, np.ndarray]],
        candidates: Sequence[Mapping[str, Any]] | None,
    ) -> CrossValWork:
        """The work of fitting candidates from scratch on ``folds``."""
        X, y, _ = self._labels(data)
        scorers = data.scorers
        score_transformed = isinstance(scorers, (_BaseScorer, _PassthroughScorer)) or (
            isinstance(scorers, _MultimetricScorer)
            and all(
                isinstance(s, (_BaseScorer, _PassthroughScorer)) for s in scorers._scorers.values()
            )
        )
        data_token = self._data_token(X)  # hashes in-memory data: once per fit
        token = tokenize(
            data_token,
            y,
            folds,
            self.estimator,
            self.scoring,
            data.fit_params,
            data.score_params,
            bool(self.return_train_score),
        )
        content, versions = self._unit_content(data_token, y, data.fit_params, data.score_params)
        prefix, demand = self._prefix_sharing(candidates, data.fit_params)
        return CrossValWork(
            X=X,
            y=y,
            folds=folds,
            estimator=clone(self.estimator),
            scorer=scorers,
            token=token,
            fit_params=data.fit_params,
            score_params=data.score_params,
            return_train_score=bool(self.return_train_score),
            score_transformed=score_transformed,
            trial_timeout=getattr(self, "trial_timeout", None),
            prefix_params=prefix,
            prefix_demand=demand,
            error_score=self.error_score,
            config=sklearn.get_config(),
            content=content,
            versions=versions,
        )

    def _unit_content(
        self,
        data_token: str,
        y: Any,
        fit_params: Mapping[str, Any],
        score_params: Mapping[str, Any],
        *extra: Any,
    ) -> tuple[tuple[Any, ...], dict[str, str]]:
        """Everything a unit's scores depend on but its candidate and fold, as plain data (the base
        of its key in the store's unit cache; see :mod:`daskhpo.reuse`), and the package versions
        (and user-code hashes) in it. ``data_token``: :meth:`_data_token` of X."""
        versions = versions_of(self.estimator, self.scoring)
        content = (
            data_token,
            tokenize(y),
            estimator_form(self.estimator),
            tokenize(self.scoring),
            tokenize(dict(fit_params)),
            tokenize(dict(score_params)),
            bool(self.return_train_score),
            repr(self.error_score),
            sorted(sklearn.get_config().items()),
            sorted(versions.items()),
            *extra,
        )
        return content, versions

    def _prefix_sharing(
        self, candidates: Sequence[Mapping[str, Any]] | None, fit_params: Mapping[str, Any]
    ) -> tuple[Any, Counter[str]]:
        """For a pipeline, which leading-step params each candidate has, and how many share each."""
        prefix = _pipeline_prefix(self.estimator) if not fit_params and candidates else None
        demand: Counter[str] = Counter()
        # Counting the sharing reads every candidate once (about 20 us each): past PREFIX_SCAN_LIMIT
        # candidates that would hold up the first task by seconds, so large grids fit whole pipelines.
        if prefix is None or candidates is None or len(candidates) > PREFIX_SCAN_LIMIT:
            return None, demand
        unique = {params_token(c): c for c in candidates}.values()
        leading = [prefix(c) for c in unique]
        demand = Counter(params_token(p) for p in leading if p is not None)
        # No sharing when a candidate changes pipeline-level params, or too little to pay for it.
        if sum(demand.values()) < len(leading) or len(demand) * 2 > len(leading):
            return None, Counter()
        return prefix, demand

    # -- hooks of the run (daskhpo.run.SearchRun) ------------------------------------------------
    def _extend_results(self, cv_results: dict[str, Any], rows: Sequence[Result]) -> None:
        """Add columns of this search's own to ``cv_results``."""

    def _metadata(
        self, setup: Setup, results: Sequence[Result], stats: Mapping[str, Any], n_splits: int
    ) -> dict[str, Any]:
        """``metadata_`` of a search whose strategy describes itself."""
        assert isinstance(setup.strategy, Describing)
        return dict(setup.strategy.metadata())

    def _fitted(self, setup: Setup) -> None:
        """Called at the end of a successful fit."""

    def _spec(self, n_candidates: int, n_splits: int) -> dict[str, Any]:
        return {
            "search": type(self).__name__,
            "estimator": repr(self.estimator),
            "space": describe_space(
                getattr(
                    self,
                    "param_grid",
                    getattr(self, "param_distributions", getattr(self, "search_space", None)),
                )
            ),
            "scoring": repr(self.scoring),
            "cv": repr(self.cv),
            "n_candidates": n_candidates,
            "n_splits": n_splits,
            # What daskhpo.load needs to rebuild cv_results_ and best_* from the stored trials.
            "error_score": self.error_score,
            "refit": self.refit,
            "return_train_score": bool(self.return_train_score),
        }

    def _watch(self, store: Any, name: str, client: Any) -> Any:
        """Show this search on the live dashboard (printing its URL when verbose); None if off.

        Call ``.finish(status)`` on what it returns when the search ends.
        """
        from .dashboard.server import watch

        return watch(store, name, client, verbose=self.verbose, search=type(self).__name__)

    def plot(self) -> Any:
        """The search's figures as a bokeh layout, read from ``store_``.

        Best score so far against evaluations finished, score against each parameter (one scatter
        per parameter, log axes for parameters spanning decades), for adaptive searches the trials
        alive per bracket and budget and each trial's score against budget, and a sortable table of
        the best trials. Show it with ``bokeh.io.show(search.plot())`` (after
        ``bokeh.io.output_notebook()`` in Jupyter); it can be called while ``fit`` runs in another
        thread.

        Returns
        -------
        bokeh.models.Column
        """
        from sklearn.utils.validation import check_is_fitted

        from .dashboard.plots import plot_store

        check_is_fitted(self, "store_")
        return plot_store(self.store_, name=self.name or type(self).__name__)

    def _slots(self, client: Any) -> int:
        nthreads = client.nthreads()
        if not nthreads:
            client.wait_for_workers(1, timeout=60)
            nthreads = client.nthreads()
        total = max(1, sum(nthreads.values()))
        if self.n_jobs is None:
            return total
        if self.n_jobs < 0:
            return max(1, total + 1 + self.n_jobs)
        return min(total, int(self.n_jobs))


class BaseSearchCV(_DaskSearchMixin):
    """Base class for custom searches, as scikit-learn's ``BaseSearchCV`` is: subclass it and
    override ``_run_search(self, evaluate_candidates)``.

    ``evaluate_candidates(candidate_params, cv=None, more_results=None)`` evaluates a list of
    candidates on the Dask cluster (on the folds of ``cv``, the search's own by default) and returns
    ``cv_results_`` of every candidate evaluated so far; call it as often as the search needs. Every
    result is logged to ``storage``. The parameters are scikit-learn's, plus ``client``, ``cluster``,
    ``storage`` and ``name`` as in :class:`GridSearchCV`.

    Examples
    --------
    >>> class TwoRounds(BaseSearchCV):
    ...     def _run_search(self, evaluate_candidates):
    ...         results = evaluate_candidates([{"max_depth": 1}, {"max_depth": 4}])
    ...         best = results["params"][int(np.argmax(results["mean_test_score"]))]
    ...         evaluate_candidates([{**best, "min_samples_leaf": k} for k in (2, 5)])
    """

    def __init__(
        self,
        estimator: Any,
        *,
        scoring: Any = None,
        n_jobs: int | None = None,
        refit: Any = True,
        cv: Any = None,
        verbose: int = 0,
        pre_dispatch: Any = "2*n_jobs",
        error_score: Any = np.nan,
        return_train_score: bool = True,
        client: Any = None,
        cluster: Any = None,
        storage: Any = None,
        name: str | None = None,
        reuse: Any = True,
        reuse_failures: bool = False,
    ) -> None:
        super().__init__(
            estimator=estimator,
            scoring=scoring,
            n_jobs=n_jobs,
            refit=refit,
            cv=cv,
            verbose=verbose,
            pre_dispatch=pre_dispatch,
            error_score=error_score,
            return_train_score=return_train_score,
        )
        self.client = client
        self.cluster = cluster
        self.storage = storage
        self.name = name
        self.reuse = reuse
        self.reuse_failures = reuse_failures


@register_search("grid")
class GridSearchCV(_DaskSearchMixin):
    """Exhaustive search over a parameter grid, evaluated on a Dask cluster.

    Same parameters and attributes as :class:`sklearn.model_selection.GridSearchCV`, plus ``client``.

    Parameters
    ----------
    estimator : estimator object
        A scikit-learn estimator or pipeline.
    param_grid : dict or list of dicts
        Parameter names mapped to lists of values to try; a list of dicts searches each grid in turn.
    scoring, refit, cv, verbose, error_score, return_train_score
        As in scikit-learn. ``verbose > 0`` also shows a progress bar and the dashboard link.
    n_jobs : int, optional
        Maximum number of concurrent tasks; None or -1 uses every worker thread of the cluster.
    pre_dispatch : str or int
        Accepted for compatibility; the executor sizes its own queue of tasks.
    client : distributed.Client or str, optional
        The cluster to use (a client, or a scheduler address). By default the active client, or else an
        embedded LocalCluster started once per process.
    cluster : str, distributed cluster object or distributed.Client, optional
        The same choice under the name the command line uses (``--cluster``): a target string for
        :func:`daskhpo.connect` (``"ssh://user@h1,h2"``, ``"gateway://host:8000"``,
        ``"kubernetes://ns/name"``, ``"tcp://host:8786"``, ...), a cluster object such as a
        ``LocalCluster`` or ``KubeCluster``, or a client. Give ``client`` or ``cluster``, not both.
    storage : str, optional
        Where trial results are logged: None keeps them in memory; ``"sqlite:///path.db"`` appends each
        finished trial to a SQLite file as it finishes, so that ``fit(..., resume=True)`` can continue
        the search after a crash without recomputing them.
    name : str, optional
        The search's name in ``storage``; by default the estimator's class and a fingerprint of the
        data, settings and candidates, so that the same search finds itself again (rerun without a
        name, a finished search is run again, every fit coming from the unit cache).
    reuse : bool or "all"
        Take (candidate, fold) fits from the store's unit cache instead of computing them again,
        whichever earlier search in ``storage`` (any name) made them: a fit is found only for the
        same data, fold, estimator and parameters, scoring and package versions (see
        :mod:`daskhpo.reuse`). True (default): fits of deterministic estimators only; ``"all"``:
        also estimators whose ``random_state`` is not fixed; False: compute everything. What is
        computed is stored either way. ``stats_["units_reused"]`` counts the fits taken.
    reuse_failures : bool
        Take failed fits from the cache too (by default they are fitted again).
    trial_timeout : float, optional
        Seconds one fit (one candidate on one fold, with its scoring) may run. A fit running longer
        is stopped and recorded as failed with a text saying it timed out (so ``error_score``
        applies: a number records it and the search goes on, ``'raise'`` raises a ``TimeoutError``);
        the worker process running it is restarted to free the slot, and this search's other fits
        that were on that worker run again. With a limit, every fit is its own task. None (the
        default): no limit.
    racing : bool or dict
        Race the candidates over the folds (see :mod:`daskhpo.strategies.racing`): each candidate
        runs on its first 2 folds, then on twice as many, and is dropped as soon as a one-sided
        paired t-test over the folds it ran says it scores lower than the best candidate on those
        same folds (p < 0.05). A dropped candidate's other folds are ``nan`` in ``cv_results_``
        (so it ranks last) and ``n_folds_run`` says how many it ran. A dict sets ``alpha`` and
        ``min_folds``. Needs 3 folds or more. False (the default): every fold of every candidate.

    Attributes
    ----------
    cv_results_, best_estimator_, best_score_, best_params_, best_index_, scorer_, n_splits_,
    refit_time_, multimetric_
        As in scikit-learn.
    store_ : MemoryStore or SQLiteStore
        Every trial result, in completion order (kept even when ``fit`` raises).
    stats_ : dict
        Tasks submitted, units computed and shared, pipeline prefix tasks, worker threads used.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.tree import DecisionTreeClassifier
    >>> from daskhpo import GridSearchCV
    >>> X, y = load_iris(return_X_y=True)
    >>> search = GridSearchCV(DecisionTreeClassifier(random_state=0), {"max_depth": [1, 2, 3]}, cv=3)
    >>> search.fit(X, y).best_params_  # doctest: +SKIP
    {'max_depth': 3}
    """

    _space_name = "param_grid"

    def __init__(
        self,
        estimator: Any,
        param_grid: Any,
        *,
        scoring: Any = None,
        n_jobs: int | None = None,
        refit: Any = True,
        cv: Any = None,
        verbose: int = 0,
        pre_dispatch: Any = "2*n_jobs",
        error_score: Any = np.nan,
        return_train_score: bool = False,
        client: Any = None,
        cluster: Any = None,
        storage: Any = None,
        name: str | None = None,
        reuse: Any = True,
        reuse_failures: bool = False,
        trial_timeout: float | None = None,
        racing: Any = False,
    ) -> None:
        super().__init__(
            estimator=estimator,
            scoring=scoring,
            n_jobs=n_jobs,
            refit=refit,
            cv=cv,
            verbose=verbose,
            pre_dispatch=pre_dispatch,
            error_score=error_score,
            return_train_score=return_train_score,
        )
        self.param_grid = param_grid
        self.client = client
        self.cluster = cluster
        self.storage = storage
        self.name = name
        self.reuse = reuse
        self.reuse_failures = reuse_failures
        self.trial_timeout = trial_timeout
        self.racing = racing

    def _make_strategy(self) -> CandidateList:
        return GridStrategy(self.param_grid)

    _extension_names = ("param_grid",)

    def _extended_settings(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        return {"param_grid": extended_grid(self.param_grid, changes["param_grid"])}


@register_search("random")
class RandomizedSearchCV(_DaskSearchMixin):
    """Randomized search over parameter distributions, evaluated on a Dask cluster.

    Same parameters and attributes as :class:`sklearn.model_selection.RandomizedSearchCV`, plus
    ``client``; for the same ``random_state`` it evaluates exactly the candidates scikit-learn would.
    ``param_distributions`` values may be lists, scipy.stats distributions, or daskhpo's
    :class:`~daskhpo.Float`, :class:`~daskhpo.Int` and :class:`~daskhpo.Categorical`.
    See :class:`GridSearchCV` for the other parameters and attributes.
    """

    _space_name = "param_distributions"

    def __init__(
        self,
        estimator: Any,
        param_distributions: Any,
        *,
        n_iter: int = 10,
        scoring: Any = None,
        n_jobs: int | None = None,
        refit: Any = True,
        cv: Any = None,
        verbose: int = 0,
        pre_dispatch: Any = "2*n_jobs",
        random_state: Any = None,
        error_score: Any = np.nan,
        return_train_score: bool = False,
        client: Any = None,
        cluster: Any = None,
        storage: Any = None,
        name: str | None = None,
        reuse: Any = True,
        reuse_failures: bool = False,
        trial_timeout: float | None = None,
        racing: Any = False,
    ) -> None:
        super().__init__(
            estimator=estimator,
            scoring=scoring,
            n_jobs=n_jobs,
            refit=refit,
            cv=cv,
            verbose=verbose,
            pre_dispatch=pre_dispatch,
            error_score=error_score,
            return_train_score=return_train_score,
        )
        self.param_distributions = param_distributions
        self.n_iter = n_iter
        self.random_state = random_state
        self.client = client
        self.cluster = cluster
        self.storage = storage
        self.name = name
        self.reuse = reuse
        self.reuse_failures = reuse_failures
        self.trial_timeout = trial_timeout
        self.racing = racing

    def _make_strategy(self) -> CandidateList:
        return RandomStrategy(self.param_distributions, self.n_iter, self.random_state)

    _extension_names = ("n_iter",)

    def _extended_settings(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        if self.random_state is None or not isinstance(self.random_state, numbers.Integral):
            raise InvalidSearchError(
                f"RandomizedSearchCV.extend: random_state={self.random_state!r} draws other "
                "candidates each time, so the first ones cannot be kept: fit a search with an "
                "integer random_state to extend it."
            )
        return {"n_iter": larger_count("n_iter", self.n_iter, changes["n_iter"], type(self))}
