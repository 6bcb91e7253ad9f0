"""Every notebook under notebooks/ runs top to bottom, is committed without outputs, and prints what it
says it shows: each notebook's key printed results are checked against each other and its text.

Each runs in an ipykernel kernel of the Python running the tests (a kernelspec written to a temporary
folder, so no Jupyter installation or registered kernel is needed), from a temporary working folder.
New notebooks dropped into notebooks/ are picked up by the glob, and fail until CHECKS has theirs.
"""

from __future__ import annotations

import ast
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
# A hang guard per cell, not a speed target (tests assert no wall-clock times): each notebook runs in
# well under a minute here.
CELL_TIMEOUT = 300


@pytest.fixture(scope="module")
def kernel_dirs(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """A kernelspec that starts ipykernel with this very interpreter (this venv's daskhpo)."""
    kernels = tmp_path_factory.mktemp("jupyter") / "kernels"
    spec = kernels / "daskhpo-tests"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "daskhpo tests",
                "language": "python",
            }
        )
    )
    return [str(kernels)]


def _code_cells(nb: Any) -> list[Any]:
    return [c for c in nb.cells if c.cell_type == "code"]


def _cell(nb: Any, text: str) -> Any:
    found = [c for c in _code_cells(nb) if text in c.source]
    assert len(found) == 1, f"{len(found)} cells contain {text!r}"
    return found[0]


def _stream(cell: Any, name: str) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.get("name") == name)


def _mimes(cell: Any) -> set[str]:
    return {m for o in cell.outputs for m in o.get("data", {})}


def _plain(cell: Any, kind: str = "execute_result") -> str:
    """The text/plain of the cell's (one) output of that kind: its value, or what display() showed."""
    found = [o["data"]["text/plain"] for o in cell.outputs if o.output_type == kind]
    assert len(found) == 1, f"{len(found)} {kind} outputs in the cell:\n{cell.source}"
    return found[0]


def _search(pattern: str, text: str) -> re.Match[str]:
    found = re.search(pattern, text)
    assert found, f"{pattern!r} is not in:\n{text}"
    return found


_SCORE = r"(?:np\.float64\()?([01]\.[0-9]+)"  # a score, printed by numpy or as a float
_BOKEH = "application/vnd.bokehjs_exec.v0+json"
_WIDGET = "application/vnd.jupyter.widget-view+json"


def _check_digits_grid_search(nb: Any) -> None:
    assert _plain(_cell(nb, "X.shape")) == "(1797, 64)"
    assert _plain(_cell(nb, "n_candidates = 1")) == "48"
    reference = _plain(_cell(nb, "reference = SklearnGridSearchCV("))
    local = _cell(nb, "search = GridSearchCV(")
    # Same best score and parameters as scikit-learn, as printed by both cells.
    best = float(_search(_SCORE, reference)[1])
    assert float(_search(_SCORE, _plain(local))[1]) == pytest.approx(best, abs=1e-12)
    assert _plain(local).split(",", 1)[1] == reference.split(",", 1)[1]  # the best_params_ dict
    # The progress bar is a Jupyter widget here, and fit printed both dashboards' addresses.
    assert _WIDGET in _mimes(local)
    err = _stream(local, "stderr")
    assert "Fitting 3 folds for each of 48 candidates, totalling 144 fits" in err
    assert "Dask dashboard: http://127.0.0.1:" in err
    assert "Search dashboard: http://127.0.0.1:" in err
    assert "rank_test_score" in _plain(_cell(nb, "table = pd.DataFrame("))
    # search.plot() was shown as a bokeh document.
    assert _BOKEH in _mimes(_cell(nb, "show(search.plot())"))
    started = _stream(_cell(nb, "cluster = LocalCluster("), "stdout")
    assert re.search(r"scheduler: tcp://127\.0\.0\.1:\d+\nstore: sqlite:///\S+digits\.db", started)
    remote = _cell(nb, "on_cluster.fit(X, y)")
    assert "linked from the Dask dashboard at http://127.0.0.1:" in _stream(remote, "stderr")
    assert _WIDGET in _mimes(remote)
    assert float(_search(_SCORE, _plain(remote))[1]) == pytest.approx(best, abs=1e-12)
    status = _stream(_cell(nb, 'main(["status"'), "stdout")
    assert re.search(r"searches on this cluster: http://127\.0\.0\.1:\d+/daskhpo\n", status)
    assert "status: finished" in status and "trials: 48" in status
    assert float(_search(r"best so far: ([0-9.]+) \(trial \d+\)", status)[1]) == pytest.approx(
        best, abs=1e-6
    )
    report = _stream(_cell(nb, 'main(["report"'), "stdout")
    assert re.search(
        r"wrote \S+digits-report\.html: 48 evaluations of search 'digits-trees'", report
    )


