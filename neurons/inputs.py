"""Stimuli given to `simulate`: injected currents and forced spikes, cut into per-chunk arrays."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class CurrentInjection:
    """Current (pA) into chosen neurons of one population.

    amplitude_pA: a callable times_ms (steps,) -> (steps,) or (steps, k) evaluated on the host
    for each chunk, or an array (steps,) or (steps, k) from t = 0, one row per time step (zero
    after it ends). The current is constant over each step; k = len(neuron_ids).
    """

    population: str
    neuron_ids: np.ndarray
    amplitude_pA: Callable | np.ndarray

    def rows(self, first_step: int, n_steps: int, dt_ms: float) -> np.ndarray:
        """(n_steps, k) float32 current for steps first_step ... first_step + n_steps - 1."""
        k = len(np.atleast_1d(self.neuron_ids))
        if callable(self.amplitude_pA):
            values = np.asarray(self.amplitude_pA((first_step + np.arange(n_steps)) * dt_ms), np.float64)
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
        steps, ids = [], []
        for time_ms, population, neuron_id in events:
            if population not in offsets:
                raise ValueError(f"forced_spikes: unknown population {population!r}")
            if not 0 <= neuron_id < sizes[population]:
                raise ValueError(f"forced_spikes: neuron {neuron_id} is not in {population!r} "
                                 f"({sizes[population]} neurons)")
            step = int(round(time_ms / dt_ms))
            if not 0 <= step < n_steps:
                raise ValueError(f"forced_spikes: time {time_ms} ms is outside the run")
            steps.append(step)
            ids.append(offsets[population] + int(neuron_id))
        steps, ids = np.asarray(steps, np.int64), np.asarray(ids, np.int64)
        order = np.argsort(steps, kind="stable")
        return cls(steps[order], ids[order])

    @property
    def max_per_step(self) -> int:
        return int(np.bincount(self.steps).max(initial=0)) if self.steps.size else 0

    def rows(self, first_step: int, n_steps: int, width: int, no_neuron: int) -> np.ndarray:
        """(n_steps, width) int32 ids firing at each step, padded with no_neuron."""
        out = np.full((n_steps, width), no_neuron, np.int32)
        lo, hi = np.searchsorted(self.steps, [first_step, first_step + n_steps])
        local = self.steps[lo:hi] - first_step
        rank = np.arange(local.size) - np.searchsorted(local, local)
        out[local, rank] = self.ids[lo:hi]
        return out
