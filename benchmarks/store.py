"""Results per second through one SQLite trial store, with many processes writing at once.

Run ``python benchmarks/store.py [--per-writer 2000] [--json FILE]``. For 1, 2, 4 and 8 writer
processes (each a search of its own, all in one file, as when several searches share a store), every
writer appends ``--per-writer`` finished trials as fast as it can, each in its own transaction as a
running search does; the wall time from the first to the last write gives results per second. The same
runs with Optuna's RDB storage on SQLite (``study.add_trial`` of finished trials) are the peer.
Target: at least 2,000 results/s.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _daskhpo_writer(path: str, name: str, n: int, start: float) -> None:
    from daskhpo.store import SQLiteStore
    from daskhpo.strategies import Job, Result, Status

    store = SQLiteStore(path, name)
    store.claim()
    store.start({"search": "benchmark"}, "f")
    while time.time() < start:
        time.sleep(0.001)
    for i in range(n):
        store.append(
            Result(
                Job(i, {"alpha": i / n, "max_depth": i % 7}),
                Status.COMPLETE,
                0.5,
                {"score": (0.5, 0.6, 0.55)},
                None,
                (0.01, 0.01, 0.01),
                (0.001, 0.001, 0.001),
                (None, None, None),
            )
        )
    store.set_status("finished")
    store.release()


def _optuna_writer(path: str, name: str, n: int, start: float) -> None:
    import optuna
    from optuna.distributions import FloatDistribution, IntDistribution

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.RDBStorage(
        f"sqlite:///{path}", engine_kwargs={"connect_args": {"timeout": 60}}
    )
    study = optuna.create_study(study_name=name, storage=storage, load_if_exists=True)
    dists = {"alpha": FloatDistribution(0, 1), "max_depth": IntDistribution(0, 6)}
    while time.time() < start:
        time.sleep(0.001)
    for i in range(n):
        study.add_trial(
            optuna.trial.create_trial(
                params={"alpha": i / n, "max_depth": i % 7}, distributions=dists, value=0.5
            )
        )


def run(kind: str, writers: int, per_writer: int) -> float:
    target = _daskhpo_writer if kind == "daskhpo" else _optuna_writer
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "store.db")
        if kind == "optuna":  # make the schema once, not in a race between the writers
            import optuna

            optuna.storages.RDBStorage(f"sqlite:///{path}")
        ctx = mp.get_context("spawn")
        start = time.time() + 3.0  # every writer has imported and opened the file by then
        procs = [
            ctx.Process(target=target, args=(path, f"search-{k}", per_writer, start))
            for k in range(writers)
        ]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
            if p.exitcode != 0:
                raise RuntimeError(f"a {kind} writer failed with exit code {p.exitcode}")
        elapsed = time.time() - start
    return writers * per_writer / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-writer", type=int, default=2000)
    parser.add_argument("--optuna-per-writer", type=int, default=300)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    rows = []
    for writers in (1, 2, 4, 8):
        ours = run("daskhpo", writers, args.per_writer)
        theirs = run("optuna", writers, args.optuna_per_writer)
        rows.append({"writers": writers, "daskhpo_per_s": ours, "optuna_per_s": theirs})
        print(
            f"{writers} writer(s): daskhpo {ours:8.0f} results/s   Optuna RDB (SQLite) "
            f"{theirs:6.0f} trials/s   ratio {ours / theirs:5.1f}x   target 2000/s: "
            f"{'met' if ours >= 2000 else 'missed'}",
            flush=True,
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
