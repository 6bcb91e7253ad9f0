"""The dashboard's aggregates at 100,000 trials: samples keep the best, buckets and profiles cover
every evaluation, the best is the one daskhpo.results names, importance finds the parameters that
matter, and what a page receives stays bounded. Also :func:`fill_store`, the fast way the browser
test and benchmarks/dashboard.py fill a store with realistic trials.
"""

from __future__ import annotations

import json
import math
import random
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from daskhpo.dashboard.data import (
    PARALLEL_LINES,
    PARALLEL_TOP,
    SAMPLE_POINTS,
    SAMPLE_TOP,
    StoreFeed,
    TrialTable,
    summarize_table,
)
from daskhpo.results import best_position
from daskhpo.store import SQLiteStore, result_to_json
from daskhpo.strategies.base import Job, Result, Status

# -- realistic trials, fast ------------------------------------------------------------------------
DEPTHS = [None, 2, 3, 4, 6, 8, 12]
PARAMS = ["learning_rate", "max_depth", "n_estimators", "subsample", "loss"]
TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "daskhpo/execution/tasks.py", line 341, in run_unit\n'
    "    estimator.fit(X_train, y_train)\n"
    '  File "sklearn/ensemble/_gb.py", line 784, in fit\n'
    "    self._fit_stages(X, y, raw_predictions, sample_weight)\n"
    "FloatingPointError: overflow in the loss at learning_rate={lr:.4g}, max_depth={depth}\n"
)


def synthetic_results(n: int, seed: int = 0, start: int = 0, folds: int = 5) -> Iterator[Result]:
    """``n`` finished trials of a random search over a gradient-boosting space, as the search stores
    them: 5 folds, fit and score times, about 2% failed with a traceback in the first fold. The score
    depends on learning_rate (most), max_depth and n_estimators; subsample and loss are noise."""
    rng = np.random.default_rng(seed)
    lr = 10 ** rng.uniform(-4, 0, n)
    depth = rng.integers(0, len(DEPTHS), n)
    n_est = rng.integers(50, 1001, n)
    sub = rng.uniform(0.5, 1.0, n)
    loss = rng.integers(0, 2, n)
    depth_penalty = np.array([0.05] + [0.012 * abs(d - 6) for d in DEPTHS[1:]])[depth]
    base = 0.9 - 0.03 * (np.log10(lr) + 1.5) ** 2 - depth_penalty + 0.00003 * (n_est - 50)
    scores = np.clip(base[:, None] + rng.normal(0, 0.01, (n, folds)), 0, 1)
    failed = rng.random(n) < 0.02
    fit = rng.gamma(2.0, 0.5, (n, folds))
    for i in range(n):
        params = {
            "learning_rate": float(lr[i]),
            "max_depth": DEPTHS[depth[i]],
            "n_estimators": int(n_est[i]),
            "subsample": float(sub[i]),
            "loss": ("log_loss", "exponential")[loss[i]],
        }
        fold_scores = tuple(scores[i].tolist())
        fit_times = tuple(fit[i].tolist())
        if failed[i]:
            error = TRACEBACK.format(lr=lr[i], depth=params["max_depth"])
            yield Result(
                Job(start + i, params),
                Status.FAILED,
                math.nan,
                {"score": (math.nan,) + fold_scores[1:]},
                None,
                fit_times,
                (0.01,) * folds,
                (error,) + (None,) * (folds - 1),
            )
        else:
            yield Result(
                Job(start + i, params),
                Status.COMPLETE,
                float(np.mean(fold_scores)),
                {"score": fold_scores},
                None,
                fit_times,
                tuple(0.02 * t for t in fit_times),
                (None,) * folds,
            )


def synthetic_records(n: int, seed: int = 0, start: int = 0) -> list[dict[str, Any]]:
    return [result_to_json(r) for r in synthetic_results(n, seed, start)]


