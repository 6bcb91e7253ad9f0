"""Static plots and reports of a stored search: ``search.plot()``, ``daskhpo report``."""

from __future__ import annotations

import math
import random
from collections import Counter
from pathlib import Path

import pytest
from sklearn.datasets import load_iris
from sklearn.exceptions import NotFittedError
from sklearn.tree import DecisionTreeClassifier

from daskhpo import GridSearchCV
from daskhpo.cli import main
from daskhpo.dashboard import plot_store
from daskhpo.store import MemoryStore, SQLiteStore
from daskhpo.strategies.base import Job, Result, Status


def _result(job: Job, score: float) -> Result:
    failed = math.isnan(score)
    return Result(
        job=job,
        status=Status.FAILED if failed else Status.COMPLETE,
        score=score,
        test_scores={"score": (score, score)},
        train_scores=None,
        fit_times=(0.2, 0.4),
        score_times=(0.01, 0.01),
        errors=("ValueError: bad alpha", None) if failed else (),
    )


def hyperband_store(path: Path, name: str = "hb") -> tuple[SQLiteStore, Counter]:
    """A Hyperband-shaped log (max budget 9, reduction factor 3): brackets of 9, 3 and 3 trials
    promoted a third at a time, as a Hyperband strategy stores them. Returns the store and the trials
    alive per (bracket, budget)."""
    rng = random.Random(0)
    store = SQLiteStore(path, name)
    alive: Counter = Counter()
    trial = 0
    for bracket, (n, budget) in enumerate([(9, 1), (3, 3), (3, 9)]):
        pool = []
        for _ in range(n):
            params = {"alpha": 10 ** rng.uniform(-5, 0), "loss": rng.choice(["hinge", "log_loss"])}
            pool.append((trial, params, rng.random()))
            trial += 1
        rung = 0
        while pool and budget <= 9:
            for tid, params, quality in pool:
                store.append(_result(Job(tid, params, budget, rung, bracket), quality * budget / 9))
                alive[(bracket, budget)] += 1
            pool = sorted(pool, key=lambda p: -p[2])[: len(pool) // 3]
            budget, rung = budget * 3, rung + 1
    return store, alive


def _source(layout, name):
    found = list(layout.select({"name": name}))
    assert len(found) == 1, name
    return found[0]


def _data(layout, name):
    """A source's columns as lists (numeric columns are sent as numpy arrays)."""
    data = _source(layout, name).data
    return {k: v.tolist() if hasattr(v, "tolist") else list(v) for k, v in data.items()}


def test_adaptive_search_plots_rungs_curves_and_each_parameter(tmp_path):
    store, alive = hyperband_store(tmp_path / "hb.db")
    layout = plot_store(store)

    trials = _data(layout, "daskhpo-trials")
    assert len(trials["trial_id"]) == len(store) == sum(alive.values()) == 20
    assert trials["best"] == [max(trials["score"][: i + 1]) for i in range(20)]
    # The best-so-far line: a step at each improvement, and the last evaluation.
    best = _data(layout, "daskhpo-best")
    steps = [i + 1 for i in range(20) if i == 0 or trials["best"][i] > trials["best"][i - 1]]
    assert best["order"] == steps + ([20] if steps[-1] != 20 else [])
    assert best["best"] == [trials["best"][o - 1] for o in best["order"]]

    rungs = _data(layout, "daskhpo-rungs")
    shown = {
        (b, budget): n
        for b, budget, n in zip(rungs["bracket"], rungs["budget"], rungs["alive"], strict=True)
    }
    assert shown == {(b, float(budget)): n for (b, budget), n in alive.items()}
    assert shown[(0, 1.0)] == 9 and shown[(0, 3.0)] == 3 and shown[(0, 9.0)] == 1
    assert ("bracket 0", "1") in rungs["x"]

    curves = _data(layout, "daskhpo-curves")
    assert len(curves["trial_id"]) == 15  # one line per trial
    assert all(xs == sorted(xs) for xs in curves["xs"])

    alpha = _source(layout, "daskhpo-param-alpha")
    assert type(alpha.x_scale).__name__ == "LogScale"  # alpha spans five decades
    loss = _source(layout, "daskhpo-param-loss")
    assert list(loss.x_range.factors) == ["hinge", "log_loss"]

    top = _data(layout, "daskhpo-top")
    # Ranked by budget reached, then score: the trials that reached budget 9 come first.
    assert top["budget"][:3] == [9.0, 9.0, 9.0]
    assert top["score"][:3] == sorted(top["score"][:3], reverse=True)
    assert len(top["trial_id"]) == len(set(top["trial_id"])) == 15

    header = _source(layout, "daskhpo-header").text
    assert "20</b> evaluations stored" in header and "at budget 9" in header


def test_failed_trials_are_counted_not_plotted_and_missing_params_are_marked():
    store = MemoryStore()
    store.append(_result(Job(0, {"kernel": "rbf", "gamma": 0.1}), 0.8))
    store.append(_result(Job(1, {"kernel": "linear"}), 0.7))  # conditional space: no gamma
    store.append(_result(Job(2, {"kernel": "rbf", "gamma": 10.0}), float("nan")))
    store.append(_result(Job(3, {"kernel": "poly", "shrinking": False}), 0.6))
    layout = plot_store(store, name="svc")
    trials = _data(layout, "daskhpo-trials")
    assert trials["trial_id"] == [0, 1, 3]
    # A categorical parameter some trials lack gets an "(unset)" category.
    shrinking = _source(layout, "daskhpo-param-shrinking")
    assert trials["x2"] == ["(unset)", "(unset)", "False"]
    assert list(shrinking.x_range.factors) == ["False", "(unset)"]
    # gamma is numeric (log: it spans two decades); the linear-kernel trial has no point there.
    gamma = _source(layout, "daskhpo-param-gamma")
    assert type(gamma.x_scale).__name__ == "LogScale"
    assert trials["x1"][0] == pytest.approx(0.1) and math.isnan(trials["x1"][1])  # float32
    kernel = _source(layout, "daskhpo-param-kernel")
    assert list(kernel.x_range.factors) == ["linear", "poly", "rbf"]
    header = _source(layout, "daskhpo-header").text
    assert "4</b> evaluations stored" in header and "3</b> plotted" in header
    assert "1</b> failed" in header and "daskhpo · svc" in header
    assert _data(layout, "daskhpo-top")["trial_id"] == [0, 1, 3]
    assert not list(layout.select({"name": "daskhpo-rung-figure"}))  # not an adaptive search


def test_search_plot_shows_every_candidate_against_each_parameter(client):
    X, y = load_iris(return_X_y=True)
    search = GridSearchCV(
        DecisionTreeClassifier(random_state=0),
        {
            "max_depth": [None, 1, 2, 3],
            "criterion": ["gini", "entropy"],
            "min_samples_leaf": [1, 5],
        },
        cv=3,
        client=client,
    )
    with pytest.raises(NotFittedError):
        search.plot()
    search.fit(X, y)
    layout = search.plot()
    trials = _data(layout, "daskhpo-trials")
    assert sorted(trials["trial_id"]) == list(range(16))
    assert max(trials["best"]) == pytest.approx(search.best_score_)
    # max_depth holds None: categorical, numbers in order; min_samples_leaf is numeric.
    assert list(_source(layout, "daskhpo-param-max_depth").x_range.factors) == [
        "None",
        "1",
        "2",
        "3",
    ]
    assert type(_source(layout, "daskhpo-param-min_samples_leaf").x_scale).__name__ == "LinearScale"
    top = _data(layout, "daskhpo-top")
    assert top["score"][0] == pytest.approx(search.best_score_)
    assert top["trial_id"][0] == search.best_index_


def test_report_command_writes_a_standalone_html_file(tmp_path, capsys):
    store, _ = hyperband_store(tmp_path / "runs.db", name="hb-report")
    store.close()
    out = tmp_path / "out" / "report.html"
    storage = f"sqlite:///{tmp_path / 'runs.db'}"
    assert main(["report", "hb-report", "--storage", storage, "--html", str(out)]) == 0
    assert f"wrote {out}: 20 evaluations of search 'hb-report'" in capsys.readouterr().out
    text = out.read_text()
    assert "<title>daskhpo report: hb-report</title>" in text
    assert "cdn.bokeh.org" not in text and len(text) > 500_000  # bokeh's JavaScript is inside
    assert "daskhpo-trials" in text

    small = tmp_path / "small.html"
    assert main(["report", "hb-report", "--storage", storage, "--html", str(small), "--cdn"]) == 0
    assert "cdn.bokeh.org" in small.read_text() and small.stat().st_size < 200_000

    with pytest.raises(SystemExit, match="no search named 'nope'.*hb-report"):
        main(["report", "nope", "--storage", storage, "--html", str(out)])
