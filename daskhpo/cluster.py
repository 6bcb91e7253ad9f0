"""Finding the Dask cluster a search runs on: one way in, :func:`connect`.

``connect(target, **options)`` returns a running :class:`distributed.Client` for any of:

========================================  =========================================================
target                                    cluster
========================================  =========================================================
None / ``"local"``                        the embedded :class:`distributed.LocalCluster` (127.0.0.1)
``"tcp://host:8786"``, ``"tls://..."``    a scheduler that is already running
``"ssh://user@h1,h2,h3"``                 :func:`distributed.SSHCluster` (extra ``daskhpo[ssh]``)
``"kubernetes://namespace/name"``         the Dask operator's ``KubeCluster`` (``daskhpo[kubernetes]``)
``"gateway://host:port"``                 a dask-gateway cluster (``daskhpo[gateway]``)
``"yarn://queue"``                        a skein application running ``dask scheduler``/``worker``
========================================  =========================================================

Options may also be given in the target's query string, ``"ssh://root@h1,h2?port=2222"`` (values are
read as YAML scalars), so that a single string (``--cluster`` on the command line, ``client=`` of a
search) can say everything. Keyword options win over query options.

A client that :func:`connect` made for a cluster it started also closes that cluster when it is closed
(``with daskhpo.connect("ssh://...") as client: ...``), and at interpreter exit.

``get_client(None)``, used by every search, returns the active ``distributed`` client if there is one,
else ``connect(None)``: the scheduler named by the Dask config ``scheduler-address`` (environment variable
``DASK_SCHEDULER_ADDRESS``, set for example in a Dask operator's ``DaskJob``) or else the embedded
LocalCluster, started once per process and reused by every later search.
"""

from __future__ import annotations

import atexit
import ipaddress
import logging
import os
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from distributed import Client
from distributed.deploy import Cluster

from .exceptions import ClusterError, InvalidSearchError, InvalidSearchTypeError

__all__ = [
    "connect",
    "parse_target",
    "ClusterClient",
    "get_client",
    "local_client",
    "make_local_cluster",
    "close_local",
    "dashboard_link",
    "SCHEMES",
]

logger = logging.getLogger("daskhpo")

_SPAWN_HINT = (
    "Dask worker processes import your main script again when they start; in a script, put the code "
    'that calls fit under `if __name__ == "__main__":`, or pass client= to use a cluster you started.'
)

_lock = threading.Lock()
_local: dict[str, Any] = {}
_announced: set[tuple[Any, Any]] = set()
# Clients made for cluster objects passed as cluster=, reused by later searches on the same object.
_by_cluster: dict[Any, Any] = {}
_by_address: dict[str, Any] = {}

#: Target schemes :func:`connect` understands, with an example of each.
SCHEMES: dict[str, str] = {
    "local": "local",
    "tcp": "tcp://10.0.0.5:8786",
    "tls": "tls://10.0.0.5:8786",
    "ws": "ws://10.0.0.5:8786",
    "wss": "wss://10.0.0.5:8786",
    "ucx": "ucx://10.0.0.5:8786",
    "ssh": "ssh://user@host1,host2,host3",
    "kubernetes": "kubernetes://namespace/cluster-name",
    "gateway": "gateway://gateway-host:8000",
    "gateway+https": "gateway+https://gateway-host",
    "yarn": "yarn://queue",
}
_ADDRESS_SCHEMES = ("tcp", "tls", "ws", "wss", "ucx")
_EXTRAS = {
    "ssh": ("asyncssh", "pip install 'daskhpo[ssh]'"),
    "gateway": ("dask_gateway", "pip install 'daskhpo[gateway]'"),
    "kubernetes": ("dask_kubernetes", "pip install 'daskhpo[kubernetes]'"),
    "yarn": ("skein", "pip install 'daskhpo[yarn]'"),
}


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
        _announced.discard((client.scheduler.address, dashboard_link(client) or ""))
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
    # Keyed by scheduler too: a later cluster can get the dashboard port of one closed earlier.
    key = (getattr(getattr(client, "scheduler", None), "address", None), link)
    if not link or key in _announced:
        return
    _announced.add(key)
    logger.info("daskhpo: Dask dashboard at %s", link)
    if verbose:
        print(f"Dask dashboard: {link}", file=sys.stderr)


