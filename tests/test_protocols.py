"""rTMS protocols: pulse times against their published definitions, the simulation grid, files."""

import itertools

import numpy as np
import pytest

from coupling import protocols as P

MS = 1000  # us per ms
S = 1_000_000  # us per s


def _definition(n_trains, train_period_us, bursts, burst_period_us, pulses, pulse_period_us):
    """Pulse times (us) from a nested definition: trains of bursts of pulses."""
    return np.array(sorted(t * train_period_us + b * burst_period_us + p * pulse_period_us
                           for t, b, p in itertools.product(range(n_trains), range(bursts), range(pulses))))


def test_itbs_is_huang_2005():
    p = P.itbs()
    assert p.n_pulses == 600
    # 3 pulses at 50 Hz, bursts at 5 Hz, 2 s trains every 10 s
    np.testing.assert_array_equal(p.pulse_times_us, _definition(20, 10 * S, 10, 200 * MS, 3, 20 * MS))
    t = p.times_ms
    assert set(np.diff(t.reshape(-1, 3), axis=1).ravel()) == {20.0}          # intra-burst interval
    assert set(np.diff(t[::3].reshape(20, 10), axis=1).ravel()) == {200.0}   # burst onsets
    assert set(np.diff(t[::30])) == {10_000.0}                               # train onsets
    assert set(t[30::30] - t[29:-1:30]) == {10_000.0 - 1_840.0}              # 8 s gap after each train end
    assert t[-1] == 19 * 10_000 + 9 * 200 + 2 * 20 == 191_840.0
    assert p.duration_ms == 19 * 10_000 + 2_000
    assert not p.sham and np.all(p.field_scale == 1)


def test_itbs_1800_as_in_saint():
    p = P.itbs(1800)
    assert p.n_pulses == 1800 and p.name == "itbs1800"
    np.testing.assert_array_equal(p.pulse_times_us, _definition(60, 10 * S, 10, 200 * MS, 3, 20 * MS))
    with pytest.raises(ValueError, match="itbs: n_pulses must be a multiple of 30"):
        P.itbs(620)


def test_ctbs_is_600_pulses_in_40_s():
    p = P.ctbs()
    assert p.n_pulses == 600
    np.testing.assert_array_equal(p.pulse_times_us, _definition(1, 0, 200, 200 * MS, 3, 20 * MS))
    assert p.duration_ms == 40_000.0 and p.times_ms[-1] == 40_000 - 200 + 40
    assert P.ctbs(300).duration_ms == 20_000.0


def test_imtbs_5_s_trains_every_15_s():
    p = P.imtbs()
    assert p.n_pulses == 600
    np.testing.assert_array_equal(p.pulse_times_us, _definition(8, 15 * S, 25, 200 * MS, 3, 20 * MS))
    assert p.duration_ms == 110_000.0


def test_ten_hz_clinical_is_oreardon_2007():
    p = P.ten_hz_clinical()
    assert p.n_pulses == 3000
    np.testing.assert_array_equal(p.pulse_times_us, _definition(75, 30 * S, 1, 0, 40, 100 * MS))
    t = p.times_ms.reshape(75, 40)
    assert set(np.diff(t[:, 0])) == {30_000.0}                          # onset to onset
    assert set(t[1:, 0] - (t[:-1, -1] + 100.0)) == {26_000.0}           # 26 s gap after each 4 s train
    assert p.duration_ms == 74 * 30_000 + 4_000


