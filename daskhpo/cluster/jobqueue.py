"""``connect("slurm://QUEUE", ...)`` and ``connect("pbs://QUEUE", ...)``: Dask workers as batch jobs.

Through `dask-jobqueue <https://jobqueue.dask.org>`_ (extra ``daskhpo[hpc]``): the scheduler runs in
this process (on the login node), and each batch job (``sbatch``, ``qsub``) runs ``processes`` Dask
workers of ``cores / processes`` threads each. ``connect`` submits ``jobs`` jobs, waits until every
worker has joined and returns a client that owns the cluster: closing it (or leaving the interpreter)
cancels the jobs (``scancel``, ``qdel``).

What can be checked here is checked before anything starts, with messages that name the option: option
names and values, then the job script itself (:func:`job_script` builds it offline, as dask-jobqueue
would). A submission the batch system refuses (a memory or time limit, an unknown account or queue) is
reported with the batch system's own words; jobs that stay queued past ``timeout`` are reported with
the reason the batch system gives (``squeue``'s reason, ``qstat -f``'s comment), and cancelled.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from distributed import Client

from ..exceptions import ClusterError, InvalidSearchError, InvalidSearchTypeError
from .options import (
    check_options,
    owning_client,
    positive_int,
    query_options,
    require_extra,
    run_bounded,
    timeout_option,
    workers_info,
)

__all__ = ["connect_jobqueue", "job_script", "cluster_kwargs", "job_states", "JOBQUEUE_SCHEMES"]


@dataclass(frozen=True)
class _System:
    """What differs between the batch systems daskhpo drives through dask-jobqueue."""

    name: str  # for messages
    cluster: str  # dask_jobqueue class
    submit: str
    cancel: str
    status: str  # the command whose output says why a job waits
    walltime: re.Pattern[str]
    walltime_forms: str
    options: frozenset[str]  # options only this system takes


_COMMON_OPTIONS = frozenset(
    {
        "queue",
        "account",
        "walltime",
        "cores",
        "memory",
        "processes",
        "jobs",
        "job_extra_directives",
        "job_script_prologue",
        "interface",
        "python",
        "log_directory",
        "local_directory",
        "dashboard_address",
        "scheduler_options",
        "cluster_options",
    }
)

#: scheme -> the batch system behind it.
JOBQUEUE_SCHEMES: dict[str, _System] = {
    "slurm": _System(
        name="Slurm",
        cluster="SLURMCluster",
        submit="sbatch",
        cancel="scancel",
        status="squeue",
        # minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS (sbatch --time)
        walltime=re.compile(r"\d+(:\d{1,2}){0,2}|\d+-\d{1,2}(:\d{1,2}){0,2}"),
        walltime_forms="'HH:MM:SS' (or Slurm's 'MM', 'MM:SS', 'D-HH', 'D-HH:MM:SS')",
        options=frozenset(),
    ),
    "pbs": _System(
        name="PBS",
        cluster="PBSCluster",
        submit="qsub",
        cancel="qdel",
        status="qstat",
        walltime=re.compile(r"\d+(:\d{1,2}){0,2}"),  # [[HH:]MM:]SS
        walltime_forms="'HH:MM:SS' (or a number of seconds as text)",
        options=frozenset({"resource_spec"}),
    ),
}

# SLURMCluster/PBSCluster keywords daskhpo sets from its own options: not accepted in cluster_options.
# (Its own options but those that are not cluster keywords, plus what it always passes.)
_OWN_KEYWORDS = (_COMMON_OPTIONS - {"jobs", "dashboard_address", "cluster_options"}) | {
    "resource_spec",
    "n_workers",
    "job_cls",
    "asynchronous",
}
_NAME = re.compile(r"[\w.@+-]+")


def _query_text(target: str, name: str) -> str | None:
    """The text of option ``name`` as written in the target's query string (not read as YAML)."""
    query = target.partition("?")[2]
    if not query:
        return None
    try:
        return dict(parse_qsl(query, keep_blank_values=True)).get(name)
    except ValueError:
        return None


