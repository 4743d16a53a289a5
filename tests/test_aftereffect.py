"""The pre-registered after-effect statistic on synthetic data with known answers: pairing
with sham, the floor, mean and peak over the window, compare_to rows, the bootstrap CI and
the pass rule."""

from dataclasses import replace

import numpy as np
import pytest

from coupling.aftereffect import judge, paired_changes, row_value
from coupling.targets import Design, Target

PROBES = (0, 10, 20, 30, 60)

DESIGN = Design(network_seeds=tuple(range(10)), calibration_network_seeds=(100,), noise_seeds=(0, 1),
                window_min=(0, 30), probe_minutes=PROBES, test_percent_rmt=120.0, n_test=20, dt_ms=0.1,
                bridge_min_gap_s=0.0, rmt_trials=10, rmt_tolerance_pct=1.0, baseline_floor=0.05,
                control="sham", resamples=2000, confidence=0.95, ci_method="BCa", bootstrap_seed=0,
                metric="m", pass_rule="p")

ROW = Target(name="itbs600", protocol="itbs", pulses=600, frequency_hz=None, percent_rmt=80.0,
             scenario="healthy", role="calibration", human_change_pct=35.5, spread_pct=None, spread="",
             band_pct=(20.5, 50.5), compare_to="", window_min=(0, 30), statistic="mean", source="s", note="")


def test_changes_are_the_protocol_ratio_minus_the_sham_ratio_and_zero_below_the_floor():
    before = [[1.0, 2.0]]
    after = [[[1.5, 1.0], [2.0, 4.0]]]
    sham_before = [[1.0, 0.01]]                      # the second pair's sham is below the floor
    sham_after = [[[1.1, 1.0], [5.0, 5.0]]]
    out = paired_changes(before, after, sham_before, sham_after, floor=0.05)
    np.testing.assert_allclose(out, [[[40.0, 0.0], [0.0, 0.0]]])
    with pytest.raises(ValueError, match="do not pair"):
        paired_changes(before, after, [[1.0]], sham_after, floor=0.05)
    with pytest.raises(ValueError, match="sham_after: every value must be finite"):
        paired_changes(before, after, sham_before, [[[1.1, np.nan], [5.0, 5.0]]], floor=0.05)
    with pytest.raises(ValueError, match="one probe per probe_minutes"):
        judge(np.zeros((3, 1, 4)), PROBES, ROW, DESIGN)


def test_mean_and_peak_over_the_window():
    course = np.array([5.0, 30.0, 10.0, -40.0, 99.0])          # 60 min lies outside the window
    changes = np.broadcast_to(course, (4, 2, 5)).copy()
    changes[:, 1] += 2.0                                        # noise seeds average to course + 1
    assert row_value(changes, PROBES, ROW) == pytest.approx(np.mean(course[:4]) + 1.0)
    assert row_value(changes, PROBES, replace(ROW, statistic="peak")) == pytest.approx(-39.0)


def test_the_ci_of_many_seeds_is_the_normal_one():
    rng = np.random.default_rng(1)
    values = rng.normal(35.0, 10.0, 400)
    changes = np.broadcast_to(values[:, None, None], (400, 1, 5)).copy()
    result = judge(changes, PROBES, ROW, DESIGN)
    half = 1.96 * values.std(ddof=1) / np.sqrt(400)
    assert result.value == pytest.approx(values.mean())
    assert result.ci[0] == pytest.approx(values.mean() - half, abs=0.15 * half)
    assert result.ci[1] == pytest.approx(values.mean() + half, abs=0.15 * half)
    assert result.passed                                        # 35 lies in [20.5, 50.5]


def test_one_network_seed_has_no_ci_and_a_null_row_cannot_pass():
    changes = np.full((1, 2, 5), 30.0)
    result = judge(changes, PROBES, ROW, DESIGN)
    assert result.value == pytest.approx(30.0) and all(np.isnan(result.ci)) and result.passed
    null = replace(ROW, human_change_pct=0.0, band_pct=(-10.0, 10.0))
    assert not judge(np.zeros((1, 2, 5)), PROBES, null, DESIGN).passed


def test_pass_rule_mean_in_band_and_null_rows_need_the_whole_ci():
    rng = np.random.default_rng(2)
    spread = rng.normal(0.0, 1.0, 10)
    def changes(centre, scale=1.0):
        return np.broadcast_to((centre + scale * spread)[:, None, None], (10, 1, 5)).copy()

    assert not judge(changes(60.0), PROBES, ROW, DESIGN).passed
    null = replace(ROW, name="imtbs600", human_change_pct=0.0, band_pct=(-10.0, 10.0))
    assert judge(changes(0.0), PROBES, null, DESIGN).passed
    wide = judge(changes(0.0, 20.0), PROBES, null, DESIGN)
    assert -10.0 <= wide.value <= 10.0 and not wide.passed       # the mean is in, the CI is not


def test_compare_to_rows_take_the_ratio_on_the_same_seeds():
    rng = np.random.default_rng(3)
    healthy = rng.normal(40.0, 5.0, 12)
    carriers = 0.5 * healthy + rng.normal(0.0, 1.0, 12)         # about half on every seed
    as_changes = lambda v: np.broadcast_to(v[:, None, None], (12, 1, 5)).copy()
    met = replace(ROW, name="itbs600_val66met", role="held_out", human_change_pct=None,
                  band_pct=(-100.0, -30.0), compare_to="itbs600")
    result = judge(as_changes(carriers), PROBES, met, DESIGN, reference=(as_changes(healthy), ROW))
    assert result.value == pytest.approx(100.0 * (carriers.mean() / healthy.mean() - 1.0))
    assert result.ci[0] < result.value < result.ci[1] and result.ci[1] - result.ci[0] < 10.0
    assert result.passed
    with pytest.raises(ValueError, match="needs reference"):
        judge(as_changes(carriers), PROBES, met, DESIGN)
