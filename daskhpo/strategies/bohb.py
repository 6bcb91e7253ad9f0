"""BOHB (Falkner et al. 2018): Hyperband whose new candidates come from a TPE model.

BOHB is :class:`~daskhpo.strategies.adaptive.Hyperband` over a :class:`TPESource`, as Syne Tune's BOHB is
its ASHA scheduler with a KDE searcher: Hyperband decides the brackets, rungs and promotions, the source
decides which configuration each new trial gets. Because the source learns
(:class:`~daskhpo.strategies.adaptive.LearningSource`), a bracket draws its candidates only when it
opens, and the next bracket opens when the open ones have no job to hand out (they wait at a rung
barrier), so workers stay busy while the model gets the results of the brackets before.

:class:`TPESource`:

- results at every budget go to one Optuna study per budget (:class:`OptunaSuggester`, TPE);
- a new candidate comes from the study of the *largest* budget that has at least ``min_points``
  completed results (``min_points`` defaults to the number of searched parameters + 1, as in the paper);
- a share ``random_fraction`` of the candidates (and every candidate while no budget has enough results)
  is drawn at random, which keeps the search exploring.

A suggested candidate stays "running" in its study (TPE's constant liar) until its first result comes
back, so candidates suggested together do not collapse onto one point. No dask import here; everything
pickles (see :mod:`daskhpo.strategies.bayes`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..space import as_seed
from ..validation import check
from .adaptive import Hyperband, _rankable
from .base import Result
from .bayes import OptunaSpace, OptunaSuggester

__all__ = ["BOHB", "TPESource"]


class TPESource:
    """Candidates from TPE models fitted per budget on the results told so far (see the module docstring).

    A :class:`~daskhpo.strategies.adaptive.LearningSource`: ``sample`` needs the trial ids the candidates
    become (each stays a running trial of the study it came from until its first result is told).

    Parameters
    ----------
    space : dict, list of dicts or OptunaSpace
        The search space (see :class:`~daskhpo.strategies.bayes.OptunaSpace`).
    random_fraction : float
        Share of candidates drawn at random even once a model has data (1/3 in the paper).
    min_points : int, optional
        Completed results a budget needs before its model is used.
    random_state : int or None
    sampler_options : dict, optional
        Options for Optuna's ``TPESampler``.
    """

    distinct_left = None

    def __init__(
        self,
        space: Any,
        *,
        random_fraction: float = 1 / 3,
        min_points: int | None = None,
        random_state: Any = None,
        sampler_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.space = space if isinstance(space, OptunaSpace) else OptunaSpace(space)
        self.seed = as_seed(random_state)
        self.random_fraction = float(check("random_fraction", random_fraction))
        self.sampler_options = dict(check("sampler_options", sampler_options) or {})
        check("min_points", min_points)
        example = self.space.examples(1)
        self.min_points = (
            int(min_points) if min_points is not None else len(example[0] if example else {}) + 1
        )
        self._rng = np.random.RandomState(self.seed)
        self._random = OptunaSuggester(self.space, sampler="random", seed=self.seed)
        self._models: dict[Any, OptunaSuggester] = {}  # budget -> its study
        self._pending: dict[int, OptunaSuggester] = {}  # trial -> study it is "running" in
        self.n_model_based = 0
        self.n_random = 0
        self.model_based_trials: set[int] = set()

    def _model(self, budget: Any) -> OptunaSuggester:
        if budget not in self._models:
            # The model is only asked once it has min_points results: no random start-up phase.
            options = {"n_startup_trials": self.min_points, **self.sampler_options}
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

    def sample(self, n: int, trial_ids: Sequence[int] | None = None) -> list[dict[str, Any]]:
        """Candidates for the trials ``trial_ids`` (``n`` of them), given what was told so far."""
        if trial_ids is None or len(trial_ids) != n:
            raise ValueError(
                f"TPESource.sample(n={n}, trial_ids={trial_ids!r}): give the ids of the n trials the "
                "candidates become (their results are matched to the suggestions by trial id)."
            )
        out = []
        for tid in trial_ids:
            ready = [b for b in self._models if self._completed(b) >= self.min_points]
            if ready and self._rng.random_sample() >= self.random_fraction:
                study = self._models[max(ready)]
                self.n_model_based += 1
                self.model_based_trials.add(tid)
            else:
                study = self._random
                self.n_random += 1
            out.append(study.ask(tid))
            self._pending[tid] = study
        return out

    def tell(self, result: Result) -> None:
        """Add a result to the model of its budget (and end its suggestion's running trial)."""
        study = self._pending.pop(result.trial_id, None)
        if study is not None:
            study.tell(result.trial_id, None)  # leaves the liar: observed at its own budget below
        values = [float(result.score)] if _rankable(result) else None
        self._model(result.job.budget).observe(dict(result.job.params), values)

    def restore(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """A stored candidate with the space's own objects in place of their JSON stand-ins."""
        return self.space.restore(params)

    def signature(self) -> list[Any]:
        """The settings that decide the suggestions (the suggestions depend on the results too)."""
        return [
            "tpe",
            self.space.describe(),
            self.seed,
            self.random_fraction,
            self.min_points,
            sorted((k, repr(v)) for k, v in self.sampler_options.items()),
        ]

    def metadata(self) -> dict[str, Any]:
        return {
            "n_model_based": self.n_model_based,
            "n_random": self.n_random,
            "min_points": self.min_points,
        }


class BOHB(Hyperband):
    """Hyperband over a :class:`TPESource` (see the module docstring).

    Parameters
    ----------
    space : dict, list of dicts or OptunaSpace
        The search space (see :class:`~daskhpo.strategies.bayes.OptunaSpace`).
    max_budget, min_budget, reduction_factor
        As for :class:`~daskhpo.strategies.adaptive.Hyperband`.
    random_fraction, min_points, random_state, sampler_options
        As for :class:`TPESource`.
    """

    source: TPESource

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
        source = TPESource(
            space,
            random_fraction=random_fraction,
            min_points=min_points,
            random_state=random_state,
            sampler_options=sampler_options,
        )
        super().__init__(source, max_budget, min_budget, reduction_factor)

    @property
    def space(self) -> OptunaSpace:
        return self.source.space

    @property
    def seed(self) -> int:
        return self.source.seed

    @property
    def random_fraction(self) -> float:
        return self.source.random_fraction

    @property
    def min_points(self) -> int:
        return self.source.min_points

    @property
    def n_model_based(self) -> int:
        return self.source.n_model_based

    @property
    def n_random(self) -> int:
        return self.source.n_random

    @property
    def model_based_trials(self) -> set[int]:
        """Trials whose candidate came from a model (the others were drawn at random)."""
        return self.source.model_based_trials
