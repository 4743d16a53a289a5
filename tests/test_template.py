"""Built-in template head (fsaverage surfaces): tissues, mesh quality, anatomy, cache, E-field."""

import numpy as np
import pytest

import efield
import efield.template as template
from efield.geometry import tissues_along
from efield.mesh import DEGENERATE_SHAPE, tet_shape

FAST_MAX_EDGE_MM = 6.0
"""Reduced resolution for the fast suite (about 0.62M tetrahedra)."""

WM, GM, CSF, BONE, SCALP = 1, 2, 3, 4, 5


@pytest.fixture(scope="module")
def cache_dir(template_cache):
    return template_cache


@pytest.fixture(scope="module")
def head(cache_dir):
    return efield.template_head(FAST_MAX_EDGE_MM, cache_dir=cache_dir, progress=False)


@pytest.fixture(scope="module")
def electrodes(head):
    return {name: head.eeg_position(name) for name in ("F3", "C3", "Cz")}


@pytest.mark.slow
def test_five_tissues_and_their_boundaries(head):
    assert head.tissues == (WM, GM, CSF, BONE, SCALP)
    assert set(np.unique(head.tri_tags)) == {1001, 1002, 1003, 1004, 1005}


def check_mesh_quality(head):
    assert head.signed_volumes.min() > 0, "inverted tetrahedra"
    assert tet_shape(head).min() > DEGENERATE_SHAPE / 10, "degenerate tetrahedra"
    quality = efield.mesh_quality(head)
    assert quality["all"]["inverted"] == 0
    # slivers (a dihedral angle under 5 degrees) stay a small minority in every tissue
    for tag in head.tissues:
        assert quality[tag]["under_5_deg"] < 0.005 * quality[tag]["n_tets"]
    # the surface triangles are faces of the tetrahedra: the compartments conform
    faces = np.sort(head.tets[:, [[1, 2, 3], [0, 3, 2], [0, 1, 3], [0, 2, 1]]].reshape(-1, 3), axis=1)
    tris = np.sort(head.tris, axis=1)
    n = head.n_nodes
    key = lambda f: (f[:, 0] * n + f[:, 1]) * n + f[:, 2]  # noqa: E731
    assert np.isin(key(tris), key(faces)).all()


@pytest.mark.slow
def test_no_inverted_or_degenerate_tetrahedra(head):
    check_mesh_quality(head)


def check_volumes(head):
    ml = {tag: head.tissue_volume(tag) / 1000.0 for tag in head.tissues}
    intracranial = ml[WM] + ml[GM] + ml[CSF]
    # Intracranial volume of adults is 1.2-1.7 L (e.g. Buckner et al. 2004, NeuroImage 23: 724);
    # fsaverage lives in the MNI305 frame, which is larger than native heads (Lancaster et al.
    # 2007, Hum. Brain Mapp. 28: 1194); its inner skull encloses 2.19 L: allow up to 2.3 L.
    assert 1.2 < intracranial / 1000 < 2.3
    # Cerebral white matter 0.35-0.6 L; the white surface also encloses the basal ganglia,
    # thalamus and lateral ventricles (about 0.1 L), hence up to 0.75 L.
    assert 0.35 < ml[WM] / 1000 < 0.75
    # Brain grey matter (cortex, cerebellum, brainstem) 0.5-0.8 L in adults.
    assert 0.45 < ml[GM] / 1000 < 0.8
    # The brain (WM + GM) fills most of the cranial cavity: CSF is a minority of it.
    assert 0.05 < ml[CSF] / intracranial < 0.5
    # Cranial vault bone: 5-8 mm over about 0.07 m^2 of inner skull: about 0.35-0.6 L, more with
    # the skull base; the bone layer here is at most 6 mm thick.
    assert 0.3 < ml[BONE] / 1000 < 0.8
    # The scalp surface bounds the whole head down to the neck (about 5 L of head and neck).
    assert 3.5 < (sum(ml.values())) / 1000 < 6.5


@pytest.mark.slow
def test_tissue_volumes_are_plausible(head):
    check_volumes(head)


def _layers(head, point, depth_mm=50.0):
    """Runs (tag, from, to) from the scalp point nearest `point` inward along the normal."""
    pose = efield.Placement.on_scalp(head, point, distance_mm=0.0)
    runs = tissues_along(head, pose.centre_mm, pose.z_axis, depth_mm, step_mm=0.2)
    return [r for r in runs if not (r[0] == 0 and r[1] == 0.0)]    # off the surface at depth 0


