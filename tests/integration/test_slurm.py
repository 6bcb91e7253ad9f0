"""slurm:// (and pbs://) on a real Slurm: Debian's slurm-wlm 22.05 with munge, one node on 127.0.0.1,
started by the module's fixture (tests/integration/_slurm.py). Searches run on Dask workers that are
Slurm batch jobs submitted by dask-jobqueue through daskhpo.connect; closing, exiting, refusals and
jobs that cannot start are checked against what squeue says.

No PBS server can be installed here: pbs:// is checked up to the job script it submits, and run through
the qsub/qstat/qdel wrappers of Debian's slurm-wlm-torque, which is Slurm behind PBS-style commands.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from dask_jobqueue import PBSCluster, SLURMCluster
from sklearn import model_selection as skms
from sklearn.tree import DecisionTreeClassifier

from daskhpo import ClusterError, GridSearchCV, InvalidSearchError, connect, get_client
from daskhpo.cluster import parse_target
from daskhpo.cluster.jobqueue import cluster_kwargs, job_script, job_states
from tests.integration._clusters import GRID, X, no_contact, not_the_timeout, same_scores, y
from tests.integration._slurm import SlurmLab, slurm_unavailable

ROOT = Path(__file__).resolve().parents[2]
UNAVAILABLE = slurm_unavailable()


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    if UNAVAILABLE is not None:
        pytest.skip(UNAVAILABLE)
    lab = SlurmLab(tmp_path_factory.mktemp("slurm")).start()
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("SLURM_CONF", str(lab.conf))  # sbatch, squeue, scancel find this lab
            yield lab
    finally:
        lab.stop()


@pytest.fixture
def empty_queue(slurm):
    """The lab with no job queued before the test, and none left after it."""
    assert slurm.wait_queue_empty() == []
    yield slurm
    assert slurm.wait_queue_empty() == [], "jobs left behind"


def target(lab: SlurmLab, scheme: str = "slurm", **extra) -> str:
    """A target for the lab: 1-core, 1 GB jobs on the 'debug' partition, workers on loopback."""
    options = {
        "cores": 1,
        "memory": "1GB",
        "walltime": "00:10:00",
        "interface": "lo",
        "dashboard_address": ":0",
        "log_directory": lab.jobs_dir,
        **extra,
    }
    return f"{scheme}://debug?" + "&".join(f"{k}={v}" for k, v in options.items())


def sklearn_results() -> dict:
    return (
        skms.GridSearchCV(DecisionTreeClassifier(random_state=0), GRID, cv=3).fit(X, y).cv_results_
    )


def job_ids(client) -> list[str]:
    """The SLURM_JOB_ID each worker process sees (None outside a Slurm job)."""
    return sorted(client.run(lambda: os.environ.get("SLURM_JOB_ID")).values(), key=str)


@pytest.mark.timeout(120)  # a hang guard: the search takes seconds
def test_search_on_slurm_jobs_matches_scikit_learn_and_close_cancels_them(empty_queue):
    lab = empty_queue
    where = target(
        lab,
        jobs=2,
        account="hpo",
        job_extra_directives="[--comment=from-daskhpo]",
        job_script_prologue="[export DASKHPO_PROLOGUE=ran]",
    )
    search = GridSearchCV(DecisionTreeClassifier(random_state=0), GRID, cv=3, client=where)
    try:
        search.fit(X, y)
        same_scores(search.cv_results_, sklearn_results())
        client = get_client(where)  # the client the search used, kept for the target string
        queued = lab.queue()
        # Both workers are processes of the two running Slurm jobs, one each.
        assert job_ids(client) == sorted(job for job, _, _ in queued)
        assert [state for _, state, _ in queued] == ["RUNNING", "RUNNING"]
        # What Slurm was asked for: account=, the queue, cores=, memory= (1e9 B), walltime=, and
        # the extra directive; the prologue ran before each worker.
        asked = lab.run("squeue", "-h", "-o", "%a|%P|%C|%m|%l|%k").stdout.split()
        assert asked == ["hpo|debug|1|954M|10:00|from-daskhpo"] * 2
        assert set(client.run(lambda: os.environ.get("DASKHPO_PROLOGUE")).values()) == {"ran"}
        cluster = client._daskhpo_owned
        assert isinstance(cluster, SLURMCluster)
    finally:
        get_client(where).close()
    assert cluster.status.name == "closed"
    assert lab.wait_queue_empty(10) == []  # closing the client cancelled the jobs


_EXITS = """
import sys
from daskhpo import connect

