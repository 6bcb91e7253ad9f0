"""Larger than memory, side by side: two epochs over data 4x a worker's memory, and xgboost.dask tuning.

Run ``python benchmarks/streaming.py [--limit 700e6] [--json FILE] [--skip-xgboost]``. Each contender
runs in a subprocess of its own with its own 2-worker LocalCluster (so one that hangs or dies on
memory cannot take the others down), with a timeout; this script prints one table.

(a) Streaming. A dask array of about 4x one worker's ``memory_limit`` (X only, 50 MB blocks),
generated lazily block by block; every block leaves a file when it is made, which counts the blocks
computed. Two SGDClassifier candidates, each trained for two passes over the training blocks
(``partial_fit`` once per block per pass), then scored on a held-out 5% of the blocks:

- daskhpo ``ASHASearchCV`` (one rung at two epochs: the same two trials);
- dask-ml ``IncrementalSearchCV(n_initial_parameters=2, max_iter=2 epochs, decay_rate=0)``.
  dask-ml's adaptive searches fail on dask 2026.8 only because they call ``dask.persist`` with an
  asynchronous client; the *shim* used here gives its module a ``dask`` whose ``persist`` unpacks the
  collections and calls ``default_client().persist``, nothing else. Named in the table as such.

Columns: wall seconds, peak RSS of any worker (sampled every 0.25 s), blocks computed out of the
blocks there are, workers restarted, memory pauses, and the best score.

(b) Distributed estimators. ``xgboost.dask.DaskXGBClassifier`` on 600,000 x 40 rows (192 MB) in 8
partitions on 2 workers, 3 folds of whole partitions: Hyperband over boosting rounds (``n_estimators``
3 to 27) against a random search of the same number of candidates, each at 27 rounds. Columns: wall
seconds, distributed fits, boosting rounds trained, best score. Not larger than one worker here: an
XGBoost fit copies its training data into a DMatrix on each worker, so data above one worker's limit
needs more workers or memory than this 2-core machine runs in reasonable time; the ratio is the point.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
N_FEATURES = 40
BLOCK_BYTES = 50e6


def touched_block(block_id: Any = None, *, rows: int, seed: int, marks: str) -> np.ndarray:
    """Block ``block_id`` of the lazily generated X; leaves a file as proof it was made."""
    Path(marks, str(block_id[0])).touch()
    return np.random.default_rng([seed, block_id[0]]).normal(size=(rows, N_FEATURES))


def lazy_data(nbytes: float, marks: str) -> tuple[Any, Any, int]:
    import dask.array as da

    rows = int(BLOCK_BYTES // (8 * N_FEATURES))
    n_blocks = max(4, int(round(nbytes / BLOCK_BYTES)))
    X = da.map_blocks(
        touched_block,
        rows=rows,
        seed=0,
        marks=marks,
        chunks=((rows,) * n_blocks, (N_FEATURES,)),
        dtype=float,
    )
    y = (X @ np.linspace(-1, 1, N_FEATURES) + 0.5 * X[:, 0] ** 2 > 0.5).astype("int64")
    return X, y, n_blocks


def _rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


class PeakRSS:
    def __init__(self, client: Any) -> None:
        self.client, self.peak = client, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(Exception):  # a dying worker shows in the restart count
                self.peak = max(self.peak, *self.client.run(_rss).values())
            self._stop.wait(0.25)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _daskml_shim() -> None:
    """Let dask-ml's adaptive searches run on dask 2026.8 (see the module docstring)."""
    import dask
    import dask_ml.model_selection._incremental as incremental
    from distributed import default_client

    def persist(*args: Any, **kwargs: Any) -> tuple[Any, ...]:
        from dask.base import unpack_collections

        kwargs.pop("priority", None)
        collections, repack = unpack_collections(*args)
        if not collections:
            return args
        return tuple(repack(default_client().persist(list(collections), **kwargs)))

    class _Dask:
        def __getattr__(self, name: str) -> Any:
            return persist if name == "persist" else getattr(dask, name)

    incremental.dask = _Dask()


