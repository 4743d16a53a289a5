"""One-call E-field simulation."""

from __future__ import annotations

from typing import Mapping

from .coil import Coil
from .mesh import TetMesh
from .placement import Placement, check_clearance
from .result import EFieldResult
from .solver import FieldSolver, checked_didt


def simulate(mesh: TetMesh, coil: Coil, placement: Placement, didt: float = 1e6,
             conductivity: Mapping[int, float] | None = None, **solver_options) -> EFieldResult:
    """E-field (V/m per tetrahedron) of `coil` at `placement` on `mesh` for dI/dt in A/s.

    conductivity overrides SimNIBS defaults per tag (S/m); solver_options go to FieldSolver.
    For many placements on one mesh, set up a FieldSolver once and call its `solve`.
    didt (finite, non-zero; negative reverses the current) and the coil's clearance from the
    scalp are checked before the solver is set up.
    """
    checked_didt(didt)
    if not isinstance(placement, Placement):
        raise TypeError(f"placement must be an efield.Placement, got {type(placement).__name__}")
    check_clearance(mesh, coil, placement)          # also checks the types of mesh and coil
    return FieldSolver(mesh, conductivity, **solver_options).solve(coil, [placement], didt)[0]
