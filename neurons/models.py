"""Reference networks from the literature, built in a few lines each."""

from __future__ import annotations

import numpy as np

from .connectivity import FixedInDegree, FixedProbability, connect
from .network import Network, NeuronParams, PoissonInput, Population


def _exc_inh(n_neurons: int, params: NeuronParams, v_init, rng):
    n_exc = int(round(0.8 * n_neurons))
    if n_exc < 1 or n_neurons - n_exc < 1:
        raise ValueError(f"n_neurons={n_neurons}: need at least one excitatory and one inhibitory neuron")
    exc = Population("exc", n_exc, params, v_init(rng, n_exc))
    inh = Population("inh", n_neurons - n_exc, params, v_init(rng, n_neurons - n_exc))
    return exc, inh


def _vogels_abbott(n_neurons, seed, synapse, params, v_init, w_exc, w_inh, p, delay_ms):
    rng = np.random.default_rng(seed)
    exc, inh = _exc_inh(n_neurons, params, v_init, rng)
    seeds = rng.integers(0, 2**63, size=4)
    rule = FixedProbability(p)
    projections = [connect(src, dst, rule, weight=w, delay_ms=delay_ms, receptor=receptor, seed=s)
                   for (src, w, receptor), dst, s in zip(
                       [(exc, w_exc, "exc"), (exc, w_exc, "exc"), (inh, w_inh, "inh"), (inh, w_inh, "inh")],
                       [exc, inh, exc, inh], seeds)]
    return Network((exc, inh), projections, synapse=synapse)


def coba(n_neurons: int = 4000, seed: int = 0, *, p: float = 0.02, w_exc_nS: float = 6.0,
         w_inh_nS: float = 67.0, drive_pA: float = 200.0, delay_ms: float = 0.1) -> Network:
    """Brette et al. (2007) benchmark 1 (Vogels & Abbott 2005 COBA) as in the Brian2/BrainPy
    benchmark scripts: 80% excitatory / 20% inhibitory LIF, all-to-all with probability p,
    C 200 pF, g_leak 10 nS (tau_m 20 ms), E_leak -60 mV, threshold -50 mV, reset -60 mV,
    refractory 5 ms, E_exc 0 mV, E_inh -80 mV, tau_exc 5 ms, tau_inh 10 ms, g_exc 6 nS,
    g_inh 67 nS, constant drive 200 pA (the scripts' I = 20 mV times g_leak), initial
    v ~ N(-55, 5) mV; delays one step (0.1 ms). Weights are kept at 4000-neuron values."""
    params = NeuronParams(C_pF=200.0, g_leak_nS=10.0, E_leak_mV=-60.0, v_threshold_mV=-50.0,
                          v_reset_mV=-60.0, t_ref_ms=5.0, tau_exc_ms=5.0, tau_inh_ms=10.0,
                          E_exc_mV=0.0, E_inh_mV=-80.0, I_bias_pA=drive_pA)
    v_init = lambda rng, n: rng.normal(-55.0, 5.0, n)
    return _vogels_abbott(n_neurons, seed, "conductance", params, v_init, w_exc_nS, w_inh_nS, p, delay_ms)


def cuba(n_neurons: int = 4000, seed: int = 0, *, p: float = 0.02, w_exc_pA: float = 16.2,
         w_inh_pA: float = -90.0, delay_ms: float = 0.1) -> Network:
    """Brette et al. (2007) benchmark 2 (CUBA) as in Brian2's example: LIF with exponential
    currents, E_leak -49 mV (above threshold: the intrinsic drive), threshold -50 mV, reset
    -60 mV, refractory 5 ms, tau_m 20 ms (C 200 pF, g_leak 10 nS), tau_exc 5 ms, tau_inh 10 ms;
    weights 1.62 mV and -9 mV times g_leak (16.2 pA, -90 pA); initial v uniform in
    [-60, -50) mV; delays one step (0.1 ms). Brian2's version also freezes the synaptic
    currents during refractoriness; here they keep decaying."""
    params = NeuronParams(C_pF=200.0, g_leak_nS=10.0, E_leak_mV=-49.0, v_threshold_mV=-50.0,
                          v_reset_mV=-60.0, t_ref_ms=5.0, tau_exc_ms=5.0, tau_inh_ms=10.0)
    v_init = lambda rng, n: rng.uniform(-60.0, -50.0, n)
    return _vogels_abbott(n_neurons, seed, "current", params, v_init, w_exc_pA, w_inh_pA, p, delay_ms)


