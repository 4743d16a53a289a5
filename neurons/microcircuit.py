"""The Potjans & Diesmann (2014) cortical microcircuit, full size or downscaled.

Potjans & Diesmann (2014), Cereb Cortex 24:785: the neurons under 1 mm^2 of early sensory
cortex, eight populations (excitatory and inhibitory in layers 2/3, 4, 5 and 6), 77,169
current-based LIF neurons with exponential PSCs and about 3x10^8 synapses, driven by
Poisson background at 8 Hz. Parameters as published (and as in the NEST and GeNN
versions of the model):

- neurons: C 250 pF, tau_m 10 ms, E_L = V_reset = -65 mV, V_th -50 mV, t_ref 2 ms,
  tau_syn 0.5 ms; initial v ~ N(-58, 10) mV;
- connectivity: connection probabilities C_ij (target i, source j, `CONNECTION_PROBABILITY`)
  realised as a fixed total number K_ij = ln(1 - C_ij) / ln(1 - 1/(N_i N_j)) of synapses
  with multapses; external in-degrees `K_EXTERNAL`;
- weights: PSC amplitude giving a 0.15 mV PSP peak (87.8 pA), relative SD 10 %, inhibitory
  -4 times excitatory, L4E -> L2/3E doubled; the background uses the excitatory PSC;
- delays: normal, excitatory 1.5 +- 0.75 ms, inhibitory 0.75 +- 0.375 ms, at least 0.1 ms.

Downscaling (van Albada, Helias & Diesmann 2015, PLoS Comput Biol 11:e1004490): `scale`
multiplies the population sizes, `k_scale` the in-degrees (recurrent and external); weights
are divided by sqrt(k_scale), which keeps the input variance, and a DC current per
population, (1 - sqrt(k_scale)) tau_syn sum_j K_ij J_ij nu_j over recurrent and external
inputs with the full-scale rates nu_j (`FULL_SCALE_RATES_HZ`), restores the mean input.
Population names: "L23E", "L23I", "L4E", "L4I", "L5E", "L5I", "L6E", "L6I".
"""

from __future__ import annotations

import numpy as np

from .connectivity import FixedTotalNumber, connect
from .network import Network, NeuronParams, PoissonInput, Population

POPULATIONS = ("L23E", "L23I", "L4E", "L4I", "L5E", "L5I", "L6E", "L6I")
FULL_SIZES = np.array([20683, 5834, 21915, 5479, 4850, 1065, 14395, 2948])
CONNECTION_PROBABILITY = np.array([   # [target, source], sources in POPULATIONS order
    [0.1009, 0.1689, 0.0437, 0.0818, 0.0323, 0.0, 0.0076, 0.0],
    [0.1346, 0.1371, 0.0316, 0.0515, 0.0755, 0.0, 0.0042, 0.0],
    [0.0077, 0.0059, 0.0497, 0.1350, 0.0067, 0.0003, 0.0453, 0.0],
    [0.0691, 0.0029, 0.0794, 0.1597, 0.0033, 0.0, 0.1057, 0.0],
    [0.1004, 0.0622, 0.0505, 0.0057, 0.0831, 0.3726, 0.0204, 0.0],
    [0.0548, 0.0269, 0.0257, 0.0022, 0.0600, 0.3158, 0.0086, 0.0],
    [0.0156, 0.0066, 0.0211, 0.0166, 0.0572, 0.0197, 0.0396, 0.2252],
    [0.0364, 0.0010, 0.0034, 0.0005, 0.0277, 0.0080, 0.0658, 0.1443]])
K_EXTERNAL = np.array([1600, 1500, 2100, 1900, 2000, 1900, 2900, 2100])
FULL_SCALE_RATES_HZ = np.array([0.971, 2.868, 4.746, 5.396, 8.142, 9.078, 0.991, 7.523])
"""Mean rates of the full-scale model (NEST's reference simulation), used for the DC
compensation of a downscaled one."""

BACKGROUND_HZ = 8.0
PSP_MV = 0.15
G_INH = -4.0
C_PF, TAU_M_MS, TAU_SYN_MS = 250.0, 10.0, 0.5
MIN_DELAY_MS = 0.1


def psc_for_psp(psp_mV: float, C_pF: float = C_PF, tau_m_ms: float = TAU_M_MS,
                tau_syn_ms: float = TAU_SYN_MS) -> float:
    """PSC amplitude (pA) whose PSP in a current-based LIF with an exponential PSC peaks at
    psp_mV: v(t) = J/C tau_m tau_s/(tau_m - tau_s) (exp(-t/tau_m) - exp(-t/tau_s))."""
    a = tau_m_ms * tau_syn_ms / (tau_m_ms - tau_syn_ms)
    t_peak = a * np.log(tau_m_ms / tau_syn_ms)
    return psp_mV * C_pF / (a * (np.exp(-t_peak / tau_m_ms) - np.exp(-t_peak / tau_syn_ms)))


