"""Event propagation, inputs, overflow handling and determinism of the simulation engine."""

import numpy as np
import pytest

import neurons
from neurons import CurrentInjection, Network, NeuronParams, PoissonInput, Population, Projection

QUIET = NeuronParams(v_threshold_mV=1e3, tau_exc_ms=4.0, tau_inh_ms=8.0)


def _spikes_equal(a, b):
    for pop in a.spikes:
        np.testing.assert_array_equal(a.spikes[pop].times_ms, b.spikes[pop].times_ms)
        np.testing.assert_array_equal(a.spikes[pop].ids, b.spikes[pop].ids)


def test_a_forced_spike_arrives_after_each_synapse_delay_with_its_weight():
    dt, t_spike = 0.1, 2.0
    src = Population("src", 3, QUIET)
    dst = Population("dst", 10, QUIET)
    targets, delays, weights = np.array([1, 4, 7]), np.array([0.5, 1.0, 2.3]), np.array([10.0, 20.0, -30.0])
    proj = Projection("s2d", "src", "dst", 3, 10, "inh", np.array([2, 2, 2]), targets, weights, delays)
    other = Projection("s2d_exc", "src", "dst", 3, 10, "exc", np.array([0]), np.array([9]), np.array([5.0]),
                       np.array([1.5]))
    net = Network((src, dst), (proj, other), synapse="current")
    res = neurons.simulate(net, 10.0, dt, record={"dst": np.arange(10)}, forced_spikes=[(t_spike, "src", 2)],
                           progress=False)
    np.testing.assert_array_equal(res.spikes["src"].times_ms, [t_spike])
    np.testing.assert_array_equal(res.spikes["src"].ids, [2])
    syn = res.traces["dst"].syn
    assert np.all(syn[:, :, 0] == 0)  # the exc projection's source never fired
    for post in range(10):
        trace = syn[:, post, 1]
        if post in targets:
            i = list(targets).index(post)
            k = int(round((t_spike + delays[i]) / dt))
            assert np.all(trace[:k] == 0)
            assert trace[k] == np.float32(weights[i])
            np.testing.assert_allclose(trace[k + 1], weights[i] * np.exp(-dt / 8.0), rtol=1e-6)
        else:
            assert np.all(trace == 0)


def test_a_state_between_chunks_holds_in_its_ring_only_the_events_still_due():
    """Three delayed events of one spike at step 20 (arrivals at steps 25, 30, 43): a run of 30
    steps ends having added the event of step 30 to the synaptic variables, so its ring slot
    must be empty; the event of step 43 is the only one left in the ring."""
    src = Population("src", 3, QUIET)
    dst = Population("dst", 10, QUIET)
    proj = Projection("s2d", "src", "dst", 3, 10, "inh", np.array([2, 2, 2]), np.array([1, 4, 7]),
                      np.array([10.0, 20.0, -30.0]), np.array([0.5, 1.0, 2.3]))
    net = Network((src, dst), (proj,), synapse="current")
    state = neurons.simulate(net, 3.0, 0.1, forced_spikes=[(2.0, "src", 2)], progress=False,
                             chunk_steps=10).final_state
    ring, syn = np.asarray(state.ring), np.asarray(state.syn)
    assert int(state.step) == 30 and ring.shape[0] == 24
    assert syn[1, 3 + 4] == np.float32(20.0)
    assert np.all(ring[30 % 24] == 0)
    pending = np.argwhere(ring != 0)
    np.testing.assert_array_equal(pending, [[43 % 24, 1, 3 + 7]])
    assert ring[43 % 24, 1, 3 + 7] == np.float32(-30.0)


def _forced_network():
    """Two source neurons forced to fire, each driving one target far over threshold: the
    network and its forced spikes (time ms, population, id)."""
    src = Population("src", 5, NeuronParams())
    dst = Population("dst", 2, NeuronParams(tau_exc_ms=0.2))
    proj = Projection("s2d", "src", "dst", 5, 2, "exc", np.array([0, 3]), np.array([0, 1]),
                      np.array([1e5, 1e5]), np.array([1.0, 1.0]))
    net = Network((src, dst), (proj,), synapse="current")
    return net, [(3.0, "src", 0), (7.5, "src", 3), (7.5, "src", 4), (12.0, "src", 0)]


