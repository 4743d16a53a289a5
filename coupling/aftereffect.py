"""The pre-registered after-effect statistic (validation/targets.toml, coupling.targets): MEP
probes of protocol and sham runs on the same seeds -> per-seed changes -> a row's value, its
bootstrap CI over network seeds and its verdict under the pass rule.

Shapes: network seeds x noise seeds (x probes). The definitions are the targets file's
`metric` and `pass_rule`; this module computes them and nothing else.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .targets import Design, Target


def paired_changes(before, after, sham_before, sham_after, floor: float) -> np.ndarray:
    """100 x (MEP_after / MEP_before of the protocol - the same of sham), percentage points,
    (network seeds, noise seeds, probes). before, sham_before: (network, noise) MEP proxies
    before stimulation; after, sham_after: (network, noise, probes). A pair whose protocol or
    sham baseline is below `floor` counts as a change of 0."""
    before, after, sham_before, sham_after = (_finite(x, name) for x, name in (
        (before, "before"), (after, "after"), (sham_before, "sham_before"), (sham_after, "sham_after")))
    if not before.shape == sham_before.shape == after.shape[:2] or after.shape != sham_after.shape:
        raise ValueError(f"paired_changes: shapes before {before.shape}, after {after.shape}, sham before "
                         f"{sham_before.shape}, sham after {sham_after.shape} do not pair")
    low = (before < floor) | (sham_before < floor)
    with np.errstate(divide="ignore", invalid="ignore"):
        change = 100.0 * (after / before[..., None] - sham_after / sham_before[..., None])
    return np.where(low[..., None], 0.0, change)


def row_value(changes: np.ndarray, probe_minutes, target: Target) -> float:
    """The row's statistic of (network seeds, noise seeds, probes) changes: noise seeds
    averaged, then "mean" (over the probes in target.window_min, then over network seeds) or
    "peak" (the probe in the window whose mean over network seeds is largest in magnitude)."""
    per_seed = np.asarray(changes, float).mean(axis=1)[:, _in_window(probe_minutes, target)]
    if target.statistic == "mean":
        return float(per_seed.mean())
    course = per_seed.mean(axis=0)
    return float(course[np.argmax(np.abs(course))])


@dataclass(frozen=True)
class RowResult:
    """A row's value (percentage points, or % for a compare_to row), its CI and verdict."""

    name: str
    value: float
    ci: tuple
    passed: bool


def judge(changes: np.ndarray, probe_minutes, target: Target, design: Design,
          reference: tuple | None = None) -> RowResult:
    """The row's value, its design.confidence bootstrap CI over network seeds (design.ci_method,
    design.resamples from design.bootstrap_seed) and whether it passes. A compare_to row takes
    reference = (changes, target) of the row it is compared to, on the same network seeds:
    its value is 100 x (value / reference value - 1), both from the same resampled seeds, and
    it passes only if the reference's CI excludes 0. A null row (human change 0) passes when
    its whole CI lies in the band, any other when its value does. With one network seed the
    CI is (NaN, NaN): there is no spread over seeds to resample."""
    changes = _finite(changes, "changes")
    if changes.ndim != 3 or changes.shape[2] != len(probe_minutes):
        raise ValueError(f"judge: changes must be (network seeds, noise seeds, probes) with one probe per "
                         f"probe_minutes ({len(probe_minutes)}), got shape {changes.shape}")
    if bool(target.compare_to) != (reference is not None):
        need = "needs" if target.compare_to else "takes no"
        raise ValueError(f"judge: row {target.name!r} {need} reference (compare_to = {target.compare_to!r})")

    def statistic(seeds):
        value = row_value(changes[seeds], probe_minutes, target)
        if reference is None:
            return value
        return 100.0 * (value / row_value(reference[0][seeds], probe_minutes, reference[1]) - 1.0)

    seeds = np.arange(changes.shape[0])
    value = statistic(seeds)
    ci = seed_ci(statistic, seeds, design)
    low, high = target.band_pct
    if target.human_change_pct == 0.0:
        passed = low <= ci[0] and ci[1] <= high
    else:
        passed = low <= value <= high
    if reference is not None:
        ref = seed_ci(lambda s: row_value(reference[0][s], probe_minutes, reference[1]), seeds, design)
        passed = passed and (ref[0] > 0 or ref[1] < 0)
    return RowResult(target.name, value, ci, bool(passed))


def seed_ci(statistic, seeds: np.ndarray, design: Design) -> tuple:
    """The design.confidence bootstrap CI (design.ci_method, design.resamples from
    design.bootstrap_seed) of statistic(indices) over the network seeds `seeds` (indices
    0..n-1, resampled with replacement); (NaN, NaN) with fewer than two seeds."""
    from scipy.stats import bootstrap

    if len(seeds) < 2:
        return math.nan, math.nan

    result = bootstrap((seeds,), lambda s: statistic(s.astype(int)), vectorized=False,
                       n_resamples=design.resamples, confidence_level=design.confidence,
                       method=design.ci_method, random_state=np.random.default_rng(design.bootstrap_seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def _in_window(probe_minutes, target: Target) -> np.ndarray:
    probes = np.asarray(probe_minutes, float)
    return (probes >= target.window_min[0]) & (probes <= target.window_min[1])


def _finite(values, name: str) -> np.ndarray:
    """values as a float array; ValueError naming `name` if any is NaN or infinite."""
    values = np.asarray(values, float)
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{name}: every value must be finite (a NaN or infinite MEP or change)")
    return values
