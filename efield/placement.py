"""Coil placement on the head: the SimNIBS ``matsimnibs`` matrix and scalp geometry.

matsimnibs is a 4x4 affine whose columns are the coil's x, y and z axes and its centre in
head coordinates (mm): z points into the head, y along the handle, x = y cross z.
"""

from __future__ import annotations

import warnings
import weakref
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from .checks import finite_number
from .coil import Coil
from .mesh import TISSUE_NAMES, TetMesh

SCALP = 5
"""SimNIBS tissue tag of the scalp, on which `Placement.on_scalp` expects to place the coil."""

ORTHONORMAL_TOL = 1e-6
"""Tolerance on R^T R = I for the rotation part of matsimnibs and on its last row."""

DEFAULT_HANDLE = np.array([0.0, -1.0, 0.0])
"""Handle direction when none is given: posterior (-y of the head frame) ..."""
FALLBACK_HANDLE = np.array([0.0, 0.0, 1.0])
"""... or superior (+z) where posterior is within about 17 degrees of the scalp normal."""


def transform_elements(matsimnibs, positions_mm, vectors):
    """Coil-frame element positions (k, 3) mm and vectors (k, 3) in head coordinates.

    Positions are rotated and translated, vectors (moments, segment vectors) only rotated.
    Works on NumPy and JAX arrays alike (differentiable with respect to matsimnibs).
    """
    rotation = matsimnibs[:3, :3]
    return positions_mm @ rotation.T + matsimnibs[:3, 3], vectors @ rotation.T


@dataclass(frozen=True, eq=False)
class Placement:
    """A coil pose: matsimnibs, a read-only (4, 4) float64 array (mm)."""

    matsimnibs: np.ndarray

    def __post_init__(self):
        try:
            m = np.array(self.matsimnibs, dtype=np.float64, copy=True)
        except (TypeError, ValueError):
            raise TypeError(f"matsimnibs must be a 4x4 matrix of numbers, got {self.matsimnibs!r}") from None
        _check_matsimnibs(m)
        m.flags.writeable = False
        object.__setattr__(self, "matsimnibs", m)

    def __repr__(self):
        c, y = self.centre_mm, self.y_axis
        return (f"Placement(centre=[{c[0]:.1f}, {c[1]:.1f}, {c[2]:.1f}] mm, "
                f"handle=[{y[0]:.2f}, {y[1]:.2f}, {y[2]:.2f}])")

    @property
    def centre_mm(self) -> np.ndarray:
        """The coil centre (the casing's bottom centre) in head coordinates, (3,) mm."""
        return self.matsimnibs[:3, 3]

    @property
    def x_axis(self) -> np.ndarray:
        """The coil's x axis in head coordinates (unit vector)."""
        return self.matsimnibs[:3, 0]

    @property
    def y_axis(self) -> np.ndarray:
        """The handle direction."""
        return self.matsimnibs[:3, 1]

    @property
    def z_axis(self) -> np.ndarray:
        """Points into the head."""
        return self.matsimnibs[:3, 2]

    def apply(self, coil: Coil) -> Coil:
        """The coil with its elements in head coordinates (mm)."""
        dip_pos, dip_mom = transform_elements(self.matsimnibs, coil.dipole_positions,
                                              coil.dipole_moments)
        seg_pos, seg_vec = transform_elements(self.matsimnibs, coil.segment_positions,
                                              coil.segment_vectors)
        return Coil(dip_pos, dip_mom, seg_pos, seg_vec, coil.didt_max, coil.name, coil.header)

    @classmethod
    def on_scalp(cls, mesh: TetMesh, centre, handle=None, distance_mm: float = 4.0,
                 normal_radius_mm: float = 5.0) -> "Placement":
        """Place the coil over the scalp point closest to `centre`, like SimNIBS.

        centre: a point (mm) near the scalp, or an EEG label such as "F3" (looked up in
        mesh.eeg_positions, without regard to case); it is projected to the closest point of
        the mesh's outer surface. z is minus the area-weighted outward normal of the surface
        triangles within normal_radius_mm of that point. handle: a point (mm) the handle points
        towards (SimNIBS pos_ydir), or an EEG label: y is handle - centre made perpendicular to z. Without a
        handle, y points posterior (-y of the head), or superior (+z) where posterior is
        nearly normal to the scalp. The coil centre lies distance_mm (finite, >= 0) outside the
        scalp. Where the outer surface there is not scalp (tag 5), for instance on a mesh
        without scalp, it warns and names the tissue the coil is placed on.
        """
        if not isinstance(mesh, TetMesh):
            raise TypeError(f"mesh must be an efield.TetMesh, got {type(mesh).__name__}")
        distance_mm = finite_number(distance_mm, "distance_mm", 0.0, unit="mm")
        normal_radius_mm = finite_number(normal_radius_mm, "normal_radius_mm", 0.0, strict=True, unit="mm")
        centre = _point(mesh, centre, "centre")
        surface = _surface(mesh)
        scalp, _, _ = surface.closest(centre[None])
        scalp = scalp[0]
        tissue = int(mesh.outer_surface_tags[surface.tree.query(scalp)[1]])
        if tissue != SCALP:
            missing = "" if SCALP in mesh.tissues else "the mesh has no scalp (tag 5), so "
            warnings.warn(f"Placement.on_scalp: {missing}the coil is placed {distance_mm:g} mm outside "
                          f"the mesh's outer surface, which there is {TISSUE_NAMES.get(tissue, 'tissue')} "
                          f"(tag {tissue}), not scalp (tag 5)", UserWarning, stacklevel=2)
        z = -surface.mean_normal(scalp, normal_radius_mm)
        y = _handle_axis(centre, None if handle is None else _point(mesh, handle, "handle"), z)
        m = np.eye(4)
        m[:3, 0], m[:3, 1], m[:3, 2] = np.cross(y, z), y, z
        m[:3, 3] = scalp - distance_mm * z
        return cls(m)


