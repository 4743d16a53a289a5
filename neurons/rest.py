"""`rest`: advance a network's state through a period without spiking (between sessions)."""

from __future__ import annotations

import math
from dataclasses import replace

import jax.numpy as jnp

from ._checks import number
from .bdnf import ThreeFactorSTDP, rest_state, steps_per
from .engine import NetworkState
from .network import Network
from .plasticity import periods


def rest(net: Network, state: NetworkState, duration_ms: float, dt_ms: float = 0.1) -> NetworkState:
    """The state after duration_ms (a whole number of steps of dt_ms) in which no neuron
    spikes: the STDP traces and the calcium of the BDNF rules have decayed to zero; for
    three-factor projections BDNF follows its kinetics with the basal release, converts
    the remaining eligibility and captures what it can of a decaying early phase
    (neurons.bdnf.rest_state); membrane and synaptic variables are
    kept as they were, so simulate(..., state=rest(...)) resumes where the last run stopped,
    duration_ms later on the step counter (which keys the randomness and the BDNF ticks).
    The counter is int32 (about 2.5 days at 0.1 ms): a rest that would overflow it wraps it
    by a multiple of the delay ring's length and of every BDNF tick and chain step, so every
    phase keyed by the step is kept; only the random stream of a later run with the same seed
    differs from the one it would have had."""
    n_steps = steps_per(duration_ms, number(dt_ms, "rest: dt_ms", 0.0, above=True), "rest: duration_ms")
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
    step = int(state.step) + n_steps
    if step > _INT32_MAX:
        step %= _step_period(net, state, dt_ms)
    return replace(state, step=jnp.asarray(step, jnp.int32), weights=tuple(weights), plastic=tuple(traces))


_INT32_MAX = 2**31 - 1


def _step_period(net: Network, state: NetworkState, dt_ms: float) -> int:
    """Least common multiple of the delay ring's length and of the intervals (steps) of every
    plastic rule's periodic updates (neurons.plasticity.periods): shifting the step counter
    by it changes no phase the engine keys by the step."""
    period = int(state.ring.shape[0])
    for proj in net.projections:
        if proj.plasticity is not None:
            period = math.lcm(period, *periods(proj.plasticity, dt_ms).values())
    return period
