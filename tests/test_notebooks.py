"""Every notebook in notebooks/ runs top to bottom from a fresh kernel, and is stored without
outputs. The suite runs them at the small size, which takes the same code paths as the size a
user opens (the motor-threshold search included) on a smaller patch and shorter protocols;
`TMSIM_TEST_NOTEBOOK_SIZE=full pytest tests/test_notebooks.py` runs them at that size (tens of
minutes to hours on a CPU: see the README's Notebooks section)."""

import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
TIMEOUT_S = 600
SIZE = os.environ.get("TMSIM_TEST_NOTEBOOK_SIZE", "small")


@pytest.fixture
def notebook_size(monkeypatch):
    """The kernel inherits this environment: the size (SIZE), a non-interactive backend, the
    repository on the path (so the worktree's packages are imported)."""
    root = str(Path(__file__).resolve().parents[1])
    monkeypatch.setenv("TMSIM_NOTEBOOK_SIZE", SIZE)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs_from_a_fresh_kernel(path, notebook_size):
    nb = nbformat.read(path, as_version=4)
    timeout = TIMEOUT_S if SIZE == "small" else None
    client = nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3",
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
