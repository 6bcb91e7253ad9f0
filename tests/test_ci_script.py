""".ci/run's skip check: .ci/check-skips on saved pytest output (the shapes pytest 9 prints, taken
from real runs), the expected-skips file, and .ci/run itself with a stand-in for the README's
command."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CI = ROOT / ".ci"
GP = "Optuna's GPSampler needs PyTorch, a ~3 GB optional dependency"

# The tail of `python -m pytest -q` (pyproject's addopts add -ra) as it ends on the CI machine today.
TODAY = f"""\
........................................................................ [ 19%]
..s...................................................................s. [ 98%]
......                                                                   [100%]
=============================== warnings summary ===============================
tests/integration/test_timeout.py::test_bayesian_trials_that_hang_are_failed_and_told_as_failures
  /work/main/daskhpo/search.py:265: FutureWarning: n_trials was renamed n_candidates

-- Docs: https://docs.pytest.org/en/stable/how-to/capture-warnings.html
=========================== short test summary info ============================
SKIPPED [1] tests/strategies/test_bayes.py:339: {GP}
SKIPPED [1] tests/test_bayes.py:341: {GP}
366 passed, 2 skipped, 12 warnings in 412.33s (0:06:52)
"""

EXPECTED = """\
# The GP sampler needs PyTorch, not in the test extra.
tests/strategies/test_bayes.py::Optuna's GPSampler needs PyTorch
tests/test_bayes.py::Optuna's GPSampler needs PyTorch

# A parametrized test that skips three times at one place (folded by pytest as [3]).
tests/test_gpu.py:8 [3]
"""


def _check(tmp_path: Path, output: str, expected: str = EXPECTED, *flags: str):
    (tmp_path / "out.txt").write_text(output)
    (tmp_path / "expected").write_text(expected)
    return subprocess.run(
        [sys.executable, str(CI / "check-skips"), *flags, "out.txt", "expected"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _with_skips(*lines: str, skipped: int | None = None) -> str:
    """TODAY's output with other skip lines and a counts line that agrees (unless ``skipped``)."""
    listed = [ln for ln in lines if ln.startswith("SKIPPED")]
    n = sum(int(m[1]) if (m := re.match(r"SKIPPED \[(\d+)\]", ln)) else 1 for ln in listed)
    head = TODAY.split("SKIPPED", 1)[0]
    return (
        head
        + "\n".join(lines)
        + f"\n366 passed, {n if skipped is None else skipped} skipped in 9.1s\n"
    )


def test_todays_two_skips_pass_and_are_listed(tmp_path):
    done = _check(tmp_path, TODAY)
    assert done.returncode == 0, done.stdout
    assert "== skipped: 2 (expected at most 5)" in done.stdout
    assert f"expected   [1] tests/test_bayes.py:341: {GP}" in done.stdout
    assert f"expected   [1] tests/strategies/test_bayes.py:339: {GP}" in done.stdout
    assert "(The GP sampler needs PyTorch, not in the test extra.)" in done.stdout  # the why
    assert "did not skip here: tests/test_gpu.py:8 [3]" in done.stdout  # fewer is fine, and said


def test_an_unexpected_skip_fails_and_is_named(tmp_path):
    extra = "SKIPPED [1] tests/test_dashboard_browser.py:30: chromium is not installed"
    output = _with_skips(
        f"SKIPPED [1] tests/strategies/test_bayes.py:339: {GP}",
        f"SKIPPED [1] tests/test_bayes.py:341: {GP}",
        extra,
    )
    done = _check(tmp_path, output)
    assert done.returncode == 1, done.stdout
    assert "UNEXPECTED [1] tests/test_dashboard_browser.py:30: chromium is not installed" in (
        done.stdout
    )
    assert "== FAIL: unexpected skip [1] tests/test_dashboard_browser.py:30" in done.stdout


