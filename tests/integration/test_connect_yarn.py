"""yarn:// up to the boundary. No Hadoop can be installed here, so: the application spec is checked with
skein's own model; each service's script runs as a local process the way a YARN NodeManager would start
it (files localized into the container's working directory, the packed environment unpacked, NM_HOST set),
over TLS, and a search runs on the result; submitting without Hadoop fails fast and says why."""

from __future__ import annotations

import os
import shutil
import tarfile
from pathlib import Path

import pytest
import yaml
from distributed import Security
from sklearn.tree import DecisionTreeClassifier

from daskhpo import ClusterError, GridSearchCV, InvalidSearchError, connect
from daskhpo.cli.yarn import main
from daskhpo.cluster import workers_info
from daskhpo.cluster.yarn import application_spec, tls_files
from tests.integration._clusters import (
    GRID,
    PYTHON,
    X,
    local_reference,
    no_contact,
    not_the_timeout,
    same_scores,
    start_logged,
    stop_process,
    wait_for_line,
    y,
)

skein = pytest.importorskip("skein", reason="yarn:// needs skein (pip install 'skein>=0.8.2')")


def _packed_environment(tmp_path: Path) -> Path:
    """A tiny stand-in for a conda-pack/venv-pack archive: bin/activate and bin/python at its root,
    the python being this test's interpreter (which has daskhpo)."""
    root = tmp_path / "env-src"
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "python").write_text(f'#!/bin/sh\nexec {PYTHON} "$@"\n')
    (root / "bin" / "python").chmod(0o755)
    (root / "bin" / "activate").write_text('export PATH="$PWD/environment/bin:$PATH"\n')
    archive = tmp_path / "environment.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for item in ("bin",):
            tar.add(root / item, arcname=item)
    return archive


def _localize(service: dict, workdir: Path) -> None:
    """What YARN does before running a container's script: copy each file resource into the working
    directory under its name, unpacking archives into a folder of that name."""
    workdir.mkdir(parents=True)
    for name, resource in service["files"].items():
        source = resource["source"].removeprefix("file://")
        if resource["type"] == "archive":
            with tarfile.open(source) as tar:
                tar.extractall(workdir / name, filter="data")
        else:
            shutil.copy(source, workdir / name)


def test_spec_is_accepted_by_skeins_model(tmp_path):
    environment = _packed_environment(tmp_path)
    tls = tls_files(Security.temporary(), tmp_path)
    spec = application_spec(
        name="hpo",
        queue="science",
        environment=str(environment),
        n_workers=3,
        threads=2,
        worker_vcores=2,
        worker_memory="3 GiB",
        tls=tls,
    )
    parsed = skein.ApplicationSpec.from_dict(spec)
    again = skein.ApplicationSpec.from_protobuf(parsed.to_protobuf())  # what skein sends to YARN
    assert again == parsed
    assert (parsed.name, parsed.queue) == ("hpo", "science")
    worker = parsed.services["dask.worker"]
    assert worker.instances == 3 and worker.depends == {"dask.scheduler"}
    assert (worker.resources.vcores, worker.resources.memory) == (2, 3072)
    assert "--nthreads 2" in worker.script and "--tls-cert worker-cert.pem" in worker.script
    assert str(parsed.services["dask.scheduler"].files["environment"].type) == "ARCHIVE"
    for name in ("ca.pem", "scheduler-key.pem"):
        assert oct(os.stat(tls[name]).st_mode & 0o777) == "0o600"  # written for its owner only


