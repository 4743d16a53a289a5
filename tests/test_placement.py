"""Coil placement: matsimnibs checks, projection onto the scalp, clearance."""

import numpy as np
import pytest
from scipy.spatial import ConvexHull

from efield.coil import Coil, figure8_70mm
from efield.mesh import TetMesh
from efield.geometry import closest_on_triangles, surface_index
from efield.placement import Placement, check_clearance, transform_elements

RADIUS = 80.0


def sphere_mesh(radius=RADIUS, n=3000, dent_mm=0.0):
    """A star-shaped tetrahedral ball: Fibonacci points on a sphere, triangulated by their
    convex hull and joined to the centre; dent_mm pushes the top (+z) inwards."""
    i = np.arange(n) + 0.5
    polar, azimuth = np.arccos(1 - 2 * i / n), np.pi * (1 + 5**0.5) * i
    directions = np.column_stack([np.sin(polar) * np.cos(azimuth),
                                  np.sin(polar) * np.sin(azimuth), np.cos(polar)])
    hull = ConvexHull(directions)
    radii = radius - dent_mm * np.exp(-(polar / 0.3) ** 2)
    nodes = np.vstack([radii[:, None] * directions, [[0.0, 0.0, 0.0]]])
    tets = np.column_stack([np.full(len(hull.simplices), n), hull.simplices])
    return TetMesh(nodes, tets, np.full(len(tets), 5))


@pytest.fixture(scope="module")
def ball():
    return sphere_mesh()


def rotation(seed):
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def pose(rot, centre):
    m = np.eye(4)
    m[:3, :3], m[:3, 3] = rot, centre
    return m


# --- Placement --------------------------------------------------------------------------

def test_placement_axes_and_read_only():
    rot = rotation(0)
    p = Placement(pose(rot, [1, 2, 3]))
    assert np.allclose(p.x_axis, rot[:, 0]) and np.allclose(p.y_axis, rot[:, 1])
    assert np.allclose(p.z_axis, rot[:, 2]) and np.allclose(p.centre_mm, [1, 2, 3])
    with pytest.raises(ValueError):
        p.matsimnibs[0, 0] = 2.0


@pytest.mark.parametrize("matrix, message", [
    (np.eye(3), "4x4"),
    (np.diag([1.0, 1.0, 1.001, 1.0]), "orthonormal"),
    (np.diag([1.0, 1.0, -1.0, 1.0]), "left-handed"),
    (np.vstack([np.eye(4)[:3], [0, 0, 1, 1]]), "last row"),
])
def test_placement_refuses_bad_matrices(matrix, message):
    with pytest.raises(ValueError, match=message):
        Placement(matrix)


def test_transform_elements_rotates_vectors_only():
    rot, m = rotation(1), pose(rotation(1), [5, 6, 7])
    positions, vectors = transform_elements(m, np.array([[1.0, 0, 0]]), np.array([[0, 0, 1.0]]))
    assert np.allclose(positions, rot[:, 0] + [5, 6, 7]) and np.allclose(vectors, rot[:, 2])
    coil = Placement(m).apply(Coil(np.array([[1.0, 0, 0]]), np.array([[0, 0, 1.0]])))
    assert np.allclose(coil.dipole_positions, positions)
    assert np.allclose(coil.dipole_moments, vectors)


# --- scalp geometry ---------------------------------------------------------------------

def test_closest_points_are_exact(ball):
    surface = surface_index(ball)
    rng = np.random.default_rng(2)
    points = rng.normal(size=(40, 3)) * 60
    closest, distance, _ = surface.closest(points)
    c = surface.corners
    brute = [np.linalg.norm(closest_on_triangles(p, c[:, 0], c[:, 1], c[:, 2])[0] - p,
                            axis=1).min() for p in points]
    assert np.allclose(distance, brute, atol=1e-10)
    assert np.allclose(np.linalg.norm(closest - points, axis=1), distance)