def get_client(client: Any = None, *, verbose: int = 0, timeout: float = 30.0) -> Any:
    """Return the ``distributed.Client`` a search should use.

    Parameters
    ----------
    client : distributed.Client, distributed cluster object, str or None
        A client; a cluster object (``LocalCluster``, ``KubeCluster``, ...: a client is made for it
        once and reused); a target string for :func:`connect` (``"tcp://10.0.0.5:8786"``,
        ``"ssh://user@h1,h2?key_file=~/.ssh/id_ed25519"``, ``"local"``, ...); or None for the active
        client, else ``connect(None)`` (the scheduler named by ``DASK_SCHEDULER_ADDRESS``, else the
        embedded LocalCluster). A client made for a target string is kept and reused for that string.
    verbose : int
        When positive, the dashboard link is also printed (once per cluster).
    timeout : float
        Seconds to wait for a scheduler address to answer (other targets use :func:`connect`'s
        defaults unless the target string sets ``timeout=``).
    """
    from distributed import default_client

    if client is None:
        try:
            found = default_client()
        except ValueError:
            import dask

            address = dask.config.get("scheduler-address", None)
            if address:  # DASK_SCHEDULER_ADDRESS: kept and reused like any target string
                return get_client(str(address), verbose=verbose, timeout=timeout)
            found = local_client()
    elif isinstance(client, Client):
        found = client
    elif isinstance(client, Cluster):  # LocalCluster, SSHCluster, KubeCluster, GatewayCluster...
        with _lock:
            found = _by_cluster.get(client)
            if found is None or found.status != "running":
                found = Client(client, set_as_default=False)
                _by_cluster[client] = found
    elif isinstance(client, str):
        with _lock:
            found = _by_address.get(client)
        if found is None or found.status != "running":
            scheme, _, query = parse_target(client)
            # An address waits `timeout` unless its target says otherwise; other targets have their
            # own defaults (starting a cluster takes longer than reaching a scheduler).
            extra = (
                {"timeout": timeout}
                if scheme in _ADDRESS_SCHEMES and "timeout" not in query
                else {}
            )
            found = connect(client, **extra)
            with _lock:
                _by_address[client] = found
    else:
        raise InvalidSearchTypeError(
            f"client={client!r}: expected a distributed.Client, a cluster object (LocalCluster, "
            "KubeCluster, ...), a cluster target string such as 'tcp://host:8786' or "
            "'ssh://user@host1,host2' (see daskhpo.connect), or None for the embedded local cluster."
        )
    if found.status != "running":
        raise ClusterError(f"client={found!r} is {found.status}: pass a running client.")
    _announce(found, verbose)
    return found


# -- connect -----------------------------------------------------------------------------------------


