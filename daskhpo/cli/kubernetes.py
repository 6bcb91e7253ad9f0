"""``daskhpo k8s-spec``: Dask operator resources (a ``DaskCluster``, or a search's ``DaskJob``) as YAML.

The resources are built and validated by :mod:`daskhpo.cluster.kubernetes`; with ``--job SPEC`` the
search spec is loaded (and so checked) here first, and its file's text goes into the ConfigMap.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_k8s_spec_command", "cmd_k8s_spec"]


def add_k8s_spec_command(sub: Any) -> None:
    """Register ``daskhpo k8s-spec`` on the CLI's subparsers."""
    parser = sub.add_parser(
        "k8s-spec",
        help="print a DaskCluster (or, with --job, a DaskJob) resource for kubectl apply",
        description="Print the Dask operator resources for a daskhpo cluster as YAML, validated against "
        "the operator's CRD schemas: a DaskCluster, or with --job SPEC a ConfigMap holding the "
        "search spec and a DaskJob running 'daskhpo run' on its own DaskCluster. Apply with "
        "'daskhpo k8s-spec ... | kubectl apply -f -'.",
    )
    parser.add_argument("--name", required=True, help="cluster (and job) name")
    parser.add_argument("--namespace", default=None, help="namespace (default: kubectl's)")
    parser.add_argument(
        "--image",
        required=True,
        help="container image with daskhpo installed (deploy/docker/)",
    )
    parser.add_argument("--workers", type=int, default=2, help="number of workers (default 2)")
    parser.add_argument("--threads", type=int, default=1, help="threads per worker (default 1)")
    parser.add_argument("--cpu", default=None, help="CPU request and limit per pod, such as 1")
    parser.add_argument("--memory", default=None, help="memory request and limit, such as 2Gi")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="environment variable",
    )
    parser.add_argument(
        "--service-type",
        default="ClusterIP",
        choices=["ClusterIP", "NodePort", "LoadBalancer"],
        help="scheduler service type (default ClusterIP)",
    )
    parser.add_argument(
        "--idle-timeout",
        type=int,
        default=0,
        help="delete the cluster after this many idle seconds",
    )
    parser.add_argument(
        "--job",
        default=None,
        metavar="SPEC",
        help="make a DaskJob running this search spec",
    )
    parser.add_argument(
        "--storage-claim",
        default=None,
        metavar="PVC",
        help="with --job: store trials on this PersistentVolumeClaim (enables --resume)",
    )
    parser.set_defaults(func=cmd_k8s_spec)


def cmd_k8s_spec(args: argparse.Namespace) -> int:
    """Print the resources ``args`` describe as YAML; 2 (with a message) for bad input."""
    from ..cluster.kubernetes import cluster_spec, job_resources, to_yaml
    from ..exceptions import DaskHPOError, InvalidSearchError
    from ..spec import load_spec

    env: dict[str, str] = {}
    for item in args.env:
        key, sep, value = item.partition("=")
        if not sep:
            print(f"daskhpo k8s-spec: --env {item!r}: write NAME=VALUE", file=sys.stderr)
            return 2
        env[key] = value
    limits = {k: v for k, v in (("cpu", args.cpu), ("memory", args.memory)) if v is not None}
    resources = {"requests": limits, "limits": limits} if limits else None
    options: dict[str, Any] = {
        "image": args.image,
        "namespace": args.namespace,
        "n_workers": args.workers,
        "threads": args.threads,
        "resources": resources,
        "env": env,
        "scheduler_service_type": args.service_type,
        "idle_timeout": args.idle_timeout,
    }
    try:
        if args.job is not None:
            document = load_spec(args.job)  # a bad spec fails here, not in the cluster
            resources_out = job_resources(
                document,
                name=args.name,
                storage_claim=args.storage_claim,
                spec_text=Path(args.job).read_text(),
                **options,
            )
        else:
            if args.storage_claim is not None:
                raise InvalidSearchError("--storage-claim applies to --job only")
            resources_out = [cluster_spec(args.name, **options)]
    except DaskHPOError as exc:
        print(f"daskhpo k8s-spec: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(to_yaml(resources_out))
    return 0