def check_layers(head, electrodes):
    for name in ("F3", "C3"):
        centre = electrodes[name]
        pose = efield.Placement.on_scalp(head, centre, distance_mm=0.0)
        # rays from scalp points in a 10 mm disc around the electrode: each meets scalp, bone,
        # CSF and then grey matter (the cortex is continuous under the electrode)
        u = np.cross(pose.z_axis, [0.0, 0.0, 1.0])
        u /= np.linalg.norm(u)
        w = np.cross(pose.z_axis, u)
        offsets = [np.zeros(3)] + [10.0 * (np.cos(a) * u + np.sin(a) * w)
                                   for a in np.linspace(0, 2 * np.pi, 6, endpoint=False)]
        for offset in offsets:
            runs = _layers(head, centre + offset)
            tags = [r[0] for r in runs]
            assert tags[:4] == [SCALP, BONE, CSF, GM], (name, offset, runs)
            scalp, bone = runs[0], runs[1]
            # scalp (skin, fat, galea, muscle) 3-10 mm over the vault; bone 3-10 mm (cranial
            # vault thickness 3-12 mm, mean about 6-7 mm: Lynnerup 2001, Forensic Sci. Int. 117: 45)
            assert 3.0 <= scalp[2] - scalp[1] + 0.2 <= 10.0, (name, runs)
            assert 3.0 <= bone[2] - bone[1] + 0.2 <= 10.0, (name, runs)
        # scalp-to-cortex distance over F3 and C3 is 12-22 mm in adults (e.g. Stokes et al. 2007,
        # Clin. Neurophysiol. 118: 1617); the fsaverage CSF is wide, so allow up to 30 mm
        gm = head.barycenters[head.tags == GM]
        nearest = np.linalg.norm(gm - pose.centre_mm, axis=1).min()
        assert 10.0 < nearest < 30.0, (name, nearest)


@pytest.mark.slow
def test_cortex_is_continuous_under_F3_and_C3(head, electrodes):
    check_layers(head, electrodes)


@pytest.mark.slow
def test_layers_report(head):
    report = efield.template_quality(head, electrodes=("F3", "C3"))
    assert set(report["layers"]) == {"F3", "C3"}
    for runs in report["layers"].values():
        names = [r[0] for r in runs if r[0] != "outside"]
        assert names[:4] == ["scalp", "bone", "CSF", "GM"]
    assert report["tissues"][GM]["volume_ml"] == pytest.approx(head.tissue_volume(GM) / 1000)


@pytest.mark.slow
def test_second_call_loads_the_cache(head, cache_dir, monkeypatch):
    path = template.cache_path(FAST_MAX_EDGE_MM, cache_dir)
    assert path.exists()
    # no temporary left behind (the folder is the suite's: notebooks may have cached other sizes)
    assert all(p.name.startswith("template_head_") and p.suffix == ".msh" for p in cache_dir.iterdir())

    def no_build(*args, **kwargs):
        raise AssertionError("template head rebuilt instead of loaded")

    monkeypatch.setattr(template, "mesh_surfaces", no_build)
    again = efield.template_head(FAST_MAX_EDGE_MM, cache_dir=cache_dir, progress=False)
    for name in ("nodes", "tets", "tags", "tris", "tri_tags"):
        assert np.array_equal(getattr(again, name), getattr(head, name)), name


def test_cache_key_follows_parameters_and_versions(tmp_path, monkeypatch):
    base = template.cache_path(6.0, tmp_path)
    assert base.parent == tmp_path
    assert template.cache_path(5.0, tmp_path) != base
    monkeypatch.setattr(template, "TEMPLATE_VERSION", template.TEMPLATE_VERSION + 1)
    assert template.cache_path(6.0, tmp_path) != base
    monkeypatch.undo()
    versions = template.source_versions()
    monkeypatch.setattr(template, "source_versions", lambda: {**versions, "gmsh": "0.0"})
    assert template.cache_path(6.0, tmp_path) != base
    monkeypatch.undo()
    monkeypatch.setenv("TMSIM_CACHE_DIR", str(tmp_path / "env"))
    assert template.cache_path(6.0).parent == tmp_path / "env"
    monkeypatch.delenv("TMSIM_CACHE_DIR")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert template.cache_path(6.0).parent == tmp_path / "home" / ".cache" / "tmsim"


@pytest.mark.parametrize("bad", [0.0, -3.0, 100.0, "6", float("nan")])
def test_bad_max_edge_is_rejected(bad, tmp_path):
    with pytest.raises(ValueError, match="max_edge_mm"):
        efield.template_head(bad, cache_dir=tmp_path, progress=False)


def peak_at_f3(head, electrodes):
    """Robust peak |E| (99.9th percentile over GM tetrahedra), V/m, of the 70 mm figure-8 at F3
    at 100 % of a 150 A/us stimulator, handle pointing posterior."""
    placement = efield.Placement.on_scalp(head, electrodes["F3"], distance_mm=4.0)
    result = efield.simulate(head, efield.figure8_70mm(), placement, didt=1.5e8)
    return float(np.percentile(result.magnE[head.tags == GM], 99.9))