def _check_hyperband_larger_than_memory(nb: Any) -> None:
    assert "Dask dashboard: http://127.0.0.1:" in _stream(_cell(nb, "MEMORY_LIMIT = "), "stdout")
    assert _stream(_cell(nb, "n_blocks = 350"), "stdout") == (
        "X: 2.8 GB in 350 blocks of 8 MB, 4.0x one worker's memory limit, "
        "2.0x the whole cluster's\n"
    )
    before = ast.literal_eval(_plain(_cell(nb, "before = client.run(rss)")))
    assert len(before) == 2 and all(re.fullmatch(r"\d+ MB", v) for v in before.values()), before

    fit = _cell(nb, "search.fit(X, y, classes=[0, 1])")
    err = _stream(fit, "stderr")
    assert "HyperbandSearchCV: budget = partial_fit, from 1 to 9" in err
    assert (
        "Dask dashboard: http://127.0.0.1:" in err and "Search dashboard: http://127.0.0.1:" in err
    )
    assert _WIDGET in _mimes(fit)
    best = _plain(fit)
    assert 0.5 < float(_search(_SCORE, best)[1]) <= 1.0, best  # better than chance
    assert "'alpha'" in best and "'l1_ratio'" in best

    # Brackets and rungs: three brackets (max_budget=9, reduction_factor=3), each ending at budget 9,
    # with no more trials at a rung than at the one below.
    table = _plain(_cell(nb, "rungs = ("))
    rows = [line.split() for line in table.splitlines()[1:]]
    assert table.split()[:6] == [
        "bracket",
        "rung",
        "budget",
        "trials",
        "best_score",
        "median_score",
    ]
    rungs: dict[int, list[tuple[int, int, int]]] = {}
    for _, bracket, rung, budget, trials, *_scores in rows:
        rungs.setdefault(int(bracket), []).append((int(rung), int(budget), int(trials)))
    assert sorted(rungs) == [0, 1, 2], table
    for steps in rungs.values():
        assert [r for r, _, _ in steps] == list(range(len(steps))), table
        assert steps[-1][1] == 9, table
        counts = [t for _, _, t in steps]
        assert counts == sorted(counts, reverse=True), table
    assert "trial_id" in _plain(_cell(nb, 'columns = ["trial_id"'))

    # What successive halving saved, in numbers that agree with each other and with the table.
    saved = _stream(_cell(nb, 'search.metadata_["partial_fit_calls"]'), "stdout")
    found = _search(
        r"(\d+) trials, (\d+) evaluations, (\d+) partial_fit calls\n"
        r"training all (\d+) trials to max_budget=9 would take (\d+) calls",
        saved,
    )
    n_trials, n_evaluations, calls, n_again, all_calls = map(int, found.groups())
    assert n_again == n_trials and all_calls == 9 * n_trials and calls < all_calls, saved
    assert n_evaluations == sum(t for steps in rungs.values() for _, _, t in steps), (saved, table)
    assert _BOKEH in _mimes(_cell(nb, "show(search.plot())"))

    # The workers survived and stayed under their limit.
    memory = _stream(_cell(nb, "peak = max(memory.peak.values())"), "stdout")
    assert "memory samples failed: 0\n" in memory
    peaks = re.findall(
        r"tcp://\S+: before the search \d+ MB, peak \d+ MB = (\d+)% of the limit", memory
    )
    assert len(peaks) == 2 and all(int(p) < 100 for p in peaks), memory
    assert "worker paused for memory: False" in memory

    # Added up, the search generated more data than one worker's limit (what the text says).
    read = _stream(_cell(nb, "validation_blocks = round("), "stdout")
    found = _search(
        r"blocks generated by the search: (\d+) for training \+ (\d+) x (\d+) for validation = "
        r"([0-9.]+) GB \(([0-9.]+)x one worker's limit\)",
        read,
    )
    training, evaluations, validation = map(int, found.groups()[:3])
    assert (training, evaluations, validation) == (calls, n_evaluations, 2), (read, saved)
    gigabytes = (training + evaluations * validation) * 8e6 / 1e9
    assert float(found[4]) == pytest.approx(gigabytes, abs=0.01), read
    assert float(found[5]) > 1, read


