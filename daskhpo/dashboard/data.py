"""From stored trial records to the bounded columns the plots draw. No bokeh, no dask.

A *record* is what :meth:`daskhpo.store.SQLiteStore.records` returns (and :func:`store_records` makes of
a :class:`~daskhpo.store.MemoryStore`): one finished evaluation with its trial id, params, budget, rung,
bracket, status, score, fold scores, times and errors. An adaptive search stores one record per rung a
trial reached.

A search of 100,000 trials cannot be drawn (nor sent to a browser) one glyph per evaluation: a page
that did so got a 25 MB document, and every update read the whole store and sent all of it again. So the
plots are made from a :class:`TrialTable`,
the columns of every stored evaluation in numpy arrays (a :class:`StoreFeed` reads a store into one once,
then only the rows appended since), and :func:`summarize_table` sends aggregates whose size does not grow
with the search:

- a *sample* of at most :data:`SAMPLE_POINTS` evaluations for the scatter plots: always the
  :data:`SAMPLE_TOP` best and the search's best, the rest chosen by a hash of the row number, so the
  sample changes little as trials arrive and is the same on every page;
- score against evaluations as at most :data:`HISTORY_BINS` buckets (minimum, mean and maximum of every
  evaluation in each) and the best-so-far line at each improvement;
- for each parameter, the best and mean score in :data:`PROFILE_BINS` bins of its values (or per
  category), over every evaluation;
- a histogram of every score; the rungs; the learning curves of at most :data:`CURVES_MAX` trials;
- parallel coordinates of at most :data:`PARALLEL_LINES` trials, always with the
  :data:`PARALLEL_TOP` best;
- one page (:data:`PAGE_ROWS` rows) of the trials table: best first, latest first, or failed ones.

Below :data:`SAMPLE_POINTS` scored evaluations the sample is every evaluation, and the page shows what it
always showed. Parameter importance is in :mod:`daskhpo.dashboard.importance`.
"""

from __future__ import annotations

import json
import math
import numbers
import sqlite3
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..store import MemoryStore, SQLiteStore, Store, result_to_json

__all__ = [
    "Param",
    "Summary",
    "TrialTable",
    "StoreFeed",
    "feed_for",
    "store_records",
    "summarize",
    "summarize_table",
    "label",
    "TABLE_VIEWS",
]

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

#: Scatter points per figure at most (the sample of evaluations).
SAMPLE_POINTS = 2000
#: The best evaluations always in the sample (on top of :data:`SAMPLE_POINTS`).
SAMPLE_TOP = 100
#: Buckets of the score-against-evaluations band.
HISTORY_BINS = 300
#: Bins of each parameter's best/mean profile.
PROFILE_BINS = 30
#: Bins of the score histogram.
HISTOGRAM_BINS = 40
#: Learning curves (adaptive searches) drawn at most.
CURVES_MAX = 500
#: Lines of the parallel-coordinates plot at most, and the best trials always among them.
PARALLEL_LINES = 1000
PARALLEL_TOP = 50
#: Steps of the best-so-far line sent as they are; more are thinned to one per bucket.
BEST_STEPS = 2000
#: Rows in one page of the trials table.
PAGE_ROWS = 50
#: What the trials table can list: (key, title).
TABLE_VIEWS = (
    ("best", "best trials"),
    ("latest", "latest evaluations"),
    ("failed", "failed evaluations"),
)
_READ_CHUNK = 5000


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


def _mean(values: Sequence[Any] | None) -> float:
    finite = [float(v) for v in values or () if v is not None]
    return sum(finite) / len(finite) if finite else math.nan


@dataclass(frozen=True)
class Param:
    """One hyperparameter as plotted: numeric (with a log axis when it spans decades) or categorical."""

    name: str
    numeric: bool
    log: bool = False
    factors: tuple[str, ...] = ()


# -- the table of every evaluation ---------------------------------------------------------------
class _Grow:
    """A numpy column that grows by whole batches (views of earlier rows stay valid)."""

    def __init__(self, dtype: Any) -> None:
        self.data = np.empty(1024, dtype=dtype)
        self.n = 0

    def extend(self, values: Sequence[Any]) -> None:
        need = self.n + len(values)
        if need > len(self.data):
            bigger = np.empty(max(need, 2 * len(self.data)), dtype=self.data.dtype)
            bigger[: self.n] = self.data[: self.n]
            self.data = bigger
        self.data[self.n : need] = values
        self.n = need

    @property
    def values(self) -> np.ndarray:
        return self.data[: self.n]


_ABSENT = object()