def test_one_hz_and_generic_rtms():
    p = P.one_hz()
    assert p.n_pulses == 900 and set(np.diff(p.times_ms)) == {1000.0}
    assert P.one_hz(n_pulses=1200).n_pulses == 1200
    r = P.rtms(20.0, 5, n_trains=3, inter_train_interval_s=1.0)
    np.testing.assert_array_equal(r.pulse_times_us, _definition(3, 1_250 * MS, 1, 0, 5, 50 * MS))
    # a period that is not a whole number of microseconds: each pulse rounded from its own index
    k = np.arange(3000)
    third = P.rtms(3.0, 3000).pulse_times_us
    assert np.all(np.abs(third - k * 1e6 / 3) <= 0.5)
    with pytest.raises(ValueError, match="rtms: frequency_Hz"):
        P.rtms(0.0, 10)
    with pytest.raises(ValueError, match="rtms: pulses_per_train"):
        P.rtms(10.0, 0)


def test_theta_burst_bursts_must_fit_between_burst_onsets():
    with pytest.raises(ValueError, match="a burst of 11 pulses at 50.0 Hz does not fit in the 200 ms"):
        P.theta_burst(10, pulses_per_burst=11)
    assert P.theta_burst(10, pulses_per_burst=10).n_pulses == 100  # last pulse 180 ms after burst onset


def test_single_and_paired_pulse():
    assert P.single_pulse().pulse_times_us.tolist() == [0]
    p = P.paired_pulse(2.5, conditioning=0.8, test=1.2)
    assert p.pulse_times_us.tolist() == [0, 2500]
    assert p.intensities.tolist() == [0.8, 1.2]
    with pytest.raises(ValueError, match="paired_pulse: isi_ms"):
        P.paired_pulse(0.0)


@pytest.mark.parametrize("dt_ms", [0.1, 0.05, 0.025])
@pytest.mark.parametrize("build", [P.itbs, P.ctbs, P.imtbs, P.ten_hz_clinical, P.one_hz])
def test_steps_are_exact_on_the_grid(build, dt_ms):
    p = build()
    steps = p.steps(dt_ms)
    dt_us = round(dt_ms * 1000)
    np.testing.assert_array_equal(steps * dt_us, p.pulse_times_us)
    assert steps.dtype == np.int64


def test_steps_off_the_grid_raise_or_round():
    p = P.itbs()
    with pytest.raises(ValueError, match=r"pulse 1 at 20.0 ms is not on the dt_ms=0.3 grid"):
        p.steps(0.3)
    steps = p.steps(0.3, round_to_grid=True)
    assert np.all(np.abs(steps * 0.3 - p.times_ms) <= 0.15 + 1e-9)
    with pytest.raises(ValueError, match="dt_ms must be > 0"):
        p.steps(0.0)


def test_shifted_moves_pulses_and_end():
    p = P.itbs().shifted(500.0)
    assert p.times_ms[0] == 500.0 and p.duration_ms == 192_500.0
    assert p.steps(0.1)[0] == 5000


def test_sham_keeps_the_times_and_removes_the_field():
    real = P.itbs()
    s = P.sham(real)
    assert s.sham and s.name == "sham-itbs"
    np.testing.assert_array_equal(s.pulse_times_us, real.pulse_times_us)
    assert np.all(s.field_scale == 0) and np.all(real.field_scale == 1)


def test_protocol_by_name():
    for name in P.protocol_names():
        assert P.protocol_by_name(name).n_pulses >= 1
    assert P.protocol_by_name("iTBS") == P.itbs()
    assert P.protocol_by_name("10hz").n_pulses == 3000
    assert P.protocol_by_name("sham-ctbs") == P.sham(P.ctbs())
    with pytest.raises(ValueError, match="unknown protocol 'theta'.*itbs"):
        P.protocol_by_name("theta")


def test_protocol_validation():
    with pytest.raises(ValueError, match="strictly increasing"):
        P.Protocol("x", np.array([0, 10, 10]))
    with pytest.raises(ValueError, match="duration_us"):
        P.Protocol("x", np.array([0, 10]), duration_us=5)
    with pytest.raises(ValueError, match="0.0005 ms is not a whole number of microseconds"):
        P.Protocol.from_times_ms("x", [0.0, 0.0005])
    assert P.Protocol.from_times_ms("x", [0.1, 191.84]).pulse_times_us.tolist() == [100, 191_840]
    levels = np.array([1.0, 0.5])
    p = P.Protocol("x", np.array([0, 10]), levels)
    levels[0] = 3.0  # the protocol keeps its own read-only copy
    assert p.intensities.tolist() == [1.0, 0.5] and not p.intensities.flags.writeable


