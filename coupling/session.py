"""One rTMS session on a cortical patch: motor threshold, MEP proxy before and after, plasticity.

MEP proxy: the spikes of the output population (layer 5 pyramidal cells, "L5E") within
`MEP_WINDOW_MS` after a test pulse (the descending volley: the D wave and the I waves arrive
within about 7 ms of the pulse, Di Lazzaro et al. 2012, J Physiol 590:4713) minus the background
expected in that window from the population's spikes over the `BACKGROUND_MS` before the pulse,
per neuron of the population, for test pulses given every `TEST_INTERVAL_MS` from a network
state. Probing measures the network without changing it: it runs with every weight frozen
(neurons.frozen) and never changes the state it starts from. (Test pulses in the human studies
come every 4-5 s so as not to change excitability; here they come every 0.5 s to save time, a
rate at which the calcium rule would potentiate the afferent synapses within the probe.)
Resting motor threshold (RMT): the lowest %MSO at which a single pulse evokes an MEP (a
response of at least `MEP_CRITERION` of L5E) in half of the trials, found by bisection.

A session (`run_session`): the network settles, the MEP proxy is measured, the protocol is
delivered (spikes simulated step by step, with plasticity), the network runs on for
`after_s`; then the slow variables advance without spiking (neurons.rest) to each probe time
after the end of stimulation, where the MEP proxy and the mean weights are measured. Each
probe after the protocol starts from the fast state of the one before it and uses its seed
(`at_rest`): before/after ratios then reflect the lasting changes, not trial-to-trial noise.

Bridging (SessionOptions.bridge_min_gap_s > 0; the project's own time-scale bridging, off by
default): a gap between consecutive pulses longer than bridge_min_gap_s, and than
bridge_settle_s + LEAD_MS, is simulated spike by spike only over bridge_settle_s after its
last pulse and LEAD_MS before its next one (`simulated_windows`); over the rest of it nothing
spikes and the slow variables advance in closed form (`bridge`: neurons.rest, then the rate
trace of the calcium rule's sliding threshold relaxes towards the spontaneous rate of its
presynaptic population, the mean of that trace under firing at that rate, measured over the
second halves of the session's settle windows so far). The step counter advances through
the rest, so pulses keep their absolute times and the background noise of every simulated
step is the one the full run draws there (it is keyed by seed and step). What the
spontaneous activity of the skipped stretch would have done (its own plasticity, its BDNF
release) is left out; benchmarks/bridging.py measures the result against the full run.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

import neurons

from .options import SessionOptions, check_options, child_seed
from .patch import CorticalPatch
from .protocols import Protocol
from .stimulus import NeuronField, neuron_field, stimulus_events

OUTPUT = "L5E"
MEP_WINDOW_MS = 10.0
BACKGROUND_MS = 100.0
MEP_CRITERION = 0.05
TEST_INTERVAL_MS = 500.0
SETTLE_MS = 500.0
LEAD_MS = 10.0
"""Time from the start of a session's run to its first pulse, ms."""


@dataclass(frozen=True, eq=False)
class MEP:
    """Responses to test pulses: per-trial fraction of the output population firing in the
    window; mean and the fraction of trials with an MEP (response >= criterion)."""

    responses: np.ndarray
    criterion: float = MEP_CRITERION

    @property
    def mean(self) -> float:
        """Mean MEP proxy over the test pulses (L5 pyramidal spikes per neuron)."""
        return float(np.mean(self.responses))

    @property
    def probability(self) -> float:
        """Fraction of test pulses whose response reaches the MEP criterion."""
        return float(np.mean(self.responses >= self.criterion))


def probe_mep(patch: CorticalPatch, field: NeuronField, state, percent_mso: float, *, n_trials: int = 10,
              dt_ms: float = 0.1, seed: int = 0, output: str = OUTPUT) -> MEP:
    """MEP proxy of `n_trials` test pulses at percent_mso, every TEST_INTERVAL_MS from `state`
    (None: a settled fresh network), with the weights frozen (neurons.frozen). Spikes of
    `output` within MEP_WINDOW_MS after each pulse (its own D wave included) minus the
    background expected in that window from its spikes over the BACKGROUND_MS before the pulse,
    per neuron."""
    if output not in patch.populations:
        raise ValueError(f"probe_mep: no population {output!r} in the patch {patch.populations}")
    if state is None:
        state = settle(patch, dt_ms=dt_ms, seed=seed)
    times = TEST_INTERVAL_MS * (np.arange(n_trials) + 0.5)
    events = stimulus_events(patch, field, times, np.ones(n_trials), percent_mso, dt_ms=dt_ms)
    network, state = neurons.frozen(patch.network, state)
    res = neurons.simulate(network, TEST_INTERVAL_MS * n_trials, dt_ms, seed=seed, state=state,
                           forced_spikes=events, progress=False)
    spikes = res.spikes[output].times_ms
    count = lambda start, length: np.sum((spikes >= start) & (spikes < start + length))
    share = MEP_WINDOW_MS / BACKGROUND_MS
    counts = [count(t, MEP_WINDOW_MS) - count(t - BACKGROUND_MS, BACKGROUND_MS) * share for t in times]
    n = patch.network.population(output).n
    return MEP(np.asarray(counts, np.float64) / n)


