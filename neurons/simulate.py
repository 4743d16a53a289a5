"""`simulate`: run a network in chunks of jitted steps, moving monitors to the host."""

from __future__ import annotations

import math
import os
from collections import OrderedDict
from contextlib import nullcontext
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from ._checks import integer, number
from .bdnf import ThreeFactorSTDP, steps_per
from .connectivity import RECEPTORS
from .dynamics import neuron_constants
from .engine import (
    EngineConfig,
    NetworkState,
    StaticInputs,
    device_projection,
    fresh_state,
    poisson_cdf,
    block_lengths,
    run_chunk,
)
from .inputs import CurrentInjection, ForcedSpikes
from .io import SpikeFile, SpikeFileWriter, WeightSnapshotWriter
from .network import Network
from .plasticity import device_arrays
from .plasticity import periods as plastic_periods
from .result import SimulationResult, Traces, per_synapse
from .spikes import SpikeTrains


def simulate(net: Network, duration_ms: float, dt_ms: float = 0.1, seed: int = 0, *,
             record: dict | None = None, current_injections: tuple[CurrentInjection, ...] = (),
             forced_spikes=(), state: NetworkState | None = None, spikes_path=None,
             snapshots_path=None, snapshot_every_ms: float | None = None,
             max_spikes_per_step: int | None = None, chunk_steps: int = 1000,
             progress: bool = True) -> SimulationResult:
    """Simulate `net` for duration_ms (steps of dt_ms) and return a SimulationResult.

    seed: the run's randomness (Poisson input), an integer in [0, 2**32 - 1] (JAX keeps only
    the low 32 bits of a seed unless jax_enable_x64 is set, so larger or negative seeds
    would repeat streams); the same seed gives the same spikes.
    record: population -> neuron ids whose v, synaptic variables and w are kept every step.
    current_injections: CurrentInjection stimuli. forced_spikes: (time_ms, population,
    neuron_id) triples; a forced spike fires regardless of threshold and refractoriness and
    propagates like any other. Stimulus, spike and trace times count from the start of this
    run. state: continue from this NetworkState (a previous result's final_state, same network
    and dt_ms); with the same seed the continuation equals one uninterrupted run.
    spikes_path: stream the spikes chunk by chunk to this SONATA file instead of keeping them
    in memory (long runs); result.spikes then reads them from it.
    snapshots_path: write the weights of every plastic projection (and the BDNF of
    three-factor ones) to this HDF5 file (neurons.io.WeightSnapshotWriter) at the start, every
    snapshot_every_ms (a whole number of steps; default: only at the end) and at the end;
    read it back with neurons.read_weight_snapshots.
    max_spikes_per_step: initial size K of the per-step spike buffer (default 2% of each
    population, a power of two); later chunks use 1.5 times the largest count of the chunk
    before (at least 16). A chunk with a step above K is re-run from its start state with
    larger buffers over chunk_steps // 8 steps, then the run goes on with the default size.
    A chunk runs in a program compiled before (by this or an earlier run of the process) whose
    buffers are large enough, at most 4 times what it needs, rather than compiling its own.
    chunk_steps: steps per jitted chunk (bounds the memory of the per-step monitors and of the
    chunk's random numbers, 4 bytes per step for each neuron with Poisson input or rate); the
    randomness of a step depends only on (seed, step), so results do not depend on chunking.

    Plastic projections (connect(..., plasticity=...)) update their weights every step (see
    neurons.plasticity); result.weight_mean holds the mean weight of each plastic projection
    at the end of every chunk (result.bdnf_mean the mean BDNF of three-factor ones),
    result.weights(name) the final weights per synapse.

    Arguments are checked before any work: ValueError (TypeError for a wrong type) naming
    the argument and its allowed range, also when the run would pass the int32 step counter
    (2**31 - 1 steps) or its per-step monitors would not fit in this machine's memory.

    Speed: on the CPU spikes are transmitted one at a time, on other devices all buffered
    spikes at once (same results; see neurons.engine). On a small shared CPU, XLA's threads
    may slow the step down: pinning the process to one core (`taskset -c 0`) can be faster.
    """
    number(duration_ms, "simulate: duration_ms", 0.0, above=True)
    number(dt_ms, "simulate: dt_ms", 0.0, above=True)
    integer(seed, "simulate: seed", 0, MAX_SEED)
    integer(chunk_steps, "simulate: chunk_steps", 1)
    if max_spikes_per_step is not None:
        integer(max_spikes_per_step, "simulate: max_spikes_per_step", 1)
    if state is not None and not isinstance(state, NetworkState):
        raise TypeError(f"simulate: state must be a NetworkState (a result's final_state), got {type(state)}")
    n_steps = _n_steps(net, duration_ms, dt_ms, 0 if state is None else int(state.step), record)
    snap_steps = n_steps if snapshot_every_ms is None else steps_per(snapshot_every_ms, dt_ms,
                                                                      "simulate: snapshot_every_ms")
    constants, projections, weights, base_cfg = _engine_setup(net, dt_ms, max_spikes_per_step)
    plastic = _plastic_specs(net, base_cfg)
    record_split = [(pop, np.atleast_1d(np.asarray(ids, np.int64))) for pop, ids in (record or {}).items()]
    forced = ForcedSpikes.from_events(forced_spikes, net.offsets, {p.name: p.n for p in net.populations},
                                      dt_ms, n_steps)
    injection_ids = [_global_ids(net, inj.population, inj.neuron_ids, "CurrentInjection")
                     for inj in current_injections]
    inputs = StaticInputs(key=jax.random.key(seed),
                          injection_ids=jnp.asarray(_concat(injection_ids), dtype=jnp.int32),
                          record_ids=jnp.asarray(_concat([_global_ids(net, pop, ids, "record")
                                                          for pop, ids in record_split]), dtype=jnp.int32))
    initial = fresh_state(_v_init(net), weights, base_cfg.ring_slots, plastic)
    if state is None:
        state = initial
    else:
        _check_state(state, initial)
    sizes = {p.name: p.n for p in net.populations}
    plastic_projections = [net.projections[i] for i, _, _ in base_cfg.plasticity]
    snapshot_sizes = {p.name: (p.n_synapses, p.n_post if isinstance(p.plasticity, ThreeFactorSTDP) else None)
                      for p in plastic_projections}
    spike_sink = SpikeFileWriter(spikes_path, sizes) if spikes_path else _SpikesInMemory(sizes)
    snapshot_sink = WeightSnapshotWriter(snapshots_path, snapshot_sizes) if snapshots_path else nullcontext()
    with spike_sink as spikes, snapshot_sink as snaps:
        snapshot = None if snaps is None else \
            partial(_snapshot, snaps, plastic_projections, base_cfg.plasticity)
        run = _ChunkedRun(base_cfg, constants, projections, inputs, tuple(current_injections), forced,
                          n_steps, dt_ms, chunk_steps, snap_steps)
        state, records = _run_chunks(run, state, spikes, snapshot, progress)
    trains = SpikeFile(spikes_path, sizes) if spikes_path else spikes.trains()
    return _result(net, trains, records, record_split, state, dt_ms, n_steps, snapshots_path)