def test_signed_distance_sign_on_faces_edges_and_vertices(ball):
    surface = surface_index(ball)
    nodes = ball.outer_surface[0]
    vertex = nodes[7]
    edge_mid = 0.5 * (surface.corners[3, 0] + surface.corners[3, 1])
    for q in (vertex, edge_mid, surface.centroids[5]):
        outward = q / np.linalg.norm(q)
        d = surface.signed_distance(np.array([q + 0.5 * outward, q - 0.5 * outward]))
        assert d[0] > 0 > d[1]
    assert surface.signed_distance(np.zeros((1, 3)))[0] == pytest.approx(-RADIUS, rel=0.01)


def test_signed_distance_in_a_concave_dent():
    dented = sphere_mesh(dent_mm=20.0)
    nodes = dented.outer_surface[0]
    top = nodes[nodes[:, 2] > 40]
    radial = top / np.linalg.norm(top, axis=1, keepdims=True)
    d = surface_index(dented).signed_distance(np.vstack([top + 0.3 * radial, top - 0.3 * radial]))
    assert (d[:len(top)] > 0).all() and (d[len(top):] < 0).all()


def test_on_scalp_sets_simnibs_axes(ball):
    p = Placement.on_scalp(ball, [0, 0, 100], handle=[0, 50, 100], distance_mm=4.0)
    assert np.allclose(p.z_axis, [0, 0, -1], atol=0.02)
    assert np.allclose(p.y_axis, [0, 1, 0], atol=0.02)
    assert np.allclose(p.x_axis, np.cross(p.y_axis, p.z_axis))
    scalp_z = surface_index(ball).closest(np.array([[0, 0, 100.0]]))[0][0, 2]
    assert p.centre_mm[2] == pytest.approx(scalp_z + 4.0, abs=0.01)
    assert np.linalg.det(p.matsimnibs[:3, :3]) == pytest.approx(1.0)


def test_on_scalp_on_the_side_and_default_handle(ball):
    centre = np.array([60.0, 0.0, 60.0])
    p = Placement.on_scalp(ball, centre)
    assert np.allclose(p.z_axis, -centre / np.linalg.norm(centre), atol=0.02)
    assert p.y_axis[1] == pytest.approx(-1.0, abs=1e-6)
    top = Placement.on_scalp(ball, [0.0, -90.0, 0.0])             # posterior pole
    assert top.y_axis[2] > 0.99                                  # falls back to superior
    assert abs(top.y_axis @ top.z_axis) < 1e-12


def test_on_scalp_input_errors(ball):
    with pytest.raises(ValueError, match="centre: EEG label 'C3': this mesh has no EEG positions"):
        Placement.on_scalp(ball, "C3")
    with pytest.raises(ValueError, match="handle: EEG label 'CP3': .*load_subject"):
        Placement.on_scalp(ball, [0, 0, 90], handle="CP3")
    with pytest.raises(ValueError, match="along the scalp normal"):
        Placement.on_scalp(ball, [0, 0, 90], handle=[0, 0, 120])
    with pytest.raises(ValueError, match="coincides"):
        Placement.on_scalp(ball, [0, 0, 90], handle=[0, 0, 90])
    with pytest.raises(ValueError, match="3 finite"):
        Placement.on_scalp(ball, [0, 90])


# --- clearance --------------------------------------------------------------------------

def test_clearance_passes_outside(ball):
    p = Placement.on_scalp(ball, [0, 0, 90], handle=[0, 50, 90], distance_mm=4.0)
    assert check_clearance(ball, figure8_70mm(), p) > 4.0


def test_clearance_reports_depth_and_needed_distance(ball):
    on_scalp = Placement.on_scalp(ball, [0, 0, 90], handle=[0, 50, 90], distance_mm=0.0)
    pose = on_scalp.matsimnibs.copy()
    pose[:3, 3] += 10.0 * on_scalp.z_axis          # the casing 10 mm inside the scalp
    p = Placement(pose)
    with pytest.raises(ValueError) as err:
        check_clearance(ball, figure8_70mm(), p)
    message = str(err.value)
    assert "inside the head" in message and "distance_mm of at least" in message
    depth = float(message.split("the deepest ")[1].split(" mm")[0])
    assert 5.0 < depth < 6.5          # windings 4.2 mm above the casing, casing 10 mm deep
