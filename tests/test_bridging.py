"""Time-scale bridging inside a session (coupling.session): the machinery against full spiking
and against neurons.rest, exactly; neurons.rest's trace decay against clock-driven steps."""

from dataclasses import fields, replace

import jax
import numpy as np
import pytest

import efield
import neurons
from coupling import RunConfig, rtms
from coupling.config import ConfigError
from coupling.options import SessionOptions, child_seed
from coupling.patch import cortical_patch
from coupling.session import LEAD_MS, bridge, run_protocol, settle, simulated_windows, spontaneous_rates
from coupling.stimulus import neuron_field, stimulus_events

TOP = np.array([0.0, 0.0, 95.0])
DT = 0.1
PROTOCOL = rtms(20.0, 3, 3, 1.0)               # 3 trains of 3 pulses at 20 Hz, 1 s gaps
OPTIONS = SessionOptions(probe_minutes=(0.0,), after_s=0.1, n_test=1, dt_ms=DT, seed=3,
                         bridge_min_gap_s=0.5, bridge_settle_s=0.2)
PERCENT_MSO = 70.0


@pytest.fixture(scope="module")
def setup():
    head = efield.sphere_head(radii_mm=(80.0, 85.0, 90.0, 95.0), max_edge_mm=6.0)
    coil = efield.figure8_70mm()
    pos = efield.Placement.on_scalp(head, centre=TOP, handle=[0.0, 50.0, 95.0])
    E = efield.simulate(head, coil, pos, didt=coil.didt_max)
    patch = cortical_patch(head, TOP, radius_mm=8.0, n_neurons=30, seed=2)
    field = neuron_field(head, E, patch, coil.didt_max)
    start = settle(patch, dt_ms=DT, seed=OPTIONS.seed)
    return patch, field, start


@pytest.fixture(scope="module")
def sessions(setup):
    patch, field, start = setup
    run = lambda options: run_protocol(patch, field, PROTOCOL, PERCENT_MSO, options=options, progress=False,
                                       state=start)
    return dict(bridged=run(OPTIONS), full=run(replace(OPTIONS, bridge_min_gap_s=0.0)),
                above=run(replace(OPTIONS, bridge_min_gap_s=1.5)))


def _leaves_equal(a, b):
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_windows_cut_every_long_gap_after_the_settle_time_and_before_the_next_train():
    # trains of 3 pulses at 0, 50, 100 ms; onsets 1150 ms apart; pulses at LEAD_MS + those
    run_ms = LEAD_MS + PROTOCOL.duration_ms + 100.0
    expected = [(0.0, 110.0 + 200.0), (1150.0, 1150.0 + 100.0 + 10.0 + 200.0),
                (2300.0, run_ms)]
    got = simulated_windows(PROTOCOL, OPTIONS)
    assert len(got) == 3
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)
    assert simulated_windows(PROTOCOL, replace(OPTIONS, bridge_min_gap_s=0.0)) == [(0.0, run_ms)]
    assert simulated_windows(PROTOCOL, replace(OPTIONS, bridge_min_gap_s=1.5)) == [(0.0, run_ms)]
    # a gap that leaves nothing to cut after the settle time and the lead is simulated
    assert len(simulated_windows(PROTOCOL, replace(OPTIONS, bridge_settle_s=1.1))) == 1


@pytest.mark.slow
def test_bridged_session_spikes_only_in_its_windows_with_every_pulse_at_its_absolute_time(setup, sessions):
    patch, field, _ = setup
    res = sessions["bridged"]
    windows = simulated_windows(PROTOCOL, OPTIONS)
    assert res.windows_ms == tuple(windows)
    total = 0
    for name, trains in res.spikes.items():
        times = trains.times_ms
        inside = np.zeros(times.size, bool)
        for a, b in windows:
            inside |= (times >= a) & (times < b)
        assert inside.all(), name
        assert np.all(np.diff(times) >= 0)
        total += times.size
    assert total > 0
    # every forced spike of every pulse, at its absolute time, is among the session's spikes
    events = stimulus_events(patch, field, PROTOCOL.times_ms + LEAD_MS, PROTOCOL.field_scale, PERCENT_MSO,
                             dt_ms=DT)
    triples = list(events)
    assert len(triples) > 0 and len(set(events.pulse_index)) == PROTOCOL.n_pulses
    for t, name, i in triples:
        trains = res.spikes[name]
        assert np.any((np.abs(trains.times_ms - t) < 1e-6) & (trains.ids == i)), (t, name, i)
    # the first window is the full run's start, spike for spike
    full = sessions["full"]
    for name in res.spikes:
        cut = lambda tr: tr.times_ms[tr.times_ms < windows[0][1]]
        np.testing.assert_array_equal(cut(res.spikes[name]), cut(full.spikes[name]))


@pytest.mark.slow
def test_threshold_above_every_gap_is_the_full_session_exactly(sessions):
    above, full = sessions["above"], sessions["full"]
    assert above.windows_ms == full.windows_ms and len(full.windows_ms) == 1
    for name in full.spikes:
        np.testing.assert_array_equal(above.spikes[name].times_ms, full.spikes[name].times_ms)
        np.testing.assert_array_equal(above.spikes[name].ids, full.spikes[name].ids)
    _leaves_equal(above.final_state, full.final_state)
    assert above.mean_weights == full.mean_weights and above.bdnf == full.bdnf