def check_clearance(mesh: TetMesh, coil: Coil, placement) -> float:
    """Raise ValueError if any coil element lies inside the head's outer surface.

    placement: a Placement or a matsimnibs matrix. Checks dipole positions and segment
    midpoints. Returns the smallest distance (mm) from an element to the scalp when all are
    outside.
    """
    if not isinstance(mesh, TetMesh):
        raise TypeError(f"mesh must be an efield.TetMesh, got {type(mesh).__name__}")
    if not isinstance(coil, Coil):
        raise TypeError(f"coil must be an efield.Coil, got {type(coil).__name__}")
    if not isinstance(placement, Placement):
        placement = Placement(placement)
    head = placement.apply(coil)
    points = np.vstack([head.dipole_positions, head.segment_positions])
    if len(points) == 0:
        raise ValueError(f"{coil!r} has no elements")
    surface = _surface(mesh)
    points = points[_may_matter(mesh, surface, points)]
    distance = surface.signed_distance(points)
    inside = distance < 0
    if inside.any():
        depth = -distance.min()
        centre = surface.signed_distance(placement.centre_mm[None])[0]
        raise ValueError(
            f"{inside.sum()} of {len(points)} elements of {coil.name!r} lie inside the head, "
            f"the deepest {depth:.2f} mm below the scalp; the coil centre is {centre:+.2f} mm "
            f"from the scalp (positive outside), so a distance_mm of at least about "
            f"{centre + depth:.2f} is needed")
    return float(distance.min())


# --- input checks -----------------------------------------------------------------------

def _check_matsimnibs(m: np.ndarray) -> None:
    if m.shape != (4, 4):
        raise ValueError(f"matsimnibs must be 4x4, got shape {m.shape}")
    if not np.isfinite(m).all():
        raise ValueError("matsimnibs contains NaN or infinite values")
    if np.abs(m[3] - [0.0, 0.0, 0.0, 1.0]).max() > ORTHONORMAL_TOL:
        raise ValueError(f"matsimnibs' last row must be [0, 0, 0, 1], got {m[3].tolist()}")
    rotation = m[:3, :3]
    error = np.abs(rotation.T @ rotation - np.eye(3)).max()
    if error > ORTHONORMAL_TOL:
        raise ValueError(f"matsimnibs' axes (columns 0-2) are not orthonormal "
                         f"(max |R^T R - I| = {error:.2e})")
    if np.linalg.det(rotation) < 0:
        raise ValueError("matsimnibs' axes are left-handed (det = -1); need x = y cross z")


def _point(mesh: TetMesh, value, what: str) -> np.ndarray:
    """A point in mm: coordinates as given, or the position of an EEG label on the mesh."""
    if isinstance(value, str):
        try:
            return mesh.eeg_position(value)
        except ValueError as err:
            raise ValueError(f"{what}: {err}") from None
    try:
        p = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        p = None
    if p is None or p.shape != (3,) or not np.isfinite(p).all():
        raise ValueError(f"{what} must be 3 finite coordinates in mm or an EEG label, got {value!r}")
    return p


