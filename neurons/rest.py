"""`rest`: advance a network's state through a period without spiking (between sessions)."""

from __future__ import annotations

import math
from dataclasses import replace

import jax.numpy as jnp
import numpy as np

from ._checks import number
from .bdnf import ThreeFactorSTDP, rest_state, steps_per
from .engine import NetworkState
from .network import Network
from .plasticity import periods


def rest(net: Network, state: NetworkState, duration_ms: float, dt_ms: float = 0.1) -> NetworkState:
    """The state after duration_ms (a whole number of steps of dt_ms) in which no neuron
    spikes: the traces of the plasticity rules (STDP traces; the calcium rule's calcium and
    the rate trace of its sliding threshold) have decayed as the engine decays them, by its
    per-step factor exp(-dt/tau) in float32 raised to the number of steps (zero, in float32,
    after some hundred time constants); the calcium of the BDNF rules is spent; for
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
        tr = _decayed(proj.plasticity, tr, n_steps, dt_ms)
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


def trace_time_constants(rule) -> tuple[tuple, tuple]:
    """Decay time constants (ms) of the rows of a plastic rule's pre and post traces (None: a
    row the engine keeps as it is). TripletSTDP (PairSTDP through its kernel): pre (tau_plus,
    tau_x), post (tau_minus, tau_y); CalciumRule: pre (tau_calcium, sliding_tau: the rate trace
    of the sliding threshold, 0 without one, tau_slow), post (tau_calcium, unused)."""
    from .calcium import CalciumRule

    stdp = (rule.stdp if isinstance(rule, ThreeFactorSTDP) else rule).kernel()
    if isinstance(stdp, CalciumRule):
        return ((stdp.tau_calcium_ms, stdp.sliding_tau_ms or 0.0, stdp.tau_slow_ms),
                (stdp.tau_calcium_ms, None))
    return (stdp.tau_plus_ms, stdp.tau_x_ms), (stdp.tau_minus_ms, stdp.tau_y_ms)


def _decayed(rule, traces, n_steps: int, dt_ms: float):
    """traces after n_steps steps without spikes: each row times the engine's float32 per-step
    factor to the power n_steps (computed in float64)."""
    def factor(tau):
        if tau is None:
            return 1.0
        return float(np.float32(np.exp(-dt_ms / tau))) ** n_steps if tau > 0 else 0.0

    factors = lambda taus: jnp.asarray(np.array([factor(t) for t in taus])[:, None], jnp.float32)

    pre_taus, post_taus = trace_time_constants(rule)
    return replace(traces, pre=traces.pre * factors(pre_taus), post=traces.post * factors(post_taus))


def _step_period(net: Network, state: NetworkState, dt_ms: float) -> int:
    """Least common multiple of the delay ring's length and of the intervals (steps) of every
    plastic rule's periodic updates (neurons.plasticity.periods): shifting the step counter
    by it changes no phase the engine keys by the step."""
    period = int(state.ring.shape[0])
    for proj in net.projections:
        if proj.plasticity is not None:
            period = math.lcm(period, *periods(proj.plasticity, dt_ms).values())
    return period