def initial_state(net: Network, dt_ms: float = 0.1) -> NetworkState:
    """The NetworkState simulate(net, ..., dt_ms) starts from without state=: v at each
    population's v_init_mV, no events pending, the initial weights, plasticity traces at rest.
    Also the template for rebuilding a saved state (same leaves, shapes and dtypes)."""
    number(dt_ms, "initial_state: dt_ms", 0.0, above=True)
    _, _, weights, cfg = _engine_setup(net, dt_ms, None)
    return fresh_state(_v_init(net), weights, cfg.ring_slots, _plastic_specs(net, cfg))


def _plastic_specs(net: Network, cfg: EngineConfig) -> list:
    """(rule, n_pre, n_post, max_out) per plastic projection, for engine.fresh_state: the
    projection's own rule, whose BDNF starts at its basal steady state (the compiled one,
    cfg.plasticity, has no basal release)."""
    return [(p.plasticity, p.n_pre, p.n_post, p.ell.weight.shape[1])
            for p in (net.projections[i] for i, _, _ in cfg.plasticity)]


def frozen(net: Network, state: NetworkState) -> tuple[Network, NetworkState]:
    """(network, state) for measuring `net` without changing it: a copy of `net` whose
    projections are all static, and `state` (a state of `net`) as a state of that copy, every
    weight as it stands in `state` (plasticity traces dropped). A run of the copy from it
    transmits with those weights and never changes them; its spikes are those of `net` with
    every plasticity rule switched off."""
    if not isinstance(state, NetworkState):
        raise TypeError(f"frozen: state must be a NetworkState (a result's final_state), got {type(state)}")
    if len(state.weights) != len(net.projections):
        raise ValueError(f"frozen: state has {len(state.weights)} weight arrays, the network "
                         f"{len(net.projections)} projections: it is not a state of this network")
    static = replace(net, projections=tuple(replace(p, plasticity=None) for p in net.projections))
    return static, replace(state, plastic=())


