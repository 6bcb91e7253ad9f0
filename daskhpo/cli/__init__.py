"""The ``daskhpo`` command line.

One module per group of commands, each with an ``add_*_command(sub)`` that registers it on the
subparsers :func:`build_parser` makes:

- :mod:`~daskhpo.cli.demo`: ``daskhpo demo`` (also :data:`DEMO_GRID`, :func:`demo_search`,
  :func:`results_table`);
- :mod:`~daskhpo.cli.run`: ``daskhpo run SPEC`` and ``daskhpo resume NAME``;
- :mod:`~daskhpo.cli.stores`: ``daskhpo status`` and ``daskhpo results`` (also :func:`trials_frame`);
- :mod:`~daskhpo.cli.cache`: ``daskhpo cache stats`` and ``daskhpo cache prune``;
- :mod:`~daskhpo.cli.dashboard`: ``daskhpo dashboard`` and ``daskhpo report``;
- :mod:`~daskhpo.cli.kubernetes`: ``daskhpo k8s-spec``;
- :mod:`~daskhpo.cli.yarn`: ``python -m daskhpo.cli.yarn`` (the YARN application spec, and the
  worker containers' wait for the scheduler's address).

The command line sits on top of the package: it may import any of it, and nothing in daskhpo imports it.
Modules here import the heavy parts (searches, spec, stores, clusters) inside the commands, so that
``daskhpo --help`` stays quick.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .cache import add_cache_command
from .dashboard import add_dashboard_commands
from .demo import DEMO_GRID, add_demo_command, demo_search, results_table
from .kubernetes import add_k8s_spec_command
from .run import add_resume_command, add_run_command
from .stores import add_results_command, add_status_command, trials_frame

__all__ = ["main", "build_parser", "DEMO_GRID", "demo_search", "results_table", "trials_frame"]


def build_parser() -> argparse.ArgumentParser:
    """The ``daskhpo`` argument parser, with every command."""
    parser = argparse.ArgumentParser(
        prog="daskhpo",
        description="Hyperparameter search for scikit-learn estimators on Dask clusters.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    add_demo_command(sub)
    add_run_command(sub)
    add_status_command(sub)
    add_results_command(sub)
    add_resume_command(sub)
    add_cache_command(sub)
    add_k8s_spec_command(sub)
    add_dashboard_commands(sub)
    return parser


def _version() -> str:
    from .. import __version__

    return __version__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``daskhpo`` command ``argv`` (default: ``sys.argv[1:]``); return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        # A usage error, as argparse's own: the help goes to stderr, the exit code is 2.
        parser.print_help(sys.stderr)
        print("\ndaskhpo: error: give a command, such as 'daskhpo demo'", file=sys.stderr)
        return 2
    if args.command == "demo" and args.cv < 2:
        parser.error(f"--cv {args.cv}: cross-validation needs at least 2 folds")
    try:
        return int(args.func(args))
    except BrokenPipeError:
        # The reader went away (`daskhpo results ... | head`): stop quietly, as Unix tools do.
        # stdout is pointed at /dev/null so that Python's flush at exit does not fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
