"""BDNF-gated three-factor STDP: no lasting change without BDNF, STDP at saturation, the LTP
boost, release kinetics against the closed-form chain, Val66Met, population scope, and
synaptic tagging and capture."""

from dataclasses import replace

import jax.numpy as jnp
import numpy as np
import pytest
import scipy.integrate

import neurons
from neurons import BDNF, Network, NeuronParams, PairSTDP, Population, Projection, ThreeFactorSTDP
from neurons.bdnf import BDNFState, gate, tag_step

QUIET = NeuronParams(v_threshold_mV=1e3)
DT = 0.1
W0 = 0.5
PAIR = PairSTDP(A_plus=0.01, A_minus=0.012, tau_plus_ms=16.8, tau_minus_ms=33.7)
SATURATED = BDNF(basal_per_s=1e4)   # b ~ 2e7 half-saturation units: g(b) = 1 in float32


def _run(rule, spikes, n, duration_ms):
    """n independent synapses pre i -> post i, forced (time, side, i) spikes."""
    pre, post = Population("pre", n, QUIET), Population("post", n, QUIET)
    ids = np.arange(n)
    proj = Projection("p", "pre", "post", n, n, "exc", ids, ids, np.full(n, W0), np.full(n, 1.0),
                      plasticity=rule)
    net = Network((pre, post), (proj,), synapse="current")
    return neurons.simulate(net, duration_ms, DT, forced_spikes=spikes, progress=False)


def _pairs(deltas, t_pre=50.0):
    return [(t_pre, "pre", i) for i in range(len(deltas))] + \
        [(t_pre + d, "post", i) for i, d in enumerate(deltas)]


def _burst(t0, i, n=3, isi=10.0):
    return [(t0 + k * isi, "post", i) for k in range(n)]


def test_without_bdnf_stdp_leaves_eligibility_but_no_lasting_change():
    rule = ThreeFactorSTDP(PAIR, BDNF(release_factor=0.0), tau_eligibility_ms=50.0)
    deltas = [-20.0, -5.0, 5.0, 20.0]
    # bursts drive the calcium trace far above threshold: only the release factor keeps b at 0
    spikes = _pairs(deltas) + [s for i in range(4) for s in _burst(200.0, i, n=10, isi=5.0)]
    res = _run(rule, spikes, 4, 400.0)
    np.testing.assert_array_equal(res.weights("p"), np.float32(W0))
    third = res.final_state.plastic[0].third
    assert np.all(np.abs(np.asarray(third.eligibility)[:, 0]) > 1e-6)
    assert np.all(np.asarray(third.calcium) > 0) and np.all(np.asarray(third.chain) == 0)


@pytest.mark.parametrize("boost", [0.0, 1.0])
def test_saturating_bdnf_converts_a_pairs_eligibility_into_the_stdp_change(boost):
    """With g(b) = 1 the eligibility of a pair is converted whole: A exp(-|dt|/tau), the
    potentiation scaled by 1 + ltp_boost."""
    rule = ThreeFactorSTDP(PAIR, SATURATED, tau_eligibility_ms=20.0, ltp_boost=boost)
    deltas = np.array([-30.0, -4.0, 0.0, 3.0, 12.5])
    dw = _run(rule, _pairs(deltas), len(deltas), 600.0).weights("p") - W0
    potentiation = (1.0 + boost) * PAIR.A_plus * np.exp(-deltas / PAIR.tau_plus_ms)
    depression = -PAIR.A_minus * np.exp(deltas / PAIR.tau_minus_ms)
    np.testing.assert_allclose(dw, np.where(deltas >= 0, potentiation, depression), rtol=1e-4, atol=1e-7)


