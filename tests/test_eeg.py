"""EEG positions: the TetMesh field, SimNIBS cap files, MNE montages on a scalp, labels in
placements, and SimNIBS subject folders."""

import re

import numpy as np
import pytest

import efield
from efield.geometry import surface_index

R_SCALP = 95.0
SAGITTA_MM = 0.5
"""The faceted scalp of a 12 mm sphere lies inside the sphere by at most h^2 / (6 R) ~ 0.3 mm."""

JURAK_10_10 = ("Fp1 Fpz Fp2 AF7 AF3 AFz AF4 AF8 F9 F7 F5 F3 F1 Fz F2 F4 F6 F8 F10 FT9 FT7 FC5 FC3 "
               "FC1 FCz FC2 FC4 FC6 FT8 FT10 T9 T7 C5 C3 C1 Cz C2 C4 C6 T8 T10 TP9 TP7 CP5 CP3 CP1 "
               "CPz CP2 CP4 CP6 TP8 TP10 P9 P7 P5 P3 P1 Pz P2 P4 P6 P8 P10 PO9 PO7 PO3 POz PO4 PO8 "
               "PO10 O1 Oz O2 Iz I1 I2").split()
"""The labels of SimNIBS's EEG10-10_UI_Jurak_2007 cap."""


@pytest.fixture(scope="module")
def sphere(sphere12):
    return sphere12


@pytest.fixture(scope="module")
def spherical(sphere):
    """MNE's spherical 10-05 positions on the sphere head."""
    return efield.standard_positions(sphere, "spherical_1005")


@pytest.fixture(scope="module")
def head(sphere, spherical):
    return sphere.with_eeg_positions(spherical)


def unit(v):
    v = np.asarray(v, float)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


# --- SimNIBS cap files ------------------------------------------------------------------

CAP = """\
Electrode,-29.299921208812744,81.56,-8.55,Fp1
Electrode,-49.1,52.45,39.28,F3
ReferenceElectrode,0.036,-8.22,97.35,Cz
Electrode,0.0,-116.2,-30.5,Iz

Generic,1.0,2.0,3.0
CoilPos,1.0,2.0,3.0,0.0,1.0,0.0,0.0,0.0,-1.0,4.0,coil
Fiducial,0.0,82.9,-43.0,Nz
Fiducial,0.0,-116.3,-30.5,iz
Fiducial,-79.6,-20.6,-48.6,LPA
"""


@pytest.mark.parametrize("newline, bom", [("\n", ""), ("\r\n", "\ufeff")])
def test_read_simnibs_cap(tmp_path, newline, bom):
    path = tmp_path / "cap.csv"
    path.write_bytes((bom + CAP.replace("\n", newline)).encode())
    positions = efield.read_eeg_positions(path)
    assert list(positions) == ["Fp1", "F3", "Cz", "Iz", "Nz", "LPA"]
    assert positions["Fp1"].tolist() == [-29.299921208812744, 81.56, -8.55]
    assert positions["Iz"].tolist() == [0.0, -116.2, -30.5]        # the first Iz row wins
    assert positions["LPA"].tolist() == [-79.6, -20.6, -48.6]


@pytest.mark.parametrize("text, message", [
    ("Electrode,1,2,3,F3\nElectrode,1,2,3\n", "line 2: expected 'Electrode,x,y,z,label'"),
    ("Electrode,1,2,3,\n", "line 1: expected"),
    ("\nElectrode,1,x,3,F3\n", "line 2: coordinates '1, x, 3' are not numbers"),
    ("Electrode,1,2,inf,F3\n", "line 1: coordinates must be finite"),
    ("Type,x,y,z,name\n", "line 1: row type 'Type' is none of"),
    ("Generic,1,2,3\n\n", "no electrode or fiducial positions"),
])
def test_read_errors_name_file_and_line(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=re.escape(str(path)) + ".*" + re.escape(message)):
        efield.read_eeg_positions(path)


def test_read_missing_or_binary_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        efield.read_eeg_positions(tmp_path / "none.csv")
    (tmp_path / "bin.csv").write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(ValueError, match="bin.csv: not a text file"):
        efield.read_eeg_positions(tmp_path / "bin.csv")


