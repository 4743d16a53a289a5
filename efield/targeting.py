"""Coil targeting: region-of-interest scores of coil placements by reciprocity.

The score of a placement is a linear functional of the E-field it induces,

    J(E) = sum_e V_e d . E_e / sum_e V_e      over the ROI's tetrahedra e,

the volume-weighted mean of the field component along a unit direction d (V/m). E is the
field FieldSolver reports (the recovered gradient by default), so J is linear in the nodal
primary field a_n = dA/dt(r_n): J = sum_n c_n . a_n. The weights c (n, 3) are the gradient
of J with respect to a, which costs one adjoint solve with the (symmetric) stiffness matrix.

With a_n = mu0/(4 pi) didt sum_k m_k x (r_n - r_k) / |r_n - r_k|^3 for coil dipoles m_k at
r_k, swapping the triple product gives

    J = didt sum_k m_k . H(r_k),   H(r) = mu0/(4 pi) sum_n c_n x (r - r_n) / |r - r_n|^3,

the "reciprocal field" of current elements c_n at the nodes, and likewise
J = didt sum_s dl_s . G(r_s), G(r) = mu0/(4 pi) sum_n c_n / |r - r_n|, for line segments
(this is the reciprocity that the auxiliary dipole method of Gomez et al. 2021,
NeuroImage 228:117696, rests on). H and G are computed once per head and target on a regular
grid covering every position the coil's elements can take for the placements searched; each
placement is then an interpolation at its elements: no FEM solve, jittable, differentiable.

The interpolation is tricubic Lagrange (4 x 4 x 4 nodes, exact for cubics, error O(h^4)):
with the 70 mm figure-8's dipoles 8-13 mm above the scalp and the default 4 mm grid the
scores agree with direct solves to about 1e-4. Grid nodes the search cannot reach hold NaN,
so a pose outside the precomputed region gives NaN, never a silently wrong score. Handle
angles that share a step are scored all at once from a polar lattice of the coil (efield.polar,
`score_turned`): the field is interpolated at the lattice's nodes once per coil centre, and
each angle adds one dot product.

Without a direction, the score is |mean E| = |(J_x, J_y, J_z)|, the magnitude of the ROI's
mean field vector (three adjoint solves). This is not the mean of |E| (not linear in E); it
equals it where the field is parallel across the ROI and is smaller where it turns.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from scipy.ndimage import binary_dilation

from .checks import x64
from .coil import Coil
from .mesh import TetMesh
from .polar import PolarCoil, angle_steps, polar_coil
from .geometry import resolve_point, surface_index
from .placement import DEFAULT_HANDLE, FALLBACK_HANDLE, Placement

_K = 1e-7
"""mu0 / (4 pi), T*m/A."""


# --- the target -------------------------------------------------------------------------

@dataclass(frozen=True)
class Target:
    """A region of interest and the field quantity scored there.

    centre: a point (3,) in mm or an EEG label of the mesh; radius_mm: the ROI is the
    tetrahedra of `tissues` (default grey matter, 2) whose barycentres lie within radius_mm
    of the centre; direction: a vector (3,) in head coordinates to score the mean field
    component along it (V/m, signed), or None for the magnitude of the mean field vector.
    """

    centre: object
    radius_mm: float = 10.0
    tissues: tuple = (2,)
    direction: object = None

    def __post_init__(self):
        if not (np.isfinite(self.radius_mm) and self.radius_mm > 0):
            raise ValueError(f"Target.radius_mm={self.radius_mm!r}: must be a positive length in mm")
        object.__setattr__(self, "tissues", tuple(int(t) for t in np.atleast_1d(self.tissues)))
        if self.direction is not None:
            d = np.asarray(self.direction, np.float64)
            if d.shape != (3,) or not np.isfinite(d).all() or np.linalg.norm(d) == 0:
                raise ValueError(f"Target.direction={self.direction!r}: expected a non-zero "
                                 "vector of 3 finite numbers, or None for the magnitude")
            object.__setattr__(self, "direction", tuple(d / np.linalg.norm(d)))

    @classmethod
    def at(cls, mesh: TetMesh, where, radius_mm: float = 10.0, tissues=(2,), direction=None) -> "Target":
        """A Target at `where`: a point (3 numbers, mm) as given, or an EEG label of the mesh,
        whose centre is then the barycentre of the `tissues` tetrahedron closest to the
        electrode (the region under it, not the scalp point). TypeError for anything else."""
        if isinstance(where, str):
            electrode = resolve_point(mesh, where, "target")
            inside = np.isin(mesh.tags, tissues)
            if not inside.any():
                raise ValueError(f"Target tissues {np.atleast_1d(tissues).tolist()}: none in the mesh "
                                 f"(it has {list(mesh.tissues)})")
            bary = mesh.barycenters[inside]
            centre = bary[np.argmin(np.linalg.norm(bary - electrode, axis=1))]
        else:
            try:
                shape = np.shape(np.asarray(where, np.float64))
            except (TypeError, ValueError):
                shape = None
            if shape != (3,):
                raise TypeError(f"target={where!r}: expected a Target, a point (3 numbers, mm) or an "
                                "EEG label such as 'C3'")
            centre = resolve_point(mesh, where, "target")
        return cls(tuple(centre.tolist()), radius_mm, tissues, direction)

    def centre_mm(self, mesh: TetMesh) -> np.ndarray:
        """The centre in mm (an EEG label is looked up on the mesh)."""
        return resolve_point(mesh, self.centre, "Target.centre")

    def weights(self, mesh: TetMesh) -> tuple[np.ndarray, np.ndarray]:
        """ROI tetrahedra (r,) and their weights V_e / sum V_e (r,); ValueError if empty."""
        centre = self.centre_mm(mesh)
        near = np.linalg.norm(mesh.barycenters - centre, axis=1) <= self.radius_mm
        index = np.flatnonzero(near & np.isin(mesh.tags, self.tissues))
        if index.size == 0:
            raise ValueError(f"Target: no tetrahedra of tissues {list(self.tissues)} within "
                             f"{self.radius_mm:g} mm of {np.round(centre, 1).tolist()} mm")
        volume = mesh.volumes[index]
        return index, volume / volume.sum()

    @property
    def axes(self) -> np.ndarray:
        """Directions whose mean components are needed, (q, 3): d, or the three axes."""
        return np.eye(3) if self.direction is None else np.asarray([self.direction])

    def combine(self, components):
        """Score from the mean components (..., q): the component, or the vector's norm."""
        if self.direction is None:
            return jnp.sqrt(jnp.sum(components * components, axis=-1))
        return components[..., 0]

    @x64
    def score_field(self, mesh: TetMesh, E) -> float:
        """The score (V/m) of a field E (m, 3) per tetrahedron, evaluated directly."""
        index, w = self.weights(mesh)
        mean = w @ np.asarray(E)[index]
        return float(self.combine(jnp.asarray(mean @ self.axes.T)))


