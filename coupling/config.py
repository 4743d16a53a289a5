"""Run configuration (TOML) for `tmsim session` and `tmsim run`: every key, its default, and
its check.

A config file holds some of the tables and keys of `SCHEMA`; anything it leaves out takes the
default. An unknown table or key, a value of the wrong kind or out of its range (reference_table
lists them), a protocol or calendar that does not fit the other keys, or a run too large for this
machine (estimated_memory) is an error that names the file and the key, raised before any work
starts.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

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
MAX_PROBE_MINUTES = 10080.0
"""Latest MEP probe after a session, min (a week)."""
TIME_STEPS_MS = (0.1, 0.05, 0.025, 0.02, 0.01)
"""Allowed session.dt_ms: divisors of 0.1 ms, the grid of the model's delays, I waves and 0.5 ms
plasticity updates (0.3 ms, say, puts the calcium rule's 0.5 ms update between steps)."""


@dataclass(frozen=True)
class Key:
    """default; check: value -> error message or None; doc: one line for the README."""

    default: Any
    check: Callable[[Any], str | None]
    doc: str


@dataclass(frozen=True)
class Number:
    """Check of a number: finite, in [low, high] (low excluded if open_low), an integer if asked."""

    low: float
    high: float
    integer: bool = False
    open_low: bool = False

    def __call__(self, v) -> str | None:
        if isinstance(v, bool) or not isinstance(v, int if self.integer else (int, float)):
            return f"expected {'an integer' if self.integer else 'a number'}, got {v!r}"
        if not (math.isfinite(v) and (v > self.low if self.open_low else v >= self.low) and v <= self.high):
            if self.open_low:
                return f"must be > {self.low:g} and <= {self.high:g}, got {v!r}"
            return f"must lie in {self}, got {v!r}"
        return None

    def __str__(self):
        text = lambda x: str(x) if self.integer else f"{x:g}"
        return f"{'(' if self.open_low else '['}{text(self.low)}, {text(self.high)}]"


def _text(*choices):
    def check(v):
        if not isinstance(v, str) or not v:
            return f"expected a non-empty string, got {v!r}"
        if choices and v not in choices:
            return f"expected one of {list(choices)}, got {v!r}"
        return None
    return check


def _time_step(v):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v not in TIME_STEPS_MS:
        return (f"expected one of {list(TIME_STEPS_MS)} ms (divisors of 0.1 ms, the grid of the model's "
                f"delays and plasticity updates), got {v!r}")
    return None


def _point_or_label(v):
    if isinstance(v, str) and v:
        return None
    if isinstance(v, list) and len(v) == 3 and all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                                   and math.isfinite(x) and abs(x) <= 1000 for x in v):
        return None
    return f"expected an EEG label (e.g. \"F3\") or [x, y, z] in mm (finite, |x| <= 1000), got {v!r}"


def _optional(check):
    return lambda v: None if v == "" else check(v)


def _intensity(v) -> tuple[float, str] | None:
    """("80% RMT" or "55 %mso") -> (80.0, "rmt"); None if malformed or out of range."""
    if not isinstance(v, str):
        return None
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*%\s*(mso|rmt)\s*", v, re.IGNORECASE)
    if not match:
        return None
    value, unit = float(match.group(1)), match.group(2).lower()
    return (value, unit) if value <= (100.0 if unit == "mso" else 200.0) else None


def _check_intensity(v):
    return None if _intensity(v) else (f"expected \"<number>% MSO\" (0 to 100) or \"<number>% RMT\" "
                                       f"(0 to 200), got {v!r}")


def intensity(config: dict, key: str = "intensity") -> tuple[float, str]:
    """(value, "mso" or "rmt") of config["protocol"][key] ("intensity" or "test_intensity")."""
    return _intensity(config["protocol"][key])


def _bool(v):
    return None if isinstance(v, bool) else f"expected true or false, got {v!r}"


