"""Fast fits on clusters the user started: undo the nanny's allocator setting in each worker, once.

distributed's nanny starts every worker with ``MALLOC_TRIM_THRESHOLD_=65536``. That setting also
turns off glibc's dynamic mmap threshold, so every array above 128 KB is mmap'd and page-faulted
anew: on this machine, 20,000 allocations of a 1200 x 64 float array took 4.2 s in such a worker and
0.9 s once the thresholds below were set, and a search's many short scikit-learn fits pay the same.
daskhpo's embedded cluster starts its workers without the variable (see ``make_local_cluster``);
clusters the user makes (a plain ``LocalCluster``, SSH, gateway, Kubernetes) get :class:`FastFits`,
a worker plugin registered by the first search on them, which calls glibc's ``mallopt`` in each
worker process, once:

- ``M_MMAP_THRESHOLD`` = 4 MiB: smaller blocks come from the heap again;
- ``M_TRIM_THRESHOLD`` = 16 MiB: up to that much freed memory at the top of the heap is kept for the
  next fit instead of being handed back and faulted in again.

It leaves alone workers the variable was not set in (their glibc adapts by itself), workers with a
``memory_limit`` below 2 GB (they need memory back as soon as it is freed), and systems without glibc.
Opt out with the dask config ``daskhpo.tune-workers: false`` (``DASK_DASKHPO__TUNE_WORKERS=False``).
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Any

__all__ = ["FastFits", "tune_workers", "PLUGIN_NAME"]

PLUGIN_NAME = "daskhpo-fast-fits"
_M_TRIM_THRESHOLD = -1  # glibc's <malloc.h>
_M_MMAP_THRESHOLD = -3
_registered: weakref.WeakSet[Any] = weakref.WeakSet()
_lock = threading.Lock()

try:
    from distributed.diagnostics.plugin import WorkerPlugin
except ImportError:  # pragma: no cover - distributed is a dependency
    WorkerPlugin = object  # type: ignore[assignment,misc]


class FastFits(WorkerPlugin):
    """Set glibc's allocator thresholds in a worker started by a nanny (see the module docstring).

    What it did is kept on the worker as ``worker.daskhpo_allocator``: a dict with ``applied`` and
    either the thresholds set or the reason it left the worker alone.
    """

    name = PLUGIN_NAME

    def __init__(
        self,
        mmap_threshold: int = 4 * 2**20,
        trim_threshold: int = 16 * 2**20,
        min_memory_limit: float = 2e9,
    ) -> None:
        self.mmap_threshold = int(mmap_threshold)
        self.trim_threshold = int(trim_threshold)
        self.min_memory_limit = float(min_memory_limit)

    def setup(self, worker: Any) -> None:
        worker.daskhpo_allocator = self._apply(worker)

    def _apply(self, worker: Any) -> dict[str, Any]:
        if "MALLOC_TRIM_THRESHOLD_" not in os.environ:
            return {"applied": False, "reason": "no MALLOC_TRIM_THRESHOLD_: glibc adapts by itself"}
        limit = getattr(getattr(worker, "memory_manager", None), "memory_limit", None)
        if limit and limit < self.min_memory_limit:
            return {
                "applied": False,
                "reason": f"memory_limit {limit / 1e9:.2f} GB: freed memory goes back at once",
            }
        try:
            import ctypes

            libc = ctypes.CDLL("libc.so.6")
            ok = bool(libc.mallopt(_M_MMAP_THRESHOLD, self.mmap_threshold)) and bool(
                libc.mallopt(_M_TRIM_THRESHOLD, self.trim_threshold)
            )
        except (OSError, AttributeError):
            return {"applied": False, "reason": "no glibc"}
        return {
            "applied": ok,
            "mmap_threshold": self.mmap_threshold,
            "trim_threshold": self.trim_threshold,
        }


def tune_workers(client: Any) -> bool:
    """Register :class:`FastFits` on ``client``'s cluster once (unless opted out); True if it did."""
    import dask

    if not dask.config.get("daskhpo.tune-workers", True):
        return False
    if getattr(getattr(client, "cluster", None), "daskhpo_untrimmed", False):
        return False  # the embedded cluster: nothing to set, and a round trip to every worker saved
    with _lock:
        if client in _registered:
            return False
        _registered.add(client)
    try:
        client.register_plugin(FastFits(), name=PLUGIN_NAME)
    except Exception:  # a cluster that refuses plugins still runs the search, only slower
        return False
    return True
