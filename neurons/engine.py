"""The jitted chunk: `lax.scan` of one time step over a chunk of steps.

Step k covers [t_k, t_k + dt], t_k = k dt, and does, in order: add the external Poisson input
to the synaptic variables (which hold the synaptic events due at t_k, delay ring slot k mod D,
added at the end of step k - 1); sample the recorded traces (state at t_k); count down
refractoriness; integrate v, synapses and adaptation to t_k + dt (refractory neurons held at
v_reset); detect spikes (threshold at t_k + dt, or forced) and reset; a spike carries the
label t_k, as in Brian2. The indices of the neurons that spiked are gathered, per
population, into a fixed buffer of K_p (`neurons.compaction.compact`, the equivalent of
`jnp.nonzero(size=K_p)` through 32-bit words and popcounts) and their outgoing ELL rows,
for all projections of that population, scatter-added into ring slot
(k + delay) mod D, so a spike at t_k reaches its targets at exactly t_k + delay; last, slot
k + 1 mod D is added to the synaptic variables. That slot is cleared at the start of step
k + 1, before any transmission (delays are at least one step and shorter than D, so a step
never writes its own slot), and after a chunk's last step, so that the ring of a state
between chunks holds only the events due at later steps. Transmission
(EngineConfig.propagation) is "loop" on the CPU: a `fori_loop` over the actual spikes, one
ELL row each, so that the work follows the activity rather than K_p; "gather" elsewhere: one
gather and scatter of all K_p rows. Both add in the same order (spike, projection, synapse).
More than K_p spikes in a step sets `overflow`; the host then discards the chunk and
re-runs it from its start state with a larger K_p, so no spike is lost (without plastic
blocks the remaining steps of the chunk do nothing).

The randomness (Poisson input counts, drawn by inverting their CDF, and generator spikes) comes
from uniforms drawn for the whole chunk before the scan, in one vectorised kernel: counter-based
(neurons.counter_rng), variate i of step k a function of (key, k, i) only, so that chunking and
resuming do not change a run. Poisson generator populations (Population.rate_Hz) replace their
threshold crossing by an independent draw per neuron and step (probability rate dt). Plastic
projections are then updated, in projection order, from the same spike buffers (pre spikes:
their ELL rows; post spikes: their incoming synapses through the reverse index); see
neurons.plasticity for the order within a step. Transmission in step k uses the weights from
before step k's update.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from .compaction import compact
from .connectivity import RECEPTORS
from .counter_rng import step_uniforms
from .dynamics import NeuronConstants, integrate
from .plasticity import fresh_plastic_state, periodic_update, update


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class NetworkState:
    """Everything that changes during a run. step: index of the next step (int32);
    v (N,) mV; syn (2, N) pA or nS (exc, inh), the events due at `step` included; w (N,) pA;
    refractory (N,) steps left; ring (D, 2, N) events due at later steps, by step mod D;
    weights: one (n_pre, max_out) array per projection (pA or nS); overflow: a step had more
    spikes than the gather buffer; plastic: one PlasticState (traces) per plastic projection,
    in projection order."""

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
    ring_offset (n_pre, max_out) int32, delay_steps * 2N + target (the entry's position in the
    flat ring relative to the current slot), _PADDING at padding; plastic: PlasticArrays of a
    plastic projection, else None."""

    target: jax.Array
    delay_steps: jax.Array
    ring_offset: jax.Array
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
    post population index, rule kernel) per plastic projection; propagation: "loop" (spike by
    spike, for the CPU) or "gather" (all K buffered spikes at once), see the module docstring;
    blocks: () or the nested block lengths (steps, each dividing the next) at whose ends the
    rules' periodic updates run, see `run_chunk`.
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
    propagation: str = "gather"
    blocks: tuple = ()


_PADDING = 1 << 30  # ring offset of ELL padding: beyond the ring even after wrapping


def poisson_cdf(mean_count: float) -> tuple:
    """CDF P(X <= k) of a Poisson count with mean mean_count, k = 0, 1, ... while it is below 1
    in float32: inverted with a float32 uniform u < 1 (the count is the number of entries <= u),
    the counts are exact up to its resolution, and an entry that rounds to 1 could never count."""
    kmax = int(np.ceil(mean_count + 14.0 * np.sqrt(mean_count) + 14.0))
    k = np.arange(kmax + 1)
    log_pmf = k * np.log(max(mean_count, 1e-300)) - mean_count - np.cumsum(np.log(np.maximum(k, 1)))
    cdf = np.minimum(np.cumsum(np.exp(log_pmf)), 1.0)
    return tuple(float(x) for x in cdf[cdf.astype(np.float32) < np.float32(1.0)])


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