def test_bdnf_follows_the_delay_chain_and_scales_with_the_release_factor():
    """A burst of 100 Hz raises the calcium trace above threshold; the released amount, from
    the exact trace, passes a one-stage delay (tau_s) into b, which decays with tau_b:
    for an impulse R, b(t) = R (exp(-t/tau_b) - exp(-t/tau_s)) / (tau_s (1/tau_s - 1/tau_b)).
    Release is linear in the release factor."""
    tau_s, tau_b = 0.5, 2.0
    kinetics = dict(delay_s=tau_s, delay_stages=1, tau_decay_s=tau_b, slow_step_s=0.01,
                    release_rate_per_s=1.0, calcium_threshold=2.0, tau_calcium_ms=100.0)
    burst = [10.0 * k for k in range(10)]                      # 10 spikes at 100 Hz from t = 0
    spikes = [(t, "post", 0) for t in burst] + [(t, "post", 1) for t in burst]
    duration = 4000.0
    results = {}
    for factor in (1.0, 0.75):
        rule = ThreeFactorSTDP(PAIR, BDNF(release_factor=factor, **kinetics))
        pre, post = Population("pre", 2, QUIET), Population("post", 2, QUIET)
        proj = Projection("p", "pre", "post", 2, 2, "exc", np.arange(2), np.arange(2), np.full(2, W0),
                          np.full(2, 1.0), plasticity=rule)
        net = Network((pre, post), (proj,), synapse="current")
        res = neurons.simulate(net, duration, DT, forced_spikes=spikes, progress=False)
        results[factor] = np.asarray(res.final_state.plastic[0].third.bdnf, np.float64)
    # the calcium trace at the end of every step, from its definition (jump 1, decay 100 ms)
    t = (np.arange(int(duration / DT)) + 1) * DT - DT          # spikes carry the step's start label
    calcium = sum(np.where(t >= s, np.exp(-(t - s) / 100.0), 0.0) for s in burst)
    released = np.sum(np.maximum(calcium - 2.0, 0.0)) * DT * 1e-3           # rate 1 per s, times s
    above = np.maximum(calcium - 2.0, 0.0)
    after = duration * 1e-3 - np.sum(t * above) / np.sum(above) * 1e-3       # s since the release centre
    expected = released * (np.exp(-after / tau_b) - np.exp(-after / tau_s)) / (1.0 - tau_s / tau_b)
    np.testing.assert_allclose(results[1.0], expected, rtol=0.02)
    np.testing.assert_allclose(results[0.75], 0.75 * results[1.0], rtol=1e-5)


def test_rules_differing_only_in_bdnf_release_share_one_program_and_keep_their_own_rates():
    """The release coefficients reach the compiled program as arrays (ThreeFactorSTDP.kernel):
    a rule with another basal release and release factor compiles nothing new, and a silent
    network under each stays at its own basal steady state, b* = basal_per_s tau_decay_s."""
    import jax

    kinetics = dict(delay_s=0.5, delay_stages=2, tau_decay_s=2.0, slow_step_s=0.01)
    silent = lambda bdnf: np.asarray(_run(ThreeFactorSTDP(PAIR, bdnf), [], 2, 500.0).final_state.plastic[0]
                                     .third.bdnf, np.float64)
    first = silent(BDNF(basal_per_s=0.5, **kinetics))
    compiles = []
    jax.monitoring.register_event_duration_secs_listener(
        lambda event, seconds, **kw: event.endswith("backend_compile_duration") and compiles.append(event))
    second = silent(BDNF(basal_per_s=0.2, release_factor=0.75, **kinetics))
    assert compiles == []
    np.testing.assert_allclose(first, 0.5 * 2.0, rtol=1e-5)
    np.testing.assert_allclose(second, 0.2 * 2.0, rtol=1e-5)


def test_propagator_is_exact_for_constant_release_and_has_the_steady_state():
    bd = BDNF(delay_s=120.0, delay_stages=3, tau_decay_s=1800.0, basal_per_s=0.002)
    x = bd.steady_state()
    assert x[-1] == pytest.approx(0.002 * 1800.0, rel=1e-12)     # b* = basal * tau_decay
    p, q = bd.propagator(7.0)
    np.testing.assert_allclose(p @ x + q * 0.002, x, rtol=1e-12)
    # two half steps equal one full step
    p2, q2 = bd.propagator(3.5)
    y = np.arange(1.0, 5.0)
    np.testing.assert_allclose(p2 @ (p2 @ y + q2 * 0.3) + q2 * 0.3, p @ y + q * 0.3, rtol=1e-12)


