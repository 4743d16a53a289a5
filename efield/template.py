"""Built-in template head: five SimNIBS tissues meshed from the fsaverage surfaces.

Sources (no download): MNE-Python ships the fsaverage scalp (``fsaverage-head.fif``, 2,033
vertices) and inner skull (``fsaverage-inner_skull-bem.fif``, 10,242 vertices), in metres;
nilearn ships the fsaverage5 pial and white surfaces of each hemisphere (10,242 vertices
each), in millimetres, in the same frame. Everything here is in millimetres.

Compartments (SimNIBS tags): WM 1 inside the white surfaces; GM 2 between white and pial;
CSF 3 between pial and inner skull; bone 4 between inner and outer skull; scalp 5 between
outer skull and scalp. Each boundary is one closed surface, and the surfaces nest without
touching, so gmsh meshes them as conforming interfaces (surface triangles 1000 + tag).

Repairs of the source surfaces (numbers for fsaverage as shipped by MNE 1.13 / nilearn 0.14):

- Self-intersections (86 triangle pairs of the inner skull at the skull base, one pair each
  in the right pial and right white surfaces) are removed by Laplacian smoothing of the
  faces involved and two rings of neighbours, repeated until none is left (moves < 1 mm).
- The hemispheres overlap at the midline by 1.3 mm: both pial surfaces are clamped to
  planes `MIDLINE_GAP_MM` apart around the midline plane (x = 0.55 mm), which leaves a thin
  CSF layer in the interhemispheric fissure.
- White equals pial on the medial wall (about 525 vertices per hemisphere, zero
  thickness): white vertices are moved inward along the pial normal so that cortical
  thickness (pial to white, vertex to vertex) is at least `MIN_GM_MM`; where white and pial
  still cross, the white surface is pushed inward and smoothed locally.
- The pial surface comes within 0.4 mm of the inner skull: pial vertices closer than
  `MIN_CSF_MM` are moved inward to that depth.

Derived compartments:

- Outer skull: the inner skull offset outward along smoothed normals by a bone thickness of
  `BONE_MM` (6 mm; adult cranial vault thickness is 3-12 mm, mean about 6-7 mm: Lynnerup
  2001, Forensic Sci. Int. 117: 45), reduced where the scalp is near so that at least
  `MIN_SCALP_MM` (3 mm) of scalp remains (the fsaverage scalp is only 6.1 mm outside the
  inner skull at its thinnest, median 13 mm). The thickness field is smoothed over the
  surface before the offset, and any folds are smoothed out.
- CSF: everything between the pial surfaces and the inner skull, which on fsaverage is wide
  (median 18 mm from a pial vertex to the inner skull, 6-9 mm at the vertex, the poles and
  the sides): the average brain is smaller than the average skull.
- Cerebellum and brainstem: the pial surfaces cover only the cerebrum, so the posterior
  fossa and the brainstem would be CSF (1.654 S/m) and CSF would be 1.19 L. CSF tetrahedra
  that lie below the cerebrum (under the lowest pial point of their 2 mm column), behind the
  coronal plane y = `POSTERIOR_FOSSA_Y_MM` (-20 mm, about the clivus) and farther than
  `FILL_MM` (3 mm) from both the inner skull and the pial surfaces are relabelled grey matter
  (tag 2; the cerebellum is mostly cortex): about 0.29 L, which leaves 0.90 L of CSF and a
  CSF layer of at least 3 mm around the filled region. Without the column and plane tests
  the rule would also fill the wide supratentorial CSF (0.5 L in all). The relabelled region
  follows tetrahedra, not a surface.

Resolution: every surface is split at its edge midpoints (which leaves its shape exactly
unchanged, so the repaired surfaces stay disjoint) while its median edge exceeds sqrt(2)
`max_edge_mm`; gmsh's HXT Delaunay mesher (one thread, reproducible) then fills the volumes
with tetrahedra no longer than `max_edge_mm`, keeping the surface triangles as they are.
At the default 3 mm that is about 1.03M tetrahedra. Netgen's optimiser would remove most of
the remaining slivers but takes about five times as long as the meshing itself.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
from scipy.ndimage import minimum_filter
from scipy.spatial import cKDTree

from . import surface_repair as sr
from .mesh import TetMesh

TEMPLATE_VERSION = 2
"""Version of the construction below; part of the cache key, bump it when the result changes."""

MIDLINE_X_MM = 0.55
"""Midline plane between the fsaverage hemispheres (the centre of their 1.3 mm overlap), mm."""
MIDLINE_GAP_MM = 1.0
"""Gap left between the left and right pial surfaces at the midline, mm."""
MIN_GM_MM = 1.0
"""Least cortical thickness (pial to white, per vertex), mm."""
MIN_CSF_MM = 1.0
"""Least distance from a pial vertex to the inner skull, mm."""
BONE_MM = 6.0
"""Bone thickness where the scalp leaves room, mm."""
MIN_SCALP_MM = 3.0
"""Least scalp thickness kept outside the outer skull, mm."""
FILL_MM = 3.0
"""CSF farther than this from the inner skull and from the cerebrum becomes grey matter, mm."""

_SOURCES = ("scalp", "inner_skull", "pial_left", "pial_right", "white_left", "white_right")


# --- sources --------------------------------------------------------------------------------

def fsaverage_surfaces() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The six source surfaces as {name: (vertices (n, 3) mm, triangles (k, 3))}."""
    import mne
    from nilearn import datasets, surface

    folder = Path(mne.__file__).parent / "data" / "fsaverage"
    out = {}
    for name, file in (("scalp", "fsaverage-head.fif"), ("inner_skull", "fsaverage-inner_skull-bem.fif")):
        path = folder / file
        if not path.exists():
            raise FileNotFoundError(f"{path}: fsaverage surface missing from the MNE-Python install")
        surf = mne.read_bem_surfaces(path, verbose=False)[0]
        out[name] = (1000.0 * np.asarray(surf["rr"], float), np.asarray(surf["tris"], np.int64))
    fsaverage5 = datasets.fetch_surf_fsaverage("fsaverage5")
    for name in _SOURCES[2:]:
        mesh = surface.load_surf_mesh(fsaverage5[name])
        out[name] = (np.asarray(mesh.coordinates, float), np.asarray(mesh.faces, np.int64))
    return out


