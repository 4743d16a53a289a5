"""Argument checks of the public entry points: the errors name the argument and its range."""

from __future__ import annotations

import math

import numpy as np


def finite_number(value, name: str, low: float | None = None, *, strict: bool = False,
                  unit: str = "") -> float:
    """`value` as a float; TypeError unless it is a number, ValueError unless it is finite and
    at least `low` (greater than `low` with strict). `name` and `unit` go into the message."""
    suffix = f" ({unit})" if unit else ""
    number = None
    if not isinstance(value, (bool, str, bytes)):
        try:
            number = float(value)
        except (TypeError, ValueError):
            pass
    if number is None:
        raise TypeError(f"{name} must be a number{suffix}, got {value!r}")
    if not math.isfinite(number) or (low is not None and (number <= low if strict else number < low)):
        if low == 0 and strict:
            kind = "a positive finite number"
        else:
            kind = "a finite number" + ("" if low is None else f" {'>' if strict else '>='} {low:g}")
        raise ValueError(f"{name}={value!r}: must be {kind}{suffix}")
    return number


def whole_number(value, name: str, low: int = 1) -> int:
    """`value` as an int; TypeError unless it is an integer, ValueError if it is below `low`."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer >= {low}, got {value!r}")
    if value < low:
        raise ValueError(f"{name}={value!r}: must be an integer >= {low}")
    return int(value)