def test_write_then_read_is_exact(tmp_path):
    rng = np.random.default_rng(0)
    positions = {label: rng.normal(scale=80, size=3) for label in ["Fp1", "C3", "Nz", "LPA", "RPA"]}
    path = efield.write_eeg_positions(tmp_path / "sub" / "cap.csv", positions)
    back = efield.read_eeg_positions(path)
    assert list(back) == list(positions)
    for label in positions:
        assert np.array_equal(back[label], positions[label])
    kinds = [line.split(",")[0] for line in path.read_text().splitlines()]
    assert kinds == ["Electrode", "Electrode", "Fiducial", "Fiducial", "Fiducial"]


@pytest.mark.parametrize("positions, message", [
    ({"C3": [1.0, 2.0, np.nan]}, "3 finite coordinates"),
    ({"C3": [1.0, 2.0]}, "3 finite coordinates"),
    ({"C3,C4": [1.0, 2.0, 3.0]}, "comma"),
])
def test_write_errors_leave_the_old_file(tmp_path, positions, message):
    path = efield.write_eeg_positions(tmp_path / "cap.csv", {"Cz": [0.0, 0.0, 95.0]})
    before = path.read_bytes()
    with pytest.raises(ValueError, match=message):
        efield.write_eeg_positions(path, {"Fz": [0.0, 60.0, 60.0], **positions})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["cap.csv"]


# --- positions on a mesh ----------------------------------------------------------------

def test_mesh_positions_are_frozen_and_kept(sphere):
    mesh = sphere.with_eeg_positions({"Cz": [0.0, 0.0, 95.0], "Nz": (0, 95, 0)})
    assert sphere.eeg_positions == {} and "2 EEG positions" in repr(mesh)
    with pytest.raises(ValueError):
        mesh.eeg_positions["Cz"][0] = 1.0
    with pytest.raises(TypeError):
        mesh.eeg_positions["Fz"] = np.zeros(3)
    for derived in (mesh.subset([2, 4]), mesh.with_data(element_data={"x": np.zeros(mesh.n_tets)})):
        assert list(derived.eeg_positions) == ["Cz", "Nz"]
        assert np.array_equal(derived.eeg_positions["Nz"], [0.0, 95.0, 0.0])
    assert list(mesh.with_eeg_positions({"Fz": [0, 1, 2]}).eeg_positions) == ["Fz"]


@pytest.mark.parametrize("positions, message", [
    ({"Cz": [0.0, 0.0]}, r"eeg_positions\['Cz'\]: expected 3 finite"),
    ({"Cz": [0.0, 0.0, np.inf]}, "expected 3 finite"),
    ({"": [0.0, 0.0, 1.0]}, "non-empty string"),
    ({" Cz": [0.0, 0.0, 1.0]}, "non-empty string"),
    ({"Cz": [0, 0, 1], "CZ": [0, 0, 2]}, "'Cz' and 'CZ' differ only in case"),
])
def test_mesh_position_errors(sphere, positions, message):
    with pytest.raises(ValueError, match=message):
        sphere.with_eeg_positions(positions)


def test_label_lookup(head, spherical, sphere):
    assert np.array_equal(head.eeg_position("c3"), spherical["C3"])
    assert np.array_equal(head.eeg_position(" Fp1 "), spherical["Fp1"])
    with pytest.raises(ValueError, match=r"'F33' is not among the mesh's 347 positions \(closest: F3"):
        head.eeg_position("F33")
    with pytest.raises(ValueError, match=r"'\?\?' is not among .* \(e\.g\. AF1, AF10, "):
        head.eeg_position("??")
    with pytest.raises(ValueError, match="no EEG positions.*load_subject.*template_head.*with_eeg_positions"):
        sphere.eeg_position("C3")


# --- standard montages and projection ---------------------------------------------------

def test_spherical_montage_lands_on_the_sphere_along_its_directions(sphere, spherical):
    import mne

    montage = mne.channels.make_standard_montage("spherical_1005").get_positions()
    expected = {**montage["ch_pos"], "Nz": montage["nasion"], "LPA": montage["lpa"],
                "RPA": montage["rpa"]}
    assert set(spherical) == set(expected)
    points = np.array([spherical[k] for k in expected])
    directions = unit(np.array(list(expected.values())))
    assert np.abs(surface_index(sphere).signed_distance(points)).max() < 1e-9
    radius = np.linalg.norm(points, axis=1)
    assert np.all((radius > R_SCALP - SAGITTA_MM) & (radius <= R_SCALP + 1e-9))
    assert np.linalg.norm(unit(points) - directions, axis=1).max() < 1e-2
    np.testing.assert_allclose(unit(spherical["Nz"]), [0, 1, 0], atol=1e-2)   # +y anterior
    np.testing.assert_allclose(unit(spherical["LPA"]), [-1, 0, 0], atol=1e-2)  # +x right


