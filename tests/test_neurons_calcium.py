"""Calcium-threshold plasticity: exact time above threshold, the sliding threshold, the
frequency dependence the coupling stage relies on."""

import numpy as np
import pytest

import coupling
import neurons
from neurons import CalciumRule
from test_neurons_plasticity import W0, _final_weights

TAU = 20.0
FIXED = dict(gamma_p_per_s=2.0, gamma_d_per_s=1.0, theta_p=1.8, theta_d=0.9, C_pre=1.0, C_post=0.6,
             sliding_tau_ms=None, update_ms=0.1, bounds="hard")


def _above(peak, theta):
    """ms for which peak * exp(-t / TAU) exceeds theta."""
    return TAU * np.log(peak / theta) if peak > theta else 0.0


def test_weight_change_is_rate_times_time_above_each_threshold():
    rule = CalciumRule(**FIXED)
    c2 = 1.0 + np.exp(-2.0 / TAU)   # second pre spike 2 ms after the first
    cases = [([10.0], []), ([], [10.0]), ([10.0], [10.0]), ([10.0, 12.0], [])]
    ltd = np.array([_above(1.0, 0.9), _above(0.6, 0.9), _above(1.6, 0.9), 2.0 + _above(c2, 0.9)])
    ltp = np.array([0.0, 0.0, 0.0, _above(c2, 1.8)])
    dw = _final_weights(rule, cases, duration=200.0) - W0
    expected = 1e-3 * (FIXED["gamma_p_per_s"] * ltp - FIXED["gamma_d_per_s"] * ltd)
    # each threshold crossing is resolved to update_ms (0.1 ms): at most two per threshold
    np.testing.assert_allclose(dw, expected, atol=2 * 1e-4 * 3.0)
    assert dw[1] == 0.0 and dw[0] < 0 and dw[2] < dw[0]


def test_rules_differing_only_in_their_rates_share_one_program_and_keep_their_own_rates():
    """gamma_p_per_s and gamma_d_per_s reach the compiled program as arrays (CalciumRule.kernel):
    a rule with other rates compiles nothing new, and its changes scale with its rates."""
    import jax

    cases = [([10.0], []), ([10.0, 12.0], [])]     # depression only; potentiation and depression
    first = _final_weights(CalciumRule(**FIXED), cases, duration=200.0) - W0
    compiles = []
    jax.monitoring.register_event_duration_secs_listener(
        lambda event, seconds, **kw: event.endswith("backend_compile_duration") and compiles.append(event))
    tripled = dict(FIXED, gamma_p_per_s=3 * FIXED["gamma_p_per_s"], gamma_d_per_s=3 * FIXED["gamma_d_per_s"])
    second = _final_weights(CalciumRule(**tripled), cases, duration=200.0) - W0
    assert compiles == []
    assert first[0] < 0 and first[1] != first[0]
    # float32 rounding of the weight at each of up to 300 changes (ulp(W0) / 2 = 3e-8 each)
    np.testing.assert_allclose(second, 3.0 * first, rtol=0.0, atol=2e-5)


