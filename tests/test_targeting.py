"""Coil targeting: reciprocity scores against direct FEM solves, candidate grid geometry,
gradient refinement against a fine grid, optimize_placement, memory planning of batches."""

import jax.numpy as jnp
import numpy as np
import pytest

import efield
from efield import polar
from efield import targeting as tg

TARGET_CENTRE = [20.0, 10.0, 80.0]


@pytest.fixture(scope="module")
def sphere():
    return efield.sphere_head(max_edge_mm=8)


@pytest.fixture(scope="module")
def coil(figure8):
    return figure8


@pytest.fixture(scope="module")
def solver(sphere):
    return efield.FieldSolver(sphere)


@pytest.fixture(scope="module")
def ellipsoid(sphere):
    """The sphere head stretched into an ellipsoid (semi-axes 104.5, 90.3, 85.5 mm)."""
    return efield.TetMesh(sphere.nodes * [1.1, 0.95, 0.9], sphere.tets, sphere.tags)


def _check_against_direct(mesh, solver, coil, target, search_centre):
    patch = tg.scalp_patch(mesh, search_centre, 35.0)
    grid = tg.reciprocal_grid(solver, coil, target, patch, 20.0)
    poses = tg.candidate_poses(patch, tg.candidate_offsets(20.0, 10.0), [0.0, 45.0, 170.0])
    poses = poses.reshape(-1, 4, 4)[::8]         # 5 of the 39: offsets 10 and 20 mm out, all three angles
    scores = np.asarray(tg.score_poses(grid, jnp.asarray(poses)))
    results = solver.solve(coil, [efield.Placement(p) for p in poses], progress=False)
    direct = np.array([target.score_field(mesh, r.E) for r in results])
    return scores, direct


@pytest.mark.slow
@pytest.mark.parametrize("direction", [None, (1.0, 0.0, 0.0), (0.0, 1.0, 1.0)])
def test_reciprocity_matches_direct_solves_on_the_sphere(sphere, solver, coil, direction):
    target = tg.Target(TARGET_CENTRE, 10.0, direction=direction)
    scores, direct = _check_against_direct(sphere, solver, coil, target, TARGET_CENTRE)
    scale = np.abs(direct).max()
    assert np.abs(scores - direct).max() < 1e-3 * scale
    assert np.ptp(direct) > 0.05 * scale          # the placements differ: the check has teeth


@pytest.mark.parametrize("recovered", [True, False])
def test_reciprocity_matches_direct_solves_on_an_ellipsoid(ellipsoid, coil, recovered):
    solver = efield.FieldSolver(ellipsoid, recovered=recovered)
    target = tg.Target([-30.0, 20.0, 65.0], 12.0)
    scores, direct = _check_against_direct(ellipsoid, solver, coil, target, [-30.0, 20.0, 65.0])
    np.testing.assert_allclose(scores, direct, rtol=1e-3)


def _turned_against_direct(mesh, solver, coil, target, search_centre, angles):
    patch = tg.scalp_patch(mesh, search_centre, 35.0)
    grid = tg.reciprocal_grid(solver, coil, target, patch, 20.0)
    offsets = tg.candidate_offsets(20.0, 10.0)[::3]
    base = tg.candidate_poses(patch, offsets, [0.0])[:, 0]
    turned = np.asarray(tg.score_turned(grid, grid.turned(angles), jnp.asarray(base)))
    poses = tg.candidate_poses(patch, offsets, angles).reshape(-1, 4, 4)
    results = solver.solve(coil, [efield.Placement(p) for p in poses], progress=False)
    direct = np.array([target.score_field(mesh, r.E) for r in results]).reshape(turned.shape)
    return turned, direct


@pytest.mark.parametrize("direction", [None, (0.0, 1.0, 1.0)])
def test_all_handle_angles_at_once_match_direct_solves_on_the_sphere(sphere, solver, coil, direction):
    target = tg.Target(TARGET_CENTRE, 10.0, direction=direction)
    turned, direct = _turned_against_direct(sphere, solver, coil, target, TARGET_CENTRE,
                                            [0.0, 45.0, 100.0, 170.0])
    scale = np.abs(direct).max()
    assert np.abs(turned - direct).max() < 2e-3 * scale
    assert np.ptp(direct) > 0.05 * scale


def test_all_handle_angles_at_once_match_direct_solves_on_an_ellipsoid(ellipsoid, coil):
    solver = efield.FieldSolver(ellipsoid)
    target = tg.Target([-30.0, 20.0, 65.0], 12.0)
    turned, direct = _turned_against_direct(ellipsoid, solver, coil, target, [-30.0, 20.0, 65.0],
                                            tg.candidate_angles(90.0))
    np.testing.assert_allclose(turned, direct, rtol=2e-3)


