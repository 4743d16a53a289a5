"""Immutable tetrahedral head mesh with SimNIBS tissue tags."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from difflib import get_close_matches
from functools import cached_property
from types import MappingProxyType
from typing import Mapping

import numpy as np

TISSUE_NAMES = MappingProxyType({
    1: "WM", 2: "GM", 3: "CSF", 4: "bone", 5: "scalp", 6: "eyes",
    7: "compact bone", 8: "spongy bone", 9: "blood", 10: "muscle",
})
"""SimNIBS tissue numbers; a surface between tissues carries 1000 + tag."""


def _frozen(a, dtype, shape_tail, name):
    arr = np.array(a, dtype=dtype, copy=True)
    if arr.size == 0:
        arr = arr.reshape((0,) + shape_tail)
    if arr.ndim != 1 + len(shape_tail) or arr.shape[1:] != shape_tail:
        raise ValueError(f"TetMesh.{name}: expected shape (n, {', '.join(map(str, shape_tail))}), "
                         f"got {arr.shape}")
    arr.flags.writeable = False
    return arr


def _frozen_data(data: Mapping[str, np.ndarray] | None, n: int, what: str) -> Mapping:
    out = {}
    for name, values in (data or {}).items():
        arr = np.array(values, copy=True)
        if arr.shape[0] != n:
            raise ValueError(f"TetMesh.{what}[{name!r}]: {arr.shape[0]} rows for {n} entries")
        arr.flags.writeable = False
        out[name] = arr
    return MappingProxyType(out)


def _frozen_positions(positions: Mapping[str, np.ndarray] | None) -> Mapping:
    out, folded = {}, {}
    for label, xyz in (positions or {}).items():
        if not isinstance(label, str) or not label.strip() or label != label.strip():
            raise ValueError(f"TetMesh.eeg_positions: label {label!r} must be a non-empty string "
                             "without surrounding blanks")
        if label.casefold() in folded:
            raise ValueError(f"TetMesh.eeg_positions: labels {folded[label.casefold()]!r} and "
                             f"{label!r} differ only in case")
        arr = np.array(xyz, dtype=np.float64, copy=True)
        if arr.shape != (3,) or not np.isfinite(arr).all():
            raise ValueError(f"TetMesh.eeg_positions[{label!r}]: expected 3 finite coordinates "
                             f"in mm, got {xyz!r}")
        arr.flags.writeable = False
        out[label], folded[label.casefold()] = arr, label
    return MappingProxyType(out)


@dataclass(frozen=True, eq=False)
class TetMesh:
    """Tetrahedral mesh in millimetres.

    nodes: (n, 3) float64 coordinates in mm.
    tets: (m, 4) int64 zero-based node indices.
    tags: (m,) int tissue numbers (SimNIBS: 1 WM, 2 GM, 3 CSF, 4 bone, 5 scalp, ...).
    tris, tri_tags: optional surface triangles (k, 3) and their tags (1000 + tissue).
    element_data, node_data: named arrays per tetrahedron / per node (e.g. "E" in V/m).
    eeg_positions: EEG electrode and fiducial positions, label -> (3,) mm (see `eeg_position`).
    Nodes must be finite. The node order of a tetrahedron is free (`signed_volumes` shows it);
    the solver and the surfaces do not depend on it.
    """

    nodes: np.ndarray
    tets: np.ndarray
    tags: np.ndarray
    tris: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), np.int64))
    tri_tags: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    element_data: Mapping[str, np.ndarray] = field(default_factory=dict)
    node_data: Mapping[str, np.ndarray] = field(default_factory=dict)
    eeg_positions: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self):
        set_ = object.__setattr__
        set_(self, "nodes", _frozen(self.nodes, np.float64, (3,), "nodes"))
        set_(self, "tets", _frozen(self.tets, np.int64, (4,), "tets"))
        set_(self, "tags", _frozen(self.tags, np.int64, (), "tags"))
        set_(self, "tris", _frozen(self.tris, np.int64, (3,), "tris"))
        set_(self, "tri_tags", _frozen(self.tri_tags, np.int64, (), "tri_tags"))
        bad = ~np.isfinite(self.nodes).all(axis=1)
        if bad.any():
            raise ValueError(f"TetMesh.nodes: {int(bad.sum())} of {len(bad)} nodes have NaN or "
                             f"infinite coordinates (first: node {int(np.argmax(bad))})")
        if len(self.tags) != len(self.tets):
            raise ValueError(f"TetMesh: {len(self.tags)} tags for {len(self.tets)} tetrahedra")
        if len(self.tri_tags) != len(self.tris):
            raise ValueError(f"TetMesh: {len(self.tri_tags)} tri_tags for {len(self.tris)} triangles")
        for name, idx in (("tets", self.tets), ("tris", self.tris)):
            if idx.size and (idx.min() < 0 or idx.max() >= len(self.nodes)):
                raise ValueError(f"TetMesh.{name}: node index out of range [0, {len(self.nodes)})")
        set_(self, "element_data", _frozen_data(self.element_data, len(self.tets), "element_data"))
        set_(self, "node_data", _frozen_data(self.node_data, len(self.nodes), "node_data"))
        set_(self, "eeg_positions", _frozen_positions(self.eeg_positions))

    def __repr__(self):
        tissues = ", ".join(f"{t}:{c}" for t, c in zip(*np.unique(self.tags, return_counts=True)))
        eeg = f", {len(self.eeg_positions)} EEG positions" if self.eeg_positions else ""
        return (f"TetMesh({len(self.nodes)} nodes, {len(self.tets)} tets [{tissues}], "
                f"{len(self.tris)} triangles{eeg})")

    @property
    def n_nodes(self) -> int:
        """Number of nodes."""
        return len(self.nodes)

    @property
    def n_tets(self) -> int:
        """Number of tetrahedra."""
        return len(self.tets)

    @cached_property
    def tissues(self) -> tuple[int, ...]:
        """Tissue tags present, ascending."""
        return tuple(int(t) for t in np.unique(self.tags))

    @cached_property
    def volumes(self) -> np.ndarray:
        """Unsigned tetrahedron volumes, mm^3."""
        return np.abs(self.signed_volumes)

    @cached_property
    def signed_volumes(self) -> np.ndarray:
        """Signed volumes, mm^3 (positive for right-handed node order)."""
        p = self.nodes[self.tets]
        d = p[:, 1:] - p[:, :1]
        return np.einsum("ij,ij->i", d[:, 0], np.cross(d[:, 1], d[:, 2])) / 6.0

    @cached_property
    def barycenters(self) -> np.ndarray:
        """Tetrahedron barycentres, (m, 3) mm."""
        return self.nodes[self.tets].mean(axis=1)

    def tissue_volume(self, tag: int) -> float:
        """Total volume of one tissue, mm^3."""
        return float(self.volumes[self.tags == tag].sum())

    def subset(self, tags) -> "TetMesh":
        """The tetrahedra whose tissue is in `tags`, with unused nodes removed.

        Surface triangles and data follow; triangles kept are those whose nodes all remain.
        """
        tags = np.atleast_1d(tags)
        keep = np.isin(self.tags, tags)
        if not keep.any():
            raise ValueError(f"TetMesh.subset: no tetrahedra with tags {tags.tolist()} "
                             f"(mesh has {list(self.tissues)})")
        used = np.zeros(self.n_nodes, bool)
        used[self.tets[keep].ravel()] = True
        new_index = np.full(self.n_nodes, -1, np.int64)
        new_index[used] = np.arange(used.sum())
        tri_keep = used[self.tris].all(axis=1) if len(self.tris) else np.zeros(0, bool)
        return TetMesh(
            nodes=self.nodes[used], tets=new_index[self.tets[keep]], tags=self.tags[keep],
            tris=new_index[self.tris[tri_keep]], tri_tags=self.tri_tags[tri_keep],
            element_data={k: v[keep] for k, v in self.element_data.items()},
            node_data={k: v[used] for k, v in self.node_data.items()},
            eeg_positions=self.eeg_positions,
        )

    def with_data(self, element_data=None, node_data=None) -> "TetMesh":
        """A copy with data added (or replaced) by name."""
        return replace(self, element_data={**self.element_data, **(element_data or {})},
                       node_data={**self.node_data, **(node_data or {})})

    def with_eeg_positions(self, positions: Mapping[str, np.ndarray]) -> "TetMesh":
        """A copy with these EEG positions (label -> (3,) mm) in place of any it had."""
        return replace(self, eeg_positions=positions)

    def eeg_position(self, label: str) -> np.ndarray:
        """The position (3,) mm of an EEG label, matched without regard to case."""
        if not self.eeg_positions:
            raise ValueError(
                f"EEG label {label!r}: this mesh has no EEG positions; load a SimNIBS subject "
                "with efield.load_subject('m2m_<id>'), use efield.template_head(), or attach "
                "positions with mesh.with_eeg_positions(efield.read_eeg_positions(csv)) or "
                "mesh.with_eeg_positions(efield.standard_positions(mesh, montage))")
        folded = {name.casefold(): name for name in self.eeg_positions}
        name = folded.get(str(label).strip().casefold())
        if name is None:
            close = get_close_matches(str(label).strip().casefold(), folded, n=6, cutoff=0.5)
            shown = (f"closest: {', '.join(folded[c] for c in close)}" if close else
                     f"e.g. {', '.join(list(self.eeg_positions)[:12])}")
            raise ValueError(f"EEG label {label!r} is not among the mesh's "
                             f"{len(self.eeg_positions)} positions ({shown})")
        return self.eeg_positions[name]

    @cached_property
    def boundary_faces(self) -> np.ndarray:
        """Faces that belong to exactly one tetrahedron, (k, 3), oriented outward."""
        return self._boundary[0]

    @cached_property
    def _boundary(self) -> tuple[np.ndarray, np.ndarray]:
        """Boundary faces (k, 3) and the tetrahedron each belongs to (k,)."""
        faces, owner = tet_faces(self.tets, self.signed_volumes)
        _, inverse, counts = np.unique(face_keys(faces, len(self.nodes)), return_inverse=True,
                                       return_counts=True)
        once = counts[inverse.ravel()] == 1
        return faces[once], owner[once]

    @cached_property
    def _outer(self) -> np.ndarray:
        """Mask of the boundary faces on the outer surface: the largest component by area."""
        faces = self.boundary_faces
        labels = _face_components(faces)
        p = self.nodes[faces]
        area = 0.5 * np.linalg.norm(np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]), axis=1)
        return labels == np.argmax(np.bincount(labels, weights=area))

    @cached_property
    def outer_surface(self) -> tuple[np.ndarray, np.ndarray]:
        """The outer (scalp) surface: (nodes (p, 3) mm, triangles (k, 3)) oriented outward.

        It is the largest closed component of the mesh boundary by area, so internal holes
        (cavities) are excluded.
        """
        used, inverse = np.unique(self.boundary_faces[self._outer], return_inverse=True)
        return self.nodes[used], inverse.reshape(-1, 3)

    @cached_property
    def outer_surface_tags(self) -> np.ndarray:
        """Tissue tag under each triangle of `outer_surface`, (k,): 5 where it is scalp."""
        return self.tags[self._boundary[1][self._outer]]


_FACE_LOCAL = np.array([[1, 2, 3], [0, 3, 2], [0, 1, 3], [0, 2, 1]])
"""Faces of a tetrahedron (0,1,2,3) with outward orientation when its volume is positive."""


def tet_faces(tets: np.ndarray, signed_volumes: np.ndarray):
    """All faces (4m, 3), oriented outward, and the tetrahedron each came from."""
    t = tets.copy()
    negative = signed_volumes < 0
    t[negative, 0], t[negative, 1] = tets[negative, 1], tets[negative, 0]
    faces = t[:, _FACE_LOCAL].reshape(-1, 3)
    return faces, np.repeat(np.arange(len(tets)), 4)


def face_keys(rows: np.ndarray, n_nodes: int) -> np.ndarray:
    """One key per row of node indices (faces (k, 3), edges (k, 2)) that is the same for rows
    holding the same nodes in any order: the sorted row as base-n_nodes digits in an int64
    (its bytes where n_nodes^columns passes 2^63). np.unique over the keys groups the rows as
    np.unique(np.sort(rows, axis=1), axis=0) does, several times faster (as integers, in the
    same order)."""
    rows = np.sort(np.asarray(rows, np.int64), axis=1)
    if float(max(n_nodes, 1)) ** rows.shape[1] < 2.0**63:
        keys = np.zeros(len(rows), np.int64)
        for column in rows.T:
            keys = keys * n_nodes + column
        return keys
    return np.ascontiguousarray(rows).view(np.dtype((np.void, rows.itemsize * rows.shape[1]))).ravel()


def _face_components(faces: np.ndarray) -> np.ndarray:
    """Connected-component label of each triangle (sharing a node connects)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = int(faces.max()) + 1
    rows = np.repeat(np.arange(len(faces)), 3)
    incidence = coo_matrix((np.ones(rows.size), (rows, faces.ravel())), shape=(len(faces), n))
    node_graph = (incidence.T @ incidence).tocsr()
    _, node_label = connected_components(node_graph, directed=False)
    return node_label[faces[:, 0]]