def synapse_counts(sizes) -> np.ndarray:
    """K_ij = ln(1 - C_ij) / ln(1 - 1/(N_i N_j)): synapses from population j onto i (float)."""
    sizes = np.asarray(sizes, np.float64)
    pairs = np.outer(sizes, sizes)
    return np.log1p(-CONNECTION_PROBABILITY) / np.log1p(-1.0 / pairs)


def mean_weights_pA() -> np.ndarray:
    """Full-scale mean PSC amplitude of each [target, source] pair (pA)."""
    w = psc_for_psp(PSP_MV)
    weights = np.where(np.arange(8) % 2 == 0, w, G_INH * w)[None, :].repeat(8, axis=0)
    weights[0, 2] *= 2.0
    return weights


def potjans_diesmann(scale: float = 1.0, k_scale: float | None = None, seed: int = 0, *,
                     plasticity=None) -> Network:
    """The microcircuit with population sizes scaled by `scale` and in-degrees by `k_scale`
    (default: scale, so a small model keeps the connection probabilities), see the module
    docstring. plasticity: a rule (e.g. neurons.PairSTDP in pA) for every excitatory-to-
    excitatory projection, None for static synapses. Current-based (pA, ms, mV)."""
    k_scale = scale if k_scale is None else k_scale
    if not 0 < scale <= 1 or not 0 < k_scale <= 1:
        raise ValueError(f"potjans_diesmann: scale and k_scale must lie in (0, 1], got {scale}, {k_scale}")
    rng = np.random.default_rng(seed)
    sizes = np.maximum(1, np.round(FULL_SIZES * scale)).astype(int)
    in_degree_full = synapse_counts(FULL_SIZES) / FULL_SIZES[:, None]
    counts = np.round(in_degree_full * k_scale * sizes[:, None]).astype(int)
    w_full = mean_weights_pA()
    w_ext = psc_for_psp(PSP_MV)
    mean_input_pA = TAU_SYN_MS * 1e-3 * ((in_degree_full * w_full) @ FULL_SCALE_RATES_HZ
                                         + K_EXTERNAL * w_ext * BACKGROUND_HZ)
    dc_pA = (1.0 - np.sqrt(k_scale)) * mean_input_pA
    populations = tuple(
        Population(name, int(n), _params(dc), rng.normal(-58.0, 10.0, int(n)))
        for name, n, dc in zip(POPULATIONS, sizes, dc_pA))
    projections = []
    for i, post in enumerate(populations):
        for j, pre in enumerate(populations):
            if counts[i, j] == 0:
                continue
            excitatory = j % 2 == 0
            projections.append(connect(
                pre, post, FixedTotalNumber(int(counts[i, j])),
                weight=_normal(w_full[i, j] / np.sqrt(k_scale), 0.1, excitatory),
                delay_ms=_normal(1.5 if excitatory else 0.75, 0.5, None),
                receptor="exc" if excitatory else "inh", seed=int(rng.integers(2**63)),
                plasticity=plasticity if excitatory and i % 2 == 0 else None))
    poisson = [PoissonInput(p.name, int(round(k * k_scale)), BACKGROUND_HZ, w_ext / np.sqrt(k_scale))
               for p, k in zip(populations, K_EXTERNAL)]
    return Network(populations, projections, poisson, synapse="current")


def _params(dc_pA: float) -> NeuronParams:
    return NeuronParams(C_pF=C_PF, g_leak_nS=C_PF / TAU_M_MS, E_leak_mV=-65.0, v_threshold_mV=-50.0,
                        v_reset_mV=-65.0, t_ref_ms=2.0, tau_exc_ms=TAU_SYN_MS, tau_inh_ms=TAU_SYN_MS,
                        I_bias_pA=float(dc_pA))


def _normal(mean: float, relative_sd: float, excitatory: bool | None):
    """Draws (rng, n) -> n values ~ N(mean, relative_sd |mean|): weights keep their sign
    (excitatory >= 0, inhibitory <= 0), delays (excitatory None) are at least MIN_DELAY_MS."""
    def draw(rng, n):
        x = rng.normal(mean, relative_sd * abs(mean), n)
        if excitatory is None:
            return np.maximum(x, MIN_DELAY_MS)
        return np.maximum(x, 0.0) if excitatory else np.minimum(x, 0.0)
    return draw
