"""Coil models: file formats and built-in windings against exact loop fields."""

import base64
import json
import zlib

import numpy as np
import pytest
from scipy.special import ellipe, ellipk

from efield.coil import (FIGURE8_70MM_DIDT_MAX, Coil, CoilFormatError, circular_coil, figure8_70mm,
                         figure8_coil)
from efield.primary import coil_dadt

MU0 = 4e-7 * np.pi


def exact_loop_dadt(radius_mm, loop_z_mm, points_mm, didt=1e6):
    """dA/dt (V/m) of a circular loop about +z (counter-clockwise), exact (elliptic integrals)."""
    a = radius_mm * 1e-3
    x, y, z = (points_mm.T - np.array([[0], [0], [loop_z_mm]])) * 1e-3
    rho = np.hypot(x, y)
    s = (a + rho) ** 2 + z**2
    m = 4 * a * rho / s
    a_phi = MU0 * a / (np.pi * np.sqrt(s)) * ((2 - m) * ellipk(m) - 2 * ellipe(m)) / m
    return didt * a_phi[:, None] * np.column_stack([-y / rho, x / rho, np.zeros_like(x)])


def points_below(depths_mm, radii_mm, n_angles=7):
    theta = np.linspace(0, 2 * np.pi, n_angles, endpoint=False) + 0.3
    d, r, t = np.meshgrid(depths_mm, radii_mm, theta, indexing="ij")
    return np.column_stack([(r * np.cos(t)).ravel(), (r * np.sin(t)).ravel(), d.ravel()])


def relative_error(approx, exact):
    return np.linalg.norm(approx - exact, axis=1) / np.linalg.norm(exact, axis=1)


# --- built-in windings ------------------------------------------------------------------

def test_dipole_disk_matches_exact_loop():
    coil = circular_coil(turns=1, inner_radius_mm=40, outer_radius_mm=40, winding_height_mm=5)
    points = points_below([20, 30, 40], [5, 20, 40, 60])
    got = np.asarray(coil_dadt(coil, np.eye(4), points))
    assert relative_error(got, exact_loop_dadt(40, -5, points)).max() < 0.01


def test_wire_loop_matches_exact_loop():
    t = np.linspace(0, 2 * np.pi, 360, endpoint=False)
    coil = Coil.from_wire(np.column_stack([40 * np.cos(t), 40 * np.sin(t), np.full_like(t, -5)]))
    points = points_below([20, 30, 40], [5, 20, 40, 60])
    got = np.asarray(coil_dadt(coil, np.eye(4), points))
    assert relative_error(got, exact_loop_dadt(40, -5, points)).max() < 0.01
    assert np.allclose(coil.total_moment, [0, 0, np.pi * 0.04**2], rtol=1e-3)


def test_circular_coil_is_sum_of_its_turns():
    coil = circular_coil(turns=3, inner_radius_mm=30, outer_radius_mm=50, winding_height_mm=5)
    points = points_below([25, 35], [10, 45])
    exact = sum(exact_loop_dadt(r, -5, points) for r in (30, 40, 50))
    assert relative_error(np.asarray(coil_dadt(coil, np.eye(4), points)), exact).max() < 0.01


def test_figure8_70mm_preset():
    coil = figure8_70mm()
    assert coil.n_elements <= 3000
    assert coil.didt_max == FIGURE8_70MM_DIDT_MAX
    right = coil.dipole_positions[:, 0] > 0
    wing = coil.dipole_moments[right].sum(axis=0)
    assert abs(wing[2] / 0.0355 - 1) < 0.03
    assert np.allclose(coil.total_moment, 0, atol=1e-12)
    assert np.allclose(np.unique(coil.dipole_positions[:, 2]), [-8.8333, -6.5, -4.1667], atol=1e-3)
    assert (coil.dipole_positions[:, 2] < 0).all()


def test_figure8_field_under_centre_points_along_handle():
    e = -np.asarray(coil_dadt(figure8_70mm(), np.eye(4), [[0, 0, 15.0]]))[0]
    assert e[1] > 0 and abs(e[0]) < 1e-9 * e[1] and abs(e[2]) < 1e-9 * e[1]