client = connect(sys.argv[1])
print(" ".join(str(v) for v in client.run(lambda: __import__("os").environ["SLURM_JOB_ID"]).values()))
sys.stdout.flush()
# no close: the interpreter's exit must cancel the jobs
"""


@pytest.mark.timeout(120)
def test_jobs_are_cancelled_when_the_interpreter_exits(empty_queue, tmp_path):
    lab = empty_queue
    script = tmp_path / "exits.py"
    script.write_text(textwrap.dedent(_EXITS))
    out = tmp_path / "out.txt"
    with open(out, "w") as sink:  # a file, not a pipe (see TESTING-REAL-PARTS)
        done = subprocess.run(
            # One 2-core job: processes defaults to cores, so two single-threaded workers in it.
            [sys.executable, str(script), target(lab, cores=2, memory="2GB")],
            stdout=sink,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            timeout=100,
        )
    text = out.read_text()
    assert done.returncode == 0, text[-3000:]
    ran = text.strip().splitlines()[-1].split()
    assert len(ran) == 2 and ran[0] == ran[1] and ran[0].isdigit(), text[-3000:]
    # Gone once the process has exited (not left to run out their 10-minute walltime).
    assert lab.wait_queue_empty(10) == []


@pytest.mark.timeout(120)
def test_a_slurmcluster_made_by_the_user_as_cluster(empty_queue):
    lab = empty_queue
    with SLURMCluster(
        cores=1,
        processes=1,
        memory="1GB",
        queue="debug",
        walltime="00:10:00",
        interface="lo",
        scheduler_options={"dashboard_address": ":0"},
        log_directory=str(lab.jobs_dir),
    ) as cluster:
        cluster.scale(jobs=1)
        cluster.wait_for_workers(1, timeout=60)
        search = GridSearchCV(DecisionTreeClassifier(random_state=0), GRID, cv=3, cluster=cluster)
        same_scores(search.fit(X, y).cv_results_, sklearn_results())
        assert job_ids(get_client(cluster)) == [job for job, _, _ in lab.queue()]


@pytest.mark.parametrize(
    ("where", "options", "message"),
    [
        ("slurm://debug?cores=zero&memory=1GB", {}, "cores='zero'; give a whole number"),
        ("slurm://debug?cores=1&memory=1GB&walltim=1:00:00", {}, "did you mean 'walltime'"),
        ("slurm://debug?cores=1&memory=lots", {}, "memory='lots'; give each job's memory"),
        ("slurm://debug?cores=1", {}, "memory= is required"),
        ("slurm://debug?cores=2&processes=3&memory=1GB", {}, "processes=3 does not divide"),
        ("slurm://debug?cores=1&memory=1GB&walltime=1h", {}, "walltime='1h'; give the jobs'"),
        ("slurm://debug?cores=1&memory=1GB&jobs=0", {}, "jobs=0; give a whole number"),
        (
            "slurm://debug?cores=1&memory=1GB",
            {"n_workers": 2},
            "give jobs= .* instead of n_workers",
        ),
        (
            "slurm://debug?cores=1&memory=1GB",
            {"interface": "nosuch0"},
            "'nosuch0' is not a network",
        ),
        ("slurm://debug?cores=1&memory=1GB", {"cluster_options": {"memory": "2GB"}}, "cluster_opt"),
        ("slurm://debug?cores=1&memory=1GB", {"cluster_options": {"bogus": 1}}, "'bogus', which"),
        ("slurm://debug?cores=1&memory=1GB", {"job_extra_directives": 5}, "list of strings"),
        ("slurm://deb ug?cores=1&memory=1GB", {}, "queue='deb ug'"),
        ("pbs://workq?cores=1&memory=1GB&walltime=1-00:00:00", {}, "walltime='1-00:00:00'"),
    ],
)
def test_bad_options_are_refused_before_anything_is_submitted(empty_queue, where, options, message):
    # no_contact: any socket connection, name lookup or process start (sbatch) fails the test.
    with no_contact(), pytest.raises(InvalidSearchError, match=message) as info:
        connect(where, **options)
    assert str(info.value).startswith(f"cluster={where!r}:")
    assert empty_queue.queue() == []


def test_a_search_with_a_bad_target_fails_before_submitting(empty_queue):
    search = GridSearchCV(DecisionTreeClassifier(), {"max_depth": [1, 2]}, cv=2)
    search.set_params(client="slurm://debug?cores=0&memory=1GB")
    with no_contact(), pytest.raises(InvalidSearchError, match="cores=0"):
        search.fit(X, y)
    assert empty_queue.queue() == []


def test_missing_sbatch_or_dask_jobqueue_name_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch, no qsub
    for scheme, command in (("slurm", "sbatch"), ("pbs", "qsub")):
        with no_contact(), pytest.raises(ClusterError, match=f"'{command}' is not on PATH") as info:
            connect(f"{scheme}://debug?cores=1&memory=1GB")
        assert "login node" in str(info.value)
    monkeypatch.setitem(sys.modules, "dask_jobqueue", None)  # as if it were not installed
    with no_contact(), pytest.raises(ClusterError, match=r"pip install 'daskhpo\[hpc\]'"):
        connect("slurm://debug?cores=1&memory=1GB")


@pytest.mark.timeout(120)  # a hang guard: each call ends on its own, as asserted
def test_jobs_slurm_refuses_or_cannot_start_fail_with_its_reason_and_leave_none(empty_queue):
    lab = empty_queue
    # More memory than the node has: sbatch refuses at once, in its own words.
    began = time.monotonic()
    with pytest.raises(ClusterError, match="sbatch refused the worker job") as info:
        connect(target(lab, memory="100GB"), timeout=30)
    text = not_the_timeout(info.value, 30)
    assert "Requested node configuration is not available" in text and "memory=100GB" in text
    assert time.monotonic() - began < 15
    assert lab.queue() == []
    # Three 1-core jobs on a 2-core node: two start, the third waits for resources until the timeout.
    # (Two joined unless the machine is too busy to start them within the 10 s.)
    with pytest.raises(ClusterError, match="[0-2] of 3 Dask workers joined within 10 s") as info:
        connect(target(lab, jobs=3), timeout=10)
    text = str(info.value)
    assert "PENDING (Resources)" in text and "still queued" in text and "cancelled" in text
    assert lab.wait_queue_empty(10) == []  # the two that ran and the one that waited
    # A job that runs but whose worker cannot start (no such python on the node): said at once.
    with pytest.raises(ClusterError, match=r"job \d+ ended \(FAILED") as info:
        connect(target(lab, python="/nonexistent/bin/python"), timeout=30)
    text = not_the_timeout(info.value, 30)
    assert "before its Dask worker joined" in text and "python=" in text
    assert str(lab.jobs_dir) in text  # where the job's output is, and its last line
    assert "/nonexistent/bin/python: No such file or directory" in text
    assert lab.wait_queue_empty(10) == []


def test_pbs_job_script_has_the_pbs_directives():
    where = (
        "pbs://workq?cores=4&memory=8GB&walltime=01:30:00&account=proj"
        "&job_extra_directives=[-m n, -j oe]&job_script_prologue=[source /shared/env/bin/activate]"
    )
    script = job_script(where)
    lines = script.splitlines()
    header = [line for line in lines if line.startswith("#PBS")]
    assert header == [
        "#PBS -N dask-worker",
        "#PBS -q workq",
        "#PBS -A proj",
        "#PBS -l select=1:ncpus=4:mem=7630MB",  # dask-jobqueue's rounding of 8 GB to MiB
        "#PBS -l walltime=01:30:00",
        "#PBS -m n",
        "#PBS -j oe",
    ]
    assert lines[0] == "#!/usr/bin/env bash"
    assert "source /shared/env/bin/activate" in lines
    worker = lines[-1].split()
    assert worker[:3] == [sys.executable, "-m", "distributed.cli.dask_worker"]  # this venv's python
    for flag, value in (("--nthreads", "1"), ("--nworkers", "4"), ("--memory-limit", "1.86GiB")):
        assert worker[worker.index(flag) + 1] == value
    # The same text as a real PBSCluster's from the options connect passes it (only the scheduler's
    # address differs: the cluster's own).
    scheme, rest, query = parse_target(where)
    kwargs, jobs = cluster_kwargs(where, scheme, rest, query)
    assert jobs == 1
    with PBSCluster(**kwargs, scheduler_options={"dashboard_address": ":0"}) as cluster:
        theirs = cluster.job_script()
        assert theirs.replace(cluster.scheduler.address, "tcp://<scheduler-address>:8786") == script
    # resource_spec= replaces the computed select line; python= replaces the interpreter.
    custom = job_script(where, resource_spec="nodes=1:ppn=4", python="/opt/py/bin/python3")
    assert "#PBS -l nodes=1:ppn=4" in custom and "select=" not in custom
    assert custom.splitlines()[-1].startswith("/opt/py/bin/python3 -m distributed.cli.dask_worker")


@pytest.mark.timeout(120)
@pytest.mark.skipif(
    shutil.which("qsub") is None, reason="qsub missing: apt-get install slurm-wlm-torque"
)
def test_pbs_target_through_slurms_qsub_wrapper(empty_queue, tmp_path, monkeypatch):
    # Slurm's qsub wrapper writes job output to the current folder, whatever the script's #PBS says.
    monkeypatch.chdir(tmp_path)
    lab = empty_queue
    with connect(target(lab, "pbs", jobs=2)) as client:
        ran = job_ids(client)
        assert len(ran) == 2 and ran == sorted(job for job, _, _ in lab.queue())
        # qstat -f (the wrapper's Torque-style output) read for each job's state.
        assert job_states("pbs", ran) == {job: ("R", "") for job in ran}
        assert client.submit(sum, [1, 2]).result() == 3
    assert lab.wait_queue_empty(10) == []  # qdel on close
