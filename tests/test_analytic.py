"""Tests of the analytic sphere E-field (Heller & van Hulsteyn 1992) against exact facts.

Inside a spherically symmetric conductor the induced field is fixed uniquely by
curl E = -dB/dt, div E = 0 and E.r = 0; the tests check these three properties
directly (finite differences against the analytic dipole B-field), so they validate
the formula independently of the paper. Sampled points reach to within 5 mm of the
dipoles, so the checks hold for any outer radius below the dipoles: the formula
takes no radius or conductivity.
"""

import numpy as np
import pytest

import efield
import efield.analytic as analytic
from efield.analytic import analytic_sphere_field

MU0_OVER_4PI = 1e-7
DIDT = 6.7e7  # A/s


def random_setup(rng, n_dipoles=3, n_points=40, dipole_radius=(90.0, 110.0), point_radius=85.0):
    """Dipoles (mm, A m^2/A) outside a sphere of radius point_radius holding the points."""
    pos = _random_directions(rng, n_dipoles) * rng.uniform(*dipole_radius, (n_dipoles, 1))
    moment = rng.normal(size=(n_dipoles, 3)) * 1e-4
    radii = point_radius * rng.uniform(0, 1, (n_points, 1)) ** (1 / 3)
    points = _random_directions(rng, n_points) * radii
    return pos, moment, points