def run_streaming(who: str, limit: float, out: str) -> None:
    from distributed import Client
    from scipy.stats import loguniform
    from sklearn.linear_model import SGDClassifier

    from daskhpo.cluster import make_local_cluster, workers_info

    marks = tempfile.mkdtemp(prefix="daskhpo-blocks-")
    X, y, n_blocks = lazy_data(4 * limit, marks)
    n_test = max(1, round(0.05 * n_blocks))
    epochs_calls = 2 * (n_blocks - n_test)
    space = {"alpha": loguniform(1e-6, 1e-1)}
    base = SGDClassifier(tol=None, random_state=0)
    cluster = make_local_cluster(n_workers=2, memory_limit=limit, dashboard_address="127.0.0.1:0")
    result: dict[str, Any] = {"search": who, "blocks": n_blocks, "data_gb": X.nbytes / 1e9}
    with cluster, Client(cluster) as client:
        before = set(workers_info(client))
        t0 = time.perf_counter()
        with PeakRSS(client) as rss:
            if who == "daskhpo":
                import daskhpo

                search = daskhpo.ASHASearchCV(
                    base,
                    space,
                    n_candidates=2,
                    min_budget=epochs_calls,
                    max_budget=epochs_calls,
                    test_size=n_test / n_blocks,
                    random_state=0,
                    client=client,
                )
                search.fit(X, y, classes=[0, 1])
                result["partial_fit_calls"] = search.stats_["partial_fit_calls"]
            else:
                _daskml_shim()
                from dask_ml.model_selection import IncrementalSearchCV

                search = IncrementalSearchCV(
                    base,
                    space,
                    n_initial_parameters=2,
                    max_iter=epochs_calls,
                    decay_rate=0,
                    test_size=n_test / n_blocks,
                    random_state=0,
                )
                search.fit(X, y, classes=[0, 1])
                history = search.model_history_.values()
                result["partial_fit_calls"] = int(sum(h[-1]["partial_fit_calls"] for h in history))
        result["wall_s"] = time.perf_counter() - t0
        result["best_score"] = float(search.best_score_)
        result["peak_rss_mb"] = rss.peak / 1e6
        after = set(workers_info(client))
        result["restarted"] = len(before - after)
        text = "\n".join(line for lines in client.get_worker_logs().values() for _, line in lines)
        result["pauses"] = text.count("Pausing worker")
    result["blocks_computed"] = len(list(Path(marks).iterdir()))
    Path(out).write_text(json.dumps(result))


def run_xgboost(who: str, limit: float, out: str) -> None:
    import dask.array as da
    from distributed import Client
    from xgboost import dask as dxgb

    import daskhpo
    from daskhpo.cluster import make_local_cluster

    rs = da.random.RandomState(0)
    X = rs.normal(size=(600_000, N_FEATURES), chunks=(75_000, N_FEATURES))
    y = (X @ np.linspace(-1, 1, N_FEATURES) + 0.5 * X[:, 0] ** 2 > 0.5).astype("int64")
    space = {"max_depth": [2, 4, 6, 8], "learning_rate": [0.05, 0.1, 0.3]}
    cluster = make_local_cluster(n_workers=2, memory_limit=limit, dashboard_address="127.0.0.1:0")
    result: dict[str, Any] = {"search": who, "data_gb": X.nbytes / 1e9}
    with cluster, Client(cluster) as client:
        X, y = client.persist([X, y])
        est = dxgb.DaskXGBClassifier(tree_method="hist")
        t0 = time.perf_counter()
        if who == "hyperband":
            search: Any = daskhpo.HyperbandSearchCV(
                est, space, min_budget=3, max_budget=27, cv=3, random_state=0, client=client
            )
            search.fit(X, y)
            n_candidates = len(set(search.cv_results_["trial_id"]))
            rounds = float(np.sum(search.cv_results_["budget"])) * 3
        else:
            n_candidates = int(Path(out + ".candidates").read_text())
            search = daskhpo.RandomizedSearchCV(
                est.set_params(n_estimators=27),
                space,
                n_iter=n_candidates,
                cv=3,
                random_state=0,
                client=client,
            )
            search.fit(X, y)
            rounds = 27.0 * 3 * n_candidates
        result.update(
            wall_s=time.perf_counter() - t0,
            fits=search.stats_["distributed_fits"],
            rounds=rounds,
            candidates=n_candidates,
            best_score=float(search.best_score_),
        )
    Path(out).write_text(json.dumps(result))
    if who == "hyperband":
        Path(out.replace("hyperband", "random") + ".candidates").write_text(str(n_candidates))


