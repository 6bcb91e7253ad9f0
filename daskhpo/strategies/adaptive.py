"""Adaptive strategies: successive halving, Hyperband, ASHA and incremental training.

Every strategy here is a pure ask/tell state machine (no dask import). A :class:`~daskhpo.strategies.Job`
carries the *cumulative* budget the trial's model must have when the job ends; the executor continues
the model from the trial's previous budget when the resource allows it. Budgets are ``int`` when the
bounds (``min_budget``/``max_budget``, or ``step``/``max_budget`` for :class:`Incremental`) are ints,
``float`` otherwise; they never exceed ``max_budget`` and never decrease for a trial.

Rankings put completed results first, higher ``score`` first, and break ties by the lower ``trial_id``;
failed results (and ``nan`` scores) rank below every completed one and are never promoted. So the
synchronous strategies (:class:`SuccessiveHalving`, :class:`Hyperband`, :class:`Incremental`) ask the
same jobs and take the same decisions whatever the order results arrive in, i.e. whatever the number of
workers. Telling stored results before the first ``ask`` (replay) makes them skip the jobs already told,
which is how a search resumes.

Candidates come from a *source* (:class:`CandidateSource`): :class:`RandomSource` (scikit-learn's
``ParameterSampler`` draws, sequentially from one generator), :class:`ListSource` (a fixed list), or a
source that learns from the results it is told (:class:`LearningSource`, such as BOHB's
:class:`~daskhpo.strategies.bohb.TPESource`). Every strategy tells its source each new result. A source
that does not learn is drawn from when the strategy is built (its draws do not depend on when they are
made); a source that learns is drawn from when a bracket opens, and Hyperband then opens its brackets
one after the other, so each one learns from those before: Hyperband over a TPE source is BOHB.

Every strategy here pickles (a fitted search keeps its strategy): no lambdas, no generators.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from fractions import Fraction
from typing import Any, Protocol, runtime_checkable

from sklearn.model_selection import ParameterGrid, ParameterSampler

from ..exceptions import InvalidSearchError, InvalidSearchTypeError
from ..space import _rng, normalize_distributions
from ..validation import check
from .base import Describing, Job, Result, Status, params_signature

__all__ = [
    "CandidateSource",
    "LearningSource",
    "RandomSource",
    "ListSource",
    "SuccessiveHalving",
    "Hyperband",
    "ASHA",
    "Incremental",
]

Budget = int | float


# -- candidate sources ------------------------------------------------------------------------------


@runtime_checkable
class CandidateSource(Protocol):
    """Where an adaptive strategy gets its candidates.

    ``sample(n, trial_ids)`` returns the next ``n`` candidates, which become the trials ``trial_ids``
    (strategies pass the ids to a :class:`LearningSource` only); ``tell(result)`` hands on every
    new result of the strategy (a source that does not learn ignores it).
    """

    def sample(self, n: int, trial_ids: Sequence[int] | None = None) -> list[dict[str, Any]]: ...

    def tell(self, result: Result) -> None: ...

    @property
    def distinct_left(self) -> int | None:
        """How many more candidates can be drawn without repeating one (``None``: no limit)."""
        ...


@runtime_checkable
class LearningSource(CandidateSource, Protocol):
    """A source whose candidates depend on the results it was told (BOHB's TPE source).

    A strategy draws from it as late as it can (Hyperband: when a bracket opens, one bracket after the
    other) and always with the trial ids the candidates become. A stored trial replayed before its
    bracket opened keeps its stored candidate: ``restore`` maps the stored JSON stand-ins back to the
    space's own objects. ``signature`` describes the source's settings (its draws are not known ahead).
    """

    def restore(self, params: Mapping[str, Any]) -> dict[str, Any]: ...

    def signature(self) -> Any: ...


def _sample(source: CandidateSource, trial_ids: Sequence[int]) -> list[dict[str, Any]]:
    """Candidates for ``trial_ids``: a source that learns is given the ids, any other only the count."""
    if isinstance(source, LearningSource):
        return source.sample(len(trial_ids), trial_ids=list(trial_ids))
    return source.sample(len(trial_ids))


class RandomSource:
    """Random candidates drawn one after the other from a single generator.

    Draws follow scikit-learn's :class:`~sklearn.model_selection.ParameterSampler`: for an int
    ``random_state`` the first ``n`` candidates drawn are exactly ``list(ParameterSampler(
    param_distributions, n, random_state=random_state))``, and the ``i``-th candidate ever drawn does not
    depend on how the draws are grouped into ``sample`` calls.

    When every value is a list (no distribution), ``ParameterSampler`` samples the grid without
    replacement. Here the grid is visited in the order of one random permutation, which is what
    ``ParameterSampler`` yields whenever it draws between 1% and 99% of the grid; once the whole grid has
    been drawn, a new permutation starts (candidates repeat). ``distinct_left`` says how many draws remain
    before that.

    Parameters
    ----------
    param_distributions : dict or list of dicts
        Parameter names to lists of values or to objects with an ``rvs`` method (``scipy.stats``
        frozen distributions, :class:`~daskhpo.Float`, ...). A list of dicts picks one dict per draw.
    random_state : int, numpy RandomState or Generator, optional
        Seed. ``None`` seeds from the operating system (never the global numpy generator).
    """

    def __init__(self, param_distributions: Any, random_state: Any = None) -> None:
        self.param_distributions = normalize_distributions(param_distributions)
        self._rng = _rng(random_state)
        self._all_lists = all(
            not hasattr(v, "rvs") for d in self.param_distributions for v in d.values()
        )
        self._n_drawn = 0
        self._grid = ParameterGrid(self.param_distributions) if self._all_lists else None
        self._order: list[int] = []

    @property
    def n_drawn(self) -> int:
        """How many candidates were drawn so far."""
        return self._n_drawn

    @property
    def distinct_left(self) -> int | None:
        if self._grid is None:
            return None
        return max(0, len(self._grid) - self._n_drawn)

    def sample(self, n: int, trial_ids: Sequence[int] | None = None) -> list[dict[str, Any]]:
        """The next ``n`` candidates (``trial_ids`` is not needed: the draws do not learn)."""
        _check_sample_size(n)
        out: list[dict[str, Any]] = []
        if self._grid is None:
            # ParameterSampler draws each candidate from the generator it is given and keeps no other
            # state, so one sampler per call draws what one endless sampler would (and the source holds
            # no generator object, which pickle could not save).
            sampler = ParameterSampler(self.param_distributions, n_iter=n, random_state=self._rng)
            out = [dict(p) for p in sampler]
        else:
            for _ in range(n):
                if not self._order:
                    self._order = [int(i) for i in self._rng.permutation(len(self._grid))][::-1]
                out.append(dict(self._grid[self._order.pop()]))
        self._n_drawn += n
        return out

    def tell(self, result: Result) -> None:
        """Random draws do not learn: results are ignored."""


class ListSource:
    """A fixed list of candidates, handed out in order; ``sample`` raises once it is used up."""

    def __init__(self, candidates: Sequence[Mapping[str, Any]]) -> None:
        items = list(candidates)
        for i, c in enumerate(items):
            if not isinstance(c, Mapping):
                raise InvalidSearchTypeError(
                    f"candidates[{i}] is a {type(c).__name__}: every candidate must be a dict of "
                    "parameter names to values."
                )
        self.candidates = [dict(c) for c in items]
        self._next = 0

    def __len__(self) -> int:
        return len(self.candidates)

    @property
    def distinct_left(self) -> int:
        return len(self.candidates) - self._next

    def sample(self, n: int, trial_ids: Sequence[int] | None = None) -> list[dict[str, Any]]:
        """The next ``n`` candidates of the list."""
        _check_sample_size(n)
        if n > self.distinct_left:
            raise InvalidSearchError(
                f"ListSource has {self.distinct_left} of its {len(self.candidates)} candidates left "
                f"but {n} were asked for: give more candidates or ask the strategy for fewer trials."
            )
        out = [dict(c) for c in self.candidates[self._next : self._next + n]]
        self._next += n
        return out

    def tell(self, result: Result) -> None:
        """A fixed list does not learn: results are ignored."""


# -- helpers ----------------------------------------------------------------------------------------


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_sample_size(n: Any) -> int:
    """How many candidates a source is asked for (the strategies' own call, not a user's setting)."""
    if not _is_int(n) or n < 0:
        raise InvalidSearchError(f"n={n!r}: use an integer >= 0.")
    return int(n)


def _check_bounds(min_budget: Any, max_budget: Any) -> tuple[Any, Any]:
    """``min_budget`` (``None``: 1) and ``max_budget``, each checked, and in that order."""
    if min_budget is None:
        min_budget = 1
    check("min_budget", min_budget, strict=True)
    check("max_budget", max_budget, strict=True)
    if min_budget > max_budget:
        raise InvalidSearchError(
            f"min_budget={min_budget!r} is larger than max_budget={max_budget!r}: lower min_budget "
            "or raise max_budget."
        )
    return min_budget, max_budget


def _plain(value: Any) -> Budget:
    """A Python int or float (numpy scalars are not JSON-serialisable)."""
    return int(value) if _is_int(value) else float(value)


def _frac(value: Any) -> Fraction:
    """The exact value a user typed: ints as they are, floats by their shortest decimal repr."""
    if _is_int(value):
        return Fraction(int(value))
    return Fraction(repr(float(value)))


def _budget(value: Fraction, integral: bool) -> Budget:
    return math.floor(value) if integral else float(value)


def _max_power(ratio: Fraction, eta: Fraction) -> int:
    """The largest ``s`` with ``eta**s <= ratio`` (exact arithmetic: 81/1 with eta 3 gives 4)."""
    s = 0
    while eta ** (s + 1) <= ratio:
        s += 1
    return s


def _check_place(result: Result, known: bool, n_trials: int, n_rungs: int) -> tuple[int, int]:
    """(trial id, rung) of a told result, after checking that the search has that trial and rung."""
    tid, rung = result.trial_id, result.job.rung
    if not known:
        raise ValueError(f"result for unknown trial {tid} (this search has {n_trials})")
    if not 0 <= rung < n_rungs:
        raise ValueError(
            f"result for trial {tid} at rung {rung}: this search has rungs 0..{n_rungs - 1}"
        )
    return tid, rung


def _rankable(result: Result) -> bool:
    return result.status is Status.COMPLETE and not math.isnan(result.score)


def _rank_key(result: Result) -> tuple[int, float, int]:
    """Completed results first, best score first, lower trial id first on ties."""
    if _rankable(result):
        return (0, -float(result.score), result.trial_id)
    return (1, 0.0, result.trial_id)


def _distinct_cap(source: CandidateSource, n: int, name: str) -> int:
    left = source.distinct_left
    if left is not None and left < n:
        if left <= 0:
            raise InvalidSearchError(
                f"{name}={n}: the candidate source has no candidates left; give a larger space."
            )
        warnings.warn(
            f"The space holds {left} distinct candidates, fewer than {name}={n}: running {left}.",
            UserWarning,
            stacklevel=3,
        )
        return left
    return n


def _totals(brackets: list[dict[str, Any]], exact: bool) -> dict[str, Any]:
    def total(key: str) -> Any:
        values = [v for b in brackets for v in b[key]]
        if any(v is None for v in values):
            return None
        return int(sum(values))

    planned_budget: Any = [b["planned_budget"] for b in brackets]
    planned_budget = None if any(v is None for v in planned_budget) else sum(planned_budget)
    return {
        "planned_jobs": total("planned_trials"),
        "planned_is_upper_bound": not exact,
        "asked_jobs": total("asked_trials"),
        "told_jobs": total("told_trials"),
        "failed_jobs": total("failed_trials"),
        "planned_budget": planned_budget,
        "budget_spent": sum(b["budget_spent"] for b in brackets),
    }


def _planned_budget(budgets: Sequence[Budget], counts: Sequence[int]) -> Budget:
    """Budget a rung schedule spends when each promotion continues from the previous rung."""
    spent: Budget = 0
    previous: Budget = 0
    for b, n in zip(budgets, counts, strict=True):
        spent += n * (b - previous)
        previous = b
    return spent


class _KeepPlanned:
    """Promote as many as the next rung plans (Hyperband's ``floor(n * eta**-(i + 1))``).

    The promotion rules are small classes rather than closures so that strategies pickle.
    """

    def __init__(self, counts: Sequence[int]) -> None:
        self.counts = [int(c) for c in counts]

    def __call__(self, rung: int, size: int) -> int:
        return self.counts[rung + 1]


class _KeepShare:
    """Promote ``ceil(size / factor)`` of a rung (scikit-learn's successive halving)."""

    def __init__(self, factor: Any) -> None:
        self.factor = factor

    def __call__(self, rung: int, size: int) -> int:
        return math.ceil(size / self.factor)


# -- synchronous successive halving (one bracket) ---------------------------------------------------


class _SyncBracket:
    """Successive halving with a barrier at every rung, over a fixed set of trials.

    ``keep(rung, n_in_rung)`` says how many of a finished rung go on (capped by how many completed).
    Results may be told before they are asked (replay): they are kept and their jobs are skipped when
    their rung opens.
    """

    def __init__(
        self,
        bracket_id: int,
        trial_ids: Sequence[int],
        params: Mapping[int, Mapping[str, Any]],
        budgets: Sequence[Budget],
        planned: Sequence[int],
        keep: Callable[[int, int], int],
    ) -> None:
        self.id = bracket_id
        self.params = params
        self.budgets = list(budgets)
        self.planned = list(planned)
        self.keep = keep
        self.members: list[list[int]] = [list(trial_ids)]
        self.member_sets: list[set[int]] = [set(trial_ids)]
        self.results: list[dict[int, Result]] = [{} for _ in self.budgets]
        self.asked: list[set[int]] = [set() for _ in self.budgets]
        self.queue: deque[int] = deque(trial_ids)
        self.rung = 0
        self.finished = not trial_ids
        self.done_trials: set[int] = set()  # trials this bracket will never ask again
        self._advance()

    def ask(self, n: int) -> list[Job]:
        jobs: list[Job] = []
        while len(jobs) < n and self.queue and not self.finished:
            tid = self.queue.popleft()
            if tid in self.results[self.rung]:
                continue  # told by replay
            self.asked[self.rung].add(tid)
            jobs.append(
                Job(
                    trial_id=tid,
                    params=self.params[tid],
                    budget=self.budgets[self.rung],
                    rung=self.rung,
                    bracket=self.id,
                )
            )
        return jobs

    def tell(self, result: Result) -> bool:
        """Record a result; False when the same job was told before (the first one counts)."""
        rung, tid = result.job.rung, result.trial_id
        if not 0 <= rung < len(self.budgets):
            raise ValueError(
                f"result for trial {tid} at rung {rung}: bracket {self.id} has rungs "
                f"0..{len(self.budgets) - 1}"
            )
        if rung < len(self.members) and tid not in self.member_sets[rung]:
            raise ValueError(
                f"result for trial {tid} at rung {rung} of bracket {self.id}, which that rung does not "
                "hold: the result belongs to another search."
            )
        if tid in self.results[rung]:
            return False  # the same job told twice (e.g. stored twice): the first one counts
        self.results[rung][tid] = result
        if not _rankable(result):
            self.done_trials.add(tid)
        self._advance()
        return True

    def _advance(self) -> None:
        while not self.finished:
            told = self.results[self.rung]
            if any(tid not in told for tid in self.members[self.rung]):
                return
            survivors: list[int] = []
            if self.rung + 1 < len(self.budgets):
                ranked = sorted((told[t] for t in self.members[self.rung]), key=_rank_key)
                n_keep = self.keep(self.rung, len(self.members[self.rung]))
                survivors = [r.trial_id for r in ranked[:n_keep] if _rankable(r)]
            self.done_trials.update(set(self.members[self.rung]) - set(survivors))
            if not survivors:
                self.finished = True
                self.queue.clear()
                return
            self.rung += 1
            self.members.append(survivors)
            self.member_sets.append(set(survivors))
            self.queue = deque(survivors)

    def survivors(self) -> list[int]:
        """Trials of the last rung opened, best first (all of them, told or not)."""
        return list(self.members[-1])

    def metadata(self) -> dict[str, Any]:
        asked, told, failed = [], [], []
        spent: Budget = 0
        for i, budget in enumerate(self.budgets):
            members = self.member_sets[i] if i < len(self.members) else set()
            results = {t: r for t, r in self.results[i].items() if t in members}
            asked.append(len(self.asked[i] | set(results)))
            told.append(len(results))
            failed.append(sum(1 for r in results.values() if not _rankable(r)))
            spent += len(results) * (budget - (self.budgets[i - 1] if i else 0))
        return {
            "bracket": self.id,
            "budgets": list(self.budgets),
            "planned_trials": list(self.planned),
            "asked_trials": asked,
            "told_trials": told,
            "failed_trials": failed,
            "planned_budget": _planned_budget(self.budgets, self.planned),
            "budget_spent": spent,
        }


class _Bracketed:
    """Shared ask/tell plumbing of the strategies made of synchronous brackets.

    Trial ids are ``0 .. n_total - 1``, numbered bracket after bracket. ``_params`` holds the
    candidates drawn (or restored) so far; with a source that does not learn, all are drawn when the
    strategy is built; with one that learns, a bracket draws when it opens (its first ``ask``), and
    the next bracket opens only once the open ones have no job to hand out.
    """

    source: CandidateSource
    _brackets: list[_SyncBracket]
    _params: dict[int, dict[str, Any]]
    _n_total: int

    def _start(self, source: CandidateSource) -> None:
        """Take the source (called once the brackets are built)."""
        self.source: CandidateSource = source
        self._learning: LearningSource | None = (
            source if isinstance(source, LearningSource) else None
        )
        self._drawn: set[int] = set()  # brackets whose every trial has its candidate
        self._opened: set[int] = set()  # brackets asked or told a result
        if self._learning is None:
            for bracket in self._brackets:
                self._draw(bracket)

    def _draw(self, bracket: _SyncBracket) -> None:
        """Candidates for the trials of ``bracket`` that have none yet (restored ones keep theirs)."""
        if bracket.id in self._drawn:
            return
        missing = [t for t in bracket.members[0] if t not in self._params]
        self._params.update(zip(missing, _sample(self.source, missing), strict=True))
        self._drawn.add(bracket.id)

    def _bracket_of(self, result: Result) -> _SyncBracket:
        for bracket in self._brackets:
            if bracket.id == result.job.bracket:
                return bracket
        raise ValueError(
            f"result for trial {result.trial_id} in bracket {result.job.bracket}: this search has "
            f"brackets {[b.id for b in self._brackets]}"
        )

    def ask(self, n: int) -> list[Job]:
        """Up to ``n`` jobs from every bracket with work, the first (most aggressive) bracket first.

        With a source that learns, a bracket not opened yet opens only when the ones before gave no job.
        """
        jobs: list[Job] = []
        for bracket in self._brackets:
            if len(jobs) >= n:
                break
            if self._learning is not None and jobs and bracket.id not in self._opened:
                break
            self._opened.add(bracket.id)
            self._draw(bracket)
            jobs += bracket.ask(n - len(jobs))
        return jobs

    def tell(self, result: Result) -> None:
        tid = result.trial_id
        if not 0 <= tid < self._n_total:
            raise ValueError(f"result for unknown trial {tid}")
        bracket = self._bracket_of(result)
        new = bracket.tell(result)
        if tid not in self._params:
            # A stored result for a bracket that has not drawn yet (only a source that learns leaves
            # one undrawn): its candidate is the stored one, and the bracket counts as open.
            self._params[tid] = dict(result.job.params)
        self._opened.add(bracket.id)
        if new:
            self.source.tell(result)

    def restore(self, trial_id: int, params: Mapping[str, Any]) -> dict[str, Any] | None:
        """The candidate of trial ``trial_id``, or ``None`` if the search has no such trial.

        For a trial whose bracket has not drawn yet (a source that learns), the stored ``params``
        become its candidate, mapped to the space's own objects by the source.
        """
        if not 0 <= trial_id < self._n_total:
            return None
        if trial_id not in self._params and self._learning is not None:
            self._params[trial_id] = self._learning.restore(params)
        return self._params[trial_id]

    def signature(self) -> list[Any]:
        """The rung schedule of every bracket, and the candidates (or the learning source's settings)."""
        schedule = [[b.id, list(b.budgets), list(b.planned)] for b in self._brackets]
        if self._learning is not None:
            return [type(self).__name__, schedule, self._learning.signature()]
        candidates = [params_signature(self._params[t]) for t in range(self._n_total)]
        return [type(self).__name__, schedule, candidates]

    @property
    def done(self) -> bool:
        return all(b.finished for b in self._brackets)

    def finished_trials(self) -> list[int]:
        """Trials that will never be asked again (their models can be released)."""
        return sorted(t for b in self._brackets for t in b.done_trials)

    @property
    def n_planned(self) -> int:
        return sum(sum(b.planned) for b in self._brackets)

    @property
    def budget_planned(self) -> Budget:
        return sum(_planned_budget(b.budgets, b.planned) for b in self._brackets)

    def metadata(self) -> dict[str, Any]:
        """Planned and actual trials and budget per bracket and in total (JSON-serialisable)."""
        brackets = [b.metadata() for b in self._brackets]
        for b in brackets:
            b["planned_is_upper_bound"] = False
        meta = {
            "strategy": type(self).__name__,
            "reduction_factor": _plain(self.reduction_factor),  # type: ignore[attr-defined]
            "brackets": brackets,
            "totals": _totals(brackets, exact=True),
        }
        if isinstance(self.source, Describing):
            meta.update(self.source.metadata())
        return meta


class SuccessiveHalving(_Bracketed):
    """Successive halving with a barrier at every rung, on the schedule of scikit-learn's
    ``HalvingRandomSearchCV`` (without aggressive elimination).

    With ``n`` candidates and factor ``f``, scikit-learn's formulas give the number of rungs,
    ``min(1 + floor(log(n, f)), 1 + floor(log(max_budget // min_budget, f)))``; rung ``i`` has budget
    ``f**i * min_budget`` (truncated to an int when both bounds are ints, capped to ``max_budget``) and
    holds the best ``ceil(n_{i-1} / f)`` trials of rung ``i - 1``. Rung ``i + 1`` starts only when every
    job of rung ``i`` was told. Failed trials are never promoted, so a rung may hold fewer trials than
    planned when some fail (scikit-learn would promote them with their ``nan`` score).

    Which evaluations pick the best: those of the last rung that was run (the largest budget).

    Parameters
    ----------
    source : CandidateSource
        Gives the ``n_candidates`` candidates (drawn when the strategy is built; trial ids 0..n-1).
    n_candidates : int or 'exhaust'
        Number of candidates at the first rung; ``'exhaust'`` uses ``max_budget // min_budget`` as
        scikit-learn does. Capped (with a warning) to the number of distinct candidates the source has.
    min_budget, max_budget : int or float
        Budget of the first rung and the most a trial may get.
    reduction_factor : int or float, default=3

    Attributes
    ----------
    n_resources, n_candidates : list
        Budget and number of trials of every rung started so far (scikit-learn's ``n_resources_`` and
        ``n_candidates_`` once the search is done).
    n_required_iterations, n_possible_iterations, n_iterations : int
        As in scikit-learn.
    """

    def __init__(
        self,
        source: CandidateSource,
        n_candidates: int | str,
        min_budget: Budget,
        max_budget: Budget,
        reduction_factor: float = 3,
    ) -> None:
        min_budget, max_budget = _check_bounds(min_budget, max_budget)
        factor = check("reduction_factor", reduction_factor)
        check("n_candidates", n_candidates)  # 'exhaust' too
        n = int(max_budget // min_budget) if n_candidates == "exhaust" else int(n_candidates)
        n = _distinct_cap(source, n, "n_candidates")
        self.min_budget, self.max_budget, self.reduction_factor = min_budget, max_budget, factor
        # scikit-learn's own (floating point) formulas, so the schedule matches it exactly.
        self.n_required_iterations = 1 + math.floor(math.log(n, factor))
        self.n_possible_iterations = 1 + math.floor(math.log(max_budget // min_budget, factor))
        self.n_iterations = min(self.n_required_iterations, self.n_possible_iterations)
        integral = _is_int(min_budget) and _is_int(max_budget)
        budgets: list[Budget] = []
        for i in range(self.n_iterations):
            b = factor**i * min_budget
            budgets.append(min(int(b), int(max_budget)) if integral else min(float(b), max_budget))
        planned = [n]
        for _ in range(1, self.n_iterations):
            planned.append(math.ceil(planned[-1] / factor))
        self._params = {}
        self._n_total = n
        self._brackets = [
            _SyncBracket(0, list(range(n)), self._params, budgets, planned, _KeepShare(factor))
        ]
        self._start(source)

    @property
    def n_resources(self) -> list[Budget]:
        b = self._brackets[0]
        return b.budgets[: len(b.members)]

    @property
    def n_candidates(self) -> list[int]:
        return [len(m) for m in self._brackets[0].members]

    def survivors(self) -> list[int]:
        """Trial ids of the last rung started, best first."""
        return self._brackets[0].survivors()


class Hyperband(_Bracketed):
    """Hyperband (Li et al. 2018): brackets of synchronous successive halving.

    With ``eta = reduction_factor``, ``R = max_budget`` and ``s_max = floor(log_eta(R / min_budget))``,
    bracket ``s = s_max .. 0`` starts ``n = ceil((s_max + 1) / (s + 1) * eta**s)`` candidates at budget
    ``r = R * eta**-s``; its rung ``i`` holds the best ``floor(n * eta**-i)`` at budget ``r * eta**i``
    (rounded down to an int when both bounds are ints), up to ``R`` at rung ``s``. Every bracket has its own
    rung barrier; brackets are independent and run side by side: ``ask`` hands out jobs from every
    bracket that has work, the most aggressive one (``s_max``) first. Trial ids are numbered bracket
    after bracket, so they are unique across brackets. With a source that does not learn, the candidates
    of all brackets are drawn when the strategy is built, in bracket order, and the whole search is
    decided by the seed and the scores. With a :class:`LearningSource` a bracket draws its candidates
    when it opens, and the next bracket opens only when the open ones have no job to hand out (they wait
    at a rung barrier), so every bracket learns from what the ones before found: that is BOHB
    (:class:`~daskhpo.strategies.bohb.BOHB`). ``Job.bracket`` is ``s``.

    Which evaluations pick the best: those at ``max_budget`` (the last rung of every bracket).

    Parameters
    ----------
    source : CandidateSource
        :class:`RandomSource`, :class:`ListSource` or a :class:`LearningSource`.
    max_budget : int or float
    min_budget : int or float, default=1
    reduction_factor : int or float, default=3
    """

    def __init__(
        self,
        source: CandidateSource,
        max_budget: Budget,
        min_budget: Budget | None = 1,
        reduction_factor: float = 3,
    ) -> None:
        min_budget, max_budget = _check_bounds(min_budget, max_budget)
        eta = check("reduction_factor", reduction_factor)
        self.min_budget, self.max_budget, self.reduction_factor = min_budget, max_budget, eta
        integral = _is_int(min_budget) and _is_int(max_budget)
        eta_f, big_r = _frac(eta), _frac(max_budget)
        self.s_max = _max_power(big_r / _frac(min_budget), eta_f)
        table: dict[int, list[tuple[int, Budget]]] = {}
        for s in range(self.s_max, -1, -1):
            n = math.ceil(Fraction(self.s_max + 1, s + 1) * eta_f**s)
            table[s] = [
                (math.floor(n / eta_f**i), _budget(big_r / eta_f ** (s - i), integral))
                for i in range(s + 1)
            ]
        self._table = table
        total = sum(rungs[0][0] for rungs in table.values())
        left = source.distinct_left
        if left is not None and left < total:
            if isinstance(source, ListSource):
                raise InvalidSearchError(
                    f"Hyperband with max_budget={max_budget!r}, min_budget={min_budget!r} and "
                    f"reduction_factor={eta!r} needs {total} candidates but the list has {left}: give "
                    "more candidates or a smaller max_budget / min_budget ratio."
                )
            warnings.warn(
                f"The space holds {left} distinct candidates and Hyperband draws {total}: some "
                "candidates are evaluated in more than one bracket.",
                UserWarning,
                stacklevel=2,
            )
        self._params = {}
        self._n_total = total
        self._brackets = []
        first = 0
        for s, rungs in table.items():
            counts = [c for c, _ in rungs]
            self._brackets.append(
                _SyncBracket(
                    s,
                    list(range(first, first + counts[0])),
                    self._params,
                    [b for _, b in rungs],
                    counts,
                    _KeepPlanned(counts),
                )
            )
            first += counts[0]
        self._start(source)

    def bracket_table(self) -> dict[int, list[tuple[int, Budget]]]:
        """Per bracket ``s`` (``s_max`` first), the planned ``(n_i, r_i)`` of each rung."""
        return {s: list(rungs) for s, rungs in self._table.items()}

    def survivors(self) -> dict[int, list[int]]:
        """Per bracket, the trial ids of its last rung started, best first."""
        return {b.id: b.survivors() for b in self._brackets}


# -- asynchronous successive halving ----------------------------------------------------------------


class ASHA:
    """Asynchronous successive halving (Li et al. 2020): no rung barrier.

    Rung ``k`` has budget ``min_budget * eta**(k + s)`` (``s = min_early_stopping_rate``, rounded down to
    an int when both bounds are ints) for ``k = 0 .. K - 1``, where ``K = floor(log_eta(max_budget /
    min_budget)) - s``; the top rung ``K`` has ``max_budget`` itself (equal to ``min_budget * eta**(K + s)``
    when ``max_budget / min_budget`` is a power of ``eta``). On every ``ask``, going down from rung
    ``K - 1``, a trial is promoted to the next rung when it is among the best ``floor(t_k / eta)`` of the
    ``t_k`` results told at rung ``k`` (failed ones count in ``t_k`` but rank last and are never promoted)
    and was not promoted yet; the rest of the request is filled with new candidates at rung 0 until
    ``n_trials`` were started, so ``ask(n)`` returns ``n`` jobs while new candidates remain.
    ``Job.bracket`` is ``s``.

    What is deterministic: which candidates exist and their trial ids (drawn from the source when the
    strategy is built), the rung budgets, and, for a given order of tells and asks, every decision. What
    is not: which trials get promoted depends on the order results arrive in (a trial can be promoted
    while it is in the top of a rung that is still filling), so runs with different numbers of workers or
    timings may promote different trials.

    Which evaluations pick the best: those at the largest budget any trial reached.

    ``done`` is true once every started trial was told and no trial can be promoted. ``n_planned`` and
    ``budget_planned`` are ``None`` (the number of promotions depends on the order of results).

    Parameters
    ----------
    source : CandidateSource
    n_trials : int
        Number of candidates to start (capped, with a warning, to the distinct candidates available).
    max_budget : int or float
    min_budget : int or float, default=1
    reduction_factor : int or float, default=3
    min_early_stopping_rate : int, default=0
    """

    def __init__(
        self,
        source: CandidateSource,
        n_trials: int,
        max_budget: Budget,
        min_budget: Budget | None = 1,
        reduction_factor: float = 3,
        min_early_stopping_rate: int = 0,
    ) -> None:
        n = int(check("n_trials", n_trials, strict=True))
        min_budget, max_budget = _check_bounds(min_budget, max_budget)
        eta = check("reduction_factor", reduction_factor)
        s_max = _max_power(_frac(max_budget) / _frac(min_budget), _frac(eta))
        s = int(check("min_early_stopping_rate", min_early_stopping_rate))
        if s > s_max:
            raise InvalidSearchError(
                f"min_early_stopping_rate={s} is above {s_max}, the most that max_budget="
                f"{max_budget!r}, min_budget={min_budget!r} and reduction_factor={eta!r} allow: lower "
                "it or raise max_budget."
            )
        self.min_budget, self.max_budget, self.reduction_factor = min_budget, max_budget, eta
        self.min_early_stopping_rate = s
        integral = _is_int(min_budget) and _is_int(max_budget)
        top = s_max - s
        self.budgets: list[Budget] = [
            _budget(_frac(min_budget) * _frac(eta) ** (k + s), integral) for k in range(top)
        ]
        self.budgets.append(_plain(max_budget))
        self.n_trials = _distinct_cap(source, n, "n_trials")
        self.source: CandidateSource = source
        self._params = dict(enumerate(_sample(source, range(self.n_trials))))
        self._eta = _frac(eta)
        self._results: list[dict[int, Result]] = [{} for _ in self.budgets]
        self._asked: list[set[int]] = [set() for _ in self.budgets]
        self._promoted: list[set[int]] = [set() for _ in self.budgets]
        self._started: set[int] = set()
        self._next_new = 0
        self._in_flight: set[tuple[int, int]] = set()
        self._promotable_cache: list[list[int]] | None = None

    def _promotable(self) -> list[list[int]]:
        """Per rung, the trials that may move up now, best first."""
        if self._promotable_cache is None:
            out: list[list[int]] = [[] for _ in self.budgets]
            for k in range(len(self.budgets) - 1):
                told = self._results[k]
                n_top = math.floor(len(told) / self._eta)
                ranked = sorted(told.values(), key=_rank_key)[:n_top]
                out[k] = [
                    r.trial_id
                    for r in ranked
                    if _rankable(r) and r.trial_id not in self._promoted[k]
                ]
            self._promotable_cache = out
        return self._promotable_cache

    def _job(self, tid: int, rung: int) -> Job:
        self._asked[rung].add(tid)
        self._in_flight.add((tid, rung))
        return Job(
            trial_id=tid,
            params=self._params[tid],
            budget=self.budgets[rung],
            rung=rung,
            bracket=self.min_early_stopping_rate,
        )

    def ask(self, n: int) -> list[Job]:
        """Promotions first (top rung down, best first), then new candidates at rung 0."""
        jobs: list[Job] = []
        promotable = self._promotable()
        for k in range(len(self.budgets) - 2, -1, -1):
            for tid in promotable[k]:
                if len(jobs) >= n:
                    break
                self._promoted[k].add(tid)
                jobs.append(self._job(tid, k + 1))
        self._promotable_cache = None
        while len(jobs) < n:
            while self._next_new in self._started:
                self._next_new += 1
            if self._next_new >= self.n_trials:
                break
            self._started.add(self._next_new)
            jobs.append(self._job(self._next_new, 0))
        return jobs

    def tell(self, result: Result) -> None:
        tid, rung = _check_place(
            result, result.trial_id in self._params, self.n_trials, len(self.budgets)
        )
        self._in_flight.discard((tid, rung))
        if tid in self._results[rung]:
            return  # told twice: the first one counts
        self._results[rung][tid] = result
        # A replayed result stands for the promotions that led to it.
        self._started.add(tid)
        for k in range(rung):
            self._promoted[k].add(tid)
        self._promotable_cache = None
        self.source.tell(result)

    def restore(self, trial_id: int, params: Mapping[str, Any]) -> dict[str, Any] | None:
        """The candidate of trial ``trial_id``, or ``None`` if the search has no such trial."""
        return self._params.get(trial_id)

    def signature(self) -> list[Any]:
        """The rung budgets, the early-stopping rate and every candidate."""
        candidates = [params_signature(self._params[t]) for t in range(self.n_trials)]
        return ["ASHA", list(self.budgets), self.min_early_stopping_rate, candidates]

    @property
    def done(self) -> bool:
        if self._in_flight or len(self._started) < self.n_trials:
            return False
        return not any(self._promotable())

    def finished_trials(self) -> list[int]:
        """Trials that will never be asked again: failed ones and those told at the top rung (any
        other may still be promoted, however far down its rung it ranks now, until the search is
        done)."""
        if self.done:
            return sorted(self._started)
        out = {t for rung in self._results for t, r in rung.items() if not _rankable(r)}
        out.update(self._results[-1])
        return sorted(out)

    @property
    def n_planned(self) -> None:
        return None

    @property
    def budget_planned(self) -> None:
        return None

    def metadata(self) -> dict[str, Any]:
        """Actual trials and budget per rung (planned: only rung 0 is known)."""
        asked, told, failed = [], [], []
        spent: Budget = 0
        for i, budget in enumerate(self.budgets):
            results = self._results[i]
            asked.append(len(self._asked[i] | set(results)))
            told.append(len(results))
            failed.append(sum(1 for r in results.values() if not _rankable(r)))
            spent += len(results) * (budget - (self.budgets[i - 1] if i else 0))
        bracket = {
            "bracket": self.min_early_stopping_rate,
            "budgets": list(self.budgets),
            "planned_trials": [self.n_trials] + [None] * (len(self.budgets) - 1),
            "asked_trials": asked,
            "told_trials": told,
            "failed_trials": failed,
            "planned_budget": None,
            "budget_spent": spent,
            "planned_is_upper_bound": False,
        }
        return {
            "strategy": "ASHA",
            "reduction_factor": _plain(self.reduction_factor),
            "brackets": [bracket],
            "totals": _totals([bracket], exact=False),
        }


# -- incremental training -----------------------------------------------------------------------------


class Incremental:
    """Train every candidate in steps of ``step`` budget, scoring after each, and drop the stale ones.

    Trial ``t``'s ``j``-th job (``rung=j``, the number of scores it had so far) has budget
    ``min((j + 1) * step, max_budget)``. A trial stops when it reaches ``max_budget``, when a job fails,
    or, with ``patience``, when ``patience`` consecutive scores did not beat its best score by more than
    ``tol``. New candidates are started first (trial ids in order), then trials are continued in trial-id
    order. Each trial's decisions depend only on its own scores, so the jobs asked do not depend on the
    order of results. ``Job.bracket`` is 0.

    Which evaluations pick the best: every trial's last evaluation (its model at the budget it stopped).

    ``n_planned``/``budget_planned`` are exact without ``patience``, ``None`` with it.

    Parameters
    ----------
    source : CandidateSource
    n_candidates : int
    max_budget : int or float
    step : int or float, default=1
    patience : int, optional
    tol : float, default=1e-3
    """

    def __init__(
        self,
        source: CandidateSource,
        n_candidates: int,
        max_budget: Budget,
        step: Budget = 1,
        patience: int | None = None,
        tol: float = 1e-3,
    ) -> None:
        n = int(check("n_candidates", n_candidates, strict=True))
        check("max_budget", max_budget, strict=True)
        check("step", step, strict=True)
        check("patience", patience)
        if patience is not None:
            patience = int(patience)
        check("tol", tol)
        self.max_budget: Budget = max_budget
        self.step: Budget = step
        self.patience: int | None = patience
        self.tol: float = float(tol)
        integral = _is_int(step) and _is_int(max_budget)
        n_steps = math.ceil(_frac(max_budget) / _frac(step))
        self.budgets: list[Budget] = [
            _budget(min((j + 1) * _frac(step), _frac(max_budget)), integral) for j in range(n_steps)
        ]
        self.n_candidates: int = _distinct_cap(source, n, "n_candidates")
        self.source: CandidateSource = source
        self._params: dict[int, dict[str, Any]] = dict(
            enumerate(_sample(source, range(self.n_candidates)))
        )
        self._results: dict[int, dict[int, Result]] = {t: {} for t in self._params}
        self._asked: list[set[int]] = [set() for _ in self.budgets]
        self._in_flight: dict[int, int] = {}
        self._next_rung: dict[int, int] = {}
        self._stopped: dict[int, str] = {}
        self._next_new: int = 0

    def _update(self, tid: int) -> None:
        results = self._results[tid]
        best, stale, rung = -math.inf, 0, 0
        reason = None
        while rung in results:
            r = results[rung]
            rung += 1
            if not _rankable(r):
                reason = "failed"
                break
            score = float(r.score)
            if score > best + self.tol:
                stale = 0
            else:
                stale += 1
            best = max(best, score)
            if rung >= len(self.budgets):
                reason = "max_budget"
                break
            if self.patience is not None and stale >= self.patience:
                reason = "patience"
                break
        self._next_rung[tid] = rung
        if reason is not None:
            self._stopped[tid] = reason

    def _job(self, tid: int, rung: int) -> Job:
        self._asked[rung].add(tid)
        self._in_flight[tid] = rung
        return Job(trial_id=tid, params=self._params[tid], budget=self.budgets[rung], rung=rung)

    def ask(self, n: int) -> list[Job]:
        jobs: list[Job] = []
        while len(jobs) < n:
            while self._next_new in self._next_rung:
                self._next_new += 1
            if self._next_new >= self.n_candidates:
                break
            self._next_rung[self._next_new] = 0
            jobs.append(self._job(self._next_new, 0))
        if len(jobs) < n:
            for tid in sorted(self._next_rung):
                if len(jobs) >= n:
                    break
                if tid in self._stopped or tid in self._in_flight:
                    continue
                jobs.append(self._job(tid, self._next_rung[tid]))
        return jobs

    def tell(self, result: Result) -> None:
        tid, rung = _check_place(
            result, result.trial_id in self._params, self.n_candidates, len(self.budgets)
        )
        if self._in_flight.get(tid) == rung:
            del self._in_flight[tid]
        if rung in self._results[tid]:
            return
        self._results[tid][rung] = result
        self._update(tid)
        self.source.tell(result)

    def restore(self, trial_id: int, params: Mapping[str, Any]) -> dict[str, Any] | None:
        """The candidate of trial ``trial_id``, or ``None`` if the search has no such trial."""
        return self._params.get(trial_id)

    def signature(self) -> list[Any]:
        """The step budgets, the stopping rule and every candidate."""
        candidates = [params_signature(self._params[t]) for t in range(self.n_candidates)]
        return ["Incremental", list(self.budgets), self.patience, self.tol, candidates]

    def finished_trials(self) -> list[int]:
        """Trials that will never be asked again (their models can be released)."""
        return sorted(self._stopped)

    @property
    def stopped(self) -> dict[int, str]:
        """Trials that stopped, with why: ``'max_budget'``, ``'patience'`` or ``'failed'``."""
        return dict(self._stopped)

    @property
    def done(self) -> bool:
        return not self._in_flight and len(self._stopped) == self.n_candidates

    @property
    def n_planned(self) -> int | None:
        return None if self.patience is not None else self.n_candidates * len(self.budgets)

    @property
    def budget_planned(self) -> Budget | None:
        return None if self.patience is not None else self.n_candidates * self.budgets[-1]

    def metadata(self) -> dict[str, Any]:
        """Actual trials and budget per step; planned counts are upper bounds with ``patience``."""
        asked, told, failed = [], [], []
        spent: Budget = 0
        for i, budget in enumerate(self.budgets):
            results = [res[i] for res in self._results.values() if i in res]
            asked.append(len(self._asked[i] | {r.trial_id for r in results}))
            told.append(len(results))
            failed.append(sum(1 for r in results if not _rankable(r)))
            spent += len(results) * (budget - (self.budgets[i - 1] if i else 0))
        planned = [self.n_candidates] * len(self.budgets)
        bracket = {
            "bracket": 0,
            "budgets": list(self.budgets),
            "planned_trials": planned,
            "asked_trials": asked,
            "told_trials": told,
            "failed_trials": failed,
            "planned_budget": _planned_budget(self.budgets, planned),
            "budget_spent": spent,
            "planned_is_upper_bound": self.patience is not None,
        }
        return {
            "strategy": "Incremental",
            "patience": self.patience,
            "tol": self.tol,
            "brackets": [bracket],
            "totals": _totals([bracket], exact=self.patience is None),
        }