class ClusterClient(Client):
    """A :class:`distributed.Client` that also closes the cluster :func:`connect` started for it."""

    _daskhpo_owned: Any = None

    def close(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().close(*args, **kwargs)
        finally:
            owned, self._daskhpo_owned = self._daskhpo_owned, None
            if owned is not None:
                try:
                    owned.close()
                except Exception as exc:  # a cluster that is already gone
                    logger.debug("daskhpo: closing %r failed: %s", owned, exc)


_owned_clients: weakref.WeakSet[ClusterClient] = weakref.WeakSet()


@atexit.register
def _close_owned() -> None:
    for client in list(_owned_clients):
        if client.status == "running" or client._daskhpo_owned is not None:
            try:
                client.close(timeout=10)
            except Exception as exc:
                logger.debug("daskhpo: closing %r at exit failed: %s", client, exc)


def _owning_client(cluster: Any, closer: Any = None, **client_kwargs: Any) -> ClusterClient:
    """A client of ``cluster`` that closes ``closer`` (default: the cluster) when closed."""
    client = ClusterClient(cluster, set_as_default=False, **client_kwargs)
    client._daskhpo_owned = cluster if closer is None else closer
    _owned_clients.add(client)
    return client


def parse_target(target: str | None) -> tuple[str, str, dict[str, Any]]:
    """Split a cluster target into (scheme, rest, query options).

    ``"ssh://root@h1,h2?port=2222"`` gives ``("ssh", "root@h1,h2", {"port": 2222})``; None and
    ``"local"`` give ``("local", "", {})``. Query values are read as YAML scalars (``2`` is an int,
    ``true`` a bool, ``[a, b]`` a list).

    Raises
    ------
    InvalidSearchError
        For an unknown scheme or a malformed query string.
    """
    if target is None:
        return "local", "", {}
    if not isinstance(target, str):
        raise InvalidSearchTypeError(
            f"cluster={target!r}: expected a target string such as 'tcp://host:8786', "
            "'ssh://user@host1,host2' or 'local', a distributed.Client, or None."
        )
    text = target.strip()
    if "://" in text:
        scheme, rest = text.split("://", 1)
    elif text.split("?", 1)[0] == "local":
        scheme, rest = "local", text[len("local") :]
    else:
        raise InvalidSearchError(
            f"cluster={target!r}: a target needs a scheme; use one of "
            f"{', '.join(repr(v) for v in SCHEMES.values())} (or a host:port as 'tcp://{text}')."
        )
    scheme = scheme.lower()
    if scheme not in SCHEMES:
        raise InvalidSearchError(
            f"cluster={target!r}: unknown scheme {scheme + '://'!r}; use one of "
            f"{', '.join(repr(v) for v in SCHEMES.values())}."
        )
    rest, _, query = rest.partition("?")
    options: dict[str, Any] = {}
    if query:
        import yaml

        try:
            pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True)
        except ValueError as exc:
            raise InvalidSearchError(
                f"cluster={target!r}: the options after '?' are not a query string ({exc}); write "
                "them as key=value pairs joined by '&', e.g. '?port=2222&workers_per_host=2'."
            ) from exc
        for key, value in pairs:
            try:
                options[key] = yaml.safe_load(value) if value else None
            except yaml.YAMLError:
                options[key] = value
    return scheme, rest, options


