"""From finished evaluations to ``cv_results_`` and ``best_*``: one rule for a live search and a stored one.

A live search (:class:`daskhpo.run.SearchRun`) and a search read back from its store
(:func:`daskhpo.load`) both build their table here, from :class:`~daskhpo.strategies.Result` objects, so
they have the same keys, rows and best. Plain Python and scikit-learn: no dask import.

Rows are evaluations: one per trial for grid, random and Bayesian searches, one per (trial, rung) for
the adaptive ones, ordered by bracket, rung and trial id (trial order when there are no rungs). Which
rows compete for ``best_*`` is the search's *best rule*:

``"all"``
    every row (grid, random, Bayesian: scikit-learn's rule, the first of equal scores wins);
``"top"``
    the rows at the largest budget evaluated (successive halving, Hyperband, ASHA, BOHB): a score at a
    smaller budget is not comparable;
``"last"``
    each trial's last evaluation (incremental training, median stopping: a trial stops at its own
    budget).

Ties go to the lower trial id. Failed rows (and ``nan`` scores) never win.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from types import SimpleNamespace
from typing import Any, overload

import numpy as np

from .exceptions import FitFailedError
from .resultlog import ResultView, latest_view
from .strategies.base import Result

__all__ = [
    "BEST_RULES",
    "BestSoFar",
    "as_number",
    "best_position",
    "build_cv_results",
    "check_failures",
    "contenders",
    "group_errors",
    "latest_evaluations",
]

BEST_RULES = ("all", "top", "last")

# What the budget of an adaptive search counts when it is not an estimator parameter.
_BUILTIN_RESOURCES = ("partial_fit", "n_samples", None)


def as_number(value: Any) -> Any:
    """A budget as it is shown: an int when it is whole, else a float (None stays None)."""
    if value is None:
        return None
    f = float(value)
    return int(f) if f.is_integer() else f


def latest_evaluations(results: Iterable[Result]) -> Sequence[Result]:
    """The last result told for each (trial, rung), in row order (bracket, rung, trial id)."""
    if isinstance(results, ResultView):
        return latest_view(results)
    latest: dict[tuple[int, int], Result] = {}
    for r in results:
        latest[(r.trial_id, r.job.rung)] = r
    return sorted(latest.values(), key=lambda r: (r.job.bracket, r.job.rung, r.trial_id))


def _facts(item: Result | Mapping[str, Any]) -> tuple[int, int, float, float, bool]:
    """(trial id, rung, budget, score, failed) of a result or of a stored record."""
    if isinstance(item, Result):
        job = item.job
        budget = 0.0 if job.budget is None else float(job.budget)
        return item.trial_id, job.rung, budget, item.score, item.failed
    stored_score = item.get("score")
    stored_budget = item.get("budget")
    return (
        int(item["trial_id"]),
        int(item.get("rung", 0)),
        0.0 if stored_budget is None else float(stored_budget),
        math.nan if stored_score is None else float(stored_score),
        item.get("status") == "failed",
    )


Evaluation = Result | Mapping[str, Any]


def contenders(results: Sequence[Evaluation], rule: str) -> list[int]:
    """Positions in ``results`` (results or stored records) of the rows that compete for ``best_*``."""
    if rule not in BEST_RULES:
        raise ValueError(f"best rule {rule!r}: use one of {BEST_RULES}")
    facts = [_facts(r) for r in results]
    done = [i for i, f in enumerate(facts) if not f[4] and not math.isnan(f[3])]
    if not done or rule == "all":
        return done
    if rule == "last":
        last: dict[int, int] = {}
        for i in sorted(done, key=lambda i: (facts[i][2], facts[i][1])):
            last[facts[i][0]] = i
        return sorted(last.values())
    top = max(facts[i][2] for i in done)
    return [i for i in done if facts[i][2] == top]


def best_position(
    results: Sequence[Evaluation], rule: str, scores: Sequence[float] | None = None
) -> int | None:
    """The row of the best result under ``rule`` (highest score, then lowest trial id); None if none.

    ``scores`` replaces each row's ``score`` (the mean test score of another metric, say).
    """
    idx = contenders(results, rule)
    if not idx:
        return None
    facts = [_facts(r) for r in results]
    values = [f[3] for f in facts] if scores is None else [float(s) for s in scores]

    def key(i: int) -> tuple[float, float, int]:
        s = values[i]
        # A tie goes to the larger budget (the better-trained model), then to the lower trial id.
        return (-math.inf if math.isnan(s) else s, facts[i][2], -facts[i][0])

    return max(idx, key=key)


class BestSoFar:
    """The best result so far under a best rule, updated one result at a time (O(1) per result,
    O(trials) for ``"last"`` when a trial's last evaluation changes).

    It names the same row :func:`best_position` picks over all the results seen: ``score`` and
    ``trial_id`` (``-inf`` and None while no result completed).
    """

    def __init__(self, rule: str) -> None:
        if rule not in BEST_RULES:
            raise ValueError(f"rule={rule!r}: use one of {BEST_RULES}.")
        self.rule = rule
        self.score = -math.inf
        self.trial_id: int | None = None
        self._budget = -math.inf  # the budget of the best result
        self._top = -math.inf  # "top": the largest budget a completed result had
        self._last: dict[
            int, tuple[float, int, float]
        ] = {}  # "last": trial -> (budget, rung, score)

    def _better(self, score: float, tid: int, budget: float = 0.0) -> bool:
        if score != self.score:
            return score > self.score
        if budget != self._budget:
            return budget > self._budget
        return self.trial_id is None or tid < self.trial_id

    def update(self, result: Evaluation) -> None:
        tid, rung, budget, score, failed = _facts(result)
        if failed or math.isnan(score):
            return  # failed rows never compete (see contenders)
        if self.rule == "last":
            previous = self._last.get(tid)
            if previous is not None and (budget, rung) < previous[:2]:
                return
            self._last[tid] = (budget, rung, score)
            if self.trial_id == tid or self._better(score, tid, budget):
                self.score, self.trial_id, self._budget = -math.inf, None, -math.inf
                for t, (b, _, sc) in self._last.items():
                    if self._better(sc, t, b):
                        self.score, self.trial_id, self._budget = sc, t, b
            return
        if self.rule == "top":
            if budget < self._top:
                return
            if budget > self._top:
                self._top, self.score, self.trial_id, self._budget = budget, score, tid, budget
                return
        if self._better(score, tid, budget):
            self.score, self.trial_id, self._budget = score, tid, budget


def group_errors(errors: list[str]) -> str:
    """Failure tracebacks grouped by text, most frequent first, as scikit-learn prints them."""
    counts = Counter(errors)
    return "\n".join(
        f"{'-' * 80}\n{n} fits failed with the following error:\n{text}"
        for text, n in counts.most_common()
    )


def check_failures(
    results: Sequence[Result], n_splits: int, error_score: Any, stacklevel: int = 2
) -> None:
    """Raise :class:`FitFailedError` when every fit failed (or none ran); warn when some did."""
    from sklearn.exceptions import FitFailedWarning

    # Of a view on a result log, only the rows kept whole can hold errors.
    some = results.kept_whole() if isinstance(results, ResultView) else results
    errors = [e for r in some for e in r.errors if e is not None]
    n_fits = len(results) * n_splits
    if not results or (errors and len(errors) == n_fits):
        raise FitFailedError(
            f"All the {n_fits} fits failed.\nIt is very likely that your model is misconfigured "
            "(the estimator or its parameters): set error_score='raise' to stop at the first "
            f"failure with its traceback.\n\nBelow are more details about the failures:\n"
            f"{group_errors(errors)}"
        )
    if errors:
        warnings.warn(
            f"\n{len(errors)} fits failed out of a total of {n_fits}.\nThe score on these train-test "
            f"partitions for these parameters will be set to {error_score}.\n"
            f"{group_errors(errors)}",
            FitFailedWarning,
            stacklevel=stacklevel,
        )


def metric_names(results: Sequence[Result]) -> list[str]:
    """The metric names the results were scored with (``["score"]`` for a single scorer)."""
    return next((list(r.test_scores) for r in results if r.test_scores), ["score"])


class FoldEntries(Sequence[dict[str, Any]]):
    """One entry per (result, fold), as scikit-learn's ``_format_results`` takes them: times and
    scores, with ``error_score`` for failed or missing folds (``nan`` when it is ``"raise"``).

    Each entry is made when read, so the entries of a large search never exist all at once
    (scikit-learn reads them key by key: one pass each for the times and the scores).
    """

    def __init__(
        self,
        results: Sequence[Result],
        n_splits: int,
        *,
        error_score: Any,
        multimetric: bool,
        return_train_score: bool,
    ) -> None:
        self.results = results
        self.n_splits = n_splits
        self.names = metric_names(results)
        self.fill = math.nan if isinstance(error_score, str) else error_score
        self.multimetric = multimetric
        self.return_train_score = return_train_score

    def __len__(self) -> int:
        return len(self.results) * self.n_splits

    def _scores(self, scores: Mapping[str, Sequence[Any]] | None, k: int, failed: bool) -> Any:
        fill = self.fill
        values = {
            n: fill
            if failed
            or not scores
            or n not in scores
            or k >= len(scores[n])
            or scores[n][k] is None
            else scores[n][k]
            for n in self.names
        }
        return values if self.multimetric else values[self.names[0]]

    def _entries(
        self,
        fit_times: Sequence[float],
        score_times: Sequence[float],
        test_scores: Mapping[str, Sequence[Any]] | None,
        train_scores: Mapping[str, Sequence[Any]] | None,
        errors: Sequence[str | None],
    ) -> Iterator[dict[str, Any]]:
        for k in range(self.n_splits):
            failed = errors[k] is not None if k < len(errors) else True
            entry: dict[str, Any] = {
                "fit_time": fit_times[k] if k < len(fit_times) else 0.0,
                "score_time": score_times[k] if k < len(score_times) else 0.0,
                "test_scores": self._scores(test_scores, k, failed),
            }
            if self.return_train_score:
                entry["train_scores"] = self._scores(train_scores, k, failed)
            yield entry

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...

    @overload
    def __getitem__(self, index: slice) -> list[dict[str, Any]]: ...

    def __getitem__(self, index: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        row, k = divmod(range(len(self))[index], self.n_splits)
        r = self.results[row]
        entries = self._entries(r.fit_times, r.score_times, r.test_scores, r.train_scores, r.errors)
        return list(entries)[k]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        if isinstance(self.results, ResultView):  # read the log's columns, no Result per row
            log = self.results.log
            for i in self.results.positions():
                yield from self._entries(*log.parts(int(i)))
            return
        for r in self.results:
            yield from self._entries(
                r.fit_times, r.score_times, r.test_scores, r.train_scores, r.errors
            )


def fold_entries(
    results: Sequence[Result],
    n_splits: int,
    *,
    error_score: Any,
    multimetric: bool,
    return_train_score: bool,
) -> FoldEntries:
    """The entries of ``results`` for scikit-learn's ``_format_results`` (see :class:`FoldEntries`)."""
    return FoldEntries(
        results,
        n_splits,
        error_score=error_score,
        multimetric=multimetric,
        return_train_score=return_train_score,
    )


FormatResults = Callable[[list[dict[str, Any]], int, Sequence[dict[str, Any]]], dict[str, Any]]


def build_cv_results(
    results: Sequence[Result],
    n_splits: int,
    *,
    error_score: Any,
    multimetric: bool,
    return_train_score: bool,
    budget_param: str | None = None,
    format_results: FormatResults | None = None,
) -> dict[str, Any]:
    """``cv_results_`` for ``results`` (already in row order, see :func:`latest_evaluations`).

    ``budget_param`` names the estimator parameter the budget sets (it then shows as a parameter of
    each row); ``format_results`` is the search's own ``_format_results`` (scikit-learn's by default).
    Rows with a budget get scikit-learn's halving columns too: ``trial_id``, ``bracket``, ``rung``,
    ``budget``, ``iter`` and ``n_resources``.
    """
    out = fold_entries(
        results,
        n_splits,
        error_score=error_score,
        multimetric=multimetric,
        return_train_score=return_train_score,
    )
    # Every row that can have a budget, partial folds or extras (a view: only the rows kept whole).
    special = results.kept_whole() if isinstance(results, ResultView) else results
    candidates: list[Any]
    if isinstance(results, ResultView) and not special:
        candidates = results.params()  # the candidates' own dicts, shared with the store
    else:
        candidates = []
        for r in results:
            params = r.job.params  # the candidate's own dict, shared with the store: no copy
            if budget_param not in _BUILTIN_RESOURCES and r.job.budget is not None:
                params = {**params, str(budget_param): as_number(r.job.budget)}
            candidates.append(params)
    if format_results is None:
        from sklearn.model_selection._search import BaseSearchCV

        shim = SimpleNamespace(return_train_score=return_train_score)

        def format_results(c: Any, n: int, o: Any) -> dict[str, Any]:
            with warnings.catch_warnings():
                # Read back from a store: the search warned about non-finite scores when it ran.
                warnings.simplefilter("ignore", UserWarning)
                return dict(BaseSearchCV._format_results(shim, c, n, o))

    with warnings.catch_warnings():
        if any("folds_run" in r.extra for r in special):
            # Raced-out candidates have folds that never ran: their nan means are the point.
            warnings.filterwarnings("ignore", message=".*test scores are non-finite")
            warnings.filterwarnings("ignore", message=".*train scores are non-finite")
        cv_results = format_results(candidates, n_splits, out)
    if any("folds_run" in r.extra for r in special):
        cv_results["n_folds_run"] = np.array(
            [int(r.extra.get("folds_run", n_splits)) for r in results]
        )
    if any(r.job.budget is not None for r in special):
        cv_results["trial_id"] = np.array([r.trial_id for r in results])
        cv_results["bracket"] = np.array([r.job.bracket for r in results])
        cv_results["rung"] = np.array([r.job.rung for r in results])
        cv_results["budget"] = np.array([as_number(r.job.budget) for r in results])
        # scikit-learn's halving searches call these iter and n_resources.
        cv_results["iter"] = cv_results["rung"]
        cv_results["n_resources"] = cv_results["budget"]
    return cv_results
