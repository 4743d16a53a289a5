"""Checked settings and TOML tables: the one validator behind run configurations
(coupling.config) and protocol schedule files (coupling.protocols).

A check is a callable value -> error message or None. Settings are frozen dataclass fields
made with `setting` (default, check, one-line doc); `check_fields` runs the checks of every
field and raises ValueError naming the first bad one. `Table` reads one TOML table with errors
that name the file and the key.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import field, fields
from pathlib import Path
from typing import Any, Callable

Check = Callable[[Any], "str | None"]


class Number:
    """Check of a number: finite, in [low, high] (low excluded if open_low), an integer if asked."""

    def __init__(self, low: float, high: float, *, integer: bool = False, open_low: bool = False):
        self.low, self.high, self.integer, self.open_low = low, high, integer, open_low

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


def text(*choices: str) -> Check:
    """Check of a non-empty string, one of `choices` if given."""
    def check(v):
        if not isinstance(v, str) or not v:
            return f"expected a non-empty string, got {v!r}"
        if choices and v not in choices:
            return f"expected one of {list(choices)}, got {v!r}"
        return None
    return check


def boolean(v) -> str | None:
    """Check of true or false."""
    return None if isinstance(v, bool) else f"expected true or false, got {v!r}"


def optional(check: Check) -> Check:
    """`check`, or the empty string."""
    return lambda v: None if v == "" else check(v)


def setting(default, check: Check, doc: str):
    """A dataclass field with its default, check and one-line doc (README reference)."""
    return field(default=default, metadata={"check": check, "doc": doc})


def check_fields(obj, prefix: str = "") -> None:
    """ValueError "<prefix><field>: <message>" for the first field of dataclass `obj` whose
    check fails (fields made with `setting`)."""
    for f in fields(obj):
        message = f.metadata["check"](getattr(obj, f.name))
        if message:
            raise ValueError(f"{prefix}{f.name}: {message}")


def read_toml(path) -> dict:
    """The TOML file at `path` as a dict; ValueError naming the file if it is missing, not UTF-8
    text or not valid TOML."""
    path = Path(path)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not a UTF-8 text file: {err}") from None
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"{path}: not valid TOML: {err}") from None


class Table:
    """Typed access to one TOML table, with errors that name the file and the key."""

    def __init__(self, path, table: dict, prefix: str, allowed):
        self.path, self.table, self.prefix = path, table, prefix
        unknown = sorted(set(table) - set(allowed))
        if unknown:
            self.fail(unknown[0], f"unknown key (allowed: {', '.join(sorted(allowed))})")

    def fail(self, key: str, message: str):
        raise ValueError(f"{self.path}: key '{self.prefix}{key}': {message}")

    def get(self, key: str, default, check: Check):
        """table[key] (default if absent; None: required), checked."""
        value = self.table.get(key, default)
        if value is None:
            self.fail(key, "missing")
        message = check(value)
        if message:
            self.fail(key, message)
        return value

    def check(self, key: str, call):
        """call(), with a ValueError it raises reported against key."""
        try:
            return call()
        except ValueError as err:
            self.fail(key, str(err))