@pytest.mark.parametrize("protocol", [P.itbs(), P.paired_pulse(3.0, 0.8, 1.2), P.sham(P.ten_hz_clinical()),
                                      P.single_pulse().shifted(7.5)])
def test_file_round_trip(tmp_path, protocol):
    path = tmp_path / "schedule.toml"
    P.write_protocol(path, protocol)
    assert P.read_protocol(path) == protocol
    assert [f.name for f in tmp_path.iterdir()] == ["schedule.toml"]


def test_train_file_defines_the_same_itbs(tmp_path):
    path = tmp_path / "my_itbs.toml"
    path.write_text("""
[[train]]
frequency_Hz = 5.0
pulses = 10
burst_pulses = 3
burst_frequency_Hz = 50.0
repeat = 20
every_s = 10.0
""")
    p = P.read_protocol(path)
    assert p.name == "my_itbs"
    np.testing.assert_array_equal(p.pulse_times_us, P.itbs().pulse_times_us)
    assert p.duration_us == P.itbs().duration_us


def test_train_file_with_two_trains_and_intensities(tmp_path):
    path = tmp_path / "two.toml"
    path.write_text("""
name = "two"
[[train]]
frequency_Hz = 10.0
pulses = 3
[[train]]
start_ms = 1000.0
frequency_Hz = 50.0
pulses = 2
intensity = 0.5
""")
    p = P.read_protocol(path)
    assert p.times_ms.tolist() == [0.0, 100.0, 200.0, 1000.0, 1020.0]
    assert p.intensities.tolist() == [1.0, 1.0, 1.0, 0.5, 0.5]
    assert p.duration_ms == 1040.0


@pytest.mark.parametrize("text, key", [
    ("pulse_times_ms = [0.0, 5.0\n", "not valid TOML"),
    ("pulse_times_ms = [0.0, 5.0]\nfrequency = 3\n", "key 'frequency'"),
    ("pulse_times_ms = [5.0, 1.0]\n", "key 'pulse_times_ms'"),
    ("pulse_times_ms = [0.0, 0.0001]\n", "key 'pulse_times_ms'"),
    ("pulse_times_ms = [0.0, 1.0]\nintensities = [1.0]\n", "key 'intensities'"),
    ("pulse_times_ms = [0.0, 10.0]\nduration_ms = 5.0\n", "key 'duration_ms'"),
    ("pulse_times_ms = [0.0]\nsham = 1\n", "key 'sham'"),
    ("name = 'x'\n", "either 'pulse_times_ms' or"),
    ("[[train]]\nfrequency_Hz = 10.0\npulses = 3\n[[train]]\nfrequncy_Hz = 10.0\npulses = 3\n",
     "key 'train[1].frequncy_Hz'"),
    ("[[train]]\nfrequency_Hz = -10.0\npulses = 3\n", "key 'train[0].frequency_Hz'"),
    ("[[train]]\nfrequency_Hz = 10.0\npulses = 3.5\n", "key 'train[0].pulses'"),
    ("[[train]]\nfrequency_Hz = 10.0\npulses = 30\nrepeat = 2\nevery_s = 1.0\n", "key 'train[0].every_s'"),
    ("[[train]]\nfrequency_Hz = 10.0\npulses = 3\n[[train]]\nfrequency_Hz = 20.0\npulses = 3\n",
     "key 'train'"),
])
def test_bad_files_name_the_file_and_key(tmp_path, text, key):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ValueError) as err:
        P.read_protocol(path)
    assert str(path) in str(err.value) and key in str(err.value)
