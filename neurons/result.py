"""Simulation results as plain numpy arrays, with spike statistics and a SONATA writer."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


def per_synapse(projection, ell_values) -> np.ndarray:
    """Values of an (n_pre, max_out) ELL array of `projection` as float64, one per synapse in
    the Projection's order (its pre_ids / post_ids)."""
    ell = projection.ell
    out = np.empty(projection.n_synapses)
    out[ell.synapse_id[ell.valid]] = np.asarray(ell_values, np.float64)[ell.valid]
    return out


@dataclass(frozen=True, eq=False)
class Traces:
    """Recorded neurons of one population, sampled at the start of every step (times_ms of the
    result; synaptic events due at that time included): ids (local), v_mV (steps, m),
    syn (steps, m, 2) pA or nS (exc, inh), w_pA (steps, m) adaptation current."""

    ids: np.ndarray
    v_mV: np.ndarray
    syn: np.ndarray
    w_pA: np.ndarray


@dataclass(frozen=True, eq=False)
class SimulationResult:
    """Output of `neurons.simulate`.

    spikes: population -> SpikeTrains (read from the file when simulate streamed them to
    spikes_path); spike_counts: population -> (steps,) spikes per step;
    traces: population -> Traces for the recorded neurons; times_ms: (steps,) time of each
    step (the label of the spikes and samples of that step); final_state: NetworkState;
    weight_mean: plastic projection name -> (chunk end times ms, mean weight over its
    synapses at those times); bdnf_mean: the same for the mean BDNF over the postsynaptic
    neurons of each three-factor projection (half-saturation units); projections: the
    network's projections (for `weights`); snapshots_path: the weight snapshot file, if any.
    """

    dt_ms: float
    duration_ms: float
    times_ms: np.ndarray
    spikes: dict
    spike_counts: dict
    traces: dict
    final_state: object
    weight_mean: dict = field(default_factory=dict)
    bdnf_mean: dict = field(default_factory=dict)
    projections: tuple = ()
    snapshots_path: Path | None = None

    def weights(self, projection: str) -> np.ndarray:
        """Final weights (float64, pA or nS) of `projection`, one per synapse in the
        Projection's order (its pre_ids / post_ids)."""
        names = [p.name for p in self.projections]
        if projection not in names:
            raise KeyError(f"no projection {projection!r}; the network has {names}")
        index = names.index(projection)
        return per_synapse(self.projections[index], self.final_state.weights[index])

    def mean_rate_Hz(self, population: str) -> float:
        """Mean firing rate of the population over the run, Hz."""
        trains = self.spikes[population]
        return len(trains) / (trains.n_neurons * self.duration_ms * 1e-3)

    def rate_Hz(self, population: str, bin_ms: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(bin start times ms, population rate Hz) in bins of bin_ms (default: one step)."""
        per_bin = max(1, int(round((bin_ms or self.dt_ms) / self.dt_ms)))
        counts = self.spike_counts[population]
        n_bins = counts.size // per_bin
        binned = counts[:n_bins * per_bin].reshape(n_bins, per_bin).sum(axis=1)
        rate = binned / (self.spikes[population].n_neurons * per_bin * self.dt_ms * 1e-3)
        return self.times_ms[:n_bins * per_bin:per_bin], rate

    def save_sonata(self, path) -> Path:
        """Write the spikes as a SONATA spike file (HDF5); see neurons.io.write_sonata_spikes."""
        from .io import write_sonata_spikes

        return write_sonata_spikes(path, self.spikes)