# --- reciprocal fields on a grid --------------------------------------------------------

@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class ReciprocalGrid:
    """The reciprocal fields of a target on a regular grid, and the coil, ready to score.

    origin (3,) mm and spacing_mm: grid geometry; H (nx, ny, nz, 3q) per A*m^2 and G (same,
    or empty) per m of segment: the reciprocal fields of the q adjoint sources, float32, NaN
    outside the region the search can reach. The coil's elements are in the coil frame (mm
    for positions; moments in A*m^2 per A; segment vectors in m per A); didt in A/s.
    """

    origin: jax.Array
    H: jax.Array
    G: jax.Array
    dipole_positions: jax.Array
    dipole_moments: jax.Array
    segment_positions: jax.Array
    segment_vectors: jax.Array
    didt: jax.Array
    spacing_mm: float = field(metadata=dict(static=True))
    magnitude: bool = field(metadata=dict(static=True))

    @x64
    def components(self, matsimnibs) -> jax.Array:
        """Mean ROI field components (q,) V/m of the coil at a pose (4, 4) mm."""
        rotation, centre = matsimnibs[:3, :3], matsimnibs[:3, 3]
        out = _dot_field(self, self.H, self.dipole_positions @ rotation.T + centre,
                         self.dipole_moments @ rotation.T)
        if self.G.shape[0]:
            out = out + _dot_field(self, self.G, self.segment_positions @ rotation.T + centre,
                                   self.segment_vectors @ rotation.T)
        return self.didt * out

    @x64
    def score(self, matsimnibs) -> jax.Array:
        """The target score (V/m) of one pose (4, 4); differentiable."""
        c = self.components(matsimnibs)
        return jnp.sqrt(jnp.sum(c * c)) if self.magnitude else c[0]

    @x64
    def turned(self, angles_deg, **lattice) -> PolarCoil:
        """The coil on a polar lattice for scoring each pose at these handle angles (degrees)
        at once (`score_turned`); lattice: step sizes of `efield.polar.polar_coil`."""
        return polar_coil(np.asarray(self.dipole_positions), np.asarray(self.dipole_moments),
                          np.asarray(self.segment_positions), np.asarray(self.segment_vectors),
                          angles_deg, **lattice)


def _dot_field(grid: ReciprocalGrid, F, points_mm, vectors) -> jax.Array:
    """sum_k vectors_k . F(points_k) for each of the q fields stacked in F's last axis."""
    values = _tricubic(F, grid.origin, grid.spacing_mm, points_mm)          # (k, 3q)
    q = F.shape[-1] // 3
    return jnp.einsum("kjc,kc->j", values.reshape(-1, q, 3), vectors.astype(values.dtype))