def _minutes(v):
    minute = lambda x: isinstance(x, (int, float)) and not isinstance(x, bool) and 0 <= x <= MAX_PROBE_MINUTES
    if not isinstance(v, list) or len(v) > 100 or not all(minute(x) for x in v):
        return f"expected a list of at most 100 minutes in [0, {MAX_PROBE_MINUTES:g}], got {v!r}"
    return None


SEED = Number(0, 2**32 - 1, integer=True)

SCHEMA: dict[str, dict[str, Key]] = {
    "head": {
        "model": Key("sphere", _text(), "\"sphere\", \"template\", a .msh file or a SimNIBS m2m_<id> folder"),
        "max_edge_mm": Key(6.0, Number(0, 12, open_low=True),
                           "largest tetrahedron edge of a built-in head, mm; at most MAX_TETRAHEDRA (8M) "
                           "tetrahedra: about 1.4 mm and up for the sphere, 1.5 for the template"),
    },
    "coil": {
        "name": Key("fig8-70", _text(), "\"fig8-70\", \"circular\", or a .ccd/.tcd file"),
        "centre": Key("F3", _point_or_label,
                      "scalp point under the coil centre: label or [x, y, z] mm"),
        "handle": Key("", _optional(_point_or_label), "where the handle points: label or [x, y, z] mm "
                      "(empty: posterior)"),
        "distance_mm": Key(4.0, Number(0, 50), "coil bottom to scalp, mm"),
    },
    "patch": {
        "radius_mm": Key(8.0, Number(0, 30, open_low=True),
                         "radius of the cortical patch around the target, mm (it must stay under the coil)"),
        "n_neurons": Key(150, Number(20, 100_000, integer=True),
                         "neurons in the patch (L2/3, L5, interneurons, afferents); it needs about 5 n^2 "
                         "bytes of memory"),
        "seed": Key(0, SEED, "seed of positions, connectivity and thresholds"),
        "scenario": Key("depressed", _text("healthy", "depressed", "depressed_val66met"),
                        "network: healthy, depressed or depressed_val66met (coupling.scenario)"),
    },
    "protocol": {
        "name": Key("itbs", _text(), "protocol name (itbs, ctbs, imtbs, 1hz, 10hz, single, sham-...) or a "
                    ".toml schedule file (at most 1000 Hz, 100000 pulses, 4 h: coupling.protocols)"),
        "intensity": Key("80% RMT", _check_intensity,
                         "\"<p>% MSO\" (of the stimulator's maximum output) or \"<p>% RMT\" (of the "
                         "model's resting motor threshold); p at most 100 % MSO or 200 % RMT"),
        "test_intensity": Key("120% RMT", _check_intensity,
                              "intensity of the MEP test pulses, as protocol.intensity (at most 100 % MSO)"),
    },
    "session": {
        "probe_minutes": Key([0.0, 30.0], _minutes, "MEP proxy and weights measured at these minutes after "
                             "stimulation"),
        "after_s": Key(5.0, Number(0, 3600, open_low=True), "spiking simulated after the last pulse, s"),
        "n_test": Key(10, Number(1, 1000, integer=True), "test pulses per MEP measurement"),
        "dt_ms": Key(0.1, _time_step, "time step, ms: one of 0.1, 0.05, 0.025, 0.02, 0.01"),
        "seed": Key(0, SEED, "seed of the background activity"),
    },
    "course": {
        "calendar": Key("daily", _text("daily", "clinical_10hz", "itbs_daily", "saint"),
                        "\"daily\" (the keys below), or a named calendar: clinical_10hz, itbs_daily "
                        "(weeks), saint (days); sessions must not overlap"),
        "weeks": Key(1, Number(1, 52, integer=True), "weeks of a daily calendar"),
        "days_per_week": Key(1, Number(1, 7, integer=True), "session days per week of a daily calendar"),
        "days": Key(5, Number(1, 365, integer=True), "days of the saint calendar"),
        "sessions_per_day": Key(2, Number(1, 24, integer=True), "sessions per day of a daily calendar"),
        "interval_min": Key(50.0, Number(0, 1440, open_low=True), "session onset to onset on a day, min"),
        "final_probe_days": Key(1.0, Number(0, 365), "final MEP probe after the last session, days"),
        "homeostasis": Key(False, _bool, "synaptic scaling between sessions (tau 1 day)"),
    },
    "output": {
        "folder": Key("", lambda v: None if isinstance(v, str) else f"expected a string, got {v!r}",
                      "results folder (empty: results/session or results/run)"),
    },
}


