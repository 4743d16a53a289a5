"""P1 finite elements for div(sigma grad phi) = -div(sigma dA/dt), in SI units.

Pure functions: geometry, stiffness assembly, right-hand side and field recovery. The
right-hand side and the field are JAX functions of a P1Geometry pytree (batched over
placements with vmap, differentiable); the stiffness matrix is assembled once, in SciPy CSR.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

from .checks import x64


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class P1Geometry:
    """Per-element P1 data of a mesh, SI units.

    tets: (m, 4) node indices; grads: (m, 4, 3) gradients of the hat functions, 1/m;
    volumes: (m,) m^3; sigma: (m,) S/m; n_nodes: number of nodes.
    """

    tets: np.ndarray
    grads: np.ndarray
    volumes: np.ndarray
    sigma: np.ndarray
    n_nodes: int = field(metadata=dict(static=True))
    tissue_nodes: np.ndarray | None = None
    n_tissue_nodes: int = field(default=0, metadata=dict(static=True))


def p1_geometry(nodes_mm: np.ndarray, tets: np.ndarray, sigma: np.ndarray) -> P1Geometry:
    """Hat-function gradients and volumes of every tetrahedron (nodes in mm, results SI).

    Node order does not matter: an inverted tetrahedron (negative signed volume) gets the
    same gradients and volume as the same tetrahedron ordered right-handed. Degenerate
    (zero-volume) tetrahedra are a ValueError.
    """
    p = np.asarray(nodes_mm, np.float64)[tets] * 1e-3
    e1, e2, e3 = (p[:, i] - p[:, 0] for i in (1, 2, 3))
    c23, c31, c12 = np.cross(e2, e3), np.cross(e3, e1), np.cross(e1, e2)
    det = np.einsum("ij,ij->i", e1, c23)                 # 6 x signed volume
    scale = np.sqrt(np.einsum("ij,ij->i", e1, e1) * np.einsum("ij,ij->i", e2, e2)
                    * np.einsum("ij,ij->i", e3, e3))
    flat = np.abs(det) <= 1e-12 * scale
    if flat.any():
        raise ValueError(f"mesh: {int(flat.sum())} of {len(det)} tetrahedra are degenerate (zero "
                         f"volume; first: tetrahedron {int(np.argmax(flat))}): the mesh cannot be "
                         "solved")
    # the rows of the edge matrix are e1, e2, e3; its inverse has columns c23, c31, c12 / det,
    # which are the gradients of the barycentric coordinates lambda_1..3
    g123 = np.stack([c23, c31, c12], axis=1) / det[:, None, None]
    grads = np.concatenate([-g123.sum(axis=1, keepdims=True), g123], axis=1)
    tissue_nodes, n_tissue_nodes = _tissue_nodes(tets, sigma)
    return P1Geometry(np.asarray(tets, np.int64), grads, np.abs(det) / 6.0,
                      np.asarray(sigma, np.float64), len(nodes_mm), tissue_nodes, n_tissue_nodes)


def _tissue_nodes(tets: np.ndarray, sigma: np.ndarray):
    """Number each (node, conductivity) pair: nodes on an interface get one copy per side.

    Returns the (m, 4) copy index of each tetrahedron corner and the number of copies.
    """
    _, region = np.unique(sigma, return_inverse=True)
    key = np.asarray(tets, np.int64) * (int(region.max()) + 1) + region.reshape(-1, 1)
    _, copy_index = np.unique(key.ravel(), return_inverse=True)
    return copy_index.reshape(-1, 4), int(copy_index.max()) + 1


def stiffness_matrix(geom: P1Geometry) -> sp.csr_matrix:
    """K_ij = sum_e sigma_e V_e grad N_i . grad N_j, (n, n) CSR in S*m (SPD up to a constant)."""
    local = np.einsum("eic,ejc->eij", geom.grads, geom.grads)
    local *= (geom.sigma * geom.volumes)[:, None, None]
    rows = np.repeat(geom.tets, 4, axis=1).ravel()
    cols = np.tile(geom.tets, (1, 4)).ravel()
    n = geom.n_nodes
    return sp.coo_matrix((local.ravel(), (rows, cols)), shape=(n, n)).tocsr()


def ground(stiffness: sp.csr_matrix, node: int) -> sp.csr_matrix:
    """The stiffness with the potential of `node` fixed to 0 (its row and column made identity)."""
    keep = np.ones(stiffness.shape[0])
    keep[node] = 0.0
    mask = sp.diags(keep)
    pin = sp.csr_matrix(([1.0], ([node], [node])), shape=stiffness.shape)
    grounded = (mask @ stiffness @ mask + pin).tocsr()
    grounded.eliminate_zeros()
    grounded.sort_indices()
    return grounded


@x64
def element_average(geom: P1Geometry, node_values: jax.Array) -> jax.Array:
    """Mean of the four nodal values per tetrahedron: (n, 3) -> (m, 3)."""
    return node_values[geom.tets].mean(axis=1)


@x64
def rhs(geom: P1Geometry, dadt_nodes: jax.Array) -> jax.Array:
    """b_i = -sum_e sigma_e V_e (dA/dt)_e . grad N_i, with (dA/dt)_e the element mean.

    dadt_nodes: (n, 3) V/m at the nodes. Returns (n,) in A (the current source per node).
    """
    dadt_e = element_average(geom, dadt_nodes)
    local = -jnp.einsum("eic,ec->ei", geom.grads, dadt_e) * (geom.sigma * geom.volumes)[:, None]
    return jax.ops.segment_sum(local.ravel(), geom.tets.ravel(), num_segments=geom.n_nodes)


@x64
def total_field(geom: P1Geometry, potential: jax.Array, dadt_nodes: jax.Array,
                recovered: bool = True) -> jax.Array:
    """E = -grad(phi) - dA/dt per tetrahedron, (m, 3) V/m; potential (n,) V, dA/dt (n, 3) V/m.

    With `recovered`, grad(phi) is the recovered gradient (`recover_gradient`) rather than
    the raw, piecewise-constant P1 gradient.
    """
    grad_phi = jnp.einsum("eic,ei->ec", geom.grads, potential[geom.tets])
    if recovered:
        grad_phi = recover_gradient(geom, grad_phi)
    return -grad_phi - element_average(geom, dadt_nodes)


@x64
def recover_gradient(geom: P1Geometry, grad: jax.Array) -> jax.Array:
    """Gradient recovery by volume-weighted nodal averaging within each conductivity region.

    The element gradients (m, 3) are averaged onto the nodes, one copy of an interface node
    per region so that the jump of the normal component is kept, and the element value is
    the mean of its corners: the recovered field at the barycentre. This is the simple
    averaging form of Zienkiewicz-Zhu recovery; it is second-order accurate inside smooth
    regions, where the raw P1 gradient is first-order.
    """
    w = geom.volumes[:, None]
    index = geom.tissue_nodes.ravel()
    weighted = jnp.repeat(grad * w, 4, axis=0)
    total = jax.ops.segment_sum(weighted, index, num_segments=geom.n_tissue_nodes)
    weight = jax.ops.segment_sum(jnp.repeat(w, 4, axis=0), index,
                                 num_segments=geom.n_tissue_nodes)
    nodal = total / weight
    return nodal[geom.tissue_nodes].mean(axis=1)
