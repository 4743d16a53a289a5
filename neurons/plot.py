"""Pictures of spiking-network runs: rasters, population rates, weights and BDNF.

Each function draws on a matplotlib Axes and returns it; matplotlib itself is imported only
by `save`. Times are shown in seconds, rates in Hz, weights in the projection's unit (nS for
conductance synapses, pA for current synapses), BDNF in half-saturation units.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def raster(ax, spikes: dict, *, end_ms: float | None = None, populations=None, sizes: dict | None = None):
    """Spike raster of `spikes` (population -> SpikeTrains or (times_ms, ids)), population
    blocks stacked bottom to top, up to end_ms (default: all). sizes: population -> number of
    neurons (default: SpikeTrains.n_neurons, else the largest id + 1). Returns ax."""
    offset = 0
    for k, name in enumerate(populations or list(spikes)):
        times, ids = (np.asarray(a) for a in spikes[name])
        keep = slice(None) if end_ms is None else times < end_ms
        ax.plot(times[keep] / 1e3, ids[keep] + offset, ",", color=f"C{k}", label=name)
        offset += _size(spikes[name], ids, sizes, name)
    ax.set(xlabel="time (s)", ylabel="neuron", ylim=(0, max(offset, 1)))
    ax.legend(loc="upper right", markerscale=20, fontsize=7)
    return ax


def rates(ax, result, *, bin_ms: float = 10.0, populations=None):
    """Population rates (Hz) of a SimulationResult in bins of bin_ms, one line per
    population. Returns ax."""
    for name in populations or list(result.spikes):
        times_ms, rate_Hz = result.rate_Hz(name, bin_ms)
        ax.plot(times_ms / 1e3, rate_Hz, label=name, linewidth=0.8)
    ax.set(xlabel="time (s)", ylabel=f"rate (Hz, {bin_ms:g} ms bins)")
    ax.legend(fontsize=7)
    return ax


def weight_histogram(ax, weights: dict, *, bins: int = 40, unit: str = "nS"):
    """Histograms of synaptic weights (label -> array of weights in `unit`), overlaid.
    Returns ax."""
    for label, w in weights.items():
        ax.hist(np.asarray(w).ravel(), bins=bins, histtype="step", label=label)
    ax.set(xlabel=f"weight ({unit})", ylabel="synapses")
    ax.legend(fontsize=7)
    return ax


def weight_trajectories(ax, snapshots: dict, *, n_synapses: int = 20, unit: str = "nS", seed: int = 0):
    """Weights over time from weight snapshots (projection -> dict(times_ms, weights, ...), as
    read by neurons.read_weight_snapshots): the mean of each projection (thick) and
    n_synapses randomly chosen synapses of it (thin). Returns ax."""
    rng = np.random.default_rng(seed)
    for k, (name, snap) in enumerate(snapshots.items()):
        t_s, w = np.asarray(snap["times_ms"]) / 1e3, np.asarray(snap["weights"])
        pick = rng.choice(w.shape[1], size=min(n_synapses, w.shape[1]), replace=False)
        ax.plot(t_s, w[:, pick], color=f"C{k}", linewidth=0.4, alpha=0.5)
        ax.plot(t_s, w.mean(axis=1), color=f"C{k}", linewidth=2.0, label=f"{name} (mean)")
    ax.set(xlabel="time (s)", ylabel=f"weight ({unit})")
    ax.legend(fontsize=7)
    return ax


def bdnf(ax, series: dict, *, time_unit: str = "s"):
    """Mean BDNF over time: label -> (times_ms, mean BDNF) pairs (SimulationResult.bdnf_mean)
    or snapshot dicts with times_ms and an (n, n_post) bdnf array (read_weight_snapshots).
    time_unit: "s", "min", "h" or "days" on the x axis. Returns ax."""
    scale = {"s": 1e3, "min": 60e3, "h": 3600e3, "days": 86400e3}[time_unit]
    for label, item in series.items():
        if isinstance(item, dict):
            if item.get("bdnf") is None:
                continue
            times_ms, values = item["times_ms"], np.asarray(item["bdnf"]).mean(axis=1)
        else:
            times_ms, values = item
        ax.plot(np.asarray(times_ms) / scale, values, label=label)
    ax.set(xlabel=f"time ({time_unit})", ylabel="mean BDNF (half-saturation units)")
    ax.legend(fontsize=7)
    return ax


def save(fig, path, *, dpi: int = 110) -> Path:
    """Write a matplotlib Figure to `path` (format from the suffix, default PNG) through a
    temporary file, close it if pyplot made it, and return the path."""
    from tmsim_io import save_figure

    return save_figure(fig, path, dpi=dpi)


def _size(trains, ids, sizes: dict | None, name: str) -> int:
    """Neurons in a population: from sizes, the SpikeTrains, or the largest id + 1."""
    if sizes and name in sizes:
        return int(sizes[name])
    n = getattr(trains, "n_neurons", None)
    return int(n) if n is not None else int(ids.max(initial=-1)) + 1