class ConfigError(ValueError):
    """A bad config file; the message names the file and key."""


def load_config(path=None, *, course: bool = True) -> dict[str, dict[str, Any]]:
    """The configuration in `path` (TOML) over the defaults of SCHEMA; None: the defaults.
    Unknown tables and keys are errors; then check_config (course=False leaves out the [course]
    table, for `tmsim session`)."""
    config = {table: {k: key.default for k, key in keys.items()} for table, keys in SCHEMA.items()}
    if path is None:
        return config
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML ({err})") from None
    for table, values in data.items():
        if table not in SCHEMA:
            raise ConfigError(f"{path}: unknown table [{table}]; known: {sorted(SCHEMA)}")
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: {table} must be a table ([{table}])")
        for name, value in values.items():
            if name not in SCHEMA[table]:
                raise ConfigError(f"{path}: unknown key {table}.{name}; known: {sorted(SCHEMA[table])}")
            config[table][name] = value
    check_config(config, str(path), course=course)
    return config


def check_config(config: dict, source: str = "config", *, course: bool = True):
    """Check `config` (every key of SCHEMA set) before any work: each value, then the keys
    together: the protocol (read if a file) on the session.dt_ms grid; with course, a calendar
    whose sessions do not overlap; the built-in head's tetrahedra (estimated_tetrahedra, at
    most MAX_TETRAHEDRA) and the memory of the run (estimated_memory, at most this machine's).
    ConfigError naming `source` and the key otherwise."""
    for table, keys in SCHEMA.items():
        for name, key in keys.items():
            message = key.check(config[table][name])
            if message:
                raise ConfigError(f"{source}: {table}.{name}: {message}")
    chosen = protocol(config, source)
    dt_ms = config["session"]["dt_ms"]
    try:
        chosen.steps(dt_ms)
    except ValueError as err:
        raise ConfigError(f"{source}: protocol.name with session.dt_ms = {dt_ms!r}: {err}") from None
    if course:
        from .course import course_steps

        session, settings = config["session"], config["course"]
        days = calendar(config, source)
        try:
            course_steps(chosen, days, after_s=session["after_s"], dt_ms=dt_ms,
                         final_probe_days=settings["final_probe_days"])
        except ValueError as err:
            keys = "course.interval_min" if settings["calendar"] == "daily" else "course.calendar"
            raise ConfigError(f"{source}: [course] with protocol.name = {config['protocol']['name']!r} and "
                              f"session.after_s = {session['after_s']!r} (see {keys}): {err}") from None
    if config["head"]["model"] in ("sphere", "template"):
        from efield.heads import check_head_size

        try:
            check_head_size(config["head"]["model"], config["head"]["max_edge_mm"], "head.max_edge_mm")
        except ValueError as err:
            raise ConfigError(f"{source}: {err}") from None
    need = estimated_memory(config, chosen)
    have = physical_memory_bytes()
    if sum(need.values()) > have:
        key = max(need, key=need.get)
        table, name = key.split(".")
        parts = ", ".join(f"{k} {v / 1e9:.3g} GB" for k, v in need.items())
        raise ConfigError(f"{source}: {key} = {config[table][name]!r}: the run needs about "
                          f"{sum(need.values()) / 1e9:.3g} GB of memory ({parts}), more than the "
                          f"{have / 1e9:.3g} GB of this machine: {_memory_limit(config, chosen, key, have)}")


