"""Which neurons a TMS pulse activates, and the spikes that follow; stimulator intensity units.

Model. Each neuron of a cell class has a threshold T (V/m) for a uniform field along its best
direction, drawn once per network from a lognormal distribution (median and log-sd per class).
A pulse activates it when the microscopic field exceeds T:

    scale * E_eff >= T,    E_eff = |E| * ((1 - a) + a * |cos theta|),

with E the macroscopic field at the neuron (V/m, from the head model), theta the angle between
E and the neuron's somato-dendritic axis (the local cortical normal) and a the class's angle
weight. The fraction of a class activated by a field E_eff is then the lognormal CDF
Phi(ln(scale * E_eff / median) / sigma): the recruitment curve over stimulator output is a
sigmoid (in log intensity), as observed for MEPs.

Literature (figures confirmed in the cited abstracts):
- Aberra et al. 2020, Brain Stimul 13:175-189: layer 5 pyramidal cells have the lowest
  thresholds; layer 2/3 pyramidal cells and basket cells are also activated at most
  intensities; direct activation of layers 1 and 6 is unlikely; activation is driven by the
  field magnitude rather than by its component normal to the cortex.
- Weise et al. 2023, Imaging Neuroscience 1, doi:10.1162/imag_a_00036: average threshold
  models of L2/3 PCs, L4 basket cells and L5 PCs; thresholds depend on the angle of E to the
  cortical normal in a cell-type specific way that the cosine model does not capture.
- Weise et al. 2025, Brain Stimul 18:280-286: at motor threshold, whole-head models give
  macroscopic fields of 50-70 V/m, while simulated single-cell thresholds are 175-350 V/m;
  a single statistically derived factor between microscopic and macroscopic field reconciles
  them (MICRO_MACRO_SCALE below).

Assumptions (the per-class medians, spreads and angle weights are not tabulated in those
abstracts; they are placed inside the 175-350 V/m range in Aberra's order and documented
here so they can be changed): see DEFAULT_CELL_CLASSES.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np
from scipy.special import ndtr

from .protocols import US_PER_MS, to_us

MOTOR_THRESHOLD_FIELD_V_PER_M = 60.0
"""Macroscopic |E| at resting motor threshold: middle of 50-70 V/m (Weise et al. 2025)."""

MICRO_MACRO_SCALE = 1.35
"""Microscopic / macroscopic field factor (Weise et al. 2025 derive one such factor from tissue
microstructure; its value here is our calibration). Set so that the emergent median |E| at the
output neurons at the resting motor threshold of the default patch (template head, hand knob,
posterior-anterior current) lies in the 50-70 V/m that whole-head models give at motor
threshold (MOTOR_THRESHOLD_FIELD_V_PER_M): 1.8 x 45.2 / 60, from the median of 45.1-51.8 V/m
that validation/mep_sources.py measured with 1.8 on network seeds 900-902 with the present
afferents. Activation depends on scale * E only, so the factor sets the %MSO and field values
of a threshold, not what a protocol dosed in % RMT does: that the afferents' I waves make the
MEP at threshold and the direct activation of L5 pyramidal cells (the D wave) joins above it
comes from the class medians, the afferents' weight and their share of the patch. The
single-cell medians of DEFAULT_CELL_CLASSES (175-350 V/m) then correspond to 130-259 V/m of
macroscopic field at the best orientation: this factor is below the 175/60 (2.9) that would
put the median L5 PC at threshold at 60 V/m, so it departs from the single-cell thresholds of
Weise et al. 2025 (at motor threshold the model's L5 PCs are mostly not yet activated)."""

I_WAVE_INTERVAL_MS = 1.4
"""Interval between the D wave and successive I waves, ms (I-wave periodicity about 1.4-1.5 ms)."""


@dataclass(frozen=True)
class CellClass:
    """Activation parameters of one cell class.

    threshold_V_per_m: median single-cell threshold for a uniform field along the best
    direction, V/m (microscopic). sigma: log-sd of the lognormal spread of thresholds across
    neurons (morphology, position). angle_weight: a in E_eff = |E| ((1 - a) + a |cos theta|),
    0 <= a < 1; the threshold in |E| rises at most by 1 / (1 - a) from the best to the worst
    angle. delay_ms: from the pulse to the evoked spike, ms.
    """

    name: str
    threshold_V_per_m: float
    sigma: float
    angle_weight: float
    delay_ms: float

    def __post_init__(self):
        if not (math.isfinite(self.threshold_V_per_m) and self.threshold_V_per_m > 0):
            raise ValueError(f"CellClass {self.name!r}: threshold_V_per_m must be > 0, "
                             f"got {self.threshold_V_per_m}")
        if not (math.isfinite(self.sigma) and self.sigma >= 0):
            raise ValueError(f"CellClass {self.name!r}: sigma must be >= 0, got {self.sigma}")
        if not 0 <= self.angle_weight < 1:
            raise ValueError(f"CellClass {self.name!r}: angle_weight must be in [0, 1), "
                             f"got {self.angle_weight}")
        if not (math.isfinite(self.delay_ms) and self.delay_ms >= 0):
            raise ValueError(f"CellClass {self.name!r}: delay_ms must be >= 0, got {self.delay_ms}")

    def draw_thresholds(self, n: int, seed: int | np.random.Generator = 0) -> np.ndarray:
        """Thresholds of n neurons, V/m (lognormal; drawn once per network with its seed, a
        different seed or Generator per population)."""
        rng = np.random.default_rng(seed)
        return self.threshold_V_per_m * np.exp(self.sigma * rng.standard_normal(n))

    def fraction_activated(self, E_eff_V_per_m, scale: float = MICRO_MACRO_SCALE) -> np.ndarray:
        """Expected fraction of the class activated by macroscopic effective field E_eff (V/m):
        the lognormal CDF of the thresholds at scale * E_eff."""
        micro = scale * np.asarray(E_eff_V_per_m, np.float64)
        with np.errstate(divide="ignore"):
            z = np.log(micro / self.threshold_V_per_m)
        if self.sigma == 0:
            return (z >= 0).astype(np.float64)
        return ndtr(z / self.sigma)


# Medians: L5 PC at the low end of 175-350 V/m (lowest thresholds, Aberra et al. 2020); L2/3 PC
# and basket cells above it but reachable; L4 cells higher; L6 PC at the high end (direct
# activation unlikely). sigma 0.25 (assumed): the middle 95% of a class spans a factor
# exp(2 * 1.96 * 0.25) = 2.7 across morphologies and positions.
# Angle weights (assumed): 0.2 for pyramidal cells (threshold in |E| up to 1.25x higher for a
# field across the cell than along it), 0.1 for basket cells (more symmetric axonal arbours).
# I-wave afferents (the axons whose synchronous volleys onto layer 5 give the I waves) well
# below the L5 PC (84 V/m, 0.48x; the project's choice): with posterior-anterior currents the
# I1 wave is recruited at lower intensities than the D wave of the direct activation of
# pyramidal tract neurons, which joins at higher intensities (Di Lazzaro et al. 2012, J Physiol
# 590:4713; Kaneko et al. 1996, J Neurol Sci 139:131), so that the MEP is trans-synaptic near
# threshold and mostly so at the 150 % RMT test pulses (validation/mep_sources.py, with the
# afferents' weight PatchModel.w_aff_nS; at 0.8x the L5 PC's, the value before, the D wave
# made the whole MEP); their spread is wider (sigma 0.4, assumed: axons of every orientation to
# the field and many diameters), so that subthreshold trains (80 % RMT) still reach tens.
# Delays (assumed): 0.2 ms, spike initiation within the pulse (monophasic pulse ~0.1-0.3 ms).
DEFAULT_CELL_CLASSES: Mapping[str, CellClass] = {
    c.name: c for c in (
        CellClass("L2/3 PC", 230.0, 0.25, 0.2, 0.2),
        CellClass("L4 PC", 280.0, 0.25, 0.2, 0.2),
        CellClass("L5 PC", 175.0, 0.25, 0.2, 0.2),
        CellClass("L6 PC", 350.0, 0.25, 0.2, 0.2),
        CellClass("basket", 250.0, 0.25, 0.1, 0.2),
        CellClass("I-wave afferent", 84.0, 0.4, 0.2, 0.2),
    )
}


def effective_field(E_V_per_m, axis, angle_weight: float) -> np.ndarray:
    """E_eff = |E| ((1 - a) + a |cos theta|), V/m, theta the angle between E (..., 3) and the
    neuron's somato-dendritic axis (..., 3; any length); 0 where E = 0."""
    if not 0 <= angle_weight < 1:
        raise ValueError(f"effective_field: angle_weight must be in [0, 1), got {angle_weight}")
    E = np.asarray(E_V_per_m, np.float64)
    axis = np.asarray(axis, np.float64)
    if E.shape[-1:] != (3,) or axis.shape[-1:] != (3,):
        raise ValueError(f"effective_field: E and axis must have a last axis of 3, "
                         f"got {E.shape}, {axis.shape}")
    magnitude = np.linalg.norm(E, axis=-1)
    axis_norm = np.linalg.norm(axis, axis=-1)
    if np.any(axis_norm == 0):
        raise ValueError("effective_field: axis has zero-length vectors")
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.abs(np.sum(E * axis, axis=-1)) / (magnitude * axis_norm)
    cos = np.where(magnitude > 0, np.minimum(cos, 1.0), 1.0)
    return magnitude * ((1 - angle_weight) + angle_weight * cos)


def activated(E_eff_V_per_m, thresholds_V_per_m, *, pulse_scale=None, scale: float = MICRO_MACRO_SCALE,
              noise_sigma: float = 0.0, seed: int | np.random.Generator = 0) -> np.ndarray:
    """Which neurons a pulse activates: scale * E_eff >= threshold (bool).

    E_eff_V_per_m: macroscopic effective field per neuron (broadcast with thresholds).
    pulse_scale: optional (n_pulses,) factor on the field at each pulse (Protocol.field_scale:
    relative intensities, zeros for sham); the result then has a leading pulse axis.
    noise_sigma: trial-to-trial variability; each (pulse, neuron) threshold is multiplied by an
    independent exp(noise_sigma * N(0, 1)) drawn from seed. With 0 (default) the result is
    deterministic given the thresholds, so recruitment never decreases with intensity.
    """
    E = np.asarray(E_eff_V_per_m, np.float64)
    T = np.asarray(thresholds_V_per_m, np.float64)
    if np.any(T <= 0):
        raise ValueError("activated: thresholds_V_per_m must be > 0")
    if np.any(E < 0):
        raise ValueError("activated: E_eff_V_per_m must be >= 0")
    if pulse_scale is not None:
        factor = np.asarray(pulse_scale, np.float64)
        if factor.ndim != 1 or np.any(factor < 0):
            raise ValueError("activated: pulse_scale must be a 1-D array of values >= 0")
        E = factor.reshape(-1, *[1] * len(np.broadcast_shapes(E.shape, T.shape))) * E
    shape = np.broadcast_shapes(E.shape, T.shape)
    if noise_sigma < 0:
        raise ValueError(f"activated: noise_sigma must be >= 0, got {noise_sigma}")
    if noise_sigma > 0:
        T = T * np.exp(noise_sigma * np.random.default_rng(seed).standard_normal(shape))
    return scale * E >= T


@dataclass(frozen=True, eq=False)
class PulseEvents:
    """Forced spikes evoked by pulses: iterate for (time_ms, population, neuron_id) triples, in
    time order, as neurons.simulate(forced_spikes=...) takes them.

    times_us: (k,) int64 exact spike times, us. population_index: (k,) into populations.
    neuron_ids: (k,) int64 within the population. pulse_index: (k,) the evoking pulse.
    wave: (k,) 0 for the direct (D) wave, i for the i-th I wave.
    """

    populations: tuple[str, ...]
    times_us: np.ndarray
    population_index: np.ndarray
    neuron_ids: np.ndarray
    pulse_index: np.ndarray
    wave: np.ndarray

    @property
    def times_ms(self) -> np.ndarray:
        """Event times in ms (stored as integer microseconds)."""
        return self.times_us / US_PER_MS

    def __len__(self) -> int:
        return int(self.times_us.size)

    def __iter__(self):
        names = self.populations
        return ((t, names[p], i) for t, p, i in
                zip(self.times_ms.tolist(), self.population_index.tolist(), self.neuron_ids.tolist()))


def pulse_events(pulse_times_ms, activated_masks: Mapping[str, np.ndarray], delay_ms, *,
                 n_waves: int | Mapping[str, int] = 1, i_waves: bool = True,
                 wave_interval_ms: float = I_WAVE_INTERVAL_MS, dt_ms: float | None = None) -> PulseEvents:
    """Spikes evoked by pulses.

    pulse_times_ms: (n_pulses,) e.g. Protocol.times_ms. activated_masks: population ->
    (n_pulses, n_neurons) bool from `activated`. delay_ms: pulse-to-spike delay, a number or
    population -> ms (e.g. CellClass.delay_ms). Every activated neuron spikes at pulse + delay
    (the D wave). n_waves: total waves per population (a number or population -> number,
    default 1): with i_waves, activated neurons of a population with n_waves = m > 1 (e.g. the
    afferents that carry I waves) also spike at + wave_interval_ms, ..., + (m - 1) wave_interval_ms;
    with i_waves=False every population gives the D wave only. Times are exact integer
    microseconds; dt_ms, if given, must divide every spike time (ValueError otherwise).
    """
    pulses_us = to_us(np.atleast_1d(pulse_times_ms), "pulse_events: pulse_times_ms")
    interval_us = int(to_us(wave_interval_ms, "pulse_events: wave_interval_ms"))
    if interval_us <= 0:
        raise ValueError(f"pulse_events: wave_interval_ms must be > 0, got {wave_interval_ms}")
    names = tuple(activated_masks)
    parts = []
    for p, name in enumerate(names):
        mask = np.asarray(activated_masks[name], bool)
        if mask.ndim != 2 or mask.shape[0] != pulses_us.size:
            raise ValueError(f"pulse_events: activated_masks[{name!r}] must have shape ({pulses_us.size}, "
                             f"n_neurons), got {mask.shape}")
        if isinstance(delay_ms, Mapping) and name not in delay_ms:
            raise ValueError(f"pulse_events: delay_ms has no entry for population {name!r}")
        delay = delay_ms[name] if isinstance(delay_ms, Mapping) else delay_ms
        delay_us = int(to_us(delay, f"pulse_events: delay_ms for {name!r}"))
        if delay_us < 0:
            raise ValueError(f"pulse_events: delay_ms for {name!r} must be >= 0, got {delay}")
        waves = n_waves.get(name, 1) if isinstance(n_waves, Mapping) else n_waves
        if isinstance(waves, bool) or not isinstance(waves, (int, np.integer)) or waves < 1:
            raise ValueError(f"pulse_events: n_waves for {name!r} must be an integer >= 1, got {waves!r}")
        waves = int(waves) if i_waves else 1
        pulse, neuron = np.nonzero(mask)
        for w in range(waves):
            parts.append((pulses_us[pulse] + delay_us + w * interval_us, np.full(pulse.size, p),
                          neuron.astype(np.int64), pulse, np.full(pulse.size, w)))
    columns = [np.concatenate([part[i] for part in parts]) if parts else np.zeros(0, np.int64)
               for i in range(5)]
    order = np.lexsort((columns[2], columns[1], columns[0]))
    times, pop, ids, pulse, wave = (c[order].astype(np.int64) for c in columns)
    if dt_ms is not None and times.size:
        dt_ns = int(round(float(dt_ms) * 1e6))
        if dt_ns <= 0 or abs(dt_ns - float(dt_ms) * 1e6) > 1e-6 * dt_ns:
            raise ValueError(f"pulse_events: dt_ms must be > 0 and a whole number of nanoseconds, "
                             f"got {dt_ms!r}")
        off = (times * 1000) % dt_ns != 0
        if np.any(off):
            raise ValueError(f"pulse_events: spike at {float(times[off][0] / US_PER_MS)!r} ms is not on the "
                             f"dt_ms={dt_ms!r} grid (check delay_ms and wave_interval_ms)")
    return PulseEvents(names, times, pop, ids, pulse, wave)


def didt_from_mso(percent_mso: float, didt_max) -> float:
    """dI/dt (A/s) at percent_mso % of maximum stimulator output; didt_max is the stimulator's
    maximum dI/dt in A/s or an efield.Coil carrying it (E scales linearly with dI/dt)."""
    peak = getattr(didt_max, "didt_max", didt_max)
    if peak is None:
        raise ValueError(f"didt_from_mso: coil {getattr(didt_max, 'name', '')!r} has no didt_max; pass the "
                         "stimulator's maximum dI/dt in A/s")
    if not (math.isfinite(peak) and peak > 0):
        raise ValueError(f"didt_from_mso: didt_max must be > 0 A/s, got {peak}")
    if not 0 <= percent_mso <= 100:
        raise ValueError(f"didt_from_mso: percent_mso must be in [0, 100], got {percent_mso}")
    return percent_mso / 100.0 * float(peak)


def field_at_didt(E_V_per_m, didt_A_per_s: float, reference_didt_A_per_s: float = 1e6) -> np.ndarray:
    """A field computed at reference_didt_A_per_s (SimNIBS default 1e6 A/s), rescaled to
    didt_A_per_s: the quasi-static field is linear in dI/dt."""
    if not reference_didt_A_per_s > 0 or not didt_A_per_s >= 0:
        raise ValueError(f"field_at_didt: need didt_A_per_s >= 0 and reference_didt_A_per_s > 0, got "
                         f"{didt_A_per_s}, {reference_didt_A_per_s}")
    return np.asarray(E_V_per_m, np.float64) * (didt_A_per_s / reference_didt_A_per_s)


def mso_from_rmt(percent_rmt: float, rmt_percent_mso: float) -> float:
    """%MSO of an intensity given as % of the resting motor threshold (rmt_percent_mso, %MSO)."""
    if not 0 < rmt_percent_mso <= 100:
        raise ValueError(f"mso_from_rmt: rmt_percent_mso must be in (0, 100], got {rmt_percent_mso}")
    if not percent_rmt >= 0:
        raise ValueError(f"mso_from_rmt: percent_rmt must be >= 0, got {percent_rmt}")
    mso = percent_rmt / 100.0 * rmt_percent_mso
    if mso > 100:
        raise ValueError(f"mso_from_rmt: {percent_rmt}% of an RMT of {rmt_percent_mso}% MSO is {mso:g}% MSO, "
                         "beyond the stimulator's maximum")
    return mso
