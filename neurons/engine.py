"""The jitted chunk: `lax.scan` of one time step over a chunk of steps.

Step k covers [t_k, t_k + dt], t_k = k dt, and does, in order: add the synaptic events due at
t_k (delay ring slot k mod D) and the external Poisson input to the synaptic variables;
sample the recorded traces (state at t_k); count down refractoriness; integrate v, synapses
and adaptation to t_k + dt (refractory neurons held at v_reset); detect spikes (threshold at
t_k + dt, or forced) and reset; a spike carries the label t_k, as in Brian2. The indices of the
neurons that spiked are gathered, per population, into a fixed buffer of K_p
(`jnp.nonzero(size=K_p)`) and their outgoing ELL rows scatter-added into ring slot
(k + delay) mod D, so a spike at t_k reaches its targets at exactly t_k + delay. More than K_p
spikes in a step sets `overflow`; the remaining steps of the chunk then do nothing, and the
host re-runs the chunk from its start state with a larger K_p, so no spike is lost.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from .connectivity import RECEPTORS
from .dynamics import NeuronConstants, integrate


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class NetworkState:
    """Everything that changes during a run. step: index of the next step (int32);
    v (N,) mV; syn (2, N) pA or nS (exc, inh); w (N,) pA; refractory (N,) steps left;
    ring (D, 2, N) events due per future step; weights: one (n_pre, max_out) array per
    projection (pA or nS); overflow: a step had more spikes than the gather buffer."""

    step: jax.Array
    v: jax.Array
    syn: jax.Array
    w: jax.Array
    refractory: jax.Array
    ring: jax.Array
    weights: tuple
    overflow: jax.Array


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class EllProjection:
    """Device arrays of one projection: target (n_pre, max_out) int32, flat index
    receptor * N + global post index, N * 2 at padding; delay_steps (n_pre, max_out) int32."""

    target: jax.Array
    delay_steps: jax.Array


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class StaticInputs:
    """Arrays fixed during a run: base PRNG key, neurons receiving injected current (k,),
    neurons whose traces are recorded (m,)."""

    key: jax.Array
    injection_ids: jax.Array
    record_ids: jax.Array


@dataclass(frozen=True)
class EngineConfig:
    """Static configuration (hashable; a change recompiles).

    max_spikes: spike buffer size K per population; population_slices: (offset, n) per
    population; projection_pre: index of the pre population of each projection;
    poisson: (offset, n, CDF of the count per step, weight, receptor index) per input (counts
    are drawn by inverting the CDF, see `poisson_cdf`).
    """

    neuron: str
    synapse: str
    n_neurons: int
    dt_ms: float
    ring_slots: int
    max_spikes: tuple
    population_slices: tuple
    projection_pre: tuple
    poisson: tuple


def poisson_cdf(mean_count: float) -> tuple:
    """CDF P(X <= k) of a Poisson count with mean mean_count, k = 0 ... kmax far in the tail;
    inverted with a float32 uniform, the counts are exact up to its 2**-24 resolution."""
    kmax = int(np.ceil(mean_count + 14.0 * np.sqrt(mean_count) + 14.0))
    k = np.arange(kmax + 1)
    log_pmf = k * np.log(max(mean_count, 1e-300)) - mean_count - np.cumsum(np.log(np.maximum(k, 1)))
    return tuple(float(x) for x in np.minimum(np.cumsum(np.exp(log_pmf)), 1.0))


def fresh_state(v_init, weights, ring_slots: int) -> NetworkState:
    """State at step 0: v = v_init (mV), everything else at rest, no events pending."""
    n = v_init.shape[0]
    f32 = jnp.float32
    return NetworkState(
        step=jnp.zeros((), jnp.int32), v=jnp.asarray(v_init, dtype=f32), syn=jnp.zeros((2, n), f32),
        w=jnp.zeros(n, f32), refractory=jnp.zeros(n, jnp.int32),
        ring=jnp.zeros((ring_slots, len(RECEPTORS), n), f32),
        weights=tuple(jnp.asarray(wt, dtype=f32) for wt in weights), overflow=jnp.zeros((), bool))


def _step(cfg: EngineConfig, c: NeuronConstants, projections, inputs: StaticInputs, state, x):
    injected, forced = x
    n, slots = cfg.n_neurons, cfg.ring_slots
    key = jax.random.fold_in(inputs.key, state.step)

    slot = state.step % slots
    syn = state.syn + state.ring[slot]
    ring = state.ring.at[slot].set(0.0)
    for i, (offset, size, cdf, weight, receptor) in enumerate(cfg.poisson):
        u = jax.random.uniform(jax.random.fold_in(key, i), (size,), dtype=jnp.float32)
        n_events = jnp.searchsorted(jnp.asarray(cdf, dtype=jnp.float32), u, side="right")
        syn = syn.at[receptor, offset:offset + size].add(n_events.astype(jnp.float32) * jnp.float32(weight))
    rec = inputs.record_ids
    trace = (state.v[rec], syn[:, rec].T, state.w[rec])

    refractory = jnp.maximum(state.refractory - 1, 0)
    clamped = refractory > 0
    I_ext = c.I_bias.at[inputs.injection_ids].add(injected)
    v, syn, w = integrate(c, state.v, syn, state.w, I_ext, cfg.dt_ms, cfg.neuron, cfg.synapse)
    v = jnp.where(clamped, c.v_reset, v)

    spiked = (v >= c.v_spike) & ~clamped
    spiked = spiked | jnp.zeros(n, bool).at[forced].set(True, mode="drop")
    v = jnp.where(spiked, c.v_reset, v)
    w = jnp.where(spiked, w + c.b, w)
    refractory = jnp.where(spiked, c.refractory_steps, refractory)

    counts = jnp.stack([jnp.sum(spiked[o:o + m], dtype=jnp.int32) for o, m in cfg.population_slices])
    spike_ids = tuple(jnp.nonzero(spiked[o:o + m], size=k, fill_value=m)[0].astype(jnp.int32)
                      for (o, m), k in zip(cfg.population_slices, cfg.max_spikes))
    overflow = state.overflow | jnp.any(counts > jnp.asarray(cfg.max_spikes, dtype=jnp.int32))
    ring_flat = ring.reshape(-1)
    for pre, proj, weights in zip(cfg.projection_pre, projections, state.weights):
        local = spike_ids[pre]
        row = jnp.minimum(local, cfg.population_slices[pre][1] - 1)
        target = proj.target[row]
        due = (state.step + proj.delay_steps[row]) % slots
        fired = (local < cfg.population_slices[pre][1])[:, None] & (target < 2 * n)
        flat = jnp.where(fired, due * (2 * n) + target, slots * 2 * n)
        ring_flat = ring_flat.at[flat].add(weights[row], mode="drop")
    ring = ring_flat.reshape(slots, len(RECEPTORS), n)

    record = (counts, spike_ids) + trace
    new_state = NetworkState(step=state.step + 1, v=v, syn=syn, w=w, refractory=refractory, ring=ring,
                             weights=state.weights, overflow=overflow)
    return new_state, record


@partial(jax.jit, static_argnames="cfg")
def run_chunk(cfg: EngineConfig, constants: NeuronConstants, projections, inputs: StaticInputs,
              state: NetworkState, injected, forced):
    """Run len(injected) steps. injected: (steps, k) pA for inputs.injection_ids; forced:
    (steps, F) int32 global ids to fire (N = none). Returns the final state and per-step
    records: spike counts per population (steps, P); spike ids per population (steps, K_p),
    local, n_p = none; v (steps, m) mV, syn (steps, m, 2), w (steps, m) pA of the recorded neurons."""
    step = partial(_step, cfg, constants, projections, inputs)
    x0 = jax.tree_util.tree_map(lambda a: a[0], (injected, forced))
    record_shapes = jax.eval_shape(step, state, x0)[1]

    def skip(state, x):  # after an overflow the chunk will be re-run: stop working
        return state, jax.tree_util.tree_map(lambda r: jnp.zeros(r.shape, r.dtype), record_shapes)

    return jax.lax.scan(lambda st, x: jax.lax.cond(st.overflow, skip, step, st, x), state, (injected, forced))


def device_projection(ell, receptor: int, post_offset: int, n_neurons: int, dt_ms: float, name: str):
    """EllProjection from host EllSynapses; delays rounded to whole steps (>= 1)."""
    delay_steps = np.rint(ell.delay_ms / dt_ms).astype(np.int64)
    if np.any(delay_steps[ell.valid] < 1):
        raise ValueError(f"projection {name!r}: delay_ms must be at least one step (dt_ms={dt_ms})")
    target = np.where(ell.valid, receptor * n_neurons + post_offset + ell.post, 2 * n_neurons)
    return EllProjection(target=jnp.asarray(target, dtype=jnp.int32),
                         delay_steps=jnp.asarray(np.where(ell.valid, delay_steps, 1), dtype=jnp.int32))
