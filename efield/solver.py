"""FieldSolver: one FEM set-up per mesh, reused for any number of coil placements."""

from __future__ import annotations

import os
import time
import warnings
from contextlib import contextmanager
from functools import cached_property, partial
from typing import Mapping

import jax
import jax.numpy as jnp
import numpy as np
import pyamg
import scipy.sparse.linalg as spla

from . import fem
from .checks import finite_number, whole_number, x64
from .conductivity import element_conductivity
from .mesh import TetMesh

BACKENDS = ("auto", "scipy", "jax")

AMG_OPTIONS = dict(
    strength=("symmetric", {"theta": 0.02}),
    smooth="energy",
    presmoother=("gauss_seidel", {"sweep": "forward"}),
    postsmoother=("gauss_seidel", {"sweep": "backward"}),
)
"""pyamg smoothed aggregation for P1 head meshes: energy-minimising prolongators and a small
strength threshold halve the CG iterations of pyamg's defaults on sphere heads (14 instead
of 34 at 1M tetrahedra); forward then backward Gauss-Seidel keeps the V-cycle symmetric."""


class SolverError(RuntimeError):
    """The linear solve did not reach its tolerance."""


def checked_didt(didt) -> float:
    """dI/dt in A/s as a float: any finite non-zero number (a negative one reverses the
    current, zero would give no field at all); TypeError or ValueError naming `didt` else."""
    try:
        value = finite_number(didt, "didt", unit="A/s")
    except ValueError:
        value = 0.0
    if value == 0:
        raise ValueError(f"didt={didt!r}: must be a finite non-zero number (A/s), e.g. 1e6; a "
                         "negative one reverses the current")
    return value


