"""``daskhpo k8s-spec``: print Dask operator resources for ``kubectl apply``."""

from __future__ import annotations

from ..kube import add_k8s_spec_command, cmd_k8s_spec

__all__ = ["add_k8s_spec_command", "cmd_k8s_spec"]
