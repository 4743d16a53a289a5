"""Geometry queries on a TetMesh, each search structure built once per mesh: points given as
coordinates or EEG labels, the tetrahedron containing a point (one locator: a KD-tree of
barycentres), the tissues along a ray, and closest points on the outer surface."""

from __future__ import annotations

import weakref

import numpy as np
from scipy.spatial import cKDTree

from .mesh import TetMesh


def resolve_point(mesh: TetMesh, value, what: str) -> np.ndarray:
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


_TET_INDEX: "weakref.WeakKeyDictionary[TetMesh, tuple]" = weakref.WeakKeyDictionary()


def tet_index(mesh: TetMesh):
    """KD-tree of tetrahedron barycentres and the largest barycentre-to-corner distance."""
    if mesh not in _TET_INDEX:
        corners = mesh.nodes[mesh.tets]
        reach = np.linalg.norm(corners - mesh.barycenters[:, None], axis=2).max()
        _TET_INDEX[mesh] = (cKDTree(mesh.barycenters), float(reach))
    return _TET_INDEX[mesh]


BARYCENTRIC_TOL = 1e-9
"""A point is inside a tetrahedron when its barycentric coordinates are all >= -this."""


def containing_tets(mesh: TetMesh, points_mm, chunk: int = 20_000) -> np.ndarray:
    """Index (n,) of the tetrahedron containing each point (n, 3) mm; -1 outside the mesh.

    Candidates are the tetrahedra with the nearest barycentres, tried in growing numbers until
    one contains the point (barycentric test) or the next barycentre is farther than any
    tetrahedron's barycentre-to-corner distance. Where several contain a point (on a shared
    face) the one where it lies deepest is taken.
    """
    points = np.asarray(points_mm, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3 or not np.isfinite(points).all():
        raise ValueError(f"points_mm must be finite (n, 3), got shape {points.shape}")
    tree, reach = tet_index(mesh)
    found = np.full(len(points), -1, np.int64)
    for start in range(0, len(points), chunk):
        todo, k = np.arange(start, min(start + chunk, len(points))), 8
        while len(todo):
            k = min(k, mesh.n_tets)
            distance, candidates = (a.reshape(len(todo), k) for a in tree.query(points[todo], k=k))
            depth = barycentric(mesh, points[todo], candidates).min(axis=2)
            depth = np.where(np.isnan(depth), -np.inf, depth)
            best = depth.argmax(axis=1)
            hit = depth[np.arange(len(todo)), best] >= -BARYCENTRIC_TOL
            found[todo[hit]] = candidates[hit, best[hit]]
            more = ~hit & (distance[:, -1] <= reach) & (k < mesh.n_tets)
            todo, k = todo[more], 4 * k
    return found


def barycentric(mesh: TetMesh, points: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """Barycentric coordinates (n, k, 4) of points (n, 3) in candidate tetrahedra (n, k)."""
    corners = mesh.nodes[mesh.tets[candidates]]                   # (n, k, 4, 3)
    d = corners - points[:, None, None, :]
    triple = lambda a, b, c: np.einsum("...i,...i->...", a, np.cross(b, c))
    parts = np.stack([triple(d[..., 1, :], d[..., 2, :], d[..., 3, :]),
                      -triple(d[..., 0, :], d[..., 2, :], d[..., 3, :]),
                      triple(d[..., 0, :], d[..., 1, :], d[..., 3, :]),
                      -triple(d[..., 0, :], d[..., 1, :], d[..., 2, :])], axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return parts / parts.sum(axis=-1, keepdims=True)


def tissues_along(mesh: TetMesh, start_mm, direction, depth_mm: float = 60.0,
                  step_mm: float = 0.1) -> list[tuple[int, float, float]]:
    """The tissues met walking from `start_mm` along `direction` for depth_mm.

    Returns runs (tag, from_mm, to_mm) in order, depths from start_mm (mm, to the nearest
    step_mm); 0 stands for outside the mesh.
    """
    start = np.asarray(start_mm, float)
    d = np.asarray(direction, float)
    d = d / np.linalg.norm(d)
    depth = np.arange(0.0, depth_mm + 0.5 * step_mm, step_mm)
    tag = locate_tags(mesh, start + depth[:, None] * d)
    change = np.flatnonzero(np.diff(tag)) + 1
    starts = np.r_[0, change]
    ends = np.r_[change, len(tag)] - 1
    return [(int(tag[s]), float(depth[s]), float(depth[e])) for s, e in zip(starts, ends)]


def locate_tags(mesh: TetMesh, points_mm) -> np.ndarray:
    """Tissue tag of the tetrahedron containing each point (n,), 0 outside the mesh."""
    tet = containing_tets(mesh, np.asarray(points_mm, float).reshape(-1, 3))
    return np.where(tet >= 0, mesh.tags[np.maximum(tet, 0)], 0)


_TIE = 1e-9
"""Relative tolerance for triangles tied at the closest distance."""

_SURFACES: "weakref.WeakKeyDictionary[TetMesh, Surface]" = weakref.WeakKeyDictionary()


def surface_index(mesh: TetMesh) -> "Surface":
    """The outer surface's search structure, built once per mesh."""
    if mesh not in _SURFACES:
        _SURFACES[mesh] = Surface(*mesh.outer_surface)
    return _SURFACES[mesh]


class Surface:
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
        q, corner = closest_on_triangles(points[:, None], tri[..., 0, :], tri[..., 1, :],
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


def closest_on_triangles(p, a, b, c):
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
