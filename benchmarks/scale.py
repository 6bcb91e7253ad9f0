"""Scale: very large grids from one driver, and many slots kept busy (issue 17's targets).

Run ``python benchmarks/scale.py [--candidates 300000] [--first 1000000] [--slots 4x16]
[--trials 5000] [--only grid,first,...] [--json FILE]``. Each part runs in a fresh child process
(``--part``), so that every peak RSS is that part's own; the parent prints each part and updates
``benchmarks/results/scale.json`` (parts not run keep their earlier results, each with its time).

``grid``
    A trivial grid: ``DummyClassifier(strategy="prior")`` over ``random_state`` values (the fit
    ignores them), 200 rows, cv=2, ``refit=False``, on daskhpo's embedded cluster (2 workers x 1
    thread). Reports the wall time; the *ideal*, every unit fitted and scored in one process (timed
    on a sample of 2,000 units) divided by the worker count; the overhead per candidate,
    ``(wall - ideal) / candidates``, and the same against this run's own fit and score times from
    ``cv_results_`` (less sensitive to the machine's noise); this process's CPU per unit (client,
    scheduler and nannies); the driver's peak RSS (the client and the scheduler live in this
    process) and its growth per candidate; and ``cv_results_``'s own size per candidate.
``first``
    The same grid with ``--first`` candidates, on a cluster that ran one small search before (as a
    notebook's second search; a fresh cluster adds its workers' imports, about 2 s here): seconds
    from ``fit`` to the first fit task sent to a worker (read from a scheduler plugin), then the
    search is interrupted.
``sklearn``
    scikit-learn ``GridSearchCV(n_jobs=-1)`` and daskhpo on the same grid of ``--sklearn-candidates``
    (3,000 by default), wall times and ratio.
``sleep``
    A simulated large cluster: an estimator whose fit sleeps 0.1 s, ``--trials`` candidates x cv=2 on a
    ``LocalCluster`` of ``--slots`` (processes x threads), warmed by one small search first. Busy share = ideal / wall (ideal: units x
    0.1 s / slots); driver+scheduler CPU per unit = this process's CPU seconds during the fit / units.
``sleep_big``
    The same with twice the trials on ``--big-slots`` (8 x 32 = 256 slots by default).
``optuna``
    The same work with Optuna (``--optuna-trials``, 2,500 by default: it runs 50 times longer): ``optuna_integration.DaskStorage`` on the same kind of cluster, one
    ``study.optimize`` call per slot submitted with ``client.submit``, each trial sleeping 0.2 s
    (the two folds of a daskhpo candidate, one after the other). Busy share and driver CPU the same.

Targets (issue 17): overhead <= 0.2 ms per candidate and peak RSS <= 600 MB at 300,000 candidates;
first task within 1 s at 1,000,000; busy >= 0.9 and <= 0.4 ms CPU per unit at 64 slots.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SLEEP = 0.1


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds() -> float:
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


def data(n: int = 200):
    import numpy as np

    rng = np.random.RandomState(0)
    X = rng.rand(n, 4)
    return X, (X[:, 0] > 0.5).astype(int)


def trivial_grid(n: int) -> tuple[object, dict]:
    from sklearn.dummy import DummyClassifier

    return DummyClassifier(strategy="prior"), {"random_state": list(range(n))}


def ideal_unit_seconds(n_units: int = 2000) -> float:
    """Seconds of one (candidate, fold) unit fitted and scored in this process, on average."""
    from sklearn.base import clone
    from sklearn.metrics import check_scoring
    from sklearn.model_selection import StratifiedKFold

    X, y = data()
    est, _ = trivial_grid(1)
    scorer = check_scoring(est)
    folds = list(StratifiedKFold(2).split(X, y))
    start = time.perf_counter()
    for i in range(n_units // 2):
        for train, test in folds:
            e = clone(est).set_params(random_state=i).fit(X[train], y[train])
            scorer(e, X[test], y[test])
    return (time.perf_counter() - start) / n_units


class FirstTask:
    """A scheduler plugin that notes when the first daskhpo fit task starts processing."""

    name = "daskhpo-bench-first-task"

    def __init__(self) -> None:
        self.first: float | None = None

    def transition(self, key, start, finish, *args, **kwargs):  # noqa: ANN001, ANN201
        if self.first is None and finish == "processing" and "daskhpo-fit" in str(key):
            self.first = time.time()


def part_grid(n: int) -> dict:
    import pickle

    from distributed import Client

    import daskhpo
    from daskhpo.cluster import make_local_cluster

    X, y = data()
    client = Client(make_local_cluster(n_workers=2, threads_per_worker=1, dashboard_address=":0"))
    unit = ideal_unit_seconds()
    est, grid = trivial_grid(n)
    before = peak_rss_mb()
    search = daskhpo.GridSearchCV(est, grid, cv=2, refit=False, client=client)
    cpu0, start = cpu_seconds(), time.perf_counter()
    search.fit(X, y)
    wall = time.perf_counter() - start
    cpu = cpu_seconds() - cpu0
    peak = peak_rss_mb()
    ideal = 2 * n * unit / 2
    r = search.cv_results_
    # The same bound from this run's own timings: the seconds the workers spent in fits and scores.
    inside = float((r["mean_fit_time"] + r["mean_score_time"]).sum()) * 2 / 2
    kept = len(pickle.dumps(search.cv_results_, protocol=5))
    client.close()
    return {
        "candidates": n,
        "wall_s": wall,
        "ideal_s": ideal,
        "unit_ms": unit * 1e3,
        "overhead_ms_per_candidate": (wall - ideal) / n * 1e3,
        "fit_and_score_s": inside,
        "overhead_ms_per_candidate_vs_own_timings": (wall - inside) / n * 1e3,
        "driver_cpu_ms_per_unit": cpu / (2 * n) * 1e3,
        "rss_before_mb": before,
        "peak_rss_mb": peak,
        "rss_growth_bytes_per_candidate": (peak - before) * 2**20 / n,
        "cv_results_bytes_per_candidate": kept / n,
        "best_score": float(search.best_score_) if hasattr(search, "best_score_") else None,
        "tasks": search.stats_["tasks"],
    }


def part_first(n: int) -> dict:
    import threading

    from distributed import Client

    import daskhpo
    from daskhpo.cluster import make_local_cluster

    X, y = data()
    cluster = make_local_cluster(n_workers=2, threads_per_worker=1, dashboard_address=":0")
    client = Client(cluster)
    plugin = FirstTask()
    cluster.scheduler.add_plugin(plugin)  # the scheduler lives in this process
    est, grid = trivial_grid(n)
    # Warm workers (a notebook's second search): what is timed is the grid's cost, not imports.
    daskhpo.GridSearchCV(est, trivial_grid(4)[1], cv=2, refit=False, client=client).fit(X, y)
    plugin.first = None
    search = daskhpo.GridSearchCV(est, grid, cv=2, refit=False, client=client)
    start = time.time()
    stop = threading.Event()

    def interrupt() -> None:  # a Ctrl-C once the first task ran (or after 60 s)
        while plugin.first is None and time.time() - start < 60 and not stop.is_set():
            time.sleep(0.01)
        time.sleep(0.5)
        import _thread

        _thread.interrupt_main()

    threading.Thread(target=interrupt, daemon=True).start()
    with contextlib.suppress(KeyboardInterrupt):
        search.fit(X, y)
    stop.set()
    first = None if plugin.first is None else plugin.first - start
    client.close()
    return {"candidates": n, "first_task_s": first}


def part_sklearn(n: int) -> dict:
    from distributed import Client
    from sklearn.model_selection import GridSearchCV as SkGrid

    import daskhpo
    from daskhpo.cluster import make_local_cluster

    X, y = data()
    est, grid = trivial_grid(n)
    start = time.perf_counter()
    sk = SkGrid(est, grid, cv=2, refit=False, n_jobs=-1).fit(X, y)
    t_sk = time.perf_counter() - start
    client = Client(make_local_cluster(n_workers=2, threads_per_worker=1, dashboard_address=":0"))
    start = time.perf_counter()
    ours = daskhpo.GridSearchCV(est, grid, cv=2, refit=False, client=client).fit(X, y)
    t_ours = time.perf_counter() - start
    client.close()
    import numpy as np

    same = bool(np.allclose(sk.cv_results_["mean_test_score"], ours.cv_results_["mean_test_score"]))
    return {"candidates": n, "sklearn_s": t_sk, "daskhpo_s": t_ours, "same_scores": same}


def sleepy_estimator():
    from sklearn.base import BaseEstimator, ClassifierMixin

    class Sleepy(ClassifierMixin, BaseEstimator):
        """Fits by sleeping (a stand-in for a long fit that leaves the CPU to others)."""

        def __init__(self, seconds: float = SLEEP, c: int = 0) -> None:
            self.seconds = seconds
            self.c = c

        def fit(self, X, y):  # noqa: ANN001, ANN201
            time.sleep(self.seconds)
            self.classes_ = [0, 1]
            return self

        def predict(self, X):  # noqa: ANN001, ANN201
            import numpy as np

            return np.zeros(len(X), dtype=int)

    return Sleepy


def _slots(text: str) -> tuple[int, int]:
    procs, threads = (int(v) for v in text.lower().split("x"))
    return procs, threads


def part_sleep(trials: int, slots: str) -> dict:
    from distributed import Client, LocalCluster

    import daskhpo

    procs, threads = _slots(slots)
    cluster = LocalCluster(
        n_workers=procs, threads_per_worker=threads, host="127.0.0.1", dashboard_address=":0"
    )
    client = Client(cluster)
    X, y = data()
    Sleepy = sleepy_estimator()
    # Warm workers (imports done), as on a cluster that ran a search before; on a fresh cluster
    # the first task starts after its workers import scikit-learn (2.7 s here with 4 processes).
    daskhpo.GridSearchCV(Sleepy(seconds=0.0), {"c": [0, 1]}, cv=2, refit=False, client=client).fit(
        X, y
    )
    search = daskhpo.GridSearchCV(
        Sleepy(), {"c": list(range(trials))}, cv=2, refit=False, client=client
    )
    cpu0, start = cpu_seconds(), time.perf_counter()
    search.fit(X, y)
    wall = time.perf_counter() - start
    cpu = cpu_seconds() - cpu0
    units = 2 * trials
    ideal = units * SLEEP / (procs * threads)
    client.close()
    cluster.close()
    return {
        "slots": procs * threads,
        "units": units,
        "wall_s": wall,
        "ideal_s": ideal,
        "busy": ideal / wall,
        "driver_cpu_ms_per_unit": cpu / units * 1e3,
    }


def _optuna_worker(storage, name: str, n_trials: int, seconds: float = 2 * SLEEP) -> int:  # noqa: ANN001
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=name, storage=storage)

    def objective(trial) -> float:  # noqa: ANN001
        trial.suggest_int("c", 0, 10**6)
        time.sleep(seconds)  # both folds of a daskhpo candidate
        return 0.5

    study.optimize(objective, n_trials=n_trials)
    return n_trials


def part_optuna(trials: int, slots: str) -> dict:
    try:
        import optuna
        from optuna_integration import DaskStorage
    except ImportError as exc:
        return {"error": f"not available: {exc} (pip install 'optuna-integration[dask]')"}
    from distributed import Client, LocalCluster, wait

    procs, threads = _slots(slots)
    n_slots = procs * threads
    cluster = LocalCluster(
        n_workers=procs, threads_per_worker=threads, host="127.0.0.1", dashboard_address=":0"
    )
    client = Client(cluster)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = DaskStorage(client=client)
    study = optuna.create_study(storage=storage, sampler=optuna.samplers.RandomSampler(seed=0))
    per = [trials // n_slots + (1 if i < trials % n_slots else 0) for i in range(n_slots)]
    # Warm workers, as for daskhpo: one trial run on every worker before the clock starts.
    warm = optuna.create_study(storage=storage)
    wait(
        [
            client.submit(_optuna_worker, storage, warm.study_name, 1, 0.0, pure=False, workers=[w])
            for w in client.scheduler_info()["workers"]
        ]
    )
    cpu0, start = cpu_seconds(), time.perf_counter()
    futures = [
        client.submit(_optuna_worker, storage, study.study_name, k, pure=False) for k in per if k
    ]
    wait(futures)
    wall = time.perf_counter() - start
    cpu = cpu_seconds() - cpu0
    done = len(study.trials)
    units = 2 * done
    ideal = units * SLEEP / n_slots
    client.close()
    cluster.close()
    return {
        "slots": n_slots,
        "units": units,
        "wall_s": wall,
        "ideal_s": ideal,
        "busy": ideal / wall,
        "driver_cpu_ms_per_unit": cpu / units * 1e3,
    }


def run_part(argv: list[str]) -> dict:
    """Run one part in a fresh interpreter; its JSON goes through a file, not a pipe."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.json"
        log = Path(tmp) / "log.txt"
        with open(log, "w") as fh:
            code = subprocess.call(
                [sys.executable, __file__, *argv, "--out", str(out)], stdout=fh, stderr=fh
            )
        if code != 0 or not out.exists():
            return {"error": f"exit {code}: " + log.read_text()[-2000:]}
        return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=300_000)
    parser.add_argument("--first", type=int, default=1_000_000)
    parser.add_argument("--sklearn-candidates", type=int, default=3_000)
    parser.add_argument("--slots", default="4x16")
    parser.add_argument("--trials", type=int, default=5_000)
    parser.add_argument("--optuna-trials", type=int, default=2_500)
    parser.add_argument("--big-slots", default="8x32")
    parser.add_argument("--only", default="grid,first,sklearn,sleep,sleep_big,optuna")
    parser.add_argument("--json", default=str(Path(__file__).parent / "results" / "scale.json"))
    parser.add_argument("--part", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.part:
        result = {
            "grid": lambda: part_grid(args.candidates),
            "first": lambda: part_first(args.first),
            "sklearn": lambda: part_sklearn(args.sklearn_candidates),
            "sleep": lambda: part_sleep(args.trials, args.slots),
            "sleep_big": lambda: part_sleep(2 * args.trials, args.big_slots),
            "optuna": lambda: part_optuna(args.optuna_trials, args.slots),
        }[args.part]()
        Path(args.out).write_text(json.dumps(result))
        return

    common = [
        f"--candidates={args.candidates}",
        f"--first={args.first}",
        f"--sklearn-candidates={args.sklearn_candidates}",
        f"--slots={args.slots}",
        f"--trials={args.trials}",
        f"--optuna-trials={args.optuna_trials}",
        f"--big-slots={args.big_slots}",
    ]
    # Parts not run this time keep their last results (with their own "at" times).
    rows: dict[str, dict] = {}
    if Path(args.json).exists():
        rows = json.loads(Path(args.json).read_text())
    rows["machine"] = {"cores": os.cpu_count(), "python": sys.version.split()[0]}
    for part in args.only.split(","):
        rows[part] = run_part([f"--part={part}", *common])
        rows[part]["at"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        print(part, json.dumps(rows[part], indent=1), flush=True)
    rows.pop("ratio_optuna_over_daskhpo_wall", None)
    if "busy" in rows.get("sleep", {}) and "busy" in rows.get("optuna", {}):
        # Throughput at the same slot count (the two may run different numbers of trials).
        rows["ratio_daskhpo_over_optuna_busy"] = {
            "value": rows["sleep"]["busy"] / rows["optuna"]["busy"]
        }
    if "sklearn" in rows and "sklearn_s" in rows["sklearn"]:
        rows["ratio_sklearn_over_daskhpo"] = {
            "value": rows["sklearn"]["sklearn_s"] / rows["sklearn"]["daskhpo_s"]
        }
    Path(args.json).write_text(json.dumps(rows, indent=2))
    print("written", args.json)


if __name__ == "__main__":
    main()
