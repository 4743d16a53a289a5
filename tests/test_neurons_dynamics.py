"""Single-neuron dynamics against closed-form solutions."""

import numpy as np
import pytest
from scipy.integrate import solve_ivp

import neurons
from neurons import CurrentInjection, Network, NeuronParams, Population, Projection

C, G_L, E_L = 200.0, 10.0, -60.0
TAU_M = C / G_L
QUIET = dict(C_pF=C, g_leak_nS=G_L, E_leak_mV=E_L, v_threshold_mV=1e3, v_reset_mV=E_L)


def _driven_pair(synapse, dst_params, weight, delay_ms=2.0, spike_ms=1.0, duration_ms=40.0, dt_ms=0.1):
    """One source neuron forced to fire at spike_ms onto every neuron of `dst`."""
    src = Population("src", 1, NeuronParams(**QUIET), v_init_mV=E_L)
    n_dst = np.size(dst_params.tau_exc_ms)
    dst = Population("dst", n_dst, dst_params, v_init_mV=E_L)
    proj = Projection("src_to_dst", "src", "dst", 1, n_dst, "exc", np.zeros(n_dst, np.int64),
                      np.arange(n_dst), np.full(n_dst, weight), np.full(n_dst, delay_ms))
    net = Network((src, dst), (proj,), synapse=synapse)
    return neurons.simulate(net, duration_ms, dt_ms, record={"dst": np.arange(n_dst)},
                            forced_spikes=[(spike_ms, "src", 0)], progress=False)


def test_cuba_membrane_relaxation_and_current_step_are_exact():
    v0, I, dt, t_on = -52.0, 150.0, 0.1, 5.0
    pop = Population("p", 1, NeuronParams(**QUIET), v_init_mV=v0)
    step = CurrentInjection("p", [0], np.where(np.arange(300) * dt >= t_on, I, 0.0))
    res = neurons.simulate(Network((pop,), synapse="current"), 30.0, dt, record={"p": [0]},
                           current_injections=(step,), progress=False)
    t = res.times_ms
    expected = E_L + (v0 - E_L) * np.exp(-t / TAU_M) + np.where(
        t >= t_on, I / G_L * (1 - np.exp(-(t - t_on) / TAU_M)), 0.0)
    np.testing.assert_allclose(res.traces["p"].v_mV[:, 0], expected, atol=2e-4)


@pytest.mark.parametrize("tau_syn", [5.0, TAU_M])
def test_cuba_psp_is_the_two_exponential_solution(tau_syn):
    w, delay, t_spike = 80.0, 2.0, 1.0
    params = NeuronParams(**QUIET, tau_exc_ms=tau_syn)
    res = _driven_pair("current", params, w, delay, t_spike)
    t = res.times_ms - (t_spike + delay)
    s = np.clip(t, 0, None)
    if tau_syn == TAU_M:
        psp = w / C * s * np.exp(-s / TAU_M)
    else:
        psp = w / C * tau_syn * TAU_M / (tau_syn - TAU_M) * (np.exp(-s / tau_syn) - np.exp(-s / TAU_M))
    np.testing.assert_allclose(res.traces["dst"].v_mV[:, 0], E_L + psp, atol=2e-4)
    np.testing.assert_allclose(res.traces["dst"].syn[:, 0, 0],
                               np.where(t >= -1e-9, w * np.exp(-s / tau_syn), 0),
                               rtol=1e-5, atol=1e-5)


