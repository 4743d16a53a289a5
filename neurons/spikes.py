"""Spike trains of one population, with spike statistics."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class SpikeTrains:
    """Spikes of one population sorted by time: times_ms (float64), ids (int64, local)."""

    times_ms: np.ndarray
    ids: np.ndarray
    n_neurons: int

    def __iter__(self):  # unpacks as (times_ms, ids)
        return iter((self.times_ms, self.ids))

    def __len__(self) -> int:
        return int(self.times_ms.size)

    def per_neuron(self) -> list[np.ndarray]:
        """Spike times (ms) of each neuron."""
        order = np.lexsort((self.times_ms, self.ids))
        return np.split(self.times_ms[order], np.cumsum(np.bincount(self.ids, minlength=self.n_neurons))[:-1])

    def cv_isi(self, min_spikes: int = 3) -> float:
        """Mean over neurons with >= min_spikes spikes of std(ISI)/mean(ISI); nan if none."""
        cvs = [np.std(d) / np.mean(d) for t in self.per_neuron() if t.size >= min_spikes
               for d in [np.diff(t)]]
        return float(np.mean(cvs)) if cvs else float("nan")
