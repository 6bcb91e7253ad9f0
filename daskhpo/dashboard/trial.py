"""The per-trial view: everything the store holds of one trial, as the HTML of a bokeh ``Div``.

Per evaluation (one per rung for adaptive searches): status, budget, the per-fold test (and train)
scores of every metric, fit and score times, the error text (the traceback) of each failed fold, and the
``extra`` facts the search kept. The store does not record which worker ran a trial, so the view says
so rather than showing one; a value under ``extra["worker"]`` is shown when a search stored it.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

from .data import label

__all__ = ["trial_html"]

NO_WORKER = (
    "not recorded: daskhpo's trial store keeps scores, times and errors, not the Dask worker that "
    "ran a fold"
)


def _number(value: Any, digits: str = ".4f") -> str:
    if value is None:
        return "–"
    f = float(value)
    return "nan" if math.isnan(f) else format(f, digits)


def _folds(evaluation: Mapping[str, Any]) -> str:
    tests = evaluation.get("test_scores") or {}
    trains = evaluation.get("train_scores") or {}
    fits = list(evaluation.get("fit_times") or [])
    scores_t = list(evaluation.get("score_times") or [])
    errors = list(evaluation.get("errors") or [])
    n = max([len(v) for v in tests.values()] + [len(fits), len(scores_t), len(errors), 0])
    head = ["fold"]
    head += [f"test {html.escape(m)}" for m in tests]
    head += [f"train {html.escape(m)}" for m in trains]
    head += ["fit time (s)", "score time (s)", "error"]
    rows = []
    for k in range(n):
        cells = [str(k)]
        cells += [_number(v[k] if k < len(v) else None) for v in tests.values()]
        cells += [_number(v[k] if k < len(v) else None) for v in trains.values()]
        cells.append(_number(fits[k] if k < len(fits) else None, ".3f"))
        cells.append(_number(scores_t[k] if k < len(scores_t) else None, ".3f"))
        error = errors[k] if k < len(errors) else None
        last = str(error).strip().splitlines()[-1] if error else ""
        cells.append(html.escape(last) if error else "–")
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return (
        "<table class='daskhpo-folds'><tr>"
        + "".join(f"<th>{h}</th>" for h in head)
        + "</tr>"
        + "".join(rows)
        + "</table>"
    )


def trial_html(trial_id: int, evaluations: Sequence[Mapping[str, Any]]) -> str:
    """The per-trial view of ``trial_id`` from its stored ``evaluations`` (records, oldest first)."""
    if not evaluations:
        return f"<p>No trial {trial_id} in this search (yet).</p>"
    first = evaluations[-1]
    params = first.get("params") or {}
    param_rows = "".join(
        f"<tr><td>{html.escape(str(k))}</td><td><code>{html.escape(label(v))}</code></td></tr>"
        for k, v in params.items()
    )
    parts = [
        "<div style='font-size:90%'>",
        f"<h3 style='margin:0.3em 0'>Trial {trial_id}</h3>",
        f"<p>{len(evaluations)} evaluation(s) stored; worker: <i>"
        + html.escape(str((first.get("extra") or {}).get("worker") or NO_WORKER))
        + "</i></p>",
        f"<table class='daskhpo-params'><tr><th>parameter</th><th>value</th></tr>{param_rows}</table>",
    ]
    for e in evaluations:
        budget = e.get("budget")
        where = "" if budget is None else f" at budget {budget:g} (rung {e.get('rung', 0)}, "
        where += "" if budget is None else f"bracket {e.get('bracket', 0)})"
        parts.append(
            f"<h4 style='margin:0.5em 0 0.2em'>{html.escape(str(e.get('status')))}{where}: score "
            f"<b>{_number(e.get('score'))}</b></h4>"
        )
        parts.append(_folds(e))
        for k, error in enumerate(e.get("errors") or []):
            if error:
                parts.append(
                    f"<p style='margin:0.3em 0 0'>fold {k} failed with:</p>"
                    "<pre class='daskhpo-traceback' style='white-space:pre-wrap;background:#f6f6f6;"
                    f"padding:4px;margin:0'>{html.escape(str(error))}</pre>"
                )
        extra = {k: v for k, v in (e.get("extra") or {}).items() if k != "worker"}
        if extra:
            text = ", ".join(f"{k}={label(v)}" for k, v in extra.items())
            parts.append(f"<p>extra: <code>{html.escape(text)}</code></p>")
    parts.append("</div>")
    return "".join(parts)