def test_forced_spikes_most_per_step_counts_each_population_like_the_chunk_rows():
    from neurons.inputs import ForcedSpikes

    rng = np.random.default_rng(3)
    offsets, sizes = {"a": 0, "b": 40, "c": 45}, {"a": 40, "b": 5, "c": 30}
    events = [(float(rng.integers(0, 300)) * 0.1, pop, int(rng.integers(0, sizes[pop])))
              for pop in rng.choice(list(sizes), 400)]
    forced = ForcedSpikes.from_events(events, offsets, sizes, 0.1, 300)
    slices = tuple((offsets[p], sizes[p]) for p in sizes)
    for first, steps in ((0, 300), (17, 50), (120, 1), (299, 1)):
        rows = forced.rows(first, steps, 64, 75)
        dense = tuple(int(((rows >= o) & (rows < o + m)).sum(axis=1).max()) for o, m in slices)
        assert forced.most_per_step(first, steps, slices) == dense
    assert forced.most_per_step(0, 300, slices)[0] >= 2  # a step with several spikes of one population
    assert ForcedSpikes.from_events([], offsets, sizes, 0.1, 300).most_per_step(0, 300, slices) == (0, 0, 0)


def test_forced_spikes_fire_at_their_times_and_drive_targets_over_threshold():
    net, forced = _forced_network()
    res = neurons.simulate(net, 20.0, 0.1, forced_spikes=forced, progress=False)
    np.testing.assert_allclose(res.spikes["src"].times_ms, [3.0, 7.5, 7.5, 12.0])
    np.testing.assert_array_equal(res.spikes["src"].ids, [0, 3, 4, 0])
    times, ids = res.spikes["dst"]
    # a brief 100 nA current crosses threshold in the step that starts at arrival (t + delay)
    np.testing.assert_allclose(times, [4.0, 8.5, 13.0])
    np.testing.assert_array_equal(ids, [0, 1, 0])


def test_poisson_input_count_matches_rate():
    n, n_sources, rate, w, dt, T = 400, 50, 8.0, 1.5, 0.1, 500.0
    params = NeuronParams(v_threshold_mV=1e3, tau_exc_ms=1e12)  # no decay: syn counts every event
    net = Network((Population("p", n, params),), poisson=(PoissonInput("p", n_sources, rate, w, "exc"),),
                  synapse="current")
    res = neurons.simulate(net, T, dt, record={"p": np.arange(n)}, progress=False)
    counts = res.traces["p"].syn[-1, :, 0] / w  # events in steps 0 .. n_steps - 1
    np.testing.assert_allclose(counts, np.round(counts), atol=1e-3)
    mean = n_sources * rate * 1e-3 * dt * (round(T / dt))
    assert abs(counts.mean() - mean) < 5 * np.sqrt(mean / n)
    assert counts.var(ddof=1) == pytest.approx(mean, rel=0.25)  # Poisson: variance = mean
    per_step = np.diff(res.traces["p"].syn[:, :, 0], axis=0) / w
    lam = n_sources * rate * 1e-3 * dt
    p0 = np.exp(-lam)
    assert np.mean(per_step == 0) == pytest.approx(p0, abs=5 * np.sqrt(p0 / per_step.size))