@pytest.mark.parametrize("scope", ["neuron", "population"])
def test_population_scope_shares_bdnf_across_the_postsynaptic_population(scope):
    bd = BDNF(scope=scope, release_rate_per_s=50.0, delay_s=0.05, delay_stages=1, tau_decay_s=10.0,
              slow_step_s=0.01)
    rule = ThreeFactorSTDP(PAIR, bd, tau_eligibility_ms=500.0)
    # both synapses get a causal pair; only post neuron 0 bursts (releases BDNF)
    spikes = _pairs([5.0, 5.0]) + _burst(70.0, 0, n=10, isi=5.0)
    dw = _run(rule, spikes, 2, 600.0).weights("p") - W0
    assert dw[0] > 1e-4
    if scope == "neuron":
        assert dw[1] == 0.0
    else:
        assert dw[1] > 1e-4


def test_bad_parameters_are_named():
    with pytest.raises(ValueError, match="tau_decay_s"):
        BDNF(tau_decay_s=0.0)
    with pytest.raises(ValueError, match="scope"):
        BDNF(scope="column")
    with pytest.raises(ValueError, match="stdp"):
        ThreeFactorSTDP(stdp=BDNF())
    rule = ThreeFactorSTDP(PAIR, tick_ms=0.25)
    with pytest.raises(ValueError, match="tick_ms"):
        _run(rule, [], 1, 1.0)
    with pytest.raises(ValueError, match="tau_tag_ms"):
        ThreeFactorSTDP(PAIR, tau_tag_ms=0.0)
    with pytest.raises(ValueError, match="capture_threshold must be >= 0"):
        ThreeFactorSTDP(PAIR, tau_tag_ms=1e3, capture_threshold=-0.1)
    with pytest.raises(ValueError, match="capture_threshold"):
        ThreeFactorSTDP(PAIR, tau_tag_ms=1e3, capture_threshold=float("nan"))
    with pytest.raises(ValueError, match="capture_threshold.*tau_tag_ms"):
        ThreeFactorSTDP(PAIR, capture_threshold=0.5)
    assert BDNF.val66met().release_factor == 0.75


@pytest.mark.parametrize("b0", [0.0, 1.0, 3.0])
def test_tag_expresses_stdp_at_once_and_bdnf_captures_its_share(b0):
    """Under tagging and capture a pair changes the weight at once by the STDP change
    dw_0 = A exp(-|dt|/tau), whatever the BDNF; the early phase then decays with tau_tag and
    BDNF b0 (constant) keeps g(b0) = b0 / (b0 + 1) of it: dw(t) = dw_0 (g + (1 - g) exp(-t/tau_tag)),
    so nothing lasts without BDNF."""
    tau_tag = 1e4
    bd = BDNF(basal_per_s=b0 / 1800.0, release_factor=0.0)             # steady b = basal * tau_decay
    rule = ThreeFactorSTDP(PAIR, bd, tau_eligibility_ms=20.0, ltp_boost=0.0, tau_tag_ms=tau_tag,
                           tag_step_s=0.01)
    deltas = np.array([-10.0, 5.0])
    pre, post = Population("pre", 2, QUIET), Population("post", 2, QUIET)
    proj = Projection("p", "pre", "post", 2, 2, "exc", np.arange(2), np.arange(2), np.full(2, W0),
                      np.full(2, 1.0), plasticity=rule)
    net = Network((pre, post), (proj,), synapse="current")
    state = neurons.simulate(net, 450.0, DT, forced_spikes=_pairs(deltas), progress=False).final_state
    dw0 = np.where(deltas >= 0, PAIR.A_plus * np.exp(-deltas / PAIR.tau_plus_ms),
                   -PAIR.A_minus * np.exp(deltas / PAIR.tau_minus_ms))
    g = b0 / (b0 + 1.0)
    # expressed within ~50 ms of the pair (tau_e 20 ms), about 0.4 s before the end
    now = np.asarray(state.weights[0])[:, 0] - W0
    np.testing.assert_allclose(now, dw0 * (g + (1 - g) * np.exp(-400.0 / tau_tag)), rtol=2e-3)
    later = neurons.rest(net, state, 30 * tau_tag, DT)
    np.testing.assert_allclose(np.asarray(later.weights[0])[:, 0] - W0, g * dw0, rtol=1e-3, atol=1e-7)
    assert np.all(np.abs(np.asarray(later.plastic[0].third.early)) < 1e-9)


