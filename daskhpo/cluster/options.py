"""What every connector of :mod:`daskhpo.cluster` shares: option checks, the bounded start, clients.

- :func:`query_options`: the options of a target's query string (``?port=2222&...``).
- Option checks: :func:`check_options` (unknown names, with a "did you mean"), :func:`positive_int`,
  :func:`non_negative_int`, :func:`timeout_option`, :func:`security_option` and :func:`require_extra`
  (the optional package a scheme needs). Their messages name the target, the option, the bad value
  and the fix.
- :func:`run_bounded`: start a cluster in a thread and give up after ``timeout`` seconds, turning
  whatever went wrong into a :class:`~daskhpo.exceptions.ClusterError` that says why.
- :class:`ClusterClient` and :func:`owning_client`: a client that also closes the cluster a connector
  started for it (when it is closed, and at interpreter exit).
- :func:`dashboard_link` and :func:`announce`: the Dask dashboard's address, logged once per cluster.
- :func:`workers_info`: every worker's entry as the scheduler has it now.
"""

from __future__ import annotations

import atexit
import ipaddress
import logging
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from distributed import Client

from ..exceptions import ClusterError, InvalidSearchError, InvalidSearchTypeError

__all__ = [
    "query_options",
    "check_options",
    "positive_int",
    "non_negative_int",
    "timeout_option",
    "security_option",
    "require_extra",
    "run_bounded",
    "is_ip",
    "ClusterClient",
    "owning_client",
    "dashboard_link",
    "announce",
    "forget_announcement",
    "workers_info",
]

logger = logging.getLogger("daskhpo")

#: scheme -> (module it needs, how to install it).
EXTRAS: dict[str, tuple[str, str]] = {
    "ssh": ("asyncssh", "pip install 'daskhpo[ssh]'"),
    "gateway": ("dask_gateway", "pip install 'daskhpo[gateway]'"),
    "kubernetes": ("dask_kubernetes", "pip install 'daskhpo[kubernetes]'"),
    "yarn": ("skein", "pip install 'daskhpo[yarn]'"),
    "slurm": ("dask_jobqueue", "pip install 'daskhpo[hpc]'"),
    "pbs": ("dask_jobqueue", "pip install 'daskhpo[hpc]'"),
}


# -- option checks --------------------------------------------------------------------------------------


def query_options(target: str, query: str) -> dict[str, Any]:
    """The options of a target's query string (what follows ``?``), values read as YAML scalars.

    Raises
    ------
    InvalidSearchError
        For a malformed query string.
    """
    options: dict[str, Any] = {}
    if not query:
        return options
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
    return options


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
    """``options[name]`` as an int >= 0; ``target`` "" leaves it out of messages."""
    value = options.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidSearchError(
            f"{_where(target)}{name}={value!r}; give a whole number of at least 0."
        )
    return value


def timeout_option(target: str, options: Mapping[str, Any], default: float) -> float:
    """``options["timeout"]`` as a number of seconds greater than 0."""
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

    module, command = EXTRAS[scheme]
    try:
        importlib.import_module(module)
    except ImportError as exc:
        raise ClusterError(
            f"{_where(target)}{scheme}:// targets need the {module!r} package, which is not "
            f"installed ({exc}); install it with: {command}"
        ) from exc


def is_ip(host: str) -> bool:
    """True for an IPv4 or IPv6 address, False for a host name."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


# -- starting within a time limit ---------------------------------------------------------------------


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
        why = explain(TimeoutError())
        raise ClusterError(
            f"cluster={target!r}: {what} did not answer within {timeout:g} s. "
            f"{why[:1].upper()}{why[1:]} Raise timeout= if it is only slow to start."
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


# -- clients that own their cluster -------------------------------------------------------------------


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


def workers_info(client: Any) -> dict[str, dict[str, Any]]:
    """Every worker the scheduler knows, address -> its identity (``memory_limit``, ``nanny``,
    ``status``, ...), fetched from the scheduler by this call.

    ``Client.scheduler_info()`` cannot be trusted for this: it returns the client's cached identity,
    which the client's periodic refresh (asking for no workers) may overwrite between the fetch and
    the return, so ``["workers"]`` is now and then empty on a cluster that has workers.
    """
    try:
        info = client.sync(client.scheduler.identity, n_workers=-1)
    except TypeError:  # a scheduler older than distributed 2025.1 takes no n_workers
        info = client.sync(client.scheduler.identity)
    return dict(info.get("workers") or {})


def owning_client(cluster: Any, closer: Any = None, **client_kwargs: Any) -> ClusterClient:
    """A client of ``cluster`` that closes ``closer`` (default: the cluster) when closed."""
    client = ClusterClient(cluster, set_as_default=False, **client_kwargs)
    client._daskhpo_owned = cluster if closer is None else closer
    _owned_clients.add(client)
    return client


# -- the dashboard link -------------------------------------------------------------------------------

_announced: set[tuple[Any, Any]] = set()


def dashboard_link(client: Any) -> str | None:
    """The Dask dashboard address of ``client``'s scheduler, or None when it has none."""
    try:
        return str(client.dashboard_link)
    except Exception:
        return None


def _announcement_key(client: Any, link: str | None) -> tuple[Any, Any]:
    # Keyed by scheduler too: a later cluster can get the dashboard port of one closed earlier.
    return (getattr(getattr(client, "scheduler", None), "address", None), link)


def announce(client: Any, verbose: int) -> None:
    """Log the dashboard link of ``client`` (and print it when ``verbose``), once per cluster."""
    link = dashboard_link(client)
    key = _announcement_key(client, link)
    if not link or key in _announced:
        return
    _announced.add(key)
    logger.info("daskhpo: Dask dashboard at %s", link)
    if verbose:
        print(f"Dask dashboard: {link}", file=sys.stderr)


def forget_announcement(client: Any) -> None:
    """Let :func:`announce` show ``client``'s dashboard again (its cluster is being closed)."""
    _announced.discard(_announcement_key(client, dashboard_link(client) or ""))
