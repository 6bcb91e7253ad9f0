"""scikit-learn's own search tests, run against daskhpo's classes on a real LocalCluster.

Each module runs in a pytest subprocess with the plugin ``tests/conformance/swap.py``, which swaps
daskhpo's GridSearchCV, RandomizedSearchCV, HalvingGridSearchCV, HalvingRandomSearchCV and
BaseSearchCV in for scikit-learn's in the test module. The cases that fail must be exactly those
listed, with their reasons, in ``tests/conformance/expected.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conformance.expected import EXPECTED_FAILURES, OWN_SKIPS, TARGETS

ROOT = Path(__file__).resolve().parents[1]


def run_module(module: str, tmp_path: Path) -> dict[str, dict[str, str]]:
    report = tmp_path / "outcomes.json"
    log = tmp_path / "pytest.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DASKHPO_CONFORMANCE_REPORT": str(report)}
    env.pop("PYTEST_ADDOPTS", None)
    with open(log, "w") as out:  # a file, not a pipe: worker processes may outlive pytest
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-p",
                "tests.conformance.swap",
                "--pyargs",
                module,
                "-q",
                "-p",
                "no:cacheprovider",
                "-o",
                "addopts=",
            ],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=900,
            check=False,
        )
    assert report.exists(), f"the run of {module} wrote no report:\n{log.read_text()[-3000:]}"
    return json.loads(report.read_text())


@pytest.mark.timeout(1000)  # a hang guard, not a speed target
@pytest.mark.parametrize("module", sorted(TARGETS))
def test_scikit_learn_search_tests_pass_with_daskhpo(module, tmp_path):
    outcomes = run_module(module, tmp_path)
    expected = EXPECTED_FAILURES[module]
    ran = {k: v for k, v in outcomes.items() if v["outcome"] != "skipped"}
    failed = {k for k, v in ran.items() if v["outcome"] == "failed"}
    passed = len(ran) - len(failed)
    # The module really ran: scikit-learn 1.9.1 has 141 cases in test_search.py that run here
    # and 102 in test_successive_halving.py.
    assert len(ran) >= 100, f"only {len(ran)} cases ran: {sorted(outcomes)[:5]} ..."
    unexpected = sorted(failed - set(expected))
    assert not unexpected, (
        "cases failing that are not listed in tests/conformance/expected.py:\n"
        + ("\n".join(f"{k}: {ran[k].get('reason', '')}" for k in unexpected))
    )
    stale = sorted(k for k in expected if outcomes.get(k, {}).get("outcome") == "passed")
    assert not stale, f"listed as failing but passing now (remove them from the list): {stale}"
    assert passed / len(ran) >= TARGETS[module], (
        f"{passed} of {len(ran)} cases pass ({passed / len(ran):.1%}), below {TARGETS[module]:.0%}"
    )
    # Skips are scikit-learn's own, for optional array libraries, never daskhpo's.
    other_skips = {
        k: v["reason"]
        for k, v in outcomes.items()
        if v["outcome"] == "skipped" and not any(s in v["reason"] for s in OWN_SKIPS)
    }
    assert not other_skips, other_skips
