"""Benchmark exhaustive grid searches: scikit-learn vs dask-ml vs daskhpo.

What it measures
----------------
One process starts one ``distributed.LocalCluster`` (2 worker processes with 1
thread each, bound to 127.0.0.1) and a ``distributed.Client``. By default it is
the cluster daskhpo embeds (``daskhpo.cluster.make_local_cluster``: workers
keep glibc's default allocator settings instead of distributed's
``MALLOC_TRIM_THRESHOLD_=65536``); dask-ml runs on the same cluster.
``--plain-cluster`` uses distributed's defaults instead. For each of two
grids it times ``fit(X, y)`` of:

``scikit-learn``
    ``sklearn.model_selection.GridSearchCV(..., n_jobs=-1)`` (joblib/loky on
    the local cores; the Dask cluster exists but sits idle).
``dask-ml``
    ``dask_ml.model_selection.GridSearchCV(..., scheduler=client)``. Import or
    fit errors are reported as ``failed: <reason>`` instead of a time.
``daskhpo``
    ``daskhpo.GridSearchCV(..., client=client)``. Reported as ``not available``
    when the package cannot be imported.
``ideal``
    Every (candidate, fold) unit -- clone, ``set_params``, fit on the training
    indices, accuracy on the test indices -- timed sequentially in the main
    process under ``threadpool_limits(1)``, summed and divided by the number of
    cores. It is a lower bound for perfectly balanced, overhead-free execution
    of the cross-validation fits (the final refit is not included). With
    ``--quick`` it is estimated from a random 20 % sample of the units, scaled
    by 1/0.2.

Grids
-----
A
    The 1,176-candidate "demo grid" of the Dask parallel grid search tutorial:
    ``DecisionTreeClassifier(random_state=0)`` on ``load_digits()``, cv=3
    (3,528 fits). ``--quick`` uses a reduced 144-candidate version.
B
    A prefix-sharing pipeline grid: ``PCA`` -> ``LogisticRegression(max_iter=200)``
    on ``load_digits()``, 4 x 10 candidates, cv=3.

For every contender the script reports the wall time, the speed-up versus
scikit-learn (``sklearn_time / time``), the multiple of the ideal
(``time / ideal``), ``best_score_``, ``best_params_`` and whether those params
equal scikit-learn's. Results are printed as a plain-text table and written as
JSON to ``benchmarks/results/grid.json``.

How to run
----------
From the repository root::

    python benchmarks/grid.py            # full benchmark
    python benchmarks/grid.py --quick    # reduced grid A, sampled ideal
    python benchmarks/grid.py --repeat 3 # min of 3 runs per contender

Progress messages go to stderr, so ``python benchmarks/grid.py > out.txt``
captures only the report.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import platform
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

import dask
import distributed
import numpy as np
import sklearn
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import get_scorer
from sklearn.model_selection import GridSearchCV as SklearnGridSearchCV
from sklearn.model_selection import ParameterGrid, check_cv
from sklearn.pipeline import Pipeline
from sklearn.tree import DecisionTreeClassifier
from threadpoolctl import threadpool_limits

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"

CV = 3
SCORING = "accuracy"
N_WORKERS = 2
QUICK_FRACTION = 0.2
SEED = 0

# Use the checkout's package when daskhpo is not installed in the environment
# (daskhpo itself is only imported lazily, inside the contender factory).
if importlib.util.find_spec("daskhpo") is None:
    sys.path.insert(0, str(REPO_ROOT))


# --------------------------------------------------------------------------- grids


def grid_a(quick: bool) -> dict[str, Any]:
    """Return the decision-tree "demo grid" (reduced when ``quick``)."""
    param_grid = {
        "criterion": ["gini", "entropy"],
        "max_depth": [None, 2, 4, 6, 8, 10, 12],
        "min_samples_split": [2, 3, 4, 5, 6, 7, 8],
        "max_features": [None, "sqrt", "log2"],
        "min_samples_leaf": [1, 2, 3, 4],
    }
    if quick:
        param_grid["max_depth"] = [None, 4, 8]
        param_grid["min_samples_split"] = [2, 5]
    return {
        "name": "A: digits DecisionTree" + (" (quick)" if quick else ""),
        "estimator": DecisionTreeClassifier(random_state=0),
        "param_grid": param_grid,
    }


def grid_b() -> dict[str, Any]:
    """Return the PCA -> LogisticRegression prefix-sharing pipeline grid."""
    return {
        "name": "B: digits PCA+LogReg pipeline",
        "estimator": Pipeline([("pca", PCA()), ("clf", LogisticRegression(max_iter=200))]),
        "param_grid": {
            "pca__n_components": [10, 20, 30, 40],
            "clf__C": np.logspace(-3, 3, 10),
        },
    }


# --------------------------------------------------------------------------- helpers


def log(msg: str) -> None:
    """Print a timestamped progress message to stderr."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def n_cores() -> int:
    """Number of cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


def short_reason(exc: BaseException, limit: int = 90) -> str:
    """One-line, truncated description of an exception."""
    first = (str(exc).strip().splitlines() or [""])[0]
    text = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def to_jsonable(obj: Any) -> Any:
    """Convert numpy scalars and other odd values for ``json.dump``."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return repr(obj)