def source_versions() -> dict[str, str]:
    """Versions of the packages that ship the sources and mesh them."""
    import gmsh
    import mne
    import nilearn

    return {"mne": mne.__version__, "nilearn": nilearn.__version__, "gmsh": gmsh.__version__}


# --- repair ---------------------------------------------------------------------------------

def untangle(vertices: np.ndarray, triangles: np.ndarray, what: str, max_rounds: int = 50) -> np.ndarray:
    """Smooth the self-intersecting faces (and two rings around them) until none is left."""
    adj = sr.adjacency(triangles, len(vertices))
    v = vertices
    for _ in range(max_rounds):
        pairs = sr.intersecting_pairs(v, triangles)
        if len(pairs) == 0:
            return v
        mask = np.zeros(len(v), bool)
        mask[triangles[pairs].ravel()] = True
        v = sr.smooth(v, adj, sr.grow(mask, adj, 2), iterations=3)
    raise RuntimeError(f"{what}: {len(pairs)} self-intersections left after {max_rounds} rounds")


def push_inside(inner: np.ndarray, triangles: np.ndarray, outer: np.ndarray, outer_triangles,
                what: str, step_mm: float = 0.3, max_rounds: int = 60) -> np.ndarray:
    """Move the faces of `inner` that cross `outer` inward (along their normals) and smooth
    them, until the two surfaces are disjoint and `inner` has no self-intersection."""
    adj = sr.adjacency(triangles, len(inner))
    v = inner
    for _ in range(max_rounds):
        cross = sr.intersecting_pairs(v, triangles, outer, outer_triangles)
        own = sr.intersecting_pairs(v, triangles)
        if len(cross) == 0 and len(own) == 0:
            return v
        mask = np.zeros(len(v), bool)
        mask[triangles[cross[:, 0]].ravel()] = True
        mask = sr.grow(mask, adj, 1)
        v = v - step_mm * mask[:, None] * sr.vertex_normals(v, triangles)
        own_mask = np.zeros(len(v), bool)
        own_mask[triangles[own].ravel()] = True
        v = sr.smooth(v, adj, sr.grow(mask | own_mask, adj, 1), iterations=2)
    raise RuntimeError(f"{what}: still {len(cross)} crossings and {len(own)} self-intersections "
                       f"after {max_rounds} rounds")


