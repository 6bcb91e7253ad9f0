"""Real processes for the cluster tests: sshd (on loopback or in network namespaces), Dask processes
started from command lines, free ports. Everything started here is stopped by its own ``stop``/context
manager, also when a test fails."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.datasets import load_iris
from sklearn.tree import DecisionTreeClassifier

from daskhpo import GridSearchCV

PYTHON = sys.executable
BIN = Path(PYTHON).parent
SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
X, y = load_iris(return_X_y=True)
GRID = {"max_depth": [1, 2, 3, 4, None], "criterion": ["gini", "entropy"]}


_references: dict[tuple[str, str], dict] = {}


def local_reference(client, grid: dict | None = None) -> dict:
    """cv_results_ of the decision-tree search on the session's local cluster (computed once per grid):
    what every other cluster must reproduce."""
    grid = GRID if grid is None else grid
    key = (client.scheduler.address, repr(grid))
    if key not in _references:
        search = GridSearchCV(DecisionTreeClassifier(random_state=0), grid, cv=3, client=client)
        _references[key] = search.fit(X, y).cv_results_
    return _references[key]


@contextlib.contextmanager
def closed_port(host: str = "127.0.0.1") -> Iterator[int]:
    """A port that refuses connections for as long as the block runs: bound by this process but never
    listening. A port from :func:`free_port` is only free at the instant it is picked; another process
    of the suite (a gateway's scheduler, a worker) may take it before the test connects, and then the
    test talks to that process instead of meeting a refused connection."""
    with socket.socket() as s:
        s.bind((host, 0))
        yield int(s.getsockname()[1])


class ContactAttempted(AssertionError):
    """Raised in place of a connection, a host name lookup or a process start inside
    :func:`no_contact`."""


@contextlib.contextmanager
def no_contact() -> Iterator[list[str]]:
    """Fail on any attempt to reach outside this process inside the block: a socket ``connect`` (which
    asyncio, tornado, distributed's comms, httpx and asyncssh all end in), a host name lookup, or a
    process start (skein's driver, ssh). The attempt raises :class:`ContactAttempted` where it is made,
    and leaving the block fails even when the code under test caught that error (``run_bounded`` turns
    whatever its thread raises into a ClusterError).

    Only this thread and threads started inside the block are watched: threads that already ran (the
    session cluster's client, its event loop) keep their own traffic, which is not the code under test's.
    """
    import threading

    before = {t.ident for t in threading.enumerate()} - {threading.get_ident()}
    attempts: list[str] = []

    def refuse(what: str) -> None:
        if threading.get_ident() in before:
            return
        attempts.append(f"{what} (thread {threading.current_thread().name!r})")
        raise ContactAttempted(f"{what}: expected to be refused before any connection attempt")

    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex
    real_getaddrinfo, real_popen = socket.getaddrinfo, subprocess.Popen.__init__

    def connect(self: socket.socket, address: Any) -> None:
        refuse(f"connect to {address!r}")
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        refuse(f"connect to {address!r}")
        return real_connect_ex(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        refuse(f"name lookup of {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    def popen(self: subprocess.Popen, args: Any, *rest: Any, **kwargs: Any) -> None:
        refuse(f"process start {args!r}")
        real_popen(self, args, *rest, **kwargs)

    socket.socket.connect, socket.socket.connect_ex = connect, connect_ex
    socket.getaddrinfo = getaddrinfo
    subprocess.Popen.__init__ = popen
    try:
        yield attempts
    except BaseException as exc:
        if attempts:  # the block's own error may be the consequence: name the cause first
            raise AssertionError(f"contact attempted where none may be: {attempts}") from exc
        raise
    finally:
        socket.socket.connect, socket.socket.connect_ex = real_connect, real_connect_ex
        socket.getaddrinfo = real_getaddrinfo
        subprocess.Popen.__init__ = real_popen
    assert not attempts, f"contact attempted where none may be: {attempts}"


def not_the_timeout(error: BaseException, timeout: float) -> str:
    """The text of ``error``, checked to be the cause's own error and not :func:`connect`'s "did not
    answer within N s": the call returned as soon as the cause (a refused port, a refused key, no
    credentials) was known instead of waiting the timeout out."""
    text = str(error)
    assert f"within {timeout:g} s" not in text, text
    return text


def free_port(host: str = "127.0.0.1") -> int:
    """A port for a server the test starts (free when picked, released on return)."""
    with closed_port(host) as port:
        return port


def wait_port(host: str, port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {host}:{port} after {timeout} s") from None
            time.sleep(0.05)


def same_scores(a: dict, b: dict, params: bool = True) -> None:
    """Two searches' cv_results_ have the same candidates (unless ``params=False``) and the same
    per-fold and mean test scores."""
    if params:
        assert list(a["params"]) == list(b["params"])
    assert len(a["mean_test_score"]) == len(b["mean_test_score"])
    for key in [k for k in a if k.startswith("split") and k.endswith("_test_score")]:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    np.testing.assert_array_equal(a["mean_test_score"], b["mean_test_score"])


def stop_process(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """Terminate a process started with start_new_session=True and its whole process group
    (SIGTERM, then SIGKILL after ``timeout``)."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # children left behind


def start_logged(
    command: Sequence[str] | str, log: Path, *, cwd: Path | None = None, env: dict | None = None
) -> subprocess.Popen:
    """Start a command in its own session with stdout+stderr going to ``log``."""
    with open(log, "wb") as out:
        return subprocess.Popen(
            command,
            shell=isinstance(command, str),
            executable="/bin/bash" if isinstance(command, str) else None,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            env=env,
            start_new_session=True,
        )


def wait_for_line(log: Path, marker: str, proc: subprocess.Popen, timeout: float = 60.0) -> str:
    """The rest of the first line of ``log`` after ``marker`` (such as ``"Scheduler at:"``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in log.read_text(errors="replace").splitlines():
            if marker in line:
                return line.split(marker, 1)[1].strip()
        if proc.poll() is not None:
            raise RuntimeError(f"process exited {proc.returncode}:\n{log.read_text()[-3000:]}")
        time.sleep(0.05)
    raise TimeoutError(f"no {marker!r} in {log} after {timeout} s:\n{log.read_text()[-3000:]}")


# -- sshd ------------------------------------------------------------------------------------------------


def keygen(path: Path) -> Path:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "daskhpo-test", "-f", str(path)],
        check=True,
    )
    return path


class Sshd:
    """One sshd with its own host key, config, pid file and authorized_keys, optionally run inside a
    network namespace (``netns``)."""

    def __init__(
        self, workdir: Path, address: str, port: int, user_key: Path, netns: str | None = None
    ):
        self.workdir, self.address, self.port, self.netns = workdir, address, port, netns
        workdir.mkdir(parents=True, exist_ok=True)
        self.host_key = keygen(workdir / "host_ed25519")
        authorized = workdir / "authorized_keys"
        authorized.write_text(Path(f"{user_key}.pub").read_text())
        self.pidfile = workdir / "sshd.pid"
        self.log = workdir / "sshd.log"
        self.config = workdir / "sshd_config"
        self.config.write_text(
            f"Port {port}\nListenAddress {address}\nHostKey {self.host_key}\n"
            f"PidFile {self.pidfile}\nAuthorizedKeysFile {authorized}\n"
            "PermitRootLogin prohibit-password\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
            "MaxStartups 100:30:200\nMaxSessions 100\nAcceptEnv *\n"
        )
        self.proc: subprocess.Popen | None = None

    def known_hosts_line(self) -> str:
        host = self.address if self.port == 22 else f"[{self.address}]:{self.port}"
        key_type, key = Path(f"{self.host_key}.pub").read_text().split()[:2]
        return f"{host} {key_type} {key}\n"

    def start(self) -> Sshd:
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # sshd's privilege separation dir
        prefix = ["ip", "netns", "exec", self.netns] if self.netns else []
        self.proc = subprocess.Popen(
            [*prefix, SSHD, "-D", "-f", str(self.config), "-E", str(self.log)],
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            wait_port(self.address, self.port)
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"sshd did not start: {self.log.read_text()[-2000:]}") from None
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None


# -- network namespaces -----------------------------------------------------------------------------------


def netns_forbidden() -> str | None:
    """Why this machine cannot make network namespaces here (None when it can)."""
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns add); this test runs as an ordinary user"
    if shutil.which("ip") is None:
        return "the 'ip' command (Debian package iproute2) is not installed"
    name = f"dhprobe{os.getpid() % 100000}"
    probe = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if probe.returncode != 0:
        return (
            f"this machine forbids network namespaces: 'ip netns add' said {probe.stderr.strip()!r}"
        )
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    return None


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def _free_subnet() -> str:
    """A 10.x.y.0/24 that no interface or route of this machine uses yet."""
    routes = _ip("-4", "route", "show", "table", "all").stdout + _ip("-4", "addr").stdout
    seed = os.getpid()
    for i in range(200):
        candidate = f"10.{200 + (seed + i) % 50}.{(seed // 50 + i) % 250}"
        if f"{candidate}." not in routes:
            return candidate
    raise RuntimeError("no free private /24 found for the test hosts")


class Hosts:
    """``n`` "hosts": one network namespace each, joined by veth pairs to a bridge that holds the
    ``.1`` address of a private /24, host ``i`` at ``.{10 + i}`` on its ``eth0``; no default route, so
    nothing in them reaches beyond that /24."""

    def __init__(self, n: int) -> None:
        tag = f"{os.getpid() % 100000}"
        self.bridge = f"dhb{tag}"
        self.subnet = _free_subnet()
        self.names = [f"dh{tag}h{i}" for i in range(n)]
        self.veths = [f"dhv{tag}h{i}" for i in range(n)]  # host-side ends (at most 15 characters)
        self.addresses = [f"{self.subnet}.{10 + i}" for i in range(n)]
        self.gateway = f"{self.subnet}.1"

    def create(self) -> Hosts:
        try:
            _ip("link", "add", self.bridge, "type", "bridge")
            _ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
            _ip("link", "set", self.bridge, "up")
            for name, veth, address in zip(self.names, self.veths, self.addresses, strict=True):
                peer = f"{veth}p"
                _ip("netns", "add", name)
                _ip("link", "add", veth, "type", "veth", "peer", "name", peer)
                _ip("link", "set", veth, "master", self.bridge)
                _ip("link", "set", veth, "up")
                _ip("link", "set", peer, "netns", name)
                _ip("-n", name, "link", "set", peer, "name", "eth0")
                _ip("-n", name, "addr", "add", f"{address}/24", "dev", "eth0")
                _ip("-n", name, "link", "set", "eth0", "up")
                _ip("-n", name, "link", "set", "lo", "up")
        except BaseException:
            self.destroy()
            raise
        return self

    def pids(self, i: int) -> list[int]:
        out = _ip("netns", "pids", self.names[i], check=False).stdout.split()
        return [int(p) for p in out]

    def kill(self, i: int) -> list[int]:
        """SIGKILL every process of host ``i`` (its Dask processes and its sshd)."""
        pids = self.pids(i)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return pids

    def link(self, i: int, up: bool) -> None:
        _ip("link", "set", self.veths[i], "up" if up else "down")

    def destroy(self) -> None:
        for i, name in enumerate(self.names):
            if name in _ip("netns", "list", check=False).stdout:
                self.kill(i)
                deadline = time.monotonic() + 5
                while self.pids(i) and time.monotonic() < deadline:
                    time.sleep(0.05)
                _ip("netns", "del", name, check=False)
            _ip("link", "del", self.veths[i], check=False)
        _ip("link", "del", self.bridge, check=False)


@contextlib.contextmanager
def hosts(n: int) -> Iterator[Hosts]:
    made = Hosts(n).create()
    try:
        yield made
    finally:
        made.destroy()