class _ParamColumn:
    """One parameter over every evaluation: its numbers, or codes of its labels once a value is not
    a number (then the parameter is categorical, as :func:`summarize` always decided it)."""

    def __init__(self, name: str, n_before: int) -> None:
        self.name = name
        self.num = _Grow(np.float64)
        self.num.extend([math.nan] * n_before)
        self.code: _Grow | None = None
        self.labels: dict[str, int] = {}
        self.firsts: list[Any] = []  # the first raw value of each label, to order the factors
        self.ints = True
        self.present = 0
        self.lo, self.hi = math.inf, -math.inf
        self._num: list[float] = []
        self._code: list[int] = []

    def _code_of(self, text: str, raw: Any) -> int:
        code = self.labels.get(text)
        if code is None:
            code = self.labels[text] = len(self.firsts)
            self.firsts.append(raw)
        return code

    def _categorical(self) -> None:
        """A value that is not a number arrived: every earlier number gets a label code too."""
        self.flush()
        codes = []
        for v in self.num.values.tolist():
            if math.isnan(v):
                codes.append(-1)
            else:
                codes.append(self._code_of(str(int(v)) if self.ints else f"{v:.6g}", v))
        self.code = _Grow(np.int32)
        self.code.extend(codes)

    def add(self, value: Any) -> None:
        kind = type(value)
        # The common case first, without the numbers.Real check (an ABC check: slow at 100,000).
        if (kind is float or kind is int) and value - value == 0:  # a finite number
            self.present += 1
            v = float(value)
            self._num.append(v)
            if v < self.lo:
                self.lo = v
            if v > self.hi:
                self.hi = v
            if kind is float:
                self.ints = False
            if self.code is not None:
                self._code.append(self._code_of(label(value), v))
            return
        if value is _ABSENT:
            self._num.append(math.nan)
            if self.code is not None:
                self._code.append(-1)
            return
        if _is_number(value):  # numpy scalars and other Real numbers
            self.add(int(value) if isinstance(value, numbers.Integral) else float(value))
            return
        self.present += 1
        if self.code is None:
            self._categorical()
        self._num.append(math.nan)
        self._code.append(self._code_of(label(value), value))

    def flush(self) -> None:
        if self._num:
            self.num.extend(self._num)
            self._num = []
        if self._code and self.code is not None:
            self.code.extend(self._code)
            self._code = []

    def param(self, n_rows: int) -> Param:
        if self.code is None:
            return Param(self.name, True, log=self.lo > 0 and self.hi / self.lo >= 100)
        return Param(self.name, False, factors=tuple(self._factors(n_rows)))

    def _factors(self, n_rows: int) -> list[str]:
        texts = list(self.labels)
        firsts = self.firsts

        # Numbers in numeric order, None first, everything else by its text.
        def key(code: int) -> tuple[int, float, str]:
            raw = firsts[code]
            return (
                0 if raw is None else 1 if _is_number(raw) else 2,
                float(raw) if _is_number(raw) else 0.0,
                texts[code],
            )

        ordered = [texts[c] for c in sorted(range(len(texts)), key=key)]
        if self.present < n_rows:
            ordered.append(MISSING)
        return ordered

    def factor_index(self, factors: Sequence[str]) -> np.ndarray:
        """Each row's position in ``factors`` (a missing value: the position of ``(unset)``)."""
        assert self.code is not None
        where = {f: i for i, f in enumerate(factors)}
        lookup = np.array(
            [where[t] for t in self.labels] + [where.get(MISSING, len(factors) - 1)], dtype=np.int64
        )
        codes = self.code.values.astype(np.int64)
        return lookup[np.where(codes < 0, len(self.labels), codes)]

    def texts(self, rows: np.ndarray) -> list[str]:
        """The labels of ``rows`` as the table and the axes write them."""
        if self.code is not None:
            texts = list(self.labels)
            return [MISSING if c < 0 else texts[c] for c in self.code.values[rows].tolist()]
        out = []
        for v in self.num.values[rows].tolist():
            if math.isnan(v):
                out.append(MISSING)
            else:
                out.append(str(int(v)) if self.ints else f"{v:.6g}")
        return out