@pytest.mark.parametrize("tag_ms, theta", [(None, 0.0), (800.0, 0.0), (800.0, 1.0)])
def test_rest_matches_a_silent_simulation(tag_ms, theta):
    """Advancing the slow variables in closed form equals simulating the silence step by step,
    with and without a tag (a short eligibility, so that the rest's expression of it at once
    is exact enough), and with a capture threshold that the bursting neuron's BDNF (0.5 at
    the start, 1.7 at its peak, 0.7 at the end) crosses up and down during the rest."""
    bd = BDNF(release_rate_per_s=5.0, delay_s=0.5, delay_stages=2, tau_decay_s=2.0, slow_step_s=0.001,
              basal_per_s=0.05)
    rule = ThreeFactorSTDP(PAIR, bd, tau_eligibility_ms=500.0) if tag_ms is None else \
        ThreeFactorSTDP(PAIR, bd, tau_eligibility_ms=20.0, tau_tag_ms=tag_ms, tag_step_s=0.001,
                        capture_threshold=theta)
    pre, post = Population("pre", 2, QUIET), Population("post", 2, QUIET)
    proj = Projection("p", "pre", "post", 2, 2, "exc", np.arange(2), np.arange(2), np.full(2, W0),
                      np.full(2, 1.0), plasticity=rule)
    net = Network((pre, post), (proj,), synapse="current")
    spikes = _pairs([6.0, -6.0], t_pre=150.0) + _burst(20.0, 0, n=10, isi=5.0)
    first = neurons.simulate(net, 300.0, DT, forced_spikes=spikes, progress=False).final_state
    stepped = neurons.simulate(net, 3000.0, DT, state=first, progress=False).final_state
    rested = neurons.rest(net, first, 3000.0, DT)
    assert int(rested.step) == int(stepped.step)
    before = np.asarray(first.weights[0])[:, 0]
    change = lambda s: np.asarray(s.weights[0])[:, 0] - before
    assert np.all(np.abs(change(stepped)) > 1e-4)
    np.testing.assert_allclose(change(rested), change(stepped), rtol=5e-3)
    chain = lambda s: np.asarray(s.plastic[0].third.chain)
    np.testing.assert_allclose(chain(rested), chain(stepped), rtol=2e-3)
    np.testing.assert_array_equal(np.asarray(rested.plastic[0].pre), 0.0)


def _tagged(rule, h0, b):
    """Network of synapses pre i -> post i under `rule`, and a state whose weights carry an
    early change h0 (W0 + h0, all early phase), with BDNF b per post neuron (delay stages empty)."""
    n = len(h0)
    pre, post = Population("pre", n, QUIET), Population("post", n, QUIET)
    proj = Projection("p", "pre", "post", n, n, "exc", np.arange(n), np.arange(n), np.full(n, W0),
                      np.full(n, 1.0), plasticity=rule)
    net = Network((pre, post), (proj,), synapse="current")
    state = neurons.initial_state(net, DT)
    third = state.plastic[0].third
    chain = np.zeros(third.chain.shape, np.float32)
    chain[-1] = b
    early = np.asarray(h0, np.float32)[:, None]
    third = replace(third, early=jnp.asarray(early), chain=jnp.asarray(chain))
    return net, replace(state, weights=(jnp.asarray(W0 + early),),
                        plastic=(replace(state.plastic[0], third=third),))


