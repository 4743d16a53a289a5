"""Checks of user-given numbers, raising errors that name the argument or field."""

from __future__ import annotations

import operator

import numpy as np


def finite(value, what: str) -> np.ndarray:
    """`value` (a number or an array of numbers) as float64; TypeError naming `what` if it is
    not numeric, ValueError naming it if an entry is NaN or infinite."""
    raw = np.asarray(value)
    if raw.dtype.kind not in "biuf":
        raise TypeError(f"{what} must be a number or an array of numbers, got {value!r}")
    arr = raw.astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        where = f" (entry {bad[0]} of {arr.size})" if arr.ndim else ""
        raise ValueError(f"{what} must be finite, got {arr.flat[bad[0]]}{where}")
    return arr


def number(value, what: str, low: float = -np.inf, *, above: bool = False) -> float:
    """`value` as a float: one finite number >= low (> low if above); errors as in `finite`."""
    x = finite(value, what)
    if x.ndim:
        raise TypeError(f"{what} must be a number, got an array of shape {x.shape}")
    if x < low or (above and x == low):
        raise ValueError(f"{what} must be {'>' if above else '>='} {low}, got {float(x)}")
    return float(x)


def integer(value, what: str, low: int, high: int | None = None) -> int:
    """`value` as an int in [low, high] (high None: no upper bound); TypeError naming `what`
    if it is not an integer, ValueError giving the range if it is outside."""
    try:
        i = operator.index(value)
    except TypeError:
        raise TypeError(f"{what} must be an integer, got {value!r}") from None
    if i < low or (high is not None and i > high):
        allowed = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{what} must be an integer {allowed}, got {i}")
    return i
