"""deploy/docker-compose.yml without a Docker engine: the file parses and is wired as documented, and the
exact scheduler, worker and driver commands it contains run here as local processes: the driver's
``daskhpo run`` search finishes with the same scores as the same spec on a local cluster."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from daskhpo.cli import main
from daskhpo.spec import build_search, load_data, load_spec
from tests.integration._clusters import (
    BIN,
    free_port,
    start_logged,
    stop_process,
    wait_for_line,
    wait_port,
)

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_file_parses_and_is_wired_as_documented(compose):
    services = compose["services"]
    assert set(services) == {"scheduler", "worker", "driver"}
    build = services["scheduler"]["build"]
    assert (COMPOSE.parent / build["context"] / build["dockerfile"]).resolve() == (
        DEPLOY / "docker" / "Dockerfile"
    )
    image = services["scheduler"]["image"]
    assert all(service["image"] == image for service in services.values())
    assert services["worker"]["deploy"]["replicas"] >= 2
    assert services["worker"]["depends_on"]["scheduler"]["condition"] == "service_healthy"
    # Published ports are on the loopback address only.
    assert all(p.startswith("127.0.0.1:") for p in services["scheduler"]["ports"])
    for volume in services["driver"]["volumes"]:
        source = volume.split(":")[0]
        assert source in compose.get("volumes", {}) or (COMPOSE.parent / source).exists()


def test_root_compose_file_includes_the_deploy_one():
    root = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert [(ROOT / path).resolve() for path in root["include"]] == [COMPOSE]
    assert set(root) == {"include"}  # everything else lives in deploy/docker-compose.yml


def test_dockerfile_copies_what_exists_and_installs_extras_that_exist():
    dockerfile = (DEPLOY / "docker" / "Dockerfile").read_text()
    extras = importlib.metadata.metadata("daskhpo").get_all("Provides-Extra") or []
    copies = [line.split()[1:-1] for line in dockerfile.splitlines() if line.startswith("COPY ")]
    assert copies
    for sources in copies:
        for source in sources:
            assert (ROOT / source).exists(), source
    installs = [line for line in dockerfile.splitlines() if "pip install" in line]
    named = installs[0].split("[", 1)[1].split("]", 1)[0].split(",")
    assert set(named) <= set(extras), set(named) - set(extras)


def _local(command: list[str], mapping: dict[str, str]) -> list[str]:
    """A compose command with its container-network names and ports replaced by local ones."""
    out = []
    for arg in command:
        for old, new in mapping.items():
            arg = arg.replace(old, new)
        out.append(arg)
    return out


def test_compose_commands_run_a_search_here(compose, client, tmp_path, capsys):
    services = compose["services"]
    port, dashboard = free_port(), free_port()
    # In compose each container has its own network namespace: "scheduler" is a service name and
    # 0.0.0.0 is that container's own interfaces. Here everything is on this machine's loopback.
    mapping = {
        "0.0.0.0:8787": f"127.0.0.1:{dashboard}",
        "0.0.0.0": "127.0.0.1",
        "tcp://scheduler:8786": f"tcp://127.0.0.1:{port}",
        "8786": str(port),
    }
    for volume in services["driver"]["volumes"]:
        source, target = volume.split(":")[:2]
        local = tmp_path / source if source in compose["volumes"] else COMPOSE.parent / source
        if source in compose["volumes"]:
            local.mkdir()
        mapping[target] = str(local.resolve())
    env = {k: v for k, v in os.environ.items() if k != "DASK_SCHEDULER_ADDRESS"}
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"  # dask and daskhpo, as on the image's PATH
    procs = []
    try:
        command = _local(services["scheduler"]["command"], mapping)
        assert command[:2] == ["dask", "scheduler"]
        log = tmp_path / "scheduler.log"
        procs.append(start_logged(command, log, env=env))
        assert wait_for_line(log, "Scheduler at:", procs[-1]) == f"tcp://127.0.0.1:{port}"
        wait_port("127.0.0.1", dashboard)
        worker = _local(services["worker"]["command"], mapping)
        assert worker[:3] == ["dask", "worker", f"tcp://127.0.0.1:{port}"]
        for i in range(services["worker"]["deploy"]["replicas"]):
            # Also listen on loopback only (in a container, the default "every interface" is the
            # container's own; on this shared machine it would be the machine's).
            procs.append(
                start_logged([*worker, "--host", "127.0.0.1"], tmp_path / f"w{i}.log", env=env)
            )
        driver = _local(services["driver"]["command"], mapping)
        assert driver[:2] == ["daskhpo", "run"]
        done = subprocess.run(
            [sys.executable, "-m", "daskhpo", *driver[1:]],
            capture_output=True,
            text=True,
            env=env,
            timeout=180,
        )
        assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    finally:
        for proc in reversed(procs):
            stop_process(proc)

    spec_path = Path(driver[2])
    storage = driver[driver.index("--storage") + 1]
    spec = load_spec(spec_path)
    capsys.readouterr()
    assert main(["results", spec["name"], "--storage", storage, "--format", "json"]) == 0
    stored = pd.DataFrame(json.loads(capsys.readouterr().out)).sort_values("trial_id")
    reference = build_search(spec, client=client).fit(*load_data(spec))
    assert len(stored) == len(reference.cv_results_["params"])
    # The JSON table keeps 10 decimals.
    np.testing.assert_allclose(
        stored["mean_test_score"], reference.cv_results_["mean_test_score"], rtol=0, atol=1e-9
    )
    assert f"best score {reference.best_score_:.6g}" in done.stdout