def _v_init(net: Network) -> np.ndarray:
    return np.concatenate([np.broadcast_to(np.asarray(p.v_init_mV, np.float64), (p.n,))
                           for p in net.populations])


def _snapshot(writer, plastic_projections, plasticity, state: NetworkState, time_ms: float):
    """Write the weights (and BDNF) of every plastic projection at time_ms."""
    for proj, (index, _, _), traces in zip(plastic_projections, plasticity, state.plastic):
        bdnf = None if traces.third is None else np.asarray(traces.third.bdnf)
        writer.append(proj.name, time_ms, per_synapse(proj, state.weights[index]), bdnf)


@dataclass(frozen=True, eq=False)
class _ChunkedRun:
    """What stays fixed while a run goes chunk by chunk: the engine's configuration, constants,
    projections and static inputs, the current injections and forced spikes, the run's length
    (steps), step (ms), chunk length and snapshot interval (steps)."""

    base_cfg: object
    constants: object
    projections: list
    inputs: StaticInputs
    current_injections: tuple
    forced: ForcedSpikes
    n_steps: int
    dt_ms: float
    chunk_steps: int
    snap_steps: int


class _ChunkRecord(NamedTuple):
    """Monitors of one chunk: spike counts per step and population, recorded v, syn, w per
    step, the chunk's end (ms), the mean weight of each plastic projection and its mean BDNF
    (NaN without BDNF) at that end."""

    counts: np.ndarray
    v: np.ndarray
    syn: np.ndarray
    w: np.ndarray
    end_ms: float
    mean_weights: np.ndarray
    mean_bdnf: np.ndarray


