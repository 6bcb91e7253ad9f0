"""The embedded LocalCluster and ``connect("local", ...)``.

:func:`make_local_cluster` is the ``distributed.LocalCluster`` daskhpo sets up for searches (one
single-threaded worker process per core on 127.0.0.1, glibc's default allocator behaviour in the
workers); :func:`local_client` starts one such cluster per process on first use and keeps it for every
later search; :func:`connect_local` is the ``local`` connector (with options: a new LocalCluster owned
by the client it returns).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from pathlib import Path
from typing import Any

from distributed import Client

from ..exceptions import ClusterError, InvalidSearchTypeError
from .options import (
    check_options,
    forget_announcement,
    owning_client,
    positive_int,
    run_bounded,
    security_option,
    timeout_option,
)

__all__ = [
    "make_local_cluster",
    "local_client",
    "close_local",
    "connect_local",
    "WORKER_ENV_OVERRIDES",
    "SPAWN_HINT",
]

SPAWN_HINT = (
    "Dask worker processes import your main script again when they start; in a script, put the code "
    'that calls fit under `if __name__ == "__main__":`, or pass client= to use a cluster you started.'
)

_lock = threading.Lock()
_local: dict[str, Any] = {}

# distributed's nanny sets MALLOC_TRIM_THRESHOLD_=65536 in every worker it spawns. That turns off glibc's
# dynamic mmap threshold, so each array of a few hundred KB is mmap'd and page-faulted anew: allocating a
# 1200x64 float array 20,000 times took 4.9 s on a worker against 0.24 s without it (this machine), and
# scikit-learn fits of a search ran about 40% slower. Our workers run many short in-memory fits.
_TRIM = "MALLOC_TRIM_THRESHOLD_"
WORKER_ENV_OVERRIDES: dict[str, Any] = {f"distributed.nanny.pre-spawn-environ.{_TRIM}": None}


def make_local_cluster(
    n_workers: int | None = None,
    threads_per_worker: int = 1,
    dashboard_address: str = "127.0.0.1:8787",
    **kwargs: Any,
) -> Any:
    """A ``distributed.LocalCluster`` set up for searches: one single-threaded worker process per core,
    bound to 127.0.0.1, with glibc's default allocator behaviour in the workers (see
    ``WORKER_ENV_OVERRIDES``). Extra keyword arguments go to ``LocalCluster``.
    """
    import dask
    from distributed import LocalCluster

    options: dict[str, Any] = {
        "n_workers": n_workers or os.cpu_count() or 1,
        "threads_per_worker": threads_per_worker,
        "processes": True,
        "host": "127.0.0.1",
        "dashboard_address": dashboard_address,
        "silence_logs": logging.ERROR,
    }
    options.update(kwargs)
    if options.get("memory_limit") not in (None, 0, "auto"):
        # Workers with a memory budget need the nanny's setting, which hands freed memory back to the
        # system; without it their RSS stays high after each block and they pause for memory.
        return LocalCluster(**options)
    # A nanny started earlier in this process (a default LocalCluster) wrote the variable into our own
    # environment, which the new workers would inherit; keep it away from them while they spawn.
    inherited = _set_by_a_nanny()
    saved = os.environ.pop(_TRIM, None) if inherited else None
    try:
        with dask.config.set(WORKER_ENV_OVERRIDES):
            cluster = LocalCluster(**options)
        # Its workers already have what daskhpo's worker plugin would set (daskhpo.cluster.tuning).
        cluster.daskhpo_untrimmed = True  # type: ignore[attr-defined]
        return cluster
    finally:
        if saved is not None:
            os.environ[_TRIM] = saved


def _set_by_a_nanny() -> bool:
    """True when MALLOC_TRIM_THRESHOLD_ is in os.environ but was not in the environment the process
    was started with (so a nanny put it there, not the user). False where that cannot be known."""
    if _TRIM not in os.environ:
        return False
    try:
        initial = Path("/proc/self/environ").read_bytes().split(b"\0")
    except OSError:
        return False
    return not any(entry.startswith(_TRIM.encode() + b"=") for entry in initial)


def local_client() -> Any:
    """The embedded LocalCluster's client, started on first use."""
    with _lock:
        client = _local.get("client")
        if client is not None and client.status == "running":
            return client
        import multiprocessing

        if getattr(multiprocessing.current_process(), "_inheriting", False):
            raise ClusterError(SPAWN_HINT)
        try:
            cluster = make_local_cluster()
        except RuntimeError as exc:
            raise ClusterError(
                f"the embedded local cluster did not start ({exc}). {SPAWN_HINT}"
            ) from exc
        client = Client(cluster, set_as_default=False)
        _local.update(cluster=cluster, client=client)
        atexit.register(close_local)
        return client


def close_local() -> None:
    """Shut the embedded LocalCluster down (it also closes by itself when the process exits)."""
    with _lock:
        client, cluster = _local.pop("client", None), _local.pop("cluster", None)
    if client is not None:
        forget_announcement(client)
        client.close()
    if cluster is not None:
        cluster.close()


def connect_local(target: str, scheme: str, rest: str, options: dict[str, Any]) -> Client:
    """``connect("local", ...)``: see :func:`daskhpo.connect`."""
    check_options(
        target,
        options,
        {"n_workers", "threads", "memory_limit", "dashboard_address", "security"},
    )
    n_workers = positive_int(target, options, "n_workers")
    threads = positive_int(target, options, "threads", 1)
    security = security_option(target, options.get("security"))
    dashboard = options.get("dashboard_address", "127.0.0.1:0")
    if not isinstance(dashboard, str):
        raise InvalidSearchTypeError(
            f"cluster={target!r}: dashboard_address={dashboard!r}; give 'host:port', such as "
            "'127.0.0.1:8787'."
        )
    if not options:
        return local_client()
    extra: dict[str, Any] = {}
    if "memory_limit" in options:
        extra["memory_limit"] = options["memory_limit"]
    if security is not None:
        extra["security"] = security
    timeout = timeout_option(target, options, 60.0)

    def start() -> Any:
        cluster = make_local_cluster(
            n_workers=n_workers,
            threads_per_worker=threads,
            dashboard_address=dashboard,
            **extra,
        )
        try:
            return owning_client(cluster)
        except BaseException:
            cluster.close()
            raise

    def explain(exc: BaseException) -> str:
        return f"the local cluster did not start. {SPAWN_HINT}"

    return run_bounded(target, start, timeout, explain, "the local cluster")
