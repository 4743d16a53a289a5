"""Activation model: recruitment statistics, cell-class order, angle dependence, pulse events."""

import numpy as np
import pytest
from scipy import stats

import coupling as C
from coupling import activation as A

L5, L23 = C.DEFAULT_CELL_CLASSES["L5 PC"], C.DEFAULT_CELL_CLASSES["L2/3 PC"]
N = 200_000


def _within_binomial(fraction, p, n, k=5.0):
    """|fraction - p| within k binomial standard deviations (plus one count for p near 0 or 1)."""
    return np.all(np.abs(fraction - p) <= k * np.sqrt(p * (1 - p) / n) + 1.0 / n)


def test_recruitment_over_stimulator_output_is_monotonic_and_the_lognormal_cdf():
    thresholds = L5.draw_thresholds(N, seed=1)
    percent_mso = np.linspace(0, 100, 101)
    E_1A_per_us = 2.0  # V/m at the neurons per 1e6 A/s, illustrative
    E = np.array([C.field_at_didt(E_1A_per_us, C.didt_from_mso(m, 1.5e8)) for m in percent_mso])
    fraction = np.array([C.activated(e, thresholds).mean() for e in E])
    assert np.all(np.diff(fraction) >= 0)
    assert fraction[0] == 0 and fraction[-1] > 0.99
    expected = stats.lognorm(s=L5.sigma, scale=L5.threshold_V_per_m).cdf(C.MICRO_MACRO_SCALE * E)
    assert _within_binomial(fraction, expected, N)
    np.testing.assert_allclose(L5.fraction_activated(E), expected, rtol=1e-12, atol=1e-300)


def test_recruitment_is_sigmoid_with_half_at_the_median():
    E_half = L5.threshold_V_per_m / C.MICRO_MACRO_SCALE
    assert L5.fraction_activated(E_half) == pytest.approx(0.5, abs=1e-15)
    E = E_half * np.exp(np.linspace(-2, 2, 41))
    f = L5.fraction_activated(E)
    slope = np.diff(f)
    assert np.all(slope > 0)
    assert np.argmax(slope) in (19, 20)  # steepest at the median (symmetric in log E)


def test_cell_classes_keep_the_published_order_of_thresholds():
    # Aberra et al. 2020: L5 PCs lowest, 175-350 V/m single-cell (Weise et al. 2025)
    classes = dict(C.DEFAULT_CELL_CLASSES)
    afferent = classes.pop("I-wave afferent")
    medians = [c.threshold_V_per_m for c in classes.values()]
    assert min(medians) == 175.0 and max(medians) <= 350.0
    # I1 waves are recruited below the D wave (Di Lazzaro et al. 2012)
    assert afferent.threshold_V_per_m < classes["L5 PC"].threshold_V_per_m


def test_l5_pyramidal_cells_are_recruited_before_l23():
    cells = [c for name, c in C.DEFAULT_CELL_CLASSES.items() if name != "I-wave afferent"]
    assert L5.threshold_V_per_m == min(c.threshold_V_per_m for c in cells)
    # the same draws for both classes (same sigma): every L2/3 PC recruited has an L5 PC recruited
    l5_T, l23_T = L5.draw_thresholds(20_000, seed=2), L23.draw_thresholds(20_000, seed=2)
    for E in np.linspace(20, 200, 37):
        l5, l23 = C.activated(E, l5_T), C.activated(E, l23_T)
        assert np.all(l5[l23])
    E_half = L5.threshold_V_per_m / C.MICRO_MACRO_SCALE
    l5, l23 = C.activated(E_half, l5_T).mean(), C.activated(E_half, l23_T).mean()
    assert l5 == pytest.approx(0.5, abs=0.02) and l23 < 0.2  # where half of the L5 PCs fire


def test_field_magnitude_dominates_the_angle():
    rng = np.random.default_rng(4)
    E = rng.normal(size=(5000, 3)) * 50
    axis = rng.normal(size=(5000, 3)) * 3  # any length
    for cell in C.DEFAULT_CELL_CLASSES.values():
        a = cell.angle_weight
        eff = C.effective_field(E, axis, a)
        mag = np.linalg.norm(E, axis=1)
        # threshold in |E| varies with the angle by at most 1 / (1 - a) <= 1.25
        assert np.all(eff <= mag * (1 + 1e-12)) and np.all(eff >= (1 - a) * mag * (1 - 1e-12))
        assert 1 / (1 - a) <= 1.25
    z = np.array([0.0, 0.0, 1.0])
    along, across = C.effective_field([[0, 0, 80.0], [80.0, 0, 0]], [z, z], 0.2)
    assert along == 80.0 and across == pytest.approx(64.0)
    assert C.effective_field([0, 0, -80.0], z, 0.2) == 80.0  # |cos|: either direction
    assert C.effective_field([0.0, 0, 0], z, 0.2) == 0.0


def test_sham_activates_nothing():
    thresholds = L5.draw_thresholds(1000, seed=5)
    E = np.full(1000, 500.0)  # far above every threshold
    real, fake = C.itbs(), C.sham(C.itbs())
    assert C.activated(E, thresholds, pulse_scale=real.field_scale).all()
    masks = C.activated(E, thresholds, pulse_scale=fake.field_scale)
    assert masks.shape == (600, 1000) and not masks.any()
    assert len(C.pulse_events(fake.times_ms, {"L5": masks}, 0.2, n_waves=4)) == 0


