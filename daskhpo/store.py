"""The trial store: an append-only log of finished results, read by ``cv_results_`` and monitors.

Only the in-memory store exists so far; a SQLite store with the same protocol is planned (resume).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Protocol, runtime_checkable

from .strategies.base import Result, Status

__all__ = ["Store", "MemoryStore"]


@runtime_checkable
class Store(Protocol):
    def append(self, result: Result) -> None: ...

    def results(self) -> list[Result]: ...

    def __len__(self) -> int: ...


class MemoryStore:
    """Results kept in a Python list, safe to read from another thread while a search appends."""

    def __init__(self) -> None:
        self._results: list[Result] = []
        self._lock = threading.Lock()

    def append(self, result: Result) -> None:
        with self._lock:
            self._results.append(result)

    def results(self) -> list[Result]:
        with self._lock:
            return list(self._results)

    def __len__(self) -> int:
        return len(self._results)

    def __iter__(self) -> Iterator[Result]:
        return iter(self.results())

    def best(self) -> Result | None:
        """The completed result with the highest score so far."""
        done = [r for r in self.results() if r.status is Status.COMPLETE]
        return max(done, key=lambda r: r.score) if done else None
