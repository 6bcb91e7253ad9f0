"""``daskhpo run SPEC`` and ``daskhpo resume NAME``: run a search from its spec, or from its store."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .common import add_cluster_option, positive_seconds

__all__ = ["cmd_run", "cmd_resume", "add_run_command", "add_resume_command"]


def cmd_run(args: argparse.Namespace) -> int:
    """Run the search of the spec file ``args.spec``; 2 for a bad spec or cluster, 130 on Ctrl-C."""
    from ..exceptions import DaskHPOError
    from ..spec import build_search, load_data, load_spec, spec_to_json
    from ..store import SQLiteStore

    name = args.name or Path(args.spec).stem
    try:
        spec = load_spec(args.spec)
        if args.trial_timeout is not None:  # kept in the stored spec, so that resume uses it too
            spec = load_spec({**spec, "trial_timeout": args.trial_timeout})
        name = args.name or spec.get("name") or name
        search = build_search(spec, client=args.cluster, storage=args.storage, verbose=1, name=name)
        if args.storage and args.storage.startswith("sqlite:///"):
            SQLiteStore(args.storage[len("sqlite:///") :], name).start(
                {"document": json.loads(spec_to_json(spec))}, None
            )
        X, y = load_data(spec)
        search.fit(X, y, resume=args.resume)
    except DaskHPOError as exc:
        print(f"daskhpo run: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if args.storage:
            print(
                f"daskhpo run: continue with: daskhpo run {args.spec} --storage {args.storage} "
                f"--name {name} --resume",
                file=sys.stderr,
            )
        return 130
    print(f"search {name!r}: best score {search.best_score_:.6g} with {search.best_params_}")
    if args.storage:
        print(f"results: daskhpo results {name} --storage {args.storage}")
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    """Continue the stored search ``args.name`` from its store; 2 when it cannot, 130 on Ctrl-C."""
    from ..exceptions import DaskHPOError
    from ..load import load

    extra: dict[str, Any] = {"verbose": 1}
    if args.trial_timeout is not None:
        extra["trial_timeout"] = args.trial_timeout
    try:
        stored = load(args.name, args.storage)
        print(
            f"daskhpo resume: search {args.name!r} ({stored.status}, {stored.n_trials} trials "
            "stored)",
            file=sys.stderr,
        )
        search = stored.resume(client=args.cluster, **extra)
    except DaskHPOError as exc:
        print(f"daskhpo resume: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"daskhpo resume: continue with: daskhpo resume {args.name} --storage {args.storage}",
            file=sys.stderr,
        )
        return 130
    print(
        f"search {args.name!r}: best score {search.best_score_:.6g} with {search.best_params_} "
        f"({search.stats_['trials_replayed']} trials read from the store, "
        f"{search.stats_['units_computed']} fits computed, "
        f"{search.stats_.get('units_reused', 0)} taken from the unit cache)"
    )
    print(f"results: daskhpo results {args.name} --storage {args.storage}")
    return 0


def add_resume_command(sub: Any) -> None:
    """Register ``daskhpo resume`` on the CLI's subparsers."""
    parser = sub.add_parser(
        "resume",
        help="continue a search started with 'daskhpo run', from its store alone",
        description="Continue the search NAME that 'daskhpo run SPEC --storage ...' started, from "
        "the spec stored with it (the spec file is not needed): trials already stored are read "
        "back, the others run, and the best candidate is refitted. The stored spec names Python "
        "import paths: only resume searches you trust.",
    )
    parser.add_argument("name", help="the search's name in the store (see 'daskhpo status')")
    parser.add_argument("--storage", required=True, help="the store, such as sqlite:///runs.db")
    add_cluster_option(parser)
    parser.add_argument(
        "--trial-timeout",
        type=positive_seconds,
        default=None,
        metavar="SECONDS",
        help="stop and record as failed any fit running longer (default: the spec's trial_timeout)",
    )
    parser.set_defaults(func=cmd_resume)


def add_run_command(sub: Any) -> None:
    """Register ``daskhpo run`` on the CLI's subparsers."""
    run = sub.add_parser(
        "run",
        help="run a search described in a YAML or JSON spec (for detached runs)",
        description="Run the search a spec file describes (estimator, search space, data loader, "
        "scoring, cv) on a cluster, logging every trial to --storage so that it can be watched with "
        "'daskhpo status' and continued with --resume after a crash. A spec names Python import "
        "paths: only run specs you trust.",
    )
    run.add_argument("spec", help="the spec file (.yaml, .yml or .json)")
    add_cluster_option(run)
    run.add_argument("--storage", default=None, help="trial store such as sqlite:///runs.db")
    run.add_argument(
        "--name", default=None, help="search name (default: the spec's name or file stem)"
    )
    run.add_argument(
        "--resume", action="store_true", help="continue the stored search of that name"
    )
    run.add_argument(
        "--trial-timeout",
        type=positive_seconds,
        default=None,
        metavar="SECONDS",
        help="stop and record as failed any fit running longer (overrides the spec's)",
    )
    run.set_defaults(func=cmd_run)
