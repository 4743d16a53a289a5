"""tmsim.efield: finite-element E-fields of TMS coils in head meshes (SimNIBS conventions).

Lengths in millimetres, fields in V/m, dI/dt in A/s. The FEM runs in float64, so importing
this package enables JAX's 64-bit mode; code that wants float32 asks for it explicitly.
"""

import jax

jax.config.update("jax_enable_x64", True)

from .mesh import TISSUE_NAMES, TetMesh  # noqa: E402

__all__ = ["TISSUE_NAMES", "TetMesh"]
