"""Adaptive searches side by side, in one process on one cluster (issue 3's benchmark).

SGDClassifier (elastic net) on make_classification(200_000, 40) in blocks of 20,000 rows; a 20% test
split is kept out of every search and used only to score each search's best model. Searches:

- daskhpo HyperbandSearchCV, BOHBSearchCV and ASHASearchCV (max_budget=27 partial_fit calls);
- a random search that trains every candidate to the full budget (daskhpo IncrementalSearchCV with one
  step of 27 calls: no early stopping), with as many candidates as Hyperband samples;
- daskhpo SuccessiveHalvingSearchCV (synchronous rungs) for the busy-time comparison with ASHA;
- scikit-learn HalvingRandomSearchCV (budget = max_iter, in memory, n_jobs=2);
- dask-ml HyperbandSearchCV (reported as failed if it does not run with this dask).

Printed: wall time, partial_fit calls, best score on the test split, and the share of the wall time the
workers were busy (from the scheduler's task stream; "in span" counts only the time between the
search's first task start and its last task end). Usage: python benchmarks/adaptive.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import time
import traceback
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def busy_share(stream: list[dict], n_threads: int, wall: float) -> float:
    """Share of thread time spent computing, from the task stream's compute intervals."""
    busy = 0.0
    for task in stream:
        for ss in task.get("startstops", ()):
            if ss["action"] == "compute":
                busy += ss["stop"] - ss["start"]
    return busy / (n_threads * wall) if wall > 0 else float("nan")