class FieldSolver:
    """P1 FEM of the TMS-induced field on one mesh, set up once.

    mesh: the head (mm); conductivity: {tag: S/m} overriding SimNIBS defaults. The node order
        of a tetrahedron does not matter (inverted ones are solved as they are); degenerate,
        zero-volume tetrahedra are refused.
    backend: "scipy" runs the conjugate gradients with compiled SciPy/pyamg kernels on the host
        (fastest on CPUs; Gauss-Seidel smoothing), "jax" runs them on JAX's device (GPUs)
        with Chebyshev smoothing and all columns at once; "auto" picks "jax" when JAX's
        default backend is not the CPU.
    rtol: relative residual ||b - K x|| / ||b|| at which each solve stops.
    recovered: report E with the recovered potential gradient (`fem.recover_gradient`,
        second-order inside each tissue) instead of the raw element gradient.
    memory_limit_bytes: memory a batch may use; None asks the device (JAX memory_stats,
        else the host's available memory). `solve` refuses a batch that `memory_plan` says
        will not fit, before allocating it.
    Both backends share the smoothed-aggregation hierarchy (pyamg, float32) and reach the
    same tolerance in float64; solutions are differentiable with respect to the right-hand
    side on either backend. The set-up, `fields`, `potential` and `solve` run in JAX's
    64-bit mode (`efield.checks.x64`) whatever the process's setting.
    """

    @x64
    def __init__(self, mesh: TetMesh, conductivity: Mapping[int, float] | None = None, *,
                 backend: str = "auto", rtol: float = 1e-8, maxiter: int = 500,
                 recovered: bool = True, memory_limit_bytes: int | None = None):
        if not isinstance(mesh, TetMesh):
            raise TypeError(f"mesh must be an efield.TetMesh, got {type(mesh).__name__}")
        if backend not in BACKENDS:
            raise ValueError(f"backend={backend!r}: choose one of {BACKENDS}")
        if not finite_number(rtol, "rtol", 0.0, strict=True) < 1:
            raise ValueError(f"rtol={rtol!r}: must lie in (0, 1)")
        whole_number(maxiter, "maxiter")
        if backend == "auto":
            backend = "scipy" if jax.default_backend() == "cpu" else "jax"
        self.mesh, self.backend, self.rtol, self.maxiter = mesh, backend, float(rtol), int(maxiter)
        self.recovered = bool(recovered)
        self.memory_limit_bytes = memory_limit_bytes
        self.timings: dict[str, float] = {}
        self.iterations: list[int] = []
        self.failures: list[str] = []
        with self._timed("assembly"):
            self.sigma = element_conductivity(mesh.tags, conductivity)
            geometry = fem.p1_geometry(mesh.nodes, mesh.tets, self.sigma)
            self.ground_node = 0
            self.stiffness = fem.ground(fem.stiffness_matrix(geometry), self.ground_node)
            self.geometry = jax.tree.map(jnp.asarray, geometry)
        with self._timed("preconditioner"):
            self.amg = pyamg.smoothed_aggregation_solver(self.stiffness.astype(np.float32), **AMG_OPTIONS)
        self.potential = _symmetric_solve(self._solve_device if backend == "jax" else self._solve_host)

    @contextmanager
    def _timed(self, name):
        t0 = time.perf_counter()
        yield
        self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - t0

    @cached_property
    def _device(self):
        """Stiffness (float64) and multigrid hierarchy (float32) on JAX's device."""
        from jax.experimental import sparse as jsparse

        from .multigrid import hierarchy_from_pyamg

        with self._timed("device_setup"):
            return (jsparse.BCSR.from_scipy_sparse(self.stiffness),
                    hierarchy_from_pyamg(self.amg, jnp.float32))

    def _solve_device(self, b: jax.Array) -> jax.Array:
        """K x = b for the columns of b (n, k), on JAX's device."""
        from .multigrid import pcg

        K, h = self._device
        x, its, rel = pcg(K, h, b.at[self.ground_node].set(0.0), self.rtol, self.maxiter)
        jax.debug.callback(self._check, its, jnp.max(rel) <= self.rtol)
        return x

    def _solve_host(self, b: jax.Array) -> jax.Array:
        """K x = b for the columns of b (n, k), with SciPy CG and the pyamg V-cycle.

        A concrete b (an eager call, the VJP's solves included) is solved here, in the calling
        thread. Only under a transformation (jit) does b go through a host callback, whose
        arguments JAX copies on a thread of its CPU pool: where the process may use a single
        core that pool has one thread, the one the callback runs on, and the solve could hang.

        In the callback, b and x cross to the host and back as pairs of uint32 words, bit for
        bit: XLA may run the callback on a thread of its own, where JAX's 64-bit mode (a
        per-thread setting, see `efield.checks.x64`) is off and float64 arrays would be cut to
        float32.
        """
        if not isinstance(b, jax.core.Tracer):
            return jnp.asarray(self._cg_columns(np.asarray(b, np.float64)))
        words = jax.pure_callback(self._cg_words, jax.ShapeDtypeStruct(b.shape + (2,), jnp.uint32),
                                  jax.lax.bitcast_convert_type(jnp.asarray(b, jnp.float64), jnp.uint32))
        return jax.lax.bitcast_convert_type(words, jnp.float64)

    def _cg_words(self, words) -> np.ndarray:
        """_cg_columns on b and x given as uint32 words (..., 2) of float64 values."""
        b = np.ascontiguousarray(words, np.uint32).view(np.float64)[..., 0]
        return self._cg_columns(b).view(np.uint32).reshape(b.shape + (2,))

    def _cg_columns(self, b) -> np.ndarray:
        b = np.array(b, np.float64)
        b[self.ground_node] = 0.0
        precond = self.amg.aspreconditioner()
        M = spla.LinearOperator(self.stiffness.shape, dtype=np.float64,
                                matvec=lambda r: precond.matvec(r.astype(np.float32)))
        x = np.zeros_like(b)
        for j in range(b.shape[1]):
            count = [0]
            x[:, j], info = spla.cg(self.stiffness, b[:, j], rtol=self.rtol, atol=0.0,
                                    maxiter=self.maxiter, M=M,
                                    callback=lambda _: count.__setitem__(0, count[0] + 1))
            self._check(count[0], info == 0)
        return x

    def _check(self, iterations, converged):
        """Record a solve's iteration count and whether it reached the tolerance.

        Called from inside JAX computations, so it only records (and warns); the eager
        entry points raise SolverError afterwards.
        """
        self.iterations.append(int(iterations))
        if not converged:
            self.failures.append(f"conjugate gradients did not reach rtol={self.rtol:.1e} in "
                                 f"{int(iterations)} iterations (maxiter={self.maxiter})")
            warnings.warn(self.failures[-1], RuntimeWarning, stacklevel=2)

    @x64
    def fields(self, dadt_nodes: jax.Array) -> tuple[jax.Array, jax.Array]:
        """E per tetrahedron (k, m, 3) V/m and potential per node (k, n) V, float64.

        dadt_nodes: (k, n, 3) dA/dt at the mesh nodes, V/m, one row per placement (taken
        as float64). Differentiable (jax.grad/vjp) with respect to dadt_nodes. Called
        eagerly, it raises SolverError if a solve missed its tolerance; under a JAX
        transformation it warns.
        """
        dadt_nodes = jnp.asarray(dadt_nodes, jnp.float64)
        failed = len(self.failures)
        b = _batched_rhs(self.geometry, dadt_nodes)
        phi = self.potential(b.T).T
        E = _batched_field(self.geometry, phi, dadt_nodes, self.recovered)
        if not isinstance(phi, jax.core.Tracer):
            jax.block_until_ready(phi)
            if len(self.failures) > failed:
                raise SolverError(self.failures[-1])
        return E, phi

    @x64
    def solve(self, coil, placements, didt: float = 1e6, progress: bool = True,
              batch_size: int = 16) -> list:
        """EFieldResult for each placement, in order; `batch_size` placements per solve.

        didt: A/s, finite and non-zero (see `checked_didt`). Arguments are checked, and every
        placement's clearance from the scalp, before any solve.
        """
        from tqdm.auto import tqdm

        from .placement import Placement, check_clearance
        from .primary import coil_dadt
        from .result import EFieldResult

        didt = checked_didt(didt)
        batch_size = whole_number(batch_size, "batch_size")
        placements = [placements] if isinstance(placements, Placement) else list(placements)
        for i, pos in enumerate(placements):
            if not isinstance(pos, Placement):
                raise TypeError(f"placements[{i}] must be an efield.Placement, got {type(pos).__name__}")
            check_clearance(self.mesh, coil, pos)
        self.check_batch(min(batch_size, len(placements)), coil.n_elements)
        results = []
        bar = tqdm(total=len(placements), desc="E-field", unit="placement",
                   disable=not progress or len(placements) < 2)
        for start in range(0, len(placements), batch_size):
            batch = placements[start:start + batch_size]
            with self._timed("primary"):
                dadt = jax.block_until_ready(jnp.stack(
                    [coil_dadt(coil, jnp.asarray(p.matsimnibs), self.mesh.nodes, didt) for p in batch]))
            with self._timed("solve"):
                E, phi = jax.block_until_ready(self.fields(dadt))
            for k, pos in enumerate(batch):
                results.append(EFieldResult(self.mesh, np.asarray(E[k]), np.asarray(phi[k]),
                                            np.asarray(dadt[k]), pos, coil.name, didt))
            bar.update(len(batch))
        bar.close()
        return results


    def memory_plan(self, batch_size: int, n_coil_elements: int = 0) -> dict:
        """Estimated bytes a `solve` batch of batch_size placements holds at its peak.

        fixed: stiffness (CSR), multigrid hierarchy and element geometry; per_placement:
        dA/dt at the nodes, right-hand side, potential, CG work vectors (float64 Krylov
        vectors and float32 preconditioner vectors) and the field (m, 3), on the device
        and as the host copy of the result; transient: one placement's field recovery and
        one block of the primary field (coil_dadt's point-element pairs). Returns those,
        total_bytes, bytes_per_tet (total / tetrahedra) and available_bytes (None if unknown).
        """
        from .primary import DEFAULT_MAX_PAIRS

        n, m = self.mesh.n_nodes, self.mesh.n_tets
        K = self.stiffness
        fixed = K.data.nbytes + K.indices.nbytes + K.indptr.nbytes + _hierarchy_bytes(self.amg)
        fixed += sum(np.asarray(a).nbytes for a in jax.tree.leaves(self.geometry))
        per = 8 * (3 * n + 2 * n + 6 * n) + 4 * 4 * n + 2 * (24 * m + 32 * n)
        pairs = min(DEFAULT_MAX_PAIRS, n * max(n_coil_elements, 1))
        transient = 8 * 3 * (4 * m + 4 * m) + 8 * 4 * pairs
        total = fixed + transient + int(batch_size) * per
        return {"batch_size": int(batch_size), "fixed_bytes": int(fixed), "per_placement_bytes": int(per),
                "transient_bytes": int(transient), "total_bytes": int(total),
                "bytes_per_tet": total / m, "available_bytes": self.available_memory()}

    def available_memory(self) -> int | None:
        """Bytes a batch may use: memory_limit_bytes, else the free memory of JAX's device
        (memory_stats) when it reports one, else the host's MemAvailable; None if unknown."""
        if self.memory_limit_bytes is not None:
            return int(self.memory_limit_bytes)
        if self.backend == "jax":
            stats = jax.devices()[0].memory_stats() or {}
            if "bytes_limit" in stats:
                return int(stats["bytes_limit"] - stats.get("bytes_in_use", 0))
        return _host_available_memory()

    def check_batch(self, batch_size: int, n_coil_elements: int = 0) -> dict:
        """memory_plan(batch_size); MemoryError, before anything is allocated, if it does not fit."""
        plan = self.memory_plan(batch_size, n_coil_elements)
        free = plan["available_bytes"]
        if free is not None and plan["total_bytes"] > free:
            fits = (free - plan["fixed_bytes"] - plan["transient_bytes"]) // plan["per_placement_bytes"]
            hint = (f"use batch_size={int(fits)} or less" if fits >= 1 else
                    "even one placement does not fit: use a coarser mesh or a larger device")
            raise MemoryError(
                f"FieldSolver: a batch of {batch_size} placements on {self.mesh.n_tets} tetrahedra "
                f"needs about {plan['total_bytes'] / 2**20:.1f} MiB ({plan['bytes_per_tet']:.0f} "
                f"bytes per tetrahedron) but {free / 2**20:.1f} MiB are available; {hint}")
        return plan


