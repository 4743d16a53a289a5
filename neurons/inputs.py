"""Stimuli given to `simulate`: injected currents and forced spikes, cut into per-chunk arrays."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ._checks import finite


@dataclass(frozen=True, eq=False)
class CurrentInjection:
    """Current (pA) into chosen neurons of one population.

    amplitude_pA: a callable times_ms (steps,) -> (steps,) or (steps, k) evaluated on the host
    for each chunk, or an array (steps,) or (steps, k) from t = 0, one row per time step (zero
    after it ends). The current is constant over each step; k = len(neuron_ids). Every
    value must be finite (ValueError naming the population otherwise).
    """

    population: str
    neuron_ids: np.ndarray
    amplitude_pA: Callable | np.ndarray

    def __post_init__(self):
        if not callable(self.amplitude_pA):
            finite(self.amplitude_pA, f"CurrentInjection into {self.population!r}: amplitude_pA")

    def rows(self, first_step: int, n_steps: int, dt_ms: float) -> np.ndarray:
        """(n_steps, k) float32 current for steps first_step ... first_step + n_steps - 1."""
        k = len(np.atleast_1d(self.neuron_ids))
        if callable(self.amplitude_pA):
            values = finite(self.amplitude_pA((first_step + np.arange(n_steps)) * dt_ms),
                            f"CurrentInjection into {self.population!r}: amplitude_pA")
        else:
            full = np.asarray(self.amplitude_pA, np.float64)
            values = np.zeros((n_steps,) + full.shape[1:])
            part = full[first_step:first_step + n_steps]
            values[:len(part)] = part
        if values.ndim == 1:
            values = values[:, None]
        if values.shape[0] != n_steps or values.shape[1] not in (1, k):
            raise ValueError(f"CurrentInjection into {self.population!r}: amplitude_pA gives shape "
                             f"{values.shape}, expected ({n_steps},) or ({n_steps}, {k})")
        return np.broadcast_to(values, (n_steps, k)).astype(np.float32)


@dataclass(frozen=True)
class ForcedSpikes:
    """Forced spikes as global neuron ids and step indices, sorted by step."""

    steps: np.ndarray
    ids: np.ndarray

    @classmethod
    def from_events(cls, events, offsets: dict[str, int], sizes: dict[str, int], dt_ms: float,
                    n_steps: int) -> ForcedSpikes:
        """From (time_ms, population, neuron_id) triples; times round to the nearest step."""
        events = list(events)
        times = np.array([e[0] for e in events], np.float64)
        populations = [e[1] for e in events]
        local = np.array([e[2] for e in events], np.int64)
        unknown = set(populations) - set(offsets)
        if unknown:
            raise ValueError(f"forced_spikes: unknown population(s) {sorted(unknown)}")
        offset = np.array([offsets[p] for p in populations], np.int64)
        size = np.array([sizes[p] for p in populations], np.int64)
        bad = (local < 0) | (local >= size)
        if np.any(bad):
            i = int(np.argmax(bad))
            raise ValueError(f"forced_spikes: neuron {local[i]} is not in {populations[i]!r} "
                             f"({size[i]} neurons)")
        steps = np.rint(times / dt_ms).astype(np.int64)
        outside = (steps < 0) | (steps >= n_steps)
        if np.any(outside):
            raise ValueError(f"forced_spikes: time {times[np.argmax(outside)]} ms is outside the run")
        order = np.argsort(steps, kind="stable")
        return cls(steps[order], (offset + local)[order])

    @property
    def max_per_step(self) -> int:
        return int(np.bincount(self.steps).max(initial=0)) if self.steps.size else 0

    def most_per_step(self, first_step: int, n_steps: int, population_slices) -> tuple:
        """Most forced spikes in one step of [first_step, first_step + n_steps), per population
        (offset, n) of population_slices."""
        lo, hi = np.searchsorted(self.steps, [first_step, first_step + n_steps])
        steps, ids = self.steps[lo:hi], self.ids[lo:hi]
        return tuple(int(np.unique(steps[(ids >= o) & (ids < o + m)], return_counts=True)[1].max(initial=0))
                     for o, m in population_slices)

    def rows(self, first_step: int, n_steps: int, width: int, no_neuron: int) -> np.ndarray:
        """(n_steps, width) int32 ids firing at each step, padded with no_neuron."""
        out = np.full((n_steps, width), no_neuron, np.int32)
        lo, hi = np.searchsorted(self.steps, [first_step, first_step + n_steps])
        local = self.steps[lo:hi] - first_step
        rank = np.arange(local.size) - np.searchsorted(local, local)
        out[local, rank] = self.ids[lo:hi]
        return out