def test_default_montage_has_the_10_10_labels_on_the_scalp(sphere):
    positions = efield.standard_positions(sphere)
    assert set(JURAK_10_10) | {"Nz", "LPA", "RPA"} <= set(positions)
    points = np.array(list(positions.values()))
    assert np.abs(surface_index(sphere).signed_distance(points)).max() < 1e-9


def test_project_to_scalp(sphere):
    rng = np.random.default_rng(1)
    points = unit(rng.normal(size=(50, 3))) * rng.uniform(10, 300, (50, 1))
    projected = efield.project_to_scalp(sphere, points)
    radius = np.linalg.norm(projected, axis=1)
    assert np.all((radius > R_SCALP - SAGITTA_MM) & (radius <= R_SCALP + 1e-9))
    assert np.linalg.norm(unit(projected) - unit(points), axis=1).max() < 0.1
    np.testing.assert_allclose(efield.project_to_scalp(sphere, projected), projected, atol=1e-9)
    with pytest.raises(ValueError, match="points_mm must be finite"):
        efield.project_to_scalp(sphere, [1.0, 2.0, 3.0])


def test_unknown_montage(sphere):
    with pytest.raises(ValueError, match="'standard_1020': not an MNE built-in montage.*colin27_1020"):
        efield.standard_positions(sphere, "standard_1020")


# --- labels in placements ---------------------------------------------------------------

def test_on_scalp_with_labels_equals_coordinates(head, spherical):
    by_label = efield.Placement.on_scalp(head, "C3", handle="cz", distance_mm=4)
    by_point = efield.Placement.on_scalp(head, spherical["C3"], handle=spherical["Cz"], distance_mm=4)
    np.testing.assert_array_equal(by_label.matsimnibs, by_point.matsimnibs)
    c3 = unit(spherical["C3"])
    np.testing.assert_allclose(by_label.centre_mm, (R_SCALP + 4) * c3, atol=SAGITTA_MM)
    facet_tilt = 12.0 / (np.sqrt(3) * R_SCALP)     # circumradius / R of a 12 mm facet
    assert np.linalg.norm(by_label.z_axis + c3) < facet_tilt
    to_cz = spherical["Cz"] - spherical["C3"]
    expected_y = unit(to_cz - (to_cz @ by_label.z_axis) * by_label.z_axis)
    np.testing.assert_allclose(by_label.y_axis, expected_y, atol=1e-12)


def test_on_scalp_label_errors(head):
    with pytest.raises(ValueError, match="centre: EEG label 'F33' is not among"):
        efield.Placement.on_scalp(head, "F33")
    with pytest.raises(ValueError, match="handle: EEG label 'nope' is not among"):
        efield.Placement.on_scalp(head, "F3", handle="nope")


# --- SimNIBS subject folders ------------------------------------------------------------

@pytest.fixture()
def m2m(tmp_path, sphere, spherical):
    """A charm-like folder m2m_ernie: ernie.msh and eeg_positions/EEG10-10_UI_Jurak_2007.csv."""
    folder = tmp_path / "m2m_ernie"
    efield.write_msh(folder / "ernie.msh", sphere)
    cap = {label: spherical[label] for label in JURAK_10_10 + ["Nz", "LPA", "RPA"]}
    efield.write_eeg_positions(folder / "eeg_positions" / "EEG10-10_UI_Jurak_2007.csv", cap)
    efield.write_eeg_positions(folder / "eeg_positions" / "EEG10-20_extended_SPM12.csv", cap)
    return folder