def _spawn(kind: str, who: str, limit: float, out: Path, timeout: float) -> dict[str, Any]:
    log = out.with_suffix(".log")
    with log.open("w") as fh:
        try:
            proc = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--one",
                    kind,
                    who,
                    "--limit",
                    str(limit),
                    "--out",
                    str(out),
                ],
                stdout=fh,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                cwd=ROOT,
            )
        except subprocess.TimeoutExpired:
            return {"search": who, "error": f"no result after {timeout:.0f} s"}
    if proc.returncode != 0 or not out.exists():
        tail = log.read_text().strip().splitlines()[-1:] or ["?"]
        return {"search": who, "error": f"exit {proc.returncode}: {tail[0][:120]}"}
    return dict(json.loads(out.read_text()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=float, default=700e6)
    parser.add_argument("--json", default=None)
    parser.add_argument("--skip-xgboost", action="store_true")
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--one", nargs=2, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        kind, who = args.one
        (run_streaming if kind == "streaming" else run_xgboost)(who, args.limit, args.out)
        return

    tmp = Path(tempfile.mkdtemp(prefix="daskhpo-bench-"))
    streaming = [
        _spawn("streaming", who, args.limit, tmp / f"s-{who}.json", args.timeout)
        for who in ("daskhpo", "dask-ml (with the persist shim)")
    ]
    print(
        f"(a) two epochs over {4 * args.limit / 1e9:.1f} GB, 2 workers x {args.limit / 1e6:.0f} MB"
    )
    print(
        f"{'search':34} {'wall s':>7} {'peak RSS MB':>11} {'blocks':>9} {'restarts':>8} {'pauses':>6} {'score':>6}"
    )
    for r in streaming:
        if "error" in r:
            print(f"{r['search']:34} FAILED: {r['error']}")
            continue
        blocks = f"{r['blocks_computed']}/{r['blocks']}"
        print(
            f"{r['search']:34} {r['wall_s']:7.1f} {r['peak_rss_mb']:11.0f} {blocks:>9} "
            f"{r['restarted']:8d} {r['pauses']:6d} {r['best_score']:6.3f}"
        )
    rows: dict[str, Any] = {"streaming": streaming}
    if not args.skip_xgboost:
        boost = [
            _spawn("xgboost", who, 2e9, tmp / f"x-{who}.json", args.timeout)
            for who in ("hyperband", "random")
        ]
        print("\n(b) xgboost.dask, 600,000 x 40 rows in 8 partitions, 3 folds of whole partitions")
        print(
            f"{'search':34} {'wall s':>7} {'fits':>5} {'rounds':>7} {'candidates':>10} {'score':>6}"
        )
        for r in boost:
            if "error" in r:
                print(f"{r['search']:34} FAILED: {r['error']}")
                continue
            print(
                f"{r['search']:34} {r['wall_s']:7.1f} {r['fits']:5d} {r['rounds']:7.0f} "
                f"{r['candidates']:10d} {r['best_score']:6.3f}"
            )
        ok = [r for r in boost if "error" not in r]
        if len(ok) == 2:
            print(f"random / hyperband wall time: {ok[1]['wall_s'] / ok[0]['wall_s']:.2f}x")
        rows["xgboost"] = boost
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
