"""Built-in sphere head and TetMesh geometry."""

import numpy as np
import pytest

import efield


@pytest.fixture(scope="module")
def head():
    return efield.sphere_head(radii_mm=(85, 90, 95), max_edge_mm=8.0)


def test_tissues_and_volumes_match_the_spheres(head):
    assert head.tissues == (2, 4, 5)
    radii = {2: (0, 85), 4: (85, 90), 5: (90, 95)}
    for tag, (r0, r1) in radii.items():
        exact = 4 / 3 * np.pi * (r1**3 - r0**3)
        assert head.tissue_volume(tag) == pytest.approx(exact, rel=0.03)
        # every tetrahedron of a shell lies between its radii
        r = np.linalg.norm(head.nodes[head.tets[head.tags == tag]], axis=2)
        assert r.min() >= r0 - 1e-6 and r.max() <= r1 + 1e-6


def test_tetrahedra_are_positive_and_not_degenerate(head):
    assert head.signed_volumes.min() > 0
    p = head.nodes[head.tets]
    edges = np.linalg.norm(p[:, [0, 0, 0, 1, 1, 2]] - p[:, [1, 2, 3, 2, 3, 3]], axis=2)
    assert 0.7 * 8.0 < np.median(edges) < 1.5 * 8.0
    # shape quality: volume over cubed rms edge, 1/(6 sqrt 2) = 0.118 for a regular tetrahedron
    quality = head.volumes / np.sqrt((edges**2).mean(axis=1)) ** 3
    assert quality.min() > 0.1 * 0.118


def test_surfaces_carry_1000_plus_tag(head):
    assert set(np.unique(head.tri_tags)) == {1002, 1004, 1005}
    scalp = head.tris[head.tri_tags == 1005]
    assert np.allclose(np.linalg.norm(head.nodes[scalp], axis=2), 95, atol=1e-6)


def test_outer_surface_is_the_closed_scalp(head):
    nodes, tris = head.outer_surface
    assert np.allclose(np.linalg.norm(nodes, axis=1), 95, atol=1e-6)
    corners = nodes[tris]
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    assert np.all(np.einsum("ij,ij->i", normals, corners.mean(axis=1)) > 0)   # outward
    # closed: the divergence theorem gives the enclosed volume
    volume = np.einsum("ij,ij->i", corners[:, 0], np.cross(corners[:, 1], corners[:, 2])).sum() / 6
    assert volume == pytest.approx(head.volumes.sum(), rel=1e-9)


@pytest.mark.parametrize("n_nodes", [7, 2**40])
def test_face_keys_group_rows_with_the_same_nodes(n_nodes):
    from efield.mesh import face_keys

    rng = np.random.default_rng(0)
    rows = rng.integers(0, 7, (500, 3)) * (n_nodes // 7)
    permuted = np.take_along_axis(rows, rng.permuted(np.tile([0, 1, 2], (500, 1)), axis=1), axis=1)
    assert np.array_equal(face_keys(rows, n_nodes), face_keys(permuted, n_nodes))
    _, expected = np.unique(np.sort(rows, axis=1), axis=0, return_inverse=True)
    _, inverse = np.unique(face_keys(rows, n_nodes), return_inverse=True)
    # the same groups (as integers also in the same order)
    pairs = np.unique(np.stack([inverse.ravel(), expected.ravel()]), axis=1)
    assert pairs.shape[1] == expected.max() + 1 == inverse.max() + 1
    if n_nodes < 2**21:
        assert np.array_equal(inverse.ravel(), expected.ravel())


def test_subset_keeps_one_tissue(head):
    brain = head.subset(2)
    assert brain.tissues == (2,)
    assert brain.volumes.sum() == pytest.approx(head.tissue_volume(2))
    assert np.linalg.norm(brain.nodes, axis=1).max() <= 85 + 1e-6
    with pytest.raises(ValueError, match="no tetrahedra"):
        head.subset(1)


def test_more_radii_and_custom_tags():
    five = efield.sphere_head(radii_mm=(70, 80, 85, 90, 95), max_edge_mm=12.0)
    assert five.tissues == (1, 2, 3, 4, 5)
    one = efield.sphere_head(radii_mm=(50,), max_edge_mm=12.0, tags=(3,))
    assert one.tissues == (3,)


@pytest.mark.parametrize("kwargs, match", [
    (dict(radii_mm=(90, 85)), "ascending"),
    (dict(radii_mm=(85, 90, 95), tags=(2, 5)), "one tag per radius"),
    (dict(max_edge_mm=0), "max_edge_mm"),
])
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        efield.sphere_head(**kwargs)


def test_mesh_is_immutable(head):
    with pytest.raises(ValueError):
        head.nodes[0, 0] = 1.0
    with pytest.raises(AttributeError):
        head.nodes = head.nodes


def test_conductivity_defaults_and_overrides(head):
    from efield.conductivity import element_conductivity

    sigma = element_conductivity(head.tags)
    assert set(np.unique(sigma)) == {0.275, 0.010, 0.465}
    sigma = element_conductivity(head.tags, {4: 0.02})
    assert np.all(sigma[head.tags == 4] == 0.02)
    with pytest.raises(ValueError, match="positive"):
        element_conductivity(head.tags, {4: -1})
