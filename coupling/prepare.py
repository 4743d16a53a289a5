"""From a run configuration to what every run needs before its session or course: head, coil,
placement, cortical patch, E-field, field at the neurons, motor threshold and intensities.

`prepare_run` is the one way to set a run up: `tmsim run`, `tmsim session`, sweeps, benchmarks
and validation scripts call it. One rule for intensities: "<p>% MSO" as it is, "<p>% RMT" of
the measured motor threshold (mso_from_rmt), an error naming the key if it passes 100 % MSO.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .config import BUILT_IN_HEADS, CoilConfig, ConfigError, HeadConfig, RunConfig, check_config, intensity
from .config import protocol as configured_protocol

SPHERE_RADII_MM = (80.0, 85.0, 90.0, 95.0)
"""The built-in sphere head: grey matter (r < 80 mm), CSF, bone, scalp; it carries MNE's
spherical 10-05 positions (radius 95 mm, +y anterior), so labels such as F3 work."""


def build_head(head: HeadConfig, *, progress: bool = False):
    """The head mesh of a [head] table: the built-in sphere (SPHERE_RADII_MM, with EEG
    positions) or template at max_edge_mm (progress: a bar while it is first built), a .msh file
    or an m2m folder."""
    import efield

    if head.model == "sphere":
        mesh = efield.sphere_head(radii_mm=SPHERE_RADII_MM, max_edge_mm=head.max_edge_mm)
        return mesh.with_eeg_positions(efield.standard_positions(mesh, "spherical_1005"))
    if head.model == "template":
        return efield.template_head(max_edge_mm=head.max_edge_mm, progress=progress)
    path = head_path(head)
    return efield.load_subject(path) if path.is_dir() else efield.read_msh(path)


def head_path(head: HeadConfig) -> Path:
    """The head file or m2m folder of head.model; ConfigError if there is none."""
    path = Path(head.model)
    if not (path.is_dir() or (path.suffix == ".msh" and path.is_file())):
        raise ConfigError(f"head.model = {head.model!r}: expected \"sphere\", \"template\", an existing .msh "
                          "file or m2m folder")
    return path


def build_coil(coil: CoilConfig):
    """The efield.Coil of coil.name (with its maximum dI/dt); ConfigError naming coil.name if it
    is unknown, unreadable or has no maximum dI/dt."""
    from efield.coil import load_coil

    try:
        loaded = load_coil(coil.name)
    except (ValueError, OSError) as err:
        raise ConfigError(f"coil.name = {coil.name!r}: {err}") from None
    if loaded.didt_max is None:
        raise ConfigError(f"coil.name = {coil.name!r}: the coil has no maximum dI/dt: intensities need one")
    return loaded


def point(value):
    """An EEG label as it is; coordinates as a float64 array (mm)."""
    return value if isinstance(value, str) else np.asarray(value, np.float64)


def build_placement(coil: CoilConfig, mesh):
    """The efield.Placement of a [coil] table on `mesh` (handle empty: posterior)."""
    import efield

    handle = None if coil.handle == "" else point(coil.handle)
    return efield.Placement.on_scalp(mesh, point(coil.centre), handle, distance_mm=coil.distance_mm)


def check_inputs(config: RunConfig, *, course: bool = True):
    """Everything about `config` that can be checked before any work: its keys together
    (check_config), the coil file and the head file; the coil (build_coil). ConfigError naming
    the key otherwise."""
    check_config(config, course=course)
    coil = build_coil(config.coil)
    if config.head.model not in BUILT_IN_HEADS:
        head_path(config.head)
    return coil


def percent_mso(config: RunConfig, key: str, rmt_percent_mso: float | None) -> float:
    """%MSO of protocol.<key> ("intensity" or "test_intensity"): "<p>% MSO" as it is, "<p>% RMT"
    of rmt_percent_mso (coupling.mso_from_rmt); ConfigError naming the key beyond 100 % MSO."""
    from .activation import mso_from_rmt

    value, unit = intensity(config, key)
    if unit == "mso":
        return value
    try:
        return mso_from_rmt(value, rmt_percent_mso)
    except ValueError as err:
        raise ConfigError(f"protocol.{key} = {getattr(config.protocol, key)!r}: {err}") from None


def patch_model(config: RunConfig):
    """The coupling.PatchModel of config's patch.scenario (coupling.scenario_model) with the
    calcium rule's rates of its [plasticity] table."""
    from .patch import PatchModel
    from .scenario import scenario_model

    base = PatchModel()
    rule = base.plasticity
    rates = dict(gamma_p_per_s=config.plasticity.gamma_p_per_s, gamma_d_per_s=config.plasticity.gamma_d_per_s)
    return scenario_model(config.patch.scenario, replace(base, plasticity=replace(rule, stdp=replace(
        rule.stdp, **rates))))


@dataclass(frozen=True, eq=False)
class PreparedRun:
    """What a run of `config` needs before its session or course. mesh: the head; coil (with
    its maximum dI/dt); placement; fem: the E-field result at the coil's maximum dI/dt; patch;
    field: E at every neuron; protocol; rmt_percent_mso: the resting motor threshold, %MSO
    (None when no intensity is given in % RMT); percent_mso and test_percent_mso: the
    protocol's and the MEP test pulses' intensities, %MSO."""

    config: RunConfig
    mesh: object
    coil: object
    placement: object
    fem: object
    patch: object
    field: object
    protocol: object
    rmt_percent_mso: float | None
    percent_mso: float
    test_percent_mso: float


def prepare_run(config: RunConfig, *, stage=None) -> PreparedRun:
    """Set up a run of `config`: head, placement, patch, FEM solve at the coil's maximum dI/dt,
    field at the neurons, motor threshold (when an intensity is in % RMT, with session.dt_ms and
    session.seed) and the intensities in %MSO. stage(name), if given, is called as each of
    "head", "patch", "E-field" and "motor threshold" starts (progress bars). Checks the inputs
    first (check_inputs, without the course)."""
    import efield

    from .patch import cortical_patch
    from .session import motor_threshold
    from .stimulus import neuron_field

    if not isinstance(config, RunConfig):
        raise TypeError(f"prepare_run: config must be a coupling.RunConfig (coupling.load_config), "
                        f"got {type(config).__name__}")
    stage = stage or (lambda name: None)
    coil = check_inputs(config, course=False)
    chosen = configured_protocol(config)
    stage("head")
    mesh = build_head(config.head)
    placement = build_placement(config.coil, mesh)
    stage("patch")
    patch = cortical_patch(mesh, point(config.coil.centre), radius_mm=config.patch.radius_mm,
                           n_neurons=config.patch.n_neurons, seed=config.patch.seed,
                           model=patch_model(config))
    stage("E-field")
    fem = efield.simulate(mesh, coil, placement, didt=coil.didt_max)
    field = neuron_field(mesh, fem, patch, coil.didt_max)
    stage("motor threshold")
    rmt = None
    if "rmt" in (intensity(config)[1], intensity(config, "test_intensity")[1]):
        rmt = motor_threshold(patch, field, dt_ms=config.session.dt_ms, seed=config.session.seed)
    return PreparedRun(config, mesh, coil, placement, fem, patch, field, chosen, rmt,
                       percent_mso(config, "intensity", rmt), percent_mso(config, "test_intensity", rmt))
