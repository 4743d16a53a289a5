"""The pre-registered targets file: its loader reads the committed file and names the file and
key of a bad entry."""

import re
from pathlib import Path

import pytest

from coupling.targets import load_targets

TARGETS = Path(__file__).resolve().parents[1] / "validation" / "targets.toml"

GOOD = """
[design]
network_seeds = [0, 1]
calibration_network_seeds = [100, 101]
noise_seeds = [0]
window_min = [0, 30]
probe_minutes = [0, 10, 30, 60]
test_percent_rmt = 120
n_test = 20
rmt_trials = 10
rmt_tolerance_pct = 1.0
baseline_floor = 0.05
bootstrap_seed = 0
metric = "m"
pass_rule = "p"

[calibration]
free_parameters = ["plasticity.a"]
ranges = {"plasticity.a" = [0.5, 8.0]}
start = {"plasticity.a" = 2.0}
screening_network_seeds = [101]
screening_noise_seeds = [0]
method = "m"
loss = "l"
budget = 60

[[target]]
name = "a"
protocol = "itbs"
pulses = 600
percent_rmt = 80
role = "calibration"
human_change_pct = 35.5
band_pct = [20.5, 50.5]
source = "s"

[[target]]
name = "b"
protocol = "rtms"
frequency_hz = 1.0
pulses = 900
percent_rmt = 115
role = "held_out"
scenario = "val66met"
compare_to = "a"
band_pct = [-100, -30]
source = "s"
"""


def test_the_committed_targets_load_with_three_calibration_and_seven_held_out_rows():
    targets = load_targets(TARGETS)
    assert [t.name for t in targets.by_role("calibration")] == ["itbs600", "ctbs600", "rtms0.9hz810"]
    assert len(targets.by_role("held_out")) == 7
    assert len(targets.design.network_seeds) >= 10 and len(targets.design.noise_seeds) >= 3
    assert not set(targets.design.network_seeds) & set(targets.design.calibration_network_seeds)
    assert targets.calibration.frozen_parameters_sha256 == ""      # no calibration has run
    for t in targets.targets:
        assert t.source and t.band_pct[0] < t.band_pct[1]
        if t.human_change_pct is not None:
            assert t.band_pct[0] <= t.human_change_pct <= t.band_pct[1]


def test_a_small_file_reads_back_its_values(tmp_path):
    path = tmp_path / "targets.toml"
    path.write_text(GOOD)
    targets = load_targets(path)
    a, b = targets.targets
    assert targets.design.resamples == 10000 and targets.design.control == "sham"
    assert targets.design.ci_method == "BCa" and targets.design.bridge_min_gap_s == 0.0
    assert targets.calibration.free_parameters == ("plasticity.a",)
    assert targets.calibration.ranges == {"plasticity.a": (0.5, 8.0)}
    assert targets.calibration.start == {"plasticity.a": 2.0}
    assert targets.calibration.screening_network_seeds == (101,)
    assert a.frequency_hz is None and a.scenario == "healthy" and a.window_min == (0, 30)
    assert a.statistic == "mean"
    assert b.frequency_hz == 1.0 and b.compare_to == "a" and b.human_change_pct is None


@pytest.mark.parametrize("change, key", [
    (('role = "calibration"', 'role = "calibrate"'), "target[0].role"),
    (("band_pct = [20.5, 50.5]", "band_pct = [0, 30]"), "target[0].band_pct"),
    (("frequency_hz = 1.0\n", ""), "target[1].frequency_hz"),
    (('compare_to = "a"', 'compare_to = "c"'), "target[1].compare_to"),
    (('name = "b"', 'name = "a"'), "target[1].name"),
    (('scenario = "val66met"', 'scenario = "sad"'), "target[1].scenario"),
    (("network_seeds = [0, 1]", "network_seeds = [0, 0]"), "design.network_seeds"),
    (("window_min = [0, 30]", "window_min = [30, 0]"), "design.window_min"),
    (("calibration_network_seeds = [100, 101]", "calibration_network_seeds = [1, 101]"),
     "design.calibration_network_seeds"),
    (('source = "s"\n\n', 'source = "s"\nwindow_min = [40, 50]\n\n'), "target[0].window_min"),
    (('source = "s"\n\n', 'source = "s"\nstatistic = "median"\n\n'), "target[0].statistic"),
    (("budget = 60", "budget = 0"), "calibration.budget"),
    (("[0.5, 8.0]", "[8.0, 0.5]"), "calibration.ranges"),
    (("[0.5, 8.0]", "[0.5, inf]"), "calibration.ranges"),
    (('ranges = {"plasticity.a"', 'ranges = {"plasticity.b"'), "calibration.ranges"),
    (('start = {"plasticity.a" = 2.0}', 'start = {"plasticity.a" = 9.0}'), "calibration.start"),
    (("screening_network_seeds = [101]", "screening_network_seeds = [0]"),
     "calibration.screening_network_seeds"),
    (("screening_noise_seeds = [0]", "screening_noise_seeds = [3]"), "calibration.screening_noise_seeds"),
    (('source = "s"\n\n', 'source = "s"\nseed = 3\n\n'), "target[0].seed"),
    (('role = "calibration"', 'role = "held_out"'), "target"),
])
def test_a_bad_entry_names_the_file_and_key(tmp_path, change, key):
    path = tmp_path / "targets.toml"
    assert change[0] in GOOD
    path.write_text(GOOD.replace(change[0], change[1], 1))
    with pytest.raises(ValueError, match=re.escape(f"targets.toml: key '{key}'")):
        load_targets(path)