@pytest.mark.parametrize("scope", ["neuron", "population"])
def test_zero_capture_threshold_is_the_plain_capture_gate(scope):
    """capture_threshold = 0 gives the gate g(b) = b / (b + 1) of max(b, 0) (population: of
    the mean) and today's tag step, bit for bit."""
    rule = ThreeFactorSTDP(PAIR, BDNF(scope=scope), tau_tag_ms=500.0, tag_step_s=0.1, capture_threshold=0.0)
    b = jnp.asarray([0.0, 0.37, -0.2, 5.0], jnp.float32)
    chain = jnp.zeros((4, 4), jnp.float32).at[-1].set(b)
    plain = jnp.maximum(b, 0.0)
    if scope == "population":
        plain = jnp.broadcast_to(jnp.mean(plain), plain.shape)
    g = plain / (plain + 1.0)
    np.testing.assert_array_equal(gate(rule, chain, rule.capture_threshold), g)
    post_of = jnp.asarray([[0, 1], [2, 3], [1, 4]])                  # 4: padding
    weights = jnp.asarray([[0.5, 0.2], [0.7, 0.1], [0.3, 0.0]], jnp.float32)
    early = jnp.asarray([[0.01, -0.02], [0.03, 0.0], [-0.004, 0.0]], jnp.float32)
    state = BDNFState(eligibility=jnp.zeros_like(early), calcium=jnp.zeros(4), release=jnp.zeros(4),
                      chain=chain, early=early)
    w, st = tag_step(rule, post_of, 0.0, 1.0, weights, state)
    decay = np.exp(-100.0 / 500.0)
    gs = jnp.take(g, post_of, mode="fill", fill_value=0.0)
    expected = jnp.clip(weights - jnp.float32(1.0 - decay) * (1.0 - gs) * early, 0.0, 1.0)
    np.testing.assert_array_equal(w, expected)
    np.testing.assert_array_equal(st.early, early * jnp.float32(decay))


@pytest.mark.parametrize("b", [0.0, 0.6, 3.0])
def test_capture_threshold_lets_an_early_change_fade_below_it_and_keeps_g_above(b):
    """With BDNF held at b (no release, a decay of 1e9 s) and threshold 1, an early change h0
    lasts as h0 (exp(-t/tau_tag) + g(b - 1)^+ (1 - exp(-t/tau_tag))): below the threshold it
    fades with tau_tag back to the starting weight; above it g(b - 1) of it stays. Stepping
    and the rest's closed form agree."""
    tau_tag, theta = 200.0, 1.0
    rule = ThreeFactorSTDP(PAIR, BDNF(release_factor=0.0, tau_decay_s=1e9), tau_tag_ms=tau_tag,
                           tag_step_s=0.001, capture_threshold=theta)
    h0 = np.array([0.01, -0.02])
    net, state = _tagged(rule, h0, b)
    above = max(b - theta, 0.0)
    g = above / (above + 1.0)
    t = 600.0
    left = np.exp(-t / tau_tag)
    expected = h0 * (left + g * (1.0 - left))
    stepped = neurons.simulate(net, t, DT, state=state, progress=False).final_state
    rested = neurons.rest(net, state, t, DT)
    for s in (stepped, rested):
        np.testing.assert_allclose(np.asarray(s.weights[0])[:, 0] - W0, expected, rtol=1e-4, atol=2e-7)
        np.testing.assert_allclose(np.asarray(s.plastic[0].third.early)[:, 0], h0 * left, rtol=1e-4)
    # 600 float32 tag steps against one float64 closed form: a few float32 spacings at W0
    np.testing.assert_allclose(np.asarray(rested.weights[0]), np.asarray(stepped.weights[0]), atol=1e-6)
    later = np.asarray(neurons.rest(net, state, 30 * tau_tag, DT).weights[0])[:, 0]
    np.testing.assert_allclose(later - W0, g * h0, rtol=1e-5, atol=1e-7)
    if b <= theta:
        assert np.all(later == np.float32(W0))


