"""What a rerun with one more value costs: daskhpo's unit cache and ``extend`` against paying again.

Run ``python benchmarks/reuse.py [--json FILE]``. SVC on the digits data (1,797 x 64), 5 folds, on
the embedded LocalCluster, in one process so the ratios hold on a noisy machine. For each search kind
a data scientist first runs a search, then the same search with one more value:

- grid: C (8 values) x gamma (3) = 24 candidates, then a 9th C value (27 candidates);
- random: 20 seeded candidates, then 21;
- Bayes (TPE): 20 trials, then 21.

Columns: the rerun's wall seconds and fits computed for

- ``daskhpo cache``: the second search on the same ``storage=`` (no name; grid and random) or
  ``search.extend(...)`` (Bayes, whose 21st suggestion depends on the first 20 results);
- ``daskhpo full``: the second search on a fresh store (what the cache saves);
- ``scikit-learn``: ``GridSearchCV``/``RandomizedSearchCV(n_jobs=-1)`` of the second search (it has no
  cache: every rerun pays for everything);
- ``Optuna``: the same 21 TPE trials on a fresh study, and ``study.optimize(n_trials=1)`` on the
  20-trial study (Optuna can continue its own study; it cannot reuse another study's trials).

Ratios are full / cache: how many times cheaper the rerun is.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

C_VALUES = [0.01, 0.1, 1, 3, 10, 30, 100, 300]
GAMMAS = [1e-4, 1e-3, 1e-2]


def _timed(fn):  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", default=None, help="also write the table as JSON here")
    args = parser.parse_args()

    import numpy as np
    import optuna
    from sklearn.datasets import load_digits
    from sklearn.model_selection import GridSearchCV as SkGrid
    from sklearn.model_selection import RandomizedSearchCV as SkRandom
    from sklearn.model_selection import cross_val_score
    from sklearn.svm import SVC

    import daskhpo
    from daskhpo import BayesSearchCV, Float, GridSearchCV, RandomizedSearchCV

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    X, y = load_digits(return_X_y=True)
    tmp = Path(tempfile.mkdtemp(prefix="daskhpo-reuse-"))
    client = daskhpo.get_client()
    space = {"C": Float(1e-2, 1e3, log=True), "gamma": Float(1e-5, 1e-1, log=True)}
    rows = []

    def store(name: str) -> str:
        return f"sqlite:///{tmp / name}.db"

    # Warm the cluster up once (imports, first data transfer), outside every timing.
    GridSearchCV(SVC(), {"C": [1]}, cv=2, client=client).fit(X, y)

    # -- grid ---------------------------------------------------------------------------------
    grid = {"C": C_VALUES, "gamma": GAMMAS}
    more = {"C": [*C_VALUES, 1000], "gamma": GAMMAS}
    GridSearchCV(SVC(), grid, cv=5, storage=store("grid"), client=client).fit(X, y)
    cached, t_cache = _timed(
        lambda: GridSearchCV(SVC(), more, cv=5, storage=store("grid"), client=client).fit(X, y)
    )
    full, t_full = _timed(
        lambda: GridSearchCV(SVC(), more, cv=5, storage=store("grid-full"), client=client).fit(X, y)
    )
    sk, t_sk = _timed(lambda: SkGrid(SVC(), more, cv=5, n_jobs=-1).fit(X, y))
    assert np.array_equal(cached.cv_results_["mean_test_score"], sk.cv_results_["mean_test_score"])
    rows.append(("grid 24 -> 27", cached, t_cache, full, t_full, t_sk, None, None))

    # -- random -------------------------------------------------------------------------------
    def rand(n: int, name: str):  # type: ignore[no-untyped-def]
        return RandomizedSearchCV(
            SVC(), space, n_iter=n, cv=5, random_state=0, storage=store(name), client=client
        )

    rand(20, "random").fit(X, y)
    cached, t_cache = _timed(lambda: rand(21, "random").fit(X, y))
    full, t_full = _timed(lambda: rand(21, "random-full").fit(X, y))
    from scipy.stats import loguniform

    sk_space = {"C": loguniform(1e-2, 1e3), "gamma": loguniform(1e-5, 1e-1)}
    sk, t_sk = _timed(
        lambda: SkRandom(SVC(), sk_space, n_iter=21, cv=5, random_state=0, n_jobs=-1).fit(X, y)
    )
    rows.append(("random 20 -> 21", cached, t_cache, full, t_full, t_sk, None, None))

    # -- Bayes --------------------------------------------------------------------------------
    def bayes(n: int, name: str):  # type: ignore[no-untyped-def]
        return BayesSearchCV(
            SVC(), space, n_candidates=n, cv=5, random_state=0, storage=store(name), client=client
        )

    first = bayes(20, "bayes").fit(X, y)
    cached, t_cache = _timed(lambda: first.extend(X, y, n_candidates=21))
    full, t_full = _timed(lambda: bayes(21, "bayes-full").fit(X, y))

    def objective(trial: optuna.Trial) -> float:
        model = SVC(
            C=trial.suggest_float("C", 1e-2, 1e3, log=True),
            gamma=trial.suggest_float("gamma", 1e-5, 1e-1, log=True),
        )
        return float(cross_val_score(model, X, y, cv=5, n_jobs=-1).mean())

    sampler = optuna.samplers.TPESampler(seed=0)
    _, t_opt_full = _timed(
        lambda: optuna.create_study(direction="maximize", sampler=sampler).optimize(
            objective, n_trials=21
        )
    )
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0))
    study.optimize(objective, n_trials=20)
    _, t_opt_more = _timed(lambda: study.optimize(objective, n_trials=1))
    rows.append(("bayes 20 -> 21", cached, t_cache, full, t_full, None, t_opt_full, t_opt_more))

    header = (
        f"{'search':<16} {'cache s':>8} {'fits':>5} {'full s':>7} {'fits':>5} {'full/cache':>10} "
        f"{'sklearn s':>9} {'sklearn/cache':>13} {'optuna full s':>13} {'optuna +1 s':>11}"
    )
    print(header)
    out = []
    for label, c, tc, f, tf, tsk, tof, tom in rows:
        line = {
            "search": label,
            "cache_seconds": round(tc, 3),
            "cache_fits": c.stats_["units_computed"],
            "cache_reused": c.stats_["units_reused"] + c.stats_.get("trials_replayed", 0) * 5,
            "full_seconds": round(tf, 3),
            "full_fits": f.stats_["units_computed"],
            "full_over_cache": round(tf / tc, 2),
            "sklearn_seconds": None if tsk is None else round(tsk, 3),
            "sklearn_over_cache": None if tsk is None else round(tsk / tc, 2),
            "optuna_full_seconds": None if tof is None else round(tof, 3),
            "optuna_plus_one_seconds": None if tom is None else round(tom, 3),
        }
        out.append(line)

        def show(v: float | None, width: int) -> str:
            return f"{'-':>{width}}" if v is None else f"{v:>{width}.2f}"

        print(
            f"{label:<16} {tc:>8.2f} {line['cache_fits']:>5} {tf:>7.2f} {line['full_fits']:>5} "
            f"{tf / tc:>10.1f} {show(tsk, 9)} {show(None if tsk is None else tsk / tc, 13)} "
            f"{show(tof, 13)} {show(tom, 11)}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    client.close()


if __name__ == "__main__":
    main()
