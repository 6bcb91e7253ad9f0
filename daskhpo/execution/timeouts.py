"""What ``trial_timeout`` needs from the cluster: how long tasks have run, and restarting a worker.

A thread cannot be stopped from outside, so a fit that overruns its limit is stopped by killing the
worker process that runs it; its nanny then starts a fresh worker process in the same slot.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from typing import Any

from ..cluster.options import workers_info

__all__ = ["running_for", "kill_worker_process", "WorkerRestart"]

# How long a call to the workers may take before it is given up: a worker whose event loop is
# frozen (a fit stuck in native code that holds the GIL) must not freeze the search with it.
CALL_TIMEOUT = 10.0
# How long a restarted worker may take to come back.
RESTART_WAIT = 120.0
# One restart at a time per cluster (by scheduler address).
_ONE_AT_A_TIME: dict[str, threading.Lock] = {}
_LOCKS_LOCK = threading.Lock()


def _restart_lock(client: Any) -> threading.Lock:
    key = str(getattr(getattr(client, "scheduler", None), "address", id(client)))
    with _LOCKS_LOCK:
        return _ONE_AT_A_TIME.setdefault(key, threading.Lock())


def running_for(prefix: str, dask_worker: Any = None) -> dict[str, float]:
    """On a worker: seconds each executing task whose key starts with ``prefix`` has been running.

    Measured on the worker's own clock (as its heartbeats to the scheduler do), so a slow poll does
    not make a task look older than it is.
    """
    from distributed.metrics import time as now

    t = now()
    out = {}
    for key in list(dask_worker.active_keys):
        ts = dask_worker.state.tasks.get(key)
        if isinstance(key, str) and key.startswith(prefix) and ts is not None and ts.start_time:
            out[key] = t - ts.start_time
    return out


def kill_worker_process(dask_worker: Any = None) -> int | None:
    """In a nanny: kill its worker process at once; the nanny then starts a fresh one.

    Killed from its nanny, a worker stops even when a fit holds its GIL, and the nanny brings it
    back as after any crash. (A graceful ``Client.restart_workers`` first waits for the worker to
    close, which a thread that never returns delays by seconds.)
    """
    import signal

    process = getattr(dask_worker, "process", None)
    pid = getattr(process, "pid", None)
    if pid:
        os.kill(pid, getattr(signal, "SIGKILL", signal.SIGTERM))
    return pid


def _held_only_by(address: str, dask_scheduler: Any = None) -> list[Any]:
    """On the scheduler: the keys whose data only the worker ``address`` holds."""
    ws = dask_scheduler.workers.get(address)
    if ws is None:
        return []
    return [ts.key for ts in ws.has_what if len(ts.who_has) == 1]


def _lost_worker_timeout() -> float:
    import dask
    from dask.utils import parse_timedelta

    value = dask.config.get("distributed.deploy.lost-worker-timeout", "15s")
    return float(parse_timedelta(value, default="s") or 0.0)


class WorkerRestart:
    """Restart one worker process in a thread of its own, so the search goes on meanwhile.

    ``back`` is set once a new worker process has taken the old one's place (or the restart failed:
    ``error`` then says why). ``parked`` holds the units that waited on that worker, to run again.

    A cluster object living in this process (``LocalCluster``, ``SSHCluster``: a ``SpecCluster``)
    closes for good the nanny of a worker still missing ``distributed.deploy.lost-worker-timeout``
    after any removal of it, so two restarts of one worker within that time can lose it. Such a
    worker is started again from the cluster's spec, and the thread keeps watching until the last
    removal it caused is that old; :meth:`join` waits for that, so a search hands back its cluster
    whole.
    """

    def __init__(self, client: Any, address: str, parked: Sequence[Any] = ()) -> None:
        self.client = client
        self.address = address
        self.parked: list[Any] = list(parked)
        self.back = threading.Event()
        self.error: str | None = None
        self._thread = threading.Thread(
            target=self._run, name=f"daskhpo-restart-{address}", daemon=True
        )
        self._thread.start()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    # -- in the thread -------------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            info = workers_info(self.client).get(self.address) or {}
            nanny, name = info.get("nanny"), info.get("name")
            if not nanny:
                raise RuntimeError("it has no nanny to start a new worker process")
            cluster = getattr(self.client, "cluster", None)
            specs = getattr(cluster, "worker_spec", None)
            if not isinstance(specs, dict) or name not in specs:
                cluster = None
            # One restart at a time: what a worker holds alone is copied to a worker that stays up
            # (two workers restarted at once would each copy to the other, then both lose it).
            with _restart_lock(self.client):
                self._evacuate()
                self.client.run(
                    kill_worker_process,
                    nanny=True,
                    workers=[self.address],
                    on_error="raise",
                    callback_timeout=CALL_TIMEOUT,
                )
                last_removal = time.monotonic()
                self._wait_back(nanny, name, cluster)
            self.back.set()
            if cluster is None:
                return
            watch = _lost_worker_timeout() + 1.0
            while time.monotonic() < last_removal + watch:
                if self._heal(cluster, name):
                    last_removal = time.monotonic()
                time.sleep(0.25)
        except Exception as exc:
            self.error = (
                f"daskhpo: could not restart worker {self.address} after a trial timeout "
                f"({type(exc).__name__}: {exc}); the stopped fit keeps its thread until it "
                "returns. Workers started with a nanny (the default of 'dask worker' and of "
                "LocalCluster with processes=True) can be restarted."
            )
        finally:
            self.back.set()

    def _evacuate(self) -> None:
        """Copy what only this worker holds to another worker before it is killed.

        Data that was scattered to it (``client.scatter``) cannot be computed again, and finished
        results of other computations would have to be: both outlive the restart this way. A worker
        whose event loop is frozen cannot hand anything over; the copy is then given up after
        :data:`CALL_TIMEOUT` and the restart goes on (the warning of the timeout says so).
        """
        # A worker restarted a moment ago may not be running yet: wait for one to copy to.
        deadline = time.monotonic() + CALL_TIMEOUT
        while True:
            workers = workers_info(self.client)
            ready = [
                a
                for a, w in workers.items()
                if a != self.address and w.get("status", "running") == "running"
            ]
            if ready or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        if not ready:
            return
        try:
            keys = self.client.run_on_scheduler(_held_only_by, address=self.address)
            if keys:
                # Retiring (without closing) has the Active Memory Manager copy what only this
                # worker holds elsewhere and then drop replicas from *this* worker: a plain
                # replicate() lets the manager drop the new copy again before the restart.
                self.client.sync(
                    self.client.scheduler.retire_workers,
                    workers=[self.address],
                    close_workers=False,
                    remove=False,
                    callback_timeout=CALL_TIMEOUT,
                )
                left = self.client.run_on_scheduler(_held_only_by, address=self.address)
                if left:  # the manager found no worker to take them: copy them directly
                    self.client.sync(
                        self.client.scheduler.replicate,
                        keys=list(left),
                        n=2,
                        delete=False,
                        callback_timeout=CALL_TIMEOUT,
                    )
                self.moved = len(keys)
        except Exception as exc:
            self.evacuate_error = f"{type(exc).__name__}: {exc}"

    moved = 0
    evacuate_error: str | None = None

    def _heal(self, cluster: Any, name: Any) -> bool:
        """If the cluster closed that worker's nanny, start it again (and wait); True if it did."""
        from distributed.core import Status

        if getattr(cluster, "status", None) != Status.running or name in cluster.workers:
            return False
        cluster.scale(len(cluster.worker_spec))  # starts a worker for every spec without one
        deadline = time.monotonic() + RESTART_WAIT
        while name not in cluster.workers and time.monotonic() < deadline:
            time.sleep(0.1)  # the cluster lists a worker once it has started
        if name not in cluster.workers:
            raise TimeoutError(f"the cluster did not start worker {name!r} again")
        return True

    def _wait_back(self, nanny: str, name: Any, cluster: Any) -> None:
        deadline = time.monotonic() + RESTART_WAIT
        while time.monotonic() < deadline:
            workers = workers_info(self.client)
            if any(
                w.get("nanny") == nanny or (name is not None and w.get("name") == name)
                for a, w in workers.items()
                if a != self.address
            ):
                return
            if cluster is not None:
                self._heal(cluster, name)
            time.sleep(0.25)
        raise TimeoutError(f"no new worker came back from nanny {nanny} in {RESTART_WAIT:g} s")