@pytest.mark.parametrize("eligibility", [False, True])
def test_change_visits_the_rows_that_can_pass_a_threshold_and_gives_the_rule_exactly(eligibility):
    """One update_ms interval on random traces: every synapse equals the rule evaluated densely
    (numpy), rows whose calcium stays below both thresholds are untouched, and the result is
    the same bit for bit whatever number of rows is visited at a time, and as in one pass up to
    float32 rounding (XLA may fuse the arithmetic of a gathered row differently)."""
    import jax

    from neurons.calcium import calcium_change, calcium_rates

    rule = CalciumRule(gamma_p_per_s=4.0, gamma_d_per_s=1.0, theta_p=3.0, theta_d=2.75, C_pre_slow=0.3,
                       sliding_tau_ms=15000.0, sliding_rate_Hz=10.0, w_max=3.0, update_ms=0.5,
                       bounds="soft" if eligibility else "hard")
    rng = np.random.default_rng(7)
    n_pre, n_post, max_out = 300, 40, 12
    post_of = rng.integers(0, n_post, (n_pre, max_out)).astype(np.int32)
    post_of[rng.random((n_pre, max_out)) < 0.2] = n_post                # padding
    weights = rng.uniform(0.0, 3.0, (n_pre, max_out)).astype(np.float32)
    target = rng.normal(0.0, 0.1, (n_pre, max_out)).astype(np.float32) if eligibility else weights
    # most rows far below theta_d, a random 10 % with calcium that can reach it
    pre = np.stack([rng.uniform(0.0, 0.5, n_pre), rng.uniform(0.0, 4.0, n_pre),
                    rng.uniform(0.0, 0.3, n_pre)]).astype(np.float32)
    pre[0, rng.random(n_pre) < 0.1] += 2.6
    post = np.stack([rng.uniform(0.0, 0.5, n_post), np.zeros(n_post)]).astype(np.float32)
    boost = rng.uniform(1.0, 1.5, n_post).astype(np.float32) if eligibility else None

    def run(max_rows, due=True):
        post_of_, weights_, pre_, post_ = (jax.numpy.asarray(a) for a in (post_of, weights, pre, post))
        boosts = None if boost is None else jax.numpy.asarray(boost)
        change = jax.jit(lambda t, d: calcium_change(rule.kernel(), post_of_, weights_, t, pre_, post_,
                                                     n_post, boosts, eligibility, calcium_rates(rule), d,
                                                     max_rows=max_rows))
        return np.asarray(change(target, due))

    # the rule, densely (float64)
    c = (pre[0] + pre[2])[:, None] + np.append(post[0], 0.0)[post_of]
    theta_p = rule.theta_p * (1.0 + pre[1] / rule.sliding_rate_Hz)
    h = rule.update_ms * 1e-3
    plus = np.where(c > theta_p[:, None], rule.gamma_p_per_s * h, 0.0)
    if eligibility:
        plus = plus * np.append(boost, 1.0)[post_of]
    minus = np.where(c > rule.theta_d, rule.gamma_d_per_s * h, 0.0)
    if eligibility:
        expected = target + plus * (3.0 - weights) / 3.0 - minus * weights / 3.0
    else:
        expected = np.clip(weights + plus - minus, 0.0, 3.0)
    expected = np.where(post_of < n_post, expected, target)
    moved = np.any(expected != target, axis=1)
    reach = pre[0] + pre[2] + post[0].max() > 2.75
    assert 10 < moved.sum() and not np.any(moved & ~reach)

    one_pass = run(None)                                # this small projection: in one pass
    out = run(16)
    for result in (one_pass, out):
        np.testing.assert_allclose(result, expected, rtol=1e-6, atol=1e-7)
        np.testing.assert_array_equal(result[~reach], target[~reach])
    np.testing.assert_allclose(out, one_pass, rtol=3e-7, atol=0.0)
    for max_rows in (1, 7, n_pre):                      # many batches, a remainder, all at once
        np.testing.assert_array_equal(run(max_rows), out)
    np.testing.assert_array_equal(run(None, due=False), target)
    np.testing.assert_array_equal(run(7, due=False), target)


def test_slow_component_makes_spikes_50_ms_apart_summate_above_theta_p():
    """With C_pre_slow, c = exp(-t/20) + C_slow exp(-t/tau_slow) summed over the pre spikes:
    the second of two spikes 50 ms apart lifts c above theta_p, which the fast part alone
    (peak 1.08) cannot; the change is gamma times the time above each threshold, integrated
    here on a 1 us grid of the exact calcium."""
    c_slow, tau_slow = 0.5, 200.0
    rule = CalciumRule(**FIXED, C_pre_slow=c_slow, tau_slow_ms=tau_slow)
    spikes = np.array([10.0, 60.0])
    t = np.arange(10.0, 600.0, 1e-3)
    age = t[:, None] - spikes[None, :]
    after = np.maximum(age, 0.0)
    c = np.sum(np.where(age >= 0, np.exp(-after / TAU) + c_slow * np.exp(-after / tau_slow), 0.0), axis=1)
    expected = 1e-3 * 1e-3 * (FIXED["gamma_p_per_s"] * np.sum(c > FIXED["theta_p"])
                              - FIXED["gamma_d_per_s"] * np.sum(c > FIXED["theta_d"]))
    assert 1.0 + np.exp(-50.0 / TAU) < FIXED["theta_p"] < c.max()
    dw = _final_weights(rule, [(list(spikes), [])], duration=600.0) - W0
    np.testing.assert_allclose(dw[0], expected, atol=4 * 1e-4 * 3.0)
    ltp_only = dict(FIXED, gamma_d_per_s=0.0)
    with_slow, without = (_final_weights(CalciumRule(**ltp_only, **extra), [(list(spikes), [])],
                                         duration=600.0) - W0
                          for extra in (dict(C_pre_slow=c_slow, tau_slow_ms=tau_slow), {}))
    assert with_slow[0] > 1e-4 and without[0] == 0.0


