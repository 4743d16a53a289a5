"""`rest`: advance a network's state through a period without spiking (between sessions)."""

from __future__ import annotations

from dataclasses import replace

import jax.numpy as jnp

from .bdnf import ThreeFactorSTDP, rest_state, steps_per
from .engine import NetworkState
from .network import Network


def rest(net: Network, state: NetworkState, duration_ms: float, dt_ms: float = 0.1) -> NetworkState:
    """The state after duration_ms (a whole number of steps of dt_ms) in which no neuron
    spikes: the STDP traces and the calcium of the BDNF rules have decayed to zero; for
    three-factor projections BDNF follows its kinetics with the basal release and converts
    the remaining eligibility (neurons.bdnf.rest_state); membrane and synaptic variables are
    kept as they were, so simulate(..., state=rest(...)) resumes where the last run stopped,
    duration_ms later on the step counter (which keys the randomness and the BDNF ticks)."""
    n_steps = steps_per(duration_ms, dt_ms, "rest: duration_ms")
    plastic = [p for p in net.projections if p.plasticity is not None]
    if len(plastic) != len(state.plastic):
        raise ValueError("rest: state does not belong to this network (plastic projections differ)")
    weights, traces = list(state.weights), []
    for proj, tr in zip(plastic, state.plastic):
        tr = replace(tr, pre=jnp.zeros_like(tr.pre), post=jnp.zeros_like(tr.post))
        if isinstance(proj.plasticity, ThreeFactorSTDP):
            index = net.projections.index(proj)
            stdp = proj.plasticity.stdp.kernel()
            weights[index], third = rest_state(proj.plasticity, tr.third, weights[index], proj.ell.post,
                                               stdp.w_min, stdp.w_max, duration_ms * 1e-3)
            tr = replace(tr, third=third)
        traces.append(tr)
    return replace(state, step=state.step + n_steps, weights=tuple(weights), plastic=tuple(traces))
