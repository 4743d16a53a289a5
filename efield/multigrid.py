"""Algebraic multigrid and preconditioned conjugate gradients in JAX.

The hierarchy (prolongators and coarse operators) comes from pyamg's smoothed aggregation,
set up once on the host; the V-cycle runs on the device in float32 with Chebyshev smoothing
(polynomial smoothers need only matrix products, so they suit GPUs), inside a float64
conjugate-gradient loop that solves several right-hand sides at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp
from jax.experimental import sparse as jsparse

from .checks import x64

CHEBYSHEV_DEGREE = 3
CHEBYSHEV_RATIO = 30.0
"""Smoothing targets the upper part [lam_max / RATIO, 1.1 lam_max] of spec(D^-1 A)."""


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class Level:
    """One fine level: operator A, diagonal inverse, prolongator P (to this level) and R = P^T."""

    A: jsparse.BCSR
    inv_diag: jax.Array
    P: jsparse.BCSR
    R: jsparse.BCSR
    lam_max: float = field(metadata=dict(static=True))


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class Hierarchy:
    """A multigrid hierarchy on the device: fine levels, then a dense coarse-grid inverse."""

    levels: tuple[Level, ...]
    coarse_inverse: jax.Array


@x64
def hierarchy_from_pyamg(ml, dtype=jnp.float32) -> Hierarchy:
    """Device copy of a pyamg multilevel solver's operators, in `dtype`."""
    from pyamg.util.linalg import approximate_spectral_radius

    def bcsr(m):
        return jsparse.BCSR.from_scipy_sparse(sp.csr_matrix(m, dtype=dtype))

    levels = []
    for lvl in ml.levels[:-1]:
        A = sp.csr_matrix(lvl.A, dtype=np.float64)
        inv_diag = 1.0 / A.diagonal()
        lam = float(approximate_spectral_radius(sp.diags(inv_diag) @ A))
        levels.append(Level(bcsr(A), jnp.asarray(inv_diag, dtype), bcsr(lvl.P),
                            bcsr(lvl.P.T), lam))
    coarse = np.linalg.pinv(ml.levels[-1].A.toarray().astype(np.float64))
    return Hierarchy(tuple(levels), jnp.asarray(coarse, dtype))


def _chebyshev(level: Level, b, x, degree: int):
    """`degree` Chebyshev steps on A x = b, preconditioned by the diagonal."""
    hi = 1.1 * level.lam_max
    lo = level.lam_max / CHEBYSHEV_RATIO
    theta, delta = 0.5 * (hi + lo), 0.5 * (hi - lo)
    sigma = theta / delta
    rho = 1.0 / sigma
    r = b - level.A @ x
    d = level.inv_diag[:, None] * r / theta
    for _ in range(degree - 1):
        x = x + d
        r = r - level.A @ d
        rho_next = 1.0 / (2.0 * sigma - rho)
        d = rho_next * rho * d + (2.0 * rho_next / delta) * level.inv_diag[:, None] * r
        rho = rho_next
    return x + d


@x64
def vcycle(h: Hierarchy, r: jax.Array, degree: int = CHEBYSHEV_DEGREE) -> jax.Array:
    """One symmetric V-cycle applied to residuals r (n, k): an SPD approximation of A^-1 r."""

    def cycle(i, b):
        if i == len(h.levels):
            return h.coarse_inverse @ b
        lvl = h.levels[i]
        x = _chebyshev(lvl, b, jnp.zeros_like(b), degree)
        x = x + lvl.P @ cycle(i + 1, lvl.R @ (b - lvl.A @ x))
        return _chebyshev(lvl, b, x, degree)

    return cycle(0, r)


@x64
@jax.jit
def pcg(A: jsparse.BCSR, h: Hierarchy, b: jax.Array, rtol: float, maxiter: int):
    """Conjugate gradients on A x = b for the columns of b (n, k), V-cycle preconditioned.

    The Krylov loop runs in A's precision (float64), the preconditioner in the hierarchy's
    (float32); each column stops at ||b - A x|| <= rtol ||b||. Returns x, the iteration
    count and the final relative residual per column.
    """
    low = h.coarse_inverse.dtype

    def precondition(r):
        scale = jnp.maximum(jnp.linalg.norm(r, axis=0), jnp.finfo(low).tiny)
        return vcycle(h, (r / scale).astype(low)).astype(r.dtype) * scale

    b_norm = jnp.linalg.norm(b, axis=0)
    b_norm = jnp.where(b_norm > 0, b_norm, 1.0)
    x = jnp.zeros_like(b)
    z = precondition(b)
    init = (0, x, b, z, jnp.sum(b * z, axis=0), jnp.linalg.norm(b, axis=0) / b_norm)

    def active(state):
        return state[5] > rtol

    def cond(state):
        return (state[0] < maxiter) & jnp.any(active(state))

    def body(state):
        i, x, r, p, rz, _ = state
        go = active(state)
        q = A @ p
        alpha = jnp.where(go, rz / jnp.sum(p * q, axis=0), 0.0)
        x = x + alpha * p
        r = r - alpha * q
        rel = jnp.linalg.norm(r, axis=0) / b_norm
        z = precondition(r)
        rz_next = jnp.sum(r * z, axis=0)
        beta = jnp.where(go, rz_next / rz, 0.0)
        return i + 1, x, r, z + beta * p, rz_next, rel

    i, x, _, _, _, rel = jax.lax.while_loop(cond, body, init)
    return x, i, rel