class TrialTable:
    """The columns of every stored evaluation of one search, in the order they were stored.

    Filled with :meth:`add` (a :class:`StoreFeed` does it from a store, reading only new rows). Per
    evaluation: trial id, score (``nan`` unless complete), whether it failed, budget (``nan`` for
    non-adaptive searches), rung, bracket, mean fit time, the standard deviation of its fold scores,
    each parameter, and ``key``: where the record is in its store (its SQLite row, or its position),
    to fetch it whole for the trial view.
    """

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.n = 0
        self.version = 0  # bumped by every add
        self.trial_id = _Grow(np.int64)
        self.score = _Grow(np.float64)
        self.failed = _Grow(np.bool_)
        self.budget = _Grow(np.float64)
        self.rung = _Grow(np.int64)
        self.bracket = _Grow(np.int64)
        self.fit_time = _Grow(np.float64)
        self.std = _Grow(np.float64)
        self.key = _Grow(np.int64)
        self.columns: dict[str, _ParamColumn] = {}

    @classmethod
    def from_records(cls, records: Sequence[Mapping[str, Any]]) -> TrialTable:
        table = cls()
        table.add(records)
        return table

    def add(self, records: Iterable[Mapping[str, Any]], keys: Iterable[int] | None = None) -> int:
        """Append ``records`` (``keys``: where each is in its store; default: its position)."""
        with self.lock:
            tid: list[int] = []
            score: list[float] = []
            failed: list[bool] = []
            budget: list[float] = []
            rung: list[int] = []
            bracket: list[int] = []
            fit: list[float] = []
            std: list[float] = []
            columns = self.columns
            n = self.n
            for r in records:
                params = r.get("params") or {}
                for name in params:
                    if name not in columns:
                        columns[name] = _ParamColumn(name, n)
                for name, col in columns.items():
                    col.add(params.get(name, _ABSENT))
                s = _score(r)
                tid.append(int(r["trial_id"]))
                score.append(s)
                failed.append(r.get("status") == "failed")
                b = r.get("budget")
                budget.append(math.nan if b is None else float(b))
                rung.append(int(r.get("rung", 0)))
                bracket.append(int(r.get("bracket", 0)))
                fit.append(_mean(r.get("fit_times")))
                std.append(_std(_fold_scores(r)) if math.isfinite(s) else math.nan)
                n += 1
            added = n - self.n
            if not added:
                return 0
            for col in columns.values():
                col.flush()
            self.trial_id.extend(tid)
            self.score.extend(score)
            self.failed.extend(failed)
            self.budget.extend(budget)
            self.rung.extend(rung)
            self.bracket.extend(bracket)
            self.fit_time.extend(fit)
            self.std.extend(std)
            start = self.n
            self.key.extend(list(keys) if keys is not None else list(range(start, n)))
            self.n = n
            self.version += 1
            return added

    # -- derived views ---------------------------------------------------------------------------
    def params(self) -> list[Param]:
        with self.lock:
            return [c.param(self.n) for c in self.columns.values()]

    @property
    def adaptive(self) -> bool:
        return bool(np.any(~np.isnan(self.budget.values)))

    def scored(self) -> np.ndarray:
        """Positions of the evaluations with a score, in the order they were stored."""
        return np.flatnonzero(np.isfinite(self.score.values))

    def best(self, rule: str | None = None) -> int | None:
        """The position of the best evaluation under the best ``rule`` (see :mod:`daskhpo.results`;
        None: ``"top"`` for adaptive searches, ``"all"`` otherwise): the highest score, then the
        larger budget, then the lower trial id; the row :func:`daskhpo.results.best_position` names."""
        rule = rule or ("top" if self.adaptive else "all")
        cand = self.scored()
        if not len(cand):
            return None
        budget = np.nan_to_num(self.budget.values[cand], nan=0.0)
        tid = self.trial_id.values[cand]
        if rule == "top":
            keep = budget == budget.max()
            cand, budget, tid = cand[keep], budget[keep], tid[keep]
        elif rule == "last":
            # Each trial's last evaluation by (budget, rung); the later row among equals.
            order = np.lexsort((cand, self.rung.values[cand], budget, tid))
            last = np.r_[tid[order][1:] != tid[order][:-1], True]
            keep = order[last]
            cand, budget, tid = cand[keep], budget[keep], tid[keep]
        elif rule != "all":
            raise ValueError(f"best rule {rule!r}: use 'all', 'top' or 'last'")
        order = np.lexsort((cand, tid, -budget, -self.score.values[cand]))
        return int(cand[order[0]])

    def ranked(self) -> np.ndarray:
        """Each trial's evaluation at its largest budget (its last, for non-adaptive searches),
        ranked by budget reached, then score: in an adaptive search a score at a small budget is not
        comparable. Positions, best first."""
        cand = self.scored()
        if not len(cand):
            return cand
        budget = np.nan_to_num(self.budget.values[cand], nan=0.0)
        tid = self.trial_id.values[cand]
        order = np.lexsort((cand, budget, tid))
        last = np.r_[tid[order][1:] != tid[order][:-1], True]
        rows = cand[order[last]]
        b = np.nan_to_num(self.budget.values[rows], nan=0.0)
        return rows[np.lexsort((self.trial_id.values[rows], -self.score.values[rows], -b))]

    def rows_of(self, trial_id: int) -> np.ndarray:
        return np.flatnonzero(self.trial_id.values == trial_id)