def _lagrange_weights(t):
    """Cubic Lagrange weights (..., 4) at nodes -1, 0, 1, 2 for offsets t in [0, 1)."""
    return jnp.stack([-t * (t - 1) * (t - 2) / 6, (t + 1) * (t - 1) * (t - 2) / 2,
                      -(t + 1) * t * (t - 2) / 2, (t + 1) * t * (t - 1) / 6], axis=-1)


def _tricubic(F, origin, spacing, points_mm):
    """Tricubic Lagrange interpolation of F (nx, ny, nz, c) at points (k, 3) mm, (k, c).

    Points whose stencil leaves the grid get NaN.
    """
    shape = jnp.array(F.shape[:3])
    g = (points_mm - origin) / spacing
    cell = jnp.floor(g)
    w = _lagrange_weights((g - cell).astype(F.dtype))                       # (k, 3, 4)
    first = cell.astype(jnp.int32) - 1
    inside = jnp.all((first >= 0) & (first + 3 < shape), axis=1)
    first = jnp.clip(first, 0, shape - 4)
    flat = F.reshape(-1, F.shape[-1])
    offsets = jnp.arange(4)
    ix = first[:, 0, None] + offsets
    iy = first[:, 1, None] + offsets
    iz = first[:, 2, None] + offsets
    index = ((ix[:, :, None, None] * F.shape[1] + iy[:, None, :, None]) * F.shape[2]
             + iz[:, None, None, :]).reshape(-1, 64)
    weight = (w[:, 0, :, None, None] * w[:, 1, None, :, None] * w[:, 2, None, None, :]).reshape(-1, 64)
    values = jnp.einsum("ks,ksc->kc", weight, flat[index])
    return jnp.where(inside[:, None], values, jnp.nan)


@x64
def adjoint_sources(solver, target: Target) -> np.ndarray:
    """c (q, n, 3): the gradients of the target's mean components with respect to the nodal
    dA/dt (V/m), so that mean component j = sum_n c[j, n] . dA/dt_n. One adjoint solve each.

    Uses the solver's field (recovered or raw, as it reports), so scores match its results.
    """
    index, w = target.weights(solver.mesh)
    w, axes = jnp.asarray(w), jnp.asarray(target.axes)

    def mean_components(dadt):
        E = solver.fields(dadt[None])[0][0]
        return axes @ (w @ E[index])

    zero = jnp.zeros((solver.mesh.n_nodes, 3))
    _, pullback = jax.vjp(mean_components, zero)
    return np.stack([np.asarray(pullback(jnp.eye(len(axes))[j])[0]) for j in range(len(axes))])