def test_current_injection_callable_equals_array_and_targets_only_chosen_neurons():
    pop = Population("p", 4, NeuronParams(v_threshold_mV=1e3))
    net = Network((pop,), synapse="current")
    t = np.arange(200) * 0.1
    pulse = lambda times: np.where((times >= 5.0) & (times < 6.0), 400.0, 0.0)
    a = neurons.simulate(net, 20.0, record={"p": np.arange(4)}, progress=False,
                         current_injections=(CurrentInjection("p", [1, 3], pulse),))
    b = neurons.simulate(net, 20.0, record={"p": np.arange(4)}, progress=False,
                         current_injections=(CurrentInjection("p", [1, 3], pulse(t)),))
    np.testing.assert_array_equal(a.traces["p"].v_mV, b.traces["p"].v_mV)
    v = a.traces["p"].v_mV
    assert np.all(v[:, [0, 2]] == np.float32(-60.0))
    assert v[60, 1] > -59.0 and v[60, 3] == v[60, 1]


def test_overflow_rerun_matches_a_large_buffer():
    net = neurons.coba(n_neurons=1000, seed=2)
    tiny = neurons.simulate(net, 60.0, seed=0, max_spikes_per_step=8, chunk_steps=200, progress=False)
    large = neurons.simulate(net, 60.0, seed=0, max_spikes_per_step=1024, chunk_steps=200, progress=False)
    _spikes_equal(tiny, large)
    assert tiny.spike_counts["exc"].max() > 50  # the initial volley needed many re-runs
    assert len(tiny.spikes["exc"]) > 200


@pytest.mark.slow
def test_a_run_reuses_a_compiled_chunk_with_large_enough_buffers():
    """Stimuli that need smaller spike buffers run in the program compiled for larger ones (no
    new compilation) and give the spikes of a run with other buffer sizes."""
    import jax

    net = neurons.brunel(n_neurons=500, seed=0)
    volley = lambda n: [(t, "exc", i) for t in (20.0, 60.0) for i in range(n)]
    neurons.simulate(net, 100.0, seed=1, forced_spikes=volley(60), progress=False)
    compiles = []
    jax.monitoring.register_event_duration_secs_listener(
        lambda event, seconds, **kw: event.endswith("backend_compile_duration") and compiles.append(event))
    smaller = neurons.simulate(net, 100.0, seed=1, forced_spikes=volley(20), progress=False)
    assert compiles == []
    other = neurons.simulate(net, 100.0, seed=1, forced_spikes=volley(20), max_spikes_per_step=256,
                             progress=False)
    assert compiles  # other buffer sizes: another program
    assert len(smaller.spikes["exc"]) > 40
    _spikes_equal(smaller, other)


def test_same_seed_same_spikes_and_chunking_does_not_matter():
    net = neurons.brunel(n_neurons=500, seed=0)
    a = neurons.simulate(net, 100.0, seed=4, progress=False)
    b = neurons.simulate(net, 100.0, seed=4, progress=False, chunk_steps=130)
    c = neurons.simulate(net, 100.0, seed=5, progress=False)
    assert len(a.spikes["exc"]) > 100
    _spikes_equal(a, b)
    assert not np.array_equal(a.spikes["exc"].times_ms, c.spikes["exc"].times_ms)


def test_bad_arguments_name_themselves():
    net = neurons.cuba(n_neurons=100)
    with pytest.raises(ValueError, match="forced_spikes"):
        neurons.simulate(net, 10.0, forced_spikes=[(1.0, "exc", 500)], progress=False)
    with pytest.raises(ValueError, match="delay_ms must be at least one step"):
        neurons.simulate(net, 10.0, dt_ms=0.5, progress=False)
    with pytest.raises(ValueError, match="record"):
        neurons.simulate(net, 10.0, record={"exc": [10_000]}, progress=False)
    with pytest.raises(ValueError, match="v_init_mV"):
        Population("p", 3, v_init_mV=np.zeros(4))


def test_continuing_from_final_state_equals_one_run():
    net = neurons.brunel(n_neurons=500, seed=1)
    whole = neurons.simulate(net, 60.0, seed=2, progress=False)
    first = neurons.simulate(net, 30.0, seed=2, progress=False)
    second = neurons.simulate(net, 30.0, seed=2, state=first.final_state, progress=False)
    for pop in ("exc", "inh"):
        late = whole.spikes[pop].times_ms >= 30.0 - 1e-9
        np.testing.assert_allclose(second.spikes[pop].times_ms + 30.0,
                                   whole.spikes[pop].times_ms[late], atol=1e-9)
        np.testing.assert_array_equal(second.spikes[pop].ids, whole.spikes[pop].ids[late])
    with pytest.raises(ValueError, match="state"):
        neurons.simulate(neurons.brunel(n_neurons=400), 10.0, state=first.final_state, progress=False)