# -- reading a store ------------------------------------------------------------------------------
class StoreFeed:
    """A :class:`TrialTable` of one store, kept up to date by :meth:`refresh` (new rows only).

    A SQLite store is read through a read-only connection of its own (``seq > last seen``, in one
    snapshot with the row count, so that a search reset under the same name is read again); a
    :class:`~daskhpo.store.MemoryStore` through a slice of its results; any other store through
    ``records()``. Pages showing the same store share one feed (:func:`feed_for`), and its
    importance cache. :meth:`update` reads in a background thread, so that a page's server keeps
    answering while 100,000 stored trials are read (about 3 s here, once).
    """

    def __init__(self, store: Any) -> None:
        # Weakly: the feeds of feed_for are kept by store, and a store that is gone takes its feed.
        self._store = weakref.ref(store)
        self.table = TrialTable()
        self.lock = threading.Lock()  # one read at a time
        self._state = threading.Lock()
        self._future: Future[int] | None = None
        self._conns: dict[str, tuple[str, sqlite3.Connection]] = {}
        self._seq = 0
        self.total = 0  # evaluations in the store at the last look
        # Parameter importance of the table, computed in the background (see server.py).
        self.importance: dict[str, Any] | None = None
        self.importance_version = 0
        self.importance_at = 0  # evaluations it was computed from
        self.importance_time = 0.0
        self.importance_running = False

    @property
    def store(self) -> Any:
        store = self._store()
        if store is None:
            raise RuntimeError("the store of this dashboard feed is gone")
        return store

    def _connection(self, purpose: str) -> sqlite3.Connection:
        """A read-only connection to the store's file (one for reading rows, one for lookups)."""
        path = str(self.store.path)
        held = self._conns.get(purpose)
        if held is None or held[0] != path:
            if held is not None:
                held[1].close()
            uri = Path(path).resolve().as_uri() + "?mode=ro"
            conn = sqlite3.connect(
                uri, uri=True, isolation_level=None, check_same_thread=False, timeout=30
            )
            self._conns[purpose] = (path, conn)
            return conn
        return held[1]

    def _reset(self) -> None:
        self.table = TrialTable()
        self._seq = 0
        self.importance, self.importance_at = None, 0
        self.importance_version += 1

    @property
    def reading(self) -> bool:
        """A background read is under way (the table is behind the store)."""
        future = self._future
        return future is not None and not future.done()

    def update(self, wait: float = 0.25) -> bool:
        """Start reading what was appended, in the background, unless a read runs already, and
        wait up to ``wait`` seconds for it: True once the table has caught up with the store.
        Raises what the read raised."""
        with self._state:
            future = self._future
            if future is None or future.done():
                if future is not None and future.exception() is not None:
                    self._future = None  # a failed read says so once, then is tried again
                    raise future.exception()  # type: ignore[misc]
                future = self._future = _pool().submit(self.refresh)
        try:
            future.result(timeout=wait)
        except FutureTimeout:
            return False
        return True

    def refresh(self) -> int:
        """Read what was appended since the last look; returns how many evaluations were added
        (the whole table is read again, and counted, when the store was reset)."""
        with self.lock:
            store = self.store
            if isinstance(store, SQLiteStore):
                return self._refresh_sqlite()
            if isinstance(store, MemoryStore):
                results = store.results()
                self.total = len(results)
                if len(results) < self.table.n:
                    self._reset()
                done = self.table.n
                return self.table.add(result_to_json(r) for r in results[done:])
            records = store.records()
            self.total = len(records)
            if len(records) < self.table.n:
                self._reset()
            return self.table.add(records[self.table.n :])

    def _refresh_sqlite(self) -> int:
        conn = self._connection("rows")
        name = self.store.name
        added = 0
        conn.execute("BEGIN")  # one snapshot: the count and the new rows agree
        try:
            count, top = conn.execute(
                "SELECT COUNT(*), COALESCE(MAX(seq), 0) FROM trials WHERE search=?", (name,)
            ).fetchone()
            self.total = count
            if count < self.table.n or (count == self.table.n and top != self._seq):
                self._reset()
            cursor = conn.execute(
                "SELECT seq, data FROM trials WHERE search=? AND seq>? ORDER BY seq",
                (name, self._seq),
            )
            while True:
                rows = cursor.fetchmany(_READ_CHUNK)
                if not rows:
                    break
                added += self.table.add((json.loads(d) for _, d in rows), [s for s, _ in rows])
                self._seq = rows[-1][0]
        finally:
            conn.execute("COMMIT")
        if self.table.n != count:  # rows were deleted under seqs already read: read it all again
            self._reset()
            return self._refresh_sqlite()
        return added

    def records_of(self, trial_id: int) -> list[dict[str, Any]]:
        """Every stored evaluation of one trial, whole (params, fold scores, times, errors)."""
        table = self.table
        with table.lock:
            keys = table.key.values[table.rows_of(trial_id)].tolist()
        if not keys:
            return []
        store = self.store
        if isinstance(store, SQLiteStore):
            with self._state:
                conn = self._connection("lookup")
                marks = ",".join("?" * len(keys))
                rows = conn.execute(
                    f"SELECT data FROM trials WHERE seq IN ({marks}) ORDER BY seq", keys
                ).fetchall()
            return [json.loads(r[0]) for r in rows]
        if isinstance(store, MemoryStore):
            results = store.results()
            return [result_to_json(results[k]) for k in keys if k < len(results)]
        records = store.records()
        return [records[k] for k in keys if k < len(records)]

    def close(self) -> None:
        for _, conn in self._conns.values():
            conn.close()
        self._conns = {}