def connect(target: str | None = None, **options: Any) -> Client:
    """Connect to (or start) a Dask cluster and return a running :class:`distributed.Client`.

    Parameters
    ----------
    target : str or None
        Where to run (scheme and options below). Options can also be appended as a query string:
        ``"ssh://root@h1,h2?port=2222&workers_per_host=2"``.

        - None: the scheduler in the Dask config ``scheduler-address`` (``DASK_SCHEDULER_ADDRESS``)
          if set, else the embedded LocalCluster (one single-threaded worker process per core, all
          bound to 127.0.0.1), shared by every search of the process. With options, as ``"local"``.
        - ``"local"``: with no option, the embedded LocalCluster; with options, a new LocalCluster
          on 127.0.0.1: ``n_workers``, ``threads`` (per worker, default 1), ``memory_limit``,
          ``dashboard_address`` (default ``"127.0.0.1:0"``), ``security``.
        - ``"tcp://host:8786"``, ``"tls://host:8786"`` (also ws, wss, ucx): a running scheduler;
          ``security`` (required for ``tls://`` unless the Dask config has TLS settings).
        - ``"ssh://user@h1,h2,h3"``: :func:`distributed.SSHCluster`, scheduler on the first host,
          workers on the others (on the same host when only one is given). A host may carry its own
          ssh port, ``h1:2222``. Options: ``port`` (ssh port, default 22), ``key_file`` (path or list
          of paths), ``known_hosts`` (path; None turns host key checking off), ``remote_python``
          (default: this interpreter's path), ``workers_per_host`` (default 1), ``threads`` (per
          worker, default 1), ``memory_limit``, ``interface`` (network interface to bind, such as
          ``"eth0"``), ``scheduler_port`` (default 8786), ``dashboard_address``, ``security``,
          ``connect_options``, ``scheduler_options``, ``worker_options`` (passed on).
        - ``"kubernetes://namespace/name"`` (or ``"kubernetes://name"``): the Dask Kubernetes
          operator's ``KubeCluster``, created from :func:`daskhpo.kube.cluster_spec` or connected to
          if it exists: ``image`` (required unless ``existing=True``), ``n_workers``, ``threads``,
          ``resources``, ``env``, ``scheduler_service_type``, ``idle_timeout``, ``existing``,
          ``shutdown_on_close``.
        - ``"gateway://host:port"`` (``"gateway+https://host"`` for https): a dask-gateway server;
          ``name`` (connect to that existing cluster instead of starting one), ``n_workers``
          (scale to), ``adapt`` (``[minimum, maximum]``), ``cluster_options`` (mapping),
          ``auth`` (``"basic"``, ``"kerberos"``, ``"jupyterhub"`` or a ``GatewayAuth``),
          ``proxy_address``, ``public_address``, ``shutdown_on_close``.
        - ``"yarn://queue"``: a skein application whose services run ``dask scheduler`` and
          ``dask worker`` (see :mod:`daskhpo.yarn`): ``environment`` (packed environment archive),
          ``python``, ``n_workers``, ``worker_vcores``, ``worker_memory``, ``threads``,
          ``scheduler_vcores``, ``scheduler_memory``, ``name``, ``application_id`` (connect to a
          running daskhpo application), ``security``.
    **options
        As listed per target. Common to all: ``timeout`` (seconds until the cluster must answer;
        default 30 for an address, 60 for a new local cluster, 120 for ssh and gateway, 300 for
        kubernetes and yarn). ``security``: a :class:`distributed.Security`, or True for self-signed certificates
        made here (:meth:`distributed.Security.temporary`), for every target that starts its own
        scheduler (local, ssh, yarn); dask-gateway always uses TLS with its own certificates.

    Returns
    -------
    distributed.Client
        Running, not set as the default client. When ``connect`` started the cluster, closing the
        client also closes the cluster.

    Raises
    ------
    InvalidSearchError
        Bad target or options (unknown scheme or option, wrong value), before any cluster work.
    ClusterError
        A missing extra, or no cluster within ``timeout``: the message names the target and the fix.

    Examples
    --------
    >>> client = connect("ssh://root@10.0.0.1,10.0.0.2", key_file="~/.ssh/id_ed25519")  # doctest: +SKIP
    >>> GridSearchCV(est, grid, client=client).fit(X, y)  # doctest: +SKIP
    """
    if target is None and not options:
        import dask

        address = dask.config.get("scheduler-address", None)
        if address:
            return connect(str(address))
        return local_client()
    scheme, rest, query = parse_target(target)
    merged = {**query, **options}
    shown = target if target is not None else "local"
    if scheme == "local":
        return _connect_local(shown, merged)
    if scheme in _ADDRESS_SCHEMES:
        return _connect_address(shown, scheme, rest, merged)
    if scheme == "ssh":
        return _connect_ssh(shown, rest, merged)
    if scheme in ("gateway", "gateway+https"):
        return _connect_gateway(shown, scheme, rest, merged)
    if scheme == "kubernetes":
        from .kube import connect_kubernetes

        return connect_kubernetes(shown, rest, merged)
    from .yarn import connect_yarn

    return connect_yarn(shown, rest, merged)


# -- shared option checks ------------------------------------------------------------------------------


def check_options(target: str, options: Mapping[str, Any], allowed: Iterable[str]) -> None:
    """Refuse options a target does not take, naming the ones it does."""
    allowed = set(allowed) | {"timeout"}
    unknown = sorted(set(options) - allowed)
    if unknown:
        import difflib

        hints = []
        for name in unknown:
            close = difflib.get_close_matches(name, sorted(allowed), n=1)
            hints.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise InvalidSearchError(
            f"cluster={target!r}: unknown option{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(hints)}; this target takes {', '.join(sorted(allowed))}."
        )


