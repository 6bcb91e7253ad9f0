"""ssh:// on one host: a real sshd on 127.0.0.1 (own host key, user key and known_hosts), then
distributed.SSHCluster through daskhpo.connect / a search's client= string."""

from __future__ import annotations

import pytest
from sklearn.tree import DecisionTreeClassifier

from daskhpo import ClusterError, GridSearchCV, InvalidSearchError, connect, get_client
from daskhpo.cluster import workers_info
from tests.integration._clusters import (
    GRID,
    Sshd,
    X,
    closed_port,
    free_port,
    keygen,
    local_reference,
    no_contact,
    not_the_timeout,
    same_scores,
    y,
)

pytest.importorskip("asyncssh", reason="ssh:// needs asyncssh (pip install 'daskhpo[ssh]')")


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    work = tmp_path_factory.mktemp("sshd")
    key = keygen(work / "user_ed25519")
    server = Sshd(work / "server", "127.0.0.1", free_port(), key).start()
    known_hosts = work / "known_hosts"
    known_hosts.write_text(server.known_hosts_line())
    try:
        yield server, key, known_hosts
    finally:
        server.stop()


@pytest.fixture(scope="module")
def reference(client):
    return local_reference(client)


def test_search_through_an_ssh_target_string_matches_local(sshd, reference):
    server, key, known_hosts = sshd
    target = (
        f"ssh://root@127.0.0.1?port={server.port}&key_file={key}&known_hosts={known_hosts}"
        "&workers_per_host=2&scheduler_port=0"
    )
    search = GridSearchCV(DecisionTreeClassifier(random_state=0), GRID, cv=3, client=target)
    try:
        search.fit(X, y)
        same_scores(search.cv_results_, reference)
        client = get_client(target)  # the same client, kept for the target string
        info = {"workers": workers_info(client)}
        assert client.scheduler.address.startswith("tcp://127.0.0.1:")
        assert len(info["workers"]) == 2
        # Asked for 127.0.0.1: every worker listens there, not on the machine's other addresses.
        assert all(addr.startswith("tcp://127.0.0.1:") for addr in info["workers"])
        cluster = client._daskhpo_owned
        assert type(cluster).__name__ == "SpecCluster" and cluster.name == "SSHCluster"
    finally:
        get_client(target).close()
    assert cluster.status.name == "closed"  # closing the client stopped the remote processes


def test_ssh_cluster_over_tls_with_temporary_certificates(sshd, reference):
    server, key, known_hosts = sshd
    with connect(
        "ssh://root@127.0.0.1",
        port=server.port,
        key_file=key,
        known_hosts=str(known_hosts),
        scheduler_port=0,
        security=True,
    ) as client:
        assert client.scheduler.address.startswith("tls://127.0.0.1:")
        assert all(a.startswith("tls://") for a in workers_info(client))
        search = GridSearchCV(DecisionTreeClassifier(random_state=0), GRID, cv=3, client=client)
        same_scores(search.fit(X, y).cv_results_, reference)


@pytest.mark.timeout(120)  # a hang guard: the call ends on the refusal, as asserted
def test_refused_key_names_authorized_keys_quickly(sshd, tmp_path):
    server, _, known_hosts = sshd
    stranger = keygen(tmp_path / "stranger")
    with pytest.raises(ClusterError, match="authorized_keys") as info:
        connect(
            "ssh://root@127.0.0.1",
            port=server.port,
            key_file=stranger,
            known_hosts=str(known_hosts),
            timeout=20,
        )
    # sshd's refusal, reported as it came: not the 20 s timeout running out.
    assert "PermissionDenied" in not_the_timeout(info.value, 20)
    assert "ssh://root@127.0.0.1" in str(info.value)


def test_unknown_host_key_is_refused_and_says_how_to_trust_it(sshd, tmp_path):
    server, key, _ = sshd
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(ClusterError, match="known_hosts"):
        connect(
            "ssh://root@127.0.0.1",
            port=server.port,
            key_file=key,
            known_hosts=str(empty),
            timeout=20,
        )


@pytest.mark.timeout(120)  # a hang guard: each call ends on its own, as asserted
def test_closed_port_fails_fast_and_bad_options_before_any_connection(tmp_path):
    with (
        closed_port() as port,
        pytest.raises(ClusterError, match="no sshd answered on 127.0.0.1:") as info,
    ):
        connect("ssh://root@127.0.0.1", port=port, known_hosts=None, timeout=10)
    assert "ConnectionRefusedError" in not_the_timeout(info.value, 10)  # the refusal, at once
    # no_contact: any connection, name lookup or process start in these calls fails the test.
    with no_contact(), pytest.raises(InvalidSearchError, match="key_file=.*is not a file"):
        connect("ssh://root@127.0.0.1", key_file=str(tmp_path / "missing"))
    with no_contact(), pytest.raises(InvalidSearchError, match="workers_per_host=0"):
        connect("ssh://root@h1,h2", workers_per_host=0)
    with no_contact(), pytest.raises(InvalidSearchError, match="did you mean 'key_file'"):
        connect("ssh://root@h1", keyfile="x")
    with no_contact(), pytest.raises(InvalidSearchError, match="no host"):
        connect("ssh://root@")
