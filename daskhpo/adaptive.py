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
    An estimator parameter such as ``n_estimators`` or ``max_iter``, set to the budget. Any estimator
    that has that parameter. Where the estimator can add to a model it has (``warm_start`` forests and
    boosting, XGBoost's ``xgb_model``, LightGBM's ``init_model``), a promoted trial continues its
    model of the previous rung on the worker that holds it (``continuation=``, see
    :mod:`daskhpo.continuation`); other estimators fit from scratch at every rung.

Which evaluations compete for ``best_*`` (``best_from=``): ``"all"`` (successive halving, Hyperband,
ASHA, BOHB) takes the highest mean test score of any trial at any budget, the larger budget on a tie,
then the lower trial id; ``best_estimator_`` is refitted at that budget. ``"top"`` takes only the
evaluations at the largest budget evaluated (scikit-learn's halving searches always do this, see
scikit-learn#24634); ``"last"`` (incremental training and median stopping) each trial's latest
evaluation. With very many trials at a small, noisy budget, the best of them may owe its place to
noise: ``best_from="top"`` then trusts only the budget the search was built to reach.

``"auto"`` (the default) is ``"partial_fit"`` when the estimator has ``partial_fit``, else ``"n_samples"``.
"""

from __future__ import annotations

import difflib
import inspect
import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import sklearn
from dask.base import is_dask_collection, tokenize
from sklearn.base import clone, is_classifier
from sklearn.metrics._scorer import _BaseScorer, _MultimetricScorer, _PassthroughScorer
from sklearn.model_selection import ShuffleSplit, StratifiedShuffleSplit
from sklearn.utils import get_tags

from .exceptions import InvalidSearchError
from .execution.work import CrossValWork, StreamWork, is_distributed
from .registry import register_search
from .run import FitInput, Setup
from .search import _DaskSearchMixin, _n_rows
from .space import as_seed, describe_space
from .strategies.adaptive import ASHA, Hyperband, Incremental, RandomSource, SuccessiveHalving
from .strategies.base import Describing, Result
from .strategies.median import MedianStopping

__all__ = [
    "SuccessiveHalvingSearchCV",
    "HyperbandSearchCV",
    "ASHASearchCV",
    "IncrementalSearchCV",
    "BOHBSearchCV",
    "MedianStoppingSearchCV",
]

_BUILTIN_RESOURCES = ("partial_fit", "n_samples")


class _AdaptiveSearchCV(_DaskSearchMixin):
    """The fit loop shared by the adaptive searches; subclasses build the strategy."""

    _space_name = "param_distributions"
    _needs_max_budget = True

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
            if is_distributed(self.estimator):
                resource = "n_estimators"  # boosting rounds: the budget of a distributed booster
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
        return resource

    def _check_adaptive_settings(self, resource: str, scorers: Any) -> None:
        """The rules between settings, and those that depend on the resource (each setting on its
        own was checked by ``_check_settings``)."""
        if self.test_size is not None and self.cv is not None:
            raise InvalidSearchError(
                f"test_size={self.test_size!r} and cv={self.cv!r} both given: validate on a held-out "
                "share (test_size) or by cross-validation (cv), not both."
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
        if self._needs_max_budget and resource != "n_samples" and self.max_budget is None:
            unit = "partial_fit calls" if resource == "partial_fit" else f"the value of {resource}"
            raise InvalidSearchError(
                f"max_budget is required with resource={resource!r}: the most {unit} a trial gets."
            )

    def _seed(self) -> int:
        return as_seed(self.random_state)

    def _budget_bounds(self, resource: str, X: Any, y: Any, n_splits: int) -> tuple[Any, Any]:
        min_budget = getattr(self, "min_budget", None)
        given = min_budget is not None
        max_budget = self.max_budget
        if resource == "n_samples":
            n = _length(X, y)
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
            counts = {
                "n_samples": "training samples per fit",
                "partial_fit": "partial_fit calls per trial",
            }.get(resource, f"the value of the estimator parameter {resource!r}")
            if given:
                raise InvalidSearchError(
                    f"min_budget={min_budget} is above max_budget={max_budget} (the budget counts "
                    f"{counts}, resource={resource!r}): lower min_budget or raise max_budget."
                )
            why = (
                f"two samples per fold{' and class' if is_classifier(self.estimator) else ''}, as "
                "scikit-learn's halving starts"
                if resource == "n_samples"
                else "one"
            )
            raise InvalidSearchError(
                f"max_budget={max_budget} is below the smallest budget {min_budget} (the default "
                f"min_budget: {why}). The budget counts {counts} (resource={resource!r}): raise "
                "max_budget, or set min_budget to at most max_budget."
            )
        return min_budget, max_budget

    # -- what to evaluate (daskhpo.run.SearchRun asks) -------------------------------------------
    def _setup(self, data: FitInput) -> Setup:
        dicts = self._space_dicts()
        self._check_param_names([{k: d[k] for k in d} for d in dicts])
        X, y, fit_params = data.X, data.y, dict(data.fit_params)
        resource = self._checked_resource(X)
        self._check_adaptive_settings(resource, data.scorers)
        seed = self._seed()
        folds = None
        if is_distributed(self.estimator):
            return self._distributed_setup(data, resource, seed)
        if resource != "partial_fit" and is_dask_collection(X):
            # Fits from scratch: as in a grid search, X is computed on the cluster for each task's
            # worker (it must fit in one worker's memory); y and the folds are planned here.
            X, y, _ = self._labels(data)
        if not is_dask_collection(X) or resource != "partial_fit":
            folds = self._adaptive_folds(X, y, data.groups, seed, resource)
            n_splits = len(folds)
        elif self.cv is not None and not isinstance(self.cv, numbers.Integral):
            raise InvalidSearchError(
                f"cv={self.cv!r}: with a dask collection, folds are made of whole blocks, so cv "
                "must be a number of folds (or use test_size for a held-out share)."
            )
        else:
            n_splits = int(self.cv) if self.cv is not None else 1
        min_budget, max_budget = self._budget_bounds(resource, X, y, n_splits)
        strategy = self._make_adaptive(
            RandomSource(self.param_distributions, seed), min_budget, max_budget
        )
        data_token = self._data_token(X)  # hashes in-memory data: once per fit
        if resource == "partial_fit":
            per_sample = [k for k, v in fit_params.items() if _n_rows(v) == _n_rows(X)]
            if per_sample:
                raise InvalidSearchError(
                    f"fit parameter(s) {per_sample} have one value per sample, which resource="
                    "'partial_fit' cannot split into blocks yet: pass them as part of the data or use "
                    "resource='n_samples'."
                )
            work: Any = StreamWork(
                X=X,
                y=y,
                estimator=clone(self.estimator),
                scorer=data.scorers,
                folds=folds,
                n_folds=n_splits if (is_dask_collection(X) and self.cv is not None) else None,
                test_size=self.test_size if self.test_size is not None else 0.2,
                chunk_size=self.chunk_size,
                persist=self.persist,
                seed=seed,
                classes=fit_params.pop("classes", None),
                fit_params=fit_params,
            )
        else:
            work = CrossValWork(
                X=X,
                y=y,
                folds=folds or [],
                estimator=clone(self.estimator),
                scorer=data.scorers,
                token=tokenize(data_token, y, folds, self.estimator, self.scoring, seed),
                fit_params=fit_params,
                return_train_score=bool(self.return_train_score),
                subsample_seed=seed
                if not isinstance(self.random_state, numbers.Integral)
                else self.random_state,
                budget_param=resource,
                error_score=self.error_score,
                config=sklearn.get_config(),
                continuation=self.continuation,
            )
            work.content, work.versions = self._unit_content(
                data_token, y, fit_params, {}, resource, repr(work.subsample_seed)
            )
        fingerprint = tokenize(
            data_token,
            self._data_token(y) if y is not None else None,
            self.estimator,
            repr(self.param_distributions),
            seed,
            resource,
            min_budget,
            max_budget,
            getattr(self, "reduction_factor", None),
            # continuation="auto" changes only how fast (its continued models equal fresh fits).
            self.continuation is True,
            self.scoring,
            repr(self.cv),
            self.test_size,
            type(self).__name__,
        )
        return self._adaptive_setup(
            strategy,
            work,
            fingerprint,
            resource,
            (min_budget, max_budget),
            n_splits,
            f"{n_splits} fold(s), on {{n_slots}} Dask worker threads",
        )

    def _adaptive_setup(
        self,
        strategy: Any,
        work: Any,
        fingerprint: str,
        resource: str,
        budgets: tuple[Any, Any],
        n_splits: int,
        where: str,
    ) -> Setup:
        """The :class:`Setup` every adaptive search answers (``where``: the header's tail)."""
        min_budget, max_budget = budgets
        return Setup(
            strategy=strategy,
            work=work,
            fingerprint=fingerprint,
            settings=self._adaptive_spec(resource, min_budget, max_budget, n_splits),
            best_rule=self.best_from,
            name_prefix=type(self).__name__,
            header=f"{type(self).__name__}: budget = {resource}, from {min_budget} to "
            f"{max_budget}, {where}",
            budget_param=resource,
            history=True,
            extra={"resource": resource, "min_budget": min_budget, "max_budget": max_budget},
        )

    def _distributed_setup(self, data: FitInput, resource: str, seed: int) -> Setup:
        """An estimator that trains across the cluster: every evaluation is a distributed fit with
        the budget in an estimator parameter (boosting rounds), folds of whole partitions."""
        if resource in _BUILTIN_RESOURCES:
            raise InvalidSearchError(
                f"resource={resource!r}: {type(self.estimator).__name__} trains across the cluster, "
                "so the budget must be one of its parameters, such as resource='n_estimators' "
                "(boosting rounds)."
            )
        if self.test_size is not None:
            raise InvalidSearchError(
                f"test_size: {type(self.estimator).__name__} is scored on folds of whole partitions; "
                "use cv=<number of folds> instead."
            )
        work = self._cluster_fit_work(data, budget_param=resource, seed=seed, default_folds=3)
        n_splits = len(work.folds)
        min_budget, max_budget = self._budget_bounds(resource, data.X, data.y, n_splits)
        strategy = self._make_adaptive(
            RandomSource(self.param_distributions, seed), min_budget, max_budget
        )
        fingerprint = tokenize(
            work.token,
            repr(self.param_distributions),
            min_budget,
            max_budget,
            getattr(self, "reduction_factor", None),
            type(self).__name__,
        )
        return self._adaptive_setup(
            strategy,
            work,
            fingerprint,
            resource,
            (min_budget, max_budget),
            n_splits,
            f"{n_splits} folds of whole partitions, distributed fits",
        )

    def _metadata(
        self, setup: Setup, results: Sequence[Result], stats: Mapping[str, Any], n_splits: int
    ) -> dict[str, Any]:
        assert isinstance(setup.strategy, Describing)
        meta = dict(setup.strategy.metadata())
        meta.update(setup.extra)
        if "partial_fit_calls" in stats:
            meta["partial_fit_calls"] = stats["partial_fit_calls"]
            # Passes over its fold's training blocks (in a new seeded order each pass), per trial.
            per_fold = stats.get("train_blocks_per_fold") or [1]
            most: dict[int, float] = {}
            for r in results:
                most[r.trial_id] = max(most.get(r.trial_id, 0.0), float(r.job.budget or 0))
            meta["train_blocks_per_fold"] = list(per_fold)
            meta["epochs"] = {
                t: round(b / max(1, min(per_fold)), 3) for t, b in sorted(most.items())
            }
        else:
            # Every evaluation fits from scratch: the budget spent is the sum of the budgets evaluated.
            meta["budget_spent"] = float(sum(float(r.job.budget or 0) for r in results)) * n_splits
        meta["tasks"] = stats["tasks"]
        return meta

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
                    for tr, te in splitter.split(np.empty((_length(X, y), 0)), y, groups)
                ]
            except ValueError as exc:
                raise InvalidSearchError(
                    f"test_size={size!r} cannot split this data: {exc}"
                ) from exc
        return self._plan_folds(X, y, groups)

    def _adaptive_spec(
        self, resource: str, min_budget: Any, max_budget: Any, n_splits: int
    ) -> dict[str, Any]:
        return {
            "search": type(self).__name__,
            "estimator": repr(self.estimator),
            "space": describe_space(self.param_distributions),
            "scoring": repr(self.scoring),
            "resource": resource,
            "min_budget": min_budget,
            "max_budget": max_budget,
            "reduction_factor": getattr(self, "reduction_factor", None),
            "n_splits": n_splits,
        }


def _length(X: Any, y: Any) -> int:
    """The number of rows of X; a dask collection's is counted on the cluster (or read off y)."""
    n = _n_rows(X)
    if n is not None:
        return n
    if y is not None and _n_rows(y) is not None:
        return int(_n_rows(y))  # type: ignore[arg-type]
    return int(len(X))


_BUDGET_PARAMS = ("n_estimators", "max_iter", "n_iter", "max_epochs", "num_boost_round")


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


# The constructor arguments every adaptive search shares, in the order their signatures list them
# after the search's own arguments.
_COMMON_PARAMS: tuple[tuple[str, Any], ...] = (
    ("resource", "auto"),
    ("test_size", None),
    ("cv", None),
    ("scoring", None),
    ("refit", True),
    ("error_score", np.nan),
    ("return_train_score", False),
    ("random_state", None),
    ("chunk_size", None),
    ("persist", "auto"),
    ("n_jobs", None),
    ("verbose", 0),
    ("client", None),
    ("cluster", None),
    ("storage", None),
    ("name", None),
    ("reuse", True),
    ("reuse_failures", False),
    ("continuation", "auto"),
    ("best_from", "all"),
)


def adaptive_init(**own: Any) -> Any:
    """An ``__init__`` taking ``estimator, param_distributions, *, <own>, <common>``.

    ``own`` maps the search's own arguments to their defaults. The method has a real signature
    (``inspect.signature``, hence ``get_params``, ``clone``, specs and IDEs see every argument) and
    stores each argument under its name, as scikit-learn requires.
    """
    names = [*own, *(k for k, _ in _COMMON_PARAMS if k not in own)]
    defaults = {**dict(_COMMON_PARAMS), **own}
    kw = inspect.Parameter.KEYWORD_ONLY
    signature = inspect.Signature(
        [
            inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD),
            inspect.Parameter("estimator", inspect.Parameter.POSITIONAL_OR_KEYWORD),
            inspect.Parameter("param_distributions", inspect.Parameter.POSITIONAL_OR_KEYWORD),
            *(inspect.Parameter(n, kw, default=defaults[n]) for n in names),
        ]
    )

    def __init__(self: Any, estimator: Any, param_distributions: Any, **kwargs: Any) -> None:
        unknown = sorted(set(kwargs) - set(names))
        if unknown:
            raise TypeError(
                f"{type(self).__name__}.__init__() got unexpected keyword argument(s) {unknown}"
            )
        self.estimator = estimator
        self.param_distributions = param_distributions
        self.pre_dispatch = "2*n_jobs"  # BaseSearchCV's, not a parameter of these searches
        for n in names:
            setattr(self, n, kwargs.get(n, defaults[n]))

    __init__.__signature__ = signature  # type: ignore[attr-defined]
    return __init__


