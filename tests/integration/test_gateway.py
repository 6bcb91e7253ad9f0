"""gateway://: a real dask-gateway-server (local backend, every address on 127.0.0.1) started here."""

from __future__ import annotations

import base64
import contextlib
import getpass
import json
import time
import urllib.request

import psutil
import pytest
from sklearn.tree import DecisionTreeClassifier

from daskhpo import ClusterError, GridSearchCV, connect
from daskhpo.cluster import workers_info
from tests.integration._clusters import (
    BIN,
    GRID,
    X,
    closed_port,
    free_port,
    local_reference,
    not_the_timeout,
    same_scores,
    start_logged,
    stop_process,
    wait_port,
    y,
)

pytest.importorskip("dask_gateway", reason="gateway:// needs dask-gateway (daskhpo[gateway])")
pytest.importorskip("dask_gateway_server", reason="the test server is dask-gateway-server[local]")


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    work = tmp_path_factory.mktemp("gateway")
    http, api, tcp = free_port(), free_port(), free_port()
    (work / "config.py").write_text(
        f'c.DaskGateway.address = "127.0.0.1:{api}"\n'
        f'c.Proxy.address = "127.0.0.1:{http}"\n'
        f'c.Proxy.tcp_address = "127.0.0.1:{tcp}"\n'
        'c.DaskGateway.backend_class = "dask_gateway_server.backends.local.UnsafeLocalBackend"\n'
        'c.DaskGateway.authenticator_class = "dask_gateway_server.auth.SimpleAuthenticator"\n'
        f'c.LocalClusterConfig.scheduler_cmd = ["{BIN / "dask"}", "scheduler"]\n'
        f'c.LocalClusterConfig.worker_cmd = ["{BIN / "dask"}", "worker"]\n'
        "c.ClusterConfig.worker_cores = 1\nc.ClusterConfig.worker_threads = 1\n"
        f'c.LocalBackend.clusters_directory = "{work / "clusters"}"\n'
    )
    log = work / "server.log"
    server = start_logged(
        [str(BIN / "dask-gateway-server"), "-f", str(work / "config.py")], log, cwd=work
    )
    try:
        try:
            wait_port("127.0.0.1", http, timeout=30)
        except TimeoutError as exc:
            pytest.fail(f"{exc}; the gateway server's log:\n{log.read_text()[-3000:]}")
        deadline = time.monotonic() + 30  # when to stop waiting for the server, not a speed target
        while True:  # the proxy answers before the API behind it is ready
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{http}/api/health", timeout=2) as r:
                    if json.load(r).get("status") == "pass":
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(
                    f"the gateway's API never reported healthy; its log:\n{log.read_text()[-3000:]}"
                )
            time.sleep(0.1)
        yield f"gateway://127.0.0.1:{http}", f"127.0.0.1:{tcp}"
    finally:
        stop_process(server, timeout=3)  # SIGTERM: the server stops the clusters it started
        # The local backend starts each cluster's processes in their own session, in a folder under
        # clusters_directory: end any that outlived the server.
        for proc in psutil.process_iter(["cwd"]):
            if str(proc.info.get("cwd") or "").startswith(str(work / "clusters")):
                with contextlib.suppress(psutil.Error):
                    proc.kill()


def _running(address: str) -> list[str]:
    """Names of the gateway's running clusters, from its REST API."""
    url = address.replace("gateway://", "http://") + "/api/v1/clusters/"
    user = base64.b64encode(f"{getpass.getuser()}:".encode()).decode()  # basic auth's default user
    request = urllib.request.Request(url, headers={"Authorization": f"Basic {user}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return sorted(json.load(response))


def _wait_until_none_run(address: str) -> None:
    deadline = time.monotonic() + 30  # when to stop waiting; the assertion is about what runs
    while _running(address) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _running(address) == []


def test_search_on_a_new_gateway_cluster_matches_local_and_it_is_shut_down(gateway, client):
    address, proxy = gateway
    reference = local_reference(client)
    with connect(f"{address}?proxy_address={proxy}&n_workers=2") as gw_client:
        gw_client.wait_for_workers(2, timeout=60)
        workers = workers_info(gw_client)
        assert all(a.startswith("tls://127.0.0.1:") for a in workers)  # gateway clusters use TLS
        name = gw_client._daskhpo_owned.cluster.name
        assert _running(address) == [name]
        search = GridSearchCV(DecisionTreeClassifier(random_state=0), GRID, cv=3, client=gw_client)
        same_scores(search.fit(X, y).cv_results_, reference)
    _wait_until_none_run(address)  # the cluster connect started was shut down with its client


def test_existing_cluster_by_name_is_used_and_left_running(gateway):
    address, proxy = gateway
    with connect(address, proxy_address=proxy, shutdown_on_close=False, auth="basic") as first:
        name = first._daskhpo_owned.cluster.name
    try:
        assert _running(address) == [name]  # shutdown_on_close=False: still there
        with connect(address, proxy_address=proxy, name=name, n_workers=1) as client:
            client.wait_for_workers(1, timeout=60)
            assert client.submit(sum, [1, 2, 3]).result() == 6
        assert _running(address) == [name]  # connecting by name does not shut it down on close
    finally:
        with connect(address, proxy_address=proxy, name=name, shutdown_on_close=True):
            pass
    _wait_until_none_run(address)


@pytest.mark.timeout(120)  # a hang guard: each call ends on its own, as asserted
def test_unknown_cluster_name_and_closed_port_fail_quickly(gateway):
    address, proxy = gateway
    # Both end with the server's answer or the refusal itself, not by waiting the timeout out.
    with pytest.raises(ClusterError, match="no running cluster named 'nope'") as info:
        connect(address, proxy_address=proxy, name="nope", timeout=10)
    not_the_timeout(info.value, 10)
    with (
        closed_port() as port,
        pytest.raises(
            ClusterError, match="no dask-gateway server answered at http://127.0.0.1"
        ) as info,
    ):
        connect(f"gateway://127.0.0.1:{port}", timeout=10)
    assert "ConnectionRefusedError" in not_the_timeout(info.value, 10)


@pytest.mark.timeout(60)  # a hang guard
def test_refused_port_whose_number_contains_401_is_not_read_as_an_auth_error():
    import socket

    for port in (54010, 54011, 54012, 44010, 44011, 44012, 40100, 40101):
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            s.close()
            continue
        with s, pytest.raises(ClusterError) as info:  # bound, never listening: refused
            connect(f"gateway://127.0.0.1:{port}", timeout=10)
        assert "no dask-gateway server answered" in str(info.value)
        assert "credentials" not in str(info.value)
        return
    pytest.fail("none of the ports tried could be bound")
