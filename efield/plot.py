"""Pictures of E-fields: |E| on a slice through the coil and on a tissue surface.

matplotlib is imported when a function is called, not with the package.
"""

from __future__ import annotations

import numpy as np

from .mesh import TISSUE_NAMES
from .result import EFieldResult


def plot_result(result: EFieldResult, path=None, tissue: int | None = None, dpi: int = 120, coil=None):
    """Two panels: |E| on the slice through the coil centre along the handle, and on the
    outer surface of `tissue` (default: grey matter if the mesh has it, else the innermost
    tissue) seen from the coil; with `coil` (the Coil that was placed), its outline on the
    surface panel.

    Returns the matplotlib Figure; with `path`, also saves it (PNG by suffix).
    """
    from tmsim_io import figure

    fig = figure(path, figsize=(11, 4.8), constrained_layout=True)
    axes = fig.subplots(1, 2)
    field_on_slice(axes[0], result)
    field_on_surface(axes[1], result, tissue)
    if coil is not None:
        coil_outline(axes[1], coil)
    if path is not None:
        from tmsim_io import save_figure

        save_figure(fig, path, dpi=dpi)
    return fig


def plot_score_map(result, path=None, dpi: int = 120):
    """Two panels of a `TargetingResult`: the best score over handle angles at each candidate
    centre, on the scalp's tangent plane at the search centre (mm), with the best candidate,
    the refined pose and its handle; and the score against the handle angle at the best
    candidate centre. Returns the Figure; with `path`, also saves it (PNG by suffix)."""
    from tmsim_io import figure

    fig = figure(path, figsize=(11, 4.8), constrained_layout=True)
    axes = fig.subplots(1, 2)
    ax = axes[0]
    u, v = result.offsets_mm.T
    best = result.scores.max(axis=1)
    art = ax.scatter(u, v, c=best, s=120, cmap="viridis", marker="s")
    i, j = result.grid_best
    ax.plot(*result.offsets_mm[i], "o", mfc="none", mec="red", ms=14, label="best candidate")
    ru, rv = result.refined_offset_mm
    handle = result.patch.frame[:2] @ result.placement.y_axis
    ax.quiver([ru], [rv], [handle[0]], [handle[1]], color="red", scale=8, label="refined, handle")
    ax.set_aspect("equal")
    ax.set(xlabel="tangent offset e1 (mm)", ylabel="tangent offset e2 (mm)",
           title="best score over handle angles")
    ax.legend(loc="lower right", fontsize=8)
    fig.colorbar(art, ax=ax, label="score (V/m)")
    ax = axes[1]
    ax.plot(result.angles_deg, result.scores[i], "o-")
    ax.axhline(result.score, color="red", lw=0.8, label=f"refined {result.score:.4g} V/m")
    ax.set(xlabel="handle angle (deg)", ylabel="score (V/m)", title="at the best candidate centre")
    ax.legend(fontsize=8)
    if path is not None:
        from tmsim_io import save_figure

        save_figure(fig, path, dpi=dpi)
    return fig


def field_on_slice(ax, result: EFieldResult, thickness_mm: float | None = None):
    """|E| (V/m) of the tetrahedra cut by the plane through the coil centre spanned by the
    coil's y (handle) and z (depth) axes, in coil coordinates (mm)."""
    mesh, pos = result.mesh, result.placement
    rel = mesh.barycenters - pos.centre_mm
    if thickness_mm is None:
        thickness_mm = 1.5 * np.cbrt(np.median(mesh.volumes))
    near = np.abs(rel @ pos.x_axis) < thickness_mm / 2
    u, v = rel[near] @ pos.y_axis, -(rel[near] @ pos.z_axis)
    art = ax.tripcolor(u, v, result.magnE[near], shading="gouraud", cmap="viridis")
    return _label(ax, art, "along handle (mm)", "along coil axis (mm; coil at 0, head below)",
                  f"|E| in the coil's y-z plane, dI/dt = {result.didt:.3g} A/s")


def field_on_surface(ax, result: EFieldResult, tissue: int | None = None, depth_mm: float = 25.0):
    """|E| (V/m) on the outer surface of one tissue (default: grey matter if present, else the
    innermost tissue), the side facing the coil and within depth_mm of its point nearest the
    coil (so that deeper folds do not cover it), projected on the coil's x-y plane (mm)."""
    mesh, pos = result.mesh, result.placement
    if tissue is None:
        tissue = 2 if 2 in mesh.tissues else mesh.tissues[0]
    tissue = int(tissue)
    sub = mesh.subset(tissue)
    values = _node_average(sub.tets, sub.volumes, result.magnE[mesh.tags == tissue], sub.n_nodes)
    surf_nodes, tris = sub.outer_surface
    index = _match_rows(sub.nodes, surf_nodes)
    corners = surf_nodes[tris]
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    depth = corners.mean(axis=1) @ pos.z_axis
    facing = (normals @ pos.z_axis < 0) & (depth <= depth.min() + depth_mm)
    rel = surf_nodes - pos.centre_mm
    x, y = rel @ pos.x_axis, rel @ pos.y_axis
    art = ax.tripcolor(x, y, tris[facing], values[index], shading="gouraud", cmap="inferno")
    return _label(ax, art, "coil x (mm)", "coil y, handle (mm)",
                  f"|E| on the {TISSUE_NAMES.get(tissue, tissue)} surface facing the coil")


def coil_outline(ax, coil, *, max_points: int = 4000):
    """The coil's elements (dipoles and wire segment midpoints) in its own x-y plane (mm), the
    frame of field_on_surface, so that drawn on that panel they show where the coil sits over
    the field: dipoles blue where their moment points into the head (+z), red out of it,
    wire segments grey, and an arrow along +y, the handle. At most max_points elements are
    drawn. Returns ax."""
    dip, seg = coil.dipole_positions, coil.segment_positions
    colours = np.concatenate([np.where(coil.dipole_moments[:, 2] >= 0, "tab:blue", "tab:red"),
                              np.full(len(seg), "0.6")])
    points = np.concatenate([dip, seg])
    step = max(1, len(points) // max_points)
    ax.scatter(points[::step, 0], points[::step, 1], s=1.0, c=colours[::step], alpha=0.35,
               linewidths=0)
    reach = np.abs(points[:, :2]).max(initial=10.0)
    ax.annotate("handle", xy=(0, reach), xytext=(0, 0.6 * reach), ha="center",
                arrowprops=dict(arrowstyle="->", color="w"), color="w")
    return ax


def _label(ax, art, xlabel: str, ylabel: str, title: str):
    """Equal axes, labels, title and a |E| colour bar."""
    ax.set_aspect("equal")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.figure.colorbar(art, ax=ax, label="|E| (V/m)")
    return art


def _node_average(tets, volumes, values, n_nodes):
    """Volume-weighted mean of element values over the elements around each node."""
    total = np.zeros(n_nodes)
    weight = np.zeros(n_nodes)
    np.add.at(total, tets.ravel(), np.repeat(values * volumes, 4))
    np.add.at(weight, tets.ravel(), np.repeat(volumes, 4))
    return total / np.maximum(weight, np.finfo(float).tiny)


def _match_rows(nodes, points):
    """Index in `nodes` of each row of `points` (exact copies)."""
    from scipy.spatial import cKDTree

    return cKDTree(nodes).query(points)[1]