def test_the_services_scripts_run_a_cluster_a_search_uses(tmp_path, client):
    reference = local_reference(client)
    security = Security.temporary()
    spec = application_spec(
        environment=str(_packed_environment(tmp_path)),
        n_workers=2,
        worker_memory="1 GiB",
        tls=tls_files(security, tmp_path),
    )
    env = {**os.environ, "NM_HOST": "127.0.0.1"}  # YARN's NodeManager sets NM_HOST in containers
    env.pop("DASK_SCHEDULER_ADDRESS", None)
    procs = []
    try:
        scheduler = spec["services"]["dask.scheduler"]
        _localize(scheduler, tmp_path / "scheduler")
        log = tmp_path / "scheduler.log"
        procs.append(start_logged(scheduler["script"], log, cwd=tmp_path / "scheduler", env=env))
        address = wait_for_line(log, "Scheduler at:", procs[-1])
        assert address.startswith("tls://127.0.0.1:")
        worker = spec["services"]["dask.worker"]
        for i in range(worker["instances"]):
            # The scheduler's preload publishes its address in skein's key-value store and the worker
            # script reads it there; without YARN the test passes it the way the script also accepts.
            _localize(worker, tmp_path / f"worker{i}")
            worker_env = {**env, "DASK_SCHEDULER_ADDRESS": address}
            procs.append(
                start_logged(
                    worker["script"],
                    tmp_path / f"worker{i}.log",
                    cwd=tmp_path / f"worker{i}",
                    env=worker_env,
                )
            )
        with connect(address, security=security, timeout=30) as tls_client:
            tls_client.wait_for_workers(2, timeout=60)
            workers = workers_info(tls_client)
            assert all(a.startswith("tls://127.0.0.1:") for a in workers)
            assert {w["memory_limit"] for w in workers.values()} == {2**30}
            search = GridSearchCV(
                DecisionTreeClassifier(random_state=0), GRID, cv=3, client=tls_client
            )
            same_scores(search.fit(X, y).cv_results_, reference)
    finally:
        for proc in reversed(procs):
            stop_process(proc)


@pytest.mark.timeout(120)  # a hang guard: the call ends on the driver's failure, as asserted
def test_without_hadoop_submitting_fails_fast_and_says_why():
    with pytest.raises(ClusterError) as info:
        connect("yarn://science", n_workers=2, timeout=60)
    # The driver's own failure, as soon as it happened: not the 60 s timeout running out.
    text = not_the_timeout(info.value, 60)
    assert text.startswith("cluster='yarn://science':")
    if shutil.which("yarn") is None:
        assert "needs Hadoop's 'yarn' command on PATH" in text
        assert "FileNotFoundError" in text and "'yarn'" in text, text  # skein found no yarn


def test_bad_options_are_refused_before_submitting(tmp_path):
    # no_contact: skein's driver is never started, nothing is connected to.
    with no_contact(), pytest.raises(InvalidSearchError, match="environment=.*is not a file"):
        connect("yarn://", environment=str(tmp_path / "missing.tar.gz"))
    with (
        no_contact(),
        pytest.raises(InvalidSearchError, match="worker_memory='1 KiB': give at least 128 MiB"),
    ):
        connect("yarn://", worker_memory="1 KiB")
    with no_contact(), pytest.raises(InvalidSearchError, match="apply to a new application only"):
        connect("yarn://", application_id="application_1_0001", n_workers=3)


def test_command_line_spec_and_the_in_container_helper(tmp_path, capsys, monkeypatch):
    assert main(["spec", "--workers", "4", "--worker-memory", "3 GiB", "--queue", "q"]) == 0
    parsed = skein.ApplicationSpec.from_yaml(capsys.readouterr().out)
    assert parsed.services["dask.worker"].instances == 4 and parsed.queue == "q"
    for name in [k for k in os.environ if k.startswith("SKEIN_")]:
        monkeypatch.delenv(name)
    assert main(["scheduler-address"]) == 2
    assert "not inside a skein container" in capsys.readouterr().err
    assert main(["spec", "--tls-dir", str(tmp_path)]) == 2
    assert "--tls-dir lacks ca.pem" in capsys.readouterr().err
    # The printed spec is plain YAML that skein's own loader and PyYAML both read.
    assert main(["spec"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["services"]["dask.worker"]["instances"] == 2
