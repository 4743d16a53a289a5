"""Sub-threshold integration of the neuron models over one time step (pure, jittable).

Integrators (float32 state; propagators precomputed on the host in float64):
- LIF, current synapses: exact. Between spikes, v and the two exponential currents form a
  linear system with constant input, so v(t+dt) = E_L + (v - E_L) P22 + I R (1 - P22)
  + sum_r P21_r I_r, P21_r = tau_r tau_m / (C (tau_m - tau_r)) (P22 - P11_r), with the limit
  dt P22 / C where tau_r == tau_m.
- LIF, conductance synapses: conductances decay exactly; v takes the exponential-Euler step
  (exact for conductances frozen over the step, as Brian2's `exponential_euler` does).
- AdEx: exponential Euler with the exponential and adaptation currents frozen over the step
  (exponent clipped at the spike cut-off v_peak); w relaxes exactly towards a (v - E_L).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

_TAU_EQUAL_RTOL = 1e-6


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class NeuronConstants:
    """Per-neuron float32 arrays (N,) or (2, N) for the two receptors (exc, inh)."""

    E_leak: jax.Array
    g_leak: jax.Array
    C: jax.Array
    I_bias: jax.Array
    v_spike: jax.Array
    v_reset: jax.Array
    refractory_steps: jax.Array
    syn_decay: jax.Array
    E_syn: jax.Array
    membrane_decay: jax.Array
    drive_gain: jax.Array
    syn_gain: jax.Array
    v_T: jax.Array
    delta_T: jax.Array
    exp_cap: jax.Array
    a: jax.Array
    b: jax.Array
    w_decay: jax.Array


def neuron_constants(p: dict[str, np.ndarray], dt_ms: float, neuron: str) -> NeuronConstants:
    """Float32 constants from float64 parameter arrays (NeuronParams.arrays, concatenated)."""
    tau_m = p["C_pF"] / p["g_leak_nS"]
    taus = np.stack([p["tau_exc_ms"], p["tau_inh_ms"]])
    P22 = np.exp(-dt_ms / tau_m)
    P11 = np.exp(-dt_ms / taus)
    same = np.abs(taus - tau_m) <= _TAU_EQUAL_RTOL * tau_m
    diff = np.where(same, 1.0, tau_m - taus)
    P21 = np.where(same, dt_ms * P22 / p["C_pF"], taus * tau_m / (p["C_pF"] * diff) * (P22 - P11))
    v_spike = p["v_peak_mV"] if neuron == "adex" else p["v_threshold_mV"]
    f32 = lambda x: jnp.asarray(np.asarray(x, np.float64), dtype=jnp.float32)
    return NeuronConstants(
        E_leak=f32(p["E_leak_mV"]), g_leak=f32(p["g_leak_nS"]), C=f32(p["C_pF"]),
        I_bias=f32(p["I_bias_pA"]), v_spike=f32(v_spike), v_reset=f32(p["v_reset_mV"]),
        refractory_steps=jnp.asarray(np.round(p["t_ref_ms"] / dt_ms), dtype=jnp.int32),
        syn_decay=f32(P11), E_syn=f32(np.stack([p["E_exc_mV"], p["E_inh_mV"]])),
        membrane_decay=f32(P22), drive_gain=f32((1.0 - P22) / p["g_leak_nS"]), syn_gain=f32(P21),
        v_T=f32(p["v_threshold_mV"]), delta_T=f32(p["delta_T_mV"]),
        exp_cap=f32((p["v_peak_mV"] - p["v_threshold_mV"]) / p["delta_T_mV"]),
        a=f32(p["a_nS"]), b=f32(p["b_pA"]), w_decay=f32(np.exp(-dt_ms / p["tau_w_ms"])))


def integrate(c: NeuronConstants, v, syn, w, I_ext, dt_ms: float, neuron: str, synapse: str):
    """Advance (v mV, syn (2, N) pA or nS, w pA) by dt_ms with constant external current I_ext
    (pA, bias included); returns the new (v, syn, w) without threshold or refractoriness."""
    if neuron == "lif" and synapse == "current":
        v_new = (c.E_leak + (v - c.E_leak) * c.membrane_decay + I_ext * c.drive_gain
                 + c.syn_gain[0] * syn[0] + c.syn_gain[1] * syn[1])
        return v_new, syn * c.syn_decay, w
    if synapse == "conductance":
        g_total = c.g_leak + syn[0] + syn[1]
        drive = c.g_leak * c.E_leak + (syn[0] * c.E_syn[0] + syn[1] * c.E_syn[1]) + I_ext
    else:
        g_total = c.g_leak
        drive = c.g_leak * c.E_leak + syn[0] + syn[1] + I_ext
    w_new = w
    if neuron == "adex":
        drive = drive + c.g_leak * c.delta_T * jnp.exp(jnp.minimum((v - c.v_T) / c.delta_T, c.exp_cap)) - w
        w_target = c.a * (v - c.E_leak)
        w_new = w_target + (w - w_target) * c.w_decay
    v_inf = drive / g_total
    v_new = v_inf + (v - v_inf) * jnp.exp(-dt_ms * g_total / c.C)
    return v_new, syn * c.syn_decay, w_new
