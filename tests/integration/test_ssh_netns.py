"""ssh:// across three "hosts": network namespaces on a private /24 (veth pairs to a bridge, no default
route), each with its own sshd. Scheduler on the first, one worker on each of the others; a worker host
dies (every process killed) or is cut off (its link set down) mid-search, and the search still finishes
with the same results as on a local cluster."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import dask
import pytest

from daskhpo import GridSearchCV, connect
from daskhpo.cluster import workers_info
from tests.helpers import SlowTree
from tests.integration._clusters import (
    PYTHON,
    Sshd,
    X,
    hosts,
    keygen,
    local_reference,
    netns_forbidden,
    same_scores,
    y,
)

pytest.importorskip("asyncssh", reason="ssh:// needs asyncssh (pip install 'daskhpo[ssh]')")

_forbidden = netns_forbidden()
pytestmark = pytest.mark.skipif(_forbidden is not None, reason=_forbidden or "")

GRID = {"max_depth": list(range(1, 13))}
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def three_hosts(tmp_path):
    key = keygen(tmp_path / "user_ed25519")
    servers: list[Sshd] = []
    with hosts(3) as made:
        try:
            for i, (name, address) in enumerate(zip(made.names, made.addresses, strict=True)):
                servers.append(Sshd(tmp_path / f"host{i}", address, 22, key, netns=name).start())
            known_hosts = tmp_path / "known_hosts"
            known_hosts.write_text("".join(s.known_hosts_line() for s in servers))
            yield made, key, known_hosts
        finally:
            for server in servers:
                server.stop()


@pytest.fixture(scope="module")
def reference(client):
    return local_reference(client, GRID)


@pytest.fixture
def launcher(tmp_path):
    """A remote_python that can import this checkout's tests package (the test estimator lives there),
    as a launcher script on each host would."""
    script = tmp_path / "python"
    script.write_text(f'#!/bin/sh\nPYTHONPATH={ROOT} exec {PYTHON} "$@"\n')
    script.chmod(0o755)
    return str(script)


def _search_while(client, fault) -> GridSearchCV:
    """Run a slow search in a thread; call ``fault()`` once three trials are in; return the search."""
    search = GridSearchCV(SlowTree(delay=0.15), GRID, cv=3, client=client)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            search.fit(X, y)
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    planned = len(GRID["max_depth"])
    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 60  # when to stop waiting for 3 trials, not a speed target
    while len(getattr(search, "store_", ())) < 3:
        assert thread.is_alive(), errors
        if time.monotonic() > deadline:
            thread.join(120)
            pytest.fail(f"fewer than 3 of {planned} trials stored after 60 s; errors: {errors}")
        time.sleep(0.02)
    assert len(search.store_) < planned, "the search ended before the fault"
    fault()
    # Read after the fault landed: the store grows only, so fewer than the planned trials now means
    # fewer when it struck. The fault came mid-search, not after it.
    stored_at_fault = len(search.store_)
    assert 3 <= stored_at_fault < planned, f"{stored_at_fault} of {planned} trials at the fault"
    assert thread.is_alive(), "fit had returned before the fault"
    thread.join(120)
    assert not thread.is_alive() and not errors, errors
    return search


def _connect(made, key, known_hosts, launcher):
    client = connect(
        "ssh://root@" + ",".join(made.addresses),
        key_file=key,
        known_hosts=str(known_hosts),
        interface="eth0",
        scheduler_port=8786,
        remote_python=launcher,
        timeout=60,
    )
    try:  # a client left open would keep calling the hosts' addresses after they are gone
        workers = workers_info(client)
        assert client.scheduler.address == f"tcp://{made.addresses[0]}:8786"
        assert sorted(a.split("://")[1].rsplit(":", 1)[0] for a in workers) == made.addresses[1:]
    except BaseException:
        client.close()
        raise
    return client


def test_worker_host_killed_mid_search(three_hosts, reference, launcher):
    made, key, known_hosts = three_hosts
    with _connect(made, key, known_hosts, launcher) as client:
        killed: list[int] = []
        search = _search_while(client, lambda: killed.extend(made.kill(2)))
        assert killed, "host 2 had no processes to kill"
        same_scores(search.cv_results_, reference, params=False)
        assert sorted(r.trial_id for r in search.store_.results()) == list(range(12))
        assert not any(r.failed for r in search.store_.results())
        remaining = workers_info(client)
        assert [a for a in remaining if made.addresses[2] in a] == []  # the dead host is gone


def test_worker_host_cut_off_mid_search(three_hosts, reference, launcher):
    made, key, known_hosts = three_hosts
    # Notice a silent peer sooner than the 30 s default (11 s is distributed's minimum) and drop a
    # worker whose heartbeats stop after 5 s; SSHCluster passes this config to the remote processes.
    config = {
        "distributed.comm.timeouts.tcp": "11s",
        "distributed.comm.timeouts.connect": "5s",
        "distributed.scheduler.worker-ttl": "5s",
    }
    with dask.config.set(config), _connect(made, key, known_hosts, launcher) as client:
        try:
            search = _search_while(client, lambda: made.link(1, up=False))
            same_scores(search.cv_results_, reference, params=False)
            assert sorted(r.trial_id for r in search.store_.results()) == list(range(12))
            assert not any(r.failed for r in search.store_.results())
            remaining = workers_info(client)
            assert [a for a in remaining if made.addresses[1] in a] == []
        finally:
            made.link(1, up=True)  # so the cluster can close its ssh session to that host
