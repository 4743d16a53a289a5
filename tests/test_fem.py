"""FEM: assembly invariants, exact solutions, both backends, differentiability."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from efield import fem
from efield.conductivity import element_conductivity
from efield.solver import FieldSolver, SolverError


@pytest.fixture(autouse=True)
def x64_mode():
    """These tests build float64 JAX arrays and differentiate through efield themselves, which
    needs JAX's 64-bit mode around them (efield switches it on only inside its own calls)."""
    with jax.enable_x64(True):
        yield


@pytest.fixture(scope="module")
def coarse(sphere12):
    return sphere12


@pytest.fixture(scope="module")
def solvers(coarse):
    return {b: FieldSolver(coarse, backend=b) for b in ("scipy", "jax")}


def test_stiffness_is_symmetric_with_zero_row_sums(coarse):
    geom = fem.p1_geometry(coarse.nodes, coarse.tets, element_conductivity(coarse.tags))
    K = fem.stiffness_matrix(geom)
    assert abs(K - K.T).max() < 1e-12 * abs(K).max()
    assert np.abs(K.sum(axis=1)).max() < 1e-10 * abs(K).max()
    # the energy of a linear potential x is sum_e sigma_e V_e |grad x|^2 = sum sigma V
    x = coarse.nodes[:, 0] * 1e-3
    assert x @ (K @ x) == pytest.approx(np.sum(geom.sigma * geom.volumes), rel=1e-10)


def test_hat_gradients_reproduce_linear_functions(coarse):
    geom = fem.p1_geometry(coarse.nodes, coarse.tets, np.ones(coarse.n_tets))
    assert geom.volumes.sum() == pytest.approx(coarse.volumes.sum() * 1e-9, rel=1e-12)
    f = (coarse.nodes @ np.array([1.0, -2.0, 0.5])) * 1e-3
    grad = np.einsum("eic,ei->ec", geom.grads, f[coarse.tets])
    np.testing.assert_allclose(grad, np.tile([1.0, -2.0, 0.5], (coarse.n_tets, 1)), atol=1e-9)


@pytest.mark.parametrize("backend", ["scipy", "jax"])
def test_curl_free_source_induces_no_field(solvers, coarse, backend):
    """dA/dt = grad(psi) with psi linear (a uniform field) is cancelled exactly: E = 0."""
    a = jnp.tile(jnp.array([3.0, -1.0, 2.0]), (coarse.n_nodes, 1))[None]
    E, phi = solvers[backend].fields(a)
    assert float(jnp.abs(E).max()) < 1e-6 * 3.0
    # and the potential is -psi up to the grounding constant
    expected = -(coarse.nodes @ np.array([3.0, -1.0, 2.0])) * 1e-3
    expected -= expected[0]
    np.testing.assert_allclose(np.asarray(phi[0]), expected, atol=1e-7)


def test_backends_agree(solvers, coarse):
    rng = np.random.default_rng(1)
    b = rng.standard_normal((coarse.n_nodes, 3))
    b -= b.mean(axis=0)
    x = {k: np.asarray(s.potential(jnp.asarray(b))) for k, s in solvers.items()}
    scale = np.abs(x["scipy"]).max()
    assert np.abs(x["scipy"] - x["jax"]).max() < 1e-6 * scale


def test_host_solve_runs_eagerly_without_a_callback_and_gives_the_jitted_bits(solvers, coarse, monkeypatch):
    """An eager SciPy solve runs in the calling thread: a host callback's arguments wait for a
    thread of JAX's CPU pool, which with a single usable core is the callback's own (it hung).
    Under jit it goes through the callback, to the same bits."""
    solver = solvers["scipy"]
    b = jnp.asarray(np.random.default_rng(3).standard_normal((coarse.n_nodes, 2)))
    jitted = np.asarray(jax.jit(solver.potential)(b))

    def no_callback(*args, **kwargs):
        raise AssertionError("an eager solve used a host callback")

    monkeypatch.setattr(jax, "pure_callback", no_callback)
    np.testing.assert_array_equal(np.asarray(solver.potential(b)), jitted)
    assert np.abs(jitted).max() > 0


@pytest.mark.parametrize("backend", ["scipy", "jax"])
def test_solve_is_differentiable(solvers, coarse, backend):
    """The VJP of x = K^-1 b is K^-1 x_bar (K symmetric): check <grad J, db> = J(b + db) - J(b)."""
    solver = solvers[backend]
    rng = np.random.default_rng(2)
    b, db, c = (jnp.asarray(rng.standard_normal((coarse.n_nodes, 1))) for _ in range(3))
    db = db.at[0].set(0.0)

    def J(b):
        return jnp.sum(c * solver.potential(b))

    grad = jax.grad(J)(b)
    assert float(jnp.sum(grad * db)) == pytest.approx(float(J(b + db) - J(b)), rel=1e-6)


def test_non_convergence_is_an_error(coarse):
    solver = FieldSolver(coarse, maxiter=2)
    a = jnp.asarray(np.random.default_rng(0).standard_normal((1, coarse.n_nodes, 3)))
    with pytest.warns(RuntimeWarning), pytest.raises(SolverError, match="did not reach"):
        solver.fields(a)


def test_unknown_tissue_needs_conductivity(coarse):
    from efield.mesh import TetMesh

    odd = TetMesh(coarse.nodes, coarse.tets, np.where(coarse.tags == 4, 42, coarse.tags))
    with pytest.raises(ValueError, match="42"):
        FieldSolver(odd)
    FieldSolver(odd, conductivity={42: 0.01})


def test_bad_backend_is_refused(coarse):
    with pytest.raises(ValueError, match="backend"):
        FieldSolver(coarse, backend="cuda")


@pytest.mark.parametrize("backend", ["scipy", "jax"])
def test_coil_pose_gradient_through_the_whole_chain(solvers, coarse, backend):
    """d/dz of the mean |E|^2 in the brain under the coil, by jax.grad through dA/dt, the
    right-hand side, the solve and the field, against a central finite difference."""
    import efield

    solver = solvers[backend]
    coil = efield.figure8_70mm(resolution_mm=8.0)
    base = efield.Placement.on_scalp(coarse, [0.0, 0.0, 95.0], [0.0, 50.0, 95.0], distance_mm=6.0)
    brain = jnp.asarray(coarse.tags == 2)

    def score(lift_mm):
        pose = jnp.asarray(base.matsimnibs).at[:3, 3].add(-lift_mm * jnp.asarray(base.z_axis))
        dadt = efield.coil_dadt(coil, pose, coarse.nodes, 1e6)[None]
        E, _ = solver.fields(dadt)
        return jnp.sum(jnp.where(brain[:, None], E[0] ** 2, 0.0)) / jnp.sum(brain)

    grad = float(jax.grad(score)(0.0))
    h = 0.5
    finite = float(score(h) - score(-h)) / (2 * h)
    assert grad < 0                                     # lifting the coil weakens the field
    assert grad == pytest.approx(finite, rel=1e-3)
