"""Weight bounds of the plasticity rules: their check and the bounded update."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

BOUNDS = ("hard", "soft")


def check_bounds(rule, name):
    """Weight bounds and their kind of a rule called `name` (ValueError naming the field)."""
    if not rule.w_max >= rule.w_min:
        raise ValueError(f"{name}: w_max ({rule.w_max}) must be >= w_min ({rule.w_min})")
    if rule.bounds not in BOUNDS:
        raise ValueError(f"{name}.bounds must be one of {BOUNDS}, got {rule.bounds!r}")
    if rule.bounds == "soft" and not 0 < rule.w_max - rule.w_min < np.inf:
        raise ValueError(f"{name}: soft bounds need finite w_max > w_min")


def add_bounded(rule, w, target, dw_plus, dw_minus, eligibility: bool):
    """Add the bounded increments (soft bounds weigh them by the weight w) to `target`: the
    weights themselves (w is then target, so that a step's potentiation adds to its
    depression; clipped to the bounds) or, for a three-factor rule, the eligibility."""
    f32 = jnp.float32
    lo, hi = f32(rule.w_min), f32(rule.w_max)
    if rule.bounds == "soft":
        span = f32(rule.w_max - rule.w_min)
        dw_plus, dw_minus = dw_plus * (hi - w) / span, dw_minus * (w - lo) / span
    if eligibility:
        return target + dw_plus - dw_minus
    return jnp.clip(w + dw_plus - dw_minus, lo, hi)