@x64
def reciprocal_fields(nodes_mm, sources, points_mm, segments: bool, pairs: int = 2 ** 25):
    """H (p, 3q) per A*m^2 and G (p, 3q) per m (or None) at points (p, 3) mm of the nodal
    sources (q, n, 3) at nodes (n, 3) mm; coordinates are centred on the points' mean.
    Points go in blocks of about `pairs` point-node pairs (a few float64 arrays that size)."""
    chunk = int(np.clip(pairs // max(len(nodes_mm), 1), 16, 2048))
    shift = np.asarray(points_mm).mean(axis=0)
    nodes = jnp.asarray((np.asarray(nodes_mm) - shift) * 1e-3)
    q = sources.shape[0]
    c = jnp.asarray(np.moveaxis(sources, 0, 1).reshape(-1, 3 * q))        # (n, 3q)
    c_cross = jnp.cross(c.reshape(-1, q, 3), nodes[:, None]).reshape(-1, 3 * q)
    points = (np.asarray(points_mm) - shift) * 1e-3
    n_blocks = -(-len(points) // chunk)
    padded = np.pad(points, ((0, n_blocks * chunk - len(points)), (0, 0)), mode="edge")
    H, G = _reciprocal_blocks(jnp.asarray(padded.reshape(n_blocks, chunk, 3)), nodes, c, c_cross,
                              segments)
    H = np.asarray(H).reshape(-1, 3 * q)[:len(points)]
    return H, (np.asarray(G).reshape(-1, 3 * q)[:len(points)] if segments else None)


@partial(jax.jit, static_argnums=4)
def _reciprocal_blocks(blocks, nodes, c, c_cross, segments):
    """H = K sum_n c_n x (r - r_n)/|r - r_n|^3 = K [(W c) x r - W (c x r_n)], W = 1/|.|^3,
    and G = K sum_n c_n/|r - r_n|, per block of points (m); both (b, chunk, 3q)."""
    q = c.shape[1] // 3

    def block(points):
        r2 = (jnp.sum(points * points, axis=1)[:, None] + jnp.sum(nodes * nodes, axis=1)[None]
              - 2.0 * points @ nodes.T)
        inv_r = jax.lax.rsqrt(r2)
        inv_r3 = inv_r * inv_r * inv_r
        Wc = (inv_r3 @ c).reshape(-1, q, 3)
        H = _K * (jnp.cross(Wc, points[:, None]).reshape(-1, 3 * q) - inv_r3 @ c_cross)
        G = _K * (inv_r @ c) if segments else jnp.zeros((points.shape[0], 0))
        return H, G

    return jax.lax.map(block, blocks)


# --- the scalp patch searched -----------------------------------------------------------

@dataclass(frozen=True)
class ScalpPatch:
    """A smooth fit of the scalp around a point, and the coil poses it parametrises.

    Local frame: origin (3,) mm on the scalp, e1, e2 tangent, e3 the outward normal; the
    scalp is the height h(u, v) = sum coeffs_ij u^i v^j (degree <= 4, least squares over
    the scalp nodes within fit_radius_mm) above the tangent plane. A pose (u, v, angle) puts
    the coil centre distance_mm outside the fitted scalp point above (u, v) mm, z along minus
    the fitted normal and the handle at `angle` (rad) from the reference handle direction
    (its projection perpendicular to z), turning about the coil's z axis (see `pose`).
    All functions are smooth in (u, v, angle) and jittable.
    """

    origin: np.ndarray
    frame: np.ndarray              # (3, 3): rows e1, e2, e3
    coeffs: np.ndarray             # (15,) for the monomials of `_MONOMIALS`
    handle_reference: np.ndarray   # (3,) unit vector
    distance_mm: float
    fit_rms_mm: float

    def height(self, u, v):
        """Fitted scalp height above the tangent plane at (u, v), mm."""
        return sum(c * u ** i * v ** j for c, (i, j) in zip(self.coeffs, _MONOMIALS))

    @x64
    def scalp_point(self, u, v):
        """The fitted scalp point (3,) mm above tangent-plane offsets (u, v) mm."""
        e1, e2, e3 = (jnp.asarray(e) for e in self.frame)
        return jnp.asarray(self.origin) + u * e1 + v * e2 + self.height(u, v) * e3

    @x64
    def pose(self, u, v, angle):
        """matsimnibs (4, 4) of the pose (u mm, v mm, angle rad); differentiable.

        y(angle) = cos(angle) y0 + sin(angle) x0, where y0 is the reference handle made
        perpendicular to z and x0 = y0 x z: the handle turns by `angle` about the coil's z.
        """
        e1, e2, e3 = (jnp.asarray(e) for e in self.frame)
        hu, hv = jax.grad(self.height, argnums=(0, 1))(u, v)
        normal = e3 - hu * e1 - hv * e2
        z = -normal / jnp.linalg.norm(normal)
        ref = jnp.asarray(self.handle_reference)
        y0 = ref - (ref @ z) * z
        y0 = y0 / jnp.linalg.norm(y0)
        x0 = jnp.cross(y0, z)
        y = jnp.cos(angle) * y0 + jnp.sin(angle) * x0
        x = jnp.cross(y, z)
        centre = self.scalp_point(u, v) - self.distance_mm * z
        top = jnp.stack([x, y, z, centre], axis=1)
        return jnp.concatenate([top, jnp.array([[0.0, 0.0, 0.0, 1.0]])], axis=0)


_MONOMIALS = [(i, d - i) for d in range(5) for i in range(d + 1)]


def scalp_patch(mesh: TetMesh, point, radius_mm: float, distance_mm: float = 4.0,
                handle=None) -> ScalpPatch:
    """The scalp around the outer-surface point closest to `point` (mm or EEG label), fitted
    over the scalp nodes within radius_mm of it (facing outward); handle: a point (mm or
    label) the reference handle points towards, else posterior as in Placement.on_scalp."""
    surface = surface_index(mesh)
    target = resolve_point(mesh, point, "search centre")
    origin = surface.closest(target[None])[0][0]
    e3 = surface.mean_normal(origin, 5.0)
    if handle is None:
        ref = DEFAULT_HANDLE if np.linalg.norm(np.cross(DEFAULT_HANDLE, e3)) > 0.3 else FALLBACK_HANDLE
    else:
        ref = resolve_point(mesh, handle, "handle") - origin
    e1 = np.cross(ref, e3)
    if np.linalg.norm(e1) < 1e-6:
        raise ValueError("handle lies along the scalp normal; it cannot define the handle direction")
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(e3, e1)
    nodes, tris = mesh.outer_surface
    rel = (nodes - origin) @ np.stack([e1, e2, e3]).T
    normals = _vertex_normals(nodes, tris)
    near = (np.hypot(rel[:, 0], rel[:, 1]) <= radius_mm) & (normals @ e3 > 0.3)
    if near.sum() < 2 * len(_MONOMIALS):
        raise ValueError(f"only {near.sum()} scalp nodes within {radius_mm:g} mm of the search "
                         "centre: the mesh is too coarse for this search radius")
    u, v, h = rel[near].T
    A = np.stack([u ** i * v ** j for i, j in _MONOMIALS], axis=1)
    coeffs = np.linalg.lstsq(A, h, rcond=None)[0]
    rms = float(np.sqrt(np.mean((A @ coeffs - h) ** 2)))
    return ScalpPatch(origin, np.stack([e1, e2, e3]), coeffs, ref / np.linalg.norm(ref),
                      float(distance_mm), rms)


def _vertex_normals(nodes, tris):
    """Area-weighted unit outward normals at the surface nodes."""
    corners = nodes[tris]
    area_normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    out = np.zeros_like(nodes)
    for i in range(3):
        np.add.at(out, tris[:, i], area_normals)
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-300)


# --- candidates ---------------------------------------------------------------------------

def candidate_offsets(search_radius_mm: float = 20.0, spacing_mm: float = 5.0) -> np.ndarray:
    """Tangent-plane offsets (p, 2) mm: a square lattice of `spacing_mm` within the radius."""
    if not spacing_mm > 0 or not search_radius_mm >= 0:
        raise ValueError(f"spacing_mm={spacing_mm!r}, search_radius_mm={search_radius_mm!r}: "
                         "need a positive spacing and a non-negative radius")
    n = int(math.floor(search_radius_mm / spacing_mm + 1e-9))
    u, v = np.meshgrid(np.arange(-n, n + 1) * spacing_mm, np.arange(-n, n + 1) * spacing_mm,
                       indexing="ij")
    keep = u ** 2 + v ** 2 <= search_radius_mm ** 2 * (1 + 1e-9)
    return np.stack([u[keep], v[keep]], axis=1)


def candidate_angles(angle_step_deg: float = 30.0) -> np.ndarray:
    """Handle angles (a,) in degrees: 0, step, ... below 360."""
    if not 0 < angle_step_deg <= 360:
        raise ValueError(f"angle_step_deg={angle_step_deg!r}: must be in (0, 360]")
    return np.arange(0.0, 360.0 - 1e-9, angle_step_deg)


@jax.jit
def _poses(patch_arrays, offsets, angles_rad):
    """matsimnibs (p, a, 4, 4) of every offset and angle."""
    patch = _unpack(patch_arrays)
    one = lambda uv, t: patch.pose(uv[0], uv[1], t)  # noqa: E731
    return jax.vmap(lambda uv: jax.vmap(lambda t: one(uv, t))(angles_rad))(offsets)


def _pack(patch: ScalpPatch):
    return (patch.origin, patch.frame, patch.coeffs, patch.handle_reference,
            patch.distance_mm, patch.fit_rms_mm)


def _unpack(arrays) -> ScalpPatch:
    return ScalpPatch(*arrays)


@x64
def candidate_poses(patch: ScalpPatch, offsets_mm, angles_deg) -> np.ndarray:
    """matsimnibs (p, a, 4, 4) for every candidate offset (p, 2) mm and angle (a,) degrees."""
    return np.asarray(_poses(_pack(patch), jnp.asarray(offsets_mm, jnp.float64),
                             jnp.radians(jnp.asarray(angles_deg, jnp.float64))))


# --- building the grid --------------------------------------------------------------------

@x64
def reciprocal_grid(solver, coil: Coil, target: Target, patch: ScalpPatch, search_radius_mm: float,
                    didt: float = 1e6, spacing_mm: float = 4.0) -> ReciprocalGrid:
    """The reciprocal fields of `target` on a grid covering every position that the coil's
    elements take for poses of `patch` with offsets within search_radius_mm, any angle."""
    sources = adjoint_sources(solver, target)
    points = _element_cloud(coil, patch, search_radius_mm, spacing_mm)
    origin = points.min(axis=0) - 3 * spacing_mm
    shape = tuple(np.ceil((points.max(axis=0) + 3 * spacing_mm - origin) / spacing_mm).astype(int) + 1)
    mask = np.zeros(shape, bool)
    cells = np.floor((points - origin) / spacing_mm).astype(int)
    mask[tuple(cells.T)] = True
    mask = binary_dilation(mask, np.ones((3, 3, 3), bool), iterations=2)
    where = np.argwhere(mask)
    segments = len(coil.segment_positions) > 0
    H, G = reciprocal_fields(solver.mesh.nodes, sources, origin + where * spacing_mm, segments)
    q = sources.shape[0]

    def fill(values):
        grid = np.full(shape + (3 * q,), np.nan, np.float32)
        grid[tuple(where.T)] = values
        return jnp.asarray(grid)

    return ReciprocalGrid(
        jnp.asarray(origin), fill(H), fill(G) if segments else jnp.zeros((0, 0, 0, 3 * q), jnp.float32),
        jnp.asarray(coil.dipole_positions), jnp.asarray(coil.dipole_moments),
        jnp.asarray(coil.segment_positions), jnp.asarray(coil.segment_vectors * 1e-3),
        jnp.asarray(float(didt)), float(spacing_mm), target.direction is None)


def _element_cloud(coil: Coil, patch: ScalpPatch, search_radius_mm: float, step_mm: float):
    """Points (p, 3) mm sampling the region the coil's elements sweep: a coil-frame lattice
    of step_mm over the disc and depth range of the elements, at poses on a step_mm lattice
    of offsets (to the search radius plus one step); rotating the coil about z leaves the
    disc in place, so one angle suffices."""
    elements = np.vstack([coil.dipole_positions, coil.segment_positions])
    rho = np.linalg.norm(elements[:, :2], axis=1).max() + step_mm
    z = np.arange(elements[:, 2].min() - step_mm, elements[:, 2].max() + 1.5 * step_mm, step_mm)
    xy = candidate_offsets(rho, step_mm)
    disc = np.concatenate([np.column_stack([xy, np.full(len(xy), zi)]) for zi in z])
    poses = candidate_poses(patch, candidate_offsets(search_radius_mm + step_mm, step_mm), [0.0])[:, 0]
    return (np.einsum("pij,kj->pki", poses[:, :3, :3], disc) + poses[:, None, :3, 3]).reshape(-1, 3)


# --- the search ---------------------------------------------------------------------------

@dataclass(frozen=True)
class TargetingResult:
    """Outcome of `optimize_placement`.

    placement: the best pose found; score: its reciprocity score (V/m); direct_score: the
    score of a full FEM solve at that pose (None if not verified). Score map: offsets_mm
    (p, 2) tangent-plane offsets, centres_mm (p, 3) scalp points, angles_deg (a,),
    scores (p, a) V/m. grid_best: (offset index, angle index) of the best candidate,
    grid_score its score; refined: whether gradient ascent improved on it (then
    refined_offset_mm and refined_angle_deg give its pose). n_grid_evaluations,
    n_refine_evaluations: scores (and score+gradient pairs) computed. timings_s by stage.
    """

    placement: Placement
    score: float
    direct_score: float | None
    offsets_mm: np.ndarray
    centres_mm: np.ndarray
    angles_deg: np.ndarray
    scores: np.ndarray
    grid_best: tuple
    grid_score: float
    refined_offset_mm: tuple
    refined_angle_deg: float
    n_grid_evaluations: int
    n_refine_evaluations: int
    timings_s: dict
    target: Target
    patch: ScalpPatch

    def summary(self) -> dict:
        """Plain numbers for a JSON summary."""
        return {"score_V_per_m": self.score, "direct_score_V_per_m": self.direct_score,
                "grid_score_V_per_m": self.grid_score, "matsimnibs": self.placement.matsimnibs.tolist(),
                "grid_best_centre_mm": self.centres_mm[self.grid_best[0]].tolist(),
                "grid_best_angle_deg": float(self.angles_deg[self.grid_best[1]]),
                "refined_offset_mm": list(self.refined_offset_mm),
                "refined_angle_deg": self.refined_angle_deg,
                "n_candidates": int(self.scores.size), "n_grid_evaluations": self.n_grid_evaluations,
                "n_refine_evaluations": self.n_refine_evaluations,
                "scalp_fit_rms_mm": self.patch.fit_rms_mm, "timings_s": self.timings_s,
                "target": {"centre": np.asarray(self.target.centre).tolist()
                           if not isinstance(self.target.centre, str) else self.target.centre,
                           "radius_mm": self.target.radius_mm, "tissues": list(self.target.tissues),
                           "direction": None if self.target.direction is None
                           else [float(x) for x in self.target.direction],
                           "score": "mean E.d" if self.target.direction else "|mean E|"}}


@x64
@partial(jax.jit, static_argnames="batch")
def score_poses(grid: ReciprocalGrid, matsimnibs, batch: int = 64) -> jax.Array:
    """Scores (k,) V/m of poses (k, 4, 4), `batch` at a time (memory stays bounded)."""
    k = matsimnibs.shape[0]
    pad = -k % batch
    m = jnp.concatenate([matsimnibs, jnp.broadcast_to(matsimnibs[-1:], (pad, 4, 4))])
    out = jax.lax.map(jax.vmap(grid.score), m.reshape(-1, batch, 4, 4))
    return out.reshape(-1)[:k]


@x64
@partial(jax.jit, static_argnames="batch")
def score_turned(grid: ReciprocalGrid, polar: PolarCoil, base_poses, batch: int = 16) -> jax.Array:
    """Scores (p, a) V/m of each pose (p, 4, 4), taken as handle angle 0, turned by each of
    `polar`'s angles about its z axis (see efield.polar); `batch` poses at a time."""
    def one(pose):
        rotation, centre = pose[:3, :3], pose[:3, 3]
        points = polar.nodes_mm @ rotation.T + centre
        out = _turned_dot(grid, grid.H, polar.WH, points, rotation)
        if grid.G.shape[0]:
            out = out + _turned_dot(grid, grid.G, polar.WG, points, rotation)
        c = grid.didt * out                                                 # (a, q)
        return jnp.sqrt(jnp.sum(c * c, axis=-1)) if grid.magnitude else c[:, 0]

    k = base_poses.shape[0]
    pad = -k % batch
    m = jnp.concatenate([base_poses, jnp.broadcast_to(base_poses[-1:], (pad, 4, 4))])
    out = jax.lax.map(jax.vmap(one), m.reshape(-1, batch, 4, 4))
    return out.reshape(k + pad, -1)[:k]


@x64
def score_candidates(grid: ReciprocalGrid, patch: ScalpPatch, offsets_mm, angles_deg) -> np.ndarray:
    """Scores (p, a) V/m of every candidate offset (p, 2) mm and handle angle (a,) degrees:
    all angles at once on the polar lattice (`score_turned`) when the angles share a step
    and the lattice has fewer nodes than the poses have elements, else pose by pose."""
    if angle_steps(angles_deg) is not None:
        polar = grid.turned(angles_deg)
        n_elements = grid.dipole_positions.shape[0] + grid.segment_positions.shape[0]
        if polar.nodes_mm.shape[0] < len(angles_deg) * n_elements:
            base = jnp.asarray(candidate_poses(patch, offsets_mm, [0.0])[:, 0])
            return np.asarray(score_turned(grid, polar, base))
    poses = candidate_poses(patch, offsets_mm, angles_deg).reshape(-1, 4, 4)
    return np.asarray(score_poses(grid, jnp.asarray(poses))).reshape(len(offsets_mm), len(angles_deg))


def _turned_dot(grid: ReciprocalGrid, F, W, points_mm, rotation) -> jax.Array:
    """(a, q): sum over lattice nodes of W (a, n, 3) . h, h = rotation^T F at the nodes."""
    values = _tricubic(F, grid.origin, grid.spacing_mm, points_mm)          # (n, 3q)
    q = F.shape[-1] // 3
    h = values.reshape(-1, q, 3) @ rotation.astype(values.dtype)           # (n, q, 3)
    return jnp.einsum("anj,nqj->aq", W.astype(values.dtype), h)


@x64
def refine(grid: ReciprocalGrid, patch: ScalpPatch, start, search_radius_mm: float,
           steps: int = 40, step_mm: float = 1.0, step_rad: float = 0.03):
    """Gradient ascent (Adam, step sizes step_mm for the offsets and step_rad for the angle)
    on the score over poses (u, v, angle) of `patch`, from start = (u, v, angle rad), the
    offset kept within the search radius. Returns the best (u, v, angle), its score and the
    number of score-and-gradient evaluations."""
    # the grid is an argument, not a constant of the compiled program (its fields are large)
    score_and_gradient = jax.jit(jax.value_and_grad(lambda p, grid: grid.score(patch.pose(p[0], p[1], p[2]))))
    value_and_grad = lambda p: score_and_gradient(p, grid)
    scale = jnp.array([step_mm, step_mm, step_rad])
    p = jnp.asarray(start, jnp.float64)
    m = jnp.zeros(3)
    s = jnp.zeros(3)
    best, best_p = -jnp.inf, p
    b1, b2 = 0.9, 0.999
    for i in range(1, steps + 1):
        value, g = value_and_grad(p)
        if value > best:
            best, best_p = value, p
        m = b1 * m + (1 - b1) * g
        s = b2 * s + (1 - b2) * g * g
        step = scale * (m / (1 - b1 ** i)) / (jnp.sqrt(s / (1 - b2 ** i)) + 1e-12)
        p = _clip_offset(p + step, search_radius_mm)
    value, _ = value_and_grad(p)
    if value > best:
        best, best_p = value, p
    return np.asarray(best_p), float(best), steps + 1


def _clip_offset(p, radius):
    """Keep the tangent-plane offset p[:2] within the search radius."""
    r = jnp.linalg.norm(p[:2])
    factor = jnp.where(r > radius, radius / jnp.maximum(r, 1e-300), 1.0)
    return p.at[:2].multiply(factor)


def _checked(name: str, value, allowed: str, ok) -> float:
    """value as a float if it is finite and ok(value); else TypeError or ValueError naming it."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name}={value!r}: expected a finite number {allowed}") from None
    if not (math.isfinite(number) and ok(number)):
        raise ValueError(f"{name}={value!r}: must be a finite number {allowed}")
    return number


@x64
def optimize_placement(mesh: TetMesh, coil: Coil, target, *, search_centre=None,
                       search_radius_mm: float = 20.0, spacing_mm: float = 5.0,
                       angle_step_deg: float = 30.0, distance_mm: float = 4.0, didt: float = 1e6,
                       handle=None, solver=None, conductivity=None, grid_spacing_mm: float = 4.0,
                       refine_steps: int = 40, verify: bool = True) -> TargetingResult:
    """The coil placement that maximises the target's score, by reciprocity.

    target: a Target, or a point (3 numbers, mm) or EEG label for `Target.at`'s default region.
    Candidates: tangent-plane offsets on a spacing_mm lattice within search_radius_mm around
    the scalp point closest to search_centre (default: the target's centre), each with handle
    angles every angle_step_deg from the reference handle (`handle`, a point or label the
    handle points towards; default posterior), the coil distance_mm outside the scalp
    (SimNIBS's defaults: 20 mm, 5 mm, 30 degrees). Every candidate is scored from one
    precomputed reciprocal grid (`reciprocal_grid`; all angles of an offset at once,
    `score_candidates`); then gradient ascent (`refine`,
    refine_steps; 0 skips it) starts at the best candidate. With `verify`, the best pose is
    solved once with the FEM and direct_score reported. solver: a FieldSolver of `mesh` to
    reuse (else one is set up with `conductivity`). didt in A/s; scores in V/m.
    """
    from .solver import FieldSolver

    search_radius_mm = _checked("search_radius_mm", search_radius_mm, ">= 0 mm", lambda x: x >= 0)
    spacing_mm = _checked("spacing_mm", spacing_mm, "> 0 mm", lambda x: x > 0)
    angle_step_deg = _checked("angle_step_deg", angle_step_deg, "in (0, 360] degrees", lambda x: 0 < x <= 360)
    distance_mm = _checked("distance_mm", distance_mm, ">= 0 mm (coil bottom to scalp)", lambda x: x >= 0)
    didt = _checked("didt", didt, "!= 0 A/s", lambda x: x != 0)
    grid_spacing_mm = _checked("grid_spacing_mm", grid_spacing_mm, "> 0 mm", lambda x: x > 0)
    if not isinstance(target, Target):
        target = Target.at(mesh, target)
    timings = {}
    t0 = time.perf_counter()
    solver = solver or FieldSolver(mesh, conductivity)
    patch = scalp_patch(mesh, target.centre if search_centre is None else search_centre,
                        search_radius_mm + 2 * spacing_mm + 5.0, distance_mm, handle)
    timings["setup"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    grid = reciprocal_grid(solver, coil, target, patch, search_radius_mm, didt, grid_spacing_mm)
    timings["precompute"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    offsets, angles = candidate_offsets(search_radius_mm, spacing_mm), candidate_angles(angle_step_deg)
    scores = score_candidates(grid, patch, offsets, angles)
    if not np.isfinite(scores).all():
        raise RuntimeError("some candidate poses fall outside the precomputed reciprocal grid")
    i, j = np.unravel_index(int(np.argmax(scores)), scores.shape)
    timings["grid_search"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    best_p = np.array([*offsets[i], np.radians(angles[j])])
    best = float(scores[i, j])
    n_refine = 0
    if refine_steps > 0:
        p, value, n_refine = refine(grid, patch, best_p, search_radius_mm, refine_steps)
        if value > best:
            best_p, best = p, value
    timings["refine"] = time.perf_counter() - t0
    placement = Placement(np.asarray(patch.pose(*(jnp.asarray(x) for x in best_p))))
    direct = None
    if verify:
        t0 = time.perf_counter()
        E = solver.solve(coil, [placement], didt, progress=False)[0].E
        direct = target.score_field(mesh, E)
        timings["verify"] = time.perf_counter() - t0
    centres = np.asarray(jax.vmap(patch.scalp_point)(jnp.asarray(offsets[:, 0]), jnp.asarray(offsets[:, 1])))
    return TargetingResult(placement, best, direct, offsets, centres, angles, scores, (int(i), int(j)),
                           float(scores[i, j]), (float(best_p[0]), float(best_p[1])),
                           float(np.degrees(best_p[2]) % 360.0), int(scores.size), n_refine,
                           timings, target, patch)