def _step(cfg: EngineConfig, c: NeuronConstants, projections, inputs: StaticInputs, fixed: tuple, state, x):
    injected, forced, u = x
    n, slots = cfg.n_neurons, cfg.ring_slots
    uniforms = _split_uniforms(cfg, u)

    slot = state.step % slots
    syn = state.syn                          # holds the events due now (added a step ago) ...
    ring = _clear_slot(state.ring, slot)     # ... which their slot held until now
    for (offset, size, cdf, weight, receptor), u in zip(cfg.poisson, uniforms):
        # the count is the number of CDF entries <= u (searchsorted, side="right", in one fusion)
        n_events = jnp.sum(jnp.asarray(cdf, dtype=jnp.float32)[None, :] <= u[:, None], axis=1)
        syn = syn.at[receptor, offset:offset + size].add(n_events.astype(jnp.float32) * jnp.float32(weight))
    rec = inputs.record_ids
    trace = (state.v[rec], syn[:, rec].T, state.w[rec])

    refractory = jnp.maximum(state.refractory - 1, 0)
    clamped = refractory > 0
    I_ext = c.I_bias.at[inputs.injection_ids].add(injected)
    v, syn, w = integrate(c, state.v, syn, state.w, I_ext, cfg.dt_ms, cfg.neuron, cfg.synapse)
    v = jnp.where(clamped, c.v_reset, v)

    spiked = (v >= c.v_spike) & ~clamped
    for (offset, size, p), u in zip(cfg.generators, uniforms[len(cfg.poisson):]):
        spiked = spiked.at[offset:offset + size].set(u < jnp.float32(p))
    spiked = spiked | jnp.zeros(n, bool).at[forced].set(True, mode="drop")
    v = jnp.where(spiked, c.v_reset, v)
    w = jnp.where(spiked, w + c.b, w)
    refractory = jnp.where(spiked, c.refractory_steps, refractory)

    spike_ids, counts = zip(*(compact(spiked[o:o + m], k)
                              for (o, m), k in zip(cfg.population_slices, cfg.max_spikes)))
    counts = jnp.stack(counts)
    overflow = state.overflow | jnp.any(counts > jnp.asarray(cfg.max_spikes, dtype=jnp.int32))
    ring_flat, base = ring.reshape(-1), slot * (2 * n)
    for pre, (_, size) in enumerate(cfg.population_slices):
        mine = [i for i, p in enumerate(cfg.projection_pre) if p == pre]
        if not mine:
            continue
        offsets = tuple(projections[i].ring_offset for i in mine)
        # the static weights, and the plastic ones from before this step's plasticity update
        ell_weights = tuple(state.weights[i] if fixed[i] is None else fixed[i] for i in mine)
        if cfg.propagation == "loop":
            static = tuple(fixed[i] is not None for i in mine)
            ring_flat = _transmit_loop(ring_flat, offsets, ell_weights, static, spike_ids[pre],
                                       jnp.minimum(counts[pre], cfg.max_spikes[pre]), base)
        else:
            ring_flat = _transmit_gather(ring_flat, offsets, ell_weights, spike_ids[pre], size, base)
    ring = ring_flat.reshape(slots, len(RECEPTORS), n)
    # the events due at the next step join the synaptic variables now; their slot is cleared at
    # the start of the next step: a clear right after this read made XLA copy the ring every step
    syn = syn + ring[(state.step + 1) % slots]

    # each population's spikes as a mask: in a chunk that did not overflow, the buffered ids exactly
    hit = [spiked[o:o + m] for o, m in cfg.population_slices]
    weights, plastic = list(state.weights), []
    for (index, post, rule), traces in zip(cfg.plasticity, state.plastic):
        pre = cfg.projection_pre[index]
        weights[index], traces = update(rule, cfg.dt_ms, projections[index].plastic, weights[index], traces,
                                        spike_ids[pre], hit[pre], spike_ids[post], hit[post], state.step,
                                        periodic=not cfg.blocks)
        plastic.append(traces)

    # the step's spike counts and ids in one array: one write into the chunk's records, not 1 + P
    # (the barrier keeps XLA from splitting the counts' stack into P slices of their own)
    record = (jnp.concatenate((jax.lax.optimization_barrier(counts),) + spike_ids),) + trace
    new_state = NetworkState(step=state.step + 1, v=v, syn=syn, w=w, refractory=refractory, ring=ring,
                             weights=tuple(weights), overflow=overflow, plastic=tuple(plastic))
    return new_state, record


def _uniform_count(cfg: EngineConfig) -> int:
    """Uniform variates per step: one per neuron of each Poisson input and generator population."""
    return sum(size for _, size, *_ in cfg.poisson) + sum(size for _, size, _ in cfg.generators)