def settle(patch: CorticalPatch, *, dt_ms: float = 0.1, seed: int = 0, duration_ms: float = SETTLE_MS):
    """State of the patch after duration_ms of background activity from its initial state."""
    return neurons.simulate(patch.network, duration_ms, dt_ms, seed=seed, progress=False).final_state


def motor_threshold(patch: CorticalPatch, field: NeuronField, *, n_trials: int = 10,
                    tolerance_pct: float = 1.0, dt_ms: float = 0.1, seed: int = 0) -> float:
    """Resting motor threshold in %MSO: bisection between 0 and 100 % for the intensity at which
    half of n_trials single pulses evoke an MEP; ValueError if 100 % does not."""
    state = settle(patch, dt_ms=dt_ms, seed=seed)
    hit = lambda pct: probe_mep(patch, field, state, pct, n_trials=n_trials, dt_ms=dt_ms,
                                seed=seed).probability
    low, high = 0.0, 100.0
    if hit(high) < 0.5:
        magnitude = np.median(field.magnitude(OUTPUT))
        raise ValueError(f"motor_threshold: 100 % MSO evokes MEPs in fewer than half of the trials; the "
                         f"field, computed for dI/dt = {field.didt_A_per_s:g} A/s, is {magnitude:.3g} V/m "
                         f"(median |E| at {OUTPUT}). A field for %MSO must be computed at the coil's "
                         "maximum dI/dt (coil.didt_max, e.g. 1.15e8 A/s for figure8_70mm) in both "
                         "efield.simulate and coupling.neuron_field; otherwise move the coil closer")
    while high - low > tolerance_pct:
        middle = 0.5 * (low + high)
        low, high = (low, middle) if hit(middle) >= 0.5 else (middle, high)
    return high


@dataclass(frozen=True, eq=False)
class SessionResult:
    """What a session did. protocol; percent_mso (and rmt_percent_mso if it was measured);
    mep_before: MEP; mep_after: minutes after the end of stimulation -> MEP; mean_weights:
    projection -> {"before", "after_stimulation", "<minutes>"} mean weight (nS); bdnf: mean
    BDNF of the excitatory output projection at the same times; spikes: SpikeTrains of the
    stimulation run (times from its start); final_state: the network state at the last probe
    time; field: NeuronField; windows_ms: the (start, end) stretches of the run simulated spike
    by spike (one stretch unless gaps were bridged)."""

    protocol: Protocol
    percent_mso: float
    rmt_percent_mso: float | None
    mep_before: MEP
    mep_after: dict
    mean_weights: dict
    bdnf: dict
    spikes: dict
    final_state: object
    field: NeuronField
    elapsed_ms: float = field(default=0.0)
    windows_ms: tuple = field(default=())

    def summary(self) -> dict:
        """Plain-number summary (JSON-ready)."""
        return dict(protocol=self.protocol.name, n_pulses=self.protocol.n_pulses, sham=self.protocol.sham,
                    percent_mso=self.percent_mso, rmt_percent_mso=self.rmt_percent_mso,
                    mep_before=self.mep_before.mean,
                    mep_after={str(k): v.mean for k, v in self.mep_after.items()},
                    mep_change={str(k): v.mean / max(self.mep_before.mean, 1e-12)
                                for k, v in self.mep_after.items()},
                    mean_weights_nS=self.mean_weights, bdnf=self.bdnf)

    def save(self, folder) -> Path:
        """Write summary.json and spikes.h5 (SONATA) into `folder`."""
        from tmsim_io import write_json

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        neurons.write_sonata_spikes(folder / "spikes.h5", self.spikes)
        write_json(folder / "summary.json", self.summary())
        return folder


