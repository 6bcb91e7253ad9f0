"""daskhpo.connect: one way in. Bad targets and options, unreachable schedulers and missing extras fail
clearly and in bounded time; local clusters bind to 127.0.0.1; TLS works for real."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import dask
import pytest
from distributed import Client, Security
from sklearn.tree import DecisionTreeClassifier

from daskhpo import (
    ClusterError,
    GridSearchCV,
    InvalidSearchError,
    InvalidSearchTypeError,
    connect,
    get_client,
)
from daskhpo.cli import main
from daskhpo.cluster import parse_target
from tests.integration._clusters import (
    GRID,
    X,
    closed_port,
    local_reference,
    no_contact,
    same_scores,
    y,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("target", "error", "message"),
    [
        ("foo://x", InvalidSearchError, r"unknown scheme 'foo://'; use one of 'local', 'tcp://"),
        ("10.0.0.5:8786", InvalidSearchError, r"needs a scheme.*as 'tcp://10.0.0.5:8786'"),
        (42, InvalidSearchTypeError, "expected a target string"),
        ("local?n_workers=0", InvalidSearchError, "n_workers=0; give a whole number of at least 1"),
        ("local?n_wrkers=2", InvalidSearchError, "did you mean 'n_workers'"),
        ("local?timeout=-1", InvalidSearchError, "timeout=-1"),
        ("tcp://", InvalidSearchError, "no host"),
        ("tcp://h:1?security=maybe", InvalidSearchTypeError, "security='maybe'"),
        ("tcp://h:1?bogus=1", InvalidSearchError, "unknown option 'bogus'; this target takes"),
        ("ssh://root@h?port=abc", InvalidSearchError, "port='abc'"),
        ("gateway://h?adapt=[3,1]", InvalidSearchError, r"adapt=\[3, 1\]"),
        ("yarn://?worker_memory=lots", InvalidSearchError, "worker_memory='lots'"),
    ],
)
@pytest.mark.timeout(60)  # a hang guard, not a speed target
def test_bad_targets_and_options_are_refused_before_any_cluster_work(target, error, message):
    with no_contact(), pytest.raises(error, match=message) as info:
        connect(target)  # no connection, name lookup or process is tried
    if isinstance(target, str):
        assert repr(target.strip()) in str(info.value) or "cluster=" in str(info.value)


def test_query_options_are_typed_and_keywords_win():
    assert parse_target("ssh://root@a,b?port=2222&known_hosts=&workers_per_host=2") == (
        "ssh",
        "root@a,b",
        {"port": 2222, "known_hosts": None, "workers_per_host": 2},
    )
    assert parse_target(None) == ("local", "", {})
    assert parse_target("local?n_workers=2")[2] == {"n_workers": 2}


@pytest.mark.timeout(120)  # a hang guard: each call gave up on its own timeout, said below
def test_unreachable_scheduler_fails_within_the_timeout():
    with closed_port() as port:
        target = f"tcp://127.0.0.1:{port}"
        with pytest.raises(
            ClusterError, match="no Dask scheduler answered at .* within 2 s"
        ) as info:
            connect(target, timeout=2)
        assert target in str(info.value) and "check the address" in str(info.value).lower()
        # The same through a search's client= string (its own timeout in the query).
        search = GridSearchCV(DecisionTreeClassifier(), {"max_depth": [1, 2]}, cv=2)
        search.set_params(client=f"{target}?timeout=2")
        with pytest.raises(ClusterError, match="within 2 s"):
            search.fit(X, y)


def test_command_line_cluster_errors_exit_2_with_the_message(capsys):
    code = main(["run", str(ROOT / "deploy" / "search.yaml"), "--cluster", "foo://x"])
    assert code == 2
    assert "unknown scheme 'foo://'" in capsys.readouterr().err


_BLOCKED = """
import importlib.abc, json, sys

from tests.integration._clusters import no_contact

class Block(importlib.abc.MetaPathFinder):
    # As if the optional packages were not installed: every import of them fails.
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"asyncssh", "dask_gateway", "dask_kubernetes", "skein"}:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Block())

if __name__ == "__main__":
    from daskhpo import ClusterError, connect

    out = {}
    for target, options in [
        ("ssh://root@127.0.0.1", {}),
        ("gateway://127.0.0.1:8000", {}),
        ("kubernetes://ns/name", {"image": "img"}),
        ("yarn://default", {}),
    ]:
        attempts = []
        try:
            with no_contact() as attempts:
                connect(target, **options)
            out[target] = ["connected?!", attempts]
        except ClusterError as exc:
            out[target] = [str(exc), attempts]
        except AssertionError:  # no_contact: a connection, name lookup or process start was tried
            out[target] = ["contact attempted", attempts]
    print(json.dumps(out))
