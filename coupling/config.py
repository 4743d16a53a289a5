"""Run configuration (TOML) for `tmsim session`, `tmsim run` and sweeps: every key, its default,
and its check, as frozen dataclasses, one per table.

A config file holds some of the tables and keys of RunConfig; anything it leaves out takes the
default. An unknown table or key, a value of the wrong kind or out of its range (reference_table
lists them), a protocol or calendar that does not fit the other keys, or a run too large for this
machine (estimated_memory) is an error that names the file and the key, raised before any work
starts. A configuration is immutable: RunConfig.with_values gives a changed, checked copy.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping

from .options import SEED, SessionOptions
from .schema import Number, boolean, check_fields, optional, read_toml, setting, text

BYTES_PER_TETRAHEDRON = 2000
"""Memory of the FEM set-up and solve per tetrahedron (1.5 kB measured at 270k)."""
BYTES_PER_NEURON_PAIR = 5
"""Memory of the patch's wiring per pair of neurons (every pair within 4 sigma is drawn; 1.7 GB at
20k neurons)."""
BYTES_PER_SPIKE = 12
SPIKE_RATE_HZ = 20.0
"""Mean rate assumed for the spikes of a session held in memory, Hz (the patch fires at 2-10)."""
BYTES_PER_PULSE_NEURON = 2
"""Memory of the activation of each neuron at each pulse (masks and evoked spikes)."""
BUILT_IN_HEADS = ("sphere", "template")


def _point_or_label(v):
    if isinstance(v, str) and v:
        return None
    if isinstance(v, (list, tuple)) and len(v) == 3 and all(
            isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and abs(x) <= 1000
            for x in v):
        return None
    return f"expected an EEG label (e.g. \"F3\") or [x, y, z] in mm (finite, |x| <= 1000), got {v!r}"


def parse_intensity(v) -> tuple[float, str] | None:
    """("80% RMT" or "55 %mso") -> (80.0, "rmt"); None if malformed or out of range (at most
    100 % MSO or 200 % RMT)."""
    if not isinstance(v, str):
        return None
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*%\s*(mso|rmt)\s*", v, re.IGNORECASE)
    if not match:
        return None
    value, unit = float(match.group(1)), match.group(2).lower()
    return (value, unit) if value <= (100.0 if unit == "mso" else 200.0) else None


def _intensity(v):
    return None if parse_intensity(v) else (f"expected \"<number>% MSO\" (0 to 100) or \"<number>% RMT\" "
                                            f"(0 to 200), got {v!r}")


def _folder(v):
    return None if isinstance(v, str) else f"expected a string, got {v!r}"


class _Table:
    """Checks its fields when made (ValueError naming the first bad one as TABLE.key)."""

    TABLE = ""

    def __post_init__(self):
        check_fields(self, f"{self.TABLE}.")
        for f in fields(self):
            if isinstance(getattr(self, f.name), list):
                object.__setattr__(self, f.name, tuple(getattr(self, f.name)))


@dataclass(frozen=True)
class HeadConfig(_Table):
    TABLE = "head"
    model: str = setting("template", text(),
                         "\"sphere\", \"template\", a .msh file or a SimNIBS m2m_<id> folder")
    max_edge_mm: float = setting(
        6.0, Number(0, 12, open_low=True), "largest tetrahedron edge of a built-in head, mm; at most "
        "MAX_TETRAHEDRA (8M) tetrahedra: about 1.4 mm and up for the sphere, 1.5 for the template")


@dataclass(frozen=True)
class CoilConfig(_Table):
    TABLE = "coil"
    name: str = setting("fig8-70", text(), "\"fig8-70\", \"circular\", or a .ccd/.tcd file")
    centre: Any = setting("C3", _point_or_label, "scalp point under the coil centre: label or [x, y, z] mm "
                          "(C3: over the left hand knob)")
    handle: Any = setting("CP5", optional(_point_or_label),
                          "where the handle points: label or [x, y, z] mm (empty: posterior; CP5 from C3: "
                          "45 degrees posterolateral, posterior-anterior current in the cortex)")
    distance_mm: float = setting(4.0, Number(0, 50), "coil bottom to scalp, mm")


@dataclass(frozen=True)
class PatchConfig(_Table):
    TABLE = "patch"
    radius_mm: float = setting(
        8.0, Number(0, 30, open_low=True),
        "radius of the cortical patch around the target, mm (it must stay under the coil)")
    n_neurons: int = setting(500, Number(20, 100_000, integer=True),
                             "neurons in the patch (L2/3, L5, interneurons, afferents); it needs about 5 n^2 "
                             "bytes of memory")
    seed: int = setting(0, SEED, "seed of positions, connectivity and thresholds")
    scenario: str = setting("depressed", text("healthy", "val66met", "depressed", "depressed_val66met"),
                            "network: healthy, val66met, depressed or depressed_val66met (coupling.scenario)")


@dataclass(frozen=True)
class PlasticityConfig(_Table):
    TABLE = "plasticity"
    gamma_p_per_s: float = setting(
        4.4, Number(0, 100, open_low=True),
        "potentiation rate of the calcium rule on E->E synapses, nS/s (afferents: scaled to their weight; "
        "coupling.PatchModel); the validation's free parameter: other values leave the validated model")
    gamma_d_per_s: float = setting(
        0.4, Number(0, 100, open_low=True),
        "depression rate of the calcium rule, nS/s, as plasticity.gamma_p_per_s")


@dataclass(frozen=True)
class ProtocolConfig(_Table):
    TABLE = "protocol"
    name: str = setting("itbs", text(), "protocol name (itbs, ctbs, imtbs, 1hz, 10hz, single, sham-...) or a "
                        ".toml schedule file (at most 1000 Hz, 100000 pulses, 4 h: coupling.protocols)")
    intensity: str = setting("80% RMT", _intensity,
                             "\"<p>% MSO\" (of the stimulator's maximum output) or \"<p>% RMT\" (of the "
                             "model's resting motor threshold); p at most 100 % MSO or 200 % RMT")
    test_intensity: str = setting(
        "150% RMT", _intensity, "intensity of the MEP test pulses, as protocol.intensity (at most 100 % MSO; "
        "150 % RMT: the test pulses of validation/targets.toml)")


@dataclass(frozen=True)
class CourseConfig(_Table):
    TABLE = "course"
    calendar: str = setting("daily", text("daily", "clinical_10hz", "itbs_daily", "saint"),
                            "\"daily\" (the keys below), or a named calendar: clinical_10hz, itbs_daily "
                            "(weeks), saint (days); sessions must not overlap")
    weeks: int = setting(1, Number(1, 52, integer=True), "weeks of a daily calendar")
    days_per_week: int = setting(1, Number(1, 7, integer=True), "session days per week of a daily calendar")
    days: int = setting(5, Number(1, 365, integer=True), "days of the saint calendar")
    sessions_per_day: int = setting(2, Number(1, 24, integer=True), "sessions per day of a daily calendar")
    interval_min: float = setting(50.0, Number(0, 1440, open_low=True),
                                  "session onset to onset on a day, min")
    final_probe_days: float = setting(1.0, Number(0, 365), "final MEP probe after the last session, days")
    homeostasis: bool = setting(False, boolean, "synaptic scaling between sessions (tau 1 day)")


@dataclass(frozen=True)
class OutputConfig(_Table):
    TABLE = "output"
    folder: str = setting("", _folder, "results folder (empty: results/session or results/run)")


@dataclass(frozen=True)
class RunConfig:
    """A whole run configuration: one frozen dataclass per table ([session] is the
    SessionOptions that run_protocol and run_course take)."""

    head: HeadConfig = field(default_factory=HeadConfig)
    coil: CoilConfig = field(default_factory=CoilConfig)
    patch: PatchConfig = field(default_factory=PatchConfig)
    plasticity: PlasticityConfig = field(default_factory=PlasticityConfig)
    protocol: ProtocolConfig = field(default_factory=ProtocolConfig)
    session: SessionOptions = field(default_factory=SessionOptions)
    course: CourseConfig = field(default_factory=CourseConfig)
    output: OutputConfig = field(default_factory=OutputConfig)

    def with_values(self, values: Mapping[str, Any], source: str = "config") -> RunConfig:
        """A copy with values[\"table.key\"] set; ConfigError naming `source` and the key if it
        is unknown or its value fails its check (the keys together: check_config)."""
        tables = {}
        for dotted, value in values.items():
            table, _, name = dotted.partition(".")
            if table not in SCHEMA:
                raise ConfigError(f"{source}: unknown table [{table}] (key {dotted!r}); "
                                  f"known: {sorted(SCHEMA)}")
            if name not in SCHEMA[table]:
                raise ConfigError(f"{source}: unknown key {dotted}; known: {sorted(SCHEMA[table])}")
            message = SCHEMA[table][name].metadata["check"](value)
            if message:
                raise ConfigError(f"{source}: {dotted}: {message}")
            tables.setdefault(table, {})[name] = value
        return replace(self, **{t: replace(getattr(self, t), **v) for t, v in tables.items()})

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """{table: {key: value}}, lists for tuples (what to_toml writes)."""
        plain = lambda v: list(v) if isinstance(v, tuple) else v
        return {t: {f.name: plain(getattr(getattr(self, t), f.name)) for f in fields(getattr(self, t))}
                for t in SCHEMA}

    def to_toml(self) -> str:
        """The configuration as TOML text that load_config reads back equal."""
        def value(v):
            if isinstance(v, bool):
                return "true" if v else "false"
            if isinstance(v, str):
                return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
            if isinstance(v, list):
                return "[" + ", ".join(value(x) for x in v) + "]"
            return repr(v)

        return "\n".join(f"[{table}]\n" + "".join(f"{k} = {value(v)}\n" for k, v in keys.items())
                         for table, keys in self.to_dict().items())


SCHEMA: dict[str, dict[str, Any]] = {f.name: {g.name: g for g in fields(f.default_factory)}
                                     for f in fields(RunConfig)}
"""table -> key -> its dataclass field (default; metadata: check and doc)."""


class ConfigError(ValueError):
    """A bad config file; the message names the file and key."""


def load_config(path=None, *, course: bool = True) -> RunConfig:
    """The configuration in `path` (TOML) over the defaults; None: the defaults. Unknown tables
    and keys are errors; then check_config (course=False leaves out the [course] table, for
    `tmsim session`)."""
    if path is None:
        return RunConfig()
    path = Path(path)
    try:
        data = read_toml(path)
    except ValueError as err:
        raise ConfigError(str(err).replace("no such file", "no such config file")) from None
    values = {}
    for table, keys in data.items():
        if table not in SCHEMA:
            raise ConfigError(f"{path}: unknown table [{table}]; known: {sorted(SCHEMA)}")
        if not isinstance(keys, dict):
            raise ConfigError(f"{path}: {table} must be a table ([{table}])")
        values.update({f"{table}.{name}": value for name, value in keys.items()})
    config = RunConfig().with_values(values, str(path))
    check_config(config, str(path), course=course)
    return config


def intensity(config: RunConfig, key: str = "intensity") -> tuple[float, str]:
    """(value, "mso" or "rmt") of protocol.intensity or protocol.test_intensity."""
    return parse_intensity(getattr(config.protocol, key))


def check_config(config: RunConfig, source: str = "config", *, course: bool = True):
    """Check the keys of `config` together before any work: the protocol (read if a file) on the
    session.dt_ms grid; with course, a calendar whose sessions do not overlap; the built-in
    head's tetrahedra (estimated_tetrahedra, at most MAX_TETRAHEDRA) and the memory of the run
    (estimated_memory, at most this machine's). ConfigError naming `source` and the key
    otherwise. (Each key alone is checked when the configuration is made.)"""
    chosen = protocol(config, source)
    dt_ms = config.session.dt_ms
    try:
        chosen.steps(dt_ms)
    except ValueError as err:
        raise ConfigError(f"{source}: protocol.name with session.dt_ms = {dt_ms!r}: {err}") from None
    if course:
        from .course import course_steps

        session, settings = config.session, config.course
        days = calendar(config, source)
        try:
            course_steps(chosen, days, after_s=session.after_s, dt_ms=dt_ms,
                         final_probe_days=settings.final_probe_days)
        except ValueError as err:
            keys = "course.interval_min" if settings.calendar == "daily" else "course.calendar"
            raise ConfigError(f"{source}: [course] with protocol.name = {config.protocol.name!r} and "
                              f"session.after_s = {session.after_s!r} (see {keys}): {err}") from None
    if config.head.model in BUILT_IN_HEADS:
        from efield.heads import check_head_size

        try:
            check_head_size(config.head.model, config.head.max_edge_mm, "head.max_edge_mm")
        except ValueError as err:
            raise ConfigError(f"{source}: {err}") from None
    need = estimated_memory(config, chosen)
    have = physical_memory_bytes()
    if sum(need.values()) > have:
        key = max(need, key=need.get)
        table, name = key.split(".")
        parts = ", ".join(f"{k} {v / 1e9:.3g} GB" for k, v in need.items())
        raise ConfigError(f"{source}: {key} = {getattr(getattr(config, table), name)!r}: the run needs about "
                          f"{sum(need.values()) / 1e9:.3g} GB of memory ({parts}), more than the "
                          f"{have / 1e9:.3g} GB of this machine: {_memory_limit(config, chosen, key, have)}")


def _memory_limit(config: RunConfig, chosen, key: str, have: float) -> str:
    """The range of `key` (patch.n_neurons or head.max_edge_mm) within which the memory estimate
    stays below `have` bytes, the other keys as they are (bisection)."""
    table, name = key.split(".")
    section = getattr(config, table)
    fits = lambda v: sum(estimated_memory(replace(config, **{table: replace(section, **{name: v})}),
                                          chosen).values()) <= have
    bounds = SCHEMA[table][name].metadata["check"]
    low, high = bounds.low, bounds.high
    if key == "patch.n_neurons":
        while high - low > 1:
            middle = (low + high) // 2
            low, high = (middle, high) if fits(middle) else (low, middle)
        return f"at most about {low} here"
    low = getattr(section, name)
    for _ in range(40):
        middle = 0.5 * (low + high)
        low, high = (low, middle) if fits(middle) else (middle, high)
    return f"at least {high:.2g} mm here"


def protocol(config: RunConfig, source: str = "config"):
    """The coupling.Protocol of protocol.name: a built-in name or a .toml schedule file
    (coupling.read_protocol); ConfigError naming `source` and protocol.name otherwise."""
    from .protocols import protocol_by_name, read_protocol

    name = config.protocol.name
    try:
        return read_protocol(name) if name.endswith(".toml") else protocol_by_name(name)
    except (ValueError, OSError) as err:
        raise ConfigError(f"{source}: protocol.name = {name!r}: {err}") from None


def calendar(config: RunConfig, source: str = "config"):
    """The coupling.Calendar of the [course] table; ConfigError naming `source` and the [course]
    keys if its sessions do not fit in a day."""
    from .calendar import Calendar

    course = config.course
    try:
        if course.calendar == "daily":
            return Calendar.daily(course.weeks, course.days_per_week, course.sessions_per_day,
                                  course.interval_min)
        if course.calendar == "saint":
            return Calendar.saint(course.days)
        return getattr(Calendar, course.calendar)(course.weeks)
    except ValueError as err:
        raise ConfigError(f"{source}: course.calendar = {course.calendar!r} (course.weeks, course.days, "
                          f"course.sessions_per_day, course.interval_min): {err}") from None


def estimated_tetrahedra(config: RunConfig) -> float | None:
    """Tetrahedra of the built-in head of config (efield.heads.estimated_tetrahedra); None for a
    head file."""
    from efield.heads import estimated_tetrahedra as built_in

    head = config.head
    return built_in(head.model, head.max_edge_mm) if head.model in BUILT_IN_HEADS else None


def estimated_memory(config: RunConfig, chosen) -> dict[str, float]:
    """Bytes of the largest needs of a run of `config` with Protocol `chosen`, by the key that
    sets them: the FEM solve on a built-in head (BYTES_PER_TETRAHEDRON per tetrahedron) and the
    patch (its wiring, the activation at every pulse and a session's spikes at SPIKE_RATE_HZ)."""
    n = config.patch.n_neurons
    session_s = chosen.duration_ms / 1e3 + config.session.after_s
    return {"head.max_edge_mm": (estimated_tetrahedra(config) or 0.0) * BYTES_PER_TETRAHEDRON,
            "patch.n_neurons": float(n * n * BYTES_PER_NEURON_PAIR
                                     + n * chosen.n_pulses * BYTES_PER_PULSE_NEURON
                                     + n * SPIKE_RATE_HZ * session_s * BYTES_PER_SPIKE)}


def physical_memory_bytes() -> float:
    """This machine's physical memory, bytes (inf where the system does not say)."""
    try:
        return float(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return math.inf


def reference_table() -> str:
    """The config reference as a Markdown table (README)."""
    rows = ["| key | default | allowed | meaning |", "| --- | --- | --- | --- |"]
    for table, keys in SCHEMA.items():
        for name, key in keys.items():
            check = key.metadata["check"]
            allowed = f"`{check}`" if isinstance(check, Number) else ""
            default = list(key.default) if isinstance(key.default, tuple) else key.default
            rows.append(f"| `{table}.{name}` | `{default!r}` | {allowed} | {key.metadata['doc']} |")
    return "\n".join(rows)
