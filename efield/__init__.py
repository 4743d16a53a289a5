"""tmsim.efield: finite-element E-fields of TMS coils in head meshes (SimNIBS conventions).

Lengths in millimetres, fields in V/m, dI/dt in A/s. The FEM runs in float64, so importing
this package enables JAX's 64-bit mode; code that wants float32 asks for it explicitly.
"""

import jax

jax.config.update("jax_enable_x64", True)

from .analytic import analytic_sphere_field  # noqa: E402
from .coil import Coil, CoilFormatError, circular_coil, figure8_70mm, figure8_coil  # noqa: E402
from .conductivity import DEFAULT_CONDUCTIVITY  # noqa: E402
from .cortex import CorticalLayer, cortical_layer, field_at  # noqa: E402
from .eeg import project_to_scalp, read_eeg_positions, standard_positions, write_eeg_positions  # noqa: E402
from .geometry import containing_tets, locate_tags, tissues_along  # noqa: E402
from .io import MshFormatError, read_msh, write_msh  # noqa: E402
from .mesh import TISSUE_NAMES, TetMesh, mesh_quality  # noqa: E402
from .placement import Placement, check_clearance  # noqa: E402
from .primary import coil_dadt  # noqa: E402
from .result import EFieldResult  # noqa: E402
from .simulate import simulate  # noqa: E402
from .solver import FieldSolver, SolverError  # noqa: E402
from .sphere import sphere_head  # noqa: E402
from .subject import load_subject  # noqa: E402
from .targeting import Target, TargetingResult, optimize_placement  # noqa: E402
from .template import template_head, template_quality  # noqa: E402
from .vtu import write_vtu  # noqa: E402

__all__ = [
    "Coil", "CoilFormatError", "CorticalLayer", "DEFAULT_CONDUCTIVITY", "EFieldResult", "FieldSolver",
    "MshFormatError", "Placement", "SolverError", "TISSUE_NAMES", "Target", "TargetingResult", "TetMesh",
    "analytic_sphere_field", "check_clearance", "circular_coil", "coil_dadt",
    "containing_tets", "cortical_layer", "field_at", "figure8_70mm", "figure8_coil",
    "load_subject", "locate_tags", "mesh_quality", "optimize_placement", "project_to_scalp",
    "read_eeg_positions", "read_msh", "simulate", "sphere_head", "standard_positions", "template_head",
    "template_quality",
    "tissues_along", "write_eeg_positions", "write_msh", "write_vtu",
]