def _run_chunks(run: _ChunkedRun, state, spikes, snapshot, progress: bool):
    """Run all steps chunk by chunk, handing each chunk's spikes to spikes.append(population
    index, times_ms, ids) and calling snapshot(state, time_ms) (if given) at the start, every
    snap_steps and at the end; returns the final state and the _ChunkRecord of every chunk."""
    base_cfg, projections, forced, n_steps, dt_ms, chunk_steps, snap_steps = (
        run.base_cfg, run.projections, run.forced, run.n_steps, run.dt_ms, run.chunk_steps, run.snap_steps)
    n = base_cfg.n_neurons
    records, first, next_cfg = [], 0, base_cfg
    plastic = [i for i, _, _ in base_cfg.plasticity]
    valid = {i: np.asarray(projections[i].target) < 2 * n for i in plastic}
    burst_steps = max(1, chunk_steps // 8)
    start = int(state.step)
    periods = [p for _, _, rule in base_cfg.plasticity for p in plastic_periods(rule, dt_ms).values()]
    # chunks start at multiples of the longest period that fits a whole chunk, so that the
    # periodic updates can run at the ends of nested blocks (engine.run_chunk)
    align = max([p for p in periods if chunk_steps % p == 0], default=1)
    # a power of two, so that runs with similar stimuli share one compiled chunk
    forced_width = _pow2(max(forced.max_per_step, _MIN_SPIKE_BUFFER)) if forced.max_per_step else 0
    if snapshot is not None:
        snapshot(state, 0.0)
    with tqdm(total=n_steps, desc="simulate", unit="step", disable=not progress) as bar:
        while first < n_steps:
            steps, cfg = min(chunk_steps, n_steps - first, snap_steps - first % snap_steps), next_cfg
            if (start + first) % align:
                steps = min(steps, align - (start + first) % align)
            while True:
                cfg = replace(cfg, blocks=block_lengths(periods, start + first, steps))
                injected = np.concatenate([inj.rows(first, steps, dt_ms) for inj in run.current_injections]
                                          or [np.zeros((steps, 0), np.float32)], axis=1)
                forced_rows = forced.rows(first, steps, forced_width, n)
                cfg = _with_capacity(cfg, forced.most_per_step(first, steps, cfg.population_slices))
                cfg, width = _PROGRAMS.choose(cfg, forced_width, injected.shape + run.inputs.record_ids.shape)
                forced_rows = np.pad(forced_rows, ((0, 0), (0, width - forced_width)), constant_values=n)
                new_state, out = run_chunk(cfg, run.constants, projections, run.inputs, state,
                                           jnp.asarray(injected, dtype=jnp.float32),
                                           jnp.asarray(forced_rows, dtype=jnp.int32))
                if not bool(new_state.overflow):
                    break
                # re-run from the same start with larger buffers, over a shorter stretch so that
                # a burst does not make the whole chunk pay for the larger buffers
                most = np.asarray(out[0]).max(axis=0)
                cfg = _with_capacity(cfg, tuple(max(2 * k, 2 * m) if m > k else k
                                                for k, m in zip(cfg.max_spikes, most)))
                steps = min(steps, burst_steps)
            state = new_state
            # the monitors, plastic weights and BDNF to the host in one transfer
            chains = [None if t.third is None else t.third.chain for t in state.plastic]
            out, weights, chains = jax.device_get((out, [state.weights[i] for i in plastic], chains))
            counts, spike_ids, v, syn, w = out
            # size the next chunk's buffers to this chunk's activity (1.5x margin); after a burst
            # stretch, go back to the default size
            next_cfg = base_cfg if steps < min(chunk_steps, n_steps - first) else replace(
                cfg, max_spikes=tuple(_pow2(max(_MIN_SPIKE_BUFFER, math.ceil(1.5 * m)))
                                      for m in counts.max(axis=0)))
            for i, ((offset, size), ids) in enumerate(zip(base_cfg.population_slices, spike_ids)):
                step_in_chunk, slot = np.nonzero(ids < size)
                spikes.append(i, (first + step_in_chunk) * dt_ms, ids[step_in_chunk, slot].astype(np.int64))
            means = np.array([np.asarray(weight, np.float64)[valid[i]].mean() if valid[i].any() else np.nan
                              for i, weight in zip(plastic, weights)])
            # BDNFState.bdnf is the chain's last stage
            bdnf = np.array([np.nan if c is None else np.mean(c[-1], dtype=np.float64) for c in chains])
            records.append(_ChunkRecord(counts, v, syn, w, (first + steps) * dt_ms, means, bdnf))
            first += steps
            bar.update(steps)
            if snapshot is not None and (first % snap_steps == 0 or first == n_steps):
                snapshot(state, first * dt_ms)
    return state, records


def _engine_setup(net: Network, dt_ms: float, max_spikes_per_step: int | None):
    """Neuron constants, device projections, initial ELL weights and the static configuration."""
    offsets, n = net.offsets, net.n_neurons
    params = {}
    for pop in net.populations:
        for name, values in pop.params.arrays(pop.n, pop.name).items():
            params.setdefault(name, []).append(values)
    constants = neuron_constants({k: np.concatenate(v) for k, v in params.items()}, dt_ms, net.neuron)
    projections = [device_projection(proj.ell, RECEPTORS.index(proj.receptor), offsets[proj.post], n, dt_ms,
                                     proj.name,
                                     device_arrays(proj, dt_ms) if proj.plasticity is not None else None)
                   for proj in net.projections]
    weights = [proj.ell.weight for proj in net.projections]
    max_delay = max([int(p.delay_steps.max()) for p in projections], default=1)
    names = [p.name for p in net.populations]
    cfg = EngineConfig(
        neuron=net.neuron, synapse=net.synapse, n_neurons=n, dt_ms=float(dt_ms), ring_slots=max_delay + 1,
        max_spikes=tuple(_pow2(max_spikes_per_step or max(16, math.ceil(0.02 * p.n)))
                         for p in net.populations),
        population_slices=tuple((offsets[p.name], p.n) for p in net.populations),
        projection_pre=tuple(names.index(q.pre) for q in net.projections),
        poisson=tuple((offsets[i.population], net.population(i.population).n,
                       poisson_cdf(i.n_sources * i.rate_Hz * dt_ms * 1e-3), float(i.weight),
                       RECEPTORS.index(i.receptor)) for i in net.poisson),
        generators=tuple((offsets[p.name], p.n, float(p.rate_Hz) * dt_ms * 1e-3) for p in net.populations
                         if p.rate_Hz is not None),
        plasticity=tuple((k, names.index(q.post), q.plasticity.kernel())
                         for k, q in enumerate(net.projections) if q.plasticity is not None),
        propagation=_propagation())
    return constants, projections, weights, cfg


def _propagation() -> str:
    """How spikes are transmitted (engine.EngineConfig.propagation): one spike at a time on the
    CPU, where XLA's gathers and scatters are slow per element and a loop costs little; all
    K buffered spikes at once elsewhere (GPU), where a loop would launch a kernel per spike.
    Both give the same spikes."""
    return "loop" if jax.default_backend() == "cpu" else "gather"


MAX_SEED = 2**32 - 1
MAX_STEP = 2**31 - 1  # the step counter is int32


def _n_steps(net: Network, duration_ms: float, dt_ms: float, start: int, record) -> int:
    """Steps of a run from step `start`; ValueError if it rounds to no step, passes the int32
    step counter or its per-step monitors (times, spike counts, recorded traces) would need
    more memory than the machine has."""
    steps = duration_ms / dt_ms
    if not (steps <= MAX_STEP and 1 <= round(steps) <= MAX_STEP - start):
        raise ValueError(f"simulate: duration_ms / dt_ms = {duration_ms} / {dt_ms} = {steps:.4g} steps; "
                         f"a run from step {start} needs 1 to {MAX_STEP - start} steps (the step counter "
                         "is int32): split a longer run, with neurons.rest between runs to wrap the counter")
    n_steps = int(round(steps))
    n_recorded = sum(np.size(ids) for ids in (record or {}).values())
    need = n_steps * (8 + 4 * len(net.populations) + 16 * n_recorded)
    try:
        have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows)
        return n_steps
    if need > have:
        raise ValueError(f"simulate: the per-step monitors of {n_steps} steps ({n_recorded} recorded "
                         f"neurons) need about {need / 2**30:.3g} GiB, more than this machine's "
                         f"{have / 2**30:.3g} GiB; shorten duration_ms, raise dt_ms or record fewer neurons")
    return n_steps