def test_an_expected_reason_in_another_file_is_not_expected(tmp_path):
    done = _check(tmp_path, _with_skips(f"SKIPPED [1] tests/test_cli.py:12: {GP}"))
    assert done.returncode == 1 and "UNEXPECTED [1] tests/test_cli.py:12" in done.stdout


def test_more_skips_of_an_entry_than_allowed_fail(tmp_path):
    done = _check(tmp_path, _with_skips(f"SKIPPED [2] tests/test_bayes.py:341: {GP}"))
    assert done.returncode == 1, done.stdout
    assert "matched 2 skips, 1 expected" in done.stdout
    done = _check(tmp_path, _with_skips("SKIPPED [3] tests/test_gpu.py:8: no GPU here"))
    assert done.returncode == 0, done.stdout  # [3] allows three
    done = _check(tmp_path, _with_skips("SKIPPED [4] tests/test_gpu.py:8: no GPU here"))
    assert done.returncode == 1 and "matched 4 skips, 3 expected" in done.stdout
    done = _check(tmp_path, _with_skips("SKIPPED [1] tests/test_gpu.py:9: no GPU here"))
    assert done.returncode == 1 and "UNEXPECTED" in done.stdout  # PATH:LINE is that line only


def test_skips_the_summary_does_not_list_fail(tmp_path):
    # Without -ra the counts still say 3 skipped but nothing says which: not checkable, a failure.
    done = _check(tmp_path, _with_skips(f"SKIPPED [1] tests/test_bayes.py:341: {GP}", skipped=3))
    assert done.returncode == 1, done.stdout
    assert "says 3 skipped but the short test summary lists 1" in done.stdout
    no_summary = "....s.s.s\n366 passed, 3 skipped in 9.1s\n"
    done = _check(tmp_path, no_summary)
    assert done.returncode == 1 and "keep -ra in pytest's addopts" in done.stdout


def test_the_total_may_not_exceed_the_expected_count(tmp_path):
    one = "# the one skip allowed\ntests/test_bayes.py::GPSampler\n"
    output = _with_skips(f"SKIPPED [1] tests/test_bayes.py:341: {GP}", skipped=1)
    assert _check(tmp_path, output, one).returncode == 0
    output = _with_skips(
        f"SKIPPED [1] tests/test_bayes.py:341: {GP}", f"SKIPPED [1] tests/test_bayes.py:350: {GP}"
    )
    done = _check(tmp_path, output, one)
    assert done.returncode == 1 and "2 tests skipped, at most 1 expected" in done.stdout


def test_a_cut_off_or_empty_run_fails(tmp_path):
    cut = TODAY.rsplit("366 passed", 1)[0]  # the counts line never came: pytest died, or a timeout
    done = _check(tmp_path, cut)
    assert done.returncode == 1 and "no pytest counts line" in done.stdout
    done = _check(tmp_path, "\nno tests ran in 0.61s\n")
    assert done.returncode == 1 and "pytest ran no tests" in done.stdout
    done = _check(tmp_path, "\nno tests ran in 0.61s\n", EXPECTED, "--pytest-status", "5")
    assert done.returncode == 5
    assert "pytest collected no tests (exit status 5)" in done.stdout


def test_a_failed_run_keeps_pytests_status_and_still_lists_the_skips(tmp_path):
    # A failing test's captured output may print skip-like lines: only the summary counts.
    output = TODAY.replace(
        "=============================== warnings summary",
        "=================================== FAILURES ===================================\n"
        "----------------------------- Captured stdout call -----------------------------\n"
        "SKIPPED [1] tests/test_fake.py:1: printed by a test, not a skip\n"
        "=============================== warnings summary",
    ).replace("366 passed, 2 skipped", "1 failed, 365 passed, 2 skipped")
    output = output.replace(
        "SKIPPED [1] tests/strategies",
        "FAILED tests/test_x.py::test_y - assert 1 == 2\nSKIPPED [1] tests/strategies",
    )
    done = _check(tmp_path, output, EXPECTED, "--pytest-status", "1")
    assert done.returncode == 1, done.stdout
    assert "the test command exited with status 1" in done.stdout
    assert "test_fake" not in done.stdout and "== skipped: 2" in done.stdout