def _where(target: str) -> str:
    return f"cluster={target!r}: " if target else ""


def positive_int(target: str, options: Mapping[str, Any], name: str, default: Any = None) -> Any:
    """``options[name]`` as an int >= 1 (None stays None); ``target`` "" leaves it out of messages."""
    value = options.get(name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidSearchError(
            f"{_where(target)}{name}={value!r}; give a whole number of at least 1."
        )
    return value


def non_negative_int(target: str, options: Mapping[str, Any], name: str, default: int) -> int:
    value = options.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidSearchError(
            f"{_where(target)}{name}={value!r}; give a whole number of at least 0."
        )
    return value


def timeout_option(target: str, options: Mapping[str, Any], default: float) -> float:
    value = options.get("timeout", default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise InvalidSearchError(
            f"cluster={target!r}: timeout={value!r}; give a number of seconds greater than 0."
        )
    return float(value)


def security_option(target: str, value: Any, *, may_create: bool = True) -> Any:
    """None, or a :class:`distributed.Security` (True makes self-signed temporary certificates)."""
    from distributed import Security

    if value is None or value is False:
        return None
    if value is True:
        if not may_create:
            raise InvalidSearchError(
                f"cluster={target!r}: security=True makes new self-signed certificates, which only a "
                "cluster started here can trust; pass the distributed.Security the scheduler was "
                "started with (or Security(tls_ca_file=..., tls_client_cert=..., tls_client_key=...))."
            )
        return Security.temporary()
    if isinstance(value, Security):
        return value
    raise InvalidSearchTypeError(
        f"cluster={target!r}: security={value!r}; pass a distributed.Security, True for self-signed "
        "certificates made here (Security.temporary()), or None."
    )


def require_extra(target: str, scheme: str) -> None:
    """Raise a ClusterError naming the pip command when the extra a scheme needs is missing."""
    import importlib

    module, command = _EXTRAS[scheme]
    try:
        importlib.import_module(module)
    except ImportError as exc:
        raise ClusterError(
            f"{_where(target)}{scheme}:// targets need the {module!r} package, which is not "
            f"installed ({exc}); install it with: {command}"
        ) from exc


def run_bounded(
    target: str,
    start: Callable[[], Any],
    timeout: float,
    explain: Callable[[BaseException], str],
    what: str = "the cluster",
) -> Any:
    """Run ``start()`` (which returns a client) in a thread and wait at most ``timeout`` seconds.

    An exception from ``start`` becomes a :class:`ClusterError` whose text is ``explain(exc)``. When the
    time runs out first, a ClusterError says so and whatever ``start`` still makes is closed.
    """
    box: dict[str, Any] = {}
    finished = threading.Event()
    abandoned = threading.Event()

    def run() -> None:
        try:
            box["value"] = start()
        except BaseException as exc:
            box["error"] = exc
        finally:
            finished.set()
            if abandoned.is_set() and "value" in box:
                try:
                    box["value"].close()
                except Exception as exc:
                    logger.debug("daskhpo: closing a late cluster failed: %s", exc)

    began = time.monotonic()
    thread = threading.Thread(target=run, name=f"daskhpo-connect-{target}", daemon=True)
    thread.start()
    if not finished.wait(timeout):
        abandoned.set()
        if finished.is_set() and "value" in box:  # finished in the instant between
            return box["value"]
        raise ClusterError(
            f"cluster={target!r}: {what} did not answer within {timeout:g} s. "
            f"{explain(TimeoutError())} Raise timeout= if it is only slow to start."
        )
    if "error" in box:
        exc = box["error"]
        if isinstance(exc, (ClusterError, InvalidSearchError)):
            raise exc
        elapsed = time.monotonic() - began
        root = exc
        while root.__cause__ is not None:  # SpecCluster wraps the ssh error in a RuntimeError
            root = root.__cause__
        raise ClusterError(
            f"cluster={target!r}: {explain(root)} (after {elapsed:.1f} s: "
            f"{type(root).__name__}: {root})"
        ) from exc
    return box["value"]


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


# -- local and running schedulers ----------------------------------------------------------------------


def _connect_local(target: str, options: dict[str, Any]) -> Client:
    check_options(
        target, options, {"n_workers", "threads", "memory_limit", "dashboard_address", "security"}
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
            n_workers=n_workers, threads_per_worker=threads, dashboard_address=dashboard, **extra
        )
        try:
            return _owning_client(cluster)
        except BaseException:
            cluster.close()
            raise

    def explain(exc: BaseException) -> str:
        return f"the local cluster did not start. {_SPAWN_HINT}"

    return run_bounded(target, start, timeout, explain, "the local cluster")


def _connect_address(target: str, scheme: str, rest: str, options: dict[str, Any]) -> Client:
    check_options(target, options, {"security"})
    timeout = timeout_option(target, options, 30.0)
    security = security_option(target, options.get("security"), may_create=False)
    address = f"{scheme}://{rest}"
    if not rest:
        raise InvalidSearchError(
            f"cluster={target!r}: no host; write the scheduler address as '{scheme}://HOST:PORT'."
        )
    if scheme in ("tls", "wss"):
        from distributed import Security

        effective: Any = security if security is not None else Security()
        if not (effective.tls_ca_file and effective.tls_client_cert):
            raise InvalidSearchError(
                f"cluster={target!r}: a {scheme}:// scheduler needs certificates; pass "
                "security=distributed.Security(tls_ca_file=..., tls_client_cert=..., "
                "tls_client_key=..., require_encryption=True) (or the Security object the cluster was "
                "started with), or set distributed.comm.tls.* in the Dask config."
            )
    elif security is not None and security.require_encryption and scheme in ("tcp", "ws"):
        raise InvalidSearchError(
            f"cluster={target!r}: security= requires encryption but {scheme}:// is not encrypted; "
            f"use the scheduler's tls:// address (or wss://)."
        )
    try:
        return Client(address, timeout=timeout, security=security, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise ClusterError(
            f"cluster={target!r}: no Dask scheduler answered at {address} within {timeout:g} s "
            f"({type(exc).__name__}: {exc}). Check the address and that the scheduler is running "
            "(and, for tls://, that security= holds certificates it trusts), or pass "
            "client=None to use the embedded local cluster."
        ) from exc


# -- ssh -----------------------------------------------------------------------------------------------

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


def _connect_ssh(target: str, rest: str, options: dict[str, Any]) -> Client:
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
    worker_options: dict[str, Any] = {"n_workers": workers_per_host, "nthreads": threads}
    interface = options.get("interface")
    scheduler_host = hosts[0][0]
    worker_hosts = {h for h, _ in hosts[1:]}
    # Bind to the address the user named (never every interface) where that is known here.
    if interface:
        scheduler_options["interface"] = interface
        worker_options["interface"] = interface
    else:
        if _is_ip(scheduler_host):
            scheduler_options["host"] = scheduler_host
        if len(worker_hosts) == 1 and _is_ip(next(iter(worker_hosts))):
            worker_options["host"] = next(iter(worker_hosts))
    if scheduler_port is not None:
        scheduler_options["port"] = scheduler_port
    if "dashboard_address" in options:
        scheduler_options["dashboard_address"] = options["dashboard_address"]
    elif _is_ip(scheduler_host) and not interface:
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
        client = _owning_client(cluster)
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


# -- dask-gateway ----------------------------------------------------------------------------------------

_GATEWAY_OPTIONS = {
    "name",
    "n_workers",
    "adapt",
    "cluster_options",
    "auth",
    "proxy_address",
    "public_address",
    "shutdown_on_close",
}


def _connect_gateway(target: str, scheme: str, rest: str, options: dict[str, Any]) -> Client:
    check_options(target, options, _GATEWAY_OPTIONS)
    timeout = timeout_option(target, options, 120.0)
    n_workers = options.get("n_workers")
    if n_workers is not None:
        n_workers = non_negative_int(target, options, "n_workers", 0)
    adapt = options.get("adapt")
    if adapt is not None and (
        not isinstance(adapt, (list, tuple))
        or len(adapt) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in adapt)
        or adapt[0] > adapt[1]
    ):
        raise InvalidSearchError(
            f"cluster={target!r}: adapt={adapt!r}; give [minimum, maximum] worker counts."
        )
    cluster_options = options.get("cluster_options") or {}
    if not isinstance(cluster_options, Mapping):
        raise InvalidSearchTypeError(
            f"cluster={target!r}: cluster_options={cluster_options!r}; give a mapping of the "
            "gateway's cluster options (see Gateway().cluster_options())."
        )
    name = options.get("name")
    if name is not None and not isinstance(name, str):
        raise InvalidSearchTypeError(f"cluster={target!r}: name={name!r}; give a cluster name.")
    if name is not None and cluster_options:
        raise InvalidSearchError(
            f"cluster={target!r}: cluster_options apply to a new cluster only; drop name= to start "
            "one, or drop cluster_options= to connect to the existing cluster."
        )
    require_extra(target, "gateway")
    address = None
    if rest:
        address = ("https://" if scheme == "gateway+https" else "http://") + rest.rstrip("/")
    shown_address = address or "the Dask config's gateway.address"

    def explain(exc: BaseException) -> str:
        text = f"{type(exc).__name__}: {exc}".lower()
        if "401" in text or "403" in text or "unauthorized" in text or "forbidden" in text:
            return (
                f"the dask-gateway server at {shown_address} refused the credentials: check auth=."
            )
        if name is not None and ("not found" in text or "404" in text or "no cluster" in text):
            return (
                f"the gateway at {shown_address} has no running cluster named {name!r}; list them "
                "with dask_gateway.Gateway().list_clusters(), or drop name= to start one."
            )
        if isinstance(exc, (OSError, TimeoutError)) or "connect" in text:
            return (
                f"no dask-gateway server answered at {shown_address}: check the address "
                "(gateway://HOST:PORT for http, gateway+https://HOST for https) and that the server "
                "runs."
            )
        return f"the dask-gateway server at {shown_address} did not give a cluster."

    def start() -> Any:
        from dask_gateway import GatewayCluster

        common = {
            "address": address,
            "proxy_address": options.get("proxy_address"),
            "public_address": options.get("public_address"),
            "auth": options.get("auth"),
        }
        if name is not None:
            cluster = GatewayCluster.from_name(
                name, shutdown_on_close=bool(options.get("shutdown_on_close", False)), **common
            )
        else:
            cluster = GatewayCluster(
                shutdown_on_close=bool(options.get("shutdown_on_close", True)),
                **common,
                **cluster_options,
            )
        try:
            if n_workers is not None:
                cluster.scale(n_workers)
            if adapt is not None:
                cluster.adapt(minimum=adapt[0], maximum=adapt[1])
            return _owning_client(cluster, _GatewayCloser(cluster), security=cluster.security)
        except BaseException:
            _GatewayCloser(cluster).close()
            raise

    return run_bounded(target, start, timeout, explain, "the dask-gateway server")


class _GatewayCloser:
    """Closes a GatewayCluster (shutting it down if ``shutdown_on_close``) and its Gateway client."""

    def __init__(self, cluster: Any) -> None:
        self.cluster = cluster

    def close(self) -> None:
        gateway = getattr(self.cluster, "gateway", None)
        try:
            self.cluster.close()
        finally:
            # dask-gateway's Gateway.__del__ closes again, and on a stopped loop current distributed
            # raises ("Accessing the loop property while the loop is not running"); without its loop
            # runner __del__ skips that second close.
            if gateway is not None:
                vars(gateway).pop("_loop_runner", None)
