"""YARN: a skein application whose services run ``dask scheduler`` and ``dask worker``.

``dask-yarn`` does not import with current ``distributed`` and dask-gateway dropped its YARN backend, so
daskhpo talks to YARN through `skein <https://jcristharif.com/skein/>`_ (0.8.2, which imports with current
``grpcio``/``protobuf``) directly, the way dask-yarn did underneath:

- :func:`application_spec` describes the application: a ``dask.scheduler`` service (one container,
  ``python -m dask scheduler --preload daskhpo.cluster.yarn``) and a ``dask.worker`` service
  (``n_workers`` containers, ``python -m dask worker ADDRESS``), each bound to its node's address (``$NM_HOST``, which
  YARN's NodeManager sets in every container), with an optional packed environment (conda-pack or
  venv-pack archive) that YARN unpacks in each container, and optional TLS certificates shipped as
  application files (skein uploads them to the application's private staging folder).
- The scheduler's preload (:func:`dask_setup`, this module) publishes the scheduler's address in the
  application's key-value store (key ``dask.scheduler``); each worker container reads it with
  ``python -m daskhpo.cli.yarn scheduler-address`` (which waits for it, with
  :func:`scheduler_address`) before starting.
- ``connect("yarn://QUEUE", ...)`` submits that spec with ``skein.Client``, waits for the address and
  returns a client; closing the client shuts the application down.
- ``python -m daskhpo.cli.yarn spec ... > dask.yaml`` prints the spec for ``skein application
  submit``.

Nothing here needs Hadoop until the application is submitted: the spec is a plain mapping in skein's
format, checked with skein's own model (:class:`skein.ApplicationSpec`).
"""

from __future__ import annotations

import os
import shlex
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..exceptions import ClusterError, InvalidSearchError, InvalidSearchTypeError
from .options import (
    check_options,
    owning_client,
    positive_int,
    require_extra,
    run_bounded,
    security_option,
    timeout_option,
)

__all__ = [
    "application_spec",
    "tls_files",
    "connect_yarn",
    "dask_setup",
    "scheduler_address",
    "SCHEDULER_KEY",
]

SCHEDULER_KEY = "dask.scheduler"
DASHBOARD_KEY = "dask.dashboard"


def tls_files(security: Any, directory: str | os.PathLike[str]) -> dict[str, str]:
    """Certificate files for the application's containers: ``{name in container: local path}``.

    Paths in ``security`` are used as they are; in-memory PEM text (``Security.temporary()``) is
    written to ``directory`` (files readable by their owner only). Names: ``ca.pem``,
    ``scheduler-cert.pem``, ``scheduler-key.pem``, ``worker-cert.pem``, ``worker-key.pem``.
    """
    wanted = {
        "ca.pem": security.tls_ca_file,
        "scheduler-cert.pem": security.tls_scheduler_cert,
        "scheduler-key.pem": security.tls_scheduler_key,
        "worker-cert.pem": security.tls_worker_cert,
        "worker-key.pem": security.tls_worker_key,
    }
    missing = [name for name, value in wanted.items() if not value]
    if missing:
        raise InvalidSearchError(
            f"security= lacks {', '.join(missing)} for the YARN containers: pass "
            "distributed.Security.temporary() (or True), or a Security with CA, scheduler and worker "
            "certificates and keys."
        )
    out: dict[str, str] = {}
    for name, value in wanted.items():
        if "\n" in value:
            path = Path(directory) / name
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(value)
            out[name] = str(path.resolve())
        else:
            out[name] = str(Path(value).expanduser().resolve())
    return out


def _tls_args(role: str) -> str:
    return f"--tls-ca-file ca.pem --tls-cert {role}-cert.pem --tls-key {role}-key.pem"