def test_sliding_threshold_rises_with_presynaptic_activity():
    """A pair of spikes 2 ms apart potentiates with the threshold its own spikes set, and no
    longer after a 50 Hz train has raised theta_p = theta_p (1 + nu / sliding_rate_Hz), nu the
    sum of 1000 / tau_s exp(-age / tau_s) over the presynaptic spikes."""
    tau_s, rate = 1000.0, 100.0
    kw = dict(FIXED, gamma_d_per_s=0.0, sliding_tau_ms=tau_s, sliding_rate_Hz=rate)
    train = np.arange(0.0, 1000.0, 20.0)                    # 50 Hz for 1 s, the pair at 1500 ms
    pair = np.array([1500.0, 1502.0])
    nu = lambda spikes, t: np.sum(1e3 / tau_s * np.exp(-(t - spikes) / tau_s))
    c2 = 1.0 + np.exp(-2.0 / TAU)
    theta_alone = FIXED["theta_p"] * (1.0 + nu(pair, 1502.0) / rate)
    theta_after = FIXED["theta_p"] * (1.0 + nu(np.concatenate([train, pair]), 1502.0) / rate)
    assert theta_after > c2 > theta_alone
    dw = _final_weights(CalciumRule(**kw), [(list(train) + list(pair), []), (list(pair), [])],
                        duration=1700.0) - W0
    assert dw[0] == 0.0
    # theta_alone decays by under 1e-4 of itself over the ~1 ms above it
    np.testing.assert_allclose(dw[1], 1e-3 * FIXED["gamma_p_per_s"] * _above(c2, theta_alone), atol=4e-4)


def _afferent_change(protocol, post: bool = False) -> float:
    """Weight change of one afferent synapse of the default patch rule at basal BDNF, the
    afferent firing its three volleys at every pulse of `protocol` (and the postsynaptic cell
    once, 3 ms after each pulse, if `post`)."""
    rule = coupling.scenario_model("healthy").plasticity
    pulses = np.asarray(protocol.times_ms) + 10.0
    forced = [(t, "pre", 0) for t in (pulses[:, None] + np.array([0.0, 1.4, 2.8])).ravel()]
    forced += [(t + 3.0, "post", 0) for t in pulses] if post else []
    pre, post_pop = neurons.Population("pre", 1, neurons.NeuronParams(v_threshold_mV=1e3)), \
        neurons.Population("post", 1, neurons.NeuronParams(v_threshold_mV=1e3))
    proj = neurons.Projection("p", "pre", "post", 1, 1, "exc", np.array([0]), np.array([0]), np.array([1.5]),
                              np.array([1.0]), plasticity=rule)
    net = neurons.Network((pre, post_pop), (proj,), synapse="current")
    res = neurons.simulate(net, float(pulses[-1]) + 3000.0, 0.1, forced_spikes=forced, progress=False)
    state = neurons.rest(net, res.final_state, 60e3)
    return float(np.asarray(state.weights[0])[0, 0]) - 1.5


@pytest.mark.parametrize("name, post, sign", [("itbs", False, +1), ("ctbs", False, -1), ("one_hz", False, -1),
                                              ("ten_hz", True, +1)])
def test_default_rule_potentiates_with_itbs_and_10Hz_and_depresses_with_ctbs_and_1Hz(name, post, sign):
    """The calibration PatchModel documents: intermittent bursts potentiate, continuous bursts
    and 1 Hz depress, 10 Hz trains whose pulses also fire the postsynaptic cell potentiate
    (shortened protocols of the same pattern: 4 iTBS trains, cTBS300, 120 pulses, three
    clinical 10 Hz trains of 4 s with 26 s gaps)."""
    protocol = {"itbs": coupling.itbs(120), "ctbs": coupling.ctbs(300), "one_hz": coupling.one_hz(120),
                "ten_hz": coupling.rtms(10.0, 40, 3, 26.0)}[name]
    assert sign * _afferent_change(protocol, post) > 0.01


def test_calcium_rule_rejects_bad_parameters():
    with pytest.raises(ValueError, match="theta_d"):
        CalciumRule(1.0, 1.0, theta_d=0.0)
    with pytest.raises(ValueError, match="bounds"):
        CalciumRule(1.0, 1.0, bounds="sticky")
    with pytest.raises(ValueError, match="sliding_tau_ms"):
        CalciumRule(1.0, 1.0, sliding_tau_ms=-1.0)
    with pytest.raises(ValueError, match="C_pre_slow"):
        CalciumRule(1.0, 1.0, C_pre_slow=-0.1)
    with pytest.raises(ValueError, match="tau_slow_ms"):
        CalciumRule(1.0, 1.0, tau_slow_ms=0.0)
    with pytest.raises(ValueError, match="update_ms"):
        neurons.simulate(_one_synapse(CalciumRule(1.0, 1.0, update_ms=0.25)), 1.0, 0.1, progress=False)


def _one_synapse(rule):
    pre, post = neurons.Population("pre", 1), neurons.Population("post", 1)
    proj = neurons.Projection("p", "pre", "post", 1, 1, "exc", np.array([0]), np.array([0]), np.array([0.5]),
                              np.array([1.0]), plasticity=rule)
    return neurons.Network((pre, post), (proj,), synapse="current")
