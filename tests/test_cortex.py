"""Grey-matter layers and fields at points, against the exact geometry of concentric spheres
and the analytic sphere solution."""

import numpy as np
import pytest

import efield
from efield.placement import transform_elements

RADII = (70.0, 80.0, 85.0, 90.0, 95.0)        # WM, GM, CSF, bone, scalp
WM_R, GM_R = RADII[0], RADII[1]
EDGE_MM = 12.0
SAGITTA_MM = 0.5
"""A 12 mm facet inscribed in a sphere of radius >= 70 mm lies at most h^2 / (6 R) ~ 0.35 mm
inside it; interfaces of the mesh are within this of the exact spheres."""
FACET_TILT = EDGE_MM / (np.sqrt(3) * GM_R)
"""Largest angle between a pial facet's normal and the radial direction (circumradius / R):
projecting a point d mm above the cortex onto a facet moves it sideways by up to d times this."""


@pytest.fixture(scope="module")
def shells():
    return efield.sphere_head(radii_mm=RADII, max_edge_mm=EDGE_MM)


@pytest.fixture(scope="module")
def ball(sphere12):
    """Three radii: a grey-matter ball (no white matter), bone, scalp."""
    return sphere12


def unit(v):
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def radius(v):
    return np.linalg.norm(v, axis=-1)


# --- cortical layers --------------------------------------------------------------------

def test_pial_surface_nodes_normals_and_areas_are_exact(shells):
    layer = efield.cortical_layer(shells, [0.0, 0.0, 95.0], 1000.0, depth=0.0)
    on_pial = np.abs(radius(shells.nodes) - GM_R) < 1e-6
    assert len(layer) == on_pial.sum()
    np.testing.assert_allclose(radius(layer.points_mm), GM_R, atol=1e-9)
    np.testing.assert_allclose(layer.normals, unit(layer.points_mm), atol=1e-9)
    with pytest.raises(ValueError):
        layer.points_mm[0, 0] = 0.0
    area = layer.areas_mm2.sum() / (4 * np.pi * GM_R**2)
    assert 0.98 < area < 1.0                    # an inscribed polyhedron has a little less area


def test_mid_layer_and_white_surface_lie_between_the_shells(shells):
    mid = efield.cortical_layer(shells, [0.0, 0.0, 95.0], 40.0)
    r = radius(mid.points_mm)
    middle = 0.5 * (WM_R + GM_R)
    assert np.all((r > middle - SAGITTA_MM / 2) & (r <= middle + 1e-9))
    np.testing.assert_allclose(unit(mid.points_mm), mid.normals, atol=1e-9)
    _, tags = efield.field_at(shells, np.zeros(shells.n_tets), mid.points_mm)
    assert np.all(tags == 2)
    white = efield.cortical_layer(shells, [0.0, 0.0, 95.0], 40.0, depth=1.0)
    r = radius(white.points_mm)
    assert np.all((r > WM_R - SAGITTA_MM) & (r <= WM_R + 1e-9))


def test_layer_holds_the_pial_nodes_within_radius_of_the_target(shells):
    centre = np.array([30.0, -20.0, 95.0])
    layer = efield.cortical_layer(shells, centre, 25.0, depth=0.0)
    target = layer.target_mm
    assert GM_R - SAGITTA_MM < radius(target) <= GM_R + 1e-9
    assert np.linalg.norm(unit(target) - unit(centre)) < FACET_TILT * (radius(centre) - GM_R) / GM_R
    pial = shells.nodes[np.abs(radius(shells.nodes) - GM_R) < 1e-6]
    expected = pial[radius(pial - target) <= 25.0]
    assert sorted(map(tuple, layer.points_mm)) == sorted(map(tuple, expected))


def test_label_centre_is_the_cortex_under_the_electrode(shells):
    positions = efield.standard_positions(shells, "spherical_1005")
    head = shells.with_eeg_positions(positions)
    by_label = efield.cortical_layer(head, "c3", 20.0)
    by_point = efield.cortical_layer(head, positions["C3"], 20.0)
    np.testing.assert_array_equal(by_label.points_mm, by_point.points_mm)
    above = radius(positions["C3"]) - GM_R
    assert np.linalg.norm(unit(by_label.target_mm) - unit(positions["C3"])) < FACET_TILT * above / GM_R


def test_depth_in_mm_where_there_is_no_white_matter(ball):
    layer = efield.cortical_layer(ball, [0.0, 0.0, 95.0], 30.0, depth_mm=2.0)
    np.testing.assert_allclose(radius(layer.points_mm), 85.0 - 2.0, atol=1e-9)
    with pytest.raises(ValueError, match="no GM/WM interface.*give depth_mm"):
        efield.cortical_layer(ball, [0.0, 0.0, 95.0], 30.0)


