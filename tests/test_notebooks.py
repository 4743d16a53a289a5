"""Every notebook in notebooks/ runs top to bottom from a fresh kernel at the small size, and
is stored without outputs."""

import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
TIMEOUT_S = 600


@pytest.fixture
def small_size(monkeypatch):
    """The kernel inherits this environment: small size, a non-interactive backend, the
    repository on the path (so the worktree's packages are imported)."""
    root = str(Path(__file__).resolve().parents[1])
    monkeypatch.setenv("TMSIM_NOTEBOOK_SIZE", "small")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs_from_a_fresh_kernel(path, small_size):
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=TIMEOUT_S, kernel_name="python3",
                                     resources={"metadata": {"path": str(path.parent)}})
    client.execute(cwd=str(path.parent))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_stored_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    for k, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name}: cell {k} has outputs"
            assert cell.execution_count is None, f"{path.name}: cell {k} has an execution count"


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ holds no .ipynb"
