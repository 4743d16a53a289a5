"""`tmsim target` end to end on a small sphere, and its argument errors."""

import json

import numpy as np
import pytest

import efield
from coupling.cli import main


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("target")
    assert main(["target", "--max-edge", "12", "--target", "20,10,80", "--direction", "1,0,0",
                 "--refine-steps", "10", "--out", str(out), "--quiet"]) == 0
    return out


def test_writes_placement_score_map_summary_and_picture(run_dir):
    matrix = np.loadtxt(run_dir / "best_matsimnibs.txt")
    placement = efield.Placement(matrix)
    summary = json.loads((run_dir / "summary.json").read_text())
    np.testing.assert_allclose(summary["matsimnibs"], matrix, atol=1e-8)
    rows = np.loadtxt(run_dir / "score_map.csv", delimiter=",", skiprows=1)
    assert rows.shape == (49 * 12, 7)
    assert summary["grid_score_V_per_m"] == pytest.approx(rows[:, 6].max(), rel=1e-5)
    assert summary["score_V_per_m"] >= summary["grid_score_V_per_m"]
    assert summary["direct_score_V_per_m"] == pytest.approx(summary["score_V_per_m"], rel=1e-2)
    np.testing.assert_allclose(np.linalg.norm(rows[:, 2:5], axis=1), 95.0, atol=0.2)
    assert np.linalg.norm(placement.centre_mm) == pytest.approx(99.0, abs=0.2)
    assert (run_dir / "score_map.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("argv, message", [
    (["--target", "20,10,80", "--radius", "-1"], "--radius"),
    (["--target", "20,10,80", "--direction", "up"], "--direction"),
    (["--target", "20,10,80", "--spacing", "0"], "--spacing"),
    (["--target", "Q99"], "Q99"),
    (["--target", "20,10,80", "--coil", "coil.xyz"], "--coil"),
    (["--target", "20,10,80", "--tissues", "7"], "tissues [7]"),
])
def test_bad_arguments_are_named(argv, message, capsys, tmp_path):
    assert main(["target", "--max-edge", "12", *argv, "--out", str(tmp_path / "x"), "--quiet"]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
