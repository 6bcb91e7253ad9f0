"""A search's results held in columns: what :class:`~daskhpo.store.MemoryStore` keeps in memory.

A :class:`~daskhpo.strategies.base.Result` as a Python object costs about 1 KB (two dataclass
instances, a dict and five tuples of boxed floats), so a 300,000-candidate grid would hold 300 MB of
them on the driver. :class:`ResultLog` keeps the parts every row of a plain search has in typed arrays
(8 bytes a number) and the candidate's own params dict, and rebuilds a ``Result`` only when one is
read. Rows that do not fit the log's layout (a budget, a failure, racing's partial folds, extra
fields, other metrics) are kept as they came, so every result reads back equal to what was appended.

:meth:`ResultLog.view` is a read-only sequence over the rows appended so far, safe to read from
another thread while the search appends; :func:`latest_view` is
:func:`daskhpo.results.latest_evaluations` for such a view, computed on the columns.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, overload

import numpy as np

from .strategies.base import Job, Result, Status

__all__ = ["ResultLog", "ResultView", "latest_view"]


class ResultLog:
    """The results of one search, appended in order; ``log[i]`` is the ``i``-th as a ``Result``."""

    def __init__(self, results: Sequence[Result] = ()) -> None:
        self._params: list[Mapping[str, Any]] = []
        self._trial = array("q")
        self._rung = array("q")
        self._bracket = array("q")
        self._score = array("d")
        # The layout of compact rows, fixed by the first one: metric names, folds, train scores.
        self._layout: tuple[tuple[str, ...], int, bool] | None = None
        self._layout_row = 0  # the first row with fold columns
        self._test: dict[str, array[float]] = {}
        self._train: dict[str, array[float]] = {}
        self._fit = array("d")
        self._score_time = array("d")
        self._odd: dict[int, Result] = {}  # rows kept whole
        for result in results:
            self.append(result)

    def __len__(self) -> int:
        return len(self._trial)

    def _fits(self, r: Result) -> bool:
        job = r.job
        if job.budget is not None or job.folds is not None or r.extra:
            return False
        if r.status is not Status.COMPLETE or any(e is not None for e in r.errors):
            return False
        test, train = r.test_scores, r.train_scores
        n_folds = len(r.fit_times)
        if self._layout is None:
            names = tuple(test)
            self._layout = (names, n_folds, train is not None)
            self._layout_row = len(self._trial)
            self._test = {n: array("d") for n in names}
            self._train = {n: array("d") for n in names} if train is not None else {}
        names, folds, has_train = self._layout
        if folds != n_folds or has_train != (train is not None) or len(r.score_times) != n_folds:
            return False
        if len(r.errors) not in (0, n_folds) or tuple(test) != names:
            return False
        for n in names:
            if len(test.get(n, ())) != n_folds:
                return False
            if train is not None and len(train.get(n, ())) != n_folds:
                return False
        return train is None or tuple(train) == names

    def append(self, r: Result) -> None:
        i = len(self._trial)
        job = r.job
        compact = self._fits(r)
        if compact:
            assert self._layout is not None
            for n, values in r.test_scores.items():
                self._test[n].extend(values)
            if r.train_scores is not None:
                for n, values in r.train_scores.items():
                    self._train[n].extend(values)
            self._fit.extend(r.fit_times)
            self._score_time.extend(r.score_times)
            self._params.append(job.params)
        else:
            self._odd[i] = r
            self._params.append({})
            if self._layout is not None:  # keep the columns aligned with the rows
                names, n_folds, _ = self._layout
                pad = [math.nan] * n_folds
                for col in (*self._test.values(), *self._train.values()):
                    col.extend(pad)
                self._fit.extend(pad)
                self._score_time.extend(pad)
        self._rung.append(int(job.rung))
        self._bracket.append(int(job.bracket))
        self._score.append(float(r.score))
        self._trial.append(int(job.trial_id))  # last: len() counts a row once it is whole

    def _start(self, i: int) -> int:
        """Where row ``i``'s folds start in the fold columns (rows before the layout have none)."""
        assert self._layout is not None
        return (i - self._layout_row) * self._layout[1]

    def __getitem__(self, i: int) -> Result:
        odd = self._odd.get(i)
        if odd is not None:
            return odd
        assert self._layout is not None
        names, n_folds, has_train = self._layout
        a = self._start(i)
        b = a + n_folds
        return Result(
            job=Job(
                trial_id=self._trial[i],
                params=self._params[i],
                rung=self._rung[i],
                bracket=self._bracket[i],
            ),
            status=Status.COMPLETE,
            score=self._score[i],
            test_scores={n: tuple(self._test[n][a:b]) for n in names},
            train_scores={n: tuple(self._train[n][a:b]) for n in names} if has_train else None,
            fit_times=tuple(self._fit[a:b]),
            score_times=tuple(self._score_time[a:b]),
            errors=(None,) * n_folds,
        )

    def parts(
        self, i: int
    ) -> tuple[
        Sequence[float],
        Sequence[float],
        Mapping[str, Sequence[float]],
        Mapping[str, Sequence[float]] | None,
        Sequence[str | None],
    ]:
        """Row ``i``'s fit times, score times, test and train scores and errors, without making a
        Result (what :class:`daskhpo.results.FoldEntries` reads, once per key and row)."""
        odd = self._odd.get(i)
        if odd is not None:
            return odd.fit_times, odd.score_times, odd.test_scores, odd.train_scores, odd.errors
        assert self._layout is not None
        names, n_folds, has_train = self._layout
        a = self._start(i)
        b = a + n_folds
        return (
            self._fit[a:b],
            self._score_time[a:b],
            {n: self._test[n][a:b] for n in names},
            {n: self._train[n][a:b] for n in names} if has_train else None,
            (None,) * n_folds,
        )

    def view(self, order: Sequence[int] | None = None) -> ResultView:
        """The rows appended so far (in ``order``, positions into the log, if given)."""
        return ResultView(self, len(self) if order is None else order)

    def row_keys(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each row's (trial id, rung, bracket), as arrays."""
        n = len(self._trial)
        return (
            np.frombuffer(self._trial, dtype=np.int64, count=n).copy(),
            np.frombuffer(self._rung, dtype=np.int64, count=n).copy(),
            np.frombuffer(self._bracket, dtype=np.int64, count=n).copy(),
        )

    def __getstate__(self) -> dict[str, Any]:
        return self.__dict__.copy()

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


class ResultView(Sequence[Result]):
    """A read-only sequence of a :class:`ResultLog`'s rows; each ``Result`` is made when read."""

    def __init__(self, log: ResultLog, rows: int | Sequence[int]) -> None:
        self.log = log
        self._rows: range | Sequence[int] = range(rows) if isinstance(rows, int) else rows

    def __len__(self) -> int:
        return len(self._rows)

    @overload
    def __getitem__(self, index: int) -> Result: ...

    @overload
    def __getitem__(self, index: slice) -> ResultView: ...

    def __getitem__(self, index: int | slice) -> Result | ResultView:
        if isinstance(index, slice):
            return ResultView(self.log, self._rows[index])
        return self.log[int(self._rows[index])]

    def __iter__(self) -> Iterator[Result]:
        log = self.log
        for i in self._rows:
            yield log[int(i)]

    def positions(self) -> Sequence[int]:
        """The log rows this view shows, in its order."""
        return self._rows

    def kept_whole(self) -> list[Result]:
        """The rows that did not fit the columns (failures, budgets, partial folds, extras), in
        order: every row that can differ from a plain, complete one."""
        odd = self.log._odd
        if not odd:
            return []
        return [odd[i] for i in map(int, self._rows) if i in odd]

    def params(self) -> list[Any]:
        """Each row's params (the candidate's own dict), in order."""
        log = self.log
        return [
            log._odd[i].job.params if i in log._odd else log._params[i]
            for i in map(int, self._rows)
        ]


def latest_view(view: ResultView) -> ResultView:
    """The last row for each (trial, rung), ordered by (bracket, rung, trial id): the rows of
    ``cv_results_`` (see :func:`daskhpo.results.latest_evaluations`), without making a Result."""
    rows = np.asarray(view.positions(), dtype=np.int64)
    trial, rung, bracket = (k[rows] for k in view.log.row_keys())
    # The last of each (trial, rung): scan from the end, keep first occurrences.
    pairs = np.stack([trial, rung], axis=1)[::-1]
    _, first = np.unique(pairs, axis=0, return_index=True)
    keep = np.sort(len(rows) - 1 - first)
    order = keep[np.lexsort((trial[keep], rung[keep], bracket[keep]))]
    return ResultView(view.log, rows[order].tolist())
