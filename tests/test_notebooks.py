"""Every notebook in notebooks/ runs top to bottom from a fresh kernel, and is stored without
outputs. The suite runs them at the small size, which takes the same code paths as the size a
user opens (the motor-threshold search included) on a smaller patch and shorter protocols;
`TMSIM_TEST_NOTEBOOK_SIZE=full pytest tests/test_notebooks.py` runs them at that size (tens of
minutes to hours on a CPU: see the README's Notebooks section). After the last cell the test
runs the notebook's checks (CHECKS, keyed by file name) in the same kernel: machinery and physics that hold at
either size, never calibrated outcomes of the plasticity model."""

import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
TIMEOUT_S = 600
SIZE = os.environ.get("TMSIM_TEST_NOTEBOOK_SIZE", "small")

CHECKS = {
    "01_getting_started.ipynb": """
assert res.E.shape == (head.n_tets, 3) and np.isfinite(res.E).all()
# a 70 mm figure-8 at 1 A/us, 4 mm above a 95 mm sphere: about 1 V/m in the cortex 10 mm down
assert 0.3 < res.magnE[gm].max() < 5.0
assert np.all(exact_mag[gm] < 1.5 * res.magnE[gm].max())
assert rdm(res.E, exact) < 0.2 and mag(res.E, exact) < np.log(1.1)
np.testing.assert_allclose(back.element_data["E"], res.E)
""",
    "02_coil_targeting.ipynb": """
assert best.scores.shape == (best.n_grid_evaluations // best.scores.shape[1], best.scores.shape[1])
assert best.score >= best.grid_score > 0
assert best.direct_score == pytest.approx(best.score, rel=0.02)   # reciprocity against one solve
assert np.linalg.norm(best.placement.centre_mm - head.eeg_positions["F3"]) < 20.0 + 10.0
# 100-300 V/m at a 150 A/us stimulator's full output (Thielscher & Kammer 2004; Deng et al. 2013)
assert 100.0 < 150 * peak < 300.0
""",
    "03_protocols.ipynb": """
magnitude = np.concatenate([field.magnitude(p) for p in patch.populations])
assert np.isfinite(magnitude).all() and 10.0 < np.median(magnitude) < 1000.0   # V/m at 100 % MSO
assert 0.0 < rmt < 100.0 and percent_mso < rmt < test_mso <= 100.0
assert list(sessions) == [p.name for p in protocols]
for s in sessions.values():
    assert s.percent_mso == percent_mso and set(s.mep_after) == set(PROBE_MINUTES)
    for m in [s.mep_before, *s.mep_after.values()]:
        assert m.responses.shape == (N_TEST,) and np.all((m.responses >= 0) & (m.responses <= 1))
    for w in s.mean_weights.values():
        assert w["before"] > 0 and np.isfinite(w[last]) and w[last] > 0
    assert sum(len(s.spikes[p]) for p in patch.populations) > 0
""",
    "04_treatment_course.ipynb": """
assert 0.0 < rmt < 100.0 and percent_mso < rmt < test_mso <= 100.0
assert list(courses) == ["healthy", "depressed", "depressed_val66met"]
for name, c in courses.items():
    assert c.complete and c.summary()["sessions_done"] == len(calendar)
    assert c.times_days[0] == 0 and np.all(np.diff(c.times_days) >= 0)
    assert c.mep.shape == c.times_days.shape and np.all((c.mep >= 0) & (c.mep <= 1))
    for series in [*c.mean_weights.values(), *c.bdnf.values()]:
        assert series.shape == c.times_days.shape and np.all(np.isfinite(series) & (series > 0))
    assert (root / name / "course.h5").is_file()
assert (root / "course.png").read_bytes()[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
""",
    "05_benchmarks.ipynb": """
assert efield_runs and snn_rows and cases
for run in efield_runs:
    for r in run["rows"]:     # SimNIBS's acceptance of a sphere solution
        assert r["tmsim"]["rdm"] < 0.2 and abs(r["tmsim"]["mag"]) < np.log(1.1)
assert all(r["tmsim"]["wall_no_compile_s"] > 0 for r in snn_rows)
""",
    "06_sweeps.ipynb": """
assert len(table) == len(sweep.runs()) and (table["status"] == "done").all()
assert table["mep_before"].between(0, 1).all()
assert (stats[stats["protocol.name"] == PROTOCOLS[0]]["n_pairs"] == len(NOISE_SEEDS)).all()
assert list(targets["head.model"]) == subjects and (targets["score_V_per_m"] > 0).all()
""",
}


@pytest.fixture
def notebook_size(monkeypatch, template_cache):
    """The kernel inherits this environment: the size (SIZE), a non-interactive backend, the
    repository on the path (so the worktree's packages are imported), the suite's template
    cache and (conftest's `compilation_cache`) its JAX compilation cache."""
    root = str(Path(__file__).resolve().parents[1])
    monkeypatch.setenv("TMSIM_CACHE_DIR", str(template_cache))
    monkeypatch.setenv("TMSIM_NOTEBOOK_SIZE", SIZE)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs_from_a_fresh_kernel_and_passes_its_checks(path, notebook_size):
    nb = nbformat.read(path, as_version=4)
    if path.name in CHECKS:
        nb.cells.append(nbformat.v4.new_code_cell("import pytest\n" + CHECKS[path.name]))
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