def test_polar_lattice_converges_at_fourth_order(direction_grid):
    """Against element-wise interpolation: halving both lattice steps divides the largest
    error by about 2^4 (cubic Lagrange in rho and phi; z nodes on the coil's layers)."""
    grid, patch = direction_grid
    offsets, angles = tg.candidate_offsets(20.0, 10.0), tg.candidate_angles(30.0)
    elementwise = np.asarray(tg.score_poses(grid, jnp.asarray(
        tg.candidate_poses(patch, offsets, angles).reshape(-1, 4, 4)))).reshape(len(offsets), -1)
    base = jnp.asarray(tg.candidate_poses(patch, offsets, [0.0])[:, 0])
    errors = [np.abs(np.asarray(tg.score_turned(grid, grid.turned(angles, rho_step_mm=h, arc_step_mm=2 * h),
                                                base)) - elementwise).max() for h in (8.0, 4.0)]
    scale = np.abs(elementwise).max()
    assert errors[0] < 1e-3 * scale
    assert errors[1] < errors[0] / 8


def test_handle_angles_must_share_a_step(coil):
    assert polar.angle_steps(tg.candidate_angles(30.0)) == 12
    assert polar.angle_steps([0.0, 45.0, 100.0, 170.0]) == 72        # 5 degree steps
    assert polar.angle_steps([0.0, 360.0 / np.pi]) is None
    assert polar.lattice_phi_count([0.0, 90.0], 88.0, 16.0) == 36       # >= 2 pi 88 / 16, a multiple of 4
    with pytest.raises(ValueError, match="angles_deg"):
        polar.polar_coil(coil.dipole_positions, coil.dipole_moments, coil.segment_positions,
                         coil.segment_vectors, [0.0, 360.0 / np.pi])


def test_raw_and_recovered_scores_differ(ellipsoid, coil):
    """The adjoint follows the solver's field: recovered and raw fields give other scores."""
    target = tg.Target([-30.0, 20.0, 65.0], 12.0)
    c = [tg.adjoint_sources(efield.FieldSolver(ellipsoid, recovered=r), target) for r in (True, False)]
    assert np.abs(c[0] - c[1]).max() > 1e-3 * np.abs(c[0]).max()


def test_candidate_grid_geometry(sphere):
    offsets = tg.candidate_offsets(20.0, 5.0)
    assert len(offsets) == 49                       # lattice points with i^2 + j^2 <= 16
    assert np.linalg.norm(offsets, axis=1).max() <= 20.0 + 1e-9
    gaps = np.linalg.norm(offsets[:, None] - offsets[None], axis=2)
    assert gaps[gaps > 0].min() == pytest.approx(5.0)
    angles = tg.candidate_angles(30.0)
    np.testing.assert_allclose(angles, np.arange(12) * 30.0)
    patch = tg.scalp_patch(sphere, TARGET_CENTRE, 35.0, distance_mm=4.0)
    poses = tg.candidate_poses(patch, offsets, angles)
    assert poses.shape == (49, 12, 4, 4)
    centres = poses[..., :3, 3]
    z = poses[..., :3, 2]
    scalp = centres + 4.0 * z
    np.testing.assert_allclose(np.linalg.norm(scalp, axis=-1), 95.0, atol=0.05)   # on the scalp
    radial = scalp / np.linalg.norm(scalp, axis=-1, keepdims=True)
    np.testing.assert_allclose(np.einsum("pai,pai->pa", z, radial), -1.0, atol=1e-3)  # z inward
    for p in poses.reshape(-1, 4, 4)[::37]:
        efield.Placement(p)                          # orthonormal, right-handed
    y = poses[0, :, :3, 1]
    step = np.degrees(np.arccos(np.clip(np.einsum("ai,ai->a", y, np.roll(y, -1, axis=0)), -1, 1)))
    np.testing.assert_allclose(step, 30.0, atol=1e-6)
    on_scalp = np.linalg.norm(scalp[:, None, 0] - scalp[None, :, 0], axis=2)
    nearest = np.where(on_scalp > 0, on_scalp, np.inf).min(axis=1)
    assert np.all((nearest >= 5.0 - 1e-9) & (nearest < 5.1))   # tangent spacing, lifted onto the sphere


@pytest.fixture(scope="module")
def direction_grid(sphere, solver, coil):
    target = tg.Target(TARGET_CENTRE, 10.0, direction=(1.0, 0.0, 0.0))
    patch = tg.scalp_patch(sphere, TARGET_CENTRE, 35.0)
    return tg.reciprocal_grid(solver, coil, target, patch, 20.0), patch