def run_protocol(patch: CorticalPatch, field: NeuronField, protocol: Protocol, percent_mso: float, *,
                 options: SessionOptions = SessionOptions(), test_percent_mso: float | None = None,
                 rmt_percent_mso: float | None = None, spikes_path=None, snapshots_path=None,
                 progress: bool = True, state=None) -> SessionResult:
    """Deliver `protocol` at percent_mso to the patch (see the module docstring). options: the
    time step, the run after the last pulse (after_s), the probes (probe_minutes after the end
    of stimulation, >= after_s / 60; n_test pulses at test_percent_mso, default the protocol's
    intensity: a test intensity above the motor threshold, as in the human studies, gives a
    measurable baseline) and the seed; a probe earlier than after_s is taken at after_s. The
    probes and the run take the seed's children 0 and 1 (child_seed). state: the NetworkState
    to start from (e.g. the end of a previous session; default: the patch settled with the
    seed). The run lasts LEAD_MS + the protocol's duration + after_s; its spikes count from
    its start. With bridging (options.bridge_min_gap_s > 0) only the windows of
    `simulated_windows` are simulated spike by spike (`bridge` over the gaps between them);
    spikes_path then receives the spikes of all windows at the end, snapshots_path the weights
    at the start and end of every window."""
    check_options(options, "run_protocol")
    probe_minutes, after_s, n_test, dt_ms, seed = (options.probe_minutes, options.after_s, options.n_test,
                                                   options.dt_ms, options.seed)
    probe_seed, run_seed = child_seed(seed, 0), child_seed(seed, 1)
    test_pct = percent_mso if test_percent_mso is None else test_percent_mso
    if state is None:
        state = settle(patch, dt_ms=dt_ms, seed=seed)
    baseline = state
    before = probe_mep(patch, field, state, test_pct, n_trials=n_test, dt_ms=dt_ms, seed=probe_seed)
    weights = {"before": mean_weights(patch, state)}
    bdnf = {"before": mean_bdnf(patch, state)}
    windows = simulated_windows(protocol, options)
    if len(windows) == 1:
        events = stimulus_events(patch, field, protocol.times_ms + LEAD_MS, protocol.field_scale, percent_mso,
                                 dt_ms=dt_ms)
        run_ms = LEAD_MS + protocol.duration_ms + after_s * 1e3
        res = neurons.simulate(patch.network, run_ms, dt_ms, seed=run_seed, state=state,
                               forced_spikes=events, spikes_path=spikes_path, snapshots_path=snapshots_path,
                               progress=progress)
        state, spikes = res.final_state, res.spikes
    else:
        state, spikes = _run_bridged(patch, field, protocol, percent_mso, windows, state, run_seed, dt_ms,
                                     options.bridge_settle_s * 1e3, spikes_path, snapshots_path, progress)
    weights["after_stimulation"] = mean_weights(patch, state)
    bdnf["after_stimulation"] = mean_bdnf(patch, state)
    after, elapsed_ms = {}, after_s * 1e3
    for minutes in probe_minutes:
        wait_ms = max(minutes * 60e3 - elapsed_ms, 0.0)
        if wait_ms > 0:
            state = neurons.rest(patch.network, state, round(wait_ms / dt_ms) * dt_ms, dt_ms)
            elapsed_ms += wait_ms
        after[minutes] = probe_mep(patch, field, at_rest(state, baseline), test_pct, n_trials=n_test,
                                   dt_ms=dt_ms, seed=probe_seed)
        weights[str(minutes)] = mean_weights(patch, state)
        bdnf[str(minutes)] = mean_bdnf(patch, state)
    return SessionResult(protocol, float(percent_mso), rmt_percent_mso, before, after,
                         _by_projection(weights), _by_projection(bdnf), spikes, state, field, elapsed_ms,
                         tuple(windows))


def simulated_windows(protocol: Protocol, options: SessionOptions) -> list:
    """The (start_ms, end_ms) stretches of a session's run (LEAD_MS + the protocol's duration +
    options.after_s, pulses at LEAD_MS + protocol.times_ms) that are simulated spike by spike:
    the whole run, or with bridging (options.bridge_min_gap_s > 0) the run cut at every gap
    between consecutive pulses longer than bridge_min_gap_s, from bridge_settle_s after the
    gap's first pulse (rounded to the time step) to LEAD_MS before its second, where that
    leaves something to cut. Times are exact multiples of options.dt_ms except the run's end."""
    run_ms = LEAD_MS + protocol.duration_ms + options.after_s * 1e3
    if not options.bridge_min_gap_s > 0 or protocol.n_pulses < 2:
        return [(0.0, run_ms)]
    step_us = int(round(options.dt_ms * 1e3))
    lead_us = int(round(LEAD_MS * 1e3))
    settle_us = int(round(options.bridge_settle_s * 1e6 / step_us)) * step_us
    pulses = np.asarray(protocol.pulse_times_us, np.int64) + lead_us
    windows, start = [], 0
    for last, first in zip(pulses[:-1], pulses[1:]):
        end, resume = last + settle_us, first - lead_us
        if first - last > options.bridge_min_gap_s * 1e6 and resume > end:
            windows.append((start, int(end)))
            start = int(resume)
    return [(a / 1e3, b / 1e3) for a, b in windows] + [(start / 1e3, run_ms)]