def span_share(stream: list[dict], n_threads: int) -> float:
    """Busy share between the first task's start and the last task's end: idle time while the search
    runs, without the set-up before its first task (planning, shipping blocks) and the driver's
    bookkeeping after the last one."""
    times = [
        (ss["start"], ss["stop"])
        for task in stream
        for ss in task.get("startstops", ())
        if ss["action"] == "compute"
    ]
    if not times:
        return float("nan")
    span = max(stop for _, stop in times) - min(start for start, _ in times)
    busy = sum(stop - start for start, stop in times)
    return busy / (n_threads * span) if span > 0 else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small data, for a smoke run")
    args = parser.parse_args()

    import dask.array as da
    from distributed import Client, get_task_stream
    from scipy.stats import loguniform, uniform
    from sklearn.datasets import make_classification
    from sklearn.linear_model import SGDClassifier
    from sklearn.model_selection import train_test_split

    from daskhpo import (
        ASHASearchCV,
        BOHBSearchCV,
        HyperbandSearchCV,
        IncrementalSearchCV,
        SuccessiveHalvingSearchCV,
    )
    from daskhpo.cluster import make_local_cluster

    n = 20_000 if args.quick else 200_000
    chunk = n // 10
    max_budget = 27
    X, y = make_classification(n_samples=n, n_features=40, random_state=0)
    X_search, X_test, y_search, y_test = train_test_split(X, y, test_size=0.2, random_state=0)
    space = {
        "alpha": loguniform(1e-6, 1e-1),
        "l1_ratio": uniform(0, 1),
    }
    base = SGDClassifier(penalty="elasticnet", tol=None, random_state=0)
    classes = np.unique(y)

    cluster = make_local_cluster(n_workers=2, dashboard_address="127.0.0.1:0")
    client = Client(cluster)
    n_threads = sum(client.nthreads().values())
    Xd = da.from_array(X_search, chunks=(chunk, 40))
    yd = da.from_array(y_search, chunks=chunk)
    rows = []

    def record(label, fit, calls_of):
        with get_task_stream(client) as ts:
            t0 = time.perf_counter()
            try:
                search = fit()
            except Exception as exc:
                rows.append({"search": label, "error": f"{type(exc).__name__}: {exc}"[:160]})
                traceback.print_exc()
                return None
            wall = time.perf_counter() - t0
        score = float(search.best_estimator_.score(X_test, y_test))
        rows.append(
            {
                "search": label,
                "wall_s": round(wall, 2),
                "partial_fit_calls": calls_of(search),
                "test_score": round(score, 4),
                "busy": round(busy_share(ts.data, n_threads, wall), 3),
                "busy_in_span": round(span_share(ts.data, n_threads), 3),
            }
        )
        print(rows[-1], flush=True)
        return search

    common = dict(test_size=0.2, random_state=0, client=client)
    # Warm up the workers (imports, first data transfer) so the first timed search is not charged.
    HyperbandSearchCV(base, space, max_budget=3, **common).fit(Xd[: chunk * 2], yd[: chunk * 2])
    hb = record(
        "daskhpo Hyperband",
        lambda: HyperbandSearchCV(base, space, max_budget=max_budget, **common).fit(
            Xd, yd, classes=classes
        ),
        lambda s: s.metadata_["partial_fit_calls"],
    )
    n_configs = len(set(hb.cv_results_["trial_id"])) if hb is not None else 49
    bohb = record(
        "daskhpo BOHB",
        lambda: BOHBSearchCV(base, space, max_budget=max_budget, **common).fit(
            Xd, yd, classes=classes
        ),
        lambda s: s.metadata_["partial_fit_calls"],
    )
    reach = None
    if hb is not None and bohb is not None:
        # When did BOHB first match Hyperband's final best validation score at the full budget?
        for h in bohb.history_:
            if h["budget"] == max_budget and h["score"] >= hb.best_score_:
                reach = h["elapsed"]
                break
    record(
        "daskhpo ASHA",
        lambda: ASHASearchCV(
            base, space, n_candidates=n_configs, max_budget=max_budget, **common
        ).fit(Xd, yd, classes=classes),
        lambda s: s.metadata_["partial_fit_calls"],
    )
    record(
        "daskhpo successive halving",
        lambda: SuccessiveHalvingSearchCV(
            base, space, n_candidates=n_configs, max_budget=max_budget, **common
        ).fit(Xd, yd, classes=classes),
        lambda s: s.metadata_["partial_fit_calls"],
    )
    record(
        f"random search, {n_configs} x full budget",
        lambda: IncrementalSearchCV(
            base, space, n_candidates=n_configs, max_budget=max_budget, step=max_budget, **common
        ).fit(Xd, yd, classes=classes),
        lambda s: s.metadata_["partial_fit_calls"],
    )

    def sklearn_halving():
        from sklearn.experimental import enable_halving_search_cv  # noqa: F401
        from sklearn.model_selection import HalvingRandomSearchCV, ShuffleSplit

        s = HalvingRandomSearchCV(
            SGDClassifier(penalty="elasticnet", tol=None, random_state=0),
            space,
            n_candidates=n_configs,
            resource="max_iter",
            min_resources=1,
            max_resources=max(1, max_budget * chunk // len(X_search) + 1),
            factor=3,
            cv=ShuffleSplit(1, test_size=0.2, random_state=0),
            random_state=0,
            n_jobs=n_threads,
        )
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return s.fit(X_search, y_search)

    record(
        "scikit-learn HalvingRandomSearchCV (max_iter)",
        sklearn_halving,
        lambda s: "n/a (epochs: " + "+".join(map(str, s.n_resources_)) + ")",
    )

    def daskml_hyperband():
        from dask_ml.model_selection import HyperbandSearchCV as DaskMLHyperband

        s = DaskMLHyperband(
            SGDClassifier(penalty="elasticnet", tol=None, random_state=0),
            space,
            max_iter=max_budget,
            random_state=0,
            test_size=0.2,
        )
        return s.fit(Xd, yd, classes=classes)

    record(
        "dask-ml HyperbandSearchCV",
        daskml_hyperband,
        lambda s: int(sum(s.metadata_["partial_fit_calls"] for _ in [0])),
    )

    client.close()
    cluster.close()

    header = f"{'search':48} {'wall s':>8} {'pf calls':>10} {'test score':>11} {'busy':>6} {'in span':>8}"
    lines = [header, "-" * len(header)]
    for r in rows:
        if "error" in r:
            lines.append(f"{r['search']:48} FAILED: {r['error']}")
        else:
            lines.append(
                f"{r['search']:48} {r['wall_s']:8.2f} {str(r['partial_fit_calls']):>10} "
                f"{r['test_score']:11.4f} {r['busy']:6.2f} {r['busy_in_span']:8.2f}"
            )
    ok = {r["search"]: r for r in rows if "error" not in r}
    hbr = ok.get("daskhpo Hyperband")
    rnd = next((r for k, r in ok.items() if k.startswith("random search")), None)
    if hbr and rnd:
        lines.append("")
        lines.append(
            f"Hyperband vs full-budget random search: score difference "
            f"{hbr['test_score'] - rnd['test_score']:+.4f} (target >= -0.005), partial_fit calls "
            f"{hbr['partial_fit_calls'] / rnd['partial_fit_calls']:.2f}x (target <= 0.33)"
        )
    if hbr and "daskhpo BOHB" in ok:
        bo = ok["daskhpo BOHB"]
        lines.append(
            f"BOHB vs Hyperband: score difference {bo['test_score'] - hbr['test_score']:+.4f}, wall time "
            f"{bo['wall_s'] / hbr['wall_s']:.2f}x for the whole run"
        )
        if reach is not None:
            lines.append(
                f"BOHB matched Hyperband's best validation score after {reach:.2f} s, "
                f"{reach / hbr['wall_s']:.2f}x Hyperband's wall time (target <= 0.7x)"
            )
        else:
            lines.append("BOHB never matched Hyperband's best validation score at the full budget")
    if "daskhpo ASHA" in ok and "daskhpo successive halving" in ok:
        asha, sh = ok["daskhpo ASHA"], ok["daskhpo successive halving"]
        lines.append(
            f"Workers busy, share of the search's wall time: ASHA {asha['busy']:.0%} (target >= 90%), "
            f"synchronous successive halving {sh['busy']:.0%}; between the first task's start and the "
            f"last one's end: ASHA {asha['busy_in_span']:.0%}, successive halving "
            f"{sh['busy_in_span']:.0%}"
        )
    text = "\n".join(lines)
    print("\n" + text)
    if not args.quick:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "adaptive.txt").write_text(text + "\n")
        (RESULTS / "adaptive.json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