def test_coba_conductance_decays_exactly_and_v_converges_at_first_order():
    w, tau_e, t_arrive = 20.0, 5.0, 3.0

    def rhs(t, v):
        g = w * np.exp(-(t - t_arrive) / tau_e) if t >= t_arrive else 0.0
        return (G_L * (E_L - v) + g * (0.0 - v)) / C

    ref = solve_ivp(rhs, (t_arrive, 40.0), [E_L], dense_output=True, rtol=1e-11, atol=1e-11)
    errors = []
    for dt in (0.2, 0.1, 0.05):
        res = _driven_pair("conductance", NeuronParams(**QUIET, tau_exc_ms=tau_e), w, 2.0, 1.0, 40.0, dt)
        t = res.times_ms
        after = t >= t_arrive - 1e-9
        g = res.traces["dst"].syn[:, 0, 0]
        np.testing.assert_allclose(g[after], w * np.exp(-(t[after] - t_arrive) / tau_e), rtol=2e-5)
        assert np.all(g[~after] == 0)
        errors.append(np.max(np.abs(res.traces["dst"].v_mV[after, 0] - ref.sol(t[after])[0])))
    assert errors[1] < 0.15  # mV, for a PSP of ~20 mV; exponential Euler is first order:
    assert 1.6 < errors[0] / errors[1] < 2.5 and 1.6 < errors[1] / errors[2] < 2.5


def test_refractory_clamp_and_exact_interspike_interval():
    dt, t_ref, v_reset, theta, I = 0.1, 5.0, -60.0, -50.0, 300.0
    pop = Population("p", 1, NeuronParams(C_pF=C, g_leak_nS=G_L, E_leak_mV=E_L, v_threshold_mV=theta,
                                          v_reset_mV=v_reset, t_ref_ms=t_ref, I_bias_pA=I), v_init_mV=v_reset)
    res = neurons.simulate(Network((pop,), synapse="current"), 200.0, dt, record={"p": [0]}, progress=False)
    times = res.spikes["p"].times_ms
    v = res.traces["p"].v_mV[:, 0]
    assert times.size > 5
    # free relaxation from reset: first grid point j with v(j dt) >= threshold
    v_inf = E_L + I / G_L
    j = np.arange(1, 1000)
    first = j[np.argmax(v_inf + (v_reset - v_inf) * np.exp(-j * dt / TAU_M) >= theta)]
    np.testing.assert_allclose(np.diff(times), t_ref + (first - 1) * dt, atol=1e-6)
    for t_spike in times[:-1]:
        k = int(round(t_spike / dt))
        assert np.all(v[k + 1:k + int(round(t_ref / dt)) + 1] == np.float32(v_reset))
        assert np.all(v[k + 1:int(round((t_spike + t_ref) / dt))] < theta)


def test_adex_is_stable_and_adapts():
    b, dt = 60.0, 0.1
    params = NeuronParams(C_pF=281.0, g_leak_nS=30.0, E_leak_mV=-70.6, v_threshold_mV=-50.4, delta_T_mV=2.0,
                          v_peak_mV=0.0, v_reset_mV=-70.6, t_ref_ms=0.0, a_nS=4.0, b_pA=b, tau_w_ms=144.0,
                          I_bias_pA=800.0)
    pop = Population("p", 1, params, v_init_mV=-70.6)
    res = neurons.simulate(Network((pop,), neuron="adex", synapse="conductance"), 300.0, dt,
                           record={"p": [0]}, progress=False)
    v, w = res.traces["p"].v_mV[:, 0], res.traces["p"].w_pA[:, 0]
    isi = np.diff(res.spikes["p"].times_ms)
    assert np.all(np.isfinite(v)) and np.all(v < 0.0 + 1e-3)
    assert isi.size >= 5 and np.all(np.diff(isi) >= -dt / 2) and isi[-1] > 2 * isi[0]
    k = int(round(res.spikes["p"].times_ms[0] / dt))
    assert w[k + 1] - w[k] == pytest.approx(b, rel=0.05)


def test_state_is_float32_even_with_x64_enabled():
    import jax

    with jax.enable_x64(True):
        assert jax.config.jax_enable_x64
        for net in (neurons.cuba(n_neurons=200, seed=1), neurons.coba(n_neurons=200, seed=1),
                    neurons.brunel(n_neurons=200, seed=1)):
            res = neurons.simulate(net, 20.0, record={"exc": [0, 1]}, progress=False)
            state = res.final_state
            assert state.v.dtype == state.syn.dtype == state.ring.dtype == np.float32
            assert all(w.dtype == np.float32 for w in state.weights)
            assert res.traces["exc"].v_mV.dtype == np.float32 and res.traces["exc"].syn.dtype == np.float32
