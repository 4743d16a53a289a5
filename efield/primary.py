"""The coil's primary field dA/dt (JAX, float64, differentiable).

The kernels work in SI units (m, A/s, V/m); coil_dadt takes millimetres like the rest of the
public API. The primary electric field is E_primary = -dA/dt. Each function runs in JAX's
64-bit mode (`efield.checks.x64`); differentiate through them under jax.enable_x64(True).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from .checks import x64
from .coil import Coil

MU0 = 4e-7 * math.pi
"""Vacuum permeability, T*m/A."""
_K = MU0 / (4 * math.pi)

DEFAULT_MAX_PAIRS = 2**22
"""Point-element pairs evaluated at once by coil_dadt (bounds the memory of one chunk)."""


@x64
def dadt_dipoles(points_m, positions_m, moments, didt):
    """dA/dt (n, 3) V/m at points (n, 3) m of dipoles at positions (k, 3) m.

    dA/dt = mu0/(4 pi) * didt * sum_k m_k x (r - r_k) / |r - r_k|^3, moments in A*m^2 per A,
    didt in A/s.
    The sum is evaluated as (W m) x r - W (m x r_k) with W = 1/|r - r_k|^3 (n, k), which
    needs only matrix products; keep coordinates near the origin (centred on the coil) to
    limit cancellation. Arrays are taken as float64.
    """
    points_m, positions_m, moments = (jnp.asarray(a, jnp.float64) for a in (points_m, positions_m, moments))
    r2 = _squared_distances(points_m, positions_m)
    inv_r3 = 1.0 / (r2 * jnp.sqrt(r2))
    return _K * didt * (jnp.cross(inv_r3 @ moments, points_m)
                        - inv_r3 @ jnp.cross(moments, positions_m))


@x64
def dadt_segments(points_m, midpoints_m, vectors_m, didt):
    """dA/dt (n, 3) V/m at points (n, 3) m of straight current segments.

    dA/dt = mu0/(4 pi) * didt * sum_s dl_s / |r - r_s|, with midpoints r_s and vectors dl_s
    (direction times length) in m, per A of current; didt in A/s. Arrays are taken as float64.
    """
    points_m, midpoints_m, vectors_m = (jnp.asarray(a, jnp.float64)
                                        for a in (points_m, midpoints_m, vectors_m))
    return _K * didt * jax.lax.rsqrt(_squared_distances(points_m, midpoints_m)) @ vectors_m


def _squared_distances(points, sources):
    """|points_i - sources_k|^2, (n, k).

    |p - s|^2 = |p|^2 + |s|^2 - 2 p.s puts the pairwise work into one matrix product; with
    coordinates centred on the coil and sources a few mm from any point, the cancellation
    costs about 1e-13 relative in float64.
    """
    return (jnp.sum(points * points, axis=1)[:, None] + jnp.sum(sources * sources, axis=1)[None]
            - 2.0 * points @ sources.T)


@jax.jit
def _dadt_blocks(matsimnibs, blocks_mm, dip_pos, dip_mom, seg_pos, seg_vec, didt):
    """dA/dt over blocks (b, c, 3) of points in mm; coil elements in the coil frame (mm).

    The kernels run in head axes with the origin at the coil centre (less cancellation).
    """
    rotation, centre = matsimnibs[:3, :3], matsimnibs[:3, 3]
    dip_pos, dip_mom, seg_pos, seg_vec = (a @ rotation.T for a in (dip_pos, dip_mom, seg_pos,
                                                                   seg_vec))

    def block(points_mm):
        points = (points_mm - centre) * 1e-3
        return (dadt_dipoles(points, dip_pos * 1e-3, dip_mom, didt)
                + dadt_segments(points, seg_pos * 1e-3, seg_vec * 1e-3, didt))

    return jax.lax.map(block, blocks_mm)


@x64
def coil_dadt(coil: Coil, matsimnibs, points_mm, didt: float = 1e6,
              max_pairs: int = DEFAULT_MAX_PAIRS) -> jax.Array:
    """dA/dt (n, 3) V/m of a placed coil at points (n, 3) in head coordinates (mm).

    matsimnibs: the (4, 4) pose (mm) or a Placement; a JAX array may be traced, so jax.grad
    with respect to its entries (or a pose parametrisation) works. didt in A/s.
    The points are evaluated in chunks of max_pairs // n_elements (padded with copies of the
    last point), so memory stays bounded for millions of points.
    """
    matsimnibs = jnp.asarray(getattr(matsimnibs, "matsimnibs", matsimnibs), dtype=jnp.float64)
    points = jnp.asarray(points_mm, dtype=jnp.float64).reshape(-1, 3)
    n = points.shape[0]
    if n == 0 or coil.n_elements == 0:
        return jnp.zeros((n, 3))
    chunk = min(n, max(1, max_pairs // coil.n_elements))
    n_blocks = -(-n // chunk)
    padded = jnp.pad(points, ((0, n_blocks * chunk - n), (0, 0)), mode="edge")
    out = _dadt_blocks(matsimnibs, padded.reshape(n_blocks, chunk, 3),
                       *(jnp.asarray(a) for a in (coil.dipole_positions, coil.dipole_moments,
                                                  coil.segment_positions, coil.segment_vectors)),
                       jnp.asarray(didt, dtype=jnp.float64))
    return out.reshape(-1, 3)[:n]
