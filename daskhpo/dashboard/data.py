"""From stored trial records to the columns the plots draw. Plain Python: no bokeh, no dask.

A *record* is what :meth:`daskhpo.store.SQLiteStore.records` returns (and :func:`store_records` makes of
a :class:`~daskhpo.store.MemoryStore`): one finished evaluation with its trial id, params, budget, rung,
bracket, status and score. An adaptive search stores one record per rung a trial reached.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..results import best_position
from ..store import Store

__all__ = ["Param", "Summary", "store_records", "summarize", "label"]

MISSING = "(unset)"
PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)


def store_records(store: Any) -> list[dict[str, Any]]:
    """Every stored evaluation of ``store`` as JSON-like dicts, in the order they were stored."""
    if not isinstance(store, Store):
        raise TypeError(f"store={store!r}: expected a daskhpo MemoryStore or SQLiteStore")
    return store.records()


def label(value: Any) -> str:
    """How a parameter value is written on an axis or in the table."""
    if isinstance(value, Mapping) and "__repr__" in value:
        return str(value["__repr__"])
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _is_number(value: Any) -> bool:
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def _score(record: Mapping[str, Any]) -> float:
    score = record.get("score")
    if score is None or record.get("status") != "complete":
        return math.nan
    return float(score)


@dataclass(frozen=True)
class Param:
    """One hyperparameter as plotted: numeric (with a log axis when it spans decades) or categorical."""

    name: str
    numeric: bool
    log: bool = False
    factors: tuple[str, ...] = ()


@dataclass
class Summary:
    """What the dashboard and the static plots show of one search."""

    n_records: int = 0
    n_failed: int = 0
    params: list[Param] = field(default_factory=list)
    adaptive: bool = False
    # One entry per plotted (scored) evaluation, in the order they finished.
    trials: dict[str, list[Any]] = field(default_factory=dict)
    # Trials alive per (bracket, budget): the rungs of an adaptive search.
    rungs: dict[str, list[Any]] = field(default_factory=dict)
    # One learning curve (score against budget) per trial of an adaptive search.
    curves: dict[str, list[Any]] = field(default_factory=dict)
    # The best evaluation of each trial, best first.
    top: dict[str, list[Any]] = field(default_factory=dict)
    best: dict[str, Any] | None = None

    @property
    def n_plotted(self) -> int:
        return len(self.trials.get("trial_id", ()))

    def layout_key(self) -> tuple[Any, ...]:
        """What decides the page's figures: a change here means the layout is built again."""
        return (tuple((p.name, p.numeric, p.log) for p in self.params), self.adaptive)


def _params(records: Sequence[Mapping[str, Any]]) -> list[Param]:
    names: dict[str, None] = {}
    for r in records:
        for key in r.get("params", {}):
            names.setdefault(key, None)
    out = []
    for name in names:
        values = [r["params"][name] for r in records if name in r.get("params", {})]
        if values and all(_is_number(v) for v in values):
            low, high = min(float(v) for v in values), max(float(v) for v in values)
            out.append(Param(name, True, log=low > 0 and high / low >= 100))
            continue
        labels = {label(v): v for v in values}
        # Numbers in numeric order, None first, everything else by its text.
        ordered = sorted(
            labels,
            key=lambda k: (
                0 if labels[k] is None else 1 if _is_number(labels[k]) else 2,
                float(labels[k]) if _is_number(labels[k]) else 0.0,
                k,
            ),
        )
        if any(name not in r.get("params", {}) for r in records):
            ordered.append(MISSING)
        out.append(Param(name, False, factors=tuple(ordered)))
    return out


def _budget(record: Mapping[str, Any]) -> float:
    budget = record.get("budget")
    return math.nan if budget is None else float(budget)


