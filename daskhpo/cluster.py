"""Finding the Dask cluster a search runs on.

``get_client(None)`` returns, in order: the active ``distributed`` client if there is one, else an
embedded :class:`distributed.LocalCluster` started once per process (one single-threaded worker process
per core, bound to 127.0.0.1) and reused by every later search.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
from pathlib import Path
from typing import Any

from .exceptions import ClusterError, InvalidSearchTypeError

__all__ = ["get_client", "local_client", "make_local_cluster", "close_local", "dashboard_link"]

logger = logging.getLogger("daskhpo")

_SPAWN_HINT = (
    "Dask worker processes import your main script again when they start; in a script, put the code "
    'that calls fit under `if __name__ == "__main__":`, or pass client= to use a cluster you started.'
)

_lock = threading.Lock()
_local: dict[str, Any] = {}
_announced: set[str] = set()
_by_address: dict[str, Any] = {}


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
    # A nanny started earlier in this process (a default LocalCluster) wrote the variable into our own
    # environment, which the new workers would inherit; keep it away from them while they spawn.
    inherited = _set_by_a_nanny()
    saved = os.environ.pop(_TRIM, None) if inherited else None
    try:
        with dask.config.set(WORKER_ENV_OVERRIDES):
            return LocalCluster(**options)
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
    from distributed import Client

    with _lock:
        client = _local.get("client")
        if client is not None and client.status == "running":
            return client
        import multiprocessing

        if getattr(multiprocessing.current_process(), "_inheriting", False):
            raise ClusterError(_SPAWN_HINT)
        try:
            cluster = make_local_cluster()
        except RuntimeError as exc:
            raise ClusterError(
                f"the embedded local cluster did not start ({exc}). {_SPAWN_HINT}"
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
        _announced.discard(dashboard_link(client) or "")
        client.close()
    if cluster is not None:
        cluster.close()


def dashboard_link(client: Any) -> str | None:
    try:
        return str(client.dashboard_link)
    except Exception:
        return None


def _announce(client: Any, verbose: int) -> None:
    link = dashboard_link(client)
    if not link or link in _announced:
        return
    _announced.add(link)
    logger.info("daskhpo: Dask dashboard at %s", link)
    if verbose:
        print(f"Dask dashboard: {link}", file=sys.stderr)


def get_client(client: Any = None, *, verbose: int = 0, timeout: float = 30.0) -> Any:
    """Return the ``distributed.Client`` a search should use.

    Parameters
    ----------
    client : distributed.Client, str or None
        A client, a scheduler address such as ``"tcp://10.0.0.5:8786"``, or None for the active client
        or else the embedded LocalCluster.
    verbose : int
        When positive, the dashboard link is also printed (once per cluster).
    timeout : float
        Seconds to wait for a scheduler address to answer.
    """
    from distributed import Client, default_client

    if client is None:
        try:
            found = default_client()
        except ValueError:
            found = local_client()
    elif isinstance(client, Client):
        found = client
    elif isinstance(client, str):
        found = _by_address.get(client)
        if found is None or found.status != "running":
            try:
                found = Client(client, timeout=timeout, set_as_default=False)
            except (OSError, TimeoutError) as exc:
                raise ClusterError(
                    f"client={client!r}: no Dask scheduler answered within {timeout:g} s ({exc}). "
                    "Check the address and that the scheduler is running, or pass client=None to use "
                    "the embedded local cluster."
                ) from exc
            _by_address[client] = found
    else:
        raise InvalidSearchTypeError(
            f"client={client!r}: expected a distributed.Client, a scheduler address string such as "
            "'tcp://host:8786', or None for the embedded local cluster."
        )
    if found.status != "running":
        raise ClusterError(f"client={found!r} is {found.status}: pass a running client.")
    _announce(found, verbose)
    return found
