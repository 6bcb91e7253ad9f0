"""The progress bar a user sees in a terminal: trials or budget done of total, best so far, times."""

from __future__ import annotations

import io
import re

import pytest
from sklearn.datasets import load_iris
from sklearn.tree import DecisionTreeClassifier

from daskhpo import GridSearchCV
from daskhpo.cli import main
from daskhpo.progress import ProgressBar
from daskhpo.strategies.base import Job, Result, Status
from tests.helpers import SlowTree

X, y = load_iris(return_X_y=True)


def _last_frame(err: str, desc: str) -> str:
    """The bar as it was last drawn (tqdm redraws the line after a carriage return)."""
    frames = [f for f in re.split(r"[\r\n]", err) if f.startswith(f"{desc}:")]
    assert frames, err
    return frames[-1]


def test_fit_shows_trials_best_score_elapsed_and_remaining(client, capsys):
    # Fits of 0.2 s: the bar is redrawn (at most every 0.1 s) while trials are still running.
    search = GridSearchCV(
        SlowTree(delay=0.2), {"max_depth": [1, 2, 3, 4, 5]}, cv=2, verbose=1, client=client
    ).fit(X, y)
    err = capsys.readouterr().err
    last = _last_frame(err, "GridSearchCV")
    assert "100%" in last and "5/5" in last
    # tqdm's [elapsed<remaining, rate, postfix]
    assert re.search(r"\[\d\d:\d\d<\d\d:\d\d, .*trial/s, best=", last), last
    assert f"best={search.best_score_:.4g}" in last
    # An earlier frame showed a partial count with a remaining-time estimate.
    assert re.search(r"GridSearchCV: +\d+%.*\| [1-4]/5 \[\d\d:\d\d<\d\d:\d\d", err), err


def test_verbose_zero_prints_nothing(client, capsys):
    GridSearchCV(
        DecisionTreeClassifier(random_state=0), {"max_depth": [1, 2]}, cv=2, client=client
    ).fit(X, y)
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


def _result(trial: int, score: float, budget: float | None) -> Result:
    return Result(
        job=Job(trial, {"alpha": trial}, budget=budget),
        status=Status.COMPLETE if score == score else Status.FAILED,
        score=score,
        test_scores={"score": (score,)},
        train_scores=None,
        fit_times=(0.1,),
        score_times=(0.01,),
    )


def test_budget_bar_counts_budget_for_adaptive_searches():
    # Successive halving with 9 trials at budget 1, 3 at budget 3, 1 at budget 9: 27 in all.
    out = io.StringIO()
    bar = ProgressBar(27, enabled=True, desc="SuccessiveHalving", unit="budget", file=out)
    scores = iter([0.1 * i for i in range(9)] + [0.5, 0.9, float("nan")] + [0.95])
    for budget, n in ((1, 9), (3, 3), (9, 1)):
        for t in range(n):
            bar.update(_result(t, next(scores), budget))
        if budget == 3:
            middle = bar.text
    bar.close()
    assert "18/27" in middle and "best=0.9" in middle
    last = _last_frame(out.getvalue(), "SuccessiveHalving")
    assert "27/27" in last and "100%" in last and "best=0.95" in last and "budget/s" in last
    assert bar.n_results == 13 and bar.done == 27


def test_trial_bar_without_a_known_total_still_counts():
    out = io.StringIO()
    bar = ProgressBar(None, enabled=True, desc="ASHA", file=out)
    for t in range(4):
        bar.update(_result(t, 0.2 * t, 1))
    assert re.search(r"ASHA: 4trial \[\d\d:\d\d, .*best=0.6", bar.text), bar.text
    bar.close()


def test_disabled_bar_is_silent_but_still_tracks_the_best():
    bar = ProgressBar(3, enabled=False)
    bar.update(_result(0, 0.4, None))
    bar.update(_result(1, float("nan"), None))
    assert bar.text == "" and bar.best == 0.4 and bar.n_results == 2


def test_bad_unit_is_refused():
    with pytest.raises(ValueError, match="unit='trials'"):
        ProgressBar(3, enabled=True, unit="trials")  # type: ignore[arg-type]


def test_cli_run_shows_the_bar_and_the_dashboard_url(client, tmp_path, capsys):
    spec = tmp_path / "trees.yaml"
    spec.write_text(
        "name: bar-trees\n"
        "estimator: {class: sklearn.tree.DecisionTreeClassifier, params: {random_state: 0}}\n"
        "search: {type: grid, param_grid: {max_depth: [1, 2, 3]}}\n"
        "data: {loader: sklearn.datasets.load_iris}\n"
        "cv: 2\n"
    )
    assert main(["run", str(spec), "--cluster", client.scheduler.address]) == 0
    err = capsys.readouterr().err
    last = _last_frame(err, "GridSearchCV")
    assert "3/3" in last and "best=0.9" in last
    assert re.search(r"Search dashboard: http://127\.0\.0\.1:\d+/daskhpo\?name=bar-trees", err)
