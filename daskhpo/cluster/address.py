"""``connect("tcp://host:port")`` (also tls, ws, wss, ucx): a scheduler that is already running."""

from __future__ import annotations

from typing import Any

from distributed import Client

from ..exceptions import ClusterError, InvalidSearchError
from .options import check_options, security_option, timeout_option

__all__ = ["connect_address", "ADDRESS_SCHEMES"]

#: Schemes of a scheduler address (distributed's comm protocols).
ADDRESS_SCHEMES = ("tcp", "tls", "ws", "wss", "ucx")


def connect_address(target: str, scheme: str, rest: str, options: dict[str, Any]) -> Client:
    """``connect("tcp://host:8786", ...)``: see :func:`daskhpo.connect`."""
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
