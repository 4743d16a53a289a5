"""JAX's 64-bit mode is efield's own business: importing efield leaves the process's setting
(jax_enable_x64) alone, each entry point computes in float64 whatever the caller's mode, and
tracing through efield with the mode off is refused with a clear error."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import efield
from efield.placement import transform_elements

DIPOLE_POS_MM = np.array([0.0, 0.0, 300.0])   # a tangential dipole well outside the head
DIPOLE_MOMENT = np.array([1.0, 0.0, 0.0])


def rdm(a, b):
    return float(np.linalg.norm(a / np.linalg.norm(a) - b / np.linalg.norm(b)))


def mag(a, b):
    return float(abs(np.log(np.linalg.norm(a) / np.linalg.norm(b))))


@pytest.fixture(scope="module")
def head():
    return efield.sphere_head(max_edge_mm=12.0)


@pytest.mark.parametrize("setting", [None, "0", "1"])
def test_import_leaves_the_flag_as_it_was(setting):
    env = {k: v for k, v in os.environ.items() if k != "JAX_ENABLE_X64"}
    if setting is not None:
        env["JAX_ENABLE_X64"] = setting
    code = ("import jax; before = jax.config.jax_enable_x64; import efield, efield.targeting; "
            "print(before, jax.config.jax_enable_x64)")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == [str(setting == "1")] * 2


@pytest.mark.parametrize("backend", ["scipy", "jax"])
def test_solve_with_x64_off_is_float64_and_matches_the_sphere(head, backend):
    """A solver set up with the caller's mode off solves with it off and on: identical float64
    fields, close to the analytic sphere solution (SimNIBS's thresholds, as
    tests/test_validation.py)."""
    coil = efield.Coil(DIPOLE_POS_MM[None], DIPOLE_MOMENT[None], name="dipole")
    with jax.enable_x64(False):
        solver = efield.FieldSolver(head, backend=backend)
    results = {}
    for mode in (False, True):
        with jax.enable_x64(mode):
            results[mode] = solver.solve(coil, efield.Placement(np.eye(4)), 1e6, progress=False)[0]
            exact = efield.analytic_sphere_field(DIPOLE_POS_MM, DIPOLE_MOMENT, 1e6, head.barycenters)
            assert jax.config.jax_enable_x64 is mode
    off, on = results[False], results[True]
    for name in ("E", "potential", "dadt"):
        assert getattr(off, name).dtype == np.float64
        np.testing.assert_array_equal(getattr(off, name), getattr(on, name))
    assert exact.dtype == np.float64
    assert rdm(off.E, exact) < 0.2
    assert mag(off.E, exact) < np.log(1.1)


def test_figure8_solve_with_x64_off_matches_the_sphere(head):
    coil = efield.figure8_70mm()
    pos = efield.Placement.on_scalp(head, centre=[20.0, 10.0, 95.0], handle=[20.0, 60.0, 95.0],
                                    distance_mm=4.0)
    with jax.enable_x64(False):
        E = efield.simulate(head, coil, pos, didt=1e6).E
        where, moments = transform_elements(pos.matsimnibs, coil.dipole_positions, coil.dipole_moments)
        exact = efield.analytic_sphere_field(where, moments, 1e6, head.barycenters)
        assert not jax.config.jax_enable_x64
    assert E.dtype == exact.dtype == np.float64
    assert rdm(E, exact) < 0.2
    assert mag(E, exact) < np.log(1.1)


def test_entry_points_give_the_callers_mode_back():
    points = np.array([[10.0, 0.0, 0.0], [0.0, 20.0, 30.0]])
    for mode in (False, True):
        with jax.enable_x64(mode):
            e = efield.analytic_sphere_field(DIPOLE_POS_MM, DIPOLE_MOMENT, 1e6, points)
            dadt = efield.coil_dadt(efield.circular_coil(turns=1), np.eye(4), points + [0, 0, -50.0])
            assert jax.config.jax_enable_x64 is mode
        assert e.dtype == np.float64 and dadt.dtype == jnp.float64


def test_host_solve_is_float64_bit_for_bit(head):
    """The SciPy backend's callback hands float64 across unchanged with the mode off (it may
    run on a thread of XLA's, where the per-thread mode is off)."""
    solver = efield.FieldSolver(head, backend="scipy")
    b = np.random.default_rng(1).standard_normal((head.n_nodes, 2))
    with jax.enable_x64(False):
        for _ in range(3):
            x = solver.potential(b)
            assert x.dtype == jnp.float64
            np.testing.assert_array_equal(np.asarray(x), solver._cg_columns(b))


def test_tracing_with_x64_off_is_refused_and_works_with_it_on():
    coil = efield.circular_coil(turns=1, resolution_mm=8.0)
    points = np.array([[5.0, 0.0, 40.0], [0.0, -10.0, 45.0]])

    def objective(centre):
        return jnp.sum(efield.coil_dadt(coil, jnp.eye(4).at[:3, 3].set(centre), points) ** 2)

    with jax.enable_x64(False), pytest.raises(TypeError, match="enable_x64"):
        jax.grad(objective)(jnp.zeros(3))
    with jax.enable_x64(True):
        centre = jnp.array([1.0, -2.0, 3.0])
        grad = jax.grad(objective)(centre)
        h = 1e-4
        fd = [(objective(centre.at[i].add(h)) - objective(centre.at[i].add(-h))) / (2 * h)
              for i in range(3)]
    assert grad.dtype == jnp.float64
    np.testing.assert_allclose(np.asarray(grad), np.asarray(fd), rtol=1e-6)
