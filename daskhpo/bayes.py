"""Bayesian optimization on a Dask cluster: :class:`BayesSearchCV`.

Suggestions come from Optuna's samplers (TPE, Gaussian process, CMA-ES, NSGA-II, random) through
:class:`~daskhpo.strategies.bayes.BayesStrategy`; each trial is the k-fold cross-validated score of one
configuration, its folds running as parallel tasks. With W worker threads, W trials are in flight at
once and a new one is asked as soon as any finishes. Optuna is an optional dependency:
``pip install "daskhpo[bayes]"``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .exceptions import InvalidSearchError, InvalidSearchTypeError
from .registry import register_search
from .search import _DaskSearchMixin
from .strategies.base import Result
from .strategies.bayes import TIMING_OBJECTIVES, BayesStrategy

__all__ = ["BayesSearchCV"]

_DIRECTIONS = ("maximize", "minimize")


@register_search("bayes")
class BayesSearchCV(_DaskSearchMixin):
    """Sequential model-based (Bayesian) search, evaluated on a Dask cluster.

    The parameters and attributes of scikit-learn's search estimators, plus the ones below.

    Parameters
    ----------
    estimator : estimator object
        A scikit-learn estimator or pipeline.
    search_space : dict or list of dicts
        Parameter names mapped to :class:`~daskhpo.Float`, :class:`~daskhpo.Int`,
        :class:`~daskhpo.Categorical`, lists of values, or frozen ``scipy.stats`` distributions
        (``uniform``, ``loguniform``, ``randint``). A list of dicts is a set of conditional branches
        (a trial picks one branch and sets only its parameters). A ``Categorical`` whose choices are all
        dicts is a nested choice: a trial picks one dict and its entries join the trial's parameters.
    n_candidates : int
        Number of trials (configurations evaluated), counting those replayed by ``resume``.
    n_trials : int, deprecated
        The former name of ``n_candidates`` (every facade now says ``n_candidates``); still accepted,
        with a ``FutureWarning``.
    sampler : str
        ``"tpe"``, ``"gp"`` (needs PyTorch), ``"cmaes"``, ``"random"``, ``"nsga2"``, or ``"auto"``:
        TPE for one objective, NSGA-II for several.
    sampler_options : dict, optional
        Keyword arguments for the Optuna sampler (for example ``{"n_startup_trials": 5}``).
    directions : str, sequence or dict, optional
        What the sampler optimizes. None: maximize the refit metric (the first metric when ``refit`` is
        not a metric name). A dict maps objective names to ``"maximize"``/``"minimize"``; names are
        metrics of ``scoring`` (a single scorer is ``"score"`` or its name) or ``"fit_time"`` /
        ``"score_time"`` (mean seconds per fold). A list gives one direction per metric of
        ``scoring``, in order. Two or more objectives make a multi-objective search.
    n_parallel : int, optional
        Trials in flight at once; None uses every worker thread the search runs on.
    scoring, refit, cv, verbose, error_score, return_train_score, n_jobs, pre_dispatch
        As in scikit-learn's search estimators.
    random_state : int, RandomState, Generator or None
        Seeds the sampler. The suggestion for trial ``i`` depends on this seed, ``i`` and the results
        told before it was asked.
    client, cluster, storage, name, reuse, reuse_failures, trial_timeout, racing
        As in :class:`~daskhpo.GridSearchCV`. A trial with a fold stopped by ``trial_timeout`` is
        failed, and told to the sampler as failed.
    warm_start : bool
        Before the first suggestion, tell the sampler every configuration of this search space that
        an earlier search in ``storage`` (any name, any search type) evaluated on every fold with the
        same data, folds, estimator, scoring and package versions, with its scores. They guide the
        sampler and are counted in ``stats_["warm_start_trials"]``; they are not rows of
        ``cv_results_``, and a suggestion equal to one of them is taken from the unit cache.

    Attributes
    ----------
    cv_results_, best_estimator_, best_score_, best_params_, best_index_, scorer_, n_splits_,
    refit_time_, multimetric_
        As in scikit-learn; ``cv_results_`` has one row per trial, in trial order.
    pareto_front_ : list of dict
        Multi-objective searches only: the Pareto-optimal trials (``index`` into ``cv_results_``,
        ``params``, ``values`` of the objectives), best first by the rule below. ``cv_results_`` then
        also has an ``is_pareto_optimal`` column.
    stats_ : dict
        As in :class:`~daskhpo.GridSearchCV`, plus ``suggestions``, ``duplicate_suggestions``
        (suggestions equal to an earlier trial's configuration), ``duplicates_of_running`` (of those,
        equal to a trial still being evaluated), ``trials_failed``, ``max_trials_in_flight`` and
        ``sampler``.

    Notes
    -----
    Failed trials (any fold raised, or a non-finite objective) are told to the sampler as failures,
    never as scores; ``cv_results_`` records them with ``error_score`` like scikit-learn does.

    With several objectives, ``best_*`` is the Pareto-optimal trial with the best mean test score of
    the refit metric (``refit`` names it; with one scorer it is that scorer), ties broken by the
    objectives in the order given. ``refit`` may also be a callable, which gets ``cv_results_``.

    ``fit(X, y, resume=True)`` with ``storage="sqlite:///..."`` replays the stored trials into a fresh
    study (as completed or failed Optuna trials) and asks the remaining ones. The replayed trials'
    parameters and scores are exactly the stored ones. With one trial in flight (``n_parallel=1``) and
    TPE or random sampling, the trials asked after resuming are also the ones an uninterrupted run
    would have asked (each suggestion's seed is derived from ``random_state`` and the trial number);
    with several in flight, which trials were running when the search stopped (they
    are lost and asked anew) and the order in which trials finish change the history the sampler sees,
    so later suggestions differ. CMA-ES and NSGA-II keep their population in the study, which a
    replay does not restore: they start a new population after resuming.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.svm import SVC
    >>> from daskhpo import BayesSearchCV, Float
    >>> X, y = load_iris(return_X_y=True)
    >>> search = BayesSearchCV(SVC(), {"C": Float(1e-2, 1e2, log=True)}, n_candidates=20, random_state=0)
    >>> search.fit(X, y).best_params_  # doctest: +SKIP
    {'C': 3.1...}
    """

    _space_name = "search_space"

    def __init__(
        self,
        estimator: Any,
        search_space: Any,
        *,
        n_candidates: int = 50,
        n_trials: Any = "deprecated",
        sampler: str = "auto",
        sampler_options: Mapping[str, Any] | None = None,
        directions: Any = None,
        n_parallel: int | None = None,
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
        warm_start: bool = False,
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
        self.search_space = search_space
        self.n_candidates = n_candidates
        self.n_trials = n_trials
        self.sampler = sampler
        self.sampler_options = sampler_options
        self.directions = directions
        self.n_parallel = n_parallel
        self.random_state = random_state
        self.client = client
        self.cluster = cluster
        self.storage = storage
        self.name = name
        self.reuse = reuse
        self.reuse_failures = reuse_failures
        self.warm_start = warm_start
        self.trial_timeout = trial_timeout
        self.racing = racing

    # -- what to optimize -------------------------------------------------------------------------
    def _objectives(self) -> list[tuple[str, str]]:
        """(name, direction) of each objective; [] means: maximize the refit metric."""
        d = self.directions
        if d is None:
            return []
        metrics = self._metric_names()
        known = None if callable(self.scoring) else [*metrics, *TIMING_OBJECTIVES]
        if isinstance(d, str):
            pairs = [(self.refit if isinstance(self.refit, str) else metrics[0], d)]
        elif isinstance(d, Mapping):
            pairs = list(d.items())
        elif isinstance(d, Sequence):
            if callable(self.scoring) or len(d) != len(metrics):
                raise InvalidSearchError(
                    f"directions={d!r} gives {len(d)} direction(s) for the metrics of scoring="
                    f"{self.scoring!r}: give one per metric, or a dict such as "
                    "{'accuracy': 'maximize', 'fit_time': 'minimize'}."
                )
            pairs = list(zip(metrics, d, strict=True))
        else:
            raise InvalidSearchTypeError(
                f"directions={d!r}: use 'maximize'/'minimize', a list with one per metric, or a dict "
                "of objective names to directions."
            )
        if not pairs:
            raise InvalidSearchError(
                "directions={} names no objective: leave it None to maximize the refit metric."
            )
        out = []
        for name, direction in pairs:
            if direction not in _DIRECTIONS:
                raise InvalidSearchError(
                    f"directions has {direction!r} for {name!r}: use 'maximize' or 'minimize'."
                )
            if isinstance(self.scoring, str) and name == self.scoring and metrics == ["score"]:
                name = "score"  # a single scorer's metric is called "score" in cv_results_
            if known is not None and name not in known:
                raise InvalidSearchError(
                    f"directions names {name!r}, which is neither a metric of scoring={self.scoring!r} "
                    f"nor a timing: use one of {', '.join(map(repr, known))}."
                )
            out.append((str(name), str(direction)))
        if len({n for n, _ in out}) != len(out):
            raise InvalidSearchError(f"directions={d!r} names an objective twice.")
        return out

    _extension_names = ("n_candidates",)

    def _extended_settings(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        from .search import larger_count

        total = larger_count(
            "n_candidates", self._n_candidates(), changes["n_candidates"], type(self)
        )
        old = getattr(self, "n_trials", "deprecated")
        if not (isinstance(old, str) and old == "deprecated"):  # counted by the old name
            return {"n_trials": total}
        return {"n_candidates": total}

    def _make_strategy(self) -> BayesStrategy:
        objectives = self._objectives()
        sampler = self.sampler
        if sampler == "auto":
            sampler = "nsga2" if len(objectives) > 1 else "tpe"
        # sampler, n_parallel, sampler_options and n_candidates were checked by _check_settings.
        return BayesStrategy(
            self.search_space,
            self._n_candidates(),
            sampler=sampler,
            sampler_options=self.sampler_options,
            random_state=self.random_state,
            objectives=objectives,
            max_in_flight=self.n_parallel,
        )

    def _example_params(self, strategy: Any) -> Any:
        return strategy.example_params()

    # -- multi-objective results --------------------------------------------------------------------
    def _extend_results(self, cv_results: dict[str, Any], rows: Sequence[Result]) -> None:
        """With several objectives: the ``is_pareto_optimal`` column and ``pareto_front_``."""
        self.__dict__.pop("pareto_front_", None)  # from an earlier fit
        objectives = self._objectives()
        if len(objectives) < 2:
            return
        front = self._pareto(cv_results, objectives, [r.failed for r in rows])
        mask = np.zeros(len(cv_results["params"]), dtype=bool)
        mask[front] = True
        cv_results["is_pareto_optimal"] = mask
        self.pareto_front_ = [
            {
                "index": int(i),
                "params": cv_results["params"][i],
                "values": {name: float(cv_results[_column(name)][i]) for name, _ in objectives},
            }
            for i in front
        ]

    def _pareto(
        self,
        results: Mapping[str, Any],
        objectives: list[tuple[str, str]],
        failed_rows: Sequence[bool],
    ) -> list[int]:
        """Indices of the Pareto-optimal trials, best first by the documented rule."""
        signs = np.array([1.0 if d == "maximize" else -1.0 for _, d in objectives])
        values = (
            np.column_stack([np.asarray(results[_column(n)], dtype=float) for n, _ in objectives])
            * signs
        )
        failed = np.asarray(failed_rows, dtype=bool)
        ok = ~failed & np.all(np.isfinite(values), axis=1)
        front = []
        for i in np.flatnonzero(ok):
            others = values[ok]
            dominated = np.any(
                np.all(others >= values[i], axis=1) & np.any(others > values[i], axis=1)
            )
            if not dominated:
                front.append(int(i))
        refit_col = self._refit_column(results)

        def key(i: int) -> tuple[float, ...]:
            head = results[refit_col][i] if refit_col else -np.inf
            head = -np.inf if not np.isfinite(head) else head
            return (-float(head), *(-values[i]).tolist())

        return sorted(front, key=key)

    def _refit_column(self, results: Mapping[str, Any]) -> str | None:
        if isinstance(self.refit, str) and f"mean_test_{self.refit}" in results:
            return f"mean_test_{self.refit}"
        if "mean_test_score" in results:
            return "mean_test_score"
        return None

    def _select_best_index(self, refit: Any, refit_metric: Any, results: Any) -> int:
        front = getattr(self, "pareto_front_", None)
        if callable(refit) or len(self._objectives()) < 2:
            return int(super()._select_best_index(refit, refit_metric, results))
        if not front:
            raise InvalidSearchError(
                "no trial has finite values for every objective of directions=, so there is no "
                "Pareto front to pick best_params_ from."
            )
        return int(front[0]["index"])


def _column(name: str) -> str:
    if name in TIMING_OBJECTIVES:
        return f"mean_{name}"
    return f"mean_test_{name}"
