"""Primary field dA/dt: kernels, covariance, chunking, Maxwell identities, gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from efield.coil import Coil, circular_coil
from efield.placement import Placement
from efield.primary import MU0, coil_dadt, dadt_dipoles, dadt_segments


@pytest.fixture(autouse=True)
def x64_mode():
    """These tests build float64 JAX arrays and differentiate through efield themselves, which
    needs JAX's 64-bit mode around them (efield switches it on only inside its own calls)."""
    with jax.enable_x64(True):
        yield


def random_pose(seed, centre_scale=50.0):
    rng = np.random.default_rng(seed)
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    m = np.eye(4)
    m[:3, :3] = q if np.linalg.det(q) > 0 else -q
    m[:3, 3] = rng.normal(size=3) * centre_scale
    return m


@pytest.fixture(scope="module")
def mixed_coil():
    """Dipoles plus a square wire loop, off-centre, to exercise both kernels."""
    rng = np.random.default_rng(7)
    square = np.array([[-20, -20, -8], [20, -20, -8], [20, 20, -8], [-20, 20, -8.0]])
    wire = Coil.from_wire(np.vstack([np.linspace(a, b, 10, endpoint=False)
                                     for a, b in zip(square, np.roll(square, -1, axis=0))]))
    return Coil(rng.normal(size=(30, 3)) * 15 - [0, 0, 10], rng.normal(size=(30, 3)) * 1e-4,
                wire.segment_positions, wire.segment_vectors)


def test_dipole_by_hand():
    # m = z (1 A m^2) at the origin, point 0.1 m along x: m x r / r^3 = 100 y; times 1e-7 * 1e6
    got = dadt_dipoles(jnp.array([[0.1, 0, 0]]), jnp.zeros((1, 3)), jnp.array([[0, 0, 1.0]]), 1e6)
    assert np.allclose(got, [[0, 10.0, 0]], rtol=1e-14)
    assert MU0 == pytest.approx(4e-7 * np.pi)


def test_segment_by_hand():
    # dl = 1 mm along x at the origin, point 0.1 m along y: 1e-7 * 1e6 * 1e-3 / 0.1 along x
    got = dadt_segments(jnp.array([[0, 0.1, 0]]), jnp.zeros((1, 3)), jnp.array([[1e-3, 0, 0]]), 1e6)
    assert np.allclose(got, [[1e-3, 0, 0]], rtol=1e-14)


def test_linear_in_didt_and_moment():
    points = jnp.array([[0.03, -0.01, 0.05], [0.0, 0.02, 0.04]])
    pos, m = jnp.array([[0.01, 0, 0]]), jnp.array([[1e-4, 2e-4, -3e-4]])
    base = dadt_dipoles(points, pos, m, 1e6)
    assert np.allclose(dadt_dipoles(points, pos, m, 3e6), 3 * base, rtol=1e-13)
    assert np.allclose(dadt_dipoles(points, pos, -2.5 * m, 1e6), -2.5 * base, rtol=1e-13)
    coil = Coil(np.array(pos) * 1e3, np.array(m))
    assert np.allclose(coil_dadt(coil, np.eye(4), points * 1e3, didt=2e6), 2 * base, rtol=1e-12)


def test_rotation_and_translation_covariance(mixed_coil):
    rng = np.random.default_rng(3)
    local = rng.normal(size=(50, 3)) * 20 + [0, 0, 30]
    reference = np.asarray(coil_dadt(mixed_coil, np.eye(4), local))
    m = random_pose(4)
    moved = local @ m[:3, :3].T + m[:3, 3]
    got = np.asarray(coil_dadt(mixed_coil, Placement(m), moved))
    scale = np.abs(reference).max()
    assert np.allclose(got, reference @ m[:3, :3].T, rtol=1e-10, atol=1e-12 * scale)


def test_chunked_equals_unchunked(mixed_coil):
    points = np.random.default_rng(5).normal(size=(1001, 3)) * 30 + [0, 0, 40]
    m = random_pose(6, centre_scale=5.0)
    whole = coil_dadt(mixed_coil, m, points, max_pairs=10**9)
    chunked = coil_dadt(mixed_coil, m, points, max_pairs=64 * mixed_coil.n_elements)
    assert chunked.shape == (1001, 3)
    assert np.allclose(chunked, whole, rtol=1e-13, atol=0)


def test_dipole_field_is_divergence_free_with_curl_dbdt():
    pos, m, didt = jnp.array([[0.01, -0.02, 0.005]]), jnp.array([[2e-4, -1e-4, 3e-4]]), 1e6
    jacobian = jax.jit(jax.jacfwd(lambda r: dadt_dipoles(r[None], pos, m, didt)[0]))
    for r in np.random.default_rng(8).normal(size=(5, 3)) * 0.05:
        j = np.asarray(jacobian(jnp.asarray(r)))                # j[i, k] = d A_i / d x_k
        curl = np.array([j[2, 1] - j[1, 2], j[0, 2] - j[2, 0], j[1, 0] - j[0, 1]])
        d = r - np.asarray(pos[0])
        dist = np.linalg.norm(d)
        dbdt = 1e-7 * didt * (3 * d * (d @ m[0]) / dist**5 - np.asarray(m[0]) / dist**3)
        assert abs(np.trace(j)) < 1e-12 * np.abs(j).max()
        assert np.allclose(curl, dbdt, rtol=1e-10, atol=1e-12 * np.abs(dbdt).max())


def test_gradient_with_respect_to_coil_centre():
    coil = circular_coil(turns=3, resolution_mm=8.0)
    points = jnp.asarray(np.random.default_rng(9).normal(size=(20, 3)) * 20 + [5, 0, 40])
    base = random_pose(10, centre_scale=0.0)

    def objective(centre):
        m = jnp.asarray(base).at[:3, 3].set(centre)
        return jnp.sum(coil_dadt(coil, m, points) ** 2)

    centre = jnp.array([1.0, -2.0, 3.0])
    grad = np.asarray(jax.grad(objective)(centre))
    h = 1e-4
    fd = [(objective(centre.at[i].add(h)) - objective(centre.at[i].add(-h))) / (2 * h)
          for i in range(3)]
    assert np.allclose(grad, fd, rtol=1e-6)


def test_empty_inputs():
    coil = circular_coil(turns=1)
    assert coil_dadt(coil, np.eye(4), np.zeros((0, 3))).shape == (0, 3)
    assert np.all(coil_dadt(Coil(), np.eye(4), np.ones((4, 3))) == 0)
