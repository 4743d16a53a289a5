"""Spike-timing-dependent plasticity of sparse projections (pure, jittable kernels).

A plastic projection carries a rule (`PairSTDP` or `TripletSTDP`, static and hashable) and,
in the NetworkState, float32 traces: two per pre neuron (r1, r2) and two per post neuron
(o1, o2), following Pfister & Gerstner (2006):

    pre spike:   w <- w - o1 (A2_minus + A3_minus r2(t-)),   then r1, r2 jump
    post spike:  w <- w + r1 (A2_plus  + A3_plus  o2(t-)),   then o1, o2 jump

r1, r2, o1, o2 decay with tau_plus, tau_x, tau_minus, tau_y. "All-to-all" interaction adds 1
at a spike; "nearest" sets the trace to 1 (each spike then pairs only with the nearest spike
of the other side). Pair STDP is the triplet rule with A3 = 0: a single pair with
delta t = t_post - t_pre changes the weight by A_plus exp(-delta t / tau_plus) (delta t >= 0)
or -A_minus exp(delta t / tau_minus) (delta t < 0). A are in weight units (pA or nS).

Bounds: "hard" clips the weight to [w_min, w_max] after every update; "soft" scales
potentiation by (w_max - w) / (w_max - w_min) and depression by (w - w_min) / (w_max - w_min)
(multiplicative STDP; the weight stays in the bounds by construction, and is clipped too).

Order within a step (after the neurons' spikes of step k, labelled t_k, are known and the
pre spikes have been transmitted with the weights from before this step's update):
1. all traces decay by exp(-dt / tau);
2. pre spikes of step k: depression with the post traces of before this step's post spikes,
   then the pre traces jump;
3. post spikes of step k: potentiation with the pre traces including this step's pre spikes
   (a pre and a post spike in the same step count as delta t = 0, potentiation), then the
   post traces jump.
Pre spikes reach their ELL rows through the engine's spike-index buffer; post spikes reach
their incoming synapses through the reverse index, a padded (n_post, max_in) array of flat
positions into the (n_pre * max_out) weight array. Both buffers are the engine's per-step
spike buffers, under its overflow/re-run rule, so no spike escapes the plasticity update.
Timing is spike time only: synaptic delays are not taken into account by the rule.

A `ThreeFactorSTDP` rule (neurons.bdnf) sends the same increments to a per-synapse
eligibility instead of the weight; BDNF converts it into lasting change at the end of the
step (after step 3 above).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from ._checks import number
from .bdnf import (BDNFState, ReleaseRates, ThreeFactorSTDP, advance, chain_step, convert, fresh_bdnf_state,
                   gate, release_rates, steps_per, tag_step)
from .bounds import add_bounded, check_bounds
from .calcium import CalciumRates, CalciumRule, calcium_change, calcium_rates, calcium_step

INTERACTIONS = ("all", "nearest")


def _check_common(rule, name):
    check_bounds(rule, name)
    if rule.interaction not in INTERACTIONS:
        raise ValueError(f"{name}.interaction must be one of {INTERACTIONS}, got {rule.interaction!r}")


@dataclass(frozen=True)
class PairSTDP:
    """Pair-based trace STDP (Song, Miller & Abbott 2000; Morrison et al. 2008).

    A_plus, A_minus: potentiation / depression amplitudes in weight units (pA or nS), both
    >= 0 (depression is subtracted); tau_plus_ms, tau_minus_ms: widths of the causal and
    acausal windows; w_min, w_max: bounds (weight units); bounds: "hard" or "soft";
    interaction: "all" (all-to-all, traces add up) or "nearest" (traces reset to 1).
    """

    A_plus: float
    A_minus: float
    tau_plus_ms: float = 20.0
    tau_minus_ms: float = 20.0
    w_min: float = 0.0
    w_max: float = 1.0
    bounds: str = "hard"
    interaction: str = "all"

    def __post_init__(self):
        for name in ("A_plus", "A_minus"):
            number(getattr(self, name), f"PairSTDP.{name}")
        for name in ("tau_plus_ms", "tau_minus_ms"):
            number(getattr(self, name), f"PairSTDP.{name}", 0.0, above=True)
        _check_common(self, "PairSTDP")

    def kernel(self) -> "TripletSTDP":
        """The equivalent TripletSTDP (triplet amplitudes 0) that the engine runs."""
        return TripletSTDP(A2_plus=self.A_plus, A3_plus=0.0, A2_minus=self.A_minus, A3_minus=0.0,
                           tau_plus_ms=self.tau_plus_ms, tau_minus_ms=self.tau_minus_ms, tau_x_ms=1.0,
                           tau_y_ms=1.0, w_min=self.w_min, w_max=self.w_max, bounds=self.bounds,
                           interaction=self.interaction)


@dataclass(frozen=True)
class TripletSTDP:
    """Triplet STDP (Pfister & Gerstner 2006, J Neurosci 26:9673, equations 3-4).

    A2_plus, A3_plus, A2_minus, A3_minus: amplitudes in weight units; tau_plus_ms (r1),
    tau_minus_ms (o1), tau_x_ms (r2), tau_y_ms (o2); bounds and interaction as in PairSTDP.
    The published fits (amplitudes relative to the weight scale) are available through
    `TripletSTDP.published(name, scale)`.
    """

    A2_plus: float
    A3_plus: float
    A2_minus: float
    A3_minus: float
    tau_plus_ms: float = 16.8
    tau_minus_ms: float = 33.7
    tau_x_ms: float = 101.0
    tau_y_ms: float = 125.0
    w_min: float = 0.0
    w_max: float = 1.0
    bounds: str = "hard"
    interaction: str = "all"

    def __post_init__(self):
        for name in ("A2_plus", "A3_plus", "A2_minus", "A3_minus"):
            number(getattr(self, name), f"TripletSTDP.{name}")
        for name in ("tau_plus_ms", "tau_minus_ms", "tau_x_ms", "tau_y_ms"):
            number(getattr(self, name), f"TripletSTDP.{name}", 0.0, above=True)
        _check_common(self, "TripletSTDP")

    def kernel(self) -> "TripletSTDP":
        """The rule the engine runs: this one."""
        return self

    @classmethod
    def published(cls, name: str, scale: float = 1.0, **overrides) -> "TripletSTDP":
        """A parameter set of Pfister & Gerstner (2006): Table 3 (visual cortex, fits to
        Sjöström et al. 2001) and Table 4 (hippocampal culture, fits to Wang et al. 2005);
        tau_plus 16.8 ms and tau_minus 33.7 ms throughout; amplitudes multiplied by `scale`
        (weight units):

        ============================== ====== ====== ======= ======= ======= =======
        name                           tau_x  tau_y  A2_plus A3_plus A2_minus A3_minus
        ============================== ====== ====== ======= ======= ======= =======
        visual_all_to_all              (101)  125    5e-10   6.2e-3  7e-3    2.3e-4
        visual_nearest                 714    40     8.8e-11 5.3e-2  6.6e-3  3.1e-3
        visual_minimal_all_to_all      --     114    0       6.5e-3  7.1e-3  0
        hippocampal_all_to_all         946    27     6.1e-3  6.7e-3  1.6e-3  1.4e-3
        hippocampal_nearest            (575)  47     4.6e-3  9.1e-3  3e-3    7.5e-9
        hippocampal_minimal_all_to_all --     40     5.3e-3  8e-3    3.5e-3  0
        ============================== ====== ====== ======= ======= ======= =======

        Times in ms; parentheses: the fit is insensitive to that value; "--": no effect
        (A3_minus = 0), set to 101 ms. "nearest" sets use interaction="nearest" (the
        nearest-spike minimal models are not included). overrides: any other field (w_max, ...).
        """
        if name not in _PUBLISHED:
            raise ValueError(f"TripletSTDP.published: unknown set {name!r}; known: {sorted(_PUBLISHED)}")
        tau_x, tau_y, a2p, a3p, a2m, a3m = _PUBLISHED[name]
        kw = dict(A2_plus=a2p * scale, A3_plus=a3p * scale, A2_minus=a2m * scale, A3_minus=a3m * scale,
                  tau_x_ms=tau_x, tau_y_ms=tau_y, interaction="nearest" if "nearest" in name else "all")
        kw.update(overrides)
        return cls(**kw)


_PUBLISHED = {
    "visual_all_to_all": (101.0, 125.0, 5e-10, 6.2e-3, 7e-3, 2.3e-4),
    "visual_nearest": (714.0, 40.0, 8.8e-11, 5.3e-2, 6.6e-3, 3.1e-3),
    "hippocampal_all_to_all": (946.0, 27.0, 6.1e-3, 6.7e-3, 1.6e-3, 1.4e-3),
    "hippocampal_nearest": (575.0, 47.0, 4.6e-3, 9.1e-3, 3e-3, 7.5e-9),
    "visual_minimal_all_to_all": (101.0, 114.0, 0.0, 6.5e-3, 7.1e-3, 0.0),
    "hippocampal_minimal_all_to_all": (101.0, 40.0, 5.3e-3, 8e-3, 3.5e-3, 0.0),
}


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class PlasticState:
    """Traces of one plastic projection: pre (2, n_pre) = (r1, r2), post (2, n_post) = (o1, o2)
    (a CalciumRule: pre (3, n_pre), see neurons.calcium);
    third: BDNFState of a three-factor rule, else None."""

    pre: jax.Array
    post: jax.Array
    third: BDNFState | None = None


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class PlasticArrays:
    """Device arrays of one plastic projection: post (n_pre, max_out) int32 local post index
    per ELL entry (n_post at padding); reverse (n_post, max_in) int32 flat ELL positions of the
    incoming synapses of each post neuron (n_pre * max_out at padding); rates: the rule's BDNF
    ReleaseRates (zeros without BDNF); calcium: its CalciumRates (zeros without a CalciumRule)."""

    post: jax.Array
    reverse: jax.Array
    rates: ReleaseRates
    calcium: CalciumRates


def fresh_plastic_state(rule, n_pre: int, n_post: int, max_out: int) -> PlasticState:
    """Traces at zero (and the third factor's rest state) for `rule` on an (n_pre, max_out) ELL."""
    three = isinstance(rule, ThreeFactorSTDP)
    third = fresh_bdnf_state(rule, n_pre, n_post, max_out) if three else None
    rows = 3 if isinstance(rule.stdp if three else rule, CalciumRule) else 2
    return PlasticState(pre=jnp.zeros((rows, n_pre), jnp.float32), post=jnp.zeros((2, n_post), jnp.float32),
                        third=third)


def device_arrays(proj, dt_ms: float) -> PlasticArrays:
    ell = proj.ell
    return PlasticArrays(post=jnp.asarray(ell.post, dtype=jnp.int32),
                         reverse=jnp.asarray(proj.reverse_index, dtype=jnp.int32),
                         rates=release_rates(proj.plasticity, dt_ms), calcium=calcium_rates(proj.plasticity))


def _jump(trace, hit, nearest: bool):
    return jnp.where(hit, 1.0, trace) if nearest else trace + hit.astype(trace.dtype)


def update(rule, dt_ms: float, arrays: PlasticArrays, weights, traces: PlasticState,
           pre_ids, pre_hit, post_ids, post_hit, step, periodic: bool = True):
    """One step of the rule (see the module docstring for the order). rule: TripletSTDP kernel
    or ThreeFactorSTDP; weights (n_pre, max_out); pre_ids (K_pre,), post_ids (K_post,): local
    ids of this step's spikes, ascending, padded with n_pre resp. n_post; pre_hit (n_pre,),
    post_hit (n_post,): the same spikes as masks (bool); step: index of this
    step (int32); periodic: do the updates that come every few steps (`periods`) here, each
    under the condition that this step ends its interval (False: the caller runs
    `periodic_update` at the end of each interval instead). Returns the new weights and traces."""
    f32 = jnp.float32
    three = rule if isinstance(rule, ThreeFactorSTDP) else None
    stdp = rule.stdp.kernel() if three else rule
    # the increments go to the weights, or to the eligibility of a three-factor rule
    eligibility = three is not None
    target = traces.third.eligibility if eligibility else weights
    boost = 1.0 + f32(three.ltp_boost) * gate(three, traces.third.chain) if three else None
    n_pre, n_post = pre_hit.shape[0], post_hit.shape[0]
    if isinstance(stdp, CalciumRule):
        target, pre_tr, post_tr = calcium_step(stdp, dt_ms, arrays.post, weights, target, traces.pre,
                                               traces.post, pre_hit, post_hit, n_post, step, boost,
                                               eligibility, arrays.calcium, periodic)
        return _finish(three, dt_ms, arrays, weights, target, pre_tr, post_tr, post_hit, step, traces.third,
                       periodic)
    nearest = stdp.interaction == "nearest"
    decay_pre = jnp.asarray(np.exp(-dt_ms / np.array([[stdp.tau_plus_ms], [stdp.tau_x_ms]])), f32)
    decay_post = jnp.asarray(np.exp(-dt_ms / np.array([[stdp.tau_minus_ms], [stdp.tau_y_ms]])), f32)
    pre_tr = traces.pre * decay_pre
    post_tr = traces.post * decay_post
    max_out = weights.shape[1]

    # pre spikes: depression of their ELL rows with the post traces of before this step's post spikes
    def depress(target):
        row = jnp.minimum(pre_ids, n_pre - 1)
        post_of = arrays.post[row]                                     # (K, max_out)
        o1 = jnp.take(post_tr[0], post_of, mode="fill", fill_value=0.0)
        dw = o1 * (f32(stdp.A2_minus) + f32(stdp.A3_minus) * pre_tr[1][row][:, None])
        rows = target[row]
        new_rows = add_bounded(stdp, weights[row] if eligibility else rows, rows, f32(0.0), dw, eligibility)
        new_rows = jnp.where(post_of < n_post, new_rows, rows)
        return target.at[pre_ids].set(new_rows, mode="drop")

    # post spikes: potentiation of their incoming synapses with the pre traces of this step
    def potentiate(target, pre_tr):
        col = jnp.minimum(post_ids, n_post - 1)
        flat = jnp.where((post_ids < n_post)[:, None], arrays.reverse[col], n_pre * max_out)  # (K, max_in)
        r1 = jnp.take(pre_tr[0], flat // max_out, mode="fill", fill_value=0.0)
        dw = r1 * (f32(stdp.A2_plus) + f32(stdp.A3_plus) * post_tr[1][col][:, None])
        if three:
            dw = dw * boost[col][:, None]
        take = lambda a: jnp.take(a.reshape(-1), flat, mode="fill", fill_value=0.0)
        current = take(target)
        new = add_bounded(stdp, take(weights) if eligibility else current, current, dw, f32(0.0), eligibility)
        return target.reshape(-1).at[flat].set(new, mode="drop").reshape(target.shape)

    # both run every step, on the K buffered spikes (padding is dropped): under a lax.cond
    # XLA would copy the weights each step to keep them for the branch that does nothing
    target = depress(target)
    pre_tr = _jump(pre_tr, pre_hit[None, :], nearest)          # both rows in one elementwise operation
    target = potentiate(target, pre_tr)
    post_tr = _jump(post_tr, post_hit[None, :], nearest)
    return _finish(three, dt_ms, arrays, weights, target, pre_tr, post_tr, post_hit, step, traces.third,
                   periodic)


def _finish(three, dt_ms, arrays, weights, target, pre_tr, post_tr, post_hit, step, third, periodic):
    """New weights and traces: `target` is the weights, or for a three-factor rule the
    eligibility, which BDNF converts at the end of the step."""
    if not three:
        return target, PlasticState(pre=pre_tr, post=post_tr)
    stdp = three.stdp.kernel()
    third = replace(third, eligibility=target)
    weights, third = advance(three, dt_ms, third, post_hit, arrays.post, weights, stdp.w_min, stdp.w_max,
                             step, arrays.rates, periodic)
    return weights, PlasticState(pre=pre_tr, post=post_tr, third=third)


def periods(rule, dt_ms: float) -> dict:
    """The rule's updates that come every few steps, name -> interval in steps, in the order
    `update` does them within a step: the CalciumRule's threshold comparison ("change", every
    update_ms), the BDNF conversion ("convert", tick_ms), chain ("chain", slow_step_s) and tag
    ("tag", tag_step_s, under tagging and capture) of a ThreeFactorSTDP."""
    three = rule if isinstance(rule, ThreeFactorSTDP) else None
    stdp = rule.stdp.kernel() if three else rule
    out = {}
    if isinstance(stdp, CalciumRule):
        out["change"] = steps_per(stdp.update_ms, dt_ms, "CalciumRule.update_ms")
    if three:
        out["convert"] = steps_per(three.tick_ms, dt_ms, "ThreeFactorSTDP.tick_ms")
        out["chain"] = steps_per(three.bdnf.slow_step_s * 1e3, dt_ms, "BDNF.slow_step_s")
        if three.tau_tag_ms is not None:
            out["tag"] = steps_per(three.tag_step_s * 1e3, dt_ms, "ThreeFactorSTDP.tag_step_s")
    return out


def periodic_update(rule, dt_ms: float, arrays: PlasticArrays, weights, traces: PlasticState, n_post: int,
                    step, interval: int, top: bool):
    """At the end of step `step`, the last of a block of `interval` steps run with
    update(..., periodic=False): the updates whose period is `interval` and, if `top` (the
    largest block), those with a longer period under the condition that step ends it (a
    longer period must be a multiple of `interval`, a shorter one a block of its own: the
    engine checks). Returns the new weights and traces."""
    three = rule if isinstance(rule, ThreeFactorSTDP) else None
    stdp = rule.stdp.kernel() if three else rule
    for name, period in periods(rule, dt_ms).items():
        if period != interval and not (top and period > interval):
            continue
        due = (step + 1) % period == 0
        if name == "change":
            target = traces.third.eligibility if three else weights
            boost = 1.0 + jnp.float32(three.ltp_boost) * gate(three, traces.third.chain) if three else None
            target = calcium_change(stdp, arrays.post, weights, target, traces.pre, traces.post, n_post,
                                    boost, three is not None, arrays.calcium,
                                    True if period == interval else due)
            if three:
                traces = replace(traces, third=replace(traces.third, eligibility=target))
            else:
                weights = target
        elif name in ("convert", "tag"):
            step_fn = partial(convert if name == "convert" else tag_step, three, arrays.post, stdp.w_min,
                              stdp.w_max)
            weights, third = step_fn(weights, traces.third) if period == interval else \
                jax.lax.cond(due, step_fn, lambda w, st: (w, st), weights, traces.third)
            traces = replace(traces, third=third)
        else:
            step_fn = partial(chain_step, three, rates=arrays.rates)
            third = step_fn(traces.third) if period == interval else \
                jax.lax.cond(due, step_fn, lambda st: st, traces.third)
            traces = replace(traces, third=third)
    return weights, traces
