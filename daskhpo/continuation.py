"""Budgets that continue: which estimators can go on from the model of the previous rung.

When an adaptive search's budget is an estimator parameter (``resource="n_estimators"``,
``"max_iter"``), a promoted trial does not have to be fitted again from nothing: many estimators can
add trees, boosting rounds or epochs to a model they already have. :func:`continuation_rule` says how,
for an estimator with a candidate's parameters set, and whether the continued model is *exactly*
the one a fresh fit at the larger budget gives (measured for each rule in ``tests/test_continuation.py``):

=======================================================  ================  =================================
estimator (or the last step of a pipeline)               how               same as a fresh fit
=======================================================  ================  =================================
RandomForest*, ExtraTrees*, Bagging*, IsolationForest    ``warm_start``    yes (they draw the same seeds)
GradientBoosting* (``n_estimators``)                     ``warm_start``    yes, without ``n_iter_no_change``
HistGradientBoosting* (``max_iter``)                     ``warm_start``    yes, without early stopping
XGBoost's ``XGBClassifier``/``XGBRegressor``/``XGBRanker`` ``xgb_model``     yes, without row or column
                                                                           subsampling or early stopping
LightGBM's ``LGBMClassifier``/``LGBMRegressor``/...        ``init_model``    yes, without bagging or feature
                                                                           subsampling
MLP*, SGD*, Perceptron, PassiveAggressive* (``max_iter``)  ``warm_start``    no: more epochs from the weights
                                                                           they have (the optimiser state
                                                                           and learning-rate schedule
                                                                           start again)
=======================================================  ================  =================================

``continuation="auto"`` (the default) continues only where the result is exactly a fresh fit's, so
``cv_results_`` equals scikit-learn's halving searches' while the fits cost only the added budget;
``continuation=True`` also continues the others (a budget is then the total of epochs a trial was
trained for over its rungs); ``False`` refits every rung from scratch.

No dask import here: the executor (:mod:`daskhpo.execution.continued`) applies the rules on the
workers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["ContinuationRule", "continuation_rule", "wanted", "budget_value"]

#: Sampling settings that make a continued booster differ from a fresh one (their random draws
#: start again when training resumes): XGBoost's and LightGBM's names, with their neutral value.
_XGB_SAMPLING = ("subsample", "colsample_bytree", "colsample_bylevel", "colsample_bynode")
_LGBM_SAMPLING = (
    "subsample",
    "bagging_fraction",
    "colsample_bytree",
    "feature_fraction",
    "feature_fraction_bynode",
    "pos_bagging_fraction",
    "neg_bagging_fraction",
)
_LGBM_FEATURES = ("colsample_bytree", "feature_fraction", "feature_fraction_bynode")


@dataclass(frozen=True)
class ContinuationRule:
    """How one estimator goes on to a larger budget.

    Attributes
    ----------
    how : {"warm_start", "xgb_model", "init_model"}
        ``warm_start``: set the budget parameter and fit the same object again. ``xgb_model`` /
        ``init_model``: fit a new estimator for the *added* rounds, starting from the old booster.
    param : str
        The budget's full parameter name (``"clf__n_estimators"`` inside a pipeline).
    step : str
        Where the continuing estimator is in the tree (``"clf"``), ``""`` for the estimator itself.
    total : bool
        The budget parameter counts the whole model (trees, iterations) when the estimator warm
        starts; False: it counts what one ``fit`` adds (epochs of ``max_iter``).
    exact : bool
        The continued model equals a fresh fit at the larger budget.
    """

    how: str
    param: str
    step: str
    total: bool
    exact: bool

    @property
    def warm_param(self) -> str:
        return f"{self.step}__warm_start" if self.step else "warm_start"

    @property
    def fit_param(self) -> str:
        """The fit parameter that takes the previous booster (``xgb_model``/``init_model``)."""
        return f"{self.step}__{self.how}" if self.step else self.how

    def final(self, estimator: Any) -> Any:
        """The estimator in ``estimator``'s tree that continues (the pipeline's step)."""
        return estimator.get_params(deep=True)[self.step] if self.step else estimator


def _class_names(obj: Any) -> set[str]:
    return {c.__name__ for c in type(obj).__mro__}


def _modules(obj: Any) -> str:
    return type(obj).__module__.split(".")[0]


def _unit(value: Any) -> bool:
    return value is None or value == 1


def _features(lgbm: Mapping[str, Any]) -> bool:
    return any(not _unit(lgbm.get(k)) for k in _LGBM_FEATURES)


def continuation_rule(
    estimator: Any, param: str, n_train: int | None = None
) -> ContinuationRule | None:
    """How ``estimator`` (with a candidate's parameters already set) continues along ``param``, or
    None when it cannot (it is then fitted from scratch at every budget).

    ``n_train``: the largest training fold, for settings that depend on it
    (``HistGradientBoosting*(early_stopping="auto")`` stops early above 10,000 samples).
    """
    step, _, local = param.rpartition("__")
    try:
        final = estimator.get_params(deep=True)[step] if step else estimator
    except (KeyError, AttributeError):
        return None
    if final is None or not hasattr(final, "get_params"):
        return None
    own = final.get_params(deep=False)
    names = _class_names(final)
    package = _modules(final)

    def rule(how: str, total: bool, exact: bool) -> ContinuationRule:
        return ContinuationRule(how, param, step, total, exact)

    if package == "xgboost" and local == "n_estimators" and names & {"XGBModel"}:
        if "DaskXGBModel" in names or names & {"XGBRFClassifier", "XGBRFRegressor"}:
            return None  # trained across the cluster, or one forest per round
        exact = all(_unit(own.get(k)) for k in _XGB_SAMPLING) and not own.get(
            "early_stopping_rounds"
        )
        return rule("xgb_model", False, exact)
    if package == "lightgbm" and local == "n_estimators" and "LGBMModel" in names:
        if any("Dask" in n for n in names):
            return None
        lgbm = {**(own.get("kwargs") or {}), **own}

        def first(*keys: str) -> Any:
            return next((lgbm[k] for k in keys if lgbm.get(k) is not None), None)

        bagging = not _unit(first("subsample", "bagging_fraction")) and bool(
            first("subsample_freq", "bagging_freq")
        )
        sampled = any(not _unit(lgbm.get(k)) for k in _LGBM_SAMPLING)
        return rule("init_model", False, not (sampled and (bagging or _features(lgbm))))
    if "warm_start" not in own:
        return None
    if local == "n_estimators" and names & {"BaseForest", "BaseBagging"}:
        return rule("warm_start", True, True)
    if local == "n_estimators" and "BaseGradientBoosting" in names:
        return rule("warm_start", True, own.get("n_iter_no_change") is None)
    if local == "max_iter" and "BaseHistGradientBoosting" in names:
        stops = own.get("early_stopping")
        if stops == "auto":
            stops = n_train is None or n_train > 10_000
        return rule("warm_start", True, not stops)
    if local == "max_iter" and names & {"BaseMultilayerPerceptron", "BaseSGD"}:
        return rule("warm_start", False, False)
    return None


def wanted(rule: ContinuationRule | None, mode: Any) -> bool:
    """Whether ``continuation=mode`` continues along ``rule``."""
    if rule is None or mode is False:
        return False
    return bool(rule.exact or mode is True)


def budget_value(rule: ContinuationRule, target: float, previous: float) -> Any:
    """The budget parameter's value for a fit that goes from ``previous`` to ``target``."""
    value = target if rule.total else target - previous
    return int(value) if float(value).is_integer() else value
