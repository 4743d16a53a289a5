"""Bad input to `tmsim efield`, `tmsim target` and `efield.optimize_placement`: refused before
any work with the argument and its allowed range named; --conductivity; Ctrl-C."""

import json

import numpy as np
import pytest

import coupling.pipeline
import efield
import efield.solver
from coupling.cli import main


@pytest.fixture(scope="module")
def sphere():
    return efield.sphere_head(radii_mm=(85, 90, 95), max_edge_mm=12)


@pytest.fixture
def no_meshing(monkeypatch):
    """Meshing a built-in head fails the test: refusals must come before it."""
    def mesh(*args, **kwargs):
        raise AssertionError("meshing started")

    monkeypatch.setattr(efield, "sphere_head", mesh)
    monkeypatch.setattr(efield, "template_head", mesh)


EFIELD_ARGS = [
    (["--distance=-3"], "--distance", ">= 0"),
    (["--distance", "nan"], "--distance", ">= 0"),
    (["--didt", "nan"], "--didt", "> 0"),
    (["--didt", "inf"], "--didt", "> 0"),
    (["--didt", "0"], "--didt", "> 0"),
    (["--max-edge", "0"], "--max-edge", "> 0"),
    (["--max-edge", "nan"], "--max-edge", "> 0"),
    (["--max-edge", "inf"], "--max-edge", "> 0"),
    (["--conductivity", "6"], "--conductivity", "TAG=S_PER_M"),
    (["--conductivity", "0=0.5"], "--conductivity", "tag >= 1"),
    (["--conductivity", "six=0.5"], "--conductivity", "tag >= 1"),
    (["--conductivity", "6=-0.5"], "--conductivity", "> 0 in S/m"),
    (["--conductivity", "6=nan"], "--conductivity", "> 0 in S/m"),
]

TARGET_ARGS = [
    (["--radius", "0"], "--radius", "> 0"),
    (["--radius", "nan"], "--radius", "> 0"),
    (["--search-radius", "-1"], "--search-radius", ">= 0"),
    (["--search-radius", "inf"], "--search-radius", ">= 0"),
    (["--spacing", "0"], "--spacing", "> 0"),
    (["--angle-step", "0"], "--angle-step", "> 0 and <= 360"),
    (["--angle-step", "361"], "--angle-step", "> 0 and <= 360"),
    (["--grid-spacing", "nan"], "--grid-spacing", "> 0"),
    (["--refine-steps", "-1"], "--refine-steps", "integer >= 0"),
    (["--refine-steps", "2.5"], "--refine-steps", "integer >= 0"),
    (["--distance=-3"], "--distance", ">= 0"),
    (["--didt", "inf"], "--didt", "> 0"),
    (["--max-edge=-4"], "--max-edge", "> 0"),
    (["--tissues", "0"], "--tissues", ">= 1"),
    (["--conductivity", "2=0"], "--conductivity", "> 0 in S/m"),
]


@pytest.mark.parametrize("command, argv, option, allowed",
                         [("efield", argv, o, a) for argv, o, a in EFIELD_ARGS]
                         + [("target", ["--target", "0,0,80", *argv], o, a) for argv, o, a in TARGET_ARGS])
