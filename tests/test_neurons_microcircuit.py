"""The Potjans & Diesmann (2014) microcircuit: published constants, structure, scaling, dynamics."""

import numpy as np
import pytest

import neurons
from neurons.microcircuit import (
    BACKGROUND_HZ,
    FULL_SCALE_RATES_HZ,
    FULL_SIZES,
    K_EXTERNAL,
    POPULATIONS,
    TAU_SYN_MS,
    mean_weights_pA,
    psc_for_psp,
    synapse_counts,
)

SCALE = 0.05


@pytest.fixture(scope="module")
def small():
    return neurons.potjans_diesmann(scale=SCALE, seed=0)


def test_published_constants():
    # 0.15 mV PSP <-> 87.8 pA PSC (Potjans & Diesmann 2014, Table 5); 77,169 neurons, ~3e8 synapses
    assert psc_for_psp(0.15) == pytest.approx(87.8, abs=0.05)
    assert FULL_SIZES.sum() == 77169
    assert 2.9e8 < synapse_counts(FULL_SIZES).sum() < 3.1e8


def test_psc_gives_the_psp_peak():
    t = np.arange(0.0, 20.0, 1e-3)
    tau_m, tau_s, C = 10.0, TAU_SYN_MS, 250.0
    v = psc_for_psp(0.15) / C * tau_m * tau_s / (tau_m - tau_s) * (np.exp(-t / tau_m) - np.exp(-t / tau_s))
    assert v.max() == pytest.approx(0.15, rel=1e-6)


def test_structure_follows_the_table(small):
    sizes = {p.name: p.n for p in small.populations}
    assert list(sizes) == list(POPULATIONS)
    np.testing.assert_array_equal(list(sizes.values()), np.round(FULL_SIZES * SCALE))
    in_degree_full = synapse_counts(FULL_SIZES) / FULL_SIZES[:, None]
    w = mean_weights_pA() / np.sqrt(SCALE)
    for proj in small.projections:
        i, j = POPULATIONS.index(proj.post), POPULATIONS.index(proj.pre)
        assert proj.pre_ids.size == round(in_degree_full[i, j] * SCALE * sizes[proj.post])
        assert proj.receptor == ("exc" if j % 2 == 0 else "inh")
        assert np.all((np.sign(proj.weight) == np.sign(w[i, j])) | (proj.weight == 0))
        if proj.pre_ids.size > 2000:
            assert proj.weight.mean() == pytest.approx(w[i, j], rel=0.02)
            assert proj.delay_ms.mean() == pytest.approx(1.5 if j % 2 == 0 else 0.75, rel=0.03)
        assert proj.delay_ms.min() >= 0.1
        if proj.pre == proj.post:
            assert not np.any(proj.pre_ids == proj.post_ids)
    assert mean_weights_pA()[0, 2] == 2 * mean_weights_pA()[0, 0]
    np.testing.assert_array_equal([p.n_sources for p in small.poisson], np.round(K_EXTERNAL * SCALE))


def test_dc_restores_the_full_scale_mean_input(small):
    """Mean input per population at the full-scale rates: scaled synapses plus DC equal the full model."""
    in_degree_full = synapse_counts(FULL_SIZES) / FULL_SIZES[:, None]
    w_ext = psc_for_psp(0.15)
    full = TAU_SYN_MS * 1e-3 * ((in_degree_full * mean_weights_pA()) @ FULL_SCALE_RATES_HZ
                                + K_EXTERNAL * w_ext * BACKGROUND_HZ)
    rate = dict(zip(POPULATIONS, FULL_SCALE_RATES_HZ))
    for i, pop in enumerate(small.populations):
        recurrent = sum(proj.weight.sum() * rate[proj.pre] for proj in small.projections
                        if proj.post == pop.name)
        external = sum(p.n_sources * p.weight * BACKGROUND_HZ for p in small.poisson
                       if p.population == pop.name)
        scaled = TAU_SYN_MS * 1e-3 * (recurrent / pop.n + external) + pop.params.I_bias_pA
        assert scaled == pytest.approx(full[i], rel=0.03)


def test_fixed_total_number_rule():
    pre = neurons.Population("a", 50)
    proj = neurons.connect(pre, pre, neurons.FixedTotalNumber(20_000), weight=1.0, delay_ms=1.0,
                           receptor="exc", seed=1)
    assert proj.pre_ids.size == 20_000 and not np.any(proj.pre_ids == proj.post_ids)
    counts = np.bincount(proj.pre_ids * 50 + proj.post_ids, minlength=2500).reshape(50, 50)
    off_diagonal = counts[~np.eye(50, dtype=bool)]
    assert off_diagonal.mean() == pytest.approx(20_000 / 2450)
    assert off_diagonal.var() == pytest.approx(20_000 / 2450, rel=0.15)   # Poisson-like multapses


@pytest.mark.slow
def test_downscaled_dynamics_match_the_full_scale_rates(small):
    """Asynchronous irregular activity with the layer rates of the full model (van Albada et al.
    2015: the DC-compensated downscaling keeps the mean rates)."""
    res = neurons.simulate(small, 600.0, 0.1, seed=0, progress=False)
    rates = []
    for pop in small.populations:
        times, _ = res.spikes[pop.name]
        rates.append(np.sum(times >= 100.0) / pop.n / 0.5)
    rates = np.asarray(rates)
    assert np.all(rates > 0.5 * FULL_SCALE_RATES_HZ) and np.all(rates < 2.0 * FULL_SCALE_RATES_HZ), rates
    assert rates[0] < rates[2] and rates[6] < rates[4]   # L2/3E and L6E fire least, L4E and L5E more
    cv = np.nanmean([res.spikes[p].cv_isi() for p in ("L4E", "L5E", "L4I", "L5I")])
    assert 0.3 < cv < 1.5