def fill_store(
    path: Path, name: str, n: int, *, seed: int = 0, start: int = 0, status: str = "running"
) -> SQLiteStore:
    """Add ``n`` synthetic trials (ids from ``start``) to the search ``name`` of the store file
    ``path`` in one transaction: 100,000 in about 5 s here, where ``append`` one at a time (one
    transaction each, as a running search writes) takes about 16 s. The rows are what ``append``
    writes (``result_to_json``); the search's row is made and updated through the store's API."""
    store = SQLiteStore(path, name)
    if start == 0:
        store.start({"search": "RandomizedSearchCV", "best_rule": "all"}, None)
    now = time.time()
    rows = [
        (
            name,
            r.job.trial_id,
            r.status.value,
            None if math.isnan(r.score) else r.score,
            json.dumps(result_to_json(r)),
            now,
        )
        for r in synthetic_results(n, seed, start)
    ]
    conn = sqlite3.connect(str(path), timeout=30, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "INSERT INTO trials (search, trial_id, status, score, data, created) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )
        conn.execute("COMMIT")
    finally:
        conn.close()
    store.set_status(status)
    return store


def store_best(path: Path, name: str) -> tuple[int, float]:
    """(trial id, score) of the best trial under the rule "all", read straight from the file."""
    conn = sqlite3.connect(str(path))
    try:
        tid, score = conn.execute(
            "SELECT trial_id, score FROM trials WHERE search=? AND status='complete' "
            "ORDER BY score DESC, trial_id LIMIT 1",
            (name,),
        ).fetchone()
    finally:
        conn.close()
    return int(tid), float(score)


# -- the tests -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def big() -> tuple[list[dict[str, Any]], TrialTable]:
    records = synthetic_records(100_000)
    return records, TrialTable.from_records(records)


def test_fill_store_writes_what_append_writes(tmp_path):
    store = fill_store(tmp_path / "runs.db", "s", 200)
    other = SQLiteStore(tmp_path / "runs.db", "t")
    for r in synthetic_results(200):
        other.append(r)
    assert store.records() == other.records()
    assert len(store) == 200 and store.info()["status"] == "running"
    failed = [r for r in store.records() if r["status"] == "failed"]
    assert failed and all("Traceback" in r["errors"][0] for r in failed)


def test_the_sample_is_bounded_and_always_holds_the_best(big):
    records, table = big
    s = summarize_table(table, rule="all")
    n_scored = sum(1 for r in records if r["status"] == "complete")
    assert s.n_records == 100_000 and s.n_scored == n_scored and s.sampled
    assert s.n_plotted <= SAMPLE_POINTS + SAMPLE_TOP + 1
    sampled = set(s.trials["trial_id"].tolist())
    scores = sorted(
        ((r["score"], r["trial_id"]) for r in records if r["status"] == "complete"), reverse=True
    )
    assert {tid for _, tid in scores[:SAMPLE_TOP]} <= sampled  # the best are always drawn
    best = records[best_position(records, "all")]
    assert s.best is not None
    assert (s.best["trial_id"], s.best["score"]) == (best["trial_id"], best["score"])
    assert best["trial_id"] in sampled
    # The sample is spread over the whole search, not its first rows.
    order = s.trials["order"]
    assert order.min() < n_scored * 0.01 and order.max() > n_scored * 0.99
    # The parallel-coordinates lines: bounded, with the best trials.
    lines = set(s.parallel["trial_id"].tolist())
    assert len(lines) <= PARALLEL_LINES
    assert {tid for _, tid in scores[:PARALLEL_TOP]} <= lines
    assert all(len(ys) == len(s.params) + 1 for ys in s.parallel["ys"])


def test_buckets_histogram_and_profiles_cover_every_evaluation(big):
    records, table = big
    s = summarize_table(table)
    scores = np.array([r["score"] for r in records if r["status"] == "complete"])
    h = s.history
    assert h["left"][0] == 0.5 and h["right"][-1] == len(scores) + 0.5
    np.testing.assert_array_equal(h["right"][:-1], h["left"][1:])  # contiguous, no gaps
    assert h["count"].sum() == len(scores) and len(h["count"]) <= 300
    assert h["low"].min() == scores.min() and h["high"].max() == scores.max()
    assert np.average(h["mean"], weights=h["count"]) == pytest.approx(scores.mean())
    # The best-so-far line steps exactly where the best improved.
    improved = np.flatnonzero(np.r_[True, scores[1:] > np.maximum.accumulate(scores)[:-1]])
    np.testing.assert_array_equal(s.best_line["order"][:-1], improved + 1)
    assert s.best_line["best"][-1] == scores.max() and s.best_line["order"][-1] == len(scores)
    assert s.histogram["count"].sum() == len(scores)
    for p, profile in zip(s.params, s.profiles, strict=True):
        assert profile["count"].sum() == len(scores), p.name  # every parameter is always set
        assert profile["max"].max() == scores.max()
    depth = s.profiles[PARAMS.index("max_depth")]
    assert depth["x"] == ["None", "2", "3", "4", "6", "8", "12"]


def test_the_sample_changes_little_as_trials_arrive(big):
    records, _ = big
    before = TrialTable.from_records(records[:50_000])
    first = set(summarize_table(before).trials["trial_id"].tolist())
    before.add(records[50_000:51_000])
    second = set(summarize_table(before).trials["trial_id"].tolist())
    assert len(first & second) >= 0.9 * len(first)


def _random_records(rng: random.Random, n: int) -> list[dict[str, Any]]:
    """Records of an adaptive-looking search with ties, failures and re-evaluated rungs."""
    out = []
    for _ in range(n):
        tid = rng.randrange(n // 3 + 1)
        failed = rng.random() < 0.15
        budget = rng.choice([None, 1, 3, 9]) if rng.random() < 0.5 else rng.choice([1, 3, 9])
        out.append(
            {
                "trial_id": tid,
                "params": {"a": rng.choice([0.1, 1.0, 10.0])},
                "budget": budget,
                "rung": rng.randrange(3),
                "bracket": 0,
                "status": "failed" if failed else "complete",
                "score": None if failed else rng.choice([0.1, 0.5, 0.5, 0.9]),
                "test_scores": {"score": [0.5]},
            }
        )
    return out


@pytest.mark.parametrize("rule", ["all", "top", "last"])
def test_the_best_is_the_one_daskhpo_results_names(rule):
    rng = random.Random(rule)
    for _ in range(200):
        records = _random_records(rng, rng.randrange(1, 30))
        assert TrialTable.from_records(records).best(rule) == best_position(records, rule)


def test_table_pages_list_best_latest_and_failed(big):
    records, table = big
    best = summarize_table(table, top=50)
    assert best.n_rows == len({r["trial_id"] for r in records if r["status"] == "complete"})
    assert len(best.top["trial_id"]) == 50 and best.top["rank"][0] == 1
    assert best.top["score"] == sorted(best.top["score"], reverse=True)
    last = summarize_table(table, top=50, view="latest", page=2)
    assert last.top["trial_id"] == [r["trial_id"] for r in records[::-1][100:150]]
    failed = summarize_table(table, top=50, view="failed", page=10**6)  # past the end: the last
    n_failed = sum(r["status"] == "failed" for r in records)
    assert failed.n_rows == n_failed and failed.page == -(-n_failed // 50) - 1
    assert set(failed.top["status"]) == {"failed"}


def test_importance_ranks_the_parameters_that_matter_above_noise(big):
    from daskhpo.dashboard.importance import importance

    _, table = big
    start = time.perf_counter()
    result = importance(table)
    took = time.perf_counter() - start
    print(f"importance on {result['n_trials']} of 100,000 trials: {took:.2f} s")
    assert result["n_trials"] == 5000 and result["note"] is None
    assert sorted(result["name"]) == sorted(PARAMS)
    rank = {name: i for i, name in enumerate(result["name"])}
    assert rank["learning_rate"] == 0
    for signal in ("learning_rate", "max_depth", "n_estimators"):
        for noise in ("subsample", "loss"):
            assert rank[signal] < rank[noise], result
    assert result["r2"] > 0.8
    few = importance(TrialTable.from_records(synthetic_records(10)))
    assert few["name"] == [] and "needs 20 scored trials" in few["note"]


def test_importance_agrees_with_optunas_evaluator_on_what_matters():
    """The peer's evaluator on the same trials (an Optuna study built from them) puts the same
    informative parameters above the noise ones. (Optuna's fANOVA took 45 s on these 1,500 trials
    here; its mean-decrease-impurity evaluator takes well under a second.)"""
    optuna = pytest.importorskip("optuna")
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    from daskhpo.dashboard.importance import importance

    records = [r for r in synthetic_records(1500, seed=3) if r["status"] == "complete"]
    dists = {
        "learning_rate": FloatDistribution(1e-4, 1.0, log=True),
        "max_depth": CategoricalDistribution(DEPTHS),
        "n_estimators": IntDistribution(50, 1000),
        "subsample": FloatDistribution(0.5, 1.0),
        "loss": CategoricalDistribution(["log_loss", "exponential"]),
    }
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize")
    study.add_trials(
        [
            optuna.trial.create_trial(params=r["params"], distributions=dists, value=r["score"])
            for r in records
        ]
    )
    theirs = list(
        optuna.importance.get_param_importances(
            study, evaluator=optuna.importance.MeanDecreaseImpurityImportanceEvaluator(seed=0)
        )
    )
    ours = importance(TrialTable.from_records(records))["name"]
    signal = {"learning_rate", "max_depth", "n_estimators"}
    assert set(theirs[:3]) == set(ours[:3]) == signal, (theirs, ours)
    assert theirs[0] == ours[0] == "learning_rate"


def _wire_size(message: Any) -> int:
    """Bytes of a bokeh protocol message on the websocket: its JSON and its binary buffers."""
    return len(message.content_json) + sum(len(b.to_bytes()) for b in message.buffers)


def test_a_page_receives_a_bounded_document_and_bounded_updates(big):
    """The document a browser gets for 100,000 trials, and what one live update sends, measured as
    bokeh serializes them for the websocket."""
    from bokeh.document import Document
    from bokeh.protocol import Protocol

    from daskhpo.dashboard.plots import SearchView

    records, _ = big
    table = TrialTable.from_records(records[:99_000])
    view = SearchView("big", live=True, lookup=lambda t: [])
    view.update(table, status="running", rule="all")
    doc = Document()
    doc.add_root(view.root)
    size = _wire_size(Protocol().create("PULL-DOC-REPLY", "request", doc))
    print(f"document for 99,000 trials: {size / 1e6:.2f} MB")
    assert size < 1_500_000

    events: list[Any] = []
    doc.on_change(events.append)
    table.add(records[99_000:])
    view.update(table, status="running", rule="all")
    sent = _wire_size(Protocol().create("PATCH-DOC", events))
    print(f"update of 1,000 trials: {len(events)} events, {sent / 1e3:.0f} kB")
    assert 0 < sent < 1_000_000
    assert "100,000</b> evaluations stored" in view.header.text

    events.clear()
    view.update(table, status="running", rule="all")  # nothing new: nothing sent
    assert events == []


def test_a_feed_reads_only_new_rows_and_follows_a_reset(tmp_path):
    store = fill_store(tmp_path / "runs.db", "s", 300)
    feed = StoreFeed(store)
    assert feed.refresh() == 300 and feed.table.n == 300
    assert feed.refresh() == 0
    fill_store(tmp_path / "runs.db", "s", 20, start=300)
    assert feed.refresh() == 20 and feed.table.trial_id.values[-1] == 319
    failed = int(feed.table.trial_id.values[np.flatnonzero(feed.table.failed.values)[0]])
    (record,) = feed.records_of(failed)
    assert record["status"] == "failed" and "FloatingPointError" in record["errors"][0]
    store.reset()
    fill_store(tmp_path / "runs.db", "s", 5, start=1000)
    assert feed.refresh() == 5 and feed.table.trial_id.values.tolist() == list(range(1000, 1005))
    feed.close()


def test_the_trial_view_shows_params_folds_times_and_the_traceback():
    from daskhpo.dashboard.trial import NO_WORKER, trial_html

    records = synthetic_records(300)
    failed = next(r for r in records if r["status"] == "failed")
    text = trial_html(failed["trial_id"], [failed])
    assert f"Trial {failed['trial_id']}" in text and "FloatingPointError: overflow" in text
    assert "learning_rate" in text and "fit time (s)" in text and "test score" in text
    assert NO_WORKER.split(":")[0] in text  # the store keeps no worker: the view says so
    done = next(r for r in records if r["status"] == "complete")
    text = trial_html(done["trial_id"], [done])
    assert f"{done['test_scores']['score'][0]:.4f}" in text and "traceback" not in text
    assert "No trial 123456" in trial_html(123456, [])
