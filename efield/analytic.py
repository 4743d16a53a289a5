"""Analytic TMS E-field in a spherically symmetric conductor (reference for the FEM).

Heller & van Hulsteyn (1992), "Brain stimulation using electromagnetic sources:
theoretical aspects", Biophys. J. 63:129-138. By reciprocity, the component q.E(r)
induced at r by a magnetic dipole m at r0 equals -dI/dt times m.B_q(r0), where B_q is
the field outside the sphere of a current dipole q at r (Sarvas 1987, Phys. Med. Biol.
32:11-22). With the sphere centre as origin, a = r0 - r, a = |a|, r0 = |r0|:

    E(r) = -(mu0 / 4 pi) dI/dt / F^2 * [F (r x m) - (m . grad F) (r x r0)]
    F      = a (r0 a + r0.a)
    grad F = (a^2/r0 + a.r0/a + 2a + 2r0) r0_vec - (a + 2r0 + a.r0/a) r_vec

(grad F is taken with respect to the dipole position r0.) This is the total field,
-dA/dt plus the field of the surface/interface charges, and it holds for any radial
conductivity profile and any outer radius below |r0|: no conductivity or radius
enters. Its sign matches E = -dA/dt - grad(phi): for m parallel to r0 it equals the
primary field -dA/dt = (mu0/4 pi) dI/dt m x (r0 - r)/|r0 - r|^3 exactly.

The only divisions are by r0, a and F, all positive for a dipole outside the points'
sphere, so the centre r = 0 needs no special case: E(0) = 0 exactly (a current dipole
at the centre is radial and has no external magnetic field).
"""

import jax
import jax.numpy as jnp
import numpy as np

from .checks import x64

MU0_OVER_4PI = 1e-7  # T m / A
MAX_PAIRS_PER_CHUNK = 1 << 22  # bounds temporaries to a few hundred MB


@x64
def analytic_sphere_field(dipole_pos_mm, dipole_moment, didt, points_mm, centre_mm=(0, 0, 0), *,
                          dtype=np.float64):
    """Total E-field (V/m) at points inside a spherically symmetric conductor.

    dipole_pos_mm: (3,) or (k, 3) magnetic-dipole positions in mm, all outside the
        sphere about centre_mm through the farthest point.
    dipole_moment: (3,) or (k, 3) moments in A m^2 per A of coil current; the fields
        of the k dipoles are summed.
    didt: rate of change of the coil current in A/s.
    points_mm: (n, 3) field points in mm.
    centre_mm: (3,) sphere centre in mm.
    dtype: np.float64, or np.float32 for about 2.5x less time on a CPU (a coil's thousands
        of dipoles at a million points: tens of seconds); float32 loses digits to the
        cancellation in |r0 - r|^2, relative error about eps32 (|r0| / |r0 - r|)^2, 1e-4
        for points 3 mm from a dipole 100 mm from the centre.
    Returns a numpy (n, 3) float64 array. Formula: Heller & van Hulsteyn 1992 (module docstring).
    The result is the same for every radial conductivity profile and every outer radius
    between the farthest point and the nearest dipole, so neither is an argument.
    """
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        dtype = None
    if dtype not in (np.float64, np.float32):
        raise ValueError(f"dtype must be np.float64 or np.float32 (or their names), got {dtype!r}")
    r0, m, r = _validated(dipole_pos_mm, dipole_moment, points_mm, centre_mm)
    chunk = max(1, min(len(r), MAX_PAIRS_PER_CHUNK // len(r0)))
    n_chunks = -(-len(r) // chunk)
    padded = np.zeros((n_chunks * chunk, 3), dtype)   # one compiled shape for every chunk
    padded[: len(r)] = r
    r0, m = r0.astype(dtype), m.astype(dtype)
    parts = [np.asarray(_field_per_amp(r0, m, padded[i : i + chunk]), np.float64)
             for i in range(0, len(padded), chunk)]
    return float(didt) * (np.concatenate(parts)[: len(r)] if parts else np.zeros((0, 3)))


def _validated(dipole_pos_mm, dipole_moment, points_mm, centre_mm):
    """Check shapes and geometry; return dipoles, moments, points (metres, centred)."""
    r0 = _as_rows(dipole_pos_mm, "dipole_pos_mm")
    m = _as_rows(dipole_moment, "dipole_moment")
    if len(r0) != len(m):
        raise ValueError(f"dipole_pos_mm has {len(r0)} rows but dipole_moment has {len(m)}")
    points = np.asarray(points_mm, dtype=float)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"points_mm must have shape (n, 3), got {points.shape}")
    centre = np.asarray(centre_mm, dtype=float)
    if centre.shape != (3,):
        raise ValueError(f"centre_mm must have shape (3,), got {centre.shape}")
    r0 = (r0 - centre) * 1e-3
    r = (points - centre) * 1e-3
    if len(r) and np.linalg.norm(r0, axis=1).min() <= np.linalg.norm(r, axis=1).max():
        raise ValueError(
            "dipole_pos_mm: every dipole must lie outside the sphere (about centre_mm) "
            "that contains all points_mm"
        )
    return r0, m, r


def _as_rows(x, name):
    """(3,) or (k, 3) -> float (k, 3), k >= 1; ValueError naming the argument otherwise."""
    x = np.asarray(x, dtype=float)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2 or x.shape[1] != 3 or len(x) == 0:
        raise ValueError(f"{name} must have shape (3,) or (k, 3), got {np.shape(x)}")
    return x


@jax.jit
def _field_per_amp(r0, m, r):
    """E per unit dI/dt (V/m per A/s) at points r (n, 3) from dipoles r0, m (k, 3); SI.

    Since r x m and r x r0 share the factor r, E = -(mu0/4 pi) r x W with
    W = sum_k [m_k / F_k - (m_k . grad F_k) r0_k / F_k^2]; every pairwise quantity is a
    scalar built from the products r.r0_k and r.m_k, so the work is elementwise arithmetic
    on (n, k) and two matrix products. The products r.r0_k, r.m_k are written out over the
    3 coordinates: as (n, 3) x (3, k) matrix products they take longer than all the rest.
    """
    r0_len = jnp.linalg.norm(r0, axis=1)                # (k,)
    r_dot_r0 = _pairwise_dot(r, r0)                     # (n, k)
    r_dot_m = _pairwise_dot(r, m)
    m_dot_r0 = jnp.sum(m * r0, axis=1)
    a2 = jnp.sum(r * r, axis=1)[:, None] + r0_len**2 - 2 * r_dot_r0
    a = jnp.sqrt(a2)
    a_dot_r0 = r0_len**2 - r_dot_r0
    f = a * (r0_len * a + a_dot_r0)
    m_dot_grad_f = ((a2 / r0_len + a_dot_r0 / a + 2 * a + 2 * r0_len) * m_dot_r0
                    - (a + 2 * r0_len + a_dot_r0 / a) * r_dot_m)
    w = (1 / f) @ m - (m_dot_grad_f / f**2) @ r0        # (n, 3)
    return -MU0_OVER_4PI * jnp.cross(r, w)


def _pairwise_dot(a, b):
    """(n, k) dot products of the rows of a (n, 3) and b (k, 3)."""
    return a[:, :1] * b[:, 0] + a[:, 1:2] * b[:, 1] + a[:, 2:] * b[:, 2]