def _handle_axis(centre: np.ndarray, handle: np.ndarray | None, z: np.ndarray) -> np.ndarray:
    """Unit y: the handle direction made perpendicular to z."""
    if handle is None:
        direction = DEFAULT_HANDLE
        if np.linalg.norm(direction - (direction @ z) * z) < 0.3:
            direction = FALLBACK_HANDLE
    else:
        direction = handle - centre
        if np.linalg.norm(direction) < 1e-9:
            raise ValueError("handle coincides with centre; it must be a point the handle "
                             "points towards")
        direction = direction / np.linalg.norm(direction)
    y = direction - (direction @ z) * z
    if np.linalg.norm(y) < 1e-2:
        raise ValueError("handle lies (nearly) along the scalp normal through the centre; "
                         "it cannot define the handle direction")
    return y / np.linalg.norm(y)


# --- outer surface geometry -------------------------------------------------------------

_TIE = 1e-9
"""Relative tolerance for triangles tied at the closest distance."""

def _may_matter(mesh: TetMesh, surface: "_Surface", points: np.ndarray) -> np.ndarray:
    """Mask of the points whose exact signed distance can matter to the clearance check.

    A point may be inside the head only if it lies within the largest barycentre-to-corner
    distance of some tetrahedron's barycentre; and the point closest to the scalp has a
    nearest triangle centroid within (smallest such distance) + (largest centroid-to-corner
    distance). Every other point is outside and not the closest, so it needs no exact test.
    """
    tree, reach = _volume_index(mesh)
    near_centroid = surface.tree.query(points)[0]
    maybe_inside = np.isfinite(tree.query(points, distance_upper_bound=reach)[0])
    return maybe_inside | (near_centroid <= near_centroid.min() + surface.reach)


_VOLUME_INDEX: "weakref.WeakKeyDictionary[TetMesh, tuple]" = weakref.WeakKeyDictionary()


def _volume_index(mesh: TetMesh):
    """KD-tree of tetrahedron barycentres and the largest barycentre-to-corner distance."""
    if mesh not in _VOLUME_INDEX:
        corners = mesh.nodes[mesh.tets]
        reach = np.linalg.norm(corners - mesh.barycenters[:, None], axis=2).max()
        _VOLUME_INDEX[mesh] = (cKDTree(mesh.barycenters), float(reach))
    return _VOLUME_INDEX[mesh]


_SURFACES: "weakref.WeakKeyDictionary[TetMesh, _Surface]" = weakref.WeakKeyDictionary()


def _surface(mesh: TetMesh) -> "_Surface":
    """The outer surface's search structure, built once per mesh."""
    if mesh not in _SURFACES:
        _SURFACES[mesh] = _Surface(*mesh.outer_surface)
    return _SURFACES[mesh]