def _memory_limit(config: dict, chosen, key: str, have: float) -> str:
    """The range of `key` (patch.n_neurons or head.max_edge_mm) within which the memory estimate
    stays below `have` bytes, the other keys as they are (bisection)."""
    table, name = key.split(".")
    fits = lambda v: sum(estimated_memory({**config, table: {**config[table], name: v}},
                                          chosen).values()) <= have
    low, high = SCHEMA[table][name].check.low, SCHEMA[table][name].check.high
    if key == "patch.n_neurons":
        while high - low > 1:
            middle = (low + high) // 2
            low, high = (middle, high) if fits(middle) else (low, middle)
        return f"at most about {low} here"
    low = config[table][name]
    for _ in range(40):
        middle = 0.5 * (low + high)
        low, high = (low, middle) if fits(middle) else (middle, high)
    return f"at least {high:.2g} mm here"


def protocol(config: dict, source: str = "config"):
    """The coupling.Protocol of config["protocol"]["name"]: a built-in name or a .toml schedule
    file (coupling.read_protocol); ConfigError naming `source` and protocol.name otherwise."""
    from .protocols import protocol_by_name, read_protocol

    name = config["protocol"]["name"]
    try:
        return read_protocol(name) if name.endswith(".toml") else protocol_by_name(name)
    except (ValueError, OSError) as err:
        raise ConfigError(f"{source}: protocol.name = {name!r}: {err}") from None


def calendar(config: dict, source: str = "config"):
    """The coupling.Calendar of config["course"]; ConfigError naming `source` and the [course]
    keys if its sessions do not fit in a day."""
    from .calendar import Calendar

    course = config["course"]
    name = course["calendar"]
    try:
        if name == "daily":
            return Calendar.daily(course["weeks"], course["days_per_week"], course["sessions_per_day"],
                                  course["interval_min"])
        if name == "saint":
            return Calendar.saint(course["days"])
        return getattr(Calendar, name)(course["weeks"])
    except ValueError as err:
        raise ConfigError(f"{source}: course.calendar = {name!r} (course.weeks, course.days, "
                          f"course.sessions_per_day, course.interval_min): {err}") from None


def estimated_tetrahedra(config: dict) -> float | None:
    """Tetrahedra of the built-in head of config (efield.heads.estimated_tetrahedra); None for a
    head file."""
    from efield.heads import estimated_tetrahedra as built_in

    model = config["head"]["model"]
    return built_in(model, config["head"]["max_edge_mm"]) if model in ("sphere", "template") else None


def estimated_memory(config: dict, chosen) -> dict[str, float]:
    """Bytes of the largest needs of a run of `config` with Protocol `chosen`, by the key that
    sets them: the FEM solve on a built-in head (BYTES_PER_TETRAHEDRON per tetrahedron) and the
    patch (its wiring, the activation at every pulse and a session's spikes at SPIKE_RATE_HZ)."""
    n = config["patch"]["n_neurons"]
    session_s = chosen.duration_ms / 1e3 + config["session"]["after_s"]
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


def dump_config(config: dict) -> str:
    """`config` as TOML text that load_config reads back to the same values."""
    def value(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return repr(v)

    return "\n".join(f"[{table}]\n" + "".join(f"{k} = {value(v)}\n" for k, v in keys.items())
                     for table, keys in config.items())


def reference_table() -> str:
    """The config reference as a Markdown table (README)."""
    rows = ["| key | default | allowed | meaning |", "| --- | --- | --- | --- |"]
    for table, keys in SCHEMA.items():
        for name, key in keys.items():
            allowed = f"`{key.check}`" if isinstance(key.check, Number) else ""
            rows.append(f"| `{table}.{name}` | `{key.default!r}` | {allowed} | {key.doc} |")
    return "\n".join(rows)