@pytest.mark.parametrize("kwargs, message", [
    (dict(radius_mm=0.01), "no pial node lies within radius_mm=0.01"),
    (dict(radius_mm=-1.0), "radius_mm=-1.0: must be positive"),
    (dict(radius_mm=20.0, depth=1.5), r"depth=1.5: must lie in \[0, 1\]"),
    (dict(radius_mm=20.0, depth_mm=-1.0), "depth_mm=-1.0"),
])
def test_layer_argument_errors(shells, kwargs, message):
    with pytest.raises(ValueError, match=message):
        efield.cortical_layer(shells, [30.0, -20.0, 95.0], **kwargs)


def test_layer_needs_grey_matter(shells):
    with pytest.raises(ValueError, match=r"no grey matter \(tag 2\); its tissues are \[4, 5\]"):
        efield.cortical_layer(shells.subset([4, 5]), [0.0, 0.0, 95.0], 20.0, depth_mm=1.0)
    with pytest.raises(ValueError, match="centre: EEG label 'F3'.*no EEG positions"):
        efield.cortical_layer(shells, "F3", 20.0)


# --- point location and fields at points ------------------------------------------------

def test_barycentres_and_corners_lie_in_their_tetrahedron(shells):
    assert np.array_equal(efield.containing_tets(shells, shells.barycenters), np.arange(shells.n_tets))
    rng = np.random.default_rng(0)
    pick = rng.choice(shells.n_tets, 500, replace=False)
    weights = rng.dirichlet(np.ones(4), 500)
    points = np.einsum("nk,nkc->nc", weights, shells.nodes[shells.tets[pick]])
    inner = weights.min(axis=1) > 1e-3
    assert np.array_equal(efield.containing_tets(shells, points[inner]), pick[inner])


def test_tags_at_points_follow_the_shells(shells):
    rng = np.random.default_rng(1)
    r = rng.uniform(0.0, 110.0, 20_000)
    points = unit(rng.normal(size=(len(r), 3))) * r[:, None]
    values, tags = efield.field_at(shells, np.arange(shells.n_tets), points)
    expected = np.array([1, 2, 3, 4, 5, -1])[np.searchsorted(RADII, r)]
    away = np.abs(r[:, None] - np.array(RADII)).min(axis=1) > 1.0   # beyond the facets' sagitta
    assert np.array_equal(tags[away], expected[away])
    outside = tags == -1
    assert np.all(np.isnan(values[outside])) and np.all(r[outside] > RADII[-1] - SAGITTA_MM)
    inside = ~outside
    assert np.array_equal(shells.tags[values[inside].astype(int)], tags[inside])


def test_field_at_input_errors(shells):
    with pytest.raises(ValueError, match=r"field_at: the field has \d+ rows, not one per tetrahedron"):
        efield.field_at(shells, np.zeros((shells.n_tets - 1, 3)), [[0.0, 0.0, 0.0]])
    with pytest.raises(ValueError, match=r"points_mm must be finite \(n, 3\)"):
        efield.field_at(shells, np.zeros(shells.n_tets), [0.0, 0.0, 0.0])


def test_field_in_the_grey_matter_matches_the_analytic_solution(shells):
    """E at the mid-layer under a figure-8 coil against the exact sphere field.

    SimNIBS accepts a sphere solution at RDM < 0.2 and |MAG| < ln 1.1 over all tetrahedra; at
    12 mm edges the whole-mesh RDM here is about 0.03. At points, the primary field
    interpolated within the (large) tetrahedra leaves about 0.04 RDM and under 0.1 relative
    error per point; the bounds below leave a factor of about 2.
    """
    coil = efield.figure8_70mm()
    pos = efield.Placement.on_scalp(shells, [0.0, 0.0, 95.0], handle=[0.0, 50.0, 95.0])
    result = efield.simulate(shells, coil, pos)
    layer = efield.cortical_layer(shells, [0.0, 0.0, 95.0], 25.0)
    fem, tags = efield.field_at(shells, result, layer.points_mm)
    where, moments = transform_elements(pos.matsimnibs, coil.dipole_positions, coil.dipole_moments)
    exact = efield.analytic_sphere_field(where, moments, 1e6, layer.points_mm)
    assert len(layer) > 10 and np.all(tags == 2)
    rdm = np.linalg.norm(fem / np.linalg.norm(fem) - exact / np.linalg.norm(exact))
    assert rdm < 0.1
    assert abs(np.log(np.linalg.norm(fem) / np.linalg.norm(exact))) < 0.1
    assert np.all(radius(fem - exact) < 0.2 * radius(exact))
    at_barycentres, _ = efield.field_at(shells, result, shells.barycenters[:2000])
    np.testing.assert_allclose(at_barycentres, result.E[:2000], rtol=1e-12, atol=1e-12)
    per_tet, _ = efield.field_at(shells, result.E, layer.points_mm)
    np.testing.assert_array_equal(per_tet, result.E[efield.containing_tets(shells, layer.points_mm)])