def spontaneous_rates(patch: CorticalPatch, spikes: dict, stretches) -> dict:
    """Mean rate (Hz) of each population of the patch over the (start_ms, end_ms) stretches of
    `spikes` (population -> SpikeTrains)."""
    total_ms = sum(b - a for a, b in stretches)
    out = {}
    for name in patch.populations:
        times = spikes[name].times_ms
        count = sum(int(np.sum((times >= a) & (times < b))) for a, b in stretches)
        out[name] = count / (patch.network.population(name).n * total_ms * 1e-3) if total_ms > 0 else 0.0
    return out


def bridge(patch: CorticalPatch, state, duration_ms: float, dt_ms: float, rates_Hz: dict):
    """The state after duration_ms of a bridged gap: neurons.rest (nothing spikes; traces decay,
    BDNF and the early phase advance in closed form), then the rate trace nu of every calcium
    rule's sliding threshold (neurons.calcium: it jumps by 1000 / tau per presynaptic spike,
    so its mean under firing at a constant rate r is r Hz) gains r (1 - exp(-duration/tau)),
    r = rates_Hz of its presynaptic population: the mean of nu after the gap had that
    population fired at r throughout (nu is linear in the spikes). The project's own
    closed form: it keeps the sliding threshold (tau 15 s) near its spontaneous level over
    gaps shorter than a few of its time constants, which a rest without spikes would lower."""
    from neurons.rest import trace_time_constants

    state = neurons.rest(patch.network, state, duration_ms, dt_ms)
    n_steps = int(round(duration_ms / dt_ms))
    traces = list(state.plastic)
    for k, (_, proj) in enumerate(_plastic(patch)):
        pre_taus, _ = trace_time_constants(proj.plasticity)
        if len(pre_taus) != 3 or not pre_taus[1]:
            continue                                   # not a calcium rule with a sliding threshold
        kept = float(np.float32(np.exp(-dt_ms / pre_taus[1]))) ** n_steps
        pre = traces[k].pre.at[1].add(np.float32(rates_Hz[proj.pre] * (1.0 - kept)))
        traces[k] = replace(traces[k], pre=pre)
    return replace(state, plastic=tuple(traces))


def _run_bridged(patch, field, protocol, percent_mso, windows, state, seed, dt_ms, settle_ms, spikes_path,
                 snapshots_path, progress):
    """Simulate the windows of a bridged session, bridging the gaps between them; returns the
    final state and the spikes of all windows (times from the run's start)."""
    from contextlib import nullcontext

    from tqdm.auto import tqdm

    from neurons.io import WeightSnapshotWriter
    from neurons.result import per_synapse

    pulses = protocol.times_ms + LEAD_MS
    scale = protocol.field_scale
    plastic = _plastic(patch)
    sizes = {p.name: (p.n_synapses, p.n_post if isinstance(p.plasticity, neurons.ThreeFactorSTDP) else None)
             for _, p in plastic}
    parts = {name: [] for name in patch.populations}
    quiet = []                                   # second halves of the settle windows so far
    writer = WeightSnapshotWriter(snapshots_path, sizes) if snapshots_path else nullcontext()

    def snapshot(snaps, state, time_ms):
        for (index, proj), tr in zip(plastic, state.plastic):
            bdnf = None if tr.third is None else np.asarray(tr.third.bdnf)
            snaps.append(proj.name, time_ms, per_synapse(proj, state.weights[index]), bdnf)

    with writer as snaps, tqdm(total=len(windows), desc="session windows", disable=not progress) as bar:
        previous_end = None
        for start, end in windows:
            if previous_end is not None:
                spikes = {name: neurons.SpikeTrains(np.concatenate([t for t, _ in parts[name]]),
                                                    np.concatenate([i for _, i in parts[name]]),
                                                    patch.network.population(name).n) for name in parts}
                rates = spontaneous_rates(patch, spikes, quiet)
                state = bridge(patch, state, start - previous_end, dt_ms, rates)
            if snaps is not None:
                snapshot(snaps, state, start)
            inside = (pulses >= start) & (pulses < end)
            events = stimulus_events(patch, field, pulses[inside] - start, scale[inside], percent_mso,
                                     dt_ms=dt_ms) if inside.any() else ()
            res = neurons.simulate(patch.network, end - start, dt_ms, seed=seed, state=state,
                                   forced_spikes=events, progress=False)
            state = res.final_state
            for name in parts:
                times, ids = res.spikes[name]
                parts[name].append((np.asarray(times, np.float64) + start, np.asarray(ids, np.int64)))
            if snaps is not None:
                snapshot(snaps, state, end)
            if inside.any() and end < windows[-1][1]:
                last = float(pulses[inside][-1])
                quiet.append((last + 0.5 * settle_ms, end))
            previous_end = end
            bar.update()
    spikes = {name: neurons.SpikeTrains(np.concatenate([t for t, _ in parts[name]]),
                                        np.concatenate([i for _, i in parts[name]]),
                                        patch.network.population(name).n) for name in parts}
    if spikes_path is not None:
        neurons.write_sonata_spikes(spikes_path, spikes)
    return state, spikes