def _check_state(state: NetworkState, like: NetworkState):
    """Raise unless `state` has the shapes of `like` (a state of this network and dt)."""
    if [np.shape(x) for x in jax.tree_util.tree_leaves(state)] != \
            [np.shape(x) for x in jax.tree_util.tree_leaves(like)]:
        raise ValueError("simulate: state does not belong to this network and dt_ms "
                         "(pass the final_state of a run of the same network with the same dt_ms)")


def _global_ids(net: Network, population: str, ids, what: str) -> np.ndarray:
    """Global indices of `ids` (local to `population`), checked."""
    if population not in net.offsets:
        raise ValueError(f"simulate: {what} names unknown population {population!r}")
    ids = np.atleast_1d(np.asarray(ids, np.int64))
    if ids.size and (ids.min() < 0 or ids.max() >= net.population(population).n):
        raise ValueError(f"simulate: {what} names neurons outside population {population!r}")
    return net.offsets[population] + ids


def _concat(parts) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


_MIN_SPIKE_BUFFER = 16


def _pow2(k: int) -> int:
    return 1 << max(0, int(k) - 1).bit_length()


def _with_capacity(cfg: EngineConfig, at_least: tuple) -> EngineConfig:
    """cfg with spike buffers of at least `at_least` per population (powers of two)."""
    return replace(cfg, max_spikes=tuple(max(k, _pow2(m)) for k, m in zip(cfg.max_spikes, at_least)))