def params_equal(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool | None:
    """Compare two ``best_params_`` dicts; ``None`` if either is missing."""
    if a is None or b is None:
        return None
    if a.keys() != b.keys():
        return False
    for key in a:
        x, y = a[key], b[key]
        if isinstance(x, (float, np.floating)) and isinstance(y, (float, np.floating)):
            if not np.isclose(x, y, rtol=1e-12, atol=0.0):
                return False
        elif x != y:
            return False
    return True


def machine_facts(client: distributed.Client, daskhpo_info: str) -> dict[str, Any]:
    """Collect the versions and hardware facts printed at the top of the report."""
    from daskhpo.cluster import workers_info

    cpu_model = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu_model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        import dask_ml

        dask_ml_version = dask_ml.__version__
    except Exception as exc:
        dask_ml_version = f"unavailable ({short_reason(exc)})"
    workers = workers_info(client)
    return {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "nproc": n_cores(),
        "cpu": cpu_model,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "dask": dask.__version__,
        "distributed": distributed.__version__,
        "sklearn": sklearn.__version__,
        "dask_ml": dask_ml_version,
        "daskhpo": daskhpo_info,
        "loadavg_at_start": load_average(),
        "cluster": (
            f"LocalCluster: {len(workers)} worker processes x "
            f"{sorted({w['nthreads'] for w in workers.values()})} thread(s)"
        ),
    }


def load_average() -> str:
    """1/5/15-minute load averages; other work on the machine skews the timings."""
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:  # pragma: no cover - unsupported platform
        return "unknown"


def daskhpo_description() -> str:
    """Version and location of the importable daskhpo, or why it is not importable."""
    try:
        import daskhpo
        from daskhpo import GridSearchCV  # noqa: F401 - make sure the facade exists
    except Exception as exc:
        return f"not available ({short_reason(exc)})"
    return f"{getattr(daskhpo, '__version__', '?')} ({Path(daskhpo.__file__).parent})"


# --------------------------------------------------------------------------- contenders


class _NotAvailable(Exception):
    """Raised by a search factory whose library cannot be imported."""


def time_fit(make_search, X, y, repeat: int) -> tuple[float, Any]:
    """Fit ``repeat`` fresh searches; return the minimum wall time and the last search."""
    best, search = float("inf"), None
    for _ in range(repeat):
        search = make_search()
        t0 = time.perf_counter()
        search.fit(X, y)
        best = min(best, time.perf_counter() - t0)
    return best, search


def run_contender(name: str, make_search, X, y, repeat: int) -> dict[str, Any]:
    """Time one contender, turning import or fit failures into a result row."""
    row: dict[str, Any] = {"contender": name, "time_s": None, "status": "ok"}
    log(f"  {name} ...")
    try:
        seconds, search = time_fit(make_search, X, y, repeat)
    except _NotAvailable as exc:
        row["status"] = "not available"
        row["error"] = str(exc)
        log(f"  {name}: not available ({exc})")
        return row
    except Exception as exc:  # the benchmark must keep going
        row["status"] = f"failed: {short_reason(exc)}"
        row["error"] = "".join(traceback.format_exception(exc)).strip()
        log(f"  {name}: {row['status']}")
        return row
    row["time_s"] = seconds
    row["best_score"] = float(search.best_score_)
    row["best_params"] = dict(search.best_params_)
    log(f"  {name}: {seconds:.2f} s, best_score={search.best_score_:.4f}")
    return row


def sklearn_factory(spec: dict[str, Any]):
    def make():
        return SklearnGridSearchCV(
            clone(spec["estimator"]), spec["param_grid"], cv=CV, scoring=SCORING, n_jobs=-1
        )

    return make


def dask_ml_factory(spec: dict[str, Any], client: distributed.Client):
    def make():
        # Import errors are real failures here (the package is a bench extra).
        import dask_ml.model_selection as dms

        return dms.GridSearchCV(
            clone(spec["estimator"]),
            spec["param_grid"],
            cv=CV,
            scoring=SCORING,
            scheduler=client,
        )

    return make


def daskhpo_factory(spec: dict[str, Any], client: distributed.Client):
    def make():
        try:
            from daskhpo import GridSearchCV
        except Exception as exc:
            raise _NotAvailable(short_reason(exc)) from exc
        return GridSearchCV(
            clone(spec["estimator"]), spec["param_grid"], cv=CV, scoring=SCORING, client=client
        )

    return make


def ideal_time(spec: dict[str, Any], X, y, fraction: float, cores: int) -> dict[str, Any]:
    """Sequentially time (candidate, fold) units and derive the ideal parallel time.

    Each unit is clone + ``set_params`` + fit on the training fold + accuracy on
    the test fold, with BLAS/OpenMP pools limited to one thread. When
    ``fraction < 1`` a random sample of units is timed and the sum scaled up.
    """
    candidates = list(ParameterGrid(spec["param_grid"]))
    folds = list(check_cv(CV, y, classifier=True).split(X, y))
    units = [(c, f) for c in range(len(candidates)) for f in range(len(folds))]
    if fraction < 1.0:
        rng = np.random.default_rng(SEED)
        n_sample = max(1, round(fraction * len(units)))
        picked = rng.choice(len(units), size=n_sample, replace=False)
        units = [units[i] for i in sorted(picked)]
    scorer = get_scorer(SCORING)
    base = spec["estimator"]
    total = 0.0
    log(f"  ideal: timing {len(units)} unit(s) sequentially ...")
    with threadpool_limits(limits=1), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for c, f in units:
            train, test = folds[f]
            t0 = time.perf_counter()
            est = clone(base).set_params(**candidates[c])
            est.fit(X[train], y[train])
            scorer(est, X[test], y[test])
            total += time.perf_counter() - t0
    sequential = total / fraction
    return {
        "contender": "ideal",
        "status": "ok",
        "time_s": sequential / cores,
        "sequential_s": sequential,
        "units_timed": len(units),
        "units_total": len(candidates) * len(folds),
        "estimated": fraction < 1.0,
        "cores": cores,
    }


def run_grid(
    spec: dict[str, Any],
    client: distributed.Client,
    X,
    y,
    *,
    repeat: int,
    fraction: float,
    cores: int,
) -> dict[str, Any]:
    """Run all contenders on one grid and add the derived ratios."""
    n_candidates = len(ParameterGrid(spec["param_grid"]))
    log(f"{spec['name']}: {n_candidates} candidates x {CV} folds = {n_candidates * CV} fits")
    ideal = ideal_time(spec, X, y, fraction, cores)
    log(f"  ideal: {ideal['time_s']:.2f} s (sequential {ideal['sequential_s']:.2f} s)")
    rows = [
        run_contender("scikit-learn", sklearn_factory(spec), X, y, repeat),
        run_contender("dask-ml", dask_ml_factory(spec, client), X, y, repeat),
        run_contender("daskhpo", daskhpo_factory(spec, client), X, y, repeat),
        ideal,
    ]
    ref = rows[0]
    for row in rows:
        t = row["time_s"]
        row["speedup_vs_sklearn"] = ref["time_s"] / t if t and ref["time_s"] else None
        row["x_of_ideal"] = t / ideal["time_s"] if t and ideal["time_s"] else None
        if row["contender"] == "scikit-learn":
            row["same_params_as_sklearn"] = "reference" if row.get("best_params") else None
        elif row["contender"] != "ideal":
            row["same_params_as_sklearn"] = params_equal(
                row.get("best_params"), ref.get("best_params")
            )
    return {
        "grid": spec["name"],
        "n_candidates": n_candidates,
        "n_fits": n_candidates * CV,
        "rows": rows,
    }


# --------------------------------------------------------------------------- reporting


def _fmt(value: Any, spec: str) -> str:
    """Format a number, or a right-aligned dash of the same width when missing."""
    if value is None:
        width = int(spec.split(".")[0] or 0)
        return "-".rjust(width)
    return format(value, spec)


def format_report(facts: dict[str, Any], results: list[dict[str, Any]], args) -> str:
    """Render the machine facts and result tables as plain text."""
    out = ["Grid search benchmark: scikit-learn vs dask-ml vs daskhpo", ""]
    width = max(len(k) for k in facts)
    out += [f"  {k:<{width}} : {v}" for k, v in facts.items() if not k.endswith("_at_end")]
    out.append(f"  {'repeat':<{width}} : {args.repeat} (min of N runs per contender)")
    out.append("")
    header = (
        f"{'contender':<13} {'wall s':>9} {'speed-up':>9} {'x ideal':>8} "
        f"{'best_score':>10}  {'same params':<11}  status"
    )
    for res in results:
        out.append(f"== {res['grid']}: {res['n_candidates']} candidates, {res['n_fits']} fits")
        out.append(header)
        out.append("-" * len(header))
        for row in res["rows"]:
            same = row.get("same_params_as_sklearn")
            same_txt = {True: "yes", False: "NO", None: "-"}.get(same, str(same))
            status = row["status"]
            if row["contender"] == "ideal":
                status = (
                    f"estimated from {row['units_timed']}/{row['units_total']} units "
                    f"(x{1 / QUICK_FRACTION:g}), / {row['cores']} cores"
                    if row["estimated"]
                    else f"all {row['units_total']} units, / {row['cores']} cores"
                )
                same_txt = ""
            out.append(
                f"{row['contender']:<13} {_fmt(row['time_s'], '9.2f')} "
                f"{_fmt(row.get('speedup_vs_sklearn'), '9.2f')} "
                f"{_fmt(row.get('x_of_ideal'), '8.2f')} "
                f"{_fmt(row.get('best_score'), '10.4f')}  {same_txt:<11}  {status}"
            )
        out.append("best_params_:")
        for row in res["rows"]:
            if row.get("best_params") is not None:
                out.append(f"  {row['contender']:<13} {to_jsonable(row['best_params'])}")
        out.append("")
    out += [
        "speed-up = scikit-learn time / contender time;  x ideal = contender time / ideal",
        "ideal = sum of sequential single-thread (candidate, fold) fit+score times / nproc"
        " (no refit, no overhead)",
    ]
    out.append(f"load average (1/5/15 min) at end: {facts.get('loadavg_at_end', 'unknown')}")
    if args.quick:
        out.append(
            f"--quick: reduced grid A; ideal estimated from a random {QUICK_FRACTION:.0%} "
            f"sample of units, scaled by {1 / QUICK_FRACTION:g}"
        )
    errors = [
        (res["grid"], row)
        for res in results
        for row in res["rows"]
        if row["status"].startswith("failed")
    ]
    for grid, row in errors:
        out += ["", f"Error for {row['contender']} on {grid}:", row["error"]]
    return "\n".join(out)


# --------------------------------------------------------------------------- main


def warm_up(client: distributed.Client) -> None:
    """Make sure workers are up and have imported the libraries before timing."""
    client.wait_for_workers(N_WORKERS)
    client.run(lambda: None)
    assert client.submit(sum, [1, 2, 3], pure=False).result() == 6
    client.run(_import_estimators)


def _import_estimators() -> None:
    """Import the estimator modules on a worker so the first task does not pay for it."""
    import sklearn.linear_model  # noqa: F401
    import sklearn.pipeline  # noqa: F401
    import sklearn.tree  # noqa: F401


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Time scikit-learn, dask-ml and daskhpo GridSearchCV on two grids."
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="reduced grid A (144 candidates) and ideal estimated from a 20%% sample",
    )
    parser.add_argument(
        "--repeat", type=int, default=1, metavar="N", help="take the min of N runs (default 1)"
    )
    parser.add_argument(
        "--plain-cluster",
        action="store_true",
        help="use distributed's default LocalCluster settings instead of daskhpo's embedded cluster",
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=RESULTS_DIR / "grid.json",
        help="where to write the JSON results (default: benchmarks/results/grid.json)",
    )
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    X, y = load_digits(return_X_y=True)
    cores = n_cores()
    fraction = QUICK_FRACTION if args.quick else 1.0
    specs = [grid_a(args.quick), grid_b()]

    log("starting LocalCluster ...")
    if args.plain_cluster:
        cluster_cm = distributed.LocalCluster(
            n_workers=N_WORKERS,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=":0",
        )
    else:
        from daskhpo.cluster import make_local_cluster

        cluster_cm = make_local_cluster(n_workers=N_WORKERS, dashboard_address=":0")
    with cluster_cm as cluster, distributed.Client(cluster) as client:
        warm_up(client)
        facts = machine_facts(client, daskhpo_description())
        results = [
            run_grid(spec, client, X, y, repeat=args.repeat, fraction=fraction, cores=cores)
            for spec in specs
        ]

    facts["loadavg_at_end"] = load_average()
    report = format_report(facts, results, args)
    print(report)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    payload = {"machine": facts, "quick": args.quick, "repeat": args.repeat, "grids": results}
    args.json.write_text(json.dumps(to_jsonable(payload), indent=2) + "\n")
    log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