@register_search("halving")
class SuccessiveHalvingSearchCV(_AdaptiveSearchCV):
    """Successive halving over ``n_candidates`` random candidates, with a barrier at every rung.

    The schedule equals scikit-learn's ``HalvingRandomSearchCV`` (without aggressive elimination): rung
    ``i`` gives ``min_budget * reduction_factor**i`` of the budget to the best
    ``ceil(n / reduction_factor)`` of the previous rung. ``best_*`` come from every rung
    (``best_from="top"``: from the last rung only, as in scikit-learn).
    """

    _needs_max_budget = False
    _strict_params = frozenset()  # n_candidates='exhaust' is this search's default

    __init__ = adaptive_init(
        n_candidates="exhaust", min_budget=None, max_budget=None, reduction_factor=3
    )

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

    def _fitted(self, setup: Setup) -> None:
        # scikit-learn's names for the schedule that was run.
        strategy = setup.strategy
        assert isinstance(strategy, SuccessiveHalving)
        self.n_resources_ = list(strategy.n_resources)
        self.n_candidates_ = list(strategy.n_candidates)


@register_search("hyperband")
class HyperbandSearchCV(_AdaptiveSearchCV):
    """Hyperband (Li et al. 2018): brackets of successive halving that trade the number of candidates
    against the budget each starts with. Brackets run side by side, each with its own rung barrier.
    ``best_*`` come from every evaluation
    (``best_from="top"``: from those at ``max_budget``)."""

    __init__ = adaptive_init(max_budget=None, min_budget=None, reduction_factor=3)

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
    on the order results arrive in. ``best_*`` come from every evaluation (``best_from="top"``: from
    those at the largest budget reached).
    ``n_candidates`` trials are started (``n_trials``, its former name, is accepted with a
    ``FutureWarning``)."""

    __init__ = adaptive_init(
        n_candidates=50, n_trials="deprecated", max_budget=None, min_budget=None, reduction_factor=3
    )

    def _make_adaptive(self, source: RandomSource, min_budget: Any, max_budget: Any) -> Any:
        return ASHA(
            source,
            n_trials=self._n_candidates(),
            max_budget=max_budget,
            min_budget=min_budget,
            reduction_factor=self.reduction_factor,
        )


@register_search("incremental")
class IncrementalSearchCV(_AdaptiveSearchCV):
    """Train every candidate in steps of ``step`` budget, scoring after each; a candidate stops when its
    score has not improved by more than ``tol`` for ``patience`` scores, or at ``max_budget``.
    ``best_*`` come from each candidate's last score."""

    _strict_params = frozenset({"n_candidates", "step"})  # no step=None: it trains by step

    __init__ = adaptive_init(
        n_candidates=10, max_budget=None, step=1, patience=None, tol=1e-3, best_from="last"
    )

    def _make_adaptive(self, source: RandomSource, min_budget: Any, max_budget: Any) -> Any:
        return Incremental(
            source,
            n_candidates=self.n_candidates,
            max_budget=max_budget,
            step=self.step,
            patience=self.patience,
            tol=self.tol,
        )