_pool_lock = threading.Lock()
_executor: list[ThreadPoolExecutor] = []


def _pool() -> ThreadPoolExecutor:
    """The dashboard's background threads: store reads and importance fits (two at most, so that a
    busy dashboard never takes more than two cores' worth of threads)."""
    with _pool_lock:
        if not _executor:
            _executor.append(ThreadPoolExecutor(2, thread_name_prefix="daskhpo-dashboard"))
        return _executor[0]


def submit(fn: Callable[..., Any], *args: Any) -> Future[Any]:
    """Run ``fn(*args)`` in the dashboard's background threads."""
    return _pool().submit(fn, *args)


_feeds: weakref.WeakKeyDictionary[Any, StoreFeed] = weakref.WeakKeyDictionary()
_feeds_lock = threading.Lock()


def feed_for(store: Any) -> StoreFeed:
    """The feed of ``store`` shared by every page that shows it (made on first use)."""
    with _feeds_lock:
        feed = _feeds.get(store)
        if feed is None:
            feed = _feeds[store] = StoreFeed(store)
        return feed


# -- the bounded summary --------------------------------------------------------------------------
@dataclass
class Summary:
    """What the dashboard and the static plots show of one search; every column is bounded."""

    n_records: int = 0
    n_failed: int = 0
    n_scored: int = 0
    params: list[Param] = field(default_factory=list)
    adaptive: bool = False
    # The sampled (scored) evaluations, in the order they finished (every one below SAMPLE_POINTS).
    trials: dict[str, Any] = field(default_factory=dict)
    # Score against evaluations: buckets (empty when every evaluation is in the sample) and the
    # best-so-far steps.
    history: dict[str, Any] = field(default_factory=dict)
    best_line: dict[str, Any] = field(default_factory=dict)
    histogram: dict[str, Any] = field(default_factory=dict)
    # Per parameter: best and mean score per bin or category (empty when nothing is sampled out).
    profiles: list[dict[str, Any]] = field(default_factory=list)
    # Trials alive per (bracket, budget): the rungs of an adaptive search.
    rungs: dict[str, list[Any]] = field(default_factory=dict)
    # One learning curve (score against budget) per drawn trial of an adaptive search.
    curves: dict[str, list[Any]] = field(default_factory=dict)
    parallel: dict[str, Any] = field(default_factory=dict)
    parallel_axes: dict[str, Any] = field(default_factory=dict)
    # One page of the trials table.
    top: dict[str, list[Any]] = field(default_factory=dict)
    view: str = "best"
    page: int = 0
    n_rows: int = 0  # rows the table's view has in all
    best: dict[str, Any] | None = None

    @property
    def n_plotted(self) -> int:
        return len(self.trials.get("trial_id", ()))

    @property
    def sampled(self) -> bool:
        return self.n_plotted < self.n_scored

    def layout_key(self) -> tuple[Any, ...]:
        """What decides the page's figures: a change here means the layout is built again."""
        return (tuple((p.name, p.numeric, p.log) for p in self.params), self.adaptive)


def _mix(positions: np.ndarray, seed: int = 0) -> np.ndarray:
    """A fixed pseudo-random 64-bit key per row position (splitmix64): the sample keeps the rows
    with the smallest keys, so a row stays in it until enough rows with smaller keys arrive."""
    z = positions.astype(np.uint64) + np.uint64((seed + 1) * 0x9E3779B97F4A7C15 % 2**64)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def sample_rows(
    candidates: np.ndarray,
    scores: np.ndarray,
    n: int,
    top: int,
    always: Sequence[int] | np.ndarray = (),
) -> np.ndarray:
    """At most ``n + top + len(always)`` of ``candidates`` (positions), sorted: the ``top`` best by
    ``scores`` (one per candidate), ``always``, and ``n`` others picked by :func:`_mix`. All of them
    when there are no more than ``n``."""
    if len(candidates) <= n:
        return np.sort(candidates)
    keep = [np.asarray(always, dtype=np.int64)]
    if top > 0:
        k = min(top, len(candidates))
        keep.append(candidates[np.argpartition(-scores, k - 1)[:k]])
    chosen = np.unique(np.concatenate(keep)) if keep else np.empty(0, np.int64)
    rest = candidates[~np.isin(candidates, chosen)]
    if len(rest) > n:
        rest = rest[np.argpartition(_mix(rest), n - 1)[:n]]
    return np.union1d(chosen, rest)


