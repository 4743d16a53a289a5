"""tmsim.efield: finite-element E-fields of TMS coils in head meshes (SimNIBS conventions).

Lengths in millimetres, fields in V/m, dI/dt in A/s. The FEM, the primary and analytic fields
and the targeting run in float64: each entry point turns JAX's 64-bit mode on for its own
computation (`efield.checks.x64`) and leaves the process's setting (jax_enable_x64) as it
found it, so importing efield changes nothing for other JAX code such as neurons.
"""

from .analytic import analytic_sphere_field
from .coil import Coil, CoilFormatError, circular_coil, figure8_70mm, figure8_coil
from .conductivity import DEFAULT_CONDUCTIVITY
from .cortex import CorticalLayer, cortical_layer, field_at
from .eeg import project_to_scalp, read_eeg_positions, standard_positions, write_eeg_positions
from .geometry import containing_tets, locate_tags, tissues_along
from .io import MshFormatError, read_msh, write_msh
from .mesh import TISSUE_NAMES, TetMesh, mesh_quality
from .placement import Placement, check_clearance
from .primary import coil_dadt
from .result import EFieldResult
from .simulate import simulate
from .solver import FieldSolver, SolverError
from .sphere import sphere_head
from .subject import load_subject
from .targeting import Target, TargetingResult, optimize_placement
from .template import template_head, template_quality
from .vtu import write_vtu

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
