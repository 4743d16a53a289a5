"""Homeostatic synaptic scaling between sessions: a neuron's excitatory weights scale toward its target rate.

Multiplicative scaling (Turrigiano et al. 1998, Nature 391:892; Turrigiano 2008, Cell
135:422): every plastic excitatory weight onto neuron i follows

    dw/dt = w (r_target,i - r_i) / (r_target,i tau_h)

with r_i the neuron's rate and r_target,i its rate before the course. Scaling develops over
a day or two after a change of activity (Turrigiano et al. 1998: 24-48 h), so tau_h = 1 day
by default. Between sessions the network does not spike; r_i is held at the rate measured
in the last spiking window, and the solution over a gap of t days is closed form,

    w(t) = clip(w(0) exp((1 - r_i / r_target,i) t / tau_h), w_min, w_max),

exact also with the rule's bounds (the unclipped solution is monotone, so it stays at a
bound once it reaches it). A neuron silent before the course (r_target = 0) has no target
and is not scaled.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import jax.numpy as jnp
import numpy as np

import neurons


@dataclass(frozen=True)
class Homeostasis:
    """Multiplicative synaptic scaling with time constant tau_days (days)."""

    tau_days: float = 1.0

    def __post_init__(self):
        if not self.tau_days > 0:
            raise ValueError(f"Homeostasis.tau_days must be > 0, got {self.tau_days}")

    def factor(self, rate_Hz, target_Hz, duration_days: float) -> np.ndarray:
        """Per neuron, exp((1 - r / r_target) t / tau_h) for t = duration_days (1 where
        r_target = 0): the unclipped weight ratio w(t) / w(0)."""
        rate, target = np.asarray(rate_Hz, np.float64), np.asarray(target_Hz, np.float64)
        if rate.shape != target.shape or np.any(rate < 0) or np.any(target < 0):
            raise ValueError(f"Homeostasis: rate_Hz and target_Hz must be rates >= 0 of the same shape, "
                             f"got {rate.shape} and {target.shape}")
        if not duration_days >= 0:
            raise ValueError(f"Homeostasis: duration_days must be >= 0, got {duration_days}")
        with np.errstate(divide="ignore", invalid="ignore"):
            drive = np.where(target > 0, 1.0 - rate / target, 0.0)
        return np.exp(drive * duration_days / self.tau_days)

    def scale(self, net: neurons.Network, state: neurons.NetworkState, rate_Hz, target_Hz,
              duration_days: float) -> neurons.NetworkState:
        """`state` with the weights of every plastic excitatory projection of `net` scaled over
        duration_days (and the early phase within them, under tagging and capture, in
        proportion); rate_Hz, target_Hz: (net.n_neurons,) per neuron, global order."""
        factor = self.factor(rate_Hz, target_Hz, duration_days)
        if factor.shape != (net.n_neurons,):
            raise ValueError(f"Homeostasis: need one rate per neuron ({net.n_neurons}), got {factor.shape}")
        weights, plastic = list(state.weights), list(state.plastic)
        plastic_index = [i for i, p in enumerate(net.projections) if p.plasticity is not None]
        for index, proj in enumerate(net.projections):
            if proj.plasticity is None or proj.receptor != "exc":
                continue
            rule = proj.plasticity
            bounds = (rule.stdp if isinstance(rule, neurons.ThreeFactorSTDP) else rule).kernel()
            post = proj.ell.post
            valid = post < proj.n_post
            per_synapse = np.where(valid, factor[net.offsets[proj.post] + np.where(valid, post, 0)], 1.0)
            w = np.asarray(weights[index], np.float64)
            scaled = np.clip(w * per_synapse, bounds.w_min, bounds.w_max)
            weights[index] = jnp.asarray(np.where(valid, scaled, w), jnp.float32)
            k = plastic_index.index(index)
            third = plastic[k].third
            if third is not None and third.early.size:
                early = np.asarray(third.early, np.float64) * per_synapse
                plastic[k] = replace(plastic[k], third=replace(third, early=jnp.asarray(early, jnp.float32)))
        return replace(state, weights=tuple(weights), plastic=tuple(plastic))
