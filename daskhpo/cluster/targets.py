"""Cluster targets: :func:`parse_target`, the scheme registry, :func:`connect` and :func:`get_client`.

A target string names a scheme (``ssh://...``); :data:`CONNECTORS` maps each scheme to the function
that connects to (or starts) that kind of cluster, and is the one place a new kind is added: a connector
takes ``(target, scheme, rest, options)`` (the target as the user wrote it, for messages; the scheme;
what follows ``://`` without the query; the merged options) and returns a running client.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from distributed import Client
from distributed.deploy import Cluster

from ..exceptions import ClusterError, InvalidSearchError, InvalidSearchTypeError
from .address import ADDRESS_SCHEMES, connect_address
from .gateway import connect_gateway
from .jobqueue import connect_jobqueue
from .kubernetes import connect_kubernetes
from .local import connect_local, local_client
from .options import announce, query_options
from .ssh import connect_ssh
from .yarn import connect_yarn

__all__ = [
    "connect",
    "get_client",
    "parse_target",
    "CONNECTORS",
    "SCHEMES",
    "Connector",
]

#: ``connector(target, scheme, rest, options) -> distributed.Client``.
Connector = Callable[[str, str, str, dict[str, Any]], Client]

# The one place a kind of cluster is added: scheme -> (its connector, an example target for messages).
_TARGETS: dict[str, tuple[Connector, str]] = {
    "local": (connect_local, "local"),
    "tcp": (connect_address, "tcp://10.0.0.5:8786"),
    "tls": (connect_address, "tls://10.0.0.5:8786"),
    "ws": (connect_address, "ws://10.0.0.5:8786"),
    "wss": (connect_address, "wss://10.0.0.5:8786"),
    "ucx": (connect_address, "ucx://10.0.0.5:8786"),
    "ssh": (connect_ssh, "ssh://user@host1,host2,host3"),
    "kubernetes": (connect_kubernetes, "kubernetes://namespace/cluster-name"),
    "gateway": (connect_gateway, "gateway://gateway-host:8000"),
    "gateway+https": (connect_gateway, "gateway+https://gateway-host"),
    "yarn": (connect_yarn, "yarn://queue"),
    "slurm": (connect_jobqueue, "slurm://partition?cores=4&memory=16GB"),
    "pbs": (connect_jobqueue, "pbs://queue?cores=4&memory=16GB"),
}

#: The connector of each target scheme; :func:`connect` dispatches through it.
CONNECTORS: dict[str, Connector] = {scheme: entry[0] for scheme, entry in _TARGETS.items()}

#: An example target of each scheme (for messages).
SCHEMES: dict[str, str] = {scheme: entry[1] for scheme, entry in _TARGETS.items()}

_lock = threading.Lock()
# Clients made for cluster objects passed as cluster=, reused by later searches on the same object.
_by_cluster: dict[Any, Any] = {}
_by_address: dict[str, Any] = {}


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
                {"timeout": timeout} if scheme in ADDRESS_SCHEMES and "timeout" not in query else {}
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
    announce(found, verbose)
    return found


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
    if scheme not in CONNECTORS:
        raise InvalidSearchError(
            f"cluster={target!r}: unknown scheme {scheme + '://'!r}; use one of "
            f"{', '.join(repr(v) for v in SCHEMES.values())}."
        )
    rest, _, query = rest.partition("?")
    return scheme, rest, query_options(target, query)


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
          operator's ``KubeCluster``, created from :func:`daskhpo.cluster.kubernetes.cluster_spec`
          or connected to if it exists: ``image`` (required unless ``existing=True``),
          ``n_workers``, ``threads``, ``resources``, ``env``, ``scheduler_service_type``,
          ``idle_timeout``, ``existing``, ``shutdown_on_close``.
        - ``"gateway://host:port"`` (``"gateway+https://host"`` for https): a dask-gateway server;
          ``name`` (connect to that existing cluster instead of starting one), ``n_workers``
          (scale to), ``adapt`` (``[minimum, maximum]``), ``cluster_options`` (mapping),
          ``auth`` (``"basic"``, ``"kerberos"``, ``"jupyterhub"`` or a ``GatewayAuth``),
          ``proxy_address``, ``public_address``, ``shutdown_on_close``.
        - ``"yarn://queue"``: a skein application whose services run ``dask scheduler`` and
          ``dask worker`` (see :mod:`daskhpo.cluster.yarn`): ``environment`` (packed environment
          archive), ``python``, ``n_workers``, ``worker_vcores``, ``worker_memory``, ``threads``,
          ``scheduler_vcores``, ``scheduler_memory``, ``name``, ``application_id`` (connect to a
          running daskhpo application), ``security``.
        - ``"slurm://partition"``, ``"pbs://queue"``: dask-jobqueue's ``SLURMCluster`` /
          ``PBSCluster`` (see :mod:`daskhpo.cluster.jobqueue`): the scheduler runs here, each batch job
          runs ``processes`` workers. ``cores`` and ``memory`` per job (required unless dask-jobqueue's
          config has them), ``processes`` (default ``cores``: single-threaded workers), ``jobs``
          (default 1), ``walltime`` (``"HH:MM:SS"``), ``account``, ``queue`` (or in the target),
          ``job_extra_directives``, ``job_script_prologue``, ``interface``, ``python`` (default: this
          interpreter's path), ``log_directory``, ``local_directory``, ``dashboard_address``,
          ``scheduler_options``, ``resource_spec`` (pbs), ``cluster_options`` (other keywords of
          the dask-jobqueue class). Waits until every job's workers joined; jobs still queued at
          ``timeout`` are reported with the batch system's reason and cancelled.
    **options
        As listed per target. Common to all: ``timeout`` (seconds until the cluster must answer;
        default 30 for an address, 60 for a new local cluster, 120 for ssh and gateway, 300 for
        kubernetes, yarn, slurm and pbs). ``security``: a :class:`distributed.Security`, or True for self-signed certificates
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
    shown = target if target is not None else "local"
    return CONNECTORS[scheme](shown, scheme, rest, {**query, **options})
