"""``connect("gateway://host:port", ...)``: a dask-gateway cluster (extra ``daskhpo[gateway]``).

A new cluster is started (``cluster_options``, then ``n_workers`` or ``adapt``), or with ``name=`` an
existing one is joined; ``gateway+https://`` talks to the gateway over https. The client returned owns
the cluster (and its ``Gateway`` client).
"""

from __future__ import annotations

import gc
import re
from collections.abc import Mapping
from typing import Any

from distributed import Client

from ..exceptions import InvalidSearchError, InvalidSearchTypeError
from .options import (
    check_options,
    non_negative_int,
    owning_client,
    require_extra,
    run_bounded,
    timeout_option,
)

__all__ = ["connect_gateway"]

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


def connect_gateway(target: str, scheme: str, rest: str, options: dict[str, Any]) -> Client:
    """``connect("gateway://host:port", ...)``: see :func:`daskhpo.connect`."""
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
        if isinstance(exc, ConnectionError):  # refused or reset: nothing is serving there
            return (
                f"no dask-gateway server answered at {shown_address}: check the address "
                "(gateway://HOST:PORT for http, gateway+https://HOST for https) and that the server "
                "runs."
            )
        # Status codes as words: a port such as 44019 in the text is not a 401.
        if re.search(r"\b(401|403)\b", text) or "unauthorized" in text or "forbidden" in text:
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

        # A Gateway left half-built by an earlier failed connect is garbage whose __del__ stops its
        # loop runner under distributed's LoopRunner class lock. If the garbage collector ran it in
        # the IO-loop thread that GatewayCluster starts below, while this thread holds that lock
        # waiting for the loop to come up, both would wait the 10 s LoopRunner timeout. Collect first.
        gc.collect()

        common = {
            "address": address,
            "proxy_address": options.get("proxy_address"),
            "public_address": options.get("public_address"),
            "auth": options.get("auth"),
        }
        if name is not None:
            cluster = GatewayCluster.from_name(
                name,
                shutdown_on_close=bool(options.get("shutdown_on_close", False)),
                **common,
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
            return owning_client(cluster, _GatewayCloser(cluster), security=cluster.security)
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