DEGENERATE_SHAPE = 1e-3
"""Shape measure (see `mesh_quality`) below which a tetrahedron counts as degenerate."""

_EDGES = np.array([[0, 1], [0, 2], [0, 3], [1, 2], [1, 3], [2, 3]])


def tet_shape(mesh: TetMesh) -> np.ndarray:
    """Shape measure per tetrahedron: 6 sqrt(2) |V| / l_max^3, 1 for a regular one, 0 when flat."""
    p = mesh.nodes[mesh.tets]
    longest = np.linalg.norm(p[:, _EDGES[:, 1]] - p[:, _EDGES[:, 0]], axis=2).max(axis=1)
    return 6.0 * np.sqrt(2.0) * mesh.volumes / longest ** 3


def min_dihedral_deg(mesh: TetMesh) -> np.ndarray:
    """Smallest dihedral angle of each tetrahedron, degrees (70.5 for a regular one)."""
    p = mesh.nodes[mesh.tets]
    faces = np.array([[1, 2, 3], [0, 3, 2], [0, 1, 3], [0, 2, 1]])
    n = np.cross(p[:, faces[:, 1]] - p[:, faces[:, 0]], p[:, faces[:, 2]] - p[:, faces[:, 0]])
    n /= np.maximum(np.linalg.norm(n, axis=2, keepdims=True), 1e-300)
    # the dihedral angle at the edge shared by faces i and j is pi minus the angle of their normals
    i, j = np.triu_indices(4, 1)
    cos = -np.einsum("mki,mki->mk", n[:, i], n[:, j])
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))).min(axis=1)