def _hierarchy_bytes(ml) -> int:
    """Bytes of a pyamg hierarchy's matrices (A, P, R per level)."""
    total = 0
    for level in ml.levels:
        for name in ("A", "P", "R"):
            M = getattr(level, name, None)
            if M is not None and hasattr(M, "data"):
                total += M.data.nbytes + getattr(M, "indices", np.zeros(0)).nbytes
    return total


def _host_available_memory() -> int | None:
    """MemAvailable from /proc/meminfo, else free physical pages; None if neither is known."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


@jax.jit
def _batched_rhs(geometry, dadt_nodes):
    """fem.rhs for each placement, one at a time so that memory does not grow with the batch."""
    return jax.lax.map(lambda a: fem.rhs(geometry, a), dadt_nodes)


@partial(jax.jit, static_argnums=3)
def _batched_field(geometry, potential, dadt_nodes, recovered):
    """fem.total_field for each placement, one at a time."""
    return jax.lax.map(lambda pa: fem.total_field(geometry, *pa, recovered), (potential, dadt_nodes))


def _symmetric_solve(apply):
    """Wrap x = apply(b) = K^-1 b (K symmetric) so that its VJP is another solve with K; the
    wrapper takes b as float64 and runs in JAX's 64-bit mode (`efield.checks.x64`)."""

    @jax.custom_vjp
    def solve(b):
        return apply(b)

    def forward(b):
        return apply(b), None

    def backward(_, x_bar):
        return (apply(x_bar),)

    solve.defvjp(forward, backward)

    def potential(b):
        """x = K^-1 b (float64) for the columns of b (n, k); differentiable."""
        return solve(jnp.asarray(b, jnp.float64))

    potential.__qualname__ = "FieldSolver.potential"
    return x64(potential)
