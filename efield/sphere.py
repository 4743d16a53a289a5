"""Built-in concentric-sphere head, meshed with gmsh."""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np

from .mesh import TetMesh

SPHERE_TAGS = {1: (2,), 2: (2, 5), 3: (2, 4, 5), 4: (2, 3, 4, 5), 5: (1, 2, 3, 4, 5)}
"""Default tissue tags of the shells, innermost first, by number of radii: the inner ball is
grey matter (2); then CSF (3), bone (4) and scalp (5) as layers are added; with five radii
the core is white matter (1)."""


@contextmanager
def gmsh_session():
    """An initialised, quiet gmsh with a fresh model; restores gmsh's state on exit.

    gmsh is told not to take over Ctrl-C (its default resets SIGINT to the OS default, which
    kills the process): Python's KeyboardInterrupt stays, raised once the running gmsh call
    returns, so clean-up still runs.
    """
    import gmsh

    owner = not gmsh.isInitialized()
    if owner:
        gmsh.initialize(readConfigFiles=False, interruptible=False)
    gmsh.option.setNumber("General.Terminal", 0)
    gmsh.option.setNumber("General.NumThreads", 1)   # reproducible meshes
    gmsh.model.add("tmsim")
    try:
        yield gmsh
    finally:
        gmsh.model.remove()
        if owner:
            gmsh.finalize()


def sphere_head(radii_mm=(85.0, 90.0, 95.0), max_edge_mm: float = 8.0, tags=None,
                centre_mm=(0.0, 0.0, 0.0)) -> TetMesh:
    """Concentric-sphere head meshed with tetrahedra.

    radii_mm: shell radii in mm, ascending (1 to 5 of them).
    max_edge_mm: target edge length, mm (gmsh's MeshSizeMax: held on the surfaces, interior
        edges scatter around it); for the default radii 12 mm gives about 18k tetrahedra,
        6 mm about 96k and 2.5 mm about 1M.
    tags: tissue tag per shell, innermost first; defaults to `SPHERE_TAGS`, e.g. (2, 4, 5)
        (grey matter, bone, scalp) for three radii.
    Surface triangles of each shell's outer boundary carry 1000 + its tag, as in SimNIBS.
    """
    radii = np.asarray(radii_mm, float).ravel()
    if not (1 <= len(radii) <= 5) or np.any(radii <= 0) or np.any(np.diff(radii) <= 0):
        raise ValueError(f"radii_mm={tuple(radii_mm)}: give 1 to 5 positive radii in ascending order")
    tags = tuple(SPHERE_TAGS[len(radii)] if tags is None else tags)
    if len(tags) != len(radii):
        raise ValueError(f"tags={tags}: need one tag per radius ({len(radii)})")
    if not max_edge_mm > 0:
        raise ValueError(f"max_edge_mm={max_edge_mm}: must be positive")
    centre = np.asarray(centre_mm, float)

    with gmsh_session() as gmsh:
        occ = gmsh.model.occ
        balls = [occ.addSphere(*centre, r) for r in radii]
        occ.fragment([(3, balls[-1])], [(3, b) for b in balls[:-1]])
        occ.synchronize()
        _tag_shells(gmsh, radii, tags)
        gmsh.option.setNumber("Mesh.MeshSizeMax", max_edge_mm)
        gmsh.option.setNumber("Mesh.MeshSizeMin", 0.0)
        gmsh.option.setNumber("Mesh.MeshSizeFromCurvature", 0)
        gmsh.option.setNumber("Mesh.Algorithm", 6)      # Frontal-Delaunay surfaces
        gmsh.option.setNumber("Mesh.Algorithm3D", 10)   # HXT: parallel Delaunay
        gmsh.option.setNumber("Mesh.Optimize", 1)
        gmsh.model.mesh.generate(3)
        return mesh_from_gmsh(gmsh)


def _tag_shells(gmsh, radii, tags):
    """Physical groups: volumes by tissue tag, shell surfaces by 1000 + tag."""
    model = gmsh.model
    by_tag: dict[int, list[int]] = {}
    for dim, vol in model.getEntities(3):
        bbox = np.array(model.getBoundingBox(dim, vol))
        outer = 0.5 * (bbox[3] - bbox[0])
        shell = int(np.argmin(np.abs(radii - outer)))
        by_tag.setdefault(tags[shell], []).append(vol)
    for tag, vols in by_tag.items():
        model.addPhysicalGroup(3, vols, tag)
    for dim, surf in model.getEntities(2):
        bbox = np.array(model.getBoundingBox(dim, surf))
        shell = int(np.argmin(np.abs(radii - 0.5 * (bbox[3] - bbox[0]))))
        model.addPhysicalGroup(2, [surf], 1000 + tags[shell])


def mesh_from_gmsh(gmsh) -> TetMesh:
    """The meshed physical groups as a TetMesh (unused nodes dropped)."""
    model = gmsh.model
    node_tags, coords, _ = model.mesh.getNodes()
    index = np.zeros(int(node_tags.max()) + 1, np.int64)
    index[node_tags] = np.arange(len(node_tags))
    coords = coords.reshape(-1, 3)

    def elements(dim, etype, nper):
        blocks, block_tags = [], []
        for _, phys in model.getPhysicalGroups(dim):
            for ent in model.getEntitiesForPhysicalGroup(dim, phys):
                _, nodes = model.mesh.getElementsByType(etype, ent)
                conn = index[nodes.astype(np.int64)].reshape(-1, nper)
                blocks.append(conn)
                block_tags.append(np.full(len(conn), phys))
        return np.concatenate(blocks), np.concatenate(block_tags)

    tets, tags = elements(3, 4, 4)
    tris, tri_tags = elements(2, 2, 3)
    used = np.unique(np.concatenate([tets.ravel(), tris.ravel()]))
    renumber = np.full(len(coords), -1, np.int64)
    renumber[used] = np.arange(len(used))
    return TetMesh(coords[used], renumber[tets], tags, renumber[tris], tri_tags)