def _split_uniforms(cfg: EngineConfig, u) -> list:
    """The step's variates u (_uniform_count,) split: one array per Poisson input (its
    population's size), then one per generator population."""
    sizes = [size for _, size, *_ in cfg.poisson] + [size for _, size, _ in cfg.generators]
    return jnp.split(u, np.cumsum(sizes)[:-1].tolist()) if sizes else []


def _ring_index(offsets, base, ring_size: int):
    """Flat ring positions of ELL entries: base (the current slot) + ring_offset, wrapped
    once; padding stays beyond the ring (dropped by the scatter)."""
    index = base + offsets
    return jnp.where(index >= ring_size, index - ring_size, index)


def _transmit_gather(ring_flat, offsets: tuple, weights: tuple, local, n_pre: int, base):
    """Scatter-add the ELL rows (all projections of one pre population) of the K buffered
    spikes, padding included (dropped), into the flat ring: one gather and one scatter of
    K * sum(max_out) entries."""
    row = jnp.minimum(local, n_pre - 1)
    fired = (local < n_pre)[:, None]
    index = jnp.concatenate([jnp.where(fired, o[row], _PADDING) for o in offsets], axis=1)
    values = jnp.concatenate([w[row] for w in weights], axis=1)
    return ring_flat.at[_ring_index(index, base, ring_flat.shape[0])].add(values, mode="drop")


def _transmit_loop(ring_flat, offsets: tuple, weights: tuple, static: tuple, local, count, base):
    """The same as _transmit_gather, one spike at a time (`fori_loop` over the `count` actual
    spikes, ELL rows read with dynamic slices): work in proportion to the spikes, not to K,
    and the same order of additions. static: per projection, whether its weights are fixed
    during the chunk (read in place); a plastic projection's K buffered weight rows are
    gathered before the loop: a loop that read its weights would make XLA copy them every
    step (a loop operand cannot be written in place afterwards), and plasticity writes them."""
    rows = tuple(w if s else w[jnp.minimum(local, w.shape[0] - 1)] for w, s in zip(weights, static))

    def one(i, ring_flat):
        row = local[i]
        for o, w, s in zip(offsets, rows, static):
            index = _ring_index(jax.lax.dynamic_index_in_dim(o, row, keepdims=False), base, size)
            values = jax.lax.dynamic_index_in_dim(w, row if s else i, keepdims=False)
            ring_flat = ring_flat.at[index].add(values, mode="drop")
        return ring_flat

    size = ring_flat.shape[0]

    return jax.lax.fori_loop(0, count, one, ring_flat)


def _periodic(cfg: EngineConfig, projections, state: NetworkState, interval: int, top: bool) -> NetworkState:
    """The plastic projections' periodic updates at the end of a block of `interval` steps."""
    weights, plastic = list(state.weights), []
    for (index, post, rule), traces in zip(cfg.plasticity, state.plastic):
        weights[index], traces = periodic_update(rule, cfg.dt_ms, projections[index].plastic, weights[index],
                                                 traces, cfg.population_slices[post][1], state.step - 1,
                                                 interval, top)
        plastic.append(traces)
    return replace(state, weights=tuple(weights), plastic=tuple(plastic))


def block_lengths(rule_periods, start_step: int, n_steps: int) -> tuple:
    """Nested block lengths for a chunk of n_steps from start_step, given the periods (steps)
    of the rules' periodic updates: the periods that divide both, ascending, if each divides
    the next and every other period is a multiple of the largest; () otherwise (the updates
    then run under a condition in every step)."""
    periods = sorted(set(rule_periods))
    blocks = tuple(p for p in periods if start_step % p == 0 and n_steps % p == 0)
    if not blocks or any(b % a for a, b in zip(blocks, blocks[1:])) \
            or any(p not in blocks and p % blocks[-1] for p in periods):
        return ()
    return blocks