@register_search("median")
class MedianStoppingSearchCV(_AdaptiveSearchCV):
    """Median stopping (Golovin et al. 2017, Google Vizier): every trial trains in steps of ``step``
    budget and is stopped once its best score is below the median of the other trials' running
    averages at the same budget (after ``grace_budget``, with at least ``min_trials`` others).
    Asynchronous, like ASHA. ``best_*`` come from each trial's last score. See
    :mod:`daskhpo.strategies.median`."""

    __init__ = adaptive_init(
        n_candidates=20,
        max_budget=None,
        min_budget=None,
        step=None,
        grace_budget=None,
        min_trials=3,
        best_from="last",
    )

    def _make_adaptive(self, source: RandomSource, min_budget: Any, max_budget: Any) -> Any:
        return MedianStopping(
            source,
            n_candidates=self.n_candidates,
            max_budget=max_budget,
            min_budget=min_budget,
            step=self.step,
            grace_budget=self.grace_budget,
            min_trials=self.min_trials,
        )


@register_search("bohb")
class BOHBSearchCV(HyperbandSearchCV):
    """BOHB (Falkner et al. 2018): Hyperband whose candidates come from Optuna's TPE sampler fitted on
    the results of the largest budget with enough of them (a share ``random_fraction`` stays random).
    Brackets open one after the other so that later ones learn from earlier ones. Needs Optuna
    (``pip install "daskhpo[bayes]"``). ``param_distributions`` may use daskhpo's ``Float``/``Int``/
    ``Categorical``, lists, or scipy.stats ``uniform``/``loguniform``/``randint``.
    """

    __init__ = adaptive_init(
        max_budget=None,
        min_budget=None,
        reduction_factor=3,
        random_fraction=1 / 3,
        min_points=None,
    )

    def _make_adaptive(self, source: RandomSource, min_budget: Any, max_budget: Any) -> Any:
        from .strategies.bohb import BOHB

        return BOHB(
            self.param_distributions,
            max_budget=max_budget,
            min_budget=min_budget,
            reduction_factor=self.reduction_factor,
            random_fraction=self.random_fraction,
            min_points=self.min_points,
            random_state=self._seed(),
        )
