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
``"slurm://partition"``                   Dask workers as Slurm batch jobs, dask-jobqueue (``daskhpo[hpc]``)
``"pbs://queue"``                         Dask workers as PBS batch jobs, dask-jobqueue (``daskhpo[hpc]``)
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

Modules: :mod:`~daskhpo.cluster.targets` (:func:`parse_target`, the scheme registry
:data:`~daskhpo.cluster.targets.CONNECTORS`, :func:`connect`, :func:`get_client`), one connector per
kind of cluster (:mod:`~daskhpo.cluster.local`, :mod:`~daskhpo.cluster.address`,
:mod:`~daskhpo.cluster.ssh`, :mod:`~daskhpo.cluster.gateway`, :mod:`~daskhpo.cluster.kubernetes`,
:mod:`~daskhpo.cluster.yarn`, :mod:`~daskhpo.cluster.jobqueue`) and what they share (:mod:`~daskhpo.cluster.options`). Nothing here
imports the rest of daskhpo but :mod:`daskhpo.exceptions`.
"""

from __future__ import annotations

from .local import WORKER_ENV_OVERRIDES, close_local, local_client, make_local_cluster
from .options import ClusterClient, dashboard_link, workers_info
from .targets import CONNECTORS, SCHEMES, connect, get_client, parse_target

__all__ = [
    "connect",
    "parse_target",
    "ClusterClient",
    "get_client",
    "local_client",
    "make_local_cluster",
    "close_local",
    "dashboard_link",
    "workers_info",
    "SCHEMES",
    "CONNECTORS",
    "WORKER_ENV_OVERRIDES",
]