def repair_brain(s: dict) -> dict:
    """Pial and white surfaces: disjoint, nested, inside the inner skull with room for CSF."""
    out = dict(s)
    for side, sign in (("left", -1.0), ("right", 1.0)):
        pial, tris = s[f"pial_{side}"]
        pial = untangle(pial, tris, f"pial_{side}")
        limit = MIDLINE_X_MM + sign * 0.5 * MIDLINE_GAP_MM
        pial = pial.copy()
        pial[:, 0] = np.maximum(pial[:, 0], limit) if sign > 0 else np.minimum(pial[:, 0], limit)
        near, closest, normal = _closest_near(pial, s["inner_skull"], MIN_CSF_MM)
        depth = np.einsum("ij,ij->i", closest - pial[near], normal)  # > 0 inside the skull
        shallow = near[depth < MIN_CSF_MM]
        pial[shallow] = (closest - MIN_CSF_MM * normal)[depth < MIN_CSF_MM]
        pial = untangle(pial, tris, f"pial_{side}")

        white, wtris = s[f"white_{side}"]
        white = white.copy()
        thick = np.linalg.norm(pial - white, axis=1)
        thin = thick < MIN_GM_MM
        white[thin] = pial[thin] - MIN_GM_MM * sr.vertex_normals(pial, tris)[thin]
        white = push_inside(untangle(white, wtris, f"white_{side}"), wtris, pial, tris, f"white_{side}")
        out[f"pial_{side}"], out[f"white_{side}"] = (pial, tris), (white, wtris)
    return out


def outer_skull(inner: np.ndarray, triangles: np.ndarray, scalp: tuple) -> np.ndarray:
    """Outer skull vertices: the inner skull offset outward, `BONE_MM` or less (see module doc)."""
    adj = sr.adjacency(triangles, len(inner))
    normals = sr.smooth_values(sr.vertex_normals(inner, triangles), adj, iterations=20)
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    gap = np.full(len(inner), np.inf)
    near, closest, _ = _closest_near(inner, scalp, BONE_MM + MIN_SCALP_MM)
    gap[near] = np.linalg.norm(closest - inner[near], axis=1)
    room = gap - MIN_SCALP_MM
    bone = np.minimum(sr.smooth_values(np.minimum(BONE_MM, room), adj, iterations=10), room)
    bone = np.maximum(bone, 1.0)
    v = inner + bone[:, None] * normals
    return untangle(v, triangles, "outer skull")


def _closest_near(points: np.ndarray, surface: tuple, within_mm: float):
    """Closest surface points for the points that may lie within `within_mm` of a surface.

    Returns the indices of those points, their closest points (mm) and unit outward
    pseudonormals there; points farther than within_mm from the surface may be left out.
    """
    from .geometry import Surface

    vertices, triangles = surface
    longest = np.linalg.norm(vertices[triangles] - vertices[np.roll(triangles, 1, axis=1)], axis=2).max()
    near = np.flatnonzero(cKDTree(vertices).query(points)[0] < within_mm + longest)
    closest, _, normal = Surface(vertices, triangles).closest(points[near])
    return near, closest, normal / np.linalg.norm(normal, axis=1, keepdims=True)