def _history(scores: np.ndarray, sampled: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """Buckets of the scores in finishing order, and the best-so-far line at each improvement."""
    n = len(scores)
    bins: dict[str, Any] = {
        "left": [],
        "right": [],
        "low": [],
        "high": [],
        "mean": [],
        "x": [],
        "count": [],
    }
    line: dict[str, Any] = {"order": [], "best": []}
    if not n:
        return bins, line
    best = np.maximum.accumulate(scores)
    edges = np.linspace(0, n, min(HISTORY_BINS, n) + 1).astype(np.int64)
    edges = np.unique(edges)
    starts = edges[:-1]
    if sampled:
        counts = np.diff(edges)
        sums = np.add.reduceat(scores, starts)
        bins = {
            "left": starts + 0.5,
            "right": edges[1:] + 0.5,
            "x": (starts + edges[1:]) / 2 + 0.5,
            "low": np.minimum.reduceat(scores, starts),
            "high": np.maximum.reduceat(scores, starts),
            "mean": sums / counts,
            "count": counts,
        }
    steps = np.flatnonzero(np.r_[True, best[1:] > best[:-1]])
    if len(steps) > BEST_STEPS:
        steps = np.unique(np.r_[edges[1:] - 1, steps[-1]])
    steps = np.r_[steps, n - 1] if steps[-1] != n - 1 else steps
    line = {"order": steps + 1, "best": best[steps]}
    return bins, line


def _histogram(scores: np.ndarray) -> dict[str, Any]:
    if not len(scores):
        return {"left": [], "right": [], "count": []}
    lo, hi = float(scores.min()), float(scores.max())
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    counts, edges = np.histogram(scores, bins=HISTOGRAM_BINS, range=(lo, hi))
    return {"left": edges[:-1], "right": edges[1:], "count": counts}


def _profile(table: TrialTable, col: _ParamColumn, p: Param, rows: np.ndarray) -> dict[str, Any]:
    """Best and mean score of ``rows`` per bin of a numeric parameter (geometric bins on a log axis)
    or per category."""
    scores = table.score.values[rows]
    if p.numeric:
        x = col.num.values[rows]
        ok = ~np.isnan(x)
        x, scores = x[ok], scores[ok]
        if not len(x):
            return {"x": [], "max": [], "mean": [], "count": []}
        t = np.log10(x) if p.log else x
        lo, hi = float(t.min()), float(t.max())
        width = (hi - lo) / PROFILE_BINS or 1.0
        which = np.minimum(((t - lo) / width).astype(np.int64), PROFILE_BINS - 1)
        n_bins = PROFILE_BINS
        centers = lo + (np.arange(n_bins) + 0.5) * width
        xs: Any = 10**centers if p.log else centers
    else:
        which = col.factor_index(p.factors)[rows]
        n_bins = len(p.factors)
        xs = np.array(p.factors, dtype=object)
    count = np.bincount(which, minlength=n_bins)
    total = np.bincount(which, weights=scores, minlength=n_bins)
    best = np.full(n_bins, -np.inf)
    np.maximum.at(best, which, scores)
    used = count > 0
    out_x = xs[used]
    return {
        "x": out_x.tolist() if not p.numeric else out_x,
        "max": best[used],
        "mean": total[used] / count[used],
        "count": count[used],
    }


def _rungs(table: TrialTable) -> dict[str, list[Any]]:
    rungs: dict[str, list[Any]] = {"x": [], "alive": [], "bracket": [], "budget": [], "color": []}
    budget = table.budget.values
    has = ~np.isnan(budget)
    if not has.any():
        return rungs
    triples = np.unique(
        np.column_stack(
            [table.bracket.values[has], budget[has], table.trial_id.values[has].astype(np.float64)]
        ),
        axis=0,
    )
    pairs, alive = np.unique(triples[:, :2], axis=0, return_counts=True)
    for (bracket, b), n in zip(pairs.tolist(), alive.tolist(), strict=True):
        rungs["x"].append((f"bracket {int(bracket)}", f"{b:g}"))
        rungs["alive"].append(int(n))
        rungs["bracket"].append(int(bracket))
        rungs["budget"].append(float(b))
        rungs["color"].append(PALETTE[int(bracket) % len(PALETTE)])
    return rungs


def _curves(table: TrialTable, sample: np.ndarray, ranked: np.ndarray) -> dict[str, list[Any]]:
    curves: dict[str, list[Any]] = {"xs": [], "ys": [], "trial_id": [], "color": []}
    tids = table.trial_id.values
    chosen = np.unique(tids[sample])
    if len(chosen) > CURVES_MAX:
        best = np.unique(tids[ranked[:PARALLEL_TOP]])
        rest = np.setdiff1d(chosen, best)
        rest = rest[np.argpartition(_mix(rest, 1), CURVES_MAX - len(best) - 1)]
        chosen = np.union1d(best, rest[: CURVES_MAX - len(best)])
    rows = np.flatnonzero(np.isin(tids, chosen) & np.isfinite(table.score.values))
    order = rows[np.lexsort((rows, table.budget.values[rows], tids[rows]))]
    if not len(order):
        return curves
    groups = np.split(order, np.flatnonzero(np.diff(tids[order])) + 1)
    for g in groups:
        curves["xs"].append(table.budget.values[g].tolist())
        curves["ys"].append(table.score.values[g].tolist())
        curves["trial_id"].append(int(tids[g[0]]))
        curves["color"].append(PALETTE[int(table.bracket.values[g[-1]]) % len(PALETTE)])
    return curves


def _axis_position(table: TrialTable, col: _ParamColumn, p: Param) -> tuple[np.ndarray, list]:
    """Every row's value on a parallel-coordinates axis scaled to [0, 1] (nan when missing), and
    the axis's labels as (position, text)."""
    if p.numeric:
        x = col.num.values
        lo, hi = col.lo, col.hi
        if p.log:
            x, lo, hi = np.log10(x), math.log10(lo), math.log10(hi)
        span = hi - lo
        y = (x - lo) / span if span > 0 else np.where(np.isnan(x), np.nan, 0.5)

        def text(v: float) -> str:
            return str(int(v)) if col.ints else f"{v:.3g}"

        ticks = [(0.0, text(col.lo)), (1.0, text(col.hi))] if span > 0 else [(0.5, text(col.lo))]
        return y, ticks
    k = len(p.factors)
    idx = col.factor_index(p.factors).astype(np.float64)
    y = idx / (k - 1) if k > 1 else np.full(len(idx), 0.5)
    shown = range(k) if k <= 12 else (0, k - 1)
    return y, [((i / (k - 1) if k > 1 else 0.5), p.factors[i]) for i in shown]


def _parallel(
    table: TrialTable, params: list[Param], ranked: np.ndarray
) -> tuple[dict[str, Any], dict[str, Any]]:
    lines: dict[str, Any] = {"xs": [], "ys": [], "score": [], "trial_id": [], "row": []}
    axes: dict[str, Any] = {"x": [], "y": [], "text": []}
    if not len(ranked) or not params:
        return lines, axes
    best = ranked[:PARALLEL_TOP]
    rows = sample_rows(ranked, table.score.values[ranked], PARALLEL_LINES - len(best), 0, best)
    columns = []
    for i, p in enumerate(params):
        y, ticks = _axis_position(table, table.columns[p.name], p)
        columns.append(y[rows])
        axes["x"] += [i] * len(ticks)
        axes["y"] += [t[0] for t in ticks]
        axes["text"] += [t[1] for t in ticks]
    s = table.score.values[rows]
    lo, hi = float(table.score.values[ranked].min()), float(table.score.values[ranked].max())
    columns.append((s - lo) / (hi - lo) if hi > lo else np.full(len(s), 0.5))
    axes["x"] += [len(params)] * 2
    axes["y"] += [0.0, 1.0]
    axes["text"] += [f"{lo:.4g}", f"{hi:.4g}"]
    matrix = np.round(np.column_stack(columns), 4)
    order = np.argsort(s, kind="stable")  # the best drawn last, on top
    xs = list(range(len(params) + 1))
    lines = {
        "xs": [xs] * len(rows),
        "ys": matrix[order].tolist(),
        "score": s[order],
        "trial_id": table.trial_id.values[rows][order],
        "row": rows[order],
    }
    return lines, axes


def table_rows(table: TrialTable, view: str) -> np.ndarray:
    """Positions the trials table lists in ``view`` (see :data:`TABLE_VIEWS`), in order."""
    if view == "best":
        return table.ranked()
    if view == "latest":
        return np.arange(table.n)[::-1]
    if view == "failed":
        return np.flatnonzero(table.failed.values)[::-1]
    raise ValueError(f"view={view!r}: use one of {[k for k, _ in TABLE_VIEWS]}")


def _page(
    table: TrialTable, params: list[Param], rows: np.ndarray, first: int
) -> dict[str, list[Any]]:
    page: dict[str, Any] = {
        "rank": list(range(first + 1, first + len(rows) + 1)),
        "trial_id": table.trial_id.values[rows].tolist(),
        "status": ["failed" if f else "complete" for f in table.failed.values[rows].tolist()],
        "score": table.score.values[rows].tolist(),
        "std": table.std.values[rows].tolist(),
        "budget": table.budget.values[rows].tolist(),
        "rung": table.rung.values[rows].tolist(),
        "bracket": table.bracket.values[rows].tolist(),
        "fit_time": table.fit_time.values[rows].tolist(),
        "row": rows.tolist(),
    }
    for i, p in enumerate(params):
        page[f"p{i}"] = table.columns[p.name].texts(rows)
    return page


def summarize_table(
    table: TrialTable,
    *,
    rule: str | None = None,
    top: int = PAGE_ROWS,
    view: str = "best",
    page: int = 0,
) -> Summary:
    """The bounded columns the page draws of ``table`` (see the module docstring).

    ``rule`` is the search's best rule (stored with its settings; see :mod:`daskhpo.results`): the
    header's best is the one ``best_score_`` names. Without it: ``"top"`` for adaptive searches,
    ``"all"`` otherwise. ``top`` rows per table page; ``view`` and ``page`` pick the page.
    """
    with table.lock:
        params = table.params()
        adaptive = table.adaptive
        scored = table.scored()
        scores = table.score.values[scored]
        best_at = table.best(rule)
        ranked = table.ranked()
        sample = sample_rows(
            scored,
            scores,
            SAMPLE_POINTS,
            SAMPLE_TOP,
            always=() if best_at is None else (best_at,),
        )
        sampled = len(sample) < len(scored)
        best_so_far = np.maximum.accumulate(scores) if len(scores) else scores
        at = np.searchsorted(scored, sample)  # each sampled row's place among the scored
        # Narrow types where nothing is lost on a plot: this source is most of what a page gets.
        trials: dict[str, Any] = {
            "order": (at + 1).astype(np.int32),
            "trial_id": _narrow_ints(table.trial_id.values[sample]),
            "score": table.score.values[sample],
            "best": best_so_far[at],
            "budget": table.budget.values[sample].astype(np.float32),
            "bracket": _narrow_ints(table.bracket.values[sample]),
        }
        profiles = []
        for i, p in enumerate(params):
            col = table.columns[p.name]
            if p.numeric:
                trials[f"x{i}"] = col.num.values[sample].astype(np.float32)
            else:
                trials[f"x{i}"] = col.texts(sample)
            profiles.append(
                _profile(table, col, p, scored)
                if sampled
                else {"x": [], "max": [], "mean": [], "count": []}
            )
        history, best_line = _history(scores, sampled)
        curves = (
            _curves(table, sample, ranked)
            if adaptive
            else {"xs": [], "ys": [], "trial_id": [], "color": []}
        )
        parallel, axes = _parallel(table, params, ranked)
        listed = table_rows(table, view)
        n_pages = max(1, -(-len(listed) // top))
        page = min(max(page, 0), n_pages - 1)
        rows = listed[page * top : (page + 1) * top]
        best = None
        if best_at is not None:
            b = table.budget.values[best_at]
            best = {
                "score": float(table.score.values[best_at]),
                "trial_id": int(table.trial_id.values[best_at]),
                "budget": None if math.isnan(b) else (int(b) if float(b).is_integer() else b),
                "params": {
                    p.name: table.columns[p.name].texts(np.array([best_at]))[0]
                    for p in params
                    if _present(table.columns[p.name], best_at)
                },
            }
        return Summary(
            n_records=table.n,
            n_failed=int(table.failed.values.sum()),
            n_scored=len(scored),
            params=params,
            adaptive=adaptive,
            trials=trials,
            history=history,
            best_line=best_line,
            histogram=_histogram(scores),
            profiles=profiles,
            rungs=_rungs(table),
            curves=curves,
            parallel=parallel,
            parallel_axes=axes,
            top=_page(table, params, rows, page * top),
            view=view,
            page=page,
            n_rows=len(listed),
            best=best,
        )


def _narrow_ints(values: np.ndarray) -> np.ndarray:
    """int32 when every value fits (half the bytes on the wire), else as they are."""
    if not len(values) or (values.min() >= -(2**31) and values.max() < 2**31):
        return values.astype(np.int32)
    return values


def _present(col: _ParamColumn, row: int) -> bool:
    if col.code is not None:
        return bool(col.code.values[row] >= 0)
    return not math.isnan(col.num.values[row])


def summarize(
    records: Sequence[Mapping[str, Any]], top: int = 50, rule: str | None = None
) -> Summary:
    """:func:`summarize_table` of a list of stored records (see :class:`Summary`)."""
    return summarize_table(TrialTable.from_records(records), rule=rule, top=top)
