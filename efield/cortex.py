"""The cortex for the coupling stage: grey-matter layers under a target and E at points.

The grey matter (tag 2) is bounded by its outer (pial) surface, where it meets any tissue but
white matter, and by the GM/WM interface (tag 1). Both are read from the tetrahedra's tags.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np

from .geometry import Surface, barycentric, containing_tets, resolve_point
from .mesh import TetMesh, face_keys, tet_faces
from .result import EFieldResult

GM, WM = 2, 1


@dataclass(frozen=True, eq=False)
class CorticalLayer:
    """Sample points of a grey-matter layer under a target.

    points_mm: (n, 3) positions, mm. normals: (n, 3) outward unit normals (away from the white
    matter) of the pial surface at the node each point comes from. areas_mm2: (n,) pial area
    each point stands for, mm^2 (a third of the adjacent triangles). target_mm: (3,) the point
    of the pial surface the layer is centred on.
    """

    points_mm: np.ndarray
    normals: np.ndarray
    areas_mm2: np.ndarray
    target_mm: np.ndarray

    def __post_init__(self):
        for name in ("points_mm", "normals", "areas_mm2", "target_mm"):
            arr = np.array(getattr(self, name), dtype=np.float64, copy=True)
            arr.flags.writeable = False
            object.__setattr__(self, name, arr)

    def __len__(self) -> int:
        return len(self.points_mm)


def cortical_layer(mesh: TetMesh, centre, radius_mm: float, *, depth: float = 0.5,
                   depth_mm: float | None = None) -> CorticalLayer:
    """The grey-matter layer at a relative depth under a target, one point per pial node.

    centre: a point (mm) or an EEG label of mesh.eeg_positions; the target is the point of
    the pial surface closest to it (for a scalp position: the cortex nearest the electrode).
    The layer holds the pial nodes within radius_mm (straight-line distance) of the target,
    each moved inward along its normal: by depth times the distance from the node to the
    GM/WM interface (depth 0: pial surface, 1: GM/WM interface, 0.5: mid-layer), or, when
    depth_mm is given, by depth_mm. A mesh without white matter needs depth_mm. Normals are
    node normals with Max's weights (exact where the nodes lie on a sphere). In deep folds a
    point may leave the grey matter; `field_at` reports the tissue of each point.
    """
    cortex = _cortex(mesh)
    if not radius_mm > 0:
        raise ValueError(f"radius_mm={radius_mm}: must be positive")
    target = cortex.pial.closest(resolve_point(mesh, centre, "centre")[None])[0][0]
    near = np.flatnonzero(np.linalg.norm(cortex.nodes - target, axis=1) <= radius_mm)
    if not len(near):
        raise ValueError(f"no pial node lies within radius_mm={radius_mm} of the target "
                         f"{np.round(target, 1).tolist()} mm; take a larger radius")
    nodes, normals = cortex.nodes[near], cortex.normals[near]
    if depth_mm is not None:
        if not depth_mm >= 0:
            raise ValueError(f"depth_mm={depth_mm}: must be zero or positive")
        offset = np.full(len(near), float(depth_mm))
    else:
        if not 0 <= depth <= 1:
            raise ValueError(f"depth={depth}: must lie in [0, 1] (0 pial surface, 1 GM/WM "
                             "interface)")
        if cortex.white is None:
            raise ValueError("the mesh has no GM/WM interface (no white matter, tag 1, next to "
                             "the grey matter): give depth_mm, the depth below the pial surface")
        offset = depth * cortex.white.closest(nodes)[1]
    return CorticalLayer(nodes - offset[:, None] * normals, normals, cortex.areas[near], target)


def field_at(mesh: TetMesh, field, points_mm) -> tuple[np.ndarray, np.ndarray]:
    """Field values at points, with the tissue tag there.

    field: an EFieldResult on this mesh, or (m, ...) values per tetrahedron (e.g. E (m, 3) in
    V/m). points_mm: (n, 3). A plain array gives each point the value of the tetrahedron
    containing it. An EFieldResult gives E = -grad(phi) - dA/dt with the element's
    -grad(phi) and the primary -dA/dt interpolated linearly from its nodal values, which
    follows the coil's field within large tetrahedra (at the barycentre it equals result.E).
    A point on a face shared by two tetrahedra takes either. Points outside the mesh get NaN
    and tag -1. Returns (values (n, ...), tags (n,)).
    """
    result = field if isinstance(field, EFieldResult) else None
    values = np.asarray(field if result is None else result.E, dtype=np.float64)
    rows = len(values) if values.ndim else 0
    if rows != mesh.n_tets or (result is not None and result.mesh.n_nodes != mesh.n_nodes):
        raise ValueError(f"field_at: the field has {rows} rows, not one per tetrahedron of "
                         f"this mesh ({mesh.n_tets})")
    points = np.asarray(points_mm, dtype=np.float64)
    tet = containing_tets(mesh, points)
    inside = tet >= 0
    out = np.full((len(tet),) + values.shape[1:], np.nan)
    out[inside] = values[tet[inside]]
    if result is not None and inside.any():
        weights = barycentric(mesh, points[inside], tet[inside, None])[:, 0]
        dadt = result.dadt[mesh.tets[tet[inside]]]                     # (k, 4, 3)
        out[inside] += dadt.mean(axis=1) - np.einsum("kn,knc->kc", weights, dadt)
    return out, np.where(inside, mesh.tags[np.maximum(tet, 0)], -1)


# --- grey-matter surfaces ---------------------------------------------------------------

class _Cortex:
    """Pial nodes with normals and areas, and closest-point search on both GM boundaries."""

    def __init__(self, mesh: TetMesh):
        if GM not in mesh.tissues:
            raise ValueError(f"the mesh has no grey matter (tag {GM}); its tissues are "
                             f"{list(mesh.tissues)}")
        faces, neighbour = _grey_matter_faces(mesh)
        pial, white = faces[(neighbour != GM) & (neighbour != WM)], faces[neighbour == WM]
        used, local = np.unique(pial, return_inverse=True)
        local = local.reshape(-1, 3)
        self.nodes = mesh.nodes[used]
        self.normals, self.areas = _node_normals_and_areas(self.nodes, local)
        self.pial = Surface(self.nodes, local)
        self.white = Surface(mesh.nodes, white) if len(white) else None


_CORTICES: "weakref.WeakKeyDictionary[TetMesh, _Cortex]" = weakref.WeakKeyDictionary()


def _cortex(mesh: TetMesh) -> _Cortex:
    if mesh not in _CORTICES:
        _CORTICES[mesh] = _Cortex(mesh)
    return _CORTICES[mesh]


def _grey_matter_faces(mesh: TetMesh):
    """Boundary faces of the grey matter, oriented out of it, and the tag beyond each (0: none)."""
    faces, owner = tet_faces(mesh.tets, mesh.signed_volumes)
    _, inverse = np.unique(face_keys(faces, len(mesh.nodes)), return_inverse=True)
    order = np.argsort(inverse.ravel(), kind="stable")
    pair = np.flatnonzero(inverse.ravel()[order][1:] == inverse.ravel()[order][:-1])
    partner = np.full(len(faces), -1)
    partner[order[pair]], partner[order[pair + 1]] = order[pair + 1], order[pair]
    beyond = np.where(partner >= 0, mesh.tags[owner[partner]], 0)
    keep = (mesh.tags[owner] == GM) & (beyond != GM)
    return faces[keep], beyond[keep]


def _node_normals_and_areas(nodes: np.ndarray, triangles: np.ndarray):
    """Unit node normals with Max's weights (N. Max, J. Graphics Tools 4(2), 1999: each
    corner adds u x v / (|u|^2 |v|^2), exact for nodes on a sphere) and node areas (mm^2)."""
    normals, areas = np.zeros_like(nodes), np.zeros(len(nodes))
    corners = nodes[triangles]
    for i in range(3):
        u = corners[:, (i + 1) % 3] - corners[:, i]
        v = corners[:, (i + 2) % 3] - corners[:, i]
        cross = np.cross(u, v)
        weight = (np.einsum("ij,ij->i", u, u) * np.einsum("ij,ij->i", v, v))[:, None]
        np.add.at(normals, triangles[:, i], cross / weight)
        np.add.at(areas, triangles[:, i], np.linalg.norm(cross, axis=1) / 6.0)
    return normals / np.linalg.norm(normals, axis=1, keepdims=True), areas
