"""``connect("ssh://user@h1,h2,h3", ...)``: :class:`distributed.SSHCluster` (extra ``daskhpo[ssh]``).

The scheduler runs on the first host, workers on the others (on the same host when only one is given);
each host may carry its own sshd port (``h1:2222``). The client returned owns the cluster.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from distributed import Client

from ..exceptions import InvalidSearchError, InvalidSearchTypeError
from .local import WORKER_ENV_OVERRIDES
from .options import (
    check_options,
    is_ip,
    non_negative_int,
    owning_client,
    positive_int,
    require_extra,
    run_bounded,
    security_option,
    timeout_option,
)

__all__ = ["connect_ssh"]

_SSH_OPTIONS = {
    "port",
    "key_file",
    "known_hosts",
    "remote_python",
    "workers_per_host",
    "threads",
    "memory_limit",
    "interface",
    "scheduler_port",
    "dashboard_address",
    "security",
    "connect_options",
    "scheduler_options",
    "worker_options",
}


def _parse_ssh_hosts(target: str, rest: str) -> tuple[str | None, list[tuple[str, int | None]]]:
    user, _, host_text = rest.rpartition("@")
    hosts: list[tuple[str, int | None]] = []
    for item in host_text.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            parts = urlsplit("//" + item)
            host, port = parts.hostname, parts.port
        except ValueError as exc:
            raise InvalidSearchError(
                f"cluster={target!r}: bad host {item!r} ({exc}); write hosts as 'name', "
                "'name:port' or '[ipv6]:port', separated by commas."
            ) from exc
        if not host:
            raise InvalidSearchError(f"cluster={target!r}: bad host {item!r}; give a host name.")
        hosts.append((host, port))
    if not hosts:
        raise InvalidSearchError(
            f"cluster={target!r}: no host; write 'ssh://user@scheduler-host,worker-host,...'."
        )
    return (user or None), hosts


def _ssh_security_config(security: Any) -> dict[str, Any]:
    """Dask config that makes the remote scheduler and workers use ``security``'s certificates.

    SSHCluster ships this process's Dask config to the processes it starts; certificate paths (files
    present on every host) or in-memory PEM text (``Security.temporary()``) both travel that way.
    """
    return {
        "distributed.comm.require-encryption": True,
        "distributed.comm.tls.ca-file": security.tls_ca_file,
        "distributed.comm.tls.scheduler.cert": security.tls_scheduler_cert,
        "distributed.comm.tls.scheduler.key": security.tls_scheduler_key,
        "distributed.comm.tls.worker.cert": security.tls_worker_cert,
        "distributed.comm.tls.worker.key": security.tls_worker_key,
        "distributed.comm.tls.client.cert": security.tls_client_cert,
        "distributed.comm.tls.client.key": security.tls_client_key,
    }


def _ssh_explain(hosts: list[tuple[str, int | None]], port: Any) -> Callable[[BaseException], str]:
    def explain(exc: BaseException) -> str:
        where = ", ".join(dict.fromkeys(f"{h}:{p or port or 22}" for h, p in hosts))
        name = type(exc).__name__
        if name == "PermissionDenied":
            return (
                f"ssh refused the login on {where}: check the user name and that key_file's public "
                "key is in the host's authorized_keys."
            )
        if name in ("HostKeyNotVerifiable",) or "host key" in str(exc).lower():
            return (
                f"the ssh host key of {where} is not in known_hosts: add it (ssh-keyscan HOST >> "
                "~/.ssh/known_hosts) or pass known_hosts= with a file that has it."
            )
        if isinstance(exc, (ConnectionRefusedError, TimeoutError)) or name == "ConnectionLost":
            return f"no sshd answered on {where}: check the hosts, the port= option and that sshd runs."
        if isinstance(exc, OSError):
            return f"ssh to {where} failed: check the host names and the port= option."
        return (
            f"the Dask processes did not start over ssh on {where}: check that remote_python= "
            "names a Python with daskhpo's version of distributed on every host."
        )

    return explain


def connect_ssh(target: str, scheme: str, rest: str, options: dict[str, Any]) -> Client:
    """``connect("ssh://user@h1,h2", ...)``: see :func:`daskhpo.connect`."""
    check_options(target, options, _SSH_OPTIONS)
    user, hosts = _parse_ssh_hosts(target, rest)
    port = options.get("port")
    if port is not None and (isinstance(port, bool) or not isinstance(port, int) or port < 1):
        raise InvalidSearchError(f"cluster={target!r}: port={port!r}; give the sshd port number.")
    workers_per_host = positive_int(target, options, "workers_per_host", 1)
    threads = positive_int(target, options, "threads", 1)
    scheduler_port = options.get("scheduler_port")
    if scheduler_port is not None:
        scheduler_port = non_negative_int(target, options, "scheduler_port", 0)
    timeout = timeout_option(target, options, 120.0)
    key_files = options.get("key_file")
    if isinstance(key_files, (str, os.PathLike)):
        key_files = [key_files]
    keys: list[str] = []
    for key in key_files or []:
        path = Path(os.path.expanduser(os.fspath(key)))
        if not path.is_file():
            raise InvalidSearchError(
                f"cluster={target!r}: key_file={os.fspath(key)!r} is not a file; give the path of "
                "the private key whose public key is in the hosts' authorized_keys."
            )
        keys.append(str(path))
    security = security_option(target, options.get("security"))
    for name in ("connect_options", "scheduler_options", "worker_options"):
        if not isinstance(options.get(name, {}), Mapping):
            raise InvalidSearchTypeError(
                f"cluster={target!r}: {name}={options[name]!r}; give a mapping of keyword arguments."
            )
    require_extra(target, "ssh")

    base: dict[str, Any] = {"connect_timeout": timeout}
    if user:
        base["username"] = user
    if port is not None:
        base["port"] = port
    if keys:
        base["client_keys"] = keys
    if "known_hosts" in options:
        known = options["known_hosts"]
        base["known_hosts"] = os.path.expanduser(known) if isinstance(known, str) else known
    base.update(options.get("connect_options", {}))
    if len(hosts) == 1:
        hosts = hosts * 2  # scheduler and workers on the one host
    per_host = [{**base, **({"port": p} if p else {})} for _, p in hosts]
    connect_options: Any = per_host if any(p for _, p in hosts) else base

    scheduler_options: dict[str, Any] = {}
    worker_options: dict[str, Any] = {
        "n_workers": workers_per_host,
        "nthreads": threads,
    }
    interface = options.get("interface")
    scheduler_host = hosts[0][0]
    worker_hosts = {h for h, _ in hosts[1:]}
    # Bind to the address the user named (never every interface) where that is known here.
    if interface:
        scheduler_options["interface"] = interface
        worker_options["interface"] = interface
    else:
        if is_ip(scheduler_host):
            scheduler_options["host"] = scheduler_host
        if len(worker_hosts) == 1 and is_ip(next(iter(worker_hosts))):
            worker_options["host"] = next(iter(worker_hosts))
    if scheduler_port is not None:
        scheduler_options["port"] = scheduler_port
    if "dashboard_address" in options:
        scheduler_options["dashboard_address"] = options["dashboard_address"]
    elif is_ip(scheduler_host) and not interface:
        scheduler_options["dashboard_address"] = f"{scheduler_host}:8787"
    if "memory_limit" in options:
        worker_options["memory_limit"] = options["memory_limit"]
    if security is not None:
        scheduler_options["protocol"] = "tls"
    scheduler_options.update(options.get("scheduler_options", {}))
    worker_options.update(options.get("worker_options", {}))
    remote_python = options.get("remote_python") or sys.executable

    def start() -> Any:
        import dask
        from distributed import SSHCluster

        config = {**WORKER_ENV_OVERRIDES}
        if security is not None:
            config.update(_ssh_security_config(security))
        with dask.config.set(config):
            cluster = SSHCluster(
                [h for h, _ in hosts],
                connect_options=connect_options,
                worker_options=worker_options,
                scheduler_options=scheduler_options,
                remote_python=remote_python,
                security=security,
            )
        client = owning_client(cluster)
        try:
            # SSHCluster returns once each worker process has started; wait until all registered.
            left = max(1.0, timeout - (time.monotonic() - began))
            client.wait_for_workers(workers_per_host * (len(hosts) - 1), timeout=left)
        except BaseException:
            client.close()
            raise
        return client

    began = time.monotonic()
    return run_bounded(target, start, timeout, _ssh_explain(hosts, port), "the ssh cluster")
