"""Connection rules (vectorised, seeded) and the padded ELL storage used by the engine.

A rule returns the synapses of one projection as two index arrays (pre, post). `connect`
turns them into a `Projection` (host arrays, one entry per synapse); `Projection.ell` packs
them pre-major into padded (n_pre, max_out) arrays, and `Projection.reverse_index` lists, for
every post neuron, the flat ELL positions of its incoming synapses (for plasticity rules that
update incoming weights on a post-synaptic spike).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy.spatial import cKDTree

from ._checks import finite

RECEPTORS = ("exc", "inh")
"""Synaptic channels of every neuron; a projection targets one of them."""


@dataclass(frozen=True)
class FixedProbability:
    """Each (pre, post) pair is connected independently with probability p."""

    p: float

    def __post_init__(self):
        if not 0.0 <= self.p <= 1.0:
            raise ValueError(f"FixedProbability.p must lie in [0, 1], got {self.p}")

    def pairs(self, n_pre, n_post, rng, same_population, allow_autapses, pre_pos, post_pos):
        """(pre_ids, post_ids) of the connected pairs; pre_pos/post_pos: (n, 3) positions in mm or
        None; same_population and not allow_autapses: no neuron connects to itself."""
        skip_self = same_population and not allow_autapses
        n_cols = n_post - 1 if skip_self else n_post
        flat = _bernoulli_positions(n_pre * n_cols, self.p, rng)
        pre, col = np.divmod(flat, n_cols)
        post = col + (col >= pre) if skip_self else col
        return pre, post


@dataclass(frozen=True)
class FixedTotalNumber:
    """n synapses, each between a pre and a post neuron drawn uniformly and independently
    (multapses allowed, as NEST's fixed_total_number with multapses; no autapses unless
    allowed)."""

    n: int

    def __post_init__(self):
        if self.n < 0:
            raise ValueError(f"FixedTotalNumber.n must be >= 0, got {self.n}")

    def pairs(self, n_pre, n_post, rng, same_population, allow_autapses, pre_pos, post_pos):
        skip_self = same_population and not allow_autapses
        if self.n and n_pre - skip_self < 1:
            raise ValueError("FixedTotalNumber: no possible source without autapses")
        post = rng.integers(0, n_post, size=self.n)
        pre = rng.integers(0, n_pre - skip_self, size=self.n)
        if skip_self:
            pre = pre + (pre >= post)
        return pre, post


@dataclass(frozen=True)
class FixedInDegree:
    """Every post neuron receives exactly k synapses from distinct pre neurons."""

    k: int

    def __post_init__(self):
        if self.k < 0:
            raise ValueError(f"FixedInDegree.k must be >= 0, got {self.k}")

    def pairs(self, n_pre, n_post, rng, same_population, allow_autapses, pre_pos, post_pos):
        """(pre_ids, post_ids) of the connected pairs; pre_pos/post_pos: (n, 3) positions in mm or
        None; same_population and not allow_autapses: no neuron connects to itself."""
        skip_self = same_population and not allow_autapses
        n_candidates = n_pre - 1 if skip_self else n_pre
        if self.k > n_candidates:
            raise ValueError(f"FixedInDegree.k={self.k} exceeds the {n_candidates} possible sources")
        cols = _distinct_per_row(n_post, self.k, n_candidates, rng)
        post = np.repeat(np.arange(n_post), self.k)
        pre = cols.ravel()
        if skip_self:
            pre = pre + (pre >= post)
        return pre, post


@dataclass(frozen=True)
class DistanceDependent:
    """p(d) = p0 * exp(-d^2 / (2 sigma_mm^2)) over 3-D positions (mm); pairs farther apart than
    max_distance_mm (default 4 sigma, where p < 3.4e-4 p0) are never connected."""

    p0: float
    sigma_mm: float
    max_distance_mm: float | None = None

    def __post_init__(self):
        if not 0.0 <= self.p0 <= 1.0:
            raise ValueError(f"DistanceDependent.p0 must lie in [0, 1], got {self.p0}")
        if self.sigma_mm <= 0:
            raise ValueError(f"DistanceDependent.sigma_mm must be > 0, got {self.sigma_mm}")

    def probability(self, distance_mm):
        """Connection probability at distance_mm."""
        return self.p0 * np.exp(-np.square(distance_mm) / (2.0 * self.sigma_mm**2))

    def pairs(self, n_pre, n_post, rng, same_population, allow_autapses, pre_pos, post_pos):
        """(pre_ids, post_ids) of the connected pairs; pre_pos/post_pos: (n, 3) positions in mm or
        None; same_population and not allow_autapses: no neuron connects to itself."""
        if pre_pos is None or post_pos is None:
            raise ValueError("DistanceDependent needs positions_mm on both populations")
        cutoff = 4.0 * self.sigma_mm if self.max_distance_mm is None else self.max_distance_mm
        near = cKDTree(pre_pos).sparse_distance_matrix(cKDTree(post_pos), cutoff, output_type="coo_matrix")
        pre, post, d = near.row, near.col, near.data
        if same_population and allow_autapses:  # zero distances are not stored by scipy
            pre, post = np.concatenate([pre, np.arange(n_pre)]), np.concatenate([post, np.arange(n_pre)])
            d = np.concatenate([d, np.zeros(n_pre)])
        keep = rng.random(d.size) < self.probability(d)
        if same_population and not allow_autapses:
            keep &= pre != post
        order = np.lexsort((post[keep], pre[keep]))
        return pre[keep][order].astype(np.int64), post[keep][order].astype(np.int64)


def _bernoulli_positions(n_pairs: int, p: float, rng) -> np.ndarray:
    """Sorted positions in [0, n_pairs) of successes of independent Bernoulli(p) trials, drawn as
    geometric gaps (memory proportional to the number of successes, not of pairs)."""
    if p <= 0 or n_pairs == 0:
        return np.zeros(0, np.int64)
    if p >= 1:
        return np.arange(n_pairs, dtype=np.int64)
    chunks, last = [], -1
    while True:
        expected = (n_pairs - 1 - last) * p
        gaps = rng.geometric(p, size=int(expected + 6 * np.sqrt(expected) + 16))
        positions = last + np.cumsum(gaps)
        if positions[-1] >= n_pairs:
            chunks.append(positions[positions < n_pairs])
            return np.concatenate(chunks)
        chunks.append(positions)
        last = int(positions[-1])


def _distinct_per_row(n_rows: int, k: int, n_candidates: int, rng) -> np.ndarray:
    """(n_rows, k) indices in [0, n_candidates), distinct within each row, each row a uniform
    k-subset: draw with replacement, then redraw duplicates until none are left."""
    cols = rng.integers(0, n_candidates, size=(n_rows, k))
    while k > 1:
        cols.sort(axis=1)
        dup = np.zeros_like(cols, dtype=bool)
        dup[:, 1:] = cols[:, 1:] == cols[:, :-1]
        n_dup = int(dup.sum())
        if n_dup == 0:
            break
        cols[dup] = rng.integers(0, n_candidates, size=n_dup)
    return cols


@dataclass(frozen=True)
class EllSynapses:
    """Pre-major padded synapse arrays of one projection, shape (n_pre, max_out).

    post: post-synaptic index in the post population (padding: n_post);
    weight: pA (current synapses) or nS (conductance synapses), 0 at padding;
    delay_ms: per-synapse delay; valid: False at padding;
    synapse_id: index into the projection's per-synapse arrays (padding: n_synapses).
    """

    post: np.ndarray
    weight: np.ndarray
    delay_ms: np.ndarray
    valid: np.ndarray
    synapse_id: np.ndarray


@dataclass(frozen=True, eq=False)
class Projection:
    """Synapses from population `pre` to population `post`, one entry per synapse.

    pre_ids, post_ids: int64 neuron indices within each population; weight: float64 (pA or nS,
    matching the network's synapse model; inhibition of current synapses is a negative weight);
    delay_ms: float64, > 0 (at least one time step at simulation time); weight and delay_ms
    finite; receptor: "exc" or "inh"; plasticity: None (static weights) or a rule: PairSTDP,
    TripletSTDP, CalciumRule, ThreeFactorSTDP.
    """

    name: str
    pre: str
    post: str
    n_pre: int
    n_post: int
    receptor: str
    pre_ids: np.ndarray
    post_ids: np.ndarray
    weight: np.ndarray
    delay_ms: np.ndarray
    plasticity: object = None

    def __post_init__(self):
        if self.plasticity is not None and not hasattr(self.plasticity, "kernel"):
            raise ValueError(f"Projection {self.name!r}: plasticity must be None, PairSTDP, TripletSTDP, "
                             f"CalciumRule or ThreeFactorSTDP, got {self.plasticity!r}")
        if self.receptor not in RECEPTORS:
            raise ValueError(f"Projection {self.name!r}: receptor must be one of {RECEPTORS}, "
                             f"got {self.receptor!r}")
        n = self.pre_ids.size
        for field_name in ("post_ids", "weight", "delay_ms"):
            if getattr(self, field_name).shape != (n,):
                raise ValueError(f"Projection {self.name!r}: {field_name} must have shape ({n},), "
                                 f"got {getattr(self, field_name).shape}")
        if n and (self.pre_ids.min() < 0 or self.pre_ids.max() >= self.n_pre
                  or self.post_ids.min() < 0 or self.post_ids.max() >= self.n_post):
            raise ValueError(f"Projection {self.name!r}: neuron index out of range")
        finite(self.weight, f"Projection {self.name!r}: weight")
        delay = finite(self.delay_ms, f"Projection {self.name!r}: delay_ms")
        if n and delay.min() <= 0:
            raise ValueError(f"Projection {self.name!r}: delay_ms must be > 0, got {delay.min()}")

    @property
    def n_synapses(self) -> int:
        """Number of synapses of the projection."""
        return int(self.pre_ids.size)

    @cached_property
    def ell(self) -> EllSynapses:
        """Pre-major padded arrays (built once, vectorised)."""
        order = np.argsort(self.pre_ids, kind="stable")
        pre_sorted = self.pre_ids[order]
        out_degree = np.bincount(self.pre_ids, minlength=self.n_pre)
        max_out = max(int(out_degree.max(initial=0)), 1)
        first = np.concatenate([[0], np.cumsum(out_degree)[:-1]])
        slot = np.arange(order.size) - first[pre_sorted]
        post = np.full((self.n_pre, max_out), self.n_post, np.int32)
        weight = np.zeros((self.n_pre, max_out), np.float32)
        delay = np.zeros((self.n_pre, max_out), np.float32)
        synapse_id = np.full((self.n_pre, max_out), self.n_synapses, np.int64)
        post[pre_sorted, slot] = self.post_ids[order]
        weight[pre_sorted, slot] = self.weight[order]
        delay[pre_sorted, slot] = self.delay_ms[order]
        synapse_id[pre_sorted, slot] = order
        return EllSynapses(post, weight, delay, post < self.n_post, synapse_id)

    @cached_property
    def reverse_index(self) -> np.ndarray:
        """(n_post, max_in) int64: flat positions (row * max_out + slot) in the ELL arrays of each
        post neuron's incoming synapses; padding is n_pre * max_out."""
        ell = self.ell
        flat = np.flatnonzero(ell.valid.ravel())
        post = ell.post.ravel()[flat]
        order = np.argsort(post, kind="stable")
        in_degree = np.bincount(post, minlength=self.n_post)
        max_in = max(int(in_degree.max(initial=0)), 1)
        first = np.concatenate([[0], np.cumsum(in_degree)[:-1]])
        slot = np.arange(order.size) - first[post[order]]
        out = np.full((self.n_post, max_in), ell.valid.size, np.int64)
        out[post[order], slot] = flat[order]
        return out


def _per_synapse(value, n, rng, name, proj_name):
    """Expand a scalar, an array of n values or a callable (rng, n) -> array to n float64."""
    if callable(value):
        value = value(rng, n)
    arr = finite(value, f"connect {proj_name!r}: {name}")
    if arr.ndim == 0:
        return np.full(n, float(arr))
    if arr.shape != (n,):
        raise ValueError(f"connect {proj_name!r}: {name} must be a scalar, a callable (rng, n) or "
                         f"an array of the {n} synapses, got shape {arr.shape}")
    return arr


def connect(pre, post, rule, *, weight, delay_ms, receptor, seed=0, name=None,
            allow_autapses=False, plasticity=None) -> Projection:
    """Connect population `pre` to `post` with `rule` (FixedProbability, FixedInDegree,
    FixedTotalNumber, DistanceDependent), seeded by `seed`.

    weight: pA (current synapses) or nS (conductance synapses): scalar, array with one value per
    synapse, or callable (numpy Generator, n) -> array; delay_ms likewise (ms, >= one step at
    simulation time). Autapses are excluded unless allow_autapses. plasticity: None or a
    rule (neurons.PairSTDP, neurons.TripletSTDP, neurons.CalciumRule, neurons.ThreeFactorSTDP)
    updating the weights during the run.
    """
    name = name or f"{pre.name}_to_{post.name}"
    rng = np.random.default_rng(seed)
    pre_ids, post_ids = rule.pairs(pre.n, post.n, rng, pre.name == post.name, allow_autapses,
                                   pre.positions_mm, post.positions_mm)
    n = pre_ids.size
    return Projection(name, pre.name, post.name, pre.n, post.n, receptor,
                      np.asarray(pre_ids, np.int64), np.asarray(post_ids, np.int64),
                      _per_synapse(weight, n, rng, "weight", name),
                      _per_synapse(delay_ms, n, rng, "delay_ms", name), plasticity)
