"""Progress reporting for a running search: a tqdm bar (a widget in Jupyter, text elsewhere).

The bar counts either trials (one step per finished result) or budget (each result advances the bar
by the budget it was evaluated at), so that adaptive searches, whose number of evaluations is not known
in advance but whose total budget is, can show an honest remaining-time estimate. tqdm shows the elapsed
time and estimates the remaining time from the rate so far; the best score so far is shown after it.
"""

from __future__ import annotations

import math
from typing import IO, Any, Literal

from .results import BestSoFar
from .strategies.base import Result

__all__ = ["ProgressBar"]

Unit = Literal["trial", "budget"]


class ProgressBar:
    """Trials (or budget) done of ``total``, with the best score so far; silent unless ``enabled``.

    Parameters
    ----------
    total : int, float or None
        How many trials (``unit="trial"``) or how much budget (``unit="budget"``) the search will run
        in all; None when not known (the bar then counts without a remaining-time estimate).
    enabled : bool
        False shows nothing (``verbose=0``).
    desc : str
        The label in front of the bar, usually the search's class name.
    unit : {"trial", "budget"}
        What one step of the bar is: a finished trial, or one unit of budget (each result then advances
        the bar by ``result.job.budget``).
    file : file-like, optional
        Where a text bar is written (standard error by default). In Jupyter the bar is a widget.
    rule : {"all", "top", "last"}
        Which results the best score shown is taken from: the search's best rule (see
        :mod:`daskhpo.results`), so that the bar names the same best as ``best_score_``.

    Examples
    --------
    >>> bar = ProgressBar(12, enabled=True, desc="GridSearchCV")          # doctest: +SKIP
    >>> bar = ProgressBar(81.0, enabled=True, desc="Hyperband", unit="budget")  # doctest: +SKIP
    """

    def __init__(
        self,
        total: float | None,
        *,
        enabled: bool,
        desc: str = "trials",
        unit: Unit = "trial",
        file: IO[str] | None = None,
        rule: str = "all",
    ) -> None:
        if unit not in ("trial", "budget"):
            raise ValueError(f"unit={unit!r}: use 'trial' or 'budget'.")
        self.unit = unit
        self.tracker = BestSoFar(rule)
        self.n_results = 0
        self.done: float = 0
        self._bar: Any = None
        if enabled:
            from tqdm.auto import tqdm

            if total is not None and unit == "trial":
                total = int(total)
            self._bar = tqdm(
                total=total,
                desc=desc,
                unit=unit,
                dynamic_ncols=True,
                file=file,
            )

    def update(self, result: Result, amount: float | None = None) -> None:
        """Count one finished result.

        ``amount`` is how far the bar moves; by default 1 for ``unit="trial"`` and the result's budget
        for ``unit="budget"`` (0 if the result carries no budget).
        """
        self.n_results += 1
        self.tracker.update(result)
        if amount is None:
            amount = 1 if self.unit == "trial" else (result.job.budget or 0)
        self.done += amount
        if self._bar is not None:
            if self.best > -math.inf:
                # Set before update() so the redraw update() makes (at most every 0.1 s) shows it.
                self._bar.set_postfix(best=f"{self.best:.4g}", refresh=False)
            self._bar.update(amount)

    @property
    def best(self) -> float:
        """The best score so far under the search's rule (``-inf`` before any completed result)."""
        return self.tracker.score

    @property
    def text(self) -> str:
        """The bar as text (empty when disabled): what a terminal shows."""
        return "" if self._bar is None else str(self._bar)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