def test_negative_conductance_is_refused():
    pop = Population("p", 20)
    proj = neurons.connect(pop, pop, neurons.FixedInDegree(2), weight=-1.0, delay_ms=1.0, receptor="inh")
    with pytest.raises(ValueError, match="conductance weights"):
        Network((pop,), (proj,), synapse="conductance")
    Network((pop,), (proj,), synapse="current")


def test_a_pulse_forcing_a_whole_population_is_recorded_in_full():
    net = neurons.cuba(n_neurons=1000, seed=0)
    pulse = [(5.0, "exc", i) for i in range(800)] + [(5.0, "inh", i) for i in range(200)]
    res = neurons.simulate(net, 10.0, forced_spikes=pulse, progress=False)
    at_pulse = np.isclose(res.spikes["exc"].times_ms, 5.0)
    np.testing.assert_array_equal(np.sort(res.spikes["exc"].ids[at_pulse]), np.arange(800))
    assert res.spike_counts["inh"][50] == 200


@pytest.mark.parametrize("n", [1, 32, 33, 3200, 40_000])
def test_compact_equals_nonzero(n):
    import jax
    import jax.numpy as jnp

    from neurons.compaction import compact as compact_mask

    rng = np.random.default_rng(n)
    compact = jax.jit(compact_mask, static_argnums=1)
    for p in (0.0, 0.002, 0.05, 0.5, 1.0):
        mask = rng.random(n) < p
        ref = np.flatnonzero(mask)
        for k in (1, 16, 100):
            ids, count = compact(jnp.asarray(mask), k)
            expected = np.full(k, n)
            expected[:min(k, ref.size)] = ref[:k]
            assert int(count) == ref.size
            np.testing.assert_array_equal(np.asarray(ids), expected)


def test_spike_by_spike_and_buffered_transmission_give_the_same_spikes(monkeypatch):
    import importlib

    sim = importlib.import_module("neurons.simulate")
    net = neurons.coba(n_neurons=400, seed=3)
    brunel = neurons.brunel(n_neurons=500, seed=0)   # delays of 15 steps, Poisson input
    runs = {}
    for propagation in ("loop", "gather"):
        monkeypatch.setattr(sim, "_propagation", lambda p=propagation: p)
        runs[propagation] = (neurons.simulate(net, 50.0, seed=1, max_spikes_per_step=8, chunk_steps=150,
                                              progress=False),
                             neurons.simulate(brunel, 50.0, seed=1, progress=False))
    for a, b in zip(runs["loop"], runs["gather"]):
        assert len(a.spikes["exc"]) > 100
        _spikes_equal(a, b)


@pytest.mark.slow
@pytest.mark.parametrize("three_factor", [False, True])
def test_spike_by_spike_and_buffered_plasticity_give_the_same_weights(monkeypatch, three_factor):
    """Triplet STDP (and its BDNF-gated form, with the LTP boost) on COBA's exc -> exc synapses:
    the weights after spike-by-spike transmission (weight rows gathered before the loop)
    equal those after buffered transmission."""
    import dataclasses
    import importlib

    sim = importlib.import_module("neurons.simulate")
    rule = neurons.TripletSTDP.published("hippocampal_all_to_all", scale=0.5, w_max=12.0)
    if three_factor:
        rule = neurons.ThreeFactorSTDP(rule, neurons.BDNF(basal_per_s=1.0 / 600.0), ltp_boost=1.0)
    net = neurons.coba(n_neurons=400, seed=3)
    net = dataclasses.replace(net, projections=tuple(
        dataclasses.replace(p, plasticity=rule) if (p.pre, p.post) == ("exc", "exc") else p
        for p in net.projections))
    runs = {}
    for propagation in ("loop", "gather"):
        monkeypatch.setattr(sim, "_propagation", lambda p=propagation: p)
        runs[propagation] = neurons.simulate(net, 60.0, seed=1, progress=False)
    _spikes_equal(runs["loop"], runs["gather"])
    k = next(i for i, p in enumerate(net.projections) if p.plasticity is not None)
    before = net.projections[k].ell.weight
    after = [np.asarray(r.final_state.weights[k]) for r in runs.values()]
    assert np.abs(after[0] - before).max() > 1e-3                 # the rule changed the weights
    np.testing.assert_array_equal(after[0], after[1])


