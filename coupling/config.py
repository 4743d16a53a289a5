"""Run configuration (TOML) for `tmsim session` and `tmsim run`: every key, its default, and
its check.

A config file holds some of the tables and keys of `SCHEMA`; anything it leaves out takes the
default. An unknown table or key, or a value of the wrong kind, is an error that names the
file and the key, raised before any work starts.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable


@dataclass(frozen=True)
class Key:
    """default; check: value -> error message or None; doc: one line for the README."""

    default: Any
    check: Callable[[Any], str | None]
    doc: str


def _number(low=None, high=None, *, integer=False, positive=False):
    def check(v):
        if isinstance(v, bool) or not isinstance(v, int if integer else (int, float)):
            return f"expected {'an integer' if integer else 'a number'}, got {v!r}"
        if positive and not v > 0:
            return f"must be > 0, got {v!r}"
        if (low is not None and v < low) or (high is not None and v > high):
            return f"must lie in [{low}, {high}], got {v!r}"
        return None
    return check


def _text(*choices):
    def check(v):
        if not isinstance(v, str) or not v:
            return f"expected a non-empty string, got {v!r}"
        if choices and v not in choices:
            return f"expected one of {list(choices)}, got {v!r}"
        return None
    return check


def _point_or_label(v):
    if isinstance(v, str) and v:
        return None
    if isinstance(v, list) and len(v) == 3 and all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                                   for x in v):
        return None
    return f"expected an EEG label (e.g. \"F3\") or [x, y, z] in mm, got {v!r}"


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
    return None if _intensity(v) else f"expected \"<number>% MSO\" or \"<number>% RMT\", got {v!r}"


def intensity(config: dict, key: str = "intensity") -> tuple[float, str]:
    """(value, "mso" or "rmt") of config["protocol"][key] ("intensity" or "test_intensity")."""
    return _intensity(config["protocol"][key])


def _bool(v):
    return None if isinstance(v, bool) else f"expected true or false, got {v!r}"


def _minutes(v):
    if not isinstance(v, list) or not all(isinstance(x, (int, float)) and not isinstance(x, bool) and x >= 0
                                          for x in v):
        return f"expected a list of minutes >= 0, got {v!r}"
    return None


SCHEMA: dict[str, dict[str, Key]] = {
    "head": {
        "model": Key("sphere", _text(), "\"sphere\", \"template\", a .msh file or a SimNIBS m2m_<id> folder"),
        "max_edge_mm": Key(6.0, _number(positive=True), "largest tetrahedron edge of a built-in head, mm"),
    },
    "coil": {
        "name": Key("fig8-70", _text(), "\"fig8-70\", \"circular\", or a .ccd/.tcd file"),
        "centre": Key("F3", _point_or_label,
                      "scalp point under the coil centre: label or [x, y, z] mm"),
        "handle": Key("", _optional(_point_or_label), "where the handle points: label or [x, y, z] mm "
                      "(empty: posterior)"),
        "distance_mm": Key(4.0, _number(0.0), "coil bottom to scalp, mm"),
    },
    "patch": {
        "radius_mm": Key(8.0, _number(positive=True), "radius of the cortical patch around the target, mm"),
        "n_neurons": Key(150, _number(20, integer=True),
                         "neurons in the patch (L2/3, L5, interneurons, afferents)"),
        "seed": Key(0, _number(0, integer=True), "seed of positions, connectivity and thresholds"),
        "scenario": Key("depressed", _text("healthy", "depressed", "depressed_val66met"),
                        "network: healthy, depressed or depressed_val66met (coupling.scenario)"),
    },
    "protocol": {
        "name": Key("itbs", _text(), "protocol name (itbs, ctbs, imtbs, 1hz, 10hz, single, sham-...) or a "
                    ".toml schedule file"),
        "intensity": Key("80% RMT", _check_intensity,
                         "\"<p>% MSO\" (of the stimulator's maximum output) or \"<p>% RMT\" (of the "
                         "model's resting motor threshold)"),
        "test_intensity": Key("120% RMT", _check_intensity,
                              "intensity of the MEP test pulses, as protocol.intensity (at most 100 % MSO)"),
    },
    "session": {
        "probe_minutes": Key([0.0, 30.0], _minutes, "MEP proxy and weights measured at these minutes after "
                             "stimulation"),
        "after_s": Key(5.0, _number(0.0), "spiking simulated after the last pulse, s"),
        "n_test": Key(10, _number(1, integer=True), "test pulses per MEP measurement"),
        "dt_ms": Key(0.1, _number(positive=True), "time step, ms"),
        "seed": Key(0, _number(0, integer=True), "seed of the background activity"),
    },
    "course": {
        "calendar": Key("daily", _text("daily", "clinical_10hz", "itbs_daily", "saint"),
                        "\"daily\" (the keys below), or a named calendar: clinical_10hz, itbs_daily "
                        "(weeks), saint (days)"),
        "weeks": Key(1, _number(1, integer=True), "weeks of a daily calendar"),
        "days_per_week": Key(1, _number(1, 7, integer=True), "session days per week of a daily calendar"),
        "days": Key(5, _number(1, integer=True), "days of the saint calendar"),
        "sessions_per_day": Key(2, _number(1, integer=True), "sessions per day of a daily calendar"),
        "interval_min": Key(50.0, _number(positive=True), "session onset to onset on a day, min"),
        "final_probe_days": Key(1.0, _number(0.0), "final MEP probe after the last session, days"),
        "homeostasis": Key(False, _bool, "synaptic scaling between sessions (tau 1 day)"),
    },
    "output": {
        "folder": Key("", lambda v: None if isinstance(v, str) else f"expected a string, got {v!r}",
                      "results folder (empty: results/session or results/run)"),
    },
}


class ConfigError(ValueError):
    """A bad config file; the message names the file and key."""


def load_config(path=None) -> dict[str, dict[str, Any]]:
    """The configuration in `path` (TOML) over the defaults of SCHEMA; None: the defaults."""
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
            message = SCHEMA[table][name].check(value)
            if message:
                raise ConfigError(f"{path}: {table}.{name}: {message}")
            config[table][name] = value
    return config


def calendar(config: dict):
    """The coupling.Calendar of config["course"]."""
    from .calendar import Calendar

    course = config["course"]
    name = course["calendar"]
    if name == "daily":
        return Calendar.daily(course["weeks"], course["days_per_week"], course["sessions_per_day"],
                              course["interval_min"])
    if name == "saint":
        return Calendar.saint(course["days"])
    return getattr(Calendar, name)(course["weeks"])


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
    rows = ["| key | default | meaning |", "| --- | --- | --- |"]
    for table, keys in SCHEMA.items():
        for name, key in keys.items():
            rows.append(f"| `{table}.{name}` | `{key.default!r}` | {key.doc} |")
    return "\n".join(rows)