def brunel(n_neurons: int = 2500, seed: int = 0, *, g: float = 5.0, eta: float = 2.0,
           epsilon: float = 0.1, delay_ms: float = 1.5, tau_syn_ms: float = 0.5) -> Network:
    """Brunel (2000) model A: sparse excitatory/inhibitory LIF network (N_E = 4 N_I), each
    neuron receiving C_E = epsilon N_E excitatory and C_I = epsilon N_I inhibitory inputs
    (fixed in-degree), relative inhibition g, delay 1.5 ms, tau_m 20 ms, threshold 20 mV,
    reset 10 mV (rest 0 mV), refractory 2 ms, and C_E external Poisson inputs at
    eta * nu_thr, nu_thr = theta / (J C_E tau_m). Default g=5, eta=2: asynchronous irregular.

    Scaled down from N = 12500 (C_E = 1000, J = 0.1 mV): J = 0.1 mV sqrt(1000 / C_E) keeps
    the recurrent input fluctuations (J^2 C_E) of the paper, and nu_thr follows from J and C_E
    (the external mean input eta * theta is the paper's); with N = 2500 the default gives
    ~55 Hz with CV(ISI) ~0.34. The paper's delta synapses are exponential currents with
    tau_syn_ms (0.5 ms) carrying the same charge (a PSP of total area J tau_m)."""
    C_pF, tau_m, theta = 250.0, 20.0, 20.0
    params = NeuronParams(C_pF=C_pF, g_leak_nS=C_pF / tau_m, E_leak_mV=0.0, v_threshold_mV=theta,
                          v_reset_mV=10.0, t_ref_ms=2.0, tau_exc_ms=tau_syn_ms, tau_inh_ms=tau_syn_ms)
    rng = np.random.default_rng(seed)
    exc, inh = _exc_inh(n_neurons, params, lambda r, n: r.uniform(0.0, theta, n), rng)
    C_E, C_I = max(1, int(round(epsilon * exc.n))), max(1, int(round(epsilon * inh.n)))
    J_mV = 0.1 * np.sqrt(1000.0 / C_E)
    w_exc = J_mV * C_pF / tau_syn_ms
    seeds = rng.integers(0, 2**63, size=4)
    projections = [
        connect(exc, exc, FixedInDegree(C_E), weight=w_exc, delay_ms=delay_ms, receptor="exc", seed=seeds[0]),
        connect(exc, inh, FixedInDegree(C_E), weight=w_exc, delay_ms=delay_ms, receptor="exc", seed=seeds[1]),
        connect(inh, exc, FixedInDegree(C_I), weight=-g * w_exc, delay_ms=delay_ms, receptor="inh",
                seed=seeds[2]),
        connect(inh, inh, FixedInDegree(C_I), weight=-g * w_exc, delay_ms=delay_ms, receptor="inh",
                seed=seeds[3]),
    ]
    nu_ext_Hz = eta * theta / (J_mV * C_E * tau_m) * 1e3
    poisson = [PoissonInput(pop.name, C_E, nu_ext_Hz, w_exc, "exc") for pop in (exc, inh)]
    return Network((exc, inh), projections, poisson, synapse="current")


def song_stdp(n_inputs: int = 1000, seed: int = 0, *, rate_Hz: float = 15.0, g_max_nS: float = 0.1,
              g_leak_nS: float = 10.0, A_plus: float = 0.01, depression_ratio: float = 1.05,
              tau_ms: float = 20.0) -> Network:
    """Song, Miller & Abbott (2000): n_inputs Poisson generators at rate_Hz onto one LIF neuron
    through excitatory conductance synapses with additive all-to-all pair STDP (hard bounds
    [0, g_max]), as in Brian2's example frompapers/Song_Miller_Abbott_2000.

    Neuron: tau_m 10 ms (C = g_leak tau_m), E_leak -74 mV, threshold -54 mV, reset -60 mV, no
    refractory period, E_exc 0 mV, tau_exc 5 ms. Weights start uniform in [0, g_max] nS
    (g_max = 0.01 g_leak); A_plus = 0.01 g_max, A_minus = depression_ratio A_plus,
    tau_plus = tau_minus = tau_ms. After ~100 s the weights are bimodal, pushed to 0 and g_max.
    Projection name: "input_to_neuron"."""
    from .plasticity import PairSTDP

    params = NeuronParams(C_pF=g_leak_nS * 10.0, g_leak_nS=g_leak_nS, E_leak_mV=-74.0, v_threshold_mV=-54.0,
                          v_reset_mV=-60.0, t_ref_ms=0.0, tau_exc_ms=5.0, E_exc_mV=0.0)
    inputs = Population("input", n_inputs, params, rate_Hz=rate_Hz)
    neuron = Population("neuron", 1, params, v_init_mV=-74.0)
    rule = PairSTDP(A_plus=A_plus * g_max_nS, A_minus=depression_ratio * A_plus * g_max_nS,
                    tau_plus_ms=tau_ms, tau_minus_ms=tau_ms, w_min=0.0, w_max=g_max_nS)
    proj = connect(inputs, neuron, FixedProbability(1.0), weight=lambda rng, n: rng.uniform(0.0, g_max_nS, n),
                   delay_ms=0.1, receptor="exc", seed=seed, name="input_to_neuron", plasticity=rule)
    return Network((inputs, neuron), (proj,), synapse="conductance")
