"""BDNF as the third factor of STDP: eligibility, activity-dependent release, lasting change.

`ThreeFactorSTDP(stdp, bdnf)` turns a pair or triplet rule into a three-factor rule
(Izhikevich 2007, Cereb Cortex 17:2443): the STDP increments no longer change the weight
but a per-synapse eligibility e, which decays with tau_eligibility_ms; BDNF of the
postsynaptic neuron converts eligibility into lasting weight change,

    de/dt = -e / tau_e + STDP increments (potentiation scaled by 1 + ltp_boost g(b))
    dw/dt = g(b) e / tau_conversion,       g(b) = b / (b + 1)

with b the BDNF level in units of its half-saturation concentration. Without BDNF (b = 0)
no weight ever changes; with saturating BDNF (g -> 1) and tau_conversion = tau_e (the
default) a pair's eligibility is converted whole, so the rule gives plain STDP. The LTP
boost makes potentiation win at lower postsynaptic activity where BDNF is high (a lowered
LTP threshold; BDNF converts LTD-inducing input into LTP, Kinoshita et al. 1999, and is
needed for spike-timing LTP, Edelmann et al. 2015).

BDNF per postsynaptic neuron (`BDNF`): a calcium-like trace c jumps by 1 at every spike
of the neuron and decays with tau_calcium_ms; while it exceeds calcium_threshold the
neuron releases BDNF at release_rate_per_s (c - threshold) times release_factor
(about 0.7-0.8 for the Val66Met polymorphism: Egan et al. 2003, Cell 112:257), plus a
tonic basal_per_s. Released BDNF reaches the synapse through a chain of delay_stages
linear compartments (a gamma-distributed delay with mean delay_s) and decays with
tau_decay_s:

    dx_1/dt = release - x_1 / tau_s,   dx_k/dt = (x_(k-1) - x_k) / tau_s,
    db/dt   = x_n / tau_s - b / tau_decay,           tau_s = delay_s / n.

Defaults: BDNF secretion follows postsynaptic bursts (Edelmann et al. 2015, Neuron 86:1041;
the threshold of 2 on a 100 ms trace needs about 20 Hz of sustained firing or a burst of
three spikes), builds up over minutes and acts for tens of minutes (the kinetic model of
Solinas et al. 2019, PLoS Comput Biol 15:e1006975: delay 3 min, decay 30 min here).
`scope="population"` gates every synapse with the mean BDNF of the postsynaptic population.

Synaptic tagging and capture (tau_tag_ms set; Frey & Morris 1997, Nature 385:533; Clopath
et al. 2008, PLoS Comput Biol 4:e1000248): the eligibility is expressed at once, whatever
the BDNF, as an early-phase change h that is part of the weight; h decays with tau_tag (the
lifetime of the tag and of early LTP/LTD) and BDNF, as the plasticity-related protein
(Pang et al. 2004, Science 306:487; Lu et al. 2008, Neurobiol Learn Mem 89:312), captures
the decaying part into the late phase:

    dh/dt = e / tau_conversion - h / tau_tag
    dw/dt = e / tau_conversion - (1 - g(b)) h / tau_tag

so an early change of h_0 lasts as h_0 times the mean of g(b) over the hours after it,
weighted by exp(-t / tau_tag), which includes the BDNF that the stimulation itself releases
minutes later. With g = 1 the weight changes as under plain STDP; with b = 0 it returns to
where it was. Without tau_tag_ms (the default) the gate acts on the conversion itself, as
above (Izhikevich 2007), and the lasting change is g(b) times the eligibility.

Consolidation threshold (capture_threshold theta_c, BDNF units; 0 by default, the rule
above): capture takes the gate of the BDNF above theta_c,

    dw/dt = e / tau_conversion - (1 - g_c(b)) h / tau_tag,      g_c(b) = g(max(b - theta_c, 0)),

so BDNF below theta_c (basal BDNF, the little that spontaneous activity releases) captures
nothing and an early change returns to where it was with tau_tag: the after-effect of one
session fades (about 60 min after one iTBS or cTBS session in people: Huang et al. 2005,
Neuron 45:201) and the spontaneous changes of a sham course do not accumulate as drift.
BDNF above theta_c (the release of a strong session, or the summed releases of sessions
spaced within the tag's lifetime) consolidates a share (spaced iTBS sessions give larger and
longer effects: Nettekoven et al. 2014, J Neurosci 34:6849). Tagging and capture after Frey
& Morris 1997 (Nature 385:533) and Redondo & Morris 2011 (Nat Rev Neurosci 12:17); in
Clopath et al. 2008 protein synthesis, and hence consolidation, is triggered only above a
threshold (there, on the tagged synapses). Putting the threshold on the BDNF level is this
project's own assumption. The threshold acts on capture only: the conversion gate without
a tag and the LTP boost use g(b). With scope="population" the threshold applies to the
population's mean BDNF.

Time stepping (documented approximations, all first order in the interval over the time
constant): the calcium trace and the release are advanced every step; eligibility is
converted and decays in ticks of tick_ms (10 ms by default: short against the 1 s
eligibility, long enough that float32 weights resolve each conversion), exactly for the
exponential between ticks; the BDNF chain advances in steps of slow_step_s
(1 s) with its exact propagator for a constant release over the step (float32 cannot
resolve a 30 min decay over 0.1 ms); the tag decays and is captured in steps of
tag_step_s (60 s), exactly for the exponential with the gate at the step's end (float32
weights resolve a step's change of a 1 h decay down to h of about 1e-5 nS).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg

from ._checks import number

SCOPES = ("neuron", "population")


@dataclass(frozen=True)
class BDNF:
    """Activity-dependent BDNF release (see the module docstring for the equations).

    tau_calcium_ms: decay of the calcium-like spike trace; calcium_threshold: release starts
    above it (spikes); release_rate_per_s: BDNF units per s per unit of calcium above
    threshold; release_factor: multiplies activity-dependent release (1 normal, ~0.75
    Val66Met); basal_per_s: tonic release, BDNF units per s; delay_s, delay_stages: mean and
    number of stages of the release delay; tau_decay_s: BDNF decay; scope: "neuron" or
    "population"; slow_step_s: integration step of the delay chain. BDNF is in units of its
    half-saturation concentration (g(1) = 1/2).
    """

    tau_calcium_ms: float = 100.0
    calcium_threshold: float = 2.0
    release_rate_per_s: float = 0.01
    release_factor: float = 1.0
    basal_per_s: float = 0.0
    delay_s: float = 180.0
    delay_stages: int = 3
    tau_decay_s: float = 1800.0
    scope: str = "neuron"
    slow_step_s: float = 1.0

    def __post_init__(self):
        for name in ("tau_calcium_ms", "delay_s", "tau_decay_s", "slow_step_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"BDNF.{name} must be > 0, got {getattr(self, name)}")
        for name in ("calcium_threshold", "release_rate_per_s", "release_factor", "basal_per_s"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"BDNF.{name} must be >= 0, got {getattr(self, name)}")
        if int(self.delay_stages) != self.delay_stages or self.delay_stages < 1:
            raise ValueError(f"BDNF.delay_stages must be a positive integer, got {self.delay_stages}")
        if self.scope not in SCOPES:
            raise ValueError(f"BDNF.scope must be one of {SCOPES}, got {self.scope!r}")

    @classmethod
    def val66met(cls, release_factor: float = 0.75, **overrides) -> "BDNF":
        """BDNF of a Met carrier: activity-dependent release reduced to release_factor."""
        return cls(release_factor=release_factor, **overrides)

    def generator(self) -> np.ndarray:
        """(n + 1, n + 1) matrix A of d[x_1 .. x_n, b]/dt = A [x, b] + release e_1, per s."""
        n = int(self.delay_stages)
        tau_s = self.delay_s / n
        a = np.zeros((n + 1, n + 1))
        a[np.arange(n), np.arange(n)] = -1.0 / tau_s
        a[np.arange(1, n + 1), np.arange(n)] = 1.0 / tau_s
        a[n, n] = -1.0 / self.tau_decay_s
        return a

    def steady_state(self, release_per_s: float | None = None) -> np.ndarray:
        """[x_1 .. x_n, b] under a constant release (default: the basal release)."""
        rate = self.basal_per_s if release_per_s is None else release_per_s
        e1 = np.zeros(self.delay_stages + 1)
        e1[0] = 1.0
        return -np.linalg.solve(self.generator(), e1 * rate)

    def propagator(self, h_s: float) -> tuple[np.ndarray, np.ndarray]:
        """(P, q): state after h_s seconds is P state + q release, exact for a release rate
        (per s) constant over the interval."""
        a = self.generator()
        p = scipy.linalg.expm(a * h_s)
        e1 = np.zeros(len(a))
        e1[0] = 1.0
        return p, np.linalg.solve(a, (p - np.eye(len(a))) @ e1)


@dataclass(frozen=True)
class ThreeFactorSTDP:
    """A rule (PairSTDP, TripletSTDP or CalciumRule) whose changes are eligibility, made lasting by BDNF.

    tau_eligibility_ms: decay of the eligibility (Izhikevich 2007: 1 s); tau_conversion_ms:
    time constant of the conversion at full gate (default tau_eligibility_ms: a pair's
    eligibility is converted whole); ltp_boost: potentiation increments are scaled by
    1 + ltp_boost g(b); tick_ms: interval of the conversion (a multiple of the time step);
    tau_tag_ms: lifetime of the early phase under synaptic tagging and capture (None: no tag,
    the gate acts on the conversion); tag_step_s: interval of the tag's decay and capture;
    capture_threshold: BDNF (units of the half-saturation concentration) below which nothing
    is captured, capture gated by g(max(b - capture_threshold, 0)) (>= 0; > 0 needs tau_tag_ms).
    Weight bounds are those of the STDP rule (soft bounds weigh the increments by the
    current weight; the weight is clipped at every conversion and tag step).
    """

    stdp: object
    bdnf: BDNF = BDNF()
    tau_eligibility_ms: float = 1000.0
    tau_conversion_ms: float | None = None
    ltp_boost: float = 1.0
    tick_ms: float = 10.0
    tau_tag_ms: float | None = None
    tag_step_s: float = 60.0
    capture_threshold: float = 0.0

    def __post_init__(self):
        if not hasattr(self.stdp, "kernel") or isinstance(self.stdp, ThreeFactorSTDP):
            raise ValueError(f"ThreeFactorSTDP.stdp must be a PairSTDP, TripletSTDP or CalciumRule, "
                             f"got {self.stdp!r}")
        if not isinstance(self.bdnf, BDNF):
            raise ValueError(f"ThreeFactorSTDP.bdnf must be a BDNF, got {self.bdnf!r}")
        for name in ("tau_eligibility_ms", "tick_ms", "tag_step_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"ThreeFactorSTDP.{name} must be > 0, got {getattr(self, name)}")
        for name in ("tau_conversion_ms", "tau_tag_ms"):
            if getattr(self, name) is not None and not getattr(self, name) > 0:
                raise ValueError(f"ThreeFactorSTDP.{name} must be > 0 or None, got {getattr(self, name)}")
        for name in ("ltp_boost", "capture_threshold"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"ThreeFactorSTDP.{name} must be >= 0, got {getattr(self, name)}")
        if self.capture_threshold > 0 and self.tau_tag_ms is None:
            raise ValueError(f"ThreeFactorSTDP.capture_threshold acts on capture, which needs tau_tag_ms: "
                             f"set tau_tag_ms or leave capture_threshold at 0, got {self.capture_threshold}")

    def kernel(self) -> "ThreeFactorSTDP":
        """The rule the engine compiles: this one with the BDNF release coefficients at neutral
        values; their values reach the program as arrays (`release_rates`), so rules that
        differ only in them (the scenarios, Val66Met, the BDNF settings) share compiled code."""
        return replace(self, stdp=self.stdp.kernel(),
                       bdnf=replace(self.bdnf, release_rate_per_s=0.0, release_factor=1.0, basal_per_s=0.0))


def steps_per(interval_ms: float, dt_ms: float, what: str) -> int:
    """interval_ms as a whole number of steps of dt_ms (error otherwise)."""
    k = int(round(number(interval_ms, what) / dt_ms))
    if k < 1 or abs(k * dt_ms - interval_ms) > 1e-9 * max(interval_ms, 1.0):
        raise ValueError(f"{what} ({interval_ms} ms) must be a whole number of steps of dt_ms={dt_ms}")
    return k


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class ReleaseRates:
    """A rule's BDNF release coefficients as float32 arrays of a run (see `ThreeFactorSTDP.kernel`):
    gain, BDNF units released per step per unit of calcium above threshold (dt
    release_rate_per_s release_factor); basal_per_s, the tonic release."""

    gain: jax.Array
    basal_per_s: jax.Array


def release_rates(rule, dt_ms: float) -> ReleaseRates:
    """The ReleaseRates of `rule` at step dt_ms (zeros for a rule without BDNF), rounded to
    float32 from float64 products."""
    if not isinstance(rule, ThreeFactorSTDP):
        return ReleaseRates(gain=jnp.float32(0.0), basal_per_s=jnp.float32(0.0))
    bd = rule.bdnf
    return ReleaseRates(gain=jnp.float32(dt_ms * 1e-3 * bd.release_rate_per_s * bd.release_factor),
                        basal_per_s=jnp.float32(bd.basal_per_s))


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class BDNFState:
    """Per-projection state of the third factor: eligibility (n_pre, max_out) in weight units;
    calcium (n_post,) spikes; release (n_post,) BDNF units released since the last chain step;
    chain (n_stages + 1, n_post): delay stages and BDNF b (last row); early (n_pre, max_out)
    early-phase part of the weights under tagging and capture ((0, max_out) without a tag)."""

    eligibility: jax.Array
    calcium: jax.Array
    release: jax.Array
    chain: jax.Array
    early: jax.Array

    @property
    def bdnf(self) -> jax.Array:
        return self.chain[-1]


def fresh_bdnf_state(rule: ThreeFactorSTDP, n_pre: int, n_post: int, max_out: int) -> BDNFState:
    """No eligibility or early phase, calcium at rest, BDNF chain at the steady state of the
    basal release."""
    f32 = jnp.float32
    chain = np.repeat(rule.bdnf.steady_state()[:, None], n_post, axis=1)
    n_early = n_pre if rule.tau_tag_ms is not None else 0
    return BDNFState(eligibility=jnp.zeros((n_pre, max_out), f32), calcium=jnp.zeros(n_post, f32),
                     release=jnp.zeros(n_post, f32), chain=jnp.asarray(chain, f32),
                     early=jnp.zeros((n_early, max_out), f32))


def gate(rule: ThreeFactorSTDP, chain, threshold: float = 0.0) -> jax.Array:
    """g(max(b - threshold, 0)) per postsynaptic neuron, (n_post,): threshold 0 for the
    conversion and the LTP boost, rule.capture_threshold for capture."""
    b = jnp.maximum(chain[-1], 0.0)
    if rule.bdnf.scope == "population":
        b = jnp.broadcast_to(jnp.mean(b), b.shape)
    b = jnp.maximum(b - jnp.float32(threshold), 0.0)
    return b / (b + 1.0)


def advance(rule: ThreeFactorSTDP, dt_ms: float, state: BDNFState, post_spiked, post_of, weights,
            w_min: float, w_max: float, step, rates: ReleaseRates,
            periodic: bool = True) -> tuple[jax.Array, BDNFState]:
    """End of step `step` (int32, 0-based): calcium and release (every step), eligibility
    conversion (every tick_ms), BDNF chain (every slow_step_s), tag (every tag_step_s).
    post_spiked (n_post,) bool; post_of (n_pre, max_out) local post index per synapse (n_post
    at padding); rates: the rule's `release_rates`; periodic: False leaves the conversion, the
    chain and the tag to the engine (`convert`, `chain_step`, `tag_step` at the end of each
    interval). Returns the new weights and state."""
    f32 = jnp.float32
    bd = rule.bdnf
    calcium = state.calcium * f32(np.exp(-dt_ms / bd.tau_calcium_ms)) + post_spiked.astype(f32)
    release = state.release + rates.gain * jnp.maximum(calcium - f32(bd.calcium_threshold), 0.0)
    state = replace(state, calcium=calcium, release=release)
    if not periodic:
        return weights, state
    tick = steps_per(rule.tick_ms, dt_ms, "ThreeFactorSTDP.tick_ms")
    weights, state = jax.lax.cond((step + 1) % tick == 0, partial(convert, rule, post_of, w_min, w_max),
                                  lambda w, s: (w, s), weights, state)
    slow = steps_per(bd.slow_step_s * 1e3, dt_ms, "BDNF.slow_step_s")
    state = jax.lax.cond((step + 1) % slow == 0, partial(chain_step, rule, rates=rates), lambda s: s, state)
    if rule.tau_tag_ms is not None:
        tag = steps_per(rule.tag_step_s * 1e3, dt_ms, "ThreeFactorSTDP.tag_step_s")
        weights, state = jax.lax.cond((step + 1) % tag == 0, partial(tag_step, rule, post_of, w_min, w_max),
                                      lambda w, s: (w, s), weights, state)
    return weights, state


def convert(rule: ThreeFactorSTDP, post_of, w_min: float, w_max: float, weights, state: BDNFState):
    """One tick_ms: eligibility is converted into weight (clipped to [w_min, w_max]) through the
    gate, or under tagging and capture into the early phase whatever the gate, and decays,
    exactly for the exponential over the tick. Returns (weights, state)."""
    f32 = jnp.float32
    decay = np.exp(-rule.tick_ms / rule.tau_eligibility_ms)
    converted = f32((1.0 - decay) * rule.tau_eligibility_ms
                    / (rule.tau_conversion_ms or rule.tau_eligibility_ms)) * state.eligibility
    state = replace(state, eligibility=state.eligibility * f32(decay))
    if rule.tau_tag_ms is not None:
        new = jnp.clip(weights + converted, f32(w_min), f32(w_max))
        return new, replace(state, early=state.early + (new - weights))
    g = jnp.take(gate(rule, state.chain), post_of, mode="fill", fill_value=0.0)
    return jnp.clip(weights + g * converted, f32(w_min), f32(w_max)), state


def tag_step(rule: ThreeFactorSTDP, post_of, w_min: float, w_max: float, weights, state: BDNFState):
    """One tag_step_s: the early phase decays, exactly for the exponential over the step; the
    capture gate g_c (at the step's end) keeps its share of the decayed part in the weight
    (captured into the late phase) and the rest leaves it (clipped to [w_min, w_max]).
    Returns (weights, state)."""
    f32 = jnp.float32
    decay = np.exp(-rule.tag_step_s * 1e3 / rule.tau_tag_ms)
    g = jnp.take(gate(rule, state.chain, rule.capture_threshold), post_of, mode="fill", fill_value=0.0)
    weights = jnp.clip(weights - f32(1.0 - decay) * (1.0 - g) * state.early, f32(w_min), f32(w_max))
    return weights, replace(state, early=state.early * f32(decay))


def chain_step(rule: ThreeFactorSTDP, state: BDNFState, rates: ReleaseRates) -> BDNFState:
    """One slow_step_s of the delay chain under the release of that step and the basal release
    of `rates` (exact propagator)."""
    f32 = jnp.float32
    bd = rule.bdnf
    p, q = bd.propagator(bd.slow_step_s)
    rate = state.release / f32(bd.slow_step_s) + rates.basal_per_s
    chain = jnp.asarray(p, f32) @ state.chain + jnp.asarray(q, f32)[:, None] * rate[None, :]
    return replace(state, chain=chain, release=jnp.zeros_like(state.release))


def _excess(rule: ThreeFactorSTDP, chain: np.ndarray) -> np.ndarray:
    """b - capture_threshold per post neuron (the threshold is 0 without a tag); chain:
    (..., delay_stages + 1, n_post). Under population scope every neuron has its population's
    mean b."""
    b = np.maximum(chain[..., -1, :], 0.0)
    if rule.bdnf.scope == "population":
        b = np.broadcast_to(b.mean(axis=-1, keepdims=True), b.shape)
    return b - rule.capture_threshold


def _g_c(a: np.ndarray) -> np.ndarray:
    a = np.maximum(a, 0.0)
    return a / (a + 1.0)


def _substep_capture(a0, a1, t, step: float, tau: float) -> np.ndarray:
    """Integral of g_c(b) exp(-s / tau) ds over substeps [t, t + step] (s), b - threshold going
    from a0 to a1: trapezoidal in g_c; a substep in which b crosses the threshold is integrated
    over its part above it (b linear within it)."""
    up, down = (a0 < 0) & (a1 > 0), (a0 > 0) & (a1 < 0)
    at = step * np.where(up | down, a0, 0.0) / np.where(up | down, a0 - a1, 1.0)   # s into the substep
    crossing = np.exp(-(t + at) / tau)
    return 0.5 * (_g_c(a0) + _g_c(a1)) * (np.where(up, crossing, np.exp(-t / tau))
                                          - np.where(down, crossing, np.exp(-(t + step) / tau)))


_REST_ELEMENTS = 1 << 21   # chain values held at once when substeps are advanced together


def _captured_over(rule: ThreeFactorSTDP, chain: np.ndarray, h_s: float, horizon_s: float,
                   tau_s: float) -> tuple[np.ndarray, np.ndarray]:
    """(chain, captured): the chain ((delay_stages + 1, n_post), float64) after horizon_s
    seconds with the basal release, in substeps of h_s (the last one shorter), and per post
    neuron the sum of _substep_capture over them. Many substeps are advanced at once, with the
    powers of their exact propagator."""
    bd = rule.bdnf
    n_full = int(horizon_s // h_s)
    captured, a0 = np.zeros(chain.shape[1]), _excess(rule, chain)
    if n_full:
        p, q = bd.propagator(h_s)
        block = max(1, min(n_full, _REST_ELEMENTS // chain.size))
        powers, inputs = np.empty((block, *p.shape)), np.empty((block, len(q)))
        powers[0], inputs[0] = p, q * bd.basal_per_s
        for j in range(1, block):   # after j + 1 substeps: powers[j] @ chain + inputs[j]
            powers[j], inputs[j] = p @ powers[j - 1], p @ inputs[j - 1] + inputs[0]
        for first in range(0, n_full, block):
            k = min(block, n_full - first)
            chains = powers[:k] @ chain + inputs[:k, :, None]
            a = _excess(rule, chains)
            starts = (first + np.arange(k))[:, None] * h_s
            before = np.concatenate([a0[None], a[:-1]])
            captured += _substep_capture(before, a, starts, h_s, tau_s).sum(axis=0)
            chain, a0 = chains[-1], a[-1]
    t = n_full * h_s
    if horizon_s > t:
        p, q = bd.propagator(horizon_s - t)
        chain = p @ chain + q[:, None] * bd.basal_per_s
        a1 = _excess(rule, chain)
        captured += _substep_capture(a0, a1, t, horizon_s - t, tau_s)
    return chain, captured


def rest_state(rule: ThreeFactorSTDP, state: BDNFState, weights: np.ndarray, post_of: np.ndarray,
               w_min: float, w_max: float, duration_s: float) -> tuple[np.ndarray, BDNFState]:
    """Advance the third factor through duration_s seconds without spikes, on the host in
    float64: calcium is spent (its pending release enters the chain at once) and the chain
    follows its exact propagator with the basal release. Without a tag the eligibility decays
    while BDNF converts it, integrated in substeps of a twentieth of the fastest slow time
    constant (trapezoidal in g(b)) until it is below 1e-12 of its start, then the chain jumps
    over the rest of the interval. Under tagging and capture the eligibility is expressed
    whole at the start (its conversion takes seconds against gaps of minutes or more) and
    the early phase decays and is captured with the integral of g_c(b(t)) exp(-t / tau_tag)
    over the gap (substeps as above, up to 28 tau_tag), which is exact up to the trapezoidal
    rule in g_c (a substep in which b crosses capture_threshold is integrated over its part
    above the threshold, b linear within it, so the kink of g_c keeps the trapezoidal rule's
    order): every synapse's change over a gap has one sign, so clipping at the end is
    clipping at every instant. weights, post_of: (n_pre, max_out) ELL arrays. Returns the
    new weights (float32) and state."""
    bd = rule.bdnf
    chain = np.asarray(state.chain, np.float64).copy()
    chain[0] += np.asarray(state.release, np.float64)
    w = np.asarray(weights, np.float64).copy()
    e = np.asarray(state.eligibility, np.float64).copy()
    early = np.asarray(state.early, np.float64).copy()
    valid = post_of < chain.shape[1]
    col = np.where(valid, post_of, 0)
    scale = rule.tau_eligibility_ms / (rule.tau_conversion_ms or rule.tau_eligibility_ms)

    if rule.tau_tag_ms is None:
        tau = rule.tau_eligibility_ms * 1e-3
        horizon = min(duration_s, 28.0 * tau) if np.any(e) else 0.0
    else:
        tau = rule.tau_tag_ms * 1e-3
        expressed = np.clip(w + scale * e, w_min, w_max)
        early += expressed - w
        w, e = expressed, np.zeros_like(e)
        horizon = min(duration_s, 28.0 * tau) if np.any(early) else 0.0
    h = min(tau, bd.delay_s / bd.delay_stages, bd.tau_decay_s) / 20.0
    chain, captured = _captured_over(rule, chain, h, horizon, tau)
    if duration_s > horizon:
        p, q = bd.propagator(duration_s - horizon)
        a = _excess(rule, chain)
        chain = p @ chain + q[:, None] * bd.basal_per_s
        captured += _g_c(a) * (np.exp(-horizon / tau) - np.exp(-duration_s / tau))   # < 1e-12 of the whole
    gated = np.where(valid, captured[col], 0.0)
    left = np.exp(-duration_s / tau)
    if rule.tau_tag_ms is None:
        w = np.clip(w + gated * e * scale, w_min, w_max)
        e *= left
    else:
        w = np.clip(w - ((1.0 - left) - gated) * early, w_min, w_max)
        early *= left
    f32 = jnp.float32
    rested = BDNFState(eligibility=jnp.asarray(e, f32), calcium=jnp.zeros_like(state.calcium),
                       release=jnp.zeros_like(state.release), chain=jnp.asarray(chain, f32),
                       early=jnp.asarray(early, f32))
    return jnp.asarray(w, f32), rested