@pytest.mark.slow
def test_bridged_session_is_its_windows_simulated_with_bridge_over_each_gap(setup, sessions):
    """The session by hand: each window simulated from the state the gap left, each gap
    neurons.rest of the state at the end of the settle window plus the sliding threshold's
    relaxation to the spontaneous rates; the same final state exactly."""
    patch, field, start = setup
    windows = simulated_windows(PROTOCOL, OPTIONS)
    pulses = PROTOCOL.times_ms + LEAD_MS
    seed = child_seed(OPTIONS.seed, 1)
    state, spikes, quiet, checked = start, {n: ([], []) for n in patch.populations}, [], 0
    for k, (a, b) in enumerate(windows):
        if k:
            trains = {n: neurons.SpikeTrains(np.concatenate(t), np.concatenate(i),
                                             patch.network.population(n).n) for n, (t, i) in spikes.items()}
            rates = spontaneous_rates(patch, trains, quiet)
            gap = a - windows[k - 1][1]
            rested = neurons.rest(patch.network, state, gap, DT)
            bridged = bridge(patch, state, gap, DT, rates)
            assert int(bridged.step) == int(state.step) + round(gap / DT)
            # everything but the rate trace of the sliding threshold is neurons.rest's
            _leaves_equal(replace(bridged, plastic=()), replace(rested, plastic=()))
            for (proj, tr_b, tr_r) in zip([p for p in patch.network.projections if p.plasticity],
                                          bridged.plastic, rested.plastic):
                _leaves_equal(replace(tr_b, pre=()), replace(tr_r, pre=()))
                tau = proj.plasticity.stdp.sliding_tau_ms
                kept = float(np.float32(np.exp(-DT / tau))) ** round(gap / DT)
                added = np.float32(rates[proj.pre] * (1.0 - kept))
                np.testing.assert_array_equal(np.asarray(tr_b.pre)[[0, 2]], np.asarray(tr_r.pre)[[0, 2]])
                np.testing.assert_array_equal(np.asarray(tr_b.pre)[1], np.asarray(tr_r.pre)[1] + added)
                checked += 1
            state = bridged
        inside = (pulses >= a) & (pulses < b)
        events = stimulus_events(patch, field, pulses[inside] - a, PROTOCOL.field_scale[inside], PERCENT_MSO,
                                 dt_ms=DT)
        res = neurons.simulate(patch.network, b - a, DT, seed=seed, state=state, forced_spikes=events,
                               progress=False)
        state = res.final_state
        for n, (t, i) in spikes.items():
            t.append(res.spikes[n].times_ms + a)
            i.append(res.spikes[n].ids)
        quiet.append((pulses[inside][-1] + 0.5 * OPTIONS.bridge_settle_s * 1e3, b))
    assert checked > 0
    _leaves_equal(state, sessions["bridged"].final_state)


def test_spontaneous_rates_count_the_spikes_in_the_stretches(setup):
    patch, _, _ = setup
    n = {name: patch.network.population(name).n for name in patch.populations}
    spikes = {name: neurons.SpikeTrains(np.array([5.0, 15.0, 25.0, 120.0]), np.zeros(4, np.int64), n[name])
              for name in patch.populations}
    rates = spontaneous_rates(patch, spikes, [(0.0, 20.0), (100.0, 130.0)])
    for name in patch.populations:
        assert rates[name] == pytest.approx(3 / (n[name] * 0.05))


def test_rest_decays_the_plasticity_traces_as_the_clock_driven_steps_do():
    """No spike during the rest: every trace row decays by the engine's float32 per-step
    factor; neurons.rest against 20,000 simulated steps of a network that cannot spike."""
    quiet = neurons.NeuronParams(v_threshold_mV=1e3)
    calcium = neurons.CalciumRule(gamma_p_per_s=0.0, gamma_d_per_s=0.0, sliding_tau_ms=1500.0,
                                  C_pre_slow=0.3, tau_slow_ms=200.0)
    triplet = neurons.TripletSTDP.published("hippocampal_all_to_all", 0.0)
    pre, post = neurons.Population("pre", 2, quiet), neurons.Population("post", 2, quiet)
    proj = lambda name, rule: neurons.Projection(name, "pre", "post", 2, 2, "exc", np.arange(2), np.arange(2),
                                                 np.full(2, 0.5), np.full(2, 1.0), plasticity=rule)
    net = neurons.Network((pre, post), (proj("ca", calcium), proj("tri", neurons.ThreeFactorSTDP(triplet))),
                          synapse="current")
    forced = [(t, "pre", 0) for t in (5.0, 7.0, 9.0)] + [(8.0, "post", 1), (9.5, "pre", 1)]
    first = neurons.simulate(net, 10.0, DT, forced_spikes=forced, progress=False).final_state
    stepped = neurons.simulate(net, 2000.0, DT, state=first, progress=False).final_state
    rested = neurons.rest(net, first, 2000.0, DT)
    assert int(rested.step) == int(stepped.step)
    for s, r in zip(stepped.plastic, rested.plastic):
        for a, b in ((s.pre, r.pre), (s.post, r.post)):
            a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
            np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-30)
    nu = np.asarray(rested.plastic[0].pre)[1, 0]
    assert nu == pytest.approx(3 * 1000.0 / 1500.0 * np.exp(-(2000.0 + 10.0 - 7.0) / 1500.0), rel=1e-3)
    assert np.asarray(rested.plastic[1].pre)[1, 0] > 0          # tau_x 946 ms: still there


def test_bad_bridging_options_name_the_field():
    for key, value in (("bridge_min_gap_s", -1.0), ("bridge_min_gap_s", "5"), ("bridge_settle_s", 0.0),
                       ("bridge_settle_s", 61.0)):
        with pytest.raises(ValueError, match=f"SessionOptions.{key}"):
            SessionOptions(**{key: value})
        with pytest.raises(ConfigError, match=f"session.{key}"):
            RunConfig().with_values({f"session.{key}": value})
    names = {f.name for f in fields(SessionOptions)}
    assert {"bridge_min_gap_s", "bridge_settle_s"} <= names
    assert SessionOptions().bridge_min_gap_s == 0.0