class _CompiledSizes:
    """The buffer sizes (spike buffer K per population, forced-spike width F) of the chunk
    programs compiled so far, per engine configuration and chunk shape, so that a chunk runs
    in one already compiled whose buffers are large enough, and its spike buffers at most
    REUSE times what it needs (the forced-spike width any size), rather than compiling its
    own (seconds each). The sizes change only what is
    compiled, not the results: a step with more spikes than K re-runs the chunk, and unused
    slots of K and F do nothing. A new program gets, within REUSE times the need, the largest
    sizes compiled before, so that later chunks find it large enough. The `max_keys`
    configurations used last are kept."""

    REUSE = 4

    def __init__(self, max_keys: int = 64):
        self.max_keys = max_keys
        self._sizes: OrderedDict = OrderedDict()

    def choose(self, cfg: EngineConfig, forced_width: int, shape: tuple) -> tuple[EngineConfig, int]:
        """(cfg, F) of the program for a chunk of `shape` that needs cfg.max_spikes and F >=
        forced_width (0: no forced spikes)."""
        key = (replace(cfg, max_spikes=()), shape)
        compiled = self._sizes.setdefault(key, [])
        self._sizes.move_to_end(key)
        while len(self._sizes) > self.max_keys:
            self._sizes.popitem(last=False)
        need = cfg.max_spikes + (forced_width,)
        most = [self.REUSE * max(k, _MIN_SPIKE_BUFFER) for k in need]
        most[-1] = max([most[-1]] + [c[-1] for c in compiled])  # unused forced slots cost next to nothing
        fits = [sizes for sizes in compiled if all(k <= h <= m for k, h, m in zip(need, sizes, most))]
        if fits:
            sizes = min(fits, key=sum)
        else:
            sizes = tuple(max([k] + [c[i] for c in compiled if c[i] <= m])
                          for i, (k, m) in enumerate(zip(need, most)))
            compiled.append(sizes)
        return replace(cfg, max_spikes=sizes[:-1]), sizes[-1]


_PROGRAMS = _CompiledSizes()


class _SpikesInMemory:
    """Collects spikes per population on the host (the in-memory counterpart of SpikeFileWriter)."""

    def __init__(self, populations: dict[str, int]):
        self.populations = populations
        self._parts = [([], []) for _ in populations]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def append(self, population_index: int, times_ms: np.ndarray, ids: np.ndarray):
        self._parts[population_index][0].append(times_ms)
        self._parts[population_index][1].append(ids)

    def trains(self) -> dict[str, SpikeTrains]:
        return {name: SpikeTrains(np.concatenate(times), np.concatenate(ids), n)
                for (name, n), (times, ids) in zip(self.populations.items(), self._parts)}


def _result(net, spikes, records, record_split, state, dt_ms, n_steps, snapshots_path) -> SimulationResult:
    counts, v, syn, w = (np.concatenate([getattr(r, name) for r in records])
                         for name in ("counts", "v", "syn", "w"))
    plastic = [p for p in net.projections if p.plasticity is not None]
    chunk_end = np.array([r.end_ms for r in records])
    means = np.array([r.mean_weights for r in records]).reshape(len(records), len(plastic))
    weight_mean = {p.name: (chunk_end, means[:, i]) for i, p in enumerate(plastic)}
    bdnf = np.array([r.mean_bdnf for r in records]).reshape(len(records), len(plastic))
    bdnf_mean = {p.name: (chunk_end, bdnf[:, i]) for i, p in enumerate(plastic)
                 if isinstance(p.plasticity, ThreeFactorSTDP)}
    spike_counts = {pop.name: counts[:, i] for i, pop in enumerate(net.populations)}
    traces, column = {}, 0
    for population, rec_ids in record_split:
        cols = slice(column, column + rec_ids.size)
        traces[population] = Traces(rec_ids, v[:, cols], syn[:, cols], w[:, cols])
        column += rec_ids.size
    return SimulationResult(dt_ms=dt_ms, duration_ms=n_steps * dt_ms, times_ms=np.arange(n_steps) * dt_ms,
                            spikes=spikes, spike_counts=spike_counts, traces=traces, final_state=state,
                            weight_mean=weight_mean, bdnf_mean=bdnf_mean, projections=net.projections,
                            snapshots_path=None if snapshots_path is None else Path(snapshots_path))