def test_figure8_grid_converged_at_15mm():
    x, y = np.meshgrid(np.linspace(-40, 40, 9), np.linspace(-40, 40, 9))
    points = np.column_stack([x.ravel(), y.ravel(), np.full(x.size, 15.0)])
    coarse = np.asarray(coil_dadt(figure8_70mm(), np.eye(4), points))
    fine = np.asarray(coil_dadt(figure8_70mm(resolution_mm=2.0), np.eye(4), points))
    scale = np.linalg.norm(fine, axis=1).max()
    assert np.linalg.norm(coarse - fine, axis=1).max() < 0.01 * scale


def test_figure8_wings_have_opposite_moments():
    coil = figure8_coil(turns=2, inner_radius_mm=20, outer_radius_mm=30, wing_spacing_mm=70)
    right = coil.dipole_positions[:, 0] > 0
    assert (coil.dipole_moments[right, 2] > 0).all() and (coil.dipole_moments[~right, 2] < 0).all()
    assert np.allclose(coil.dipole_positions[right, 0].mean(), 35, atol=1.0)


def test_circular_coil_layers_share_the_turns():
    one = circular_coil(turns=4, layers=1)
    three = circular_coil(turns=4, layers=3, layer_spacing_mm=2.0, winding_height_mm=6.0)
    assert np.allclose(one.total_moment, three.total_moment)
    assert np.allclose(np.unique(three.dipole_positions[:, 2]), [-8, -6, -4])


