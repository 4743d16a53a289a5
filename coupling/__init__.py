"""tmsim.coupling: the E-field of each pulse meets the network; pipeline and command line."""

from .activation import (
    DEFAULT_CELL_CLASSES,
    I_WAVE_INTERVAL_MS,
    MICRO_MACRO_SCALE,
    MOTOR_THRESHOLD_FIELD_V_PER_M,
    CellClass,
    PulseEvents,
    activated,
    didt_from_mso,
    effective_field,
    field_at_didt,
    mso_from_rmt,
    pulse_events,
)
from .calendar import Calendar
from .config import ConfigError, RunConfig, load_config
from .course import CourseResult, run_course
from .experiment import (
    RMT_SEED,
    AfterEffect,
    Condition,
    MotorThresholdRun,
    TargetResult,
    after_effect,
    measure_after_effects,
    motor_thresholds,
    run_targets,
    target_protocol,
)
from .homeostasis import Homeostasis
from .options import SessionOptions, child_seed
from .prepare import PreparedRun, patch_model, prepare_run
from .patch import DEFAULT_LAYERS, CorticalPatch, Layer, PatchModel, cortical_patch
from .protocols import (
    Protocol,
    config_protocol_names,
    ctbs,
    imtbs,
    itbs,
    one_hz,
    paired_pulse,
    protocol_by_name,
    protocol_names,
    read_protocol,
    rtms,
    sham,
    single_pulse,
    ten_hz_clinical,
    theta_burst,
    write_protocol,
)
from .scenario import SCENARIOS, scenario_model
from .session import MEP, SessionResult, motor_threshold, probe_mep, run_protocol, run_session
from .stimulus import NeuronField, neuron_field, stimulus_events
from .trial import Arm, ArmResult, CourseRun, run_trial

__all__ = [
    "DEFAULT_CELL_CLASSES", "I_WAVE_INTERVAL_MS", "MICRO_MACRO_SCALE", "MOTOR_THRESHOLD_FIELD_V_PER_M",
    "CellClass", "PulseEvents", "activated", "didt_from_mso", "effective_field", "field_at_didt",
    "mso_from_rmt", "pulse_events",
    "Protocol", "config_protocol_names", "ctbs", "imtbs", "itbs", "one_hz", "paired_pulse",
    "protocol_by_name", "protocol_names", "read_protocol", "rtms", "sham", "single_pulse",
    "ten_hz_clinical", "theta_burst", "write_protocol",
    "ConfigError", "RunConfig", "load_config", "SessionOptions", "child_seed", "PreparedRun",
    "patch_model", "prepare_run",
    "DEFAULT_LAYERS", "CorticalPatch", "Layer", "PatchModel", "cortical_patch",
    "MEP", "SessionResult", "motor_threshold", "probe_mep", "run_protocol", "run_session",
    "NeuronField", "neuron_field", "stimulus_events", "SCENARIOS", "scenario_model",
    "Calendar", "CourseResult", "Homeostasis", "run_course",
    "RMT_SEED", "AfterEffect", "Condition", "MotorThresholdRun", "TargetResult", "after_effect",
    "measure_after_effects", "motor_thresholds", "run_targets", "target_protocol",
    "Arm", "ArmResult", "CourseRun", "run_trial",
]