def application_spec(
    *,
    name: str = "daskhpo",
    queue: str = "default",
    environment: str | None = None,
    python: str | None = None,
    n_workers: int = 2,
    threads: int = 1,
    worker_vcores: int = 1,
    worker_memory: str = "2 GiB",
    scheduler_vcores: int = 1,
    scheduler_memory: str = "2 GiB",
    tls: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The skein application spec (a plain mapping in skein's format) of a daskhpo Dask cluster.

    Parameters
    ----------
    name, queue : str
        YARN application name and queue.
    environment : str, optional
        A packed Python environment with daskhpo installed (``conda-pack`` or ``venv-pack`` archive,
        a local path or an ``hdfs://`` URL); YARN unpacks it as ``environment/`` in each container.
    python : str, optional
        The Python to run in the containers (default ``environment/bin/python`` with an environment,
        else ``python3`` on the nodes' PATH).
    n_workers, threads : int
        Worker containers, and threads per worker.
    worker_vcores, worker_memory, scheduler_vcores, scheduler_memory
        YARN container resources; the worker's Dask memory limit is its container memory.
    tls : mapping, optional
        Certificate files from :func:`tls_files`: the scheduler listens on ``tls://`` and every
        process presents its role's certificate.

    Returns
    -------
    dict
        Accepted by :meth:`skein.ApplicationSpec.from_dict` and ``skein application submit``.
    """
    from dask.utils import parse_bytes

    opts = {
        "n_workers": n_workers,
        "threads": threads,
        "worker_vcores": worker_vcores,
        "scheduler_vcores": scheduler_vcores,
    }
    for key in opts:
        positive_int("", opts, key)
    memory: dict[str, int] = {}
    for key, value in (
        ("worker_memory", worker_memory),
        ("scheduler_memory", scheduler_memory),
    ):
        try:
            memory[key] = parse_bytes(value) if isinstance(value, str) else int(value)
        except (ValueError, TypeError) as exc:
            raise InvalidSearchError(
                f"{key}={value!r}: give a size such as '4 GiB' ({exc})."
            ) from exc
        if memory[key] < 2**27:
            raise InvalidSearchError(f"{key}={value!r}: give at least 128 MiB.")
    for key, value in (("name", name), ("queue", queue)):
        if not isinstance(value, str) or not value.strip():
            raise InvalidSearchError(f"{key}={value!r}: give a non-empty string.")
    mib = {key: value // 2**20 for key, value in memory.items()}  # skein counts memory in MiB
    files: dict[str, Any] = {}
    activate = ""
    if environment is not None:
        if "://" not in environment:
            path = Path(environment).expanduser()
            if not path.is_file():
                raise InvalidSearchError(
                    f"environment={environment!r} is not a file; give a conda-pack or venv-pack "
                    "archive (.tar.gz) of an environment with daskhpo installed."
                )
            environment = str(path.resolve())
        files["environment"] = {"source": environment, "type": "archive"}
        activate = "source environment/bin/activate\n"
    python = python or ("environment/bin/python" if environment is not None else "python3")
    py = shlex.quote(python)
    scheduler_files = dict(files)
    worker_files = dict(files)
    scheduler_tls = worker_tls = ""
    if tls is not None:
        for role, target in (("scheduler", scheduler_files), ("worker", worker_files)):
            target["ca.pem"] = {"source": tls["ca.pem"], "type": "file"}
            for part in ("cert", "key"):
                target[f"{role}-{part}.pem"] = {
                    "source": tls[f"{role}-{part}.pem"],
                    "type": "file",
                }
        scheduler_tls = " --protocol tls " + _tls_args("scheduler")
        worker_tls = " " + _tls_args("worker")
    scheduler_script = (
        f'{activate}{py} -m dask scheduler --host "$NM_HOST" --port 0 '
        f'--dashboard-address "$NM_HOST:0" --preload daskhpo.cluster.yarn{scheduler_tls}\n'
    )
    worker_script = (
        f"set -e\n{activate}"
        f'DASK_SCHEDULER_ADDRESS="${{DASK_SCHEDULER_ADDRESS:-$({py} -m daskhpo.cli.yarn scheduler-address)}}"\n'
        f'{py} -m dask worker "$DASK_SCHEDULER_ADDRESS" --host "$NM_HOST" --nthreads {threads} '
        f"--nworkers 1 --memory-limit {memory['worker_memory']} "
        f'--dashboard-address "$NM_HOST:0"{worker_tls}\n'
    )
    return {
        "name": name,
        "queue": queue,
        "tags": ["daskhpo"],
        "services": {
            "dask.scheduler": {
                "instances": 1,
                "resources": {
                    "vcores": scheduler_vcores,
                    "memory": mib["scheduler_memory"],
                },
                "files": scheduler_files,
                "script": scheduler_script,
            },
            "dask.worker": {
                "instances": n_workers,
                "depends": ["dask.scheduler"],
                "resources": {"vcores": worker_vcores, "memory": mib["worker_memory"]},
                "files": worker_files,
                "script": worker_script,
            },
        },
    }


# -- inside the containers ------------------------------------------------------------------------------


def _in_skein_container() -> bool:
    return bool(
        os.environ.get("SKEIN_APPLICATION_ID") and os.environ.get("SKEIN_APPMASTER_ADDRESS")
    )


def dask_setup(scheduler: Any) -> None:
    """Scheduler preload: publish the scheduler's address in the skein application's key-value store.

    Outside a skein container (a local run of the same command) it does nothing.
    """
    if not _in_skein_container():
        return
    import skein

    app = skein.ApplicationClient.from_current()
    app.kv[SCHEDULER_KEY] = scheduler.address.encode()
    port = getattr(scheduler, "services", {}).get("dashboard")
    if port is not None:
        host = scheduler.address.split("://", 1)[-1].rsplit(":", 1)[0]
        app.kv[DASHBOARD_KEY] = f"http://{host}:{port.port}".encode()


def scheduler_address() -> str:
    """(Inside a worker container.) Wait for the scheduler's address in the application's key-value
    store and return it.

    Raises
    ------
    ClusterError
        Outside a skein container (``SKEIN_APPLICATION_ID`` is not set).
    """
    if not _in_skein_container():
        raise ClusterError(
            "not inside a skein container (SKEIN_APPLICATION_ID is not set); set "
            "DASK_SCHEDULER_ADDRESS to the scheduler's address instead."
        )
    import skein

    app = skein.ApplicationClient.from_current()
    return str(app.kv.wait(SCHEDULER_KEY).decode())


# -- yarn:// ----------------------------------------------------------------------------------------------

# Options that describe a new application (refused with application_id=), then all yarn:// takes.
_SPEC_OPTIONS = (
    "environment",
    "python",
    "n_workers",
    "threads",
    "worker_vcores",
    "worker_memory",
    "scheduler_vcores",
    "scheduler_memory",
    "name",
)
_YARN_OPTIONS = {*_SPEC_OPTIONS, "application_id", "security"}


class _Application:
    """Closes a skein application (and its driver) when the client closes."""

    def __init__(self, skein_client: Any, app: Any, owned: bool, tempdir: Any) -> None:
        self.skein_client, self.app, self.owned, self.tempdir = (
            skein_client,
            app,
            owned,
            tempdir,
        )

    def close(self) -> None:
        try:
            if self.owned:
                self.app.shutdown("SUCCEEDED")
        finally:
            self.skein_client.close()
            if self.tempdir is not None:
                self.tempdir.cleanup()


def _yarn_explain(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, FileNotFoundError) or "JAVA_HOME" in text or "java" in text.lower():
        return (
            "skein could not start its driver: it needs Hadoop's 'yarn' command on PATH (and "
            "HADOOP_CONF_DIR, Java); run this on a Hadoop edge node, or submit the spec from "
            "'python -m daskhpo.cli.yarn spec' there with 'skein application submit'."
        )
    if "NotRunning" in type(exc).__name__ or "not running" in text.lower():
        return (
            "the YARN application is not running: look at 'yarn logs -applicationId ID' for why "
            "the scheduler container stopped."
        )
    if isinstance(exc, TimeoutError):
        return (
            "the Dask scheduler's address did not appear in the application's key-value store: check "
            "the queue has room and the containers' logs (yarn logs -applicationId ID)."
        )
    return "the YARN application did not give a Dask scheduler."


def connect_yarn(target: str, scheme: str, rest: str, options: dict[str, Any]) -> Any:
    """``connect("yarn://queue", ...)``: see :func:`daskhpo.connect`."""
    check_options(target, options, _YARN_OPTIONS)
    timeout = timeout_option(target, options, 300.0)
    queue = rest.strip("/") or "default"
    app_id = options.get("application_id")
    security = security_option(target, options.get("security"), may_create=app_id is None)
    if app_id is not None and not isinstance(app_id, str):
        raise InvalidSearchTypeError(
            f"cluster={target!r}: application_id={app_id!r}; give an id such as "
            "'application_1700000000000_0042'."
        )
    spec_options = {k: options[k] for k in _SPEC_OPTIONS if k in options}
    if app_id is not None and spec_options:
        raise InvalidSearchError(
            f"cluster={target!r}: {', '.join(sorted(spec_options))} apply to a new application only; "
            "drop application_id= to start one."
        )
    require_extra(target, "yarn")
    import skein

    tempdir = None
    spec = None
    if app_id is None:
        tls = None
        if security is not None:
            tempdir = tempfile.TemporaryDirectory(prefix="daskhpo-yarn-tls-")
            tls = tls_files(security, tempdir.name)
        try:
            spec = skein.ApplicationSpec.from_dict(
                application_spec(queue=queue, tls=tls, **spec_options)
            )
        except (InvalidSearchError, TypeError, ValueError) as exc:
            if tempdir is not None:
                tempdir.cleanup()
            raise InvalidSearchError(f"cluster={target!r}: {exc}") from exc

    class _SkeinClient(skein.Client):
        # skein 0.8.2's __del__ reads _proc, which a failed __init__ never set (noise at exit).
        _proc = None

    def start() -> Any:
        skein_client = _SkeinClient()
        try:
            app = (
                skein_client.connect(app_id)
                if spec is None
                else skein_client.submit_and_connect(spec)
            )
            address = app.kv.wait(SCHEDULER_KEY).decode()
            closer = _Application(skein_client, app, spec is not None, tempdir)
            return owning_client(address, closer, security=security, timeout=timeout)
        except BaseException:
            skein_client.close()
            raise

    try:
        return run_bounded(target, start, timeout, _yarn_explain, "YARN")
    except BaseException:
        if tempdir is not None:
            tempdir.cleanup()
        raise