def test_colored_and_unfolded_output_parse(tmp_path):
    # pytest --color=yes (a CI that forces colors), and --no-fold-skipped: one line per skip.
    colored = (
        "\x1b[32m.\x1b[0m\x1b[33ms\x1b[0m\n"
        "\x1b[36m\x1b[1m=========================== short test summary info "
        "============================\x1b[0m\n"
        f"\x1b[33mSKIPPED\x1b[0m [1] tests/test_bayes.py:341: {GP}\n"
        "\x1b[32m\x1b[32m\x1b[1m1 passed\x1b[0m, \x1b[33m1 skipped\x1b[0m\x1b[32m in 0.63s\x1b[0m\n"
    )
    done = _check(tmp_path, colored)
    assert done.returncode == 0 and "expected   [1] tests/test_bayes.py:341" in done.stdout
    unfolded = (
        ".s\n=========================== short test summary info ============================\n"
        f"SKIPPED tests/test_bayes.py::test_gp_sampler_on_the_cluster - Skipped: {GP}\n"
        "1 passed, 1 skipped in 0.63s\n"
    )
    done = _check(tmp_path, unfolded)
    assert done.returncode == 0, done.stdout
    assert f"expected   [1] tests/test_bayes.py: {GP}" in done.stdout
    decorated = TODAY.replace(
        "366 passed, 2 skipped, 12 warnings in 412.33s (0:06:52)",
        "=========== 366 passed, 2 skipped, 12 warnings in 412.33s (0:06:52) ===========",
    )
    assert _check(tmp_path, decorated).returncode == 0  # without -q


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tests/test_bayes.py::GPSampler\n", "has no comment above it"),
        ("# why\n\ntests/test_bayes.py::GPSampler\n", "has no comment above it"),  # blank ends it
        ("# why\ntests/test_bayes.py\n", "is not an entry"),
        ("# why\ntests/test_bayes.py:abc\n", "is not an entry"),
    ],
)
def test_a_bad_expected_file_is_refused(tmp_path, text, message):
    done = _check(tmp_path, TODAY, text)
    assert done.returncode == 2 and message in done.stdout, done.stdout


def _module():
    loader = importlib.machinery.SourceFileLoader("check_skips", str(CI / "check-skips"))
    spec = importlib.util.spec_from_loader("check_skips", loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules["check_skips"] = module  # dataclasses look their module up
    try:
        loader.exec_module(module)
    finally:
        del sys.modules["check_skips"]
    return module


def test_each_expected_skip_points_at_a_skip_in_the_tests():
    """An entry whose file, line or reason text is gone would allow a skip that no longer exists."""
    entries = _module().read_expected(CI / "expected-skips")
    assert entries
    for entry in entries:
        source = (ROOT / entry.path).read_text()
        assert entry.why, entry.text
        if entry.reason is not None:
            assert entry.reason in source, f"{entry.text}: no such reason in {entry.path}"
        else:
            assert "skip" in source.splitlines()[entry.line - 1], entry.text


def test_ci_runs_the_readmes_test_command_verbatim():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"Run the tests.*?```bash\n(.+?)\n```", readme, re.S)
    assert block, "README: no 'Run the tests' command block"
    command = block[1].strip()
    assert "python -m pytest -q" in command
    run = (CI / "run").read_text()
    assert f"{{ {command}; }} 2>&1 | tee " in run
    assert "set -euo pipefail" in run and "check-skips --pytest-status" in run