"""


def test_missing_extras_name_the_pip_command(tmp_path):
    script = tmp_path / "blocked.py"
    script.write_text(textwrap.dedent(_BLOCKED))
    env = {**__import__("os").environ, "PYTHONPATH": str(ROOT)}  # for tests.integration._clusters
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    expected = {
        "ssh://root@127.0.0.1": "pip install 'daskhpo[ssh]'",
        "gateway://127.0.0.1:8000": "pip install 'daskhpo[gateway]'",
        "kubernetes://ns/name": "pip install 'daskhpo[kubernetes]'",
        "yarn://default": "pip install 'daskhpo[yarn]'",
    }
    for target, command in expected.items():
        message, attempts = out[target]
        assert message.startswith(f"cluster={target!r}:"), (message, attempts)
        assert "is not installed" in message and command in message, message
        assert attempts == []  # refused up front, before any connection attempt


_LISTENERS = """
import json, time
import psutil

if __name__ == "__main__":
    from daskhpo import connect
    from daskhpo.cluster import workers_info

    embedded = connect()  # the default: the embedded LocalCluster
    own = connect("local", n_workers=1, security=True)
    me = psutil.Process()
    found = set()
    for proc in [me, *me.children(recursive=True)]:
        for conn in proc.net_connections(kind="inet"):
            if conn.status == psutil.CONN_LISTEN:
                found.add(conn.laddr.ip)
    print(json.dumps({"listen": sorted(found), "tls": own.scheduler.address,
                      "workers": len(workers_info(embedded))}))
    own.close()
"""


def test_local_clusters_listen_on_loopback_only(tmp_path):
    script = tmp_path / "listeners.py"
    script.write_text(textwrap.dedent(_LISTENERS))
    env = {k: v for k, v in __import__("os").environ.items() if k != "DASK_SCHEDULER_ADDRESS"}
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=180, env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["listen"] == ["127.0.0.1"]  # scheduler, dashboards, nannies, workers: all loopback
    assert out["tls"].startswith("tls://127.0.0.1:")
    assert out["workers"] >= 1


@pytest.mark.timeout(180)  # a hang guard for the searches and the connect that must give up
def test_search_over_tls_matches_plain_local(client):
    reference = local_reference(client)
    security = Security.temporary()
    with connect("local", n_workers=2, security=security) as owner:
        address = owner.scheduler.address
        assert address.startswith("tls://127.0.0.1:")
        with connect(address, security=security) as tls_client:  # the tls:// target path
            search = GridSearchCV(
                DecisionTreeClassifier(random_state=0), GRID, cv=3, client=tls_client
            )
            same_scores(search.fit(X, y).cv_results_, reference)
        with pytest.raises(InvalidSearchError, match="needs certificates"):
            connect(address)
        with pytest.raises(InvalidSearchError, match="only a cluster started here can trust"):
            connect(address, security=True)
        # A CA it does not know: the client gives up on its timeout and says so.
        with pytest.raises(ClusterError, match=r"(?s)within 3 s .*certificates it trusts"):
            connect(address, security=Security.temporary(), timeout=3)
        with pytest.raises(InvalidSearchError, match="use the scheduler's tls:// address"):
            connect(address.replace("tls://", "tcp://"), security=security)


def test_a_target_string_client_is_reused_and_closes_its_cluster():
    target = "local?n_workers=1&threads=2"
    search = GridSearchCV(DecisionTreeClassifier(random_state=0), {"max_depth": [1, 2]}, cv=2)
    search.set_params(client=target).fit(X, y)
    client = get_client(target)
    try:
        assert list(client.nthreads().values()) == [2]
        assert get_client(target) is client  # the same cluster for the same string
        cluster = client._daskhpo_owned
        assert cluster.scheduler_address == client.scheduler.address
    finally:
        client.close()
    assert cluster.status.name == "closed"


def test_no_target_follows_the_dask_scheduler_address_config(client):
    """As in a Dask operator DaskJob, whose pod has DASK_SCHEDULER_ADDRESS."""
    from distributed.client import _get_global_client

    assert _get_global_client() is None, "an earlier test left a default distributed client"
    address = client.scheduler.address
    with dask.config.set({"scheduler-address": address}):
        found = connect()
        searches_use = get_client(None)
    try:
        assert isinstance(found, Client) and found is not client
        assert found.scheduler.address == searches_use.scheduler.address == address
        assert get_client(address) is searches_use  # kept and reused, not one client per search
    finally:
        found.close()
        searches_use.close()


def test_cluster_argument_takes_a_cluster_object_or_a_target_and_refuses_both(client):
    from distributed import LocalCluster

    from daskhpo import HyperbandSearchCV

    reference = local_reference(client)
    with LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
    ) as cluster:
        search = GridSearchCV(DecisionTreeClassifier(random_state=0), GRID, cv=3, cluster=cluster)
        same_scores(search.fit(X, y).cv_results_, reference)
        used = get_client(cluster)
        assert used.scheduler.address == cluster.scheduler_address
        assert (
            get_client(cluster) is used
        )  # one client per cluster object, reused by later searches
        used.close()
    both = HyperbandSearchCV(
        DecisionTreeClassifier(), {"max_depth": [1, 2]}, client=client, cluster="local"
    )
    with pytest.raises(InvalidSearchError, match="client=.* and cluster='local' are both set"):
        both.fit(X, y)
    assert "cluster" in GridSearchCV(DecisionTreeClassifier(), GRID).get_params()
