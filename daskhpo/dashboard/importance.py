"""Parameter importance of a search: which parameters the score depends on.

The method is scikit-learn's: a random forest regressor learns score from parameters on a random
sample of at most :data:`IMPORTANCE_TRIALS` trials (each trial's evaluation at its largest budget), and
:func:`sklearn.inspection.permutation_importance` on held-out trials measures how much the forest's
R² drops when one parameter's values are shuffled. It needs nothing beyond daskhpo's own dependencies
(Optuna's fANOVA evaluator needs an Optuna study and Optuna installed) and takes about a second at the
cap on one core. Numeric parameters enter as their values (their logarithm on a log axis), categorical
ones as their position among the categories, an unset value as a category of its own; an adaptive
search's budget enters as one more feature, ``(budget)``, so that what the budget explains is not
credited to a parameter.

The importances are only as good as the forest: the held-out R² is reported with them, and a low one
says the scores are mostly noise the parameters do not explain.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .data import TrialTable

__all__ = ["IMPORTANCE_TRIALS", "MIN_TRIALS", "importance"]

#: Trials the forest is fitted on at most (a random sample of the search's).
IMPORTANCE_TRIALS = 5000
#: Fewer scored trials than this: no importance (nothing to learn from).
MIN_TRIALS = 20
BUDGET_FEATURE = "(budget)"


def features(
    table: TrialTable, max_trials: int = IMPORTANCE_TRIALS, seed: int = 0
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(feature names, X, y) of a random sample of at most ``max_trials`` of ``table``'s trials."""
    with table.lock:
        params = table.params()
        rows = table.ranked()
        if len(rows) > max_trials:
            rng = np.random.default_rng(seed)
            rows = np.sort(rng.choice(rows, size=max_trials, replace=False))
        names, columns = [], []
        for p in params:
            col = table.columns[p.name]
            if p.numeric:
                x = col.num.values[rows]
                if p.log:
                    with np.errstate(invalid="ignore", divide="ignore"):
                        x = np.log10(x)
            else:
                x = col.factor_index(p.factors)[rows].astype(np.float64)
            names.append(p.name)
            columns.append(x)
        if table.adaptive:
            names.append(BUDGET_FEATURE)
            columns.append(np.nan_to_num(table.budget.values[rows], nan=0.0))
        y = table.score.values[rows].copy()
    X = np.column_stack(columns) if columns else np.empty((len(rows), 0))
    return names, X, y


def importance(
    table: TrialTable, *, max_trials: int = IMPORTANCE_TRIALS, seed: int = 0
) -> dict[str, Any]:
    """Permutation importance of each parameter for ``table``'s scores (see the module docstring).

    Returns a dict: ``name``, ``importance`` (mean drop of the held-out R², highest first) and ``std``
    (over the permutation repeats), ``r2`` (the forest's held-out R²), ``n_trials`` (trials used),
    ``method`` (a sentence for the figure) and ``note`` (why there is nothing, or None).
    """
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.inspection import permutation_importance

    names, X, y = features(table, max_trials, seed)
    out: dict[str, Any] = {
        "name": [],
        "importance": [],
        "std": [],
        "r2": math.nan,
        "n_trials": len(y),
        "method": "",
        "note": None,
    }
    if not names:
        out["note"] = "no parameters"
        return out
    if len(y) < MIN_TRIALS:
        out["note"] = f"needs {MIN_TRIALS} scored trials ({len(y)} so far)"
        return out
    if np.ptp(y) == 0:
        out["note"] = "every trial has the same score"
        return out
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y))
    n_test = max(MIN_TRIALS // 2, len(y) // 4)
    test, train = order[:n_test], order[n_test:]
    forest = RandomForestRegressor(
        n_estimators=50, min_samples_leaf=3, max_features=0.6, random_state=seed, n_jobs=1
    )
    forest.fit(X[train], y[train])
    result = permutation_importance(
        forest, X[test], y[test], n_repeats=5, random_state=seed, n_jobs=1
    )
    ranked = np.argsort(-result.importances_mean, kind="stable")
    out.update(
        name=[names[i] for i in ranked],
        importance=[float(result.importances_mean[i]) for i in ranked],
        std=[float(result.importances_std[i]) for i in ranked],
        r2=float(forest.score(X[test], y[test])),
        method=(
            f"permutation importance (drop of held-out R²) of a random forest on {len(y):,} trials"
        ),
    )
    return out