def mesh_quality(mesh: TetMesh) -> dict:
    """Quality figures of a tetrahedral mesh, overall ("all") and per tissue tag.

    Each entry: n_tets; volume_ml; inverted (tetrahedra with signed volume <= 0 for gmsh's
    right-handed node order); degenerate (shape measure below `DEGENERATE_SHAPE`); min_shape
    and median_shape (see `tet_shape`); min_dihedral_deg; under_5_deg (tetrahedra with a
    dihedral angle below 5 degrees).
    """
    shape, dihedral, signed = tet_shape(mesh), min_dihedral_deg(mesh), mesh.signed_volumes

    def figures(sel):
        return {"n_tets": int(sel.sum()), "volume_ml": float(mesh.volumes[sel].sum() / 1000.0),
                "inverted": int((signed[sel] <= 0).sum()),
                "degenerate": int((shape[sel] < DEGENERATE_SHAPE).sum()),
                "min_shape": float(shape[sel].min()), "median_shape": float(np.median(shape[sel])),
                "min_dihedral_deg": float(dihedral[sel].min()),
                "under_5_deg": int((dihedral[sel] < 5.0).sum())}

    out = {"all": figures(np.ones(mesh.n_tets, bool))}
    out.update({tag: figures(mesh.tags == tag) for tag in mesh.tissues})
    return out
