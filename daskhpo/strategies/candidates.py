"""Grid and random search: strategies over a list of candidates fixed in advance."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..space import LazyGrid, LazySample, grid_candidates, random_candidates
from .base import Job, Result, params_signature

__all__ = ["CandidateList", "GridStrategy", "RandomStrategy"]


class CandidateList:
    """Hands out every candidate once, in order, and is done when all have been told.

    There is no barrier and no feedback: ``tell`` only counts. Replaying stored results with ``tell``
    before the first ``ask`` skips the candidates already finished (used to resume a search).
    Trial ``i`` is ``candidates[i]`` (the strategy is :class:`~daskhpo.strategies.base.Enumerated`).
    ``candidates`` may be any sequence; a :class:`~daskhpo.space.LazyGrid` is read one candidate at a
    time as the search asks (a :class:`~daskhpo.space.LazySample` draws them in order), and nothing
    per candidate is kept but one byte (told or not).
    """

    def __init__(self, candidates: Sequence[Mapping[str, Any]], *, first_id: int = 0) -> None:
        self.candidates: Sequence[Mapping[str, Any]] = (
            candidates
            if isinstance(candidates, (LazyGrid, LazySample))
            else [dict(c) for c in candidates]
        )
        self.first_id = first_id  # trial ids are first_id, first_id + 1, ...
        self._next = 0
        self._told = bytearray(len(self.candidates))
        self._n_told = 0
        # The params of jobs asked and not yet told, so that restore gives the job's own dict.
        self._open: dict[int, dict[str, Any]] = {}

    @property
    def n_planned(self) -> int:
        return len(self.candidates)

    def ask(self, n: int) -> list[Job]:
        jobs: list[Job] = []
        while len(jobs) < n and self._next < len(self.candidates):
            i = self._next
            self._next += 1
            if self._told[i]:
                continue
            params = self._open[i] = dict(self.candidates[i])
            jobs.append(Job(trial_id=self.first_id + i, params=params))
        return jobs

    def tell(self, result: Result) -> None:
        tid = result.job.trial_id - self.first_id
        if not 0 <= tid < len(self.candidates):
            raise ValueError(f"result for unknown trial {result.job.trial_id}")
        self._open.pop(tid, None)
        if not self._told[tid]:
            self._told[tid] = 1
            self._n_told += 1

    @property
    def done(self) -> bool:
        return self._n_told == len(self.candidates)

    def restore(self, trial_id: int, params: Mapping[str, Any]) -> dict[str, Any] | None:
        """Candidate ``trial_id`` itself (the stored JSON ``params`` are not needed), or ``None``."""
        i = trial_id - self.first_id
        if 0 <= i < len(self.candidates):
            return self._open[i] if i in self._open else dict(self.candidates[i])
        return None

    def examples(self) -> Sequence[Mapping[str, Any]]:
        """Candidates showing every set of parameter names the list sets."""
        if isinstance(self.candidates, (LazyGrid, LazySample)):
            return self.candidates.examples()
        return self.candidates

    def signature(self) -> list[Any]:
        """Every candidate as ``(name, value)`` pairs in name order, in trial order (a grid: the grid
        itself, a sample: its distributions, size and seed, which fix its candidates and their
        order)."""
        described = (
            self.candidates.signature()
            if isinstance(self.candidates, (LazyGrid, LazySample))
            else None
        )
        if described is not None:
            return ["candidates", described]
        return ["candidates", [params_signature(c) for c in self.candidates]]


class GridStrategy(CandidateList):
    """Every candidate of a scikit-learn style ``param_grid``, in :class:`ParameterGrid` order."""

    def __init__(self, param_grid: Any) -> None:
        super().__init__(grid_candidates(param_grid))


class RandomStrategy(CandidateList):
    """``n_iter`` candidates sampled as scikit-learn's :class:`ParameterSampler` samples them."""

    def __init__(
        self, param_distributions: Any, n_iter: int = 10, random_state: Any = None
    ) -> None:
        super().__init__(random_candidates(param_distributions, n_iter, random_state))
