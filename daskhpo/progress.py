"""Progress reporting for a running search: a tqdm bar (a widget in Jupyter, text elsewhere)."""

from __future__ import annotations

import math
from typing import Any

from .strategies.base import Result

__all__ = ["ProgressBar"]


class ProgressBar:
    """Trials done of total, with the best score so far; silent when ``enabled`` is false."""

    def __init__(self, total: int | None, *, enabled: bool, desc: str = "trials") -> None:
        self._bar: Any = None
        self.best = -math.inf
        if enabled:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, desc=desc, unit="trial", dynamic_ncols=True)

    def update(self, result: Result) -> None:
        if result.score == result.score and result.score > self.best:
            self.best = result.score
        if self._bar is not None:
            self._bar.update(1)
            if self.best > -math.inf:
                self._bar.set_postfix(best=f"{self.best:.4f}", refresh=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