# A stand-in for the README's command: `python3 -m venv` makes a .venv whose pip does nothing and
# whose python prints a saved pytest output and exits with a given status. Other python3 calls (the
# check script's #!/usr/bin/env python3) go to the real interpreter.
_PYTHON3 = """\
#!/bin/sh
if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then
    mkdir -p "$3/bin"
    printf 'PATH="%s/bin:$PATH"; export PATH\\n' "$(cd "$3" && pwd)" > "$3/bin/activate"
    printf '#!/bin/sh\\necho "pip $*"\\n' > "$3/bin/pip"
    printf '#!/bin/sh\\ncat "$FAKE_PYTEST_OUTPUT"; exit "$FAKE_PYTEST_STATUS"\\n' > "$3/bin/python"
    chmod +x "$3/bin/pip" "$3/bin/python"
    exit 0
fi
exec {real} "$@"
"""


@pytest.mark.parametrize(
    ("output", "status", "code", "said"),
    [
        (TODAY, 0, 0, f"expected   [1] tests/test_bayes.py:341: {GP}"),
        (
            _with_skips(
                f"SKIPPED [1] tests/test_bayes.py:341: {GP}", "SKIPPED [1] tests/a.py:1: x"
            ),
            0,
            1,
            "== FAIL: unexpected skip [1] tests/a.py:1: x",
        ),
        ("\nno tests ran in 0.61s\n", 5, 5, "pytest collected no tests (exit status 5)"),
        (TODAY.replace("366 passed", "1 failed, 365 passed"), 1, 1, "exited with status 1"),
    ],
    ids=["as-expected", "unexpected-skip", "no-tests", "failed"],
)
def test_ci_run_end_to_end_with_a_stand_in_command(tmp_path, output, status, code, said):
    repo = tmp_path / "repo"
    (repo / ".ci").mkdir(parents=True)
    for name in ("run", "check-skips", "expected-skips", "apt-packages"):
        shutil.copy2(CI / name, repo / ".ci" / name)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").write_text(_PYTHON3.format(real=sys.executable))
    (bin_dir / "dpkg").write_text("#!/bin/sh\nexit 0\n")  # every apt package "installed"
    for tool in ("python3", "dpkg"):
        (bin_dir / tool).chmod(0o755)
    (tmp_path / "pytest-output.txt").write_text(output)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "FAKE_PYTEST_OUTPUT": str(tmp_path / "pytest-output.txt"),
        "FAKE_PYTEST_STATUS": str(status),
        "DASKHPO_CI_LOG": str(tmp_path / "ci.log"),
    }
    env.pop("VIRTUAL_ENV", None)
    done = subprocess.run(
        ["bash", str(repo / ".ci" / "run")], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == code, done.stdout + done.stderr
    assert said in done.stdout, done.stdout
    assert (tmp_path / "ci.log").read_text().endswith(output)  # tee kept the command's output
    assert "pip install -e .[test]" in done.stdout  # the README's command ran, in its order


def test_the_samples_have_the_shape_of_a_real_pytest_run(tmp_path):
    """The samples above have the shape of real output: run pytest on a tiny suite with -q -ra."""
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_gpu.py").write_text(
        textwrap.dedent(
            """\
            import pytest


            @pytest.mark.parametrize("i", [1, 2, 3])
            def test_param(i):
                pass
                # line 8 skips:
                pytest.skip("no GPU here")


            def test_gp():
                pytest.importorskip("no_such_torch", reason="Optuna's GPSampler needs PyTorch")


            def test_runs():
                pass
            """
        )
    )
    real = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-ra", "-p", "no:cacheprovider", "tests"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert real.returncode == 0, real.stdout + real.stderr
    expected = EXPECTED.replace("tests/test_bayes.py::", "tests/test_gpu.py::")  # GP, this file
    done = _check(tmp_path, real.stdout, expected)
    assert done.returncode == 0, real.stdout + done.stdout
    assert "expected   [3] tests/test_gpu.py:8: no GPU here" in done.stdout
    assert "expected   [1] tests/test_gpu.py:12: Optuna's GPSampler needs PyTorch" in done.stdout
