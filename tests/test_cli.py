"""`tmsim efield` end to end, result files and pictures."""

import json

import h5py
import numpy as np
import pytest

import efield
from coupling.cli import main


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("efield")
    assert main(["efield", "--max-edge", "12", "--out", str(out), "--quiet"]) == 0
    return out


def test_writes_mesh_hdf5_picture_and_summary(run_dir):
    mesh = efield.read_msh(run_dir / "efield.msh")
    assert {"E", "magnE"} <= set(mesh.element_data)
    assert {"v", "D"} <= set(mesh.node_data)
    np.testing.assert_allclose(mesh.element_data["magnE"],
                               np.linalg.norm(mesh.element_data["E"], axis=1), rtol=1e-12)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["max"] == pytest.approx(mesh.element_data["magnE"].max())
    with h5py.File(run_dir / "efield.h5") as f:
        assert f.attrs["max_magnE_V_per_m"] == pytest.approx(summary["max"])
        inner = f["innermost_tissue"]
        assert inner.attrs["tag"] == 2
        assert np.all(np.linalg.norm(inner["barycenters_mm"][:], axis=1) < 85 + 1e-6)
    png = (run_dir / "efield.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert (width, height) == (11 * 120, int(4.8 * 120))


def test_peak_field_lies_under_the_coil(run_dir):
    summary = json.loads((run_dir / "summary.json").read_text())
    peak = np.asarray(summary["max_location_mm"])
    centre = np.asarray(summary["matsimnibs"])[:3, 3]      # default: over F3, as in a run
    assert np.linalg.norm(peak) > 80                       # near the surface ...
    direction = lambda x: x / np.linalg.norm(x)
    assert np.linalg.norm(95 * (direction(peak) - direction(centre))) < 25    # under it
    assert summary["tissues"]["2"]["max"] < summary["max"]   # the field decays with depth


def test_coil_file_and_matsimnibs_give_the_same_field(run_dir, tmp_path):
    coil = tmp_path / "fig8.ccd"
    efield.figure8_70mm().to_ccd(coil)
    matrix = tmp_path / "pose.txt"
    np.savetxt(matrix, json.loads((run_dir / "summary.json").read_text())["matsimnibs"])
    out = tmp_path / "again"
    assert main(["efield", "--max-edge", "12", "--coil", str(coil), "--matsimnibs", str(matrix),
                 "--out", str(out), "--quiet"]) == 0
    first = efield.read_msh(run_dir / "efield.msh").element_data["E"]
    second = efield.read_msh(out / "efield.msh").element_data["E"]
    np.testing.assert_allclose(second, first, rtol=1e-6, atol=1e-9 * np.abs(first).max())


@pytest.mark.parametrize("argv, message", [
    (["efield", "--coil", "missing.ccd"], "missing.ccd"),
    (["efield", "--coil", "coil.xyz"], "--coil"),
    (["efield", "--mesh", "missing.msh", "--centre", "0,0,95"], "missing.msh"),
])
def test_bad_input_is_named(argv, message, capsys, tmp_path):
    assert main(argv + ["--out", str(tmp_path / "x"), "--quiet"]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_result_formats(tmp_path, sphere12, figure8):
    head = sphere12
    pos = efield.Placement.on_scalp(head, [0, 0, 95], [0, 50, 95])
    res = efield.simulate(head, figure8, pos, didt=2e6)
    back = efield.read_msh(res.save(tmp_path / "r.msh"))
    np.testing.assert_array_equal(back.element_data["E"], res.E)
    np.testing.assert_array_equal(back.node_data["v"], res.potential)
    with h5py.File(res.save(tmp_path / "r.h5")) as f:
        np.testing.assert_array_equal(f["fields/E_V_per_m"][:], res.E)
        assert f.attrs["didt_A_per_s"] == 2e6
    with pytest.raises(ValueError, match="unknown result format"):
        res.save(tmp_path / "r.vtk")
    # the field is linear in dI/dt
    half = efield.simulate(head, figure8, pos, didt=1e6)
    np.testing.assert_allclose(half.E * 2, res.E, rtol=1e-6, atol=1e-9 * np.abs(res.E).max())


def test_coil_inside_the_head_is_refused(sphere12, figure8):
    pose = np.eye(4)
    pose[:3, :3] = np.diag([1.0, -1.0, -1.0])
    pose[2, 3] = 90.0                               # coil bottom 5 mm inside the scalp
    with pytest.raises(ValueError, match="inside the head"):
        efield.simulate(sphere12, figure8, efield.Placement(pose))
