"""Size of the built-in heads before they are meshed, so that a resolution that cannot fit is
refused before any work."""

from __future__ import annotations

MAX_TETRAHEDRA = 8_000_000
"""Most tetrahedra of a built-in head (about 16 GB for the FEM solve)."""


def estimated_tetrahedra(model: str, max_edge_mm: float) -> float:
    """Tetrahedra of the built-in head `model` ("sphere" or "template") at max_edge_mm, scaling
    as edge^-3 from the sphere's 1.0e5 at 6 mm and the template's 1.03M at 3 mm (0.62M at 6 mm:
    its surfaces stay at 3 mm)."""
    if model == "sphere":
        return 1.0e5 * (6.0 / max_edge_mm) ** 3
    if model == "template":
        return max(1.03e6 * (3.0 / max_edge_mm) ** 3, 0.62e6)
    raise ValueError(f"model={model!r}: expected \"sphere\" or \"template\"")


def check_head_size(model: str, max_edge_mm: float, what: str) -> float:
    """The estimated tetrahedra of the built-in head; ValueError naming `what` (the argument or
    key that set max_edge_mm) and the smallest edge allowed if they exceed MAX_TETRAHEDRA."""
    tets = estimated_tetrahedra(model, max_edge_mm)
    if tets > MAX_TETRAHEDRA:
        least = max_edge_mm * (tets / MAX_TETRAHEDRA) ** (1 / 3)
        raise ValueError(f"{what} = {max_edge_mm!r} gives about {tets:.3g} tetrahedra, more than "
                         f"MAX_TETRAHEDRA = {MAX_TETRAHEDRA:.0e}: must be at least {least:.2g} mm for the "
                         f"{model} head")
    return tets
