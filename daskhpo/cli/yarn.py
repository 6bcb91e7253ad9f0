"""``python -m daskhpo.cli.yarn``: daskhpo on YARN from the command line.

- ``spec``: print the skein application spec of a daskhpo Dask cluster
  (:func:`daskhpo.cluster.yarn.application_spec`) as YAML, for ``skein application submit``.
- ``scheduler-address``: inside a worker container, wait for the scheduler's address in the
  application's key-value store and print it (the worker service's script runs this).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run ``python -m daskhpo.cli.yarn`` with ``argv``; return the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m daskhpo.cli.yarn",
        description="daskhpo on YARN through skein: print an application spec for 'skein application "
        "submit', or (inside a worker container) wait for the scheduler's address.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    spec = sub.add_parser("spec", help="print the skein application spec as YAML")
    spec.add_argument("--name", default="daskhpo")
    spec.add_argument("--queue", default="default")
    spec.add_argument("--environment", default=None, help="conda-pack/venv-pack archive")
    spec.add_argument("--python", default=None, help="python in the containers")
    spec.add_argument("--workers", type=int, default=2)
    spec.add_argument("--threads", type=int, default=1)
    spec.add_argument("--worker-vcores", type=int, default=1)
    spec.add_argument("--worker-memory", default="2 GiB")
    spec.add_argument("--scheduler-vcores", type=int, default=1)
    spec.add_argument("--scheduler-memory", default="2 GiB")
    spec.add_argument(
        "--tls-dir",
        default=None,
        help="folder with ca.pem, scheduler-cert.pem, scheduler-key.pem, worker-cert.pem, "
        "worker-key.pem: run the cluster over TLS with these",
    )
    sub.add_parser("scheduler-address", help="(in a container) print the scheduler's address")
    args = parser.parse_args(argv)
    if args.command == "scheduler-address":
        return _print_scheduler_address()
    from ..cluster.kubernetes import to_yaml
    from ..cluster.yarn import application_spec
    from ..exceptions import DaskHPOError

    tls = None
    if args.tls_dir is not None:
        folder = Path(args.tls_dir)
        names = ("ca.pem", "scheduler-cert.pem", "scheduler-key.pem", "worker-cert.pem")
        tls = {n: str((folder / n).resolve()) for n in (*names, "worker-key.pem")}
        missing = [n for n, p in tls.items() if not Path(p).is_file()]
        if missing:
            print(
                f"daskhpo.cli.yarn spec: --tls-dir lacks {', '.join(missing)}",
                file=sys.stderr,
            )
            return 2
    try:
        document = application_spec(
            name=args.name,
            queue=args.queue,
            environment=args.environment,
            python=args.python,
            n_workers=args.workers,
            threads=args.threads,
            worker_vcores=args.worker_vcores,
            worker_memory=args.worker_memory,
            scheduler_vcores=args.scheduler_vcores,
            scheduler_memory=args.scheduler_memory,
            tls=tls,
        )
    except DaskHPOError as exc:
        print(f"daskhpo.cli.yarn spec: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(to_yaml([document]))
    return 0


def _print_scheduler_address() -> int:
    from ..cluster.yarn import scheduler_address
    from ..exceptions import ClusterError

    try:
        address = scheduler_address()
    except ClusterError as exc:
        print(f"daskhpo.cli.yarn scheduler-address: {exc}", file=sys.stderr)
        return 2
    print(address)
    return 0


if __name__ == "__main__":
    sys.exit(main())
