"""scikit-learn's halving searches, with every evaluation on the Dask cluster.

:class:`HalvingGridSearchCV` and :class:`HalvingRandomSearchCV` are scikit-learn's own classes
(``sklearn.model_selection``, experimental) whose ``evaluate_candidates`` is daskhpo's: scikit-learn
decides the iterations, the resources and which candidates go on, exactly as it does; daskhpo fits
and scores each iteration's candidates on the cluster, logs every result to ``storage`` and refits
the best there. Same parameters, attributes and ``cv_results_`` as scikit-learn's, plus ``client``,
``cluster``, ``storage`` and ``name``.

:class:`daskhpo.SuccessiveHalvingSearchCV` is daskhpo's own successive halving: budgets in
``partial_fit`` calls that continue models on the cluster, asynchronous promotion, resume.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.experimental import enable_halving_search_cv  # noqa: F401
from sklearn.model_selection import HalvingGridSearchCV as _HalvingGrid
from sklearn.model_selection import HalvingRandomSearchCV as _HalvingRandom

from .search import BaseSearchCV

__all__ = ["HalvingGridSearchCV", "HalvingRandomSearchCV"]


def _check_settings(search: Any) -> None:
    """scikit-learn's parameter checks (its own wording), then daskhpo's common ones."""
    search._validate_params()
    search._check_target_and_estimator()


class HalvingGridSearchCV(_HalvingGrid, BaseSearchCV):
    """scikit-learn's ``HalvingGridSearchCV``, evaluated on a Dask cluster (see the module docstring).

    Needs no ``enable_halving_search_cv`` import: this module makes it.
    """

    def __init__(
        self,
        estimator: Any,
        param_grid: Any,
        *,
        factor: Any = 3,
        resource: str = "n_samples",
        max_resources: Any = "auto",
        min_resources: Any = "exhaust",
        aggressive_elimination: bool = False,
        cv: Any = 5,
        scoring: Any = None,
        refit: Any = True,
        error_score: Any = np.nan,
        return_train_score: bool = True,
        random_state: Any = None,
        n_jobs: int | None = None,
        verbose: int = 0,
        client: Any = None,
        cluster: Any = None,
        storage: Any = None,
        name: str | None = None,
        reuse: Any = True,
        reuse_failures: bool = False,
    ) -> None:
        _HalvingGrid.__init__(
            self,
            estimator,
            param_grid,
            factor=factor,
            resource=resource,
            max_resources=max_resources,
            min_resources=min_resources,
            aggressive_elimination=aggressive_elimination,
            cv=cv,
            scoring=scoring,
            refit=refit,
            error_score=error_score,
            return_train_score=return_train_score,
            random_state=random_state,
            n_jobs=n_jobs,
            verbose=verbose,
        )
        self.client = client
        self.cluster = cluster
        self.storage = storage
        self.name = name
        self.reuse = reuse
        self.reuse_failures = reuse_failures

    def _check_settings(self) -> None:
        _check_settings(self)


class HalvingRandomSearchCV(_HalvingRandom, BaseSearchCV):
    """scikit-learn's ``HalvingRandomSearchCV``, evaluated on a Dask cluster (see the module
    docstring)."""

    def __init__(
        self,
        estimator: Any,
        param_distributions: Any,
        *,
        n_candidates: Any = "exhaust",
        factor: Any = 3,
        resource: str = "n_samples",
        max_resources: Any = "auto",
        min_resources: Any = "smallest",
        aggressive_elimination: bool = False,
        cv: Any = 5,
        scoring: Any = None,
        refit: Any = True,
        error_score: Any = np.nan,
        return_train_score: bool = True,
        random_state: Any = None,
        n_jobs: int | None = None,
        verbose: int = 0,
        client: Any = None,
        cluster: Any = None,
        storage: Any = None,
        name: str | None = None,
        reuse: Any = True,
        reuse_failures: bool = False,
    ) -> None:
        _HalvingRandom.__init__(
            self,
            estimator,
            param_distributions,
            n_candidates=n_candidates,
            factor=factor,
            resource=resource,
            max_resources=max_resources,
            min_resources=min_resources,
            aggressive_elimination=aggressive_elimination,
            cv=cv,
            scoring=scoring,
            refit=refit,
            error_score=error_score,
            return_train_score=return_train_score,
            random_state=random_state,
            n_jobs=n_jobs,
            verbose=verbose,
        )
        self.client = client
        self.cluster = cluster
        self.storage = storage
        self.name = name
        self.reuse = reuse
        self.reuse_failures = reuse_failures

    def _check_settings(self) -> None:
        _check_settings(self)
