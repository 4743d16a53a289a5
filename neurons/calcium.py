"""Calcium-threshold plasticity with a sliding LTP threshold (pure, jittable kernel).

The synaptic calcium of the synapse from pre neuron i to post neuron j is the sum of a
presynaptic and a postsynaptic transient (Graupner & Brunel 2012, PNAS 109:3991; the
calcium control hypothesis of Shouval et al. 2002, PNAS 99:10831):

    c_ij = c_pre,i + s_pre,i + c_post,j,   c_pre and c_post jump by C_pre / C_post at a spike
                                 of their neuron and decay with tau_calcium_ms; s_pre jumps by
                                 C_pre_slow and decays with tau_slow_ms;

    dw/dt = gamma_p Theta(c - theta_p,i) - gamma_d Theta(c - theta_d)

(gamma in weight units per second; soft bounds weigh them by (w_max - w) / (w_max - w_min)
and (w - w_min) / (w_max - w_min)). Calcium between theta_d and theta_p depresses, above
theta_p it potentiates as well: single spikes and low-frequency trains depress, bursts whose
calcium summates potentiate (Dudek & Bear 1992, PNAS 89:4363: 1 Hz LTD; theta-burst LTP).
The slow presynaptic component s_pre stands for the NMDA-receptor calcium, whose slow decay
(about 200 ms: the slow NMDA component of the calcium model of Shouval et al. 2002) makes
inputs 100 ms apart summate, so that 10 Hz trains build up calcium where 1 Hz does not.

Sliding LTP threshold: theta_p,i = theta_p (1 + nu_i / sliding_rate_Hz), with nu_i a slow
average of the presynaptic spike rate (Hz; a trace that jumps by 1000 / sliding_tau_ms per
spike and decays with sliding_tau_ms). Sustained activity raises the threshold, so that
prolonged bursting turns potentiation into depression (metaplasticity, Abraham & Bear 1996,
Trends Neurosci 19:126; the slower-building suppressive process of the calcium model of
theta-burst after-effects of Huang et al. 2011, Clin Neurophysiol 122:1011: intermittent
bursts potentiate, continuous bursting depresses). sliding_tau_ms None: a fixed threshold.

State (in the PlasticState arrays of neurons.plasticity): pre (3, n_pre) = (c_pre, nu, s_pre);
post (2, n_post) = (c_post, unused).

Time stepping: the traces decay and jump every step (after the step's spikes); the
thresholds are compared every update_ms with the calcium just after that step's jumps, and
the change for the whole interval is applied (first order in update_ms / tau_calcium_ms:
each threshold crossing is resolved to update_ms).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import jax
import jax.numpy as jnp
import numpy as np

from .bdnf import steps_per
from .bounds import add_bounded, check_bounds
from .compaction import compact


@dataclass(frozen=True)
class CalciumRule:
    """Calcium-threshold plasticity (see the module docstring).

    gamma_p_per_s, gamma_d_per_s: potentiation and depression rates while the calcium is above
    theta_p / theta_d, weight units per second; theta_p, theta_d: thresholds (calcium in units
    of the presynaptic jump C_pre = 1 by default); C_pre, C_post: jumps per pre and post spike;
    tau_calcium_ms: calcium decay; C_pre_slow, tau_slow_ms: jump per pre spike and decay of
    the slow (NMDA-like) presynaptic component (0: none); sliding_tau_ms, sliding_rate_Hz:
    sliding LTP threshold; update_ms: interval of the threshold comparison (a multiple of the
    time step); w_min, w_max, bounds ("hard" or "soft") as in PairSTDP.
    """

    gamma_p_per_s: float
    gamma_d_per_s: float
    theta_p: float = 3.2
    theta_d: float = 1.5
    C_pre: float = 1.0
    C_post: float = 0.5
    tau_calcium_ms: float = 20.0
    C_pre_slow: float = 0.0
    tau_slow_ms: float = 200.0
    sliding_tau_ms: float | None = 4000.0
    sliding_rate_Hz: float = 120.0
    update_ms: float = 0.5
    w_min: float = 0.0
    w_max: float = 1.0
    bounds: str = "soft"

    def __post_init__(self):
        for name in ("gamma_p_per_s", "gamma_d_per_s", "C_pre", "C_post", "C_pre_slow"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"CalciumRule.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("theta_p", "theta_d", "tau_calcium_ms", "tau_slow_ms", "sliding_rate_Hz", "update_ms"):
            if not getattr(self, name) > 0:
                raise ValueError(f"CalciumRule.{name} must be > 0, got {getattr(self, name)}")
        if self.sliding_tau_ms is not None and not self.sliding_tau_ms > 0:
            raise ValueError(f"CalciumRule.sliding_tau_ms must be > 0 or None, got {self.sliding_tau_ms}")
        check_bounds(self, "CalciumRule")

    def kernel(self) -> "CalciumRule":
        """The rule the engine compiles: this one with gamma_p_per_s and gamma_d_per_s at 0;
        their values reach the program as arrays (`calcium_rates`), so rules that differ only
        in them (the points of a calibration) share compiled code."""
        return replace(self, gamma_p_per_s=0.0, gamma_d_per_s=0.0)


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class CalciumRates:
    """A CalciumRule's rates as float32 arrays of a run (see `CalciumRule.kernel`): the weight
    change per update_ms interval above theta_p (potentiation, gamma_p_per_s update_ms) and
    above theta_d (depression, gamma_d_per_s update_ms), weight units."""

    potentiation: jax.Array
    depression: jax.Array


def calcium_rates(rule) -> CalciumRates:
    """The CalciumRates of `rule` (a CalciumRule, or a rule with one as its stdp; zeros for
    any other), each the float32 product of the float32 rate and interval."""
    rule = getattr(rule, "stdp", rule)
    if not isinstance(rule, CalciumRule):
        return CalciumRates(potentiation=jnp.float32(0.0), depression=jnp.float32(0.0))
    f32, h_s = jnp.float32, jnp.float32(rule.update_ms * 1e-3)
    return CalciumRates(potentiation=f32(rule.gamma_p_per_s) * h_s, depression=f32(rule.gamma_d_per_s) * h_s)


def calcium_step(rule: CalciumRule, dt_ms: float, post_of, weights, target, pre_tr, post_tr, pre_hit,
                 post_hit, n_post: int, step, boost, eligibility: bool, rates: CalciumRates,
                 periodic: bool = True):
    """One step of the rule. post_of (n_pre, max_out) local post index per ELL entry (n_post at
    padding); target: the weights, or the eligibility of a three-factor rule; pre_tr (3, n_pre),
    post_tr (2, n_post): traces of the previous step; pre_hit, post_hit: this step's spikes
    (bool); boost: (n_post,) factor on potentiation (three-factor LTP boost) or None; rates:
    the rule's `calcium_rates` (rule itself may be its kernel, without rates); periodic:
    compare with the thresholds here when step ends an update_ms interval (False: the engine
    calls `calcium_change` at the end of each interval itself).
    Returns (target, pre_tr, post_tr)."""
    f32 = np.float32
    decay = np.exp(-dt_ms / rule.tau_calcium_ms)
    slide = np.exp(-dt_ms / rule.sliding_tau_ms) if rule.sliding_tau_ms else 0.0
    jump = 1e3 / rule.sliding_tau_ms if rule.sliding_tau_ms else 0.0
    slow = np.exp(-dt_ms / rule.tau_slow_ms)
    # each trace row as x decay + jump hit, in one elementwise operation per side (a stack of
    # the rows would make XLA copy the traces into the loop state every step)
    pre_tr = (pre_tr * f32([[decay], [slide], [slow]])
              + f32([[rule.C_pre], [jump], [rule.C_pre_slow]]) * pre_hit.astype(f32)[None, :])
    post_tr = post_tr * f32([[decay], [1.0]]) + f32([[rule.C_post], [0.0]]) * post_hit.astype(f32)[None, :]
    if periodic:
        due = (step + 1) % steps_per(rule.update_ms, dt_ms, "CalciumRule.update_ms") == 0
        target = calcium_change(rule, post_of, weights, target, pre_tr, post_tr, n_post, boost, eligibility,
                                rates, due)
    return target, pre_tr, post_tr


def calcium_change(rule: CalciumRule, post_of, weights, target, pre_tr, post_tr, n_post: int, boost,
                   eligibility: bool, rates: CalciumRates, due=True, max_rows: int | None = None):
    """The change of one update_ms interval, from the traces just after its last step (see
    calcium_step for the arguments); due: a traced bool, False leaves target as it is.

    Only the rows (presynaptic neurons) whose calcium could pass a threshold are computed:
    c_pre + s_pre plus the largest postsynaptic calcium of the projection above the lower of
    theta_d and theta_p. Every other synapse of the row has its calcium below both thresholds
    (float addition is monotonic and the sliding theta_p,i is at least theta_p), so its change
    is zero. A projection of up to 2**14 synapse slots is computed in one pass when any row
    can change; a larger one (or any, with max_rows given) gathers and updates those rows
    max_rows at a time (default: 1/32 of the rows, at least 16), and with none does nothing.
    The result does not depend on max_rows, and equals the one pass up to float32 rounding
    (XLA may fuse a gathered row's arithmetic differently). In spontaneous activity at the
    default patch's theta_d almost no row can reach it."""
    f32 = jnp.float32
    n_pre = post_of.shape[0]
    pre_calcium = pre_tr[0] + pre_tr[2]
    theta_p = f32(rule.theta_p) * (1.0 + pre_tr[1] / f32(rule.sliding_rate_Hz))

    def change(target, w, post, pre_calcium, theta_p):
        """The rows' new target: w their weights, post their post indices, pre_calcium and
        theta_p their presynaptic calcium and LTP threshold."""
        valid = post < n_post
        c = pre_calcium[:, None] + jnp.take(post_tr[0], post, mode="fill", fill_value=0.0)
        dw_plus = jnp.where(c > theta_p[:, None], rates.potentiation, 0.0)
        if boost is not None:
            dw_plus = dw_plus * jnp.take(boost, post, mode="fill", fill_value=1.0)
        dw_minus = jnp.where(c > f32(rule.theta_d), rates.depression, 0.0)
        new = add_bounded(rule, w, target, dw_plus, dw_minus, eligibility)
        return jnp.where(valid, new, target)

    reach = pre_calcium + jnp.max(post_tr[0]) > f32(min(rule.theta_d, rule.theta_p))
    if max_rows is None and post_of.size <= _DENSE_SYNAPSES:
        # a small projection in one pass, when any row can change (the branch that does nothing
        # costs XLA a copy of the target, which is small here)
        return jax.lax.cond(due & jnp.any(reach), lambda t: change(t, weights if eligibility else t, post_of,
                                                                   pre_calcium, theta_p), lambda t: t, target)
    max_rows = max_rows or max(_MIN_ROWS, n_pre // 32)
    index = jnp.arange(n_pre, dtype=jnp.int32)

    def visit(carry):
        """Update the next max_rows rows that can change, from row `start` on."""
        target, start, left = carry
        rows, _ = compact(reach & (index >= start), max_rows)
        row = jnp.minimum(rows, n_pre - 1)      # padding (n_pre) reads the last row, written nowhere
        picked = target[row]
        new = change(picked, weights[row] if eligibility else picked, post_of[row], pre_calcium[row],
                     theta_p[row])
        return target.at[rows].set(new, mode="drop"), row[-1] + 1, left - max_rows

    # a loop rather than lax.cond: XLA would copy the (large) target for a branch that does nothing
    left = jnp.where(due, jnp.sum(reach, dtype=jnp.int32), 0)
    return jax.lax.while_loop(lambda carry: carry[2] > 0, visit, (target, jnp.int32(0), left))[0]


_MIN_ROWS = 16
_DENSE_SYNAPSES = 1 << 14  # ELL entries up to which a projection is updated in one pass