@pytest.mark.parametrize("theta", [1.0, 2.9])
def test_capture_threshold_integrates_the_gate_above_it_over_decaying_bdnf(theta):
    """BDNF b0 exp(-t/tau_b) (no release) crosses the threshold at tau_b ln(b0/theta): an
    early change h0 stands at h0 (exp(-T/tau_tag) + int_0^T g(b(t) - theta)^+ exp(-t/tau_tag)
    dt/tau_tag) after T, the integral by quadrature. The rest integrates the gate in substeps
    of tau_b/20 (trapezoidal, second order) over the part of each substep above the threshold:
    with theta = 2.9 BDNF is above it for 17 ms, inside the first substep, where a trapezoid
    across the kink would capture twice too much. Stepping takes the gate at each 1 ms tag
    step's end (first order)."""
    tau_b, tau_tag, b0 = 0.5, 1000.0, 3.0
    bd = BDNF(release_factor=0.0, tau_decay_s=tau_b, delay_stages=1, slow_step_s=0.001)
    rule = ThreeFactorSTDP(PAIR, bd, tau_tag_ms=tau_tag, tag_step_s=0.001, capture_threshold=theta)
    h0 = np.array([0.2, -0.1])
    net, state = _tagged(rule, h0, b0)

    def captured(t_s):
        def g(t):
            a = max(b0 * np.exp(-t / tau_b) - theta, 0.0)
            return a / (a + 1.0) * np.exp(-t * 1e3 / tau_tag) * 1e3 / tau_tag
        return scipy.integrate.quad(g, 0.0, min(tau_b * np.log(b0 / theta), t_s), epsabs=1e-14)[0]

    change = lambda s: np.asarray(s.weights[0], np.float64)[:, 0] - W0
    stepped = neurons.simulate(net, 2000.0, DT, state=state, progress=False).final_state
    rested = neurons.rest(net, state, 2000.0, DT)
    kept = np.exp(-2.0) + captured(2.0)
    np.testing.assert_allclose(change(stepped), h0 * kept, rtol=2e-3)
    np.testing.assert_allclose(change(rested), h0 * kept, rtol=5e-4)
    # after 40 tau_tag only the captured part is left
    later = neurons.rest(net, state, 40 * tau_tag, DT)
    np.testing.assert_allclose(change(later), h0 * captured(40.0), rtol=0.03)


def test_a_day_of_rest_of_many_neurons_integrates_the_gate_over_decaying_bdnf():
    """The same closed form at a course's scale: 400 post neurons whose BDNF starts at 0.5-4
    times the threshold and decays with tau_b = 30 min, a 1 h tag, a day's rest (9,600
    substeps of 9 s, which the rest advances in several batches of substeps): each early change
    h0 stands at h0 (exp(-T/tau_tag) + int g(b(t) - theta)^+ exp(-t/tau_tag) dt/tau_tag), the
    integral by quadrature."""
    tau_b, tau_tag_s, theta, day = 1800.0, 3600.0, 1.0, 86400.0
    bd = BDNF(release_factor=0.0, tau_decay_s=tau_b, delay_stages=1)
    rule = ThreeFactorSTDP(PAIR, bd, tau_tag_ms=tau_tag_s * 1e3, capture_threshold=theta)
    b0 = np.linspace(0.5, 4.0, 400)
    h0 = 0.01 * np.where(np.arange(400) % 2, 1.0, -1.0)
    net, state = _tagged(rule, h0, b0)

    def captured(b):
        def g(t):
            a = max(b * np.exp(-t / tau_b) - theta, 0.0)
            return a / (a + 1.0) * np.exp(-t / tau_tag_s) / tau_tag_s
        return scipy.integrate.quad(g, 0.0, tau_b * np.log(b / theta), epsabs=1e-14)[0] if b > theta else 0.0

    kept = np.exp(-day / tau_tag_s) + np.array([captured(b) for b in b0])
    rested = neurons.rest(net, state, day * 1e3, DT)
    change = np.asarray(rested.weights[0], np.float64)[:, 0] - W0
    np.testing.assert_allclose(change, h0 * kept, rtol=1e-5, atol=6e-8)   # atol: 1 float32 ulp at W0
    assert np.all(change[b0 <= theta] == 0.0) and np.all(np.abs(change[b0 > 1.5]) > 1e-4)
