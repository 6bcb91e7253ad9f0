"""BOHB (Falkner et al. 2018): Hyperband whose new candidates come from a TPE model.

The brackets and rungs are Hyperband's (:class:`~daskhpo.strategies.adaptive.Hyperband`'s table), but a
bracket's candidates are drawn only when it opens, so they can learn from what earlier brackets found:

- results at every budget go to one Optuna study per budget (:class:`OptunaSuggester`, TPE);
- a new candidate comes from the study of the *largest* budget that has at least ``min_points``
  completed results (``min_points`` defaults to the number of searched parameters + 1, as in the paper);
- a share ``random_fraction`` of the candidates (and every candidate while no budget has enough results)
  is drawn at random, which keeps the search exploring.

Brackets open one after the other: the next opens when the open ones have no job to hand out (they wait
at a rung barrier), so workers stay busy while the model gets the results of the brackets before.
A suggested candidate stays "running" in its study (TPE's constant liar) until its first result comes
back, so candidates suggested together do not collapse onto one point. No dask import here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .adaptive import Hyperband, _rankable
from .base import Job, Result
from .bayes import OptunaSpace, OptunaSuggester, base_seed

__all__ = ["BOHB"]


class _Placeholders:
    """Stands in for a candidate source: BOHB fills the candidates in when a bracket opens."""

    distinct_left = None

    def sample(self, n: int) -> list[dict[str, Any]]:
        return [{} for _ in range(n)]


class BOHB(Hyperband):
    """Hyperband with model-based candidates (see the module docstring).

    Parameters
    ----------
    space : dict, list of dicts or OptunaSpace
        The search space (see :class:`~daskhpo.strategies.bayes.OptunaSpace`).
    max_budget, min_budget, reduction_factor
        As for :class:`~daskhpo.strategies.adaptive.Hyperband`.
    random_fraction : float
        Share of candidates drawn at random even once the model has data (1/3 in the paper).
    min_points : int, optional
        Completed results a budget needs before its model is used.
    random_state : int or None
    sampler_options : dict, optional
        Options for Optuna's ``TPESampler``.
    """

    def __init__(
        self,
        space: Any,
        max_budget: Any,
        min_budget: Any = 1,
        reduction_factor: float = 3,
        *,
        random_fraction: float = 1 / 3,
        min_points: int | None = None,
        random_state: Any = None,
        sampler_options: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(_Placeholders(), max_budget, min_budget, reduction_factor)
        self.space = space if isinstance(space, OptunaSpace) else OptunaSpace(space)
        self.seed = base_seed(random_state)
        self.random_fraction = float(random_fraction)
        self._rng = np.random.RandomState(self.seed)
        self._sampler_options = dict(sampler_options or {})
        self._models: dict[Any, OptunaSuggester] = {}
        self._random = OptunaSuggester(self.space, sampler="random", seed=self.seed)
        example = self.space.examples(1)
        self.min_points = (
            int(min_points) if min_points is not None else len(example[0] if example else {}) + 1
        )
        self._opened: set[int] = set()
        self._pending: dict[int, OptunaSuggester] = {}  # trial -> study it is "running" in
        self.n_model_based = 0
        self.model_based_trials: set[int] = set()
        self.n_random = 0

    # -- suggestions -------------------------------------------------------------------------------
    def _model(self, budget: Any) -> OptunaSuggester:
        if budget not in self._models:
            # The model is only asked once it has min_points results: no random start-up phase.
            options = {"n_startup_trials": self.min_points, **self._sampler_options}
            self._models[budget] = OptunaSuggester(
                self.space,
                sampler="tpe",
                sampler_options=options,
                seed=self.seed + 1 + len(self._models),
            )
        return self._models[budget]

    def _completed(self, budget: Any) -> int:
        study = self._models.get(budget)
        if study is None:
            return 0
        return sum(1 for t in study.study.trials if t.state.name == "COMPLETE")

    def _suggest(self, tid: int) -> dict[str, Any]:
        ready = [b for b in self._models if self._completed(b) >= self.min_points]
        if ready and self._rng.random_sample() >= self.random_fraction:
            study = self._models[max(ready)]
            self.n_model_based += 1
            self.model_based_trials.add(tid)
        else:
            study = self._random
            self.n_random += 1
        params = study.ask(tid)
        self._pending[tid] = study
        return params

    def _open(self, bracket: Any) -> None:
        """Draw the candidates of a bracket (after a resume, those that were never told)."""
        for tid in bracket.members[0]:
            if not self._params[tid]:
                self._params[tid].update(self._suggest(tid))
        self._opened.add(bracket.id)

    # -- Strategy protocol ---------------------------------------------------------------------------
    def ask(self, n: int) -> list[Job]:
        jobs: list[Job] = []
        for bracket in self._brackets:
            if len(jobs) >= n:
                break
            if bracket.id not in self._opened and jobs:
                break  # open the next bracket only when the open ones have nothing to give
            self._open(bracket)
            jobs += bracket.ask(n - len(jobs))
        return jobs

    def tell(self, result: Result) -> None:
        tid = result.trial_id
        if not self._params.get(tid):
            # A replayed result for a bracket not opened yet: its candidate is the stored one.
            self._params[tid].update(result.job.params)
            self._opened.add(result.job.bracket)
        study = self._pending.pop(tid, None)
        if study is not None:
            study.tell(tid, None)  # leaves the liar: the result is observed at its own budget below
        super().tell(result)
        values = [float(result.score)] if _rankable(result) else None
        self._model(result.job.budget).observe(dict(result.job.params), values)

    def metadata(self) -> dict[str, Any]:
        meta = super().metadata()
        meta["n_model_based"] = self.n_model_based
        meta["n_random"] = self.n_random
        meta["min_points"] = self.min_points
        return meta