def at_rest(state, baseline):
    """The slow variables of `state` (weights, plasticity traces, BDNF) on the fast ones of
    `baseline` (membrane, synaptic and refractory state, pending spikes, step counter). After
    minutes of rest nothing fast remembers a protocol; a probe from this state, with the seed
    of a probe from `baseline`, meets the same background noise, so the two differ only by
    what the protocol changed (common random numbers)."""
    return replace(state, step=baseline.step, v=baseline.v, syn=baseline.syn, w=baseline.w,
                   refractory=baseline.refractory, ring=baseline.ring)


def _plastic(patch: CorticalPatch):
    return [(i, p) for i, p in enumerate(patch.network.projections) if p.plasticity is not None]


def synapse_counts(patch: CorticalPatch) -> dict:
    """Number of synapses of each plastic projection of the patch, by name."""
    return {proj.name: int(np.count_nonzero(proj.ell.valid)) for _, proj in _plastic(patch)}


def mean_weights(patch: CorticalPatch, state) -> dict:
    """Mean weight (nS) of each plastic projection of the patch in `state`, by name."""
    out = {}
    for i, proj in _plastic(patch):
        valid = proj.ell.valid
        out[proj.name] = float(np.asarray(state.weights[i], np.float64)[valid].mean())
    return out


def mean_bdnf(patch: CorticalPatch, state) -> dict:
    """Mean BDNF (half-saturation units) at the synapses of each BDNF-gated projection, by name."""
    return {proj.name: float(np.mean(np.asarray(tr.third.bdnf)))
            for (_, proj), tr in zip(_plastic(patch), state.plastic) if tr.third is not None}


def _by_projection(by_time: dict) -> dict:
    """{time: {projection: value}} -> {projection: {time: value}}."""
    out = {}
    for when, values in by_time.items():
        for name, value in values.items():
            out.setdefault(name, {})[when] = value
    return out


def run_session(head, coil, placement, patch: CorticalPatch, protocol: Protocol, *,
                percent_mso: float | None = None, percent_rmt: float | None = None,
                options: SessionOptions = SessionOptions(), **keywords) -> SessionResult:
    """Compute the coil's field at the patch (efield.simulate at the coil's maximum dI/dt),
    find the resting motor threshold (with the options' time step and seed) if the intensity is
    given as percent_rmt, and run the protocol (run_protocol with `options`; keywords go there
    too). Give exactly one of percent_mso, percent_rmt."""
    import efield

    from .activation import mso_from_rmt

    if (percent_mso is None) == (percent_rmt is None):
        raise ValueError("run_session: give exactly one of percent_mso and percent_rmt")
    if coil.didt_max is None:
        raise ValueError(f"run_session: coil {coil.name!r} has no didt_max (A/s); set it to use %MSO")
    res = efield.simulate(head, coil, placement, didt=coil.didt_max)
    field = neuron_field(head, res, patch, coil.didt_max)
    rmt = None
    if percent_rmt is not None:
        rmt = motor_threshold(patch, field, dt_ms=options.dt_ms, seed=options.seed)
        percent_mso = mso_from_rmt(percent_rmt, rmt)
    return run_protocol(patch, field, protocol, percent_mso, options=options, rmt_percent_mso=rmt, **keywords)
