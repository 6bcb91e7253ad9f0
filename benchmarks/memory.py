"""Peak worker memory against dataset size for a Hyperband search over partial_fit (issue 3).

A 2-worker LocalCluster with a hard memory_limit per worker; lazily generated dask arrays of 0.5x, 1x, 2x
and 4x that limit (X only); HyperbandSearchCV(SGDClassifier, max_budget=3) streaming the blocks
(persist=False). Peak RSS per worker is sampled every 0.25 s from the workers themselves; restarts and
memory pauses are read from the worker logs. The target: peak RSS stays flat as the data grows.

Usage: python benchmarks/memory.py [--limit 700e6] [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import threading
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def _rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def lazy_classification(nbytes: float, n_features: int = 40, block_bytes: float = 25e6):
    import dask.array as da

    rows = int(block_bytes // (8 * n_features))
    n_blocks = max(2, int(round(nbytes / block_bytes)))
    X = da.random.RandomState(0).normal(
        size=(rows * n_blocks, n_features), chunks=(rows, n_features)
    )
    y = (X @ np.linspace(-1, 1, n_features) > 0).astype("int64")
    return X, y


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=float, default=700e6, help="memory_limit per worker, bytes")
    parser.add_argument("--quick", action="store_true", help="only 0.5x and 1x")
    args = parser.parse_args()

    from distributed import Client
    from scipy.stats import loguniform
    from sklearn.linear_model import SGDClassifier

    from daskhpo import HyperbandSearchCV
    from daskhpo.cluster import make_local_cluster, workers_info

    factors = [0.5, 1.0] if args.quick else [0.5, 1.0, 2.0, 4.0]
    rows = []
    for factor in factors:
        cluster = make_local_cluster(
            n_workers=2, memory_limit=args.limit, dashboard_address="127.0.0.1:0"
        )
        with cluster, Client(cluster, set_as_default=False) as client:
            X, y = lazy_classification(factor * args.limit)
            before = set(workers_info(client))
            idle = max(client.run(_rss).values())
            peak = [0]
            stop = threading.Event()

            def sample(peak=peak, stop=stop, client=client) -> None:
                while not stop.is_set():
                    with contextlib.suppress(Exception):
                        peak[0] = max(peak[0], *client.run(_rss).values())
                    stop.wait(0.25)

            thread = threading.Thread(target=sample, daemon=True)
            thread.start()
            t0 = time.perf_counter()
            search = HyperbandSearchCV(
                SGDClassifier(tol=None, random_state=0),
                {"alpha": loguniform(1e-6, 1e-1)},
                max_budget=3,
                test_size=0.05,
                persist=False,
                random_state=0,
                client=client,
            ).fit(X, y, classes=[0, 1])
            wall = time.perf_counter() - t0
            stop.set()
            thread.join()
            logs = "\n".join(line for v in client.get_worker_logs().values() for _, line in v)
            rows.append(
                {
                    "data_x_limit": factor,
                    "data_mb": X.nbytes / 1e6,
                    "idle_rss_mb": idle / 1e6,
                    "peak_rss_mb": peak[0] / 1e6,
                    "peak_over_limit": peak[0] / args.limit,
                    "wall_s": wall,
                    "partial_fit_calls": search.metadata_["partial_fit_calls"],
                    "restarted": set(workers_info(client)) != before,
                    "paused": "Pausing worker" in logs,
                }
            )
            print(rows[-1], flush=True)

    header = (
        f"{'data / worker limit':>20} {'data MB':>9} {'idle RSS MB':>12} {'peak RSS MB':>12} "
        f"{'peak / limit':>13} {'wall s':>8} {'restarted':>10} {'paused':>7}"
    )
    lines = [
        f"worker memory_limit = {args.limit / 1e6:.0f} MB, 2 workers",
        header,
        "-" * len(header),
    ]
    for r in rows:
        lines.append(
            f"{r['data_x_limit']:>20.1f} {r['data_mb']:>9.0f} {r['idle_rss_mb']:>12.0f} "
            f"{r['peak_rss_mb']:>12.0f} {r['peak_over_limit']:>13.2f} {r['wall_s']:>8.1f} "
            f"{r['restarted']!s:>10} {r['paused']!s:>7}"
        )
    peaks = [r["peak_rss_mb"] for r in rows]
    lines.append("")
    lines.append(
        f"Peak RSS from the smallest to the largest data set: {peaks[0]:.0f} -> {peaks[-1]:.0f} MB "
        f"({peaks[-1] / peaks[0]:.2f}x) while the data grew {rows[-1]['data_mb'] / rows[0]['data_mb']:.0f}x"
    )
    text = "\n".join(lines)
    print("\n" + text)
    if not args.quick:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "memory.txt").write_text(text + "\n")


if __name__ == "__main__":
    main()
