"""The package stays ruff- and mypy-clean (configuration in pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-m", "ruff", "check", "daskhpo", "tests", "benchmarks"],
        [sys.executable, "-m", "ruff", "format", "--check", "daskhpo", "tests"],
        [sys.executable, "-m", "mypy", "daskhpo"],
    ],
    ids=["ruff-check", "ruff-format", "mypy"],
)
def test_static_checks(command):
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
