"""Closed triangle surfaces: normals, smoothing, subdivision and intersection repair.

A surface is a pair (vertices (n, 3) float mm, triangles (k, 3) int) with outward orientation.
The functions here are pure (they return new arrays); `efield.template` strings them together
to turn the fsaverage surfaces into nested, non-intersecting compartment boundaries.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse
from scipy.spatial import cKDTree

_EPS = 1e-12


def face_normals(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Area-weighted face normals (k, 3): unit normal times twice the area, mm^2."""
    p = vertices[triangles]
    return np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])


def vertex_normals(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Unit outward vertex normals (n, 3), the area-weighted mean of the adjacent faces'."""
    fn = face_normals(vertices, triangles)
    n = np.zeros_like(vertices)
    for i in range(3):
        np.add.at(n, triangles[:, i], fn)
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), _EPS)


def enclosed_volume(vertices: np.ndarray, triangles: np.ndarray) -> float:
    """Volume enclosed by a closed, outward-oriented surface, mm^3 (divergence theorem)."""
    p = vertices[triangles]
    return float(np.einsum("ij,ij->i", p[:, 0], np.cross(p[:, 1], p[:, 2])).sum() / 6.0)


def adjacency(triangles: np.ndarray, n_vertices: int) -> sparse.csr_matrix:
    """Vertex adjacency (n, n) of a triangle surface, 1 where an edge joins two vertices."""
    i = triangles[:, [0, 1, 2, 1, 2, 0]].ravel()
    j = triangles[:, [1, 2, 0, 0, 1, 2]].ravel()
    a = sparse.coo_matrix((np.ones(len(i)), (i, j)), shape=(n_vertices, n_vertices)).tocsr()
    a.data[:] = 1.0
    return a


def grow(mask: np.ndarray, adj: sparse.csr_matrix, rings: int) -> np.ndarray:
    """The vertex mask grown by `rings` edge rings."""
    m = mask.astype(float)
    for _ in range(rings):
        m = m + adj @ m
    return m > 0


def smooth(vertices: np.ndarray, adj: sparse.csr_matrix, mask=None, iterations: int = 1,
           weight: float = 0.5) -> np.ndarray:
    """Laplacian (umbrella) smoothing: each masked vertex moves `weight` of the way to the
    mean of its neighbours, `iterations` times. Unmasked vertices stay put."""
    v = vertices.copy()
    degree = np.asarray(adj.sum(axis=1)).ravel()
    move = np.ones(len(v), bool) if mask is None else np.asarray(mask, bool)
    for _ in range(iterations):
        mean = (adj @ v) / degree[:, None]
        v[move] += weight * (mean[move] - v[move])
    return v


def smooth_values(values: np.ndarray, adj: sparse.csr_matrix, iterations: int,
                  weight: float = 0.5) -> np.ndarray:
    """Laplacian smoothing of a per-vertex field (n,) or (n, d) over the surface."""
    degree = np.asarray(adj.sum(axis=1)).ravel()
    x = np.asarray(values, float).copy()
    for _ in range(iterations):
        mean = (adj @ x) / (degree if x.ndim == 1 else degree[:, None])
        x += weight * (mean - x)
    return x


def subdivide(vertices: np.ndarray, triangles: np.ndarray):
    """Split every triangle into four at its edge midpoints (same shape, finer sampling).

    Vertices keep their indices; new ones follow, one per edge, in the order of the sorted
    unique edges, so two surfaces with the same triangles (fsaverage pial and white) stay in
    vertex correspondence.
    """
    n = len(vertices)
    edges = np.sort(triangles[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
    unique, inverse = np.unique(edges, axis=0, return_inverse=True)
    mid = n + inverse.reshape(-1, 3)                       # midpoints of edges 01, 12, 20
    a, b, c = triangles.T
    ab, bc, ca = mid.T
    tris = np.concatenate([np.stack(t, axis=1) for t in
                           ((a, ab, ca), (ab, b, bc), (ca, bc, c), (ab, bc, ca))])
    new = 0.5 * (vertices[unique[:, 0]] + vertices[unique[:, 1]])
    return np.vstack([vertices, new]), tris


def intersecting_pairs(v1: np.ndarray, t1: np.ndarray, v2: np.ndarray | None = None,
                       t2: np.ndarray | None = None) -> np.ndarray:
    """Pairs (i, j) of intersecting triangles, i of surface 1 and j of surface 2, (p, 2).

    Without a second surface, self-intersections of surface 1 (i < j; triangles that share
    a vertex are not tested). Candidates come from a KD-tree of triangle centroids and a
    bounding-box check; each is decided by exact segment-triangle tests of the six edges.
    """
    self_test = v2 is None
    if self_test:
        v2, t2 = v1, t1
    c1, c2 = v1[t1].mean(axis=1), v2[t2].mean(axis=1)
    r1 = np.linalg.norm(v1[t1] - c1[:, None], axis=2).max()
    r2 = np.linalg.norm(v2[t2] - c2[:, None], axis=2).max()
    tree1 = cKDTree(c1)
    if self_test:
        pairs = tree1.query_pairs(r1 + r2, output_type="ndarray")
    else:
        pairs = tree1.sparse_distance_matrix(cKDTree(c2), r1 + r2, output_type="ndarray")
        pairs = np.stack([pairs["i"], pairs["j"]], axis=1).astype(np.int64)
    if len(pairs) == 0:
        return np.zeros((0, 2), np.int64)
    lo1, hi1 = v1[t1].min(axis=1), v1[t1].max(axis=1)
    lo2, hi2 = v2[t2].min(axis=1), v2[t2].max(axis=1)
    i, j = pairs[:, 0], pairs[:, 1]
    keep = np.all((lo1[i] <= hi2[j]) & (lo2[j] <= hi1[i]), axis=1)
    if self_test:
        shared = (t1[i][:, :, None] == t1[j][:, None, :]).any(axis=(1, 2))
        keep &= ~shared
    pairs = pairs[keep]
    hits = np.zeros(len(pairs), bool)
    for start in range(0, len(pairs), 200_000):
        p = pairs[start:start + 200_000]
        a, b = v1[t1[p[:, 0]]], v2[t2[p[:, 1]]]
        hits[start:start + len(p)] = _triangles_intersect(a, b)
    return pairs[hits]


def _triangles_intersect(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Whether triangles a[i] and b[i] (each (m, 3, 3)) intersect (non-coplanar case)."""
    hit = np.zeros(len(a), bool)
    for tri, other in ((a, b), (b, a)):
        for k in range(3):
            hit |= _segment_hits_triangle(tri[:, k], tri[:, (k + 1) % 3], other)
    return hit


def _segment_hits_triangle(p: np.ndarray, q: np.ndarray, tri: np.ndarray) -> np.ndarray:
    """Whether segments p-q cross triangles tri (Moeller-Trumbore, closed segment)."""
    d = q - p
    e1, e2 = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
    h = np.cross(d, e2)
    det = np.einsum("ij,ij->i", e1, h)
    ok = np.abs(det) > _EPS
    inv = np.where(ok, 1.0 / np.where(ok, det, 1.0), 0.0)
    s = p - tri[:, 0]
    u = inv * np.einsum("ij,ij->i", s, h)
    qv = np.cross(s, e1)
    v = inv * np.einsum("ij,ij->i", d, qv)
    t = inv * np.einsum("ij,ij->i", e2, qv)
    return ok & (u >= 0) & (v >= 0) & (u + v <= 1) & (t >= 0) & (t <= 1)