def summarize(
    records: Sequence[Mapping[str, Any]], top: int = 50, rule: str | None = None
) -> Summary:
    """The plotted columns for ``records`` (see :class:`Summary`).

    ``rule`` is the search's best rule (stored with its settings; see :mod:`daskhpo.results`): the
    header's best is the one ``best_score_`` names. Without it: ``"top"`` for adaptive searches,
    ``"all"`` otherwise.
    """
    params = _params(records)
    adaptive = any(r.get("budget") is not None for r in records)
    scored = [r for r in records if math.isfinite(_score(r))]

    trials: dict[str, list[Any]] = {
        "order": [],
        "trial_id": [],
        "score": [],
        "best": [],
        "budget": [],
        "rung": [],
        "bracket": [],
        "color": [],
        "params": [],
    }
    for i, _ in enumerate(params):
        trials[f"x{i}"] = []
    best = -math.inf
    for n, r in enumerate(scored, start=1):
        score = _score(r)
        best = max(best, score)
        trials["order"].append(n)
        trials["trial_id"].append(int(r["trial_id"]))
        trials["score"].append(score)
        trials["best"].append(best)
        trials["budget"].append(_budget(r))
        trials["rung"].append(int(r.get("rung", 0)))
        trials["bracket"].append(int(r.get("bracket", 0)))
        trials["color"].append(PALETTE[int(r.get("bracket", 0)) % len(PALETTE)])
        trials["params"].append(
            ", ".join(f"{k}={label(v)}" for k, v in r.get("params", {}).items())
        )
        for i, p in enumerate(params):
            present = p.name in r.get("params", {})
            value: Any = r["params"][p.name] if present else None
            if p.numeric:
                trials[f"x{i}"].append(float(value) if present else math.nan)
            else:
                trials[f"x{i}"].append(label(value) if present else MISSING)

    rungs: dict[str, list[Any]] = {"x": [], "alive": [], "bracket": [], "budget": [], "color": []}
    curves: dict[str, list[Any]] = {"xs": [], "ys": [], "trial_id": [], "color": []}
    if adaptive:
        alive: dict[tuple[int, float], set[int]] = {}
        for r in records:
            b = _budget(r)
            if not math.isnan(b):
                alive.setdefault((int(r.get("bracket", 0)), b), set()).add(int(r["trial_id"]))
        for (bracket, budget), ids in sorted(alive.items()):
            rungs["x"].append((f"bracket {bracket}", f"{budget:g}"))
            rungs["alive"].append(len(ids))
            rungs["bracket"].append(bracket)
            rungs["budget"].append(budget)
            rungs["color"].append(PALETTE[bracket % len(PALETTE)])
        by_trial: dict[int, list[tuple[float, float, int]]] = {}
        for r in scored:
            by_trial.setdefault(int(r["trial_id"]), []).append(
                (_budget(r), _score(r), int(r.get("bracket", 0)))
            )
        for tid, points in sorted(by_trial.items()):
            points.sort()
            curves["xs"].append([p[0] for p in points])
            curves["ys"].append([p[1] for p in points])
            curves["trial_id"].append(tid)
            curves["color"].append(PALETTE[points[-1][2] % len(PALETTE)])

    # Each trial's evaluation at its largest budget (its last, for non-adaptive searches), ranked by
    # budget reached, then score: in an adaptive search a score at a small budget is not comparable.
    last: dict[int, Mapping[str, Any]] = {}
    for r in scored:
        tid = int(r["trial_id"])
        if tid not in last or _budget(r) >= _budget(last[tid]) or math.isnan(_budget(r)):
            last[tid] = r
    ranked = sorted(
        last.values(),
        key=lambda r: (
            -(_budget(r) if not math.isnan(_budget(r)) else 0.0),
            -_score(r),
            int(r["trial_id"]),
        ),
    )[:top]
    table: dict[str, list[Any]] = {
        "rank": [],
        "trial_id": [],
        "score": [],
        "std": [],
        "budget": [],
        "rung": [],
        "bracket": [],
        "fit_time": [],
    }
    for i, _ in enumerate(params):
        table[f"p{i}"] = []
    for rank, r in enumerate(ranked, start=1):
        folds = _fold_scores(r)
        table["rank"].append(rank)
        table["trial_id"].append(int(r["trial_id"]))
        table["score"].append(_score(r))
        table["std"].append(_std(folds))
        table["budget"].append(_budget(r))
        table["rung"].append(int(r.get("rung", 0)))
        table["bracket"].append(int(r.get("bracket", 0)))
        times = r.get("fit_times") or []
        table["fit_time"].append(sum(times) / len(times) if times else math.nan)
        for i, p in enumerate(params):
            present = p.name in r.get("params", {})
            table[f"p{i}"].append(label(r["params"][p.name]) if present else MISSING)

    position = best_position(records, rule or ("top" if adaptive else "all"))
    best_record = None if position is None else records[position]
    return Summary(
        n_records=len(records),
        n_failed=sum(1 for r in records if r.get("status") == "failed"),
        params=params,
        adaptive=adaptive,
        trials=trials,
        rungs=rungs,
        curves=curves,
        top=table,
        best=None
        if best_record is None
        else {
            "score": _score(best_record),
            "trial_id": int(best_record["trial_id"]),
            "budget": best_record.get("budget"),
            "params": {k: label(v) for k, v in best_record.get("params", {}).items()},
        },
    )


def _fold_scores(record: Mapping[str, Any]) -> list[float]:
    """The per-fold test scores of the metric ``score`` is the mean of (the first metric otherwise)."""
    tests = record.get("test_scores") or {}
    score = _score(record)
    for values in tests.values():
        finite = [float(v) for v in values if v is not None]
        if finite and math.isclose(sum(finite) / len(finite), score, rel_tol=1e-9, abs_tol=1e-12):
            return finite
    first: Sequence[Any] = next(iter(tests.values()), [])
    return [float(v) for v in first if v is not None]


def _std(values: Sequence[float]) -> float:
    if not values:
        return math.nan
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