def test_bad_numbers_are_refused_at_parsing(command, argv, option, allowed, no_meshing, capsys, tmp_path):
    out = tmp_path / "out"
    assert main([command, *argv, "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"argument {option}:" in err and allowed in err
    assert not out.exists()


def test_conductivity_reaches_the_solver_and_is_recorded(sphere, tmp_path, capsys):
    tags = np.where(sphere.tags == 5, 11, sphere.tags)           # scalp as a tag with no default
    path = tmp_path / "head.msh"
    efield.write_msh(path, efield.TetMesh(sphere.nodes, sphere.tets, tags, sphere.tris, sphere.tri_tags))
    argv = ["efield", "--mesh", str(path), "--centre", "0,0,95", "--quiet"]
    assert main([*argv, "--out", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert "[11]" in err and "conductivity" in err
    assert not (tmp_path / "none").exists()
    out = tmp_path / "out"
    assert main([*argv, "--conductivity", "11=0.465", "--conductivity", "2=0.3", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["conductivity_S_per_m"] == {"11": 0.465, "2": 0.3}


@pytest.mark.parametrize("command, handler, checkpoint, expected", [
    (["run"], "run_course_config", False, "no session had finished, so there is nothing to resume"),
    (["run"], "run_course_config", True, "checkpoint.npz holds the last finished session: rerun the same "
                                         "command to resume from it"),
    (["session"], "run_session_config", False, "interrupted"),
])
def test_ctrl_c_exits_130_with_one_line(command, handler, checkpoint, expected, monkeypatch, capsys,
                                        tmp_path):
    """One line on Ctrl-C; for `run` it says whether a checkpoint is there to resume from."""
    def interrupted(*args, **kwargs):
        if checkpoint:
            (tmp_path / "out").mkdir()
            (tmp_path / "out" / "checkpoint.npz").write_bytes(b"")
        raise KeyboardInterrupt

    monkeypatch.setattr(coupling.pipeline, handler, interrupted)
    assert main([*command, "--out", str(tmp_path / "out"), "--quiet"]) == 130
    err = capsys.readouterr().err
    assert err.startswith(f"tmsim {command[0]}: interrupted") and expected in err
    assert err.count("\n") == 1


def test_ctrl_c_during_efield(monkeypatch, capsys, tmp_path):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(efield, "sphere_head", interrupted)
    assert main(["efield", "--out", str(tmp_path / "out"), "--quiet"]) == 130
    assert capsys.readouterr().err == "tmsim efield: interrupted\n"


# --- efield.optimize_placement -------------------------------------------------------------

@pytest.fixture
def no_solver(monkeypatch):
    """Setting up a FieldSolver fails the test: refusals must come before it."""
    def solver(*args, **kwargs):
        raise AssertionError("solver set-up started")

    monkeypatch.setattr(efield.solver, "FieldSolver", solver)


@pytest.mark.parametrize("target", [(0.0, 0.0), [[0, 0, 75]], ["a", "b", "c"], object(), {"x": 0}])
def test_optimize_placement_names_a_target_it_cannot_use(sphere, target, no_solver):
    accepted = r"expected a Target, a point \(3 numbers, mm\) or an EEG label"
    with pytest.raises(TypeError, match=rf"^target=.*{accepted}"):
        efield.optimize_placement(sphere, efield.figure8_70mm(), target)


def test_optimize_placement_refuses_a_non_finite_point(sphere, no_solver):
    with pytest.raises(ValueError, match="target must be 3 finite coordinates"):
        efield.optimize_placement(sphere, efield.figure8_70mm(), (0.0, np.nan, 75.0))


@pytest.mark.parametrize("name, value, allowed", [
    ("search_radius_mm", np.nan, ">= 0 mm"),
    ("search_radius_mm", np.inf, ">= 0 mm"),
    ("search_radius_mm", -1.0, ">= 0 mm"),
    ("spacing_mm", 0.0, "> 0 mm"),
    ("spacing_mm", np.nan, "> 0 mm"),
    ("angle_step_deg", np.inf, r"in \(0, 360\] degrees"),
    ("angle_step_deg", 400.0, r"in \(0, 360\] degrees"),
    ("distance_mm", -3.0, ">= 0 mm"),
    ("distance_mm", np.nan, ">= 0 mm"),
    ("didt", np.nan, "!= 0 A/s"),
    ("didt", -np.inf, "!= 0 A/s"),
    ("didt", 0.0, "!= 0 A/s"),
    ("grid_spacing_mm", np.nan, "> 0 mm"),
])
def test_optimize_placement_refuses_bad_numbers_before_any_work(sphere, name, value, allowed, no_solver):
    with pytest.raises(ValueError, match=rf"^{name}=.*must be a finite number {allowed}"):
        efield.optimize_placement(sphere, efield.figure8_70mm(), (0, 0, 75), **{name: value})


def test_optimize_placement_names_a_number_of_the_wrong_type(sphere, no_solver):
    with pytest.raises(TypeError, match="^didt='fast': expected a finite number"):
        efield.optimize_placement(sphere, efield.figure8_70mm(), (0, 0, 75), didt="fast")


def test_a_label_target_is_the_grey_matter_under_the_electrode(sphere):
    head = sphere.with_eeg_positions(efield.standard_positions(sphere, "spherical_1005"))
    target = efield.Target.at(head, "Cz", 12.0, tissues=2, direction=(1, 0, 0))
    centre = np.asarray(target.centre)
    grey = head.barycenters[head.tags == 2]
    assert np.linalg.norm(centre - head.eeg_position("Cz")) == pytest.approx(
        np.linalg.norm(grey - head.eeg_position("Cz"), axis=1).min())
    assert np.linalg.norm(centre) < 85 and centre[2] > 70
    assert (target.radius_mm, target.tissues, target.direction) == (12.0, (2,), (1.0, 0.0, 0.0))
    with pytest.raises(ValueError, match=r"Target tissues \[7\]: none in the mesh"):
        efield.Target.at(head, "Cz", tissues=7)
    with pytest.raises(ValueError, match="^target: EEG label 'Q99'"):
        efield.Target.at(head, "Q99")


def test_optimize_placement_takes_a_point(sphere):
    result = efield.optimize_placement(sphere, efield.figure8_70mm(), (0, 0, 75), search_radius_mm=10.0,
                                       spacing_mm=10.0, angle_step_deg=90.0, refine_steps=0, verify=False)
    assert result.target == efield.Target((0.0, 0.0, 75.0))
    centre = result.placement.matsimnibs[:3, 3]
    assert np.linalg.norm(centre[:2]) <= 10.0 + 1e-6 and centre[2] > 95


def test_the_help_texts_name_the_coils_load_coil_knows():
    import coupling.cli
    import efield.coil

    assert coupling.cli.BUILTIN_COILS == efield.coil.BUILTIN_COILS


@pytest.mark.parametrize("argv", [["efield"], ["efield", "--head", "template"],
                                  ["target", "--target", "0,0,80"]])
def test_a_head_too_fine_to_fit_is_refused_before_meshing(argv, no_meshing, capsys, tmp_path):
    assert main([*argv, "--max-edge", "0.3", "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "--max-edge = 0.3 gives about" in err and "must be at least" in err
    assert not (tmp_path / "out").exists()