def test_refinement_reaches_the_fine_grid_optimum_with_far_fewer_evaluations(direction_grid):
    grid, patch = direction_grid
    coarse_offsets, coarse_angles = tg.candidate_offsets(20.0, 5.0), tg.candidate_angles(30.0)
    coarse = np.asarray(tg.score_poses(grid, jnp.asarray(
        tg.candidate_poses(patch, coarse_offsets, coarse_angles).reshape(-1, 4, 4))))
    i, j = np.unravel_index(np.argmax(coarse), (len(coarse_offsets), len(coarse_angles)))
    start = [*coarse_offsets[i], np.radians(coarse_angles[j])]
    _, refined, evaluations = tg.refine(grid, patch, start, 20.0, steps=40)
    # a 1 mm, 2 degree grid over the coarse optimum's neighbourhood (+-5 mm, +-30 degrees),
    # 25 times finer than the coarse grid per placement dimension
    offsets = coarse_offsets[i] + tg.candidate_offsets(5.0, 1.0)
    angles = coarse_angles[j] + np.arange(-30.0, 30.1, 2.0)
    fine_poses = tg.candidate_poses(patch, offsets, angles)
    fine = np.asarray(tg.score_poses(grid, jnp.asarray(fine_poses.reshape(-1, 4, 4)), batch=256))
    assert fine.max() > coarse.max()
    assert refined >= fine.max() - 1e-5 * abs(fine.max())
    assert evaluations * 50 < fine.size             # 41 against 81 x 31


def test_optimize_placement_checks_its_best_pose_with_a_solve(sphere, solver, coil):
    target = tg.Target(TARGET_CENTRE, 10.0, direction=(1.0, 0.0, 0.0))
    result = efield.optimize_placement(sphere, coil, target, solver=solver, refine_steps=20)
    assert result.scores.shape == (49, 12)
    assert result.score >= result.grid_score == pytest.approx(result.scores.max())
    assert result.direct_score == pytest.approx(result.score, rel=1e-3)
    assert result.n_grid_evaluations == 588 and result.n_refine_evaluations == 21
    # a figure-8 drives its peak field along the handle axis (its central windings run along
    # y): the handle ends up along the head's x axis, the direction asked for
    assert abs(result.placement.y_axis[0]) > 0.9
    assert result.summary()["target"]["score"] == "mean E.d"


def test_poses_outside_the_precomputed_region_score_nan(direction_grid):
    grid, patch = direction_grid
    far = np.asarray(patch.pose(60.0, 0.0, 0.0))
    assert np.isnan(float(grid.score(jnp.asarray(far))))
    assert np.isnan(np.asarray(tg.score_turned(grid, grid.turned([0.0, 90.0]), jnp.asarray(far[None])))).all()


@pytest.mark.parametrize("kwargs, message", [
    (dict(radius_mm=0.0), "radius_mm"),
    (dict(direction=(0.0, 0.0, 0.0)), "direction"),
    (dict(direction=(1.0, 2.0)), "direction"),
])
def test_bad_targets_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        tg.Target(TARGET_CENTRE, **{"radius_mm": 10.0, **kwargs})


def test_empty_region_is_refused(sphere):
    with pytest.raises(ValueError, match="no tetrahedra of tissues"):
        tg.Target([0.0, 0.0, 200.0], 5.0).weights(sphere)


def test_roi_weights_are_volume_fractions_of_grey_matter(sphere):
    index, w = tg.Target(TARGET_CENTRE, 10.0).weights(sphere)
    assert w.sum() == pytest.approx(1.0)
    assert np.all(sphere.tags[index] == 2)
    assert np.all(np.linalg.norm(sphere.barycenters[index] - TARGET_CENTRE, axis=1) <= 10.0)
    np.testing.assert_allclose(w, sphere.volumes[index] / sphere.volumes[index].sum())


def test_memory_plan_grows_with_the_batch_and_refuses_what_does_not_fit(sphere, solver, coil):
    one, many = solver.memory_plan(1, coil.n_elements), solver.memory_plan(16, coil.n_elements)
    assert many["total_bytes"] - one["total_bytes"] == 15 * one["per_placement_bytes"]
    assert many["bytes_per_tet"] == pytest.approx(many["total_bytes"] / sphere.n_tets)
    limited = efield.FieldSolver(sphere, memory_limit_bytes=one["total_bytes"] + one["per_placement_bytes"])
    pos = efield.Placement.on_scalp(sphere, [0.0, 0.0, 95.0])
    with pytest.raises(MemoryError, match=r"batch of 4 placements.*batch_size=2 or less"):
        limited.solve(coil, [pos] * 4, batch_size=4, progress=False)
    assert limited.iterations == []                # refused before any solve
    assert len(limited.solve(coil, [pos] * 2, batch_size=2, progress=False)) == 2


@pytest.mark.slow
def test_adjoint_sources_agree_between_backends():
    """The same adjoint through SciPy CG on the host and JAX PCG on JAX's device."""
    mesh = efield.sphere_head(max_edge_mm=12)
    target = tg.Target(TARGET_CENTRE, 12.0)
    host, device = (tg.adjoint_sources(efield.FieldSolver(mesh, backend=b), target)
                    for b in ("scipy", "jax"))
    np.testing.assert_allclose(device, host, atol=1e-7 * np.abs(host).max())