def check_nested(surfaces: dict) -> None:
    """Raise RuntimeError if any two compartment boundaries cross or one crosses itself."""
    names = list(surfaces)
    for i, a in enumerate(names):
        if len(sr.intersecting_pairs(*surfaces[a])):
            raise RuntimeError(f"template head: surface {a} intersects itself")
        for b in names[i + 1:]:
            n = len(sr.intersecting_pairs(*surfaces[a], *surfaces[b]))
            if n:
                raise RuntimeError(f"template head: surfaces {a} and {b} cross ({n} triangle pairs)")


def repaired_surfaces(progress=None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The compartment boundaries, repaired and derived, at the source resolution.

    Keys, innermost first: white_left, white_right, pial_left, pial_right, inner_skull,
    outer_skull, scalp; values (vertices (n, 3) mm, triangles (k, 3)), outward oriented.
    """
    s = fsaverage_surfaces()
    if progress:
        progress("repair")
    inner, tris = s["inner_skull"]
    s["inner_skull"] = (untangle(inner, tris, "inner_skull"), tris)
    s = repair_brain(s)
    s["outer_skull"] = (outer_skull(*s["inner_skull"], s["scalp"]), tris)
    order = ("white_left", "white_right", "pial_left", "pial_right", "inner_skull", "outer_skull", "scalp")
    return {name: s[name] for name in order}


def refine(surface: tuple, max_edge_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Split the surface at edge midpoints while its median edge exceeds sqrt(2) max_edge_mm,
    which leaves the median edge within a factor sqrt(2) of max_edge_mm or below it."""
    v, t = surface
    while np.median(np.linalg.norm(v[t] - v[np.roll(t, 1, axis=1)], axis=2)) > np.sqrt(2) * max_edge_mm:
        v, t = sr.subdivide(v, t)
    return v, t


_TISSUE_OF = {"white_left": 1, "white_right": 1, "pial_left": 2, "pial_right": 2,
              "inner_skull": 3, "outer_skull": 4, "scalp": 5}
"""Tissue inside each surface (and outside the surfaces nested in it)."""
_HOLES = {"white_left": (), "white_right": (), "pial_left": ("white_left",),
          "pial_right": ("white_right",), "inner_skull": ("pial_left", "pial_right"),
          "outer_skull": ("inner_skull",), "scalp": ("outer_skull",)}


def mesh_surfaces(surfaces: dict, max_edge_mm: float) -> TetMesh:
    """Tetrahedra between the nested surfaces (gmsh HXT Delaunay, no surface remeshing)."""
    from .sphere import gmsh_session, mesh_from_gmsh

    with gmsh_session() as gmsh:
        model, geo = gmsh.model, gmsh.model.geo
        offset, entity, loop = 1, {}, {}
        for i, (name, (v, t)) in enumerate(surfaces.items(), start=1):
            model.addDiscreteEntity(2, i)
            model.mesh.addNodes(2, i, np.arange(offset, offset + len(v)), v.ravel())
            model.mesh.addElementsByType(i, 2, [], (t + offset).ravel())
            offset += len(v)
            entity[name] = i
            loop[name] = geo.addSurfaceLoop([i])
        volumes: dict[int, list[int]] = {}
        for name, holes in _HOLES.items():
            vol = geo.addVolume([loop[name]] + [loop[h] for h in holes])
            volumes.setdefault(_TISSUE_OF[name], []).append(vol)
        geo.synchronize()
        for tag, vols in volumes.items():
            model.addPhysicalGroup(3, vols, tag)
        boundaries: dict[int, list[int]] = {}
        for name, i in entity.items():
            boundaries.setdefault(1000 + _TISSUE_OF[name], []).append(i)
        for tag, ids in boundaries.items():
            model.addPhysicalGroup(2, ids, tag)
        gmsh.option.setNumber("Mesh.MeshSizeMax", max_edge_mm)
        gmsh.option.setNumber("Mesh.Algorithm3D", 10)     # HXT (one thread: reproducible)
        gmsh.option.setNumber("Mesh.Optimize", 1)
        model.mesh.generate(3)
        return mesh_from_gmsh(gmsh)


POSTERIOR_FOSSA_Y_MM = -20.0
"""Coronal plane in front of the posterior fossa (about the clivus in fsaverage space), mm."""


def fill_posterior_fossa(mesh: TetMesh, surfaces: dict) -> TetMesh:
    """Relabel as grey matter (2) the CSF tetrahedra that stand for cerebellum and brainstem.

    Those are the CSF tetrahedra whose barycentre lies farther than `FILL_MM` from the inner
    skull and from the pial surfaces, below the cerebrum (under the lowest pial point of its
    2 mm x 2 mm column, or of the neighbouring columns where it holds none) and behind the
    plane y = `POSTERIOR_FOSSA_Y_MM`. Distances are taken to the surface vertices after
    splitting the surfaces to a median edge of 0.8 mm (accurate to about 0.5 mm).
    """
    csf = np.flatnonzero(mesh.tags == 3)
    centre = mesh.barycenters[csf]
    pial = np.vstack([refine(surfaces[n], 1.0)[0] for n in ("pial_left", "pial_right")])
    skull = refine(surfaces["inner_skull"], 1.0)[0]
    far = np.ones(len(csf), bool)
    for vertices in (pial, skull):
        far &= np.isinf(cKDTree(vertices).query(centre, distance_upper_bound=FILL_MM)[0])
    origin = pial[:, :2].min(axis=0) - 2.0
    column = np.floor((pial[:, :2] - origin) / 2.0).astype(np.int64)
    shape = column.max(axis=0) + 1
    lowest = np.full(shape, np.inf)
    np.minimum.at(lowest, (column[:, 0], column[:, 1]), pial[:, 2])
    # a column in the 1 mm gap between the hemispheres takes its neighbours' lowest point
    lowest = np.where(np.isinf(lowest), minimum_filter(lowest, size=3, mode="nearest"), lowest)
    lowest[np.isinf(lowest)] = -np.inf         # columns without cortex: nothing lies below it
    cell = np.floor((centre[:, :2] - origin) / 2.0).astype(np.int64)
    inside = np.all((cell >= 0) & (cell < shape), axis=1)
    below = np.zeros(len(csf), bool)
    below[inside] = centre[inside, 2] < lowest[cell[inside, 0], cell[inside, 1]]
    fill = far & below & (centre[:, 1] < POSTERIOR_FOSSA_Y_MM)
    tags = mesh.tags.copy()
    tags[csf[fill]] = 2
    return TetMesh(mesh.nodes, mesh.tets, tags, mesh.tris, mesh.tri_tags)


DEFAULT_MAX_EDGE_MM = 3.0
"""Default `max_edge_mm` of `template_head`."""


def template_head(max_edge_mm: float = DEFAULT_MAX_EDGE_MM, *, cache_dir=None,
                  progress: bool = True) -> TetMesh:
    """The built-in five-tissue template head (fsaverage), built on first use and cached.

    max_edge_mm: resolution, mm: each source surface is split at edge midpoints while its
        median edge exceeds sqrt(2) times this, and gmsh fills the volumes with tetrahedra up
        to this long (MeshSizeMax); edges on the surfaces follow the split surfaces (the
        fsaverage surfaces have 3 mm edges, 9 mm on the scalp). 3 mm gives about 1.03M
        tetrahedra, 6 mm about 0.62M.
    cache_dir: folder for the cached mesh; default $TMSIM_CACHE_DIR, else ~/.cache/tmsim.
        The file name holds a hash of the versions of MNE-Python, nilearn and gmsh,
        `TEMPLATE_VERSION` and max_edge_mm, so a change of any gives a new build.
    progress: show a progress bar over the build stages.
    Tags: 1 WM, 2 GM (cortex, and the cerebellum and brainstem), 3 CSF, 4 bone, 5 scalp;
    surface triangles 1001 white, 1002 pial, 1003 inner skull, 1004 outer skull, 1005 scalp.
    See the module docstring for how each compartment is made.
    """
    from tqdm.auto import tqdm

    from .io import read_msh, write_msh

    if not (isinstance(max_edge_mm, (int, float)) and 0.5 <= max_edge_mm <= 20):
        raise ValueError(f"max_edge_mm={max_edge_mm!r}: must be a number of mm in [0.5, 20]")
    path = cache_path(max_edge_mm, cache_dir)
    if path.exists():
        return _with_positions(read_msh(path))
    stages = ["load surfaces", "repair", "check", "refine", "tetrahedra", "posterior fossa", "write"]
    with tqdm(total=len(stages), desc="template head", unit="stage", disable=not progress) as bar:
        def stage(name):
            bar.set_postfix_str(name)
            if name != stages[0]:
                bar.update()

        stage(stages[0])
        surfaces = repaired_surfaces(stage)
        stage("check")
        check_nested(surfaces)          # refining does not move the surfaces: checked once
        stage("refine")
        fine = {name: refine(s, max_edge_mm) for name, s in surfaces.items()}
        stage("tetrahedra")
        mesh = mesh_surfaces(fine, max_edge_mm)
        stage("posterior fossa")
        mesh = fill_posterior_fossa(mesh, surfaces)
        stage("write")
        write_msh(path, mesh)
        bar.update()
    return _with_positions(mesh)


def _with_positions(mesh: TetMesh) -> TetMesh:
    """The head with MNE's 10-05 positions (fsaverage frame) projected onto its scalp."""
    from .eeg import standard_positions

    return mesh.with_eeg_positions(standard_positions(mesh))


def cache_root() -> Path:
    """tmsim's cache folder: $TMSIM_CACHE_DIR, else ~/.cache/tmsim."""
    return Path(os.environ.get("TMSIM_CACHE_DIR") or Path.home() / ".cache" / "tmsim")


def cache_path(max_edge_mm: float, cache_dir=None) -> Path:
    """Where `template_head(max_edge_mm)` is cached (see its cache_dir)."""
    if cache_dir is None:
        cache_dir = cache_root()
    key = json.dumps({**source_versions(), "template": TEMPLATE_VERSION,
                      "max_edge_mm": float(max_edge_mm)}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return Path(cache_dir) / f"template_head_{digest}.msh"


QUALITY_ELECTRODES = ("Fp1", "F3", "C3", "Cz", "P4", "O2", "T7")
"""Electrodes under which `template_quality` reports the layers."""


def template_quality(mesh: TetMesh, electrodes=QUALITY_ELECTRODES, depth_mm: float = 50.0) -> dict:
    """Mesh quality and layer thicknesses of a template head.

    Returns {"tissues": efield.mesh_quality(mesh) (per tag: n_tets, volume_ml, inverted,
    degenerate, shape and dihedral figures), "layers": {electrode: [(tissue name, from_mm,
    to_mm), ...]}}: the tissues met walking depth_mm inward along the scalp normal from the
    scalp point under each electrode (depths in mm from the scalp).
    """
    from .geometry import tissues_along
    from .mesh import TISSUE_NAMES, mesh_quality
    from .placement import Placement

    layers = {}
    for name in electrodes:
        pose = Placement.on_scalp(mesh, name, distance_mm=0.0)
        runs = tissues_along(mesh, pose.centre_mm, pose.z_axis, depth_mm)
        layers[name] = [(TISSUE_NAMES.get(tag, "outside"), start, end) for tag, start, end in runs]
    return {"tissues": mesh_quality(mesh), "layers": layers}