def test_activation_is_deterministic_and_trial_noise_widens_the_lognormal():
    thresholds = L5.draw_thresholds(N, seed=6)
    np.testing.assert_array_equal(L5.draw_thresholds(N, seed=6), thresholds)
    E = np.array([40.0, 60.0, 80.0])
    a = C.activated(E[:, None], thresholds)
    np.testing.assert_array_equal(a, C.activated(E[:, None], thresholds))
    noisy = C.activated(E[:, None], thresholds, noise_sigma=0.3, seed=7)
    np.testing.assert_array_equal(noisy, C.activated(E[:, None], thresholds, noise_sigma=0.3, seed=7))
    # thresholds times independent lognormal noise: lognormal with log-sd sqrt(sigma^2 + 0.3^2)
    wide = stats.lognorm(s=np.hypot(L5.sigma, 0.3), scale=L5.threshold_V_per_m)
    assert _within_binomial(noisy.mean(axis=1), wide.cdf(C.MICRO_MACRO_SCALE * E), N)


def test_pulse_events_d_and_i_waves_on_the_grid():
    protocol = C.theta_burst(2, name="two-bursts").shifted(1.0)  # pulses at 1, 21, 41, 201, 221, 241 ms
    masks = {"L5": np.zeros((6, 4), bool), "afferent": np.zeros((6, 3), bool)}
    masks["L5"][:, 1] = True
    masks["afferent"][[0, 5], 2] = True
    events = C.pulse_events(protocol.times_ms, masks, {"L5": 0.2, "afferent": 0.5},
                            n_waves={"afferent": 4}, dt_ms=0.1)
    triples = list(events)
    assert len(triples) == len(events) == 6 + 2 * 4
    assert all(isinstance(t, float) and isinstance(p, str) and isinstance(i, int) for t, p, i in triples)
    assert [t for t, _, _ in triples] == sorted(t for t, _, _ in triples)
    l5 = [t for t, p, _ in triples if p == "L5"]
    np.testing.assert_array_equal(events.times_us[events.population_index == 0],
                                  protocol.pulse_times_us + 200)
    assert l5 == [1.2, 21.2, 41.2, 201.2, 221.2, 241.2]
    aff = events.times_us[events.population_index == 1]
    expected = np.sort(np.concatenate([t + 500 + 1400 * np.arange(4) for t in (1000, 241_000)]))
    np.testing.assert_array_equal(aff, expected)
    assert np.all(aff % 100 == 0)  # on the 0.1 ms grid: 1.4 ms is 14 steps
    assert set(events.wave[events.population_index == 1]) == {0, 1, 2, 3}
    d_only = C.pulse_events(protocol.times_ms, masks, {"L5": 0.2, "afferent": 0.5},
                            n_waves={"afferent": 4}, i_waves=False)
    assert len(d_only) == 6 + 2 and set(d_only.wave) == {0}


def test_pulse_events_errors_name_the_argument():
    masks = {"L5": np.ones((1, 2), bool)}
    with pytest.raises(ValueError, match="delay_ms has no entry for population 'L5'"):
        C.pulse_events([0.0], masks, {"L4": 0.2})
    with pytest.raises(ValueError, match=r"spike at 0.25 ms is not on the dt_ms=0.1 grid"):
        C.pulse_events([0.0], masks, 0.25, dt_ms=0.1)
    with pytest.raises(ValueError, match=r"activated_masks\['L5'\] must have shape \(2, n_neurons\)"):
        C.pulse_events([0.0, 1.0], masks, 0.2)


def test_pulse_events_fire_in_the_network_at_their_times():
    neurons = pytest.importorskip("neurons")
    net = neurons.Network((neurons.Population("L5", 4), neurons.Population("afferent", 3)), synapse="current")
    protocol = C.paired_pulse(3.0).shifted(2.0)
    masks = {"L5": np.array([[1, 0, 1, 0], [0, 1, 0, 0]], bool), "afferent": np.ones((2, 3), bool)}
    events = C.pulse_events(protocol.times_ms, masks, 0.2, n_waves={"afferent": 3}, dt_ms=0.1)
    res = neurons.simulate(net, 15.0, 0.1, forced_spikes=events, progress=False)
    for p, name in enumerate(events.populations):
        mine = events.population_index == p
        times, ids = res.spikes[name]
        np.testing.assert_array_equal(np.rint(times / 0.1).astype(np.int64), events.times_us[mine] // 100)
        np.testing.assert_array_equal(np.sort(ids), np.sort(events.neuron_ids[mine]))


def test_intensity_conversions():
    efield = pytest.importorskip("efield")
    assert C.didt_from_mso(50, 1.5e8) == 7.5e7
    assert C.didt_from_mso(100, efield.Coil(didt_max=1.4e8, name="c")) == 1.4e8
    with pytest.raises(ValueError, match="coil 'c' has no didt_max"):
        C.didt_from_mso(50, efield.Coil(name="c"))
    with pytest.raises(ValueError, match="percent_mso must be in"):
        C.didt_from_mso(120, 1.5e8)
    assert C.mso_from_rmt(120, 50) == 60.0
    with pytest.raises(ValueError, match="beyond the stimulator's maximum"):
        C.mso_from_rmt(120, 90)
    np.testing.assert_allclose(C.field_at_didt([10.0, 20.0], 3e7), [300.0, 600.0])
    assert A.I_WAVE_INTERVAL_MS == 1.4