def test_coil_is_immutable_and_validated():
    coil = circular_coil(turns=2)
    with pytest.raises(ValueError):
        coil.dipole_positions[0, 0] = 1.0
    with pytest.raises(AttributeError):
        coil.name = "other"
    with pytest.raises(ValueError, match="dipole positions"):
        Coil(np.zeros((2, 3)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="NaN"):
        Coil(np.full((1, 3), np.nan), np.zeros((1, 3)))
    assert Coil().n_elements == 0


# --- .ccd -------------------------------------------------------------------------------

SIMNIBS_STYLE_HEADER = ("# D70.ccd version 1.0 number of elements; dIdtmax=114.73;x=-300,300;"
                        "y=-200,200;resolution=3;stimulator=Magstim Rapid;brand=Magstim;"
                        "coilname=D70;")


def write_ccd(path, rows, header=SIMNIBS_STYLE_HEADER, count=None):
    body = "\n".join(" ".join(f"{v:.6e}" for v in row) for row in rows)
    count = len(rows) if count is None else count
    path.write_text(f"{header}\n{count}\n# centers and weighted directions of the elements "
                    f"(magnetic dipoles)\n{body}\n")
    return path


ROWS = [[0.01, 0.0, -0.004, 0.0, 0.0, 2e-5], [-0.01, 0.002, -0.004, 0.0, 0.0, -2e-5]]


def test_read_ccd_units_and_header(tmp_path):
    coil = Coil.from_ccd(write_ccd(tmp_path / "d70.ccd", ROWS))
    assert np.allclose(coil.dipole_positions, [[10, 0, -4], [-10, 2, -4]])
    assert np.allclose(coil.dipole_moments[:, 2], [2e-5, -2e-5])
    assert coil.didt_max == pytest.approx(114.73e6)
    assert coil.name == "D70"
    assert coil.header["x"] == "-300,300" and coil.header["stimulator"] == "Magstim Rapid"
    assert coil.header["description"] == "D70.ccd version 1.0 number of elements"


def test_ccd_round_trip_keeps_everything(tmp_path):
    coil = Coil.from_ccd(write_ccd(tmp_path / "a.ccd", ROWS))
    coil.to_ccd(tmp_path / "b.ccd")
    again = Coil.from_ccd(tmp_path / "b.ccd")
    assert np.allclose(again.dipole_positions, coil.dipole_positions, rtol=1e-15, atol=0)
    assert np.array_equal(again.dipole_moments, coil.dipole_moments)
    assert dict(again.header) == dict(coil.header)
    assert (again.name, again.didt_max) == (coil.name, coil.didt_max)


def test_ccd_writes_changed_name_and_didt(tmp_path):
    coil = figure8_coil(turns=2, didt_max=1.5e8, name="mine")
    coil.to_ccd(tmp_path / "c.ccd")
    again = Coil.from_ccd(tmp_path / "c.ccd")
    assert again.name == "mine" and again.didt_max == pytest.approx(1.5e8)
    assert np.allclose(again.dipole_positions, coil.dipole_positions, rtol=1e-15, atol=1e-15)


def test_ccd_without_fields_or_didt(tmp_path):
    header = "# Old_coil.ccd version 1.0 number of elements"
    coil = Coil.from_ccd(write_ccd(tmp_path / "old.ccd", ROWS, header=header))
    assert coil.didt_max is None and coil.name == "old"


@pytest.mark.parametrize("rows, count, message", [
    ([[0, 0, 0, 0, 0]], None, r"line 4: expected six finite numbers"),
    ([[0, 0, 0, 0, 0, 1], [0, 0, "nan", 0, 0, 1]], None, r"line 5"),
    ([[0, 0, 0, 0, 0, 1], [0, 0, "x", 0, 0, 1]], None, r"line 5"),
    ([[0, 0, 0, 0, 0, 1]], 3, r"announces 3 dipoles, the file has 1"),
])
def test_ccd_errors_name_file_and_line(tmp_path, rows, count, message):
    path = tmp_path / "bad.ccd"
    body = "\n".join(" ".join(str(v) for v in row) for row in rows)
    path.write_text(f"{SIMNIBS_STYLE_HEADER}\n{count or len(rows)}\n# comment\n{body}\n")
    with pytest.raises(ValueError, match=message) as err:
        Coil.from_ccd(path)
    assert "bad.ccd" in str(err.value)


def test_ccd_missing_file(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        Coil.from_ccd(tmp_path / "missing.ccd")


def test_ccd_refuses_segments(tmp_path):
    coil = Coil.from_wire([[0, 0, 0], [1, 0, 0], [0, 1, 0]])
    with pytest.raises(ValueError, match="only dipoles"):
        coil.to_ccd(tmp_path / "w.ccd")


# --- .tcd -------------------------------------------------------------------------------

def packed(a):
    return base64.b64encode(zlib.compress(np.asarray(a, np.float64).tobytes())).decode("ascii")


def tcd_dict():
    return {
        "name": "Test coil", "brand": "Acme", "version": "1",
        "coilElementList": [
            {"name": "dipoles", "stimulator": 0, "type": 1,
             "points": [[10.0, 0.0, -5.0], [-10.0, 0.0, -5.0]],
             "values": [[0.0, 0.0, 1e-5], [0.0, 0.0, -1e-5]]},
            {"name": "wire", "stimulator": 0, "type": 2, "deformations": [0],
             "points": packed([[0, 0, -6.0], [1, 0, -6.0]]),
             "values": packed([[1.0, 0, 0], [0, 2.0, 0]])},
        ],
        "stimulatorList": [{"name": "Stim", "brand": "Acme", "maxdIdt": 1.4e8}],
        "deformList": [{"deformRange": 0, "type": "x"}],
        "deformRangeList": [{"initial": 0.0, "range": [-10, 10]}],
    }


def write_tcd(path, tcd):
    path.write_text(json.dumps(tcd))
    return path


def test_read_tcd(tmp_path):
    coil = Coil.from_tcd(write_tcd(tmp_path / "c.tcd", tcd_dict()))
    assert coil.name == "Test coil" and coil.didt_max == 1.4e8
    assert np.allclose(coil.dipole_positions, [[10, 0, -5], [-10, 0, -5]])
    assert np.allclose(coil.dipole_moments[:, 2], [1e-5, -1e-5])
    assert np.allclose(coil.segment_positions, [[0, 0, -6], [1, 0, -6]])
    assert np.allclose(coil.segment_vectors, [[1, 0, 0], [0, 2, 0]])
    assert coil.header["stimulator"] == "Stim" and coil.header["brand"] == "Acme"


def test_tcd_refuses_sampled_grid(tmp_path):
    tcd = tcd_dict()
    tcd["coilElementList"].append({"name": "grid", "stimulator": 0, "type": 3,
                                   "data": [[[[0, 0, 0]]]], "affine": np.eye(4).tolist()})
    with pytest.raises(ValueError, match=r"element 2 \('grid'\).*grid"):
        Coil.from_tcd(write_tcd(tmp_path / "g.tcd", tcd))


def test_tcd_refuses_deformed_element(tmp_path):
    tcd = tcd_dict()
    tcd["deformRangeList"][0]["initial"] = 3.0
    with pytest.raises(ValueError, match=r"c.tcd, element 1 \('wire'\).*deformation 0"):
        Coil.from_tcd(write_tcd(tmp_path / "c.tcd", tcd))


def test_tcd_errors(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        Coil.from_tcd(tmp_path / "missing.tcd")
    tcd = tcd_dict()
    tcd["coilElementList"][0]["values"] = [[0, 0, float("nan")], [0, 0, 1]]
    with pytest.raises(ValueError, match=r"n.tcd, element 0 \('dipoles'\), values"):
        Coil.from_tcd(write_tcd(tmp_path / "n.tcd", tcd))


# --- .tcd and .ccd coil files ---------------------------------------------------------------

EL = "coilElementList"


def at(i, key):
    """The regex of an element's key in a message."""
    return rf", element {i} \('\w+'\), {key} \(coilElementList\[{i}\]\.{key}\)"


def set_key(tcd, keys, value):
    *parents, last = keys
    for key in parents:
        tcd = tcd[key]
    if value is KeyError:
        del tcd[last]
    else:
        tcd[last] = value


BAD_TCD = [
    (["coilElementList"], "dipoles", r": coilElementList: expected a list, got a string"),
    (["coilElementList"], KeyError, r": coilElementList: missing"),
    (["coilElementList"], [], r": coilElementList: empty"),
    ([EL, 0], 5, r": coilElementList\[0\]: expected an object, got an integer \(5\)"),
    ([EL, 0, "type"], "1", at(0, "type") + ": expected a non-negative integer, got a string"),
    ([EL, 0, "type"], KeyError, at(0, "type") + ": missing"),
    ([EL, 0, "type"], 7, at(0, "type") + ": type 7 elements are not supported"),
    ([EL, 0, "type"], 3, at(0, "type") + ": A-field sampled on a grid"),
    ([EL, 0, "points"], [[0, 0, 1, 0, 0, 1], [0, 0, 2, 0, 0, 2]],
     at(0, "points") + r": expected an \(n, 3\) array with n >= 1, got shape \(2, 6\)"),
    ([EL, 0, "points"], [1, 2, 3], at(0, "points") + r": .*got shape \(3,\)"),
    ([EL, 0, "points"], [[0, 0, "x"]], at(0, "points") + r": expected an \(n, 3\) array"),
    ([EL, 0, "points"], [[0, 0], [1]], at(0, "points") + r": expected an \(n, 3\) array"),
    ([EL, 0, "points"], {"x": 1}, at(0, "points") + ": expected a list or a base64 string"),
    ([EL, 0, "points"], KeyError, at(0, "points") + ": missing"),
    ([EL, 0, "values"], [[0, 0, float("nan")]] * 2, at(0, "values") + ": NaN or infinite"),
    ([EL, 0, "values"], [[0, 0, 1]] * 3, at(0, "values") + ": 3 values for 2 points"),
    ([EL, 1, "points"], packed([1.0, 2.0, 3.0, 4.0]), at(1, "points") + ": 4 packed float64"),
    ([EL, 1, "points"], "not base64!", at(1, "points") + r": expected an \(n, 3\) array"),
    ([EL, 1, "deformations"], 5, at(1, "deformations") + ": expected a list, got an integer"),
    ([EL, 1, "deformations"], [7], at(1, r"deformations\[0\]") + ": deformation 7 is not"),
    ([EL, 1, "deformations"], ["a"], at(1, r"deformations\[0\]") + ": deformation 'a' is not"),
    (["deformList"], {"a": 1}, r": deformList: expected a list, got an object"),
    (["deformList", 0], 5, r": deformList\[0\]: expected an object"),
    (["deformList", 0, "deformRange"], KeyError, r": deformList\[0\]\.deformRange: missing"),
    (["deformList", 0, "deformRange"], 4, r": deformList\[0\]\.deformRange: 4 is not an index"),
    (["deformRangeList", 0, "initial"], KeyError, r": deformRangeList\[0\]\.initial: missing"),
    (["deformRangeList", 0, "initial"], "0",
     r": deformRangeList\[0\]\.initial: expected a number, got a string"),
    (["deformRangeList", 0, "initial"], 3.0,
     at(1, r"deformations\[0\]") + ": deformation 0 .* initial value 3.0; deformed elements"),
    ([EL, 0, "stimulator"], -1, at(0, "stimulator") + ": expected a non-negative integer"),
    ([EL, 0, "stimulator"], 1, r": elements use several stimulators \[0, 1\]"),
    (["stimulatorList"], {"name": "Stim"}, r": stimulatorList: expected a list, got an object"),
    (["stimulatorList", 0], "Stim", r": stimulatorList\[0\]: expected an object, got a string"),
    (["stimulatorList", 0, "maxdIdt"], "fast", r": stimulatorList\[0\]\.maxdIdt: expected a positive number"),
    (["stimulatorList", 0, "maxdIdt"], -1.0, r": stimulatorList\[0\]\.maxdIdt: expected a positive number"),
    (["stimulatorList", 0, "maxdIdt"], float("inf"), r": stimulatorList\[0\]\.maxdIdt: expected a positive"),
]


@pytest.mark.parametrize("keys, value, message", BAD_TCD)
def test_tcd_errors_name_file_and_key(tmp_path, keys, value, message):
    tcd = tcd_dict()
    set_key(tcd, keys, value)
    path = tmp_path / "bad.tcd"
    path.write_text(json.dumps(tcd))
    with pytest.raises(CoilFormatError, match=r"bad\.tcd" + message):
        Coil.from_tcd(path)


def test_tcd_stimulator_out_of_range(tmp_path):
    tcd = tcd_dict()
    for el in tcd["coilElementList"]:
        el["stimulator"] = 1
    path = tmp_path / "bad.tcd"
    path.write_text(json.dumps(tcd))
    with pytest.raises(CoilFormatError, match=r"bad\.tcd: stimulatorList: the elements use stimulator 1, "
                                              r"but the list has 1"):
        Coil.from_tcd(path)


@pytest.mark.parametrize("content, message", [
    (b"[1, 2]", r"bad\.tcd: expected a JSON object, got a list"),
    (b"{'name': 1}", r"bad\.tcd: not a JSON \.tcd file"),
    (b"\xff\xfe\x00garbage", r"bad\.tcd: not a JSON \.tcd file"),
    (None, r"bad\.tcd: cannot read file"),
])
def test_tcd_unreadable_files(tmp_path, content, message):
    path = tmp_path / "bad.tcd"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    with pytest.raises(CoilFormatError, match=message):
        Coil.from_tcd(path)


HEADER = "# coil; dIdtmax=100; coilname=Test"
ROW = "0.01 0 -0.005 0 0 1e-5"


@pytest.mark.parametrize("content, message", [
    ("", r"bad\.ccd: a \.ccd file needs a header line"),
    (f"coil\n1\n#\n{ROW}\n", r"bad\.ccd, line 1: expected a header line starting with '#'"),
    (f"{HEADER}\nmany\n#\n{ROW}\n", r"bad\.ccd, line 2: expected the number of dipoles"),
    (f"{HEADER}\n0\n#\n", r"bad\.ccd: line 2 announces 0 dipoles, the file has 0; a coil needs at least one"),
    (f"{HEADER}\n2\n#\n{ROW}\n", r"bad\.ccd: line 2 announces 2 dipoles, the file has 1"),
    ("# coil; dIdtmax=nan\n1\n#\n" + ROW, r"bad\.ccd, line 1: dIdtmax='nan' must be a positive finite"),
    ("# coil; dIdtmax=fast\n1\n#\n" + ROW, r"bad\.ccd, line 1: dIdtmax='fast' is not a number"),
    (f"{HEADER}\n1\n#\n0.01 0 -0.005 0 0\n", r"bad\.ccd, line 4: expected six finite numbers"),
    pytest.param(f"{HEADER}\n1\n#\n1e306 0 0 0 0 1\n", r"bad\.ccd: Coil\.dipole_positions: contains NaN",
                 marks=pytest.mark.filterwarnings("ignore:overflow")),
    (b"\xff\xfe\x00", r"bad\.ccd: not a text \.ccd file"),
    (None, r"bad\.ccd: cannot read file"),
])
def test_ccd_errors_name_the_file(tmp_path, content, message):
    path = tmp_path / "bad.ccd"
    if content is None:
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(CoilFormatError, match=message):
        Coil.from_ccd(path)


def test_to_ccd_leaves_no_partial_file(tmp_path, monkeypatch):
    coil = figure8_70mm()
    path = tmp_path / "c.ccd"
    path.write_text("old")

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savetxt", fail)
    with pytest.raises(OSError, match="disk full"):
        coil.to_ccd(path)
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["c.ccd"]
