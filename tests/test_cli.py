"""The daskhpo command line."""

from __future__ import annotations

import subprocess
import sys

from daskhpo.cli import DEMO_GRID, main


def test_help_documents_every_command():
    out = subprocess.run(
        [sys.executable, "-m", "daskhpo", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "demo" in out and "digits" in out
    demo = subprocess.run(
        [sys.executable, "-m", "daskhpo", "demo", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "--client" in demo and "--cv" in demo and "1,176" in demo


def test_demo_grid_is_the_tutorial_grid():
    n = 1
    for values in DEMO_GRID.values():
        n *= len(values)
    assert n == 1176


def test_demo_runs_on_a_cluster_and_prints_the_result(client, capsys):
    assert main(["demo", "--client", client.scheduler.address, "--cv", "2"]) == 0
    out = capsys.readouterr().out
    assert "best score (mean CV accuracy): 0." in out
    assert "best params: {'criterion':" in out
    table = out.split("top 10 candidates:")[1].strip().splitlines()
    assert len(table) == 11  # header and ten rows
    assert "rank_test_score" in table[0]


def test_bad_cv_is_refused():
    proc = subprocess.run(
        [sys.executable, "-m", "daskhpo", "demo", "--cv", "1"], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert "--cv 1" in proc.stderr
