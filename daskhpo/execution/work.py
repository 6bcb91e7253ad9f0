"""The two kinds of work a search can ask an executor for, as plain data (no dask import).

A facade fills one of these; :func:`daskhpo.execution.base.make_executor` turns it into an executor.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["ClusterFitWork", "CrossValWork", "StreamWork", "DISTRIBUTED_MODULES", "is_distributed"]

#: Modules whose estimators train on dask collections across the cluster (one fit is itself a
#: distributed computation): a search runs their fits from the client, a few at a time.
DISTRIBUTED_MODULES = ("xgboost.dask", "lightgbm.dask")


def is_distributed(estimator: Any) -> bool:
    """Whether ``estimator`` (or a pipeline's last step) fits on dask collections itself."""
    final = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    module = type(final).__module__
    return any(module == m or module.startswith(m + ".") for m in DISTRIBUTED_MODULES)


@dataclass
class CrossValWork:
    """Fit-and-score units: every job is fitted from scratch on each fold (grid, random, Bayesian
    searches, and adaptive ones whose budget is a number of samples or an estimator parameter).

    ``X`` may be a dask collection: it is then computed on the cluster, never on the client.
    ``budget_param`` puts a job's budget into its params: ``"n_samples"`` subsamples each fold (as
    scikit-learn's halving searches do), another name sets that estimator parameter.
    """

    X: Any
    y: Any
    folds: list[tuple[np.ndarray, np.ndarray]]
    estimator: Any
    scorer: Any
    token: str  # deterministic token of data, estimator, scoring, folds and settings
    fit_params: dict[str, Any] = field(default_factory=dict)
    score_params: dict[str, Any] = field(default_factory=dict)
    return_train_score: bool = False
    score_transformed: bool = True
    subsample_seed: Any = None
    budget_param: str | None = None
    trial_timeout: float | None = None
    # Pipelines: maps a candidate's params to those of its leading steps, and how many candidates
    # share each (see DaskExecutor).
    prefix_params: Callable[[Mapping[str, Any]], dict[str, Any] | None] | None = None
    prefix_demand: Mapping[str, int] | None = None
    # What a scoring failure scores (scikit-learn's error_score; "raise": the fit fails instead).
    error_score: Any = "raise"
    # sklearn.get_config() of the client, applied on the workers.
    config: dict[str, Any] | None = None
    # Auto-propagated scikit-learn callbacks, as a detached context (set by the run).
    callback_parent: Any = None
    # Plain data of everything a unit's scores depend on but its candidate and fold (data, estimator,
    # scoring, settings, versions): the base of the units' content keys (see daskhpo.reuse).
    content: Any = None
    # The package versions (and user-code hashes) in ``content``, stored with each unit for pruning.
    versions: dict[str, str] = field(default_factory=dict)
    # (unit cache, ReusePolicy): set by the run once the store is open; None: nothing is reused.
    reuse: Any = None
    # Adaptive searches with an estimator-parameter budget: "auto", True or False (see
    # daskhpo.continuation); False for every other search.
    continuation: Any = False


@dataclass
class StreamWork:
    """``partial_fit`` training: a trial's model lives on the cluster and each job continues it by
    the job's budget in blocks (see :mod:`daskhpo.execution.incremental`)."""

    X: Any
    y: Any
    estimator: Any
    scorer: Any
    folds: list[tuple[np.ndarray, np.ndarray]] | None  # in-memory data; None for dask collections
    n_folds: int | None  # dask collections: folds made of whole blocks (None: one held-out share)
    test_size: float
    chunk_size: int | None
    persist: Any
    seed: int
    fit_params: dict[str, Any] = field(default_factory=dict)
    classes: Any = None


@dataclass
class ClusterFitWork:
    """Fits of an estimator that trains on dask collections across the cluster (``xgboost.dask``,
    ``lightgbm.dask``): each (candidate, fold) is one distributed fit started from the client, at
    most ``n_parallel`` at once. Folds are made of whole partitions (``folds``: partition numbers).
    """

    X: Any
    y: Any
    folds: list[tuple[list[int], list[int]]]
    estimator: Any
    scorer: Any
    token: str
    fit_params: dict[str, Any] = field(default_factory=dict)
    return_train_score: bool = False
    budget_param: str | None = None
    n_parallel: int | None = None  # None: as many as the smallest worker has threads
    error_score: Any = "raise"
