"""Figures of sessions and courses (matplotlib, imported when called)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def raster(ax, spikes, patch, protocol, duration_s: float):
    """Spikes of every population of the patch over the first duration_s of a session run
    (population blocks stacked), with the protocol's pulses (LEAD_MS after the run's start)."""
    from .session import LEAD_MS

    import neurons.plot

    end = duration_s * 1e3
    sizes = {name: patch.network.population(name).n for name in patch.populations}
    neurons.plot.raster(ax, spikes, end_ms=end, populations=list(patch.populations), sizes=sizes)
    offset = sum(sizes.values())
    if not protocol.sham:
        pulses = protocol.times_ms[protocol.times_ms + LEAD_MS < end] + LEAD_MS
        ax.vlines(pulses / 1e3, 0, offset, colors="k", linewidth=0.3, alpha=0.4)
    ax.set(title=f"{protocol.name}: spikes (pulses in grey)")


def plot_raster(spikes, patch, protocol, path, *, duration_s: float = 2.0) -> Path:
    """Raster of a session's spikes (population -> SpikeTrains) to an image file."""
    from tmsim_io import figure, save_figure

    fig = figure(path, figsize=(9, 5))
    ax = fig.subplots()
    raster(ax, spikes, patch, protocol, duration_s)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_session(result, patch, path, *, raster_s: float = 2.0) -> Path:
    """One figure of a SessionResult: raster of the first raster_s seconds of stimulation with
    the pulses, |E| at the neurons per population, MEP proxy and mean plastic weights over
    time (before, after stimulation, probe times)."""
    from tmsim_io import figure, save_figure

    fig = figure(path, figsize=(11, 7.5))
    axes = fig.subplots(2, 2)
    raster(axes[0, 0], result.spikes, patch, result.protocol, raster_s)

    ax = axes[0, 1]
    names = list(patch.populations)
    ax.boxplot([result.field.magnitude(n) * result.percent_mso / 100.0 for n in names])
    ax.set_xticks(np.arange(1, len(names) + 1), names)
    ax.set(ylabel="|E| at the neurons (V/m)", title=f"field at {result.percent_mso:.0f} % MSO")

    times = ["before"] + [str(m) for m in result.mep_after]
    x = np.arange(len(times))
    labels = ["before"] + [f"+{m:g} min" for m in result.mep_after]
    ax = axes[1, 0]
    meps = [result.mep_before] + list(result.mep_after.values())
    ax.errorbar(x, [m.mean for m in meps], yerr=[np.std(m.responses) for m in meps], marker="o", capsize=3)
    ax.set_xticks(x, labels)
    ax.set(ylabel="MEP proxy (L5E spikes per neuron)", title="response to test pulses")

    ax = axes[1, 1]
    for name, series in result.mean_weights.items():
        ax.plot(x, [series[t] for t in times], marker="o", label=name)
    ax.set_xticks(x, labels)
    ax.set(ylabel="mean weight (nS)", title="plastic projections")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_course(result, path) -> Path:
    """MEP proxy, mean plastic weights and mean BDNF over a course (a CourseResult), against
    days from the course start, with the sessions marked."""
    from tmsim_io import figure, save_figure

    fig = figure(path, figsize=(9, 9))
    axes = fig.subplots(3, 1, sharex=True)
    days = result.times_days
    for ax in axes:
        for start in result.calendar.start_days:
            ax.axvline(start, color="0.85", linewidth=0.8, zorder=0)
    axes[0].plot(days, result.mep, "o-", markersize=3)
    axes[0].set(ylabel="MEP proxy (L5E spikes per neuron)",
                title=f"{result.protocol.name} at {result.percent_mso:.0f} % MSO, "
                      f"{len(result.calendar)} sessions (grey: session starts)")
    for name, series in result.mean_weights.items():
        axes[1].plot(days, series, "o-", markersize=3, label=name)
    axes[1].set(ylabel="mean weight (nS)")
    axes[1].legend(fontsize=7)
    for name, series in result.bdnf.items():
        axes[2].plot(days, series, "o-", markersize=3, label=name)
    axes[2].set(ylabel="mean BDNF (half-saturation units)", xlabel="days from the course start")
    fig.tight_layout()
    return save_figure(fig, path)