def test_load_subject(m2m, sphere, spherical):
    mesh = efield.load_subject(m2m)
    np.testing.assert_array_equal(mesh.nodes, sphere.nodes)
    np.testing.assert_array_equal(mesh.tets, sphere.tets)
    np.testing.assert_array_equal(mesh.tags, sphere.tags)
    assert len(mesh.eeg_positions) == len(JURAK_10_10) + 3
    np.testing.assert_array_equal(mesh.eeg_position("F3"), spherical["F3"])
    pos = efield.Placement.on_scalp(mesh, "F3", handle="Fz")
    assert pos.centre_mm[0] < 0 and pos.centre_mm[1] > 0               # left, anterior
    assert efield.load_subject(str(m2m) + "/", cap=None).eeg_positions == {}
    (m2m / "ernie.msh").rename(m2m.parent / "ernie.msh")                 # SimNIBS 3 layout
    np.testing.assert_array_equal(efield.load_subject(m2m).nodes, sphere.nodes)


def test_load_subject_errors(m2m, tmp_path):
    with pytest.raises(FileNotFoundError, match="m2m_nobody: no such folder"):
        efield.load_subject(tmp_path / "m2m_nobody")
    (tmp_path / "ernie").mkdir()
    with pytest.raises(ValueError, match="named m2m_<id>"):
        efield.load_subject(tmp_path / "ernie")
    with pytest.raises(FileNotFoundError, match="EEG10-10_Cutini_2011.csv: EEG cap not found; caps "
                       "in the folder: EEG10-10_UI_Jurak_2007, EEG10-20_extended_SPM12"):
        efield.load_subject(m2m, cap="EEG10-10_Cutini_2011")
    (m2m / "eeg_positions" / "EEG10-10_UI_Jurak_2007.csv").write_text("Electrode,1,2,3,F3\nElectrode,1,2\n")
    with pytest.raises(ValueError, match="EEG10-10_UI_Jurak_2007.csv, line 2"):
        efield.load_subject(m2m)
    (m2m / "ernie.msh").write_text("$MeshFormat\n2.2 0 8\n$EndMeshFormat\n$Nodes\n3\n")
    with pytest.raises(efield.MshFormatError, match="ernie.msh"):
        efield.load_subject(m2m)
    (m2m / "ernie.msh").rename(m2m / "other.msh")
    with pytest.raises(FileNotFoundError, match="ernie.msh: head mesh not found.*the folder has other.msh"):
        efield.load_subject(m2m)


def test_load_subject_warns_for_positions_off_the_scalp(m2m, spherical):
    shifted = {label: xyz + [0.0, 0.0, 40.0] for label, xyz in spherical.items()}
    efield.write_eeg_positions(m2m / "eeg_positions" / "EEG10-10_UI_Jurak_2007.csv", shifted)
    with pytest.warns(UserWarning, match="from the scalp"):
        efield.load_subject(m2m)


# --- tmsim efield --centre/--handle with labels -----------------------------------------

def test_cli_labels_on_the_sphere(tmp_path, head, spherical):
    import json

    from coupling.cli import main
    from coupling.config import HeadConfig
    from coupling.prepare import build_head

    assert main(["efield", "--max-edge", "12", "--centre", "C3", "--handle", "Cz",
                 "--out", str(tmp_path), "--quiet"]) == 0
    matsimnibs = np.array(json.loads((tmp_path / "summary.json").read_text())["matsimnibs"])
    c3 = unit(spherical["C3"])
    np.testing.assert_allclose(matsimnibs[:3, 3], (R_SCALP + 4.0) * c3, atol=SAGITTA_MM)
    cli_head = build_head(HeadConfig("sphere", 12.0))                 # the run's sphere, as the CLI builds it
    expected = efield.Placement.on_scalp(cli_head, "C3", handle="Cz", distance_mm=4.0)
    np.testing.assert_allclose(matsimnibs, expected.matsimnibs, atol=1e-9)


def test_cli_label_errors(tmp_path, sphere, capsys):
    from coupling.cli import main

    out = tmp_path / "x"
    assert main(["efield", "--max-edge", "12", "--centre", "F33", "--out", str(out), "--quiet"]) == 2
    assert "--centre: EEG label 'F33' is not among" in capsys.readouterr().err
    mesh = tmp_path / "head.msh"
    efield.write_msh(mesh, sphere)
    assert main(["efield", "--mesh", str(mesh), "--centre", "0,0,95", "--handle", "Fz",
                 "--out", str(out), "--quiet"]) == 2
    assert "--handle: EEG label 'Fz': this mesh has no EEG positions" in capsys.readouterr().err
    assert not out.exists()
    assert main(["efield", "--centre", "5", "--out", str(out)]) == 2
    assert "expected X,Y,Z in mm or an EEG label" in capsys.readouterr().err