def _check_bayes_vs_random(nb: Any) -> None:
    assert "Dask dashboard: http://127.0.0.1:" in _stream(
        _cell(nb, "cluster = LocalCluster("), "stdout"
    )
    assert _BOKEH in _mimes(_cell(nb, "show(fig)"))

    # The per-seed table (display) and the per-method means (the cell's value).
    numbers = _cell(nb, "table = pd.DataFrame(")
    per_seed: dict[tuple[str, int], list[float]] = {}
    method = ""
    for line in _plain(numbers, "display_data").splitlines():
        row = re.fullmatch(
            r"\s*(TPE|random)?\s+(\d)\s+([0-9.]+)\s+([0-9.]+)\s+([0-9.]+)\s+([0-9.]+)", line
        )
        if row:
            method = row[1] or method
            per_seed[(method, int(row[2]))] = [float(v) for v in row.groups()[2:]]
    assert sorted(per_seed) == [(m, s) for m in ("TPE", "random") for s in (0, 1, 2)], per_seed
    means: dict[str, list[float]] = {}
    for line in _plain(numbers).splitlines():
        row = re.fullmatch(r"(TPE|random)\s+([0-9.]+)\s+([0-9.]+)\s+([0-9.]+)\s+([0-9.]+)", line)
        if row:
            means[row[1]] = [float(v) for v in row.groups()[1:]]
    assert sorted(means) == ["TPE", "random"], _plain(numbers)
    for m, values in means.items():
        for column, value in enumerate(values):
            seeds = [per_seed[(m, s)][column] for s in (0, 1, 2)]
            assert value == pytest.approx(sum(seeds) / 3, abs=1e-4), (m, column)
            assert all(0 <= v <= 1 for v in seeds)

    # The sentences say what the table says.
    said = _stream(_cell(nb, "tpe, rnd = table.loc"), "stdout")
    found = _search(
        r"Best after 20 trials: TPE higher for (\d) of 3 seeds, lower for (\d), equal for (\d); "
        r"mean ([0-9.]+) \(TPE\) vs ([0-9.]+) \(random\), a difference of ([+-][0-9.]+) samples "
        r"out of 600\.",
        said,
    )
    final = [(per_seed[("TPE", s)][2], per_seed[("random", s)][2]) for s in (0, 1, 2)]
    wins, losses, ties = (int(v) for v in found.groups()[:3])
    assert (wins, losses, ties) == (
        sum(t > r for t, r in final),
        sum(t < r for t, r in final),
        sum(t == r for t, r in final),
    ), (said, final)
    tpe_mean, random_mean, samples = (float(v) for v in found.groups()[3:])
    assert (tpe_mean, random_mean) == (means["TPE"][2], means["random"][2]), said
    assert samples == pytest.approx((tpe_mean - random_mean) * 600, abs=0.11), said
    found = _search(
        r"Median accuracy of trials 11-20: TPE higher for (\d) of 3 seeds; mean over seeds "
        r"([0-9.]+) \(TPE\) vs ([0-9.]+) \(random\)\.",
        said,
    )
    late = [(per_seed[("TPE", s)][3], per_seed[("random", s)][3]) for s in (0, 1, 2)]
    assert int(found[1]) == sum(t > r for t, r in late), (said, late)
    assert (float(found[2]), float(found[3])) == (means["TPE"][3], means["random"][3]), said

    for text in ("show(tpe_search.plot())", "show(random_search.plot())"):
        assert _BOKEH in _mimes(_cell(nb, text))
    stats = ast.literal_eval(_plain(_cell(nb, "shown = (")))
    assert stats["sampler"] == "TPESampler" and stats["trials_failed"] == 0, stats
    assert stats["max_trials_in_flight"] == 2, (
        stats
    )  # one trial per worker thread, as the text says
    assert stats["duplicate_suggestions"] >= 0, stats


# The checks of each notebook's printed results, by file stem: a notebook without one fails.
CHECKS: dict[str, Callable[[Any], None]] = {
    "01_digits_grid_search": _check_digits_grid_search,
    "02_hyperband_larger_than_memory": _check_hyperband_larger_than_memory,
    "03_bayes_vs_random": _check_bayes_vs_random,
}


def test_the_notebooks_are_there():
    assert [p.name for p in NOTEBOOKS if p.name.startswith("01_")] == [
        "01_digits_grid_search.ipynb"
    ]


def test_every_notebook_has_output_checks():
    assert sorted(CHECKS) == [p.stem for p in NOTEBOOKS], "CHECKS and notebooks/ disagree"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(path: Path, tmp_path: Path, kernel_dirs: list[str]):
    import nbformat
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    assert path.stem in CHECKS, f"{path.name}: add the checks of its printed results to CHECKS"
    nb = nbformat.read(path, as_version=4)
    for cell in _code_cells(nb):
        assert cell.outputs == [] and cell.execution_count is None, (
            f"{path.name} is committed with outputs: clear them (Jupyter: Edit > Clear Outputs "
            "of All Cells, or `jupyter nbconvert --clear-output --inplace`)"
        )

    km = KernelManager(
        kernel_name="daskhpo-tests", kernel_spec_manager=KernelSpecManager(kernel_dirs=kernel_dirs)
    )
    client = NotebookClient(
        nb,
        km=km,
        timeout=CELL_TIMEOUT,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # raises CellExecutionError, with the cell and its traceback, on any error
    assert all(c.execution_count for c in _code_cells(nb))
    for cell in _code_cells(nb):
        assert "Traceback" not in _stream(cell, "stderr"), cell.source
    CHECKS[path.stem](nb)
