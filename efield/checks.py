"""What the public entry points share: argument checks, whose errors name the argument and
its range, and `x64`, the float64 scope of the JAX computations."""

from __future__ import annotations

import functools
import math

import jax
import numpy as np


def x64(fn):
    """Decorator: run `fn` with JAX's 64-bit mode on (`jax.enable_x64`), and give the caller's
    setting back when it returns.

    The E-field is computed in float64, but the mode is switched for the call (and only in
    the calling thread), not for the whole process when efield is imported, so other JAX
    code (neurons, float32) keeps the caller's mode. jit caches are keyed on the mode, so the
    jitted kernels are traced and called under it too. A decorated function that returns a
    JAX array returns it in float64; arithmetic on it outside the mode is float32 again, so
    take np.asarray of it or keep it under `with jax.enable_x64(True):`.

    Tracing or differentiating through a decorated function (jax.jit, grad, vjp, vmap) needs
    the mode on around the whole transformation: JAX runs e.g. the backward pass in the
    caller's mode, where the float64 intermediates cannot be represented. Called with traced
    arguments while the mode is off, it raises a TypeError that says so.
    """

    @functools.wraps(fn)
    def in_x64(*args, **kwargs):
        if jax.config.jax_enable_x64:
            return fn(*args, **kwargs)
        if any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves((args, kwargs))):
            raise TypeError(f"{fn.__qualname__} is traced (jax.jit, grad, vjp or vmap) with JAX's "
                            "64-bit mode off, but efield computes in float64: run the "
                            "transformation inside `with jax.enable_x64(True):`")
        with jax.enable_x64(True):
            return fn(*args, **kwargs)

    return in_x64


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