@pytest.mark.slow
def test_figure8_at_F3_peak_field_is_in_the_literature_range(head, electrodes):
    # Figure-8 coils at full output of common stimulators induce peak cortical fields of the
    # order of 100-300 V/m (Thielscher & Kammer 2004, Clin. Neurophysiol. 115: 1697, Magstim
    # 70 mm double coil; Deng, Lisanby & Peterchev 2013, Brain Stimul. 6: 1, 50 coil designs).
    assert 100.0 < peak_at_f3(head, electrodes) < 300.0


@pytest.mark.slow
def test_full_resolution_head(tmp_path, electrodes):
    full = efield.template_head(cache_dir=tmp_path, progress=False)
    assert full.tissues == (WM, GM, CSF, BONE, SCALP)
    check_mesh_quality(full)
    check_volumes(full)
    check_layers(full, electrodes)
    assert 100.0 < peak_at_f3(full, electrodes) < 300.0


@pytest.mark.slow
def test_cli_efield_on_the_template_head(head, cache_dir, electrodes, tmp_path, monkeypatch):
    import json

    from coupling import cli

    monkeypatch.setenv("TMSIM_CACHE_DIR", str(cache_dir))         # the fixture's build is reused
    f3 = ",".join(f"{v:.3f}" for v in electrodes["F3"])
    out = tmp_path / "run"
    assert cli.main(["efield", "--head", "template", "--max-edge", str(FAST_MAX_EDGE_MM),
                     f"--centre={f3}", "--out", str(out), "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mesh"] == f"template, max edge {FAST_MAX_EDGE_MM:g} mm"
    assert summary["n_tets"] == head.n_tets
    # the strongest field in the cortex lies under the coil at F3 (the cortex is about 20 mm deep)
    gm_peak = np.array(summary["tissues"][str(GM)]["max_location_mm"])
    assert np.linalg.norm(gm_peak - electrodes["F3"]) < 40.0


def test_tissues_along_a_ray_match_the_sphere_radii():
    head = efield.sphere_head(radii_mm=(85, 90, 95), max_edge_mm=8.0)
    runs = tissues_along(head, [0.0, 0.0, 100.0], [0.0, 0.0, -1.0], depth_mm=30.0, step_mm=0.1)
    assert [r[0] for r in runs] == [0, SCALP, BONE, GM]
    # boundaries at depths 5, 10, 15 mm, up to the facets' sag (8 mm chords on r = 85-95 mm)
    for (_, _, end), exact in zip(runs[:3], (5.0, 10.0, 15.0)):
        assert abs(end + 0.1 - exact) < 0.4


def _octahedron(radius=10.0):
    v = radius * np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], float)
    t = np.array([[0, 2, 4], [2, 1, 4], [1, 3, 4], [3, 0, 4], [2, 0, 5], [1, 2, 5], [3, 1, 5], [0, 3, 5]])
    return v, t


def test_subdivision_keeps_the_shape_and_correspondence():
    from efield import surface_repair as sr

    v, t = _octahedron()
    fine_v, fine_t = sr.subdivide(v, t)
    assert len(fine_v) == 6 + 12 and len(fine_t) == 4 * 8        # one new vertex per edge
    np.testing.assert_allclose(fine_v[:6], v)                       # old vertices keep their index
    exact = 4.0 / 3.0 * 10.0 ** 3                                   # octahedron of radius 10 mm
    assert sr.enclosed_volume(v, t) == pytest.approx(exact)
    assert sr.enclosed_volume(fine_v, fine_t) == pytest.approx(exact)
    assert len(sr.intersecting_pairs(fine_v, fine_t)) == 0


def test_intersections_are_found():
    from efield import surface_repair as sr

    v, t = _octahedron()
    # a copy shifted by half a radius crosses the original; one shifted by three radii does not
    assert len(sr.intersecting_pairs(v, t, v + [5.0, 0, 0], t)) > 0
    assert len(sr.intersecting_pairs(v, t, v + [30.0, 0, 0], t)) == 0
    # a smaller copy inside does not cross it
    assert len(sr.intersecting_pairs(v, t, 0.5 * v, t)) == 0
    # pulling the top vertex down through the bottom makes the surface cross itself
    v, t = sr.subdivide(*sr.subdivide(v, t))
    assert len(sr.intersecting_pairs(v, t)) == 0
    folded = v.copy()
    folded[4] = [0.0, 0.0, -15.0]
    pairs = sr.intersecting_pairs(folded, t)
    assert len(pairs) > 0 and np.isin(4, t[pairs[:, 0]]) | np.isin(4, t[pairs[:, 1]])
