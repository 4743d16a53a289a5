"""Connection rules against their defining statistics, and the ELL / reverse-index storage."""

import numpy as np
import pytest

from neurons import DistanceDependent, FixedInDegree, FixedProbability, Population, connect


def _pop(name, n, positions=None):
    return Population(name, n, positions_mm=positions)


def test_fixed_indegree_is_exact_distinct_and_without_autapses():
    pop = _pop("a", 500)
    proj = connect(pop, pop, FixedInDegree(40), weight=1.0, delay_ms=1.0, receptor="exc", seed=3)
    assert np.all(np.bincount(proj.post_ids, minlength=500) == 40)
    assert np.all(proj.pre_ids != proj.post_ids)
    pairs = proj.pre_ids * 500 + proj.post_ids
    assert np.unique(pairs).size == pairs.size


def test_fixed_indegree_sources_are_uniform():
    src, dst = _pop("a", 50), _pop("b", 4000)
    proj = connect(src, dst, FixedInDegree(10), weight=1.0, delay_ms=1.0, receptor="exc", seed=1)
    counts = np.bincount(proj.pre_ids, minlength=50)
    expected = 4000 * 10 / 50
    chi2 = np.sum((counts - expected) ** 2 / expected)
    assert chi2 < 49 + 5 * np.sqrt(2 * 49)


def test_fixed_probability_is_binomial():
    n, p = 2000, 0.05
    pop = _pop("a", n)
    proj = connect(pop, pop, FixedProbability(p), weight=1.0, delay_ms=1.0, receptor="exc", seed=7)
    n_pairs = n * (n - 1)
    mean, sd = n_pairs * p, np.sqrt(n_pairs * p * (1 - p))
    assert abs(proj.n_synapses - mean) < 5 * sd
    assert np.all(proj.pre_ids != proj.post_ids)
    in_degree = np.bincount(proj.post_ids, minlength=n)
    var = (n - 1) * p * (1 - p)
    assert in_degree.var(ddof=1) == pytest.approx(var, rel=0.12)
    pairs = proj.pre_ids * n + proj.post_ids
    assert np.unique(pairs).size == pairs.size


def test_autapses_only_when_allowed():
    pop = _pop("a", 300)
    proj = connect(pop, pop, FixedProbability(0.5), weight=1.0, delay_ms=1.0, receptor="exc", seed=0,
                   allow_autapses=True)
    n_self = int(np.sum(proj.pre_ids == proj.post_ids))
    assert abs(n_self - 150) < 5 * np.sqrt(75)


def test_distance_dependent_probability_follows_the_profile():
    rng = np.random.default_rng(0)
    pos = rng.uniform(0, 2.0, size=(3000, 3))
    pop = _pop("a", 3000, pos)
    rule = DistanceDependent(p0=0.6, sigma_mm=0.25)
    proj = connect(pop, pop, rule, weight=1.0, delay_ms=1.0, receptor="exc", seed=5)
    d_syn = np.linalg.norm(pos[proj.pre_ids] - pos[proj.post_ids], axis=1)
    # all pairs' distances (one triangle, both directions count)
    i, j = np.triu_indices(3000, 1)
    d_all = np.linalg.norm(pos[i] - pos[j], axis=1)
    edges = np.linspace(0.0, 0.75, 11)
    n_pairs = 2 * np.histogram(d_all, edges)[0]
    n_syn = np.histogram(d_syn, edges)[0]
    centre = 0.5 * (edges[1:] + edges[:-1])
    fraction = n_syn / n_pairs
    expected = np.array([np.mean(rule.probability(d_all[(d_all >= a) & (d_all < b)]))
                         for a, b in zip(edges[:-1], edges[1:])])
    sd = np.sqrt(expected * (1 - expected) / n_pairs)
    assert np.all(np.abs(fraction - expected) < 5 * sd + 1e-12), (centre, fraction, expected)
    assert d_syn.max() <= 4 * 0.25 + 1e-9
    assert np.all(proj.pre_ids != proj.post_ids)


def test_same_seed_same_network_and_other_seed_differs():
    pop = _pop("a", 400)
    make = lambda seed: connect(pop, pop, FixedProbability(0.1), weight=lambda r, n: r.normal(1, 0.1, n),
                                delay_ms=lambda r, n: r.uniform(1, 3, n), receptor="exc", seed=seed)
    a, b, c = make(11), make(11), make(12)
    for field in ("pre_ids", "post_ids", "weight", "delay_ms"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert a.n_synapses != c.n_synapses or not np.array_equal(a.post_ids, c.post_ids)


def test_ell_and_reverse_index_hold_every_synapse_once():
    src, dst = _pop("a", 300), _pop("b", 200)
    proj = connect(src, dst, FixedProbability(0.07), weight=lambda r, n: r.uniform(0, 1, n),
                   delay_ms=lambda r, n: r.uniform(0.5, 2, n), receptor="inh", seed=2)
    ell = proj.ell
    assert ell.post.shape == (300, np.bincount(proj.pre_ids, minlength=300).max())
    rows, slots = np.nonzero(ell.valid)
    ids = ell.synapse_id[rows, slots]
    assert np.array_equal(np.sort(ids), np.arange(proj.n_synapses))
    np.testing.assert_array_equal(rows, proj.pre_ids[ids])
    np.testing.assert_array_equal(ell.post[rows, slots], proj.post_ids[ids])
    np.testing.assert_allclose(ell.weight[rows, slots], proj.weight[ids].astype(np.float32))
    np.testing.assert_allclose(ell.delay_ms[rows, slots], proj.delay_ms[ids].astype(np.float32))
    assert np.all(ell.weight[~ell.valid] == 0) and np.all(ell.post[~ell.valid] == 200)
    rev = proj.reverse_index
    assert rev.shape == (200, np.bincount(proj.post_ids, minlength=200).max())
    flat = rev[rev < ell.valid.size]
    assert np.array_equal(np.sort(flat), np.sort(np.flatnonzero(ell.valid.ravel())))
    post_of_entry = np.repeat(np.arange(200), rev.shape[1]).reshape(rev.shape)[rev < ell.valid.size]
    np.testing.assert_array_equal(ell.post.ravel()[flat], post_of_entry)


def test_builder_scales_vectorised():
    pop = _pop("a", 20000)
    proj = connect(pop, pop, FixedProbability(0.02), weight=1.0, delay_ms=1.0, receptor="exc", seed=0)
    assert abs(proj.n_synapses - 20000 * 19999 * 0.02) < 5 * np.sqrt(20000 * 19999 * 0.02)
    assert proj.ell.valid.sum() == proj.n_synapses


def test_bad_arguments_name_themselves():
    pop = _pop("a", 10)
    with pytest.raises(ValueError, match="FixedProbability.p"):
        FixedProbability(1.5)
    with pytest.raises(ValueError, match="weight"):
        connect(pop, pop, FixedInDegree(2), weight=np.ones(3), delay_ms=1.0, receptor="exc")
    with pytest.raises(ValueError, match="receptor"):
        connect(pop, pop, FixedInDegree(2), weight=1.0, delay_ms=1.0, receptor="gaba")
    with pytest.raises(ValueError, match="positions_mm"):
        connect(pop, pop, DistanceDependent(0.5, 1.0), weight=1.0, delay_ms=1.0, receptor="exc")
    with pytest.raises(ValueError, match="FixedInDegree.k"):
        connect(pop, pop, FixedInDegree(10), weight=1.0, delay_ms=1.0, receptor="exc")