@partial(jax.jit, static_argnames="cfg")
def run_chunk(cfg: EngineConfig, constants: NeuronConstants, projections, inputs: StaticInputs,
              state: NetworkState, injected, forced):
    """Run len(injected) steps. injected: (steps, k) pA for inputs.injection_ids; forced:
    (steps, F) int32 global ids to fire (N = none). Returns the final state and per-step
    records: spike counts per population (steps, P); spike ids per population (steps, K_p),
    local, n_p = none; v (steps, m) mV, syn (steps, m, 2), w (steps, m) pA of the recorded neurons.

    With cfg.blocks (b_1 | b_2 | ...) the steps run as nested scans of blocks, and the plastic
    rules' updates of period b_i run, unconditionally, after each block of b_i steps (longer
    periods after the largest block, under their condition): the same operations in the same
    order as a condition in every step, without the copy of the weights that XLA makes for the
    branch that does nothing. The chunk must then start at a multiple of the largest block."""
    # static weights are constants of the chunk, not carried from step to step (the transmission
    # reads them in place); fixed: per projection its static weights, or None if plastic
    plastic = {index for index, _, _ in cfg.plasticity}
    fixed = tuple(None if i in plastic else w for i, w in enumerate(state.weights))
    state = replace(state, weights=tuple(w if i in plastic else None for i, w in enumerate(state.weights)))
    step = partial(_step, cfg, constants, projections, inputs, fixed)
    # the chunk's random numbers in one vectorised kernel: counter-based, so step k's variates
    # depend only on (key, k) and a run continued from a state draws what an uninterrupted one would
    steps = state.step + jnp.arange(injected.shape[0], dtype=jnp.int32)
    variates = jnp.arange(_uniform_count(cfg), dtype=jnp.int32)
    uniforms = step_uniforms(inputs.key, steps[:, None], variates[None, :])
    xs = (injected, forced, uniforms)
    x0 = jax.tree_util.tree_map(lambda a: a[0], xs)
    record_shapes = jax.eval_shape(step, state, x0)[1]

    def skip(state, x):  # after an overflow the chunk will be re-run: stop working
        return state, jax.tree_util.tree_map(lambda r: jnp.zeros(r.shape, r.dtype), record_shapes)

    def guarded(st, x):
        return jax.lax.cond(st.overflow, skip, step, st, x)

    # Within blocks every step runs, also after an overflow (the host discards the chunk and
    # re-runs it): there XLA put the skip branch's copy of the largest carried arrays (a
    # three-factor rule's eligibility) into the step branch, every step (measured: BDNF-gated
    # COBA-4k 1.6x slower). In a flat scan the guard costs nothing and small networks run up
    # to 2x faster with it (Song et al. 2000 on one core).
    def block(level: int):
        """scan over one block of cfg.blocks[level] steps, then that block's periodic updates."""
        def run(st, xs):
            if level == 0:
                st, records = jax.lax.scan(step, st, xs)
            else:
                st, records = _scan_blocks(block(level - 1), st, xs, cfg.blocks[level - 1])
            return _periodic(cfg, projections, st, cfg.blocks[level], level == len(cfg.blocks) - 1), records
        return run

    if not cfg.blocks:
        state, records = jax.lax.scan(guarded, state, xs)
    else:
        state, records = _scan_blocks(block(len(cfg.blocks) - 1), state, xs, cfg.blocks[-1])
    weights = tuple(f if w is None else w for w, f in zip(state.weights, fixed))
    packed, *trace = records
    bounds = np.cumsum((len(cfg.max_spikes),) + cfg.max_spikes).tolist()
    spike_ids = tuple(packed[:, a:b] for a, b in zip(bounds[:-1], bounds[1:]))
    records = (packed[:, :bounds[0]], spike_ids, *trace)
    return replace(state, weights=weights, ring=_clear_slot(state.ring, state.step % cfg.ring_slots)), records


def _clear_slot(ring, slot):
    """The ring with slot `slot` at zero (in place; an `.at[slot].set` would read the old slot
    for its bounds check, and XLA then copies the ring)."""
    return jax.lax.dynamic_update_index_in_dim(ring, jnp.zeros(ring.shape[1:], ring.dtype), slot, 0)


def _scan_blocks(body, state, xs, length: int):
    """scan `body` over consecutive blocks of `length` steps of xs; records back to (steps, ...)."""
    split = jax.tree_util.tree_map(lambda a: a.reshape((a.shape[0] // length, length) + a.shape[1:]), xs)
    state, records = jax.lax.scan(body, state, split)
    merge = lambda r: r.reshape((r.shape[0] * r.shape[1],) + r.shape[2:])
    return state, jax.tree_util.tree_map(merge, records)


def device_projection(ell, receptor: int, post_offset: int, n_neurons: int, dt_ms: float, name: str,
                      plastic=None):
    """EllProjection from host EllSynapses; delays rounded to whole steps (>= 1); plastic:
    PlasticArrays of a plastic projection."""
    delay_steps = np.rint(ell.delay_ms / dt_ms).astype(np.int64)
    if np.any(delay_steps[ell.valid] < 1):
        raise ValueError(f"projection {name!r}: delay_ms must be at least one step (dt_ms={dt_ms})")
    target = np.where(ell.valid, receptor * n_neurons + post_offset + ell.post, 2 * n_neurons)
    delay_steps = np.where(ell.valid, delay_steps, 1)
    ring_offset = np.where(ell.valid, delay_steps * 2 * n_neurons + target, _PADDING)
    if np.any(ring_offset[ell.valid] >= _PADDING // 2):
        raise ValueError(f"projection {name!r}: network too large for int32 ring indices")
    return EllProjection(target=jnp.asarray(target, dtype=jnp.int32),
                         delay_steps=jnp.asarray(delay_steps, dtype=jnp.int32),
                         ring_offset=jnp.asarray(ring_offset, dtype=jnp.int32), plastic=plastic)
