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

Poisson generator populations (Population.rate_Hz) replace their threshold crossing by an
independent draw per neuron and step (probability rate dt). Plastic projections are then
updated, in projection order, from the same spike buffers (pre spikes: their ELL rows; post
spikes: their incoming synapses through the reverse index); see neurons.plasticity for the
order within a step. Transmission in step k uses the weights from before step k's update.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from .connectivity import RECEPTORS
from .dynamics import NeuronConstants, integrate
from .plasticity import fresh_plastic_state, update


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class NetworkState:
    """Everything that changes during a run. step: index of the next step (int32);
    v (N,) mV; syn (2, N) pA or nS (exc, inh); w (N,) pA; refractory (N,) steps left;
    ring (D, 2, N) events due per future step; weights: one (n_pre, max_out) array per
    projection (pA or nS); overflow: a step had more spikes than the gather buffer;
    plastic: one PlasticState (traces) per plastic projection, in projection order."""

    step: jax.Array
    v: jax.Array
    syn: jax.Array
    w: jax.Array
    refractory: jax.Array
    ring: jax.Array
    weights: tuple
    overflow: jax.Array
    plastic: tuple = ()


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class EllProjection:
    """Device arrays of one projection: target (n_pre, max_out) int32, flat index
    receptor * N + global post index, N * 2 at padding; delay_steps (n_pre, max_out) int32;
    plastic: PlasticArrays of a plastic projection, else None."""

    target: jax.Array
    delay_steps: jax.Array
    plastic: object = None


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
    are drawn by inverting the CDF, see `poisson_cdf`); generators: (offset, n, spike
    probability per step) per Poisson generator population; plasticity: (projection index,
    post population index, rule kernel) per plastic projection.
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
    generators: tuple = ()
    plasticity: tuple = ()


_GENERATOR_STREAM = 1 << 20  # fold_in offset of the generator draws (the Poisson inputs use 0, 1, ...)


def poisson_cdf(mean_count: float) -> tuple:
    """CDF P(X <= k) of a Poisson count with mean mean_count, k = 0 ... kmax far in the tail;
    inverted with a float32 uniform, the counts are exact up to its 2**-24 resolution."""
    kmax = int(np.ceil(mean_count + 14.0 * np.sqrt(mean_count) + 14.0))
    k = np.arange(kmax + 1)
    log_pmf = k * np.log(max(mean_count, 1e-300)) - mean_count - np.cumsum(np.log(np.maximum(k, 1)))
    return tuple(float(x) for x in np.minimum(np.cumsum(np.exp(log_pmf)), 1.0))


def fresh_state(v_init, weights, ring_slots: int, plastic=()) -> NetworkState:
    """State at step 0: v = v_init (mV), everything else at rest, no events pending;
    plastic: (rule, n_pre, n_post, max_out) per plastic projection (traces at zero)."""
    n = v_init.shape[0]
    f32 = jnp.float32
    return NetworkState(
        step=jnp.zeros((), jnp.int32), v=jnp.asarray(v_init, dtype=f32), syn=jnp.zeros((2, n), f32),
        w=jnp.zeros(n, f32), refractory=jnp.zeros(n, jnp.int32),
        ring=jnp.zeros((ring_slots, len(RECEPTORS), n), f32),
        weights=tuple(jnp.asarray(wt, dtype=f32) for wt in weights), overflow=jnp.zeros((), bool),
        plastic=tuple(fresh_plastic_state(*spec) for spec in plastic))


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
    for i, (offset, size, p) in enumerate(cfg.generators):
        u = jax.random.uniform(jax.random.fold_in(key, _GENERATOR_STREAM + i), (size,), dtype=jnp.float32)
        spiked = spiked.at[offset:offset + size].set(u < jnp.float32(p))
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

    weights, plastic = list(state.weights), []
    for (index, post, rule), traces in zip(cfg.plasticity, state.plastic):
        pre = cfg.projection_pre[index]
        weights[index], traces = update(rule, cfg.dt_ms, projections[index].plastic, weights[index], traces,
                                        spike_ids[pre], cfg.population_slices[pre][1], spike_ids[post],
                                        cfg.population_slices[post][1], state.step)
        plastic.append(traces)

    record = (counts, spike_ids) + trace
    new_state = NetworkState(step=state.step + 1, v=v, syn=syn, w=w, refractory=refractory, ring=ring,
                             weights=tuple(weights), overflow=overflow, plastic=tuple(plastic))
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


def device_projection(ell, receptor: int, post_offset: int, n_neurons: int, dt_ms: float, name: str,
                      plastic=None):
    """EllProjection from host EllSynapses; delays rounded to whole steps (>= 1); plastic:
    PlasticArrays of a plastic projection."""
    delay_steps = np.rint(ell.delay_ms / dt_ms).astype(np.int64)
    if np.any(delay_steps[ell.valid] < 1):
        raise ValueError(f"projection {name!r}: delay_ms must be at least one step (dt_ms={dt_ms})")
    target = np.where(ell.valid, receptor * n_neurons + post_offset + ell.post, 2 * n_neurons)
    return EllProjection(target=jnp.asarray(target, dtype=jnp.int32),
                         delay_steps=jnp.asarray(np.where(ell.valid, delay_steps, 1), dtype=jnp.int32),
                         plastic=plastic)