def _as_yaml(text: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return None


def _string_list(target: str, options: Mapping[str, Any], name: str, example: str) -> list[str]:
    value = options.get(name)
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise InvalidSearchTypeError(
            f"cluster={target!r}: {name}={value!r}; give a list of strings, e.g. {example}."
        )
    return list(value)


def _text(target: str, options: Mapping[str, Any], name: str, example: str) -> str | None:
    value = options.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidSearchTypeError(
            f"cluster={target!r}: {name}={value!r}; give a non-empty string such as {example!r}."
        )
    return value


def cluster_kwargs(
    target: str, scheme: str, rest: str, options: Mapping[str, Any]
) -> tuple[dict[str, Any], int]:
    """Check the options of a ``slurm://`` or ``pbs://`` target; return the keyword arguments of
    ``SLURMCluster``/``PBSCluster`` and the number of jobs to submit.

    Nothing is started and dask-jobqueue is not needed, except to read its configuration
    (``jobqueue.slurm.cores``, ...) for ``cores``, ``memory`` and ``processes`` when they are not
    given and dask-jobqueue is installed.

    Raises
    ------
    InvalidSearchError
        An unknown option or a bad value, naming it and the fix.
    """
    system = JOBQUEUE_SCHEMES[scheme]
    if "n_workers" in options:
        raise InvalidSearchError(
            f"cluster={target!r}: {scheme}:// counts batch jobs, not workers: give jobs= (each job "
            "runs processes= workers, one per core by default) instead of n_workers=."
        )
    check_options(target, options, _COMMON_OPTIONS | system.options)
    kwargs: dict[str, Any] = {}

    queue = rest.strip().strip("/") or None
    if options.get("queue") is not None:
        given = _text(target, options, "queue", "debug")
        if queue is not None and given != queue:
            raise InvalidSearchError(
                f"cluster={target!r}: the queue is named twice ({queue!r} in the target, "
                f"queue={given!r}); give it once, as '{scheme}://QUEUE'."
            )
        queue = given
    for name, value in (("queue", queue), ("account", _text(target, options, "account", "proj"))):
        if value is None:
            continue
        if not _NAME.fullmatch(value):
            raise InvalidSearchError(
                f"cluster={target!r}: {name}={value!r}; give a {system.name} {name} name (letters, "
                "digits and _ . @ + - only)."
            )
        kwargs[name] = value

    walltime = options.get("walltime")
    if isinstance(walltime, int) and not isinstance(walltime, bool):
        # In a query string YAML reads '10:00' as 600 (base 60): take the text as written there.
        written = _query_text(target, "walltime")
        if written is not None and _as_yaml(written) == walltime:
            walltime = written
    if walltime is not None:
        if not isinstance(walltime, str) or not system.walltime.fullmatch(walltime.strip()):
            raise InvalidSearchError(
                f"cluster={target!r}: walltime={walltime!r}; give the jobs' time limit as a string, "
                f"{system.walltime_forms}, such as '01:00:00'."
            )
        kwargs["walltime"] = walltime.strip()

    cores = positive_int(target, options, "cores")
    processes = positive_int(target, options, "processes")
    memory = options.get("memory")
    if memory is not None:
        from dask.utils import parse_bytes

        try:
            size = parse_bytes(memory) if isinstance(memory, str) else memory
        except ValueError:
            size = None
        if isinstance(size, bool) or not isinstance(size, int) or size < 2**20:
            raise InvalidSearchError(
                f"cluster={target!r}: memory={memory!r}; give each job's memory as a size such as "
                "'4GB' or '16GiB' (at least 1 MiB)."
            )
        kwargs["memory"] = memory if isinstance(memory, str) else f"{memory}B"

    # Not given: dask-jobqueue's configuration (jobqueue.yaml), when it is installed.
    config = _jobqueue_config(scheme)
    if cores is None:
        cores = config.get("cores")
    if memory is None and config.get("memory") is None:
        raise InvalidSearchError(
            f"cluster={target!r}: memory= is required: give each job's memory, e.g. "
            f"'{scheme}://QUEUE?cores=4&memory=16GB' (or set jobqueue.{scheme}.memory in the Dask "
            "config)."
        )
    if cores is None:
        raise InvalidSearchError(
            f"cluster={target!r}: cores= is required: give each job's cores, e.g. "
            f"'{scheme}://QUEUE?cores=4&memory=16GB' (or set jobqueue.{scheme}.cores in the Dask "
            "config)."
        )
    if processes is None:
        # One single-threaded worker per core, like the local cluster: scikit-learn fits hold the GIL.
        processes = config.get("processes") or cores
    if processes > cores or cores % processes:
        raise InvalidSearchError(
            f"cluster={target!r}: processes={processes} does not divide cores={cores}; each job "
            "runs processes= workers of cores/processes threads each: give a divisor of cores "
            "(default: cores, one single-threaded worker per core)."
        )
    kwargs["cores"], kwargs["processes"] = cores, processes
    jobs = positive_int(target, options, "jobs", 1)

    kwargs["job_extra_directives"] = _string_list(
        target, options, "job_extra_directives", "['--exclusive']"
    )
    for line in kwargs["job_extra_directives"]:
        if "\n" in line:
            raise InvalidSearchError(
                f"cluster={target!r}: job_extra_directives has {line!r}, with a line break; give "
                "one directive per item."
            )
    kwargs["job_script_prologue"] = _string_list(
        target, options, "job_script_prologue", "['module load python', 'source env/bin/activate']"
    )
    for name, example in (
        ("interface", "ib0"),
        ("python", "/shared/env/bin/python"),
        ("log_directory", "~/dask-logs"),
        ("local_directory", "$TMPDIR"),
        ("resource_spec", "select=1:ncpus=4:mem=16GB"),
    ):
        value = _text(target, options, name, example)
        if value is not None:
            kwargs[name] = os.path.expanduser(value) if name == "log_directory" else value

    scheduler_options = options.get("scheduler_options") or {}
    cluster_options = options.get("cluster_options") or {}
    for key, mapping in (
        ("scheduler_options", scheduler_options),
        ("cluster_options", cluster_options),
    ):
        if not isinstance(mapping, Mapping):
            raise InvalidSearchTypeError(
                f"cluster={target!r}: {key}={mapping!r}; give a mapping of keyword arguments."
            )
    scheduler_options = dict(scheduler_options)
    if "dashboard_address" in options:
        scheduler_options["dashboard_address"] = _text(
            target, options, "dashboard_address", ":8787"
        )
    if "interface" in kwargs and not {"host", "interface"} & set(scheduler_options):
        # The scheduler runs here and binds to that interface: it must be one of this machine's.
        import psutil

        here = sorted(psutil.net_if_addrs())
        if kwargs["interface"] not in here:
            raise InvalidSearchError(
                f"cluster={target!r}: interface={kwargs['interface']!r} is not a network interface "
                f"of this machine (it has {', '.join(here)}); the scheduler runs here and the "
                "workers connect to it there: name one that the compute nodes reach, or set "
                "scheduler_options={'interface': ...} for the scheduler's own."
            )
    taken = sorted(_OWN_KEYWORDS & set(cluster_options))
    if taken:
        raise InvalidSearchError(
            f"cluster={target!r}: cluster_options has {', '.join(taken)}, which {scheme}:// sets "
            "from its own options: give them as options of the target (jobs= for n_workers)."
        )
    if scheduler_options:
        kwargs["scheduler_options"] = scheduler_options
    kwargs.update(cluster_options)
    return kwargs, jobs


def _jobqueue_config(scheme: str) -> dict[str, Any]:
    try:
        import dask_jobqueue  # noqa: F401  (loads jobqueue.yaml into the Dask config)
    except ImportError:
        return {}
    import dask

    return dict(dask.config.get(f"jobqueue.{scheme}", {}))


def _job_class(scheme: str) -> Any:
    import dask_jobqueue

    system = JOBQUEUE_SCHEMES[scheme]
    return getattr(dask_jobqueue, system.cluster).job_cls


def _build_job(target: str, scheme: str, kwargs: Mapping[str, Any], job_cls: Any = None) -> Any:
    """The dask-jobqueue Job object for one worker, built offline (as ``cluster.job_script()`` does),
    which also checks every keyword."""
    job_cls = job_cls or _job_class(scheme)
    job_kwargs = dict(kwargs)
    scheduler_options = job_kwargs.pop("scheduler_options", None)
    del scheduler_options  # the scheduler's, not the job's
    for cluster_only in (
        "silence_logs",
        "name",
        "shared_temp_directory",
        "loop",
        "scheduler_cls",
        "security",  # the cluster turns True into certificates and gives the jobs theirs
        "protocol",
    ):
        job_kwargs.pop(cluster_only, None)
    try:
        # The placeholder address and worker name of dask-jobqueue's own cluster.job_script().
        return job_cls("tcp://<scheduler-address>:8786", name="dummy-name", **job_kwargs)
    except TypeError as exc:
        found = re.search(r"keyword argument '(\w+)'", str(exc))
        bad = found[1] if found else str(exc)
        raise InvalidSearchError(
            f"cluster={target!r}: cluster_options has {bad!r}, which "
            f"dask_jobqueue.{JOBQUEUE_SCHEMES[scheme].cluster} does not take; see its documentation "
            "for the keywords it does."
        ) from exc
    except (ValueError, OSError) as exc:
        raise InvalidSearchError(f"cluster={target!r}: {exc}") from exc


def job_script(target: str, **options: Any) -> str:
    """The batch script each worker job of a ``slurm://`` or ``pbs://`` target runs, made offline.

    The same text as dask-jobqueue's ``cluster.job_script()`` for a cluster made from these options,
    with ``tcp://<scheduler-address>:8786`` where the scheduler's address goes (and ``dummy-name``
    where each worker's name goes, as there); nothing is started or submitted.

    Parameters
    ----------
    target : str
        ``"slurm://QUEUE?..."`` or ``"pbs://QUEUE?..."``, options as for :func:`daskhpo.connect`.
    **options
        More options (win over the query string's).

    Raises
    ------
    InvalidSearchError
        For a target that is not slurm:// or pbs://, or a bad option.
    ClusterError
        When dask-jobqueue is not installed.

    Examples
    --------
    >>> print(job_script("slurm://debug?cores=2&memory=4GB&walltime=01:00:00"))  # doctest: +SKIP
    #!/usr/bin/env bash
    <BLANKLINE>
    #SBATCH -J dask-worker
    #SBATCH -p debug
    ...
    """
    scheme, _, rest = target.strip().partition("://") if isinstance(target, str) else ("", "", "")
    scheme = scheme.lower()
    rest, _, query = rest.partition("?")
    if scheme not in JOBQUEUE_SCHEMES:
        raise InvalidSearchError(
            f"job_script({target!r}): give a slurm:// or pbs:// target, such as "
            "'slurm://debug?cores=4&memory=16GB'."
        )
    merged = {**query_options(target, query), **options}
    merged.pop("timeout", None)
    kwargs, _ = cluster_kwargs(target, scheme, rest, merged)
    require_extra(target, scheme)
    return str(_build_job(target, scheme, kwargs).job_script())


# -- asking the batch system why a job waits ------------------------------------------------------------


def _run(command: list[str]) -> str | None:
    """A short status command's output, or None when it fails (missing, unreachable, unknown ids)."""
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def job_states(scheme: str, job_ids: list[str]) -> dict[str, tuple[str, str]]:
    """``{job id: (state, reason)}`` as ``squeue`` (Slurm) or ``qstat -f`` (PBS) says now; jobs it
    does not list are left out (an empty dict when the command fails)."""
    if not job_ids:
        return {}
    found: dict[str, tuple[str, str]] = {}
    if scheme == "slurm":
        out = _run(["squeue", "-h", "-t", "all", "-j", ",".join(job_ids), "-o", "%i|%T|%r"])
        for line in (out or "").splitlines():
            parts = line.strip().split("|", 2)
            if len(parts) == 3:
                found[parts[0]] = (parts[1], parts[2])
        return found
    out = _run(["qstat", "-f", *job_ids])
    job = None
    for line in (out or "").splitlines():
        if line.startswith("Job Id:"):
            job = line.split(":", 1)[1].strip().split(".", 1)[0]
            found[job] = ("", "")
        elif job is not None and "=" in line:
            key, _, value = (part.strip() for part in line.partition("="))
            state, reason = found[job]
            if key == "job_state":
                found[job] = (value, reason)
            elif key == "comment":
                found[job] = (state, value)
    return {job: found[job] for job in job_ids if job in found}


# States of a job that has ended (Slurm's names; PBS's F, finished, and Torque's C, completed), and
# of one still waiting to start.
_ENDED = {
    "COMPLETED",
    "CANCELLED",
    "FAILED",
    "TIMEOUT",
    "NODE_FAIL",
    "PREEMPTED",
    "BOOT_FAIL",
    "DEADLINE",
    "OUT_OF_MEMORY",
    "F",
    "C",
}
_WAITING = {"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "Q", "H", "W", "T"}


# -- slurm:// and pbs:// -----------------------------------------------------------------------------------


class _Submissions:
    """What the worker jobs of one connect did: each submitted job's (worker name, job id), and the
    submissions the batch system refused.

    A dask-jobqueue cluster submits its jobs from its event loop, and an ``sbatch`` that fails there
    is only logged; a Job class made by :meth:`job_class` records the failure for ``connect`` to
    report instead (and its job, having no id, is never cancelled).
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.jobs: list[tuple[str, str]] = []
        self.refused: list[BaseException] = []

    def job_class(self, base: Any) -> Any:
        from distributed.core import Status

        record = self

        class RecordedJob(base):
            async def start(self) -> None:
                try:
                    await super().start()
                except Exception as exc:
                    with record.lock:
                        record.refused.append(exc)
                    # Started as far as SpecCluster asks (it asserts so), with no job id to cancel.
                    self.status = Status.running
                    return
                with record.lock:
                    record.jobs.append((str(self.name), str(self.job_id)))

        RecordedJob.__name__ = RecordedJob.__qualname__ = base.__name__
        return RecordedJob


def _refusal(exc: BaseException) -> str:
    """The batch system's own words from a failed submission: the stderr (else the stdout) quoted in
    dask-jobqueue's RuntimeError, on one line."""
    text = str(exc)
    out, _, err = text.partition("stderr:")
    out = out.partition("stdout:")[2]
    words = [line.strip() for line in (err if err.strip() else out).splitlines() if line.strip()]
    return " ".join(words) or text


def _job_output(system: _System, kwargs: Mapping[str, Any], job_id: str) -> tuple[str, str]:
    """Where a job's output is (for the message), and the last line of its error output when that
    file can be read from here (a shared file system, or a single machine)."""
    import dask

    directory = kwargs.get("log_directory")
    scheme = "slurm" if system.submit == "sbatch" else "pbs"
    name = kwargs.get("job_name") or dask.config.get(f"jobqueue.{scheme}.name", "dask-worker")
    if scheme == "slurm":
        path = os.path.join(
            directory or os.getcwd(), f"{name}-{job_id}.err" if directory else f"slurm-{job_id}.out"
        )
        where = path if directory else f"slurm-{job_id}.out in {os.getcwd()}"
    else:
        path = os.path.join(directory or os.getcwd(), f"{name}.e{job_id}")
        where = f"{name}.o{job_id} and {name}.e{job_id} in {directory or os.getcwd()}"
    last = ""
    try:
        with open(path, errors="replace") as f:
            lines = [line.strip() for line in f.read()[-4000:].splitlines() if line.strip()]
        last = lines[-1][-300:] if lines else ""
    except OSError:
        pass
    return where, last


def _joined(names: set[str], job_name: str) -> bool:
    return job_name in names or any(n.startswith(f"{job_name}-") for n in names)


def connect_jobqueue(target: str, scheme: str, rest: str, options: dict[str, Any]) -> Client:
    """``connect("slurm://QUEUE", ...)``, ``connect("pbs://QUEUE", ...)``: see :func:`daskhpo.connect`."""
    system = JOBQUEUE_SCHEMES[scheme]
    timeout = timeout_option(target, options, 300.0)
    kwargs, jobs = cluster_kwargs(target, scheme, rest, options)
    require_extra(target, scheme)
    _build_job(target, scheme, kwargs)  # every keyword checked before a scheduler starts
    if shutil.which(system.submit) is None:
        raise ClusterError(
            f"cluster={target!r}: {system.submit!r} is not on PATH, so no {system.name} job can be "
            f"submitted from here: run this on a login node of the {system.name} cluster (where "
            f"{system.submit} and {system.cancel} work), or add their folder to PATH."
        )
    workers = jobs * kwargs["processes"]
    began = time.monotonic()

    def start() -> Client:
        import dask_jobqueue

        cluster_cls = getattr(dask_jobqueue, system.cluster)
        submissions = _Submissions()
        cluster = cluster_cls(job_cls=submissions.job_class(cluster_cls.job_cls), **kwargs)
        client = None
        try:
            client = owning_client(cluster)
            cluster.scale(jobs=jobs)
            _wait_for_workers(client, cluster, submissions)
        except BaseException:
            if client is not None:
                client.close()  # closes the cluster: cancels the jobs submitted so far
            else:
                cluster.close()
            raise
        return client

    def _wait_for_workers(client: Any, cluster: Any, submissions: _Submissions) -> None:
        deadline = began + timeout
        checked = 0.0
        states: dict[str, tuple[str, str]] = {}
        while True:
            with submissions.lock:
                refused = list(submissions.refused)
                submitted = list(submissions.jobs)
            if refused:
                asked = ", ".join(
                    f"{key}={kwargs[key]}"
                    for key in ("queue", "account", "cores", "memory", "walltime")
                    if kwargs.get(key) is not None
                )
                where = "sinfo; scontrol show partition" if scheme == "slurm" else "qstat -Q -f"
                raise ClusterError(
                    f"cluster={target!r}: {system.submit} refused the worker job: "
                    f"{_refusal(refused[0])} Each job asked for {asked}: check them against what "
                    f"the queue allows ({where})."
                )
            names = {str(info.get("name")) for info in workers_info(client).values()}
            if len(names) >= workers:
                return
            now = time.monotonic()
            if now - checked >= 1.0 or now >= deadline:
                checked = now
                states = job_states(scheme, [job for _, job in submitted])
                for name, job in submitted:
                    state, reason = states.get(job, ("", ""))
                    if state in _ENDED and not _joined(names, name):
                        where, last = _job_output(system, kwargs, job)
                        raise ClusterError(
                            f"cluster={target!r}: {system.name} job {job} ended ({state}"
                            + (f", {reason}" if reason and reason != "None" else "")
                            + ") before its Dask worker joined: the worker did not start on the "
                            f"compute node. See the job's output ({where})"
                            + (f", which ends: {last!r}" if last else "")
                            + "; check that python= names a Python with daskhpo's version of "
                            "distributed on the compute nodes (job_script_prologue= can load a "
                            "module or activate an environment)."
                        )
            if now >= deadline:
                raise ClusterError(_timeout_message(submitted, states, names, cluster))
            time.sleep(0.25)

    def _timeout_message(
        submitted: list[tuple[str, str]],
        states: dict[str, tuple[str, str]],
        names: set[str],
        cluster: Any,
    ) -> str:
        said, waiting, running = [], False, False
        for name, job in submitted:
            if _joined(names, name):
                continue
            state, reason = states.get(job, ("", ""))
            if state in _WAITING:
                waiting = True
            elif state:
                running = True
            text = f"job {job} {state or 'not listed by ' + system.status}"
            if reason and reason != "None":
                text += f" ({reason})"
            said.append(text)
        message = (
            f"cluster={target!r}: {len(names)} of {workers} Dask workers joined within "
            f"{timeout:g} s; {', '.join(said) or 'no job was submitted'}."
        )
        if waiting:
            how = (
                "squeue --start -j ID says when Slurm expects them to start, sinfo what is free"
                if scheme == "slurm"
                else "qstat -f ID says why they wait"
            )
            message += (
                f" The jobs were still queued ({how}): raise timeout= to wait longer, or ask for "
                "less (cores=, memory=, walltime=, jobs=) or another queue=."
            )
        if running:
            address = getattr(getattr(cluster, "scheduler", None), "address", "the scheduler")
            message += (
                f" A running job's worker did not reach the scheduler at {address}: check that "
                "interface= names a network the compute nodes share with this machine, and read "
                "the job's output"
                + (f" in {kwargs['log_directory']}" if kwargs.get("log_directory") else "")
                + "."
            )
        return message + " The jobs were cancelled."

    def explain(exc: BaseException) -> str:
        if isinstance(exc, TimeoutError):
            return (
                f"the Dask scheduler or the {system.name} commands ({system.submit}, "
                f"{system.status}) did not answer."
            )
        return (
            f"the Dask scheduler for the {system.name} jobs did not start here: check interface=, "
            "dashboard_address= and scheduler_options=."
        )

    # The waiting above stops itself at `timeout` and cancels the jobs; the bound here only guards
    # against a scheduler or a batch command that never returns.
    return run_bounded(target, start, timeout + 60.0, explain, f"the {system.name} cluster")