class _Surface:
    """Closest points and inside/outside tests on a closed, outward-oriented triangle surface."""

    def __init__(self, nodes: np.ndarray, triangles: np.ndarray):
        self.corners = nodes[triangles]                                   # (k, 3, 3)
        self.centroids = self.corners.mean(axis=1)
        self.reach = np.linalg.norm(self.corners - self.centroids[:, None], axis=2).max()
        cross = np.cross(self.corners[:, 1] - self.corners[:, 0],
                         self.corners[:, 2] - self.corners[:, 0])
        self.area_normals = 0.5 * cross                                  # area * unit normal
        self.normals = cross / np.linalg.norm(cross, axis=1, keepdims=True)
        self.angles = _corner_angles(self.corners)
        self.tree = cKDTree(self.centroids)

    def mean_normal(self, point: np.ndarray, radius_mm: float) -> np.ndarray:
        """Unit area-weighted outward normal of the triangles near a surface point."""
        near = set(self.tree.query_ball_point(point, radius_mm))
        near.add(int(self.tree.query(point)[1]))
        n = self.area_normals[sorted(near)].sum(axis=0)
        return n / np.linalg.norm(n)

    def signed_distance(self, points: np.ndarray) -> np.ndarray:
        """Distance (mm) to the surface, negative inside."""
        closest, distance, normal = self.closest(points)
        sign = np.where(np.einsum("ij,ij->i", points - closest, normal) < 0, -1.0, 1.0)
        return sign * distance

    def closest(self, points: np.ndarray):
        """Exact closest surface points (n, 3), distances (n,) and pseudonormals (n, 3).

        Candidates are the triangles with the nearest centroids; a result is accepted once no
        triangle outside the candidates can be as close (centroid distance minus the largest
        centroid-to-corner distance), otherwise more candidates are tried.
        """
        points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        out = (np.empty((len(points), 3)), np.empty(len(points)), np.empty((len(points), 3)))
        todo, k = np.arange(len(points)), 8
        while len(todo):
            k = min(k, len(self.centroids))
            centroid_dist, candidates = self.tree.query(points[todo], k=k)
            candidates = candidates.reshape(len(todo), k)
            q, d, n = self._closest_among(points[todo], candidates)
            bound = centroid_dist.reshape(len(todo), k)[:, -1] - self.reach
            done = (k == len(self.centroids)) | (d + _TIE * (1.0 + d) < bound)
            for arr, value in zip(out, (q, d, n)):
                arr[todo[done]] = value[done]
            todo, k = todo[~done], 4 * k
        return out

    def _closest_among(self, points, candidates):
        """Closest point over candidate triangles, with the pseudonormal of the closest feature.

        Triangles tied at the minimum distance share the closest vertex or edge; their normals
        are summed with weights equal to the triangle's angle at that vertex (1 on an edge or
        face), which gives the angle-weighted pseudonormal.
        """
        tri = self.corners[candidates]                                    # (n, k, 3, 3)
        q, corner = _closest_on_triangles(points[:, None], tri[..., 0, :], tri[..., 1, :],
                                          tri[..., 2, :])
        dist = np.linalg.norm(points[:, None] - q, axis=2)
        best = dist.min(axis=1)
        tied = dist <= best[:, None] + _TIE * (1.0 + best[:, None])
        angle = self.angles[candidates, np.maximum(corner, 0)]
        weight = tied * np.where(corner >= 0, angle, 1.0)
        normal = np.einsum("nk,nki->ni", weight, self.normals[candidates])
        rows = np.arange(len(points))
        return q[rows, dist.argmin(axis=1)], best, normal


def _corner_angles(corners: np.ndarray) -> np.ndarray:
    """Interior angle (rad) at each corner of each triangle, (k, 3)."""
    angles = np.empty(corners.shape[:2])
    for i in range(3):
        u = corners[:, (i + 1) % 3] - corners[:, i]
        v = corners[:, (i + 2) % 3] - corners[:, i]
        cos = np.einsum("ij,ij->i", u, v) / (np.linalg.norm(u, axis=1) * np.linalg.norm(v, axis=1))
        angles[:, i] = np.arccos(np.clip(cos, -1.0, 1.0))
    return angles


def _closest_on_triangles(p, a, b, c):
    """Closest points on triangles (a, b, c) to p (broadcast, (..., 3)).

    Returns the points and, where the closest point is a corner, its index 0-2 (else -1).
    Region tests after Ericson, Real-Time Collision Detection, sec. 5.1.5.
    """
    dot = lambda u, v: np.einsum("...i,...i->...", u, v)  # noqa: E731
    ab, ac, ap, bp, cp = b - a, c - a, p - a, p - b, p - c
    d1, d2 = dot(ab, ap), dot(ac, ap)
    d3, d4 = dot(ab, bp), dot(ac, bp)
    d5, d6 = dot(ab, cp), dot(ac, cp)
    va, vb, vc = d3 * d6 - d5 * d4, d5 * d2 - d1 * d6, d1 * d4 - d3 * d2
    regions = [
        (d1 <= 0) & (d2 <= 0),                                  # corner a
        (d3 >= 0) & (d4 <= d3),                                 # corner b
        (vc <= 0) & (d1 >= 0) & (d3 <= 0),                      # edge ab
        (d6 >= 0) & (d5 <= d6),                                 # corner c
        (vb <= 0) & (d2 >= 0) & (d6 <= 0),                      # edge ac
        (va <= 0) & (d4 - d3 >= 0) & (d5 - d6 >= 0),            # edge bc
    ]
    with np.errstate(divide="ignore", invalid="ignore"):
        t_bc = (d4 - d3) / ((d4 - d3) + (d5 - d6))
        total = va + vb + vc
        v = np.select(regions, [0.0, 1.0, d1 / (d1 - d3), 0.0, 0.0, 1.0 - t_bc], vb / total)
        w = np.select(regions, [0.0, 0.0, 0.0, 1.0, d2 / (d2 - d6), t_bc], vc / total)
    corner = np.select(regions, [0, 1, -1, 2, -1, -1], -1)
    return a + v[..., None] * ab + w[..., None] * ac, corner