def _random_directions(rng, n):
    v = rng.normal(size=(n, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def primary_field(pos_mm, moment, didt, points_mm):
    """-dA/dt (V/m) of magnetic dipoles: A = mu0/(4 pi) m x (r - r0)/|r - r0|^3."""
    d = (points_mm[:, None] - np.atleast_2d(pos_mm)[None]) * 1e-3
    dist = np.linalg.norm(d, axis=-1, keepdims=True)
    a = MU0_OVER_4PI * np.cross(np.atleast_2d(moment)[None], d) / dist**3
    return -didt * a.sum(axis=1)


def dbdt(pos_mm, moment, didt, points_mm):
    """dB/dt (T/s) of magnetic dipoles: B = mu0/(4 pi) (3 n (n.m) - m)/R^3."""
    d = (points_mm[:, None] - np.atleast_2d(pos_mm)[None]) * 1e-3
    dist = np.linalg.norm(d, axis=-1, keepdims=True)
    n = d / dist
    m = np.atleast_2d(moment)[None]
    b = MU0_OVER_4PI * (3 * n * np.sum(n * m, axis=-1, keepdims=True) - m) / dist**3
    return didt * b.sum(axis=1)


def jacobian(field, points_mm, h_mm):
    """Central-difference dE_i/dx_j in V/m^2, shape (n, 3, 3)."""
    cols = []
    for j in range(3):
        step = np.zeros(3)
        step[j] = h_mm
        cols.append((field(points_mm + step) - field(points_mm - step)) / (2 * h_mm * 1e-3))
    return np.stack(cols, axis=-1)


def test_no_radial_component():
    rng = np.random.default_rng(0)
    pos, moment, points = random_setup(rng)
    e = analytic_sphere_field(pos, moment, DIDT, points)
    radial = np.sum(e * points, axis=1) / np.linalg.norm(points, axis=1)
    assert np.abs(radial).max() <= 1e-12 * np.abs(e).max()


def test_radial_dipole_gives_primary_field():
    rng = np.random.default_rng(1)
    pos, _, points = random_setup(rng, n_dipoles=1)
    moment = 2.5e-4 * pos[0] / np.linalg.norm(pos[0])
    e = analytic_sphere_field(pos[0], moment, DIDT, points)
    np.testing.assert_allclose(e, primary_field(pos, moment, DIDT, points), rtol=1e-10, atol=1e-12)


def test_linear_in_didt_and_moment_and_superposition():
    rng = np.random.default_rng(2)
    pos, moment, points = random_setup(rng, n_dipoles=2)
    e1 = analytic_sphere_field(pos[0], moment[0], DIDT, points)
    e2 = analytic_sphere_field(pos[1], moment[1], DIDT, points)
    tol = 1e-13 * np.abs(e1).max()
    e_didt = analytic_sphere_field(pos[0], moment[0], -3 * DIDT, points)
    np.testing.assert_allclose(e_didt, -3 * e1, atol=tol)
    e_half = analytic_sphere_field(pos[0], 0.5 * moment[0], DIDT, points)
    np.testing.assert_allclose(e_half, 0.5 * e1, atol=tol)
    e_sum = analytic_sphere_field(pos[0], moment[0] + moment[1], DIDT, points)
    e_other = analytic_sphere_field(pos[0], moment[1], DIDT, points)
    np.testing.assert_allclose(e_sum, e1 + e_other, atol=tol)
    np.testing.assert_allclose(analytic_sphere_field(pos, moment, DIDT, points), e1 + e2, atol=tol)


def test_curl_is_minus_dbdt_and_divergence_vanishes():
    rng = np.random.default_rng(3)
    pos, moment, points = random_setup(rng, n_points=60)
    jac = jacobian(lambda p: analytic_sphere_field(pos, moment, DIDT, p), points, h_mm=1e-3)
    curl = np.stack(
        [
            jac[:, 2, 1] - jac[:, 1, 2],
            jac[:, 0, 2] - jac[:, 2, 0],
            jac[:, 1, 0] - jac[:, 0, 1],
        ],
        axis=1,
    )
    expected = -dbdt(pos, moment, DIDT, points)
    np.testing.assert_allclose(curl, expected, atol=1e-7 * np.abs(expected).max())
    div = np.trace(jac, axis1=1, axis2=2)
    assert np.abs(div).max() <= 1e-7 * np.abs(jac).max()


def test_uniform_field_limit_for_distant_dipole():
    """A distant dipole gives a nearly uniform dB/dt; then E = -(1/2) dB/dt x r."""
    rng = np.random.default_rng(4)
    pos = np.array([3e5, -4e5, 1e5])  # mm, ~5e5 mm away
    moment = np.array([1.0, 2.0, -0.5])
    points = _random_directions(rng, 30) * rng.uniform(0, 20, (30, 1))
    e = analytic_sphere_field(pos, moment, DIDT, points)
    expected = -0.5 * np.cross(dbdt(pos, moment, DIDT, np.zeros((1, 3))), points * 1e-3)
    np.testing.assert_allclose(e, expected, atol=1e-4 * np.abs(expected).max())


def test_centre_is_finite_zero_and_continuous():
    rng = np.random.default_rng(5)
    pos, moment, _ = random_setup(rng)
    points = np.vstack([np.zeros(3), 1e-9 * _random_directions(rng, 5), [[0.0, 0.0, 10.0]]])
    e = analytic_sphere_field(pos, moment, DIDT, points)
    assert np.all(np.isfinite(e))
    np.testing.assert_array_equal(e[0], 0.0)
    assert np.abs(e[1:6]).max() <= 1e-9 * np.abs(e[6]).max()


def test_rotation_covariance():
    rng = np.random.default_rng(6)
    pos, moment, points = random_setup(rng)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    rot = q * np.sign(np.linalg.det(q))
    e = analytic_sphere_field(pos, moment, DIDT, points)
    e_rot = analytic_sphere_field(pos @ rot.T, moment @ rot.T, DIDT, points @ rot.T)
    np.testing.assert_allclose(e_rot, e @ rot.T, atol=1e-12 * np.abs(e).max())


def test_translation_with_centre():
    rng = np.random.default_rng(7)
    pos, moment, points = random_setup(rng)
    shift = np.array([12.0, -30.0, 45.0])
    e = analytic_sphere_field(pos, moment, DIDT, points)
    e_shift = analytic_sphere_field(pos + shift, moment, DIDT, points + shift, centre_mm=shift)
    np.testing.assert_allclose(e_shift, e, atol=1e-12 * np.abs(e).max())


def test_chunking_matches_single_pass(monkeypatch):
    rng = np.random.default_rng(8)
    pos, moment, points = random_setup(rng, n_points=25)
    e = analytic_sphere_field(pos, moment, DIDT, points)
    monkeypatch.setattr(analytic, "MAX_PAIRS_PER_CHUNK", 7)
    np.testing.assert_allclose(analytic_sphere_field(pos, moment, DIDT, points), e, rtol=0, atol=0)


def test_float32_matches_float64_within_its_cancellation_bound():
    """A figure-8's 2,280 dipoles from 4 mm above a 95 mm sphere, points up to 1 mm outside it
    (3 mm from the nearest dipole): float32 within eps32 (|r0| / |r0 - r|)^2 of float64,
    relative to the largest field."""
    rng = np.random.default_rng(9)
    coil = efield.figure8_70mm()
    pos = coil.dipole_positions * [1.0, 1.0, -1.0] + [0.0, 0.0, 95.0]   # the coil's z points down
    points = rng.normal(size=(2000, 3))
    points *= (rng.uniform(0.0, 96.0, size=2000) / np.linalg.norm(points, axis=1))[:, None]
    e64 = analytic_sphere_field(pos, coil.dipole_moments, DIDT, points)
    e32 = analytic_sphere_field(pos, coil.dipole_moments, DIDT, points, dtype=np.float32)
    assert e32.dtype == np.float64
    nearest = np.linalg.norm(pos, axis=1).min() - np.linalg.norm(points, axis=1).max()
    bound = np.finfo(np.float32).eps * (np.linalg.norm(pos, axis=1).max() / nearest) ** 2
    assert 0 < np.abs(e32 - e64).max() <= bound * np.abs(e64).max()
    by_name = analytic_sphere_field(pos, coil.dipole_moments, DIDT, points, dtype="float32")
    np.testing.assert_array_equal(by_name, e32)
    for bad in (np.float16, "double precision", "int32"):
        with pytest.raises(ValueError, match="dtype"):
            analytic_sphere_field(pos, coil.dipole_moments, DIDT, points, dtype=bad)


@pytest.mark.parametrize(
    "pos, moment, points, centre, name",
    [
        ([0, 0, 50.0], [1e-4, 0, 0], [[0, 0, 60.0]], (0, 0, 0), "dipole_pos_mm"),  # inside
        ([0, 0, 60.0], [1e-4, 0, 0], [[0, 60.0, 0]], (0, 0, 0), "dipole_pos_mm"),  # on
        ([0, 0, 60.0], [1e-4, 0, 0], [[0, 0, 0]], (0, 0, 70.0), "dipole_pos_mm"),  # centre moved
        ([0, 0, 90.0], [1e-4, 0], [[0, 0, 0]], (0, 0, 0), "dipole_moment"),
        ([[0, 0, 90.0]] * 2, [1e-4, 0, 0], [[0, 0, 0]], (0, 0, 0), "dipole_moment"),
        ([0, 0, 90.0], [1e-4, 0, 0], [0, 0, 0], (0, 0, 0), "points_mm"),
        ([0, 0, 90.0], [1e-4, 0, 0], [[0, 0, 0]], (0, 0), "centre_mm"),
    ],
)
def test_bad_input_raises(pos, moment, points, centre, name):
    with pytest.raises(ValueError, match=name):
        analytic_sphere_field(pos, moment, DIDT, points, centre_mm=centre)
