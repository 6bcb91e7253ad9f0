"""Every notebook under notebooks/ runs top to bottom, within a minute, and is committed without outputs.

Each runs in an ipykernel kernel of the Python running the tests (a kernelspec written to a temporary
folder, so no Jupyter installation or registered kernel is needed), from a temporary working folder.
New notebooks dropped into notebooks/ are picked up by the glob.
"""

from __future__ import annotations

import json
import sys
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


def test_the_notebooks_are_there():
    assert [p.name for p in NOTEBOOKS if p.name.startswith("01_")] == [
        "01_digits_grid_search.ipynb"
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(path: Path, tmp_path: Path, kernel_dirs: list[str]):
    import nbformat
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

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

    if path.name.startswith("01_"):
        local = _cell(nb, "search = GridSearchCV(")
        # The progress bar is a Jupyter widget here, and fit printed both dashboards' addresses.
        assert "application/vnd.jupyter.widget-view+json" in _mimes(local)
        err = _stream(local, "stderr")
        assert "Dask dashboard: http://127.0.0.1:" in err
        assert "Search dashboard: http://127.0.0.1:" in err
        # search.plot() was shown as a bokeh document.
        assert "application/vnd.bokehjs_exec.v0+json" in _mimes(_cell(nb, "show(search.plot())"))
        remote = _cell(nb, "on_cluster.fit(X, y)")
        assert "linked from the Dask dashboard at http://127.0.0.1:" in _stream(remote, "stderr")
        status = _stream(_cell(nb, 'main(["status"'), "stdout")
        assert "status: finished" in status and "trials: 48" in status