@pytest.mark.slow
def test_periodic_updates_at_block_ends_equal_a_condition_in_every_step():
    """BDNF-gated calcium plasticity on COBA's exc -> exc synapses (updates every 0.5 ms, 10 ms
    and 1 s): chunks of 1000 steps from step 0 run the updates at the ends of nested blocks,
    chunks of 999 steps and a run resumed off the block grid run them under a per-step
    condition, and blocks whose 8-spike buffer overflows are re-run; the states are identical."""
    import dataclasses

    import jax

    from neurons.engine import block_lengths

    rule = neurons.ThreeFactorSTDP(neurons.CalciumRule(gamma_p_per_s=40.0, gamma_d_per_s=10.0, theta_p=1.6,
                                                      theta_d=1.0, C_pre_slow=0.3, w_max=12.0),
                                   neurons.BDNF(basal_per_s=1.0 / 600.0, calcium_threshold=1.0), tick_ms=1.0)
    net = neurons.coba(n_neurons=400, seed=3)
    net = dataclasses.replace(net, projections=tuple(
        dataclasses.replace(p, plasticity=rule) if (p.pre, p.post) == ("exc", "exc") else p
        for p in net.projections))
    blocked = neurons.simulate(net, 1200.0, seed=1, chunk_steps=1000, progress=False)
    stepwise = neurons.simulate(net, 1200.0, seed=1, chunk_steps=999, progress=False)
    head = neurons.simulate(net, 0.3, seed=1, progress=False)
    resumed = neurons.simulate(net, 1199.7, seed=1, state=head.final_state, progress=False)
    overflowed = neurons.simulate(net, 1200.0, seed=1, chunk_steps=1000, max_spikes_per_step=8,
                                  progress=False)
    k = next(i for i, p in enumerate(net.projections) if p.plasticity is not None)
    assert np.abs(np.asarray(blocked.final_state.weights[k]) - net.projections[k].ell.weight).max() > 1e-3
    for other in (stepwise, resumed, overflowed):
        for a, b in zip(*(jax.tree_util.tree_leaves(r.final_state) for r in (blocked, other))):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert block_lengths([5, 10, 10000], 0, 1000) == (5, 10)
    assert block_lengths([5, 10, 10000], 5, 1000) == (5,)     # the 10-step period under a condition
    assert block_lengths([5, 7], 0, 35) == ()                  # 5 does not divide 7
    assert block_lengths([5, 10], 3, 1000) == ()


@pytest.mark.gpu
def test_a_gpu_run_gives_the_spikes_of_a_cpu_run():
    """The forced-spike network above on the GPU (buffered transmission) and on the CPU."""
    import jax

    net, forced = _forced_network()
    runs = {}
    for kind in ("gpu", "cpu"):
        with jax.default_device(jax.devices(kind)[0]):
            runs[kind] = neurons.simulate(net, 20.0, 0.1, forced_spikes=forced, progress=False)
    leaves = [x for x in jax.tree_util.tree_leaves(runs["gpu"].final_state) if isinstance(x, jax.Array)]
    assert leaves and {d.platform for x in leaves for d in x.devices()} == {"gpu"}
    _spikes_equal(runs["gpu"], runs["cpu"])
    np.testing.assert_allclose(runs["gpu"].spikes["dst"].times_ms, [4.0, 8.5, 13.0])
