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


def p1_geometry(nodes_mm: np.ndarray, tets: np.ndarray, sigma: np.ndarray) -> P1Geometry:
    """Hat-function gradients and volumes of every tetrahedron (nodes in mm, results SI)."""
    p = np.asarray(nodes_mm, np.float64)[tets] * 1e-3
    edges = p[:, 1:] - p[:, :1]                      # rows: p1-p0, p2-p0, p3-p0
    det = np.linalg.det(edges)
    if np.any(np.abs(det) <= 1e-14 * np.abs(edges).max() ** 3):
        bad = int(np.argmin(np.abs(det)))
        raise ValueError(f"degenerate tetrahedron {bad} (zero volume): the mesh cannot be solved")
    inv = np.linalg.inv(edges)                       # columns: gradients of lambda_1..3
    g123 = np.swapaxes(inv, 1, 2)
    grads = np.concatenate([-g123.sum(axis=1, keepdims=True), g123], axis=1)
    return P1Geometry(np.asarray(tets, np.int64), grads, np.abs(det) / 6.0,
                      np.asarray(sigma, np.float64), len(nodes_mm))


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


def element_average(geom: P1Geometry, node_values: jax.Array) -> jax.Array:
    """Mean of the four nodal values per tetrahedron: (n, 3) -> (m, 3)."""
    return node_values[geom.tets].mean(axis=1)


def rhs(geom: P1Geometry, dadt_nodes: jax.Array) -> jax.Array:
    """b_i = -sum_e sigma_e V_e (dA/dt)_e . grad N_i, with (dA/dt)_e the element mean.

    dadt_nodes: (n, 3) V/m at the nodes. Returns (n,) in A (the current source per node).
    """
    dadt_e = element_average(geom, dadt_nodes)
    local = -jnp.einsum("eic,ec->ei", geom.grads, dadt_e) * (geom.sigma * geom.volumes)[:, None]
    return jax.ops.segment_sum(local.ravel(), geom.tets.ravel(), num_segments=geom.n_nodes)


def total_field(geom: P1Geometry, potential: jax.Array, dadt_nodes: jax.Array) -> jax.Array:
    """E = -grad(phi) - dA/dt per tetrahedron, (m, 3) V/m; potential (n,) V, dA/dt (n, 3) V/m."""
    grad_phi = jnp.einsum("eic,ei->ec", geom.grads, potential[geom.tets])
    return -grad_phi - element_average(geom, dadt_nodes)
