"""rTMS protocols: pulse schedules held in integer microseconds, builders, and a TOML schedule file.

Times are int64 microseconds from the start of the protocol (first pulse at 0 unless shifted), so
50 Hz, 5 Hz and 10 Hz schedules carry no floating-point drift and land exactly on any simulation
grid whose step divides them. A pulse of frequency f in a train is at round(k * 1e6 / f) us,
computed from its index k (never by accumulation).

Sources: theta burst (iTBS, cTBS, imTBS) Huang et al. 2005, Neuron 45:201-206; clinical 10 Hz
O'Reardon et al. 2007, Biol Psychiatry 62:1208-1216; accelerated iTBS with 1800 pulses per session
Cole et al. 2020, Am J Psychiatry 177:716-726 (SAINT); 1 Hz Chen et al. 1997, Neurology 48:1398.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .schema import Number, Table, read_toml

US_PER_MS = 1000
US_PER_S = 1_000_000
MAX_FREQUENCY_HZ = 1000.0
"""Highest pulse or burst frequency, Hz: a 1 ms period, ten steps of the 0.1 ms default grid
(stimulators fire at most about 100 Hz; the microsecond grid alone would blur above 1 MHz)."""
MAX_PULSES = 100_000
"""Most pulses in one protocol (a clinical 10 Hz session gives 3000, SAINT 1800)."""
MAX_DURATION_S = 4 * 3600
"""Longest protocol (one session's stimulation), s: pulse times and duration_us stay within it."""
MAX_DURATION_US = MAX_DURATION_S * US_PER_S


def to_us(value_ms, what: str) -> np.ndarray:
    """Milliseconds (scalar or array) as int64 microseconds; `what` names the value in errors.

    Raises ValueError unless every value is finite, within +-2**53 us (285 years: exact in float64)
    and a whole number of microseconds (to 1e-6 us).
    """
    ms = np.asarray(value_ms, dtype=np.float64)
    if not np.all(np.isfinite(ms)):
        raise ValueError(f"{what}: must be finite, got {value_ms}")
    us = ms * US_PER_MS
    if np.any(np.abs(us) > 2**53):
        raise ValueError(f"{what}: {float(ms[np.abs(us) > 2**53].ravel()[0])!r} ms is beyond the microsecond "
                         f"grid (at most {2**53 / US_PER_MS:.4g} ms)")
    whole = np.rint(us)
    off = np.abs(us - whole) > 1e-6 * np.maximum(1.0, np.abs(us))
    if np.any(off):
        raise ValueError(f"{what}: {float(ms[off].ravel()[0])!r} ms is not a whole number of microseconds")
    return whole.astype(np.int64)


def _period_us(frequency_Hz: float, what: str) -> float:
    if not (math.isfinite(frequency_Hz) and 0 < frequency_Hz <= MAX_FREQUENCY_HZ):
        raise ValueError(f"{what}: must be in (0, {MAX_FREQUENCY_HZ:g}] Hz (MAX_FREQUENCY_HZ), "
                         f"got {frequency_Hz}")
    return US_PER_S / frequency_Hz


def _grid_us(n: int, frequency_Hz: float, what: str) -> np.ndarray:
    """Times of n events at frequency_Hz from 0, us, each rounded from its own index."""
    return np.rint(np.arange(n) * _period_us(frequency_Hz, what)).astype(np.int64)


def _count(n, what: str) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= MAX_PULSES:
        raise ValueError(f"{what}: must be an integer in [1, {MAX_PULSES}] (MAX_PULSES), got {n!r}")
    return int(n)


def _check_times_ms(times_ms, what: str):
    """ValueError naming `what` if a time (ms) lies beyond MAX_DURATION_S (before to_us)."""
    late = np.asarray(times_ms, np.float64) > MAX_DURATION_S * 1e3
    if np.any(late):
        raise ValueError(f"{what}: {float(np.asarray(times_ms, np.float64)[late].ravel()[0])!r} ms is after "
                         f"MAX_DURATION_S = {MAX_DURATION_S} s")


def _check_size(n_pulses: int, end_us: int, what: str):
    """ValueError naming `what` if a schedule of n_pulses ending at end_us exceeds MAX_PULSES or
    MAX_DURATION_S (checked before its arrays are made)."""
    if n_pulses > MAX_PULSES:
        raise ValueError(f"{what}: {n_pulses} pulses, more than MAX_PULSES = {MAX_PULSES}")
    if end_us > MAX_DURATION_US:
        raise ValueError(f"{what}: lasts {end_us / US_PER_S:.6g} s, longer than MAX_DURATION_S = "
                         f"{MAX_DURATION_S} s")


@dataclass(frozen=True, eq=False)
class Protocol:
    """A pulse schedule.

    name: label (e.g. "itbs"). pulse_times_us: (n,) int64, strictly increasing, >= 0.
    intensities: (n,) relative intensity of each pulse (1.0 = the session's intensity; e.g. a
    conditioning pulse at 0.8); default all 1. duration_us: nominal length of the schedule from
    time 0 (>= the last pulse): the end of the last train for trains, the last pulse otherwise.
    sham: the same schedule with no field (the coil clicks, the brain gets nothing).
    """

    name: str
    pulse_times_us: np.ndarray
    intensities: np.ndarray | None = None
    duration_us: int | None = None
    sham: bool = False

    def __post_init__(self):
        set_ = object.__setattr__
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"Protocol.name must be a non-empty string, got {self.name!r}")
        times = np.asarray(self.pulse_times_us)
        if times.ndim != 1 or times.size == 0 or not np.issubdtype(times.dtype, np.integer):
            raise ValueError(f"Protocol {self.name!r}: pulse_times_us must be a non-empty 1-D integer "
                             f"array, got dtype {times.dtype} shape {times.shape}")
        times = times.astype(np.int64)
        if times[0] < 0 or np.any(np.diff(times) <= 0):
            raise ValueError(f"Protocol {self.name!r}: pulse_times_us must be >= 0 and strictly increasing")
        _check_size(times.size, int(times[-1]), f"Protocol {self.name!r}: pulse_times_us")
        levels = np.ones(times.size) if self.intensities is None else np.array(self.intensities, np.float64)
        if levels.shape != times.shape or not np.all(np.isfinite(levels)) or np.any(levels < 0):
            raise ValueError(f"Protocol {self.name!r}: intensities must be {times.size} finite values >= 0")
        duration = int(times[-1]) if self.duration_us is None else self.duration_us
        if isinstance(duration, bool) or not isinstance(duration, (int, np.integer)) or duration < times[-1]:
            raise ValueError(f"Protocol {self.name!r}: duration_us must be an integer >= the last pulse "
                             f"({int(times[-1])} us), got {self.duration_us!r}")
        _check_size(times.size, int(duration), f"Protocol {self.name!r}: duration_us")
        for arr in (times, levels):
            arr.setflags(write=False)
        set_(self, "pulse_times_us", times)
        set_(self, "intensities", levels)
        set_(self, "duration_us", int(duration))
        set_(self, "sham", bool(self.sham))

    @classmethod
    def from_times_ms(cls, name: str, times_ms, intensities=None, duration_ms: float | None = None,
                      sham: bool = False) -> Protocol:
        """A protocol from pulse times in ms (each a whole number of microseconds)."""
        _check_times_ms(times_ms, f"Protocol {name!r}: pulse time")
        duration = None if duration_ms is None else int(to_us(duration_ms, f"Protocol {name!r}: duration_ms"))
        return cls(name, to_us(np.atleast_1d(times_ms), f"Protocol {name!r}: pulse time"), intensities,
                   duration, sham)

    def __eq__(self, other):
        if not isinstance(other, Protocol):
            return NotImplemented
        return (self.name == other.name and self.sham == other.sham and self.duration_us == other.duration_us
                and np.array_equal(self.pulse_times_us, other.pulse_times_us)
                and np.array_equal(self.intensities, other.intensities))

    __hash__ = None

    def __repr__(self):
        sham = ", sham" if self.sham else ""
        return f"Protocol({self.name!r}: {self.n_pulses} pulses in {self.duration_ms / 1000:g} s{sham})"

    @property
    def n_pulses(self) -> int:
        """Number of pulses."""
        return int(self.pulse_times_us.size)

    @property
    def times_ms(self) -> np.ndarray:
        """Pulse times, ms (float64; exact to the microsecond)."""
        return self.pulse_times_us / US_PER_MS

    @property
    def duration_ms(self) -> float:
        """Length of the schedule in ms (stored as integer microseconds)."""
        return self.duration_us / US_PER_MS

    @property
    def field_scale(self) -> np.ndarray:
        """Factor on the session's E-field at each pulse: the intensities, or zeros for sham."""
        return np.zeros(self.n_pulses) if self.sham else self.intensities.copy()

    def steps(self, dt_ms: float, *, round_to_grid: bool = False) -> np.ndarray:
        """Step index of each pulse on a grid of dt_ms (int64; step k starts at k * dt_ms).

        dt_ms must be a whole number of nanoseconds. A pulse off the grid raises ValueError naming
        it, unless round_to_grid (then the nearest step, at most dt_ms / 2 away)."""
        dt_ns = float(dt_ms) * 1e6
        if not (math.isfinite(dt_ns) and dt_ns > 0) or abs(dt_ns - round(dt_ns)) > 1e-6 * dt_ns:
            raise ValueError(f"Protocol.steps: dt_ms must be > 0 and a whole number of nanoseconds, "
                             f"got {dt_ms!r}")
        dt_ns = int(round(dt_ns))
        times_ns = self.pulse_times_us * 1000
        if round_to_grid:
            return (2 * times_ns + dt_ns) // (2 * dt_ns)
        steps, rest = np.divmod(times_ns, dt_ns)
        if np.any(rest):
            i = int(np.argmax(rest != 0))
            raise ValueError(f"Protocol {self.name!r}: pulse {i} at {float(self.times_ms[i])!r} ms is not on "
                             f"the dt_ms={dt_ms!r} grid (pass round_to_grid=True to round)")
        return steps

    def shifted(self, offset_ms: float) -> Protocol:
        """The same schedule starting offset_ms later (e.g. after a warm-up period)."""
        offset = int(to_us(offset_ms, "Protocol.shifted: offset_ms"))
        return replace(self, pulse_times_us=self.pulse_times_us + offset,
                       duration_us=self.duration_us + offset)

    def on_grid(self, dt_ms: float) -> Protocol:
        """The same schedule with each pulse moved to the nearest step of a dt_ms grid (at most
        dt_ms / 2 away, as steps(dt_ms, round_to_grid=True)), for rates whose period is not a
        whole number of steps (0.9 Hz: 1111.1 ms). ValueError if two pulses fall on one step."""
        times = self.steps(dt_ms, round_to_grid=True) * int(round(float(dt_ms) * 1e6)) // 1000
        if np.any(np.diff(times) <= 0):
            raise ValueError(f"Protocol {self.name!r}: two pulses fall on one step of dt_ms={dt_ms!r}")
        return replace(self, pulse_times_us=times, duration_us=max(self.duration_us, int(times[-1])))


def _trains(name: str, train_us: np.ndarray, train_length_us: int, n_trains: int, gap_us: int,
            intensity: float, what: str) -> Protocol:
    """n_trains copies of the pulse pattern train_us, onsets train_length_us + gap_us apart; `what`
    names the arguments in errors."""
    _check_size(n_trains * train_us.size, (n_trains - 1) * (train_length_us + gap_us) + train_length_us, what)
    onsets = np.arange(n_trains, dtype=np.int64) * (train_length_us + gap_us)
    times = (onsets[:, None] + train_us[None, :]).ravel()
    return Protocol(name, times, np.full(times.size, float(intensity)),
                    int(onsets[-1] + train_length_us))


def single_pulse(intensity: float = 1.0) -> Protocol:
    """One pulse at t = 0."""
    return Protocol("single", np.zeros(1, np.int64), [intensity])


def paired_pulse(isi_ms: float, conditioning: float = 1.0, test: float = 1.0) -> Protocol:
    """A conditioning pulse at 0 and a test pulse isi_ms later (relative intensities), as for
    SICI/ICF/LICI (e.g. conditioning = 0.8 / 1.2 of a test at 120% RMT)."""
    isi = int(to_us(isi_ms, "paired_pulse: isi_ms"))
    if isi <= 0:
        raise ValueError(f"paired_pulse: isi_ms must be > 0, got {isi_ms}")
    return Protocol(f"paired-{isi_ms:g}ms", np.array([0, isi]), [conditioning, test])


def rtms(frequency_Hz: float, pulses_per_train: int, n_trains: int = 1, inter_train_interval_s: float = 0.0,
         *, intensity: float = 1.0, name: str | None = None) -> Protocol:
    """Trains of pulses at frequency_Hz.

    inter_train_interval_s is the gap (off time) between trains, as clinical protocols state it:
    a train lasts pulses_per_train / frequency_Hz (its last pulse plus one period), then the gap
    follows, so onsets are pulses_per_train / frequency_Hz + inter_train_interval_s apart
    (10 Hz clinical: 4 s trains, 26 s gaps, onsets 30 s apart)."""
    pulses = _count(pulses_per_train, "rtms: pulses_per_train")
    trains = _count(n_trains, "rtms: n_trains")
    length = int(round(pulses * _period_us(frequency_Hz, "rtms: frequency_Hz")))
    gap = int(to_us(inter_train_interval_s * 1000, "rtms: inter_train_interval_s"))
    if gap < 0:
        raise ValueError(f"rtms: inter_train_interval_s must be >= 0, got {inter_train_interval_s}")
    return _trains(name or f"rtms-{frequency_Hz:g}Hz", _grid_us(pulses, frequency_Hz, "rtms: frequency_Hz"),
                   length, trains, gap, intensity,
                   "rtms: n_trains x pulses_per_train, inter_train_interval_s")


def theta_burst(bursts_per_train: int, n_trains: int = 1, inter_train_interval_s: float = 0.0, *,
                pulses_per_burst: int = 3, burst_frequency_Hz: float = 50.0, burst_rate_Hz: float = 5.0,
                intensity: float = 1.0, name: str = "tbs") -> Protocol:
    """Theta burst stimulation (Huang et al. 2005): bursts of pulses_per_burst pulses at
    burst_frequency_Hz, repeated at burst_rate_Hz; a train of bursts_per_train bursts lasts
    bursts_per_train / burst_rate_Hz, then a gap of inter_train_interval_s (as in `rtms`)."""
    bursts = _count(bursts_per_train, "theta_burst: bursts_per_train")
    per_burst = _count(pulses_per_burst, "theta_burst: pulses_per_burst")
    burst = _grid_us(per_burst, burst_frequency_Hz, "theta_burst: burst_frequency_Hz")
    onsets = _grid_us(bursts, burst_rate_Hz, "theta_burst: burst_rate_Hz")
    period = _period_us(burst_rate_Hz, "theta_burst: burst_rate_Hz")
    _check_size(bursts * per_burst, int(round(bursts * period)),
                "theta_burst: bursts_per_train x pulses_per_burst")
    if burst[-1] >= period:
        raise ValueError(f"theta_burst: a burst of {per_burst} pulses at {burst_frequency_Hz} Hz does not "
                         f"fit in the {period / 1000:g} ms between bursts (burst_rate_Hz {burst_rate_Hz})")
    length = int(round(bursts * period))
    gap = int(to_us(inter_train_interval_s * 1000, "theta_burst: inter_train_interval_s"))
    if gap < 0:
        raise ValueError(f"theta_burst: inter_train_interval_s must be >= 0, got {inter_train_interval_s}")
    train = (onsets[:, None] + burst[None, :]).ravel()
    return _trains(name, train, length, _count(n_trains, "theta_burst: n_trains"), gap, intensity,
                   "theta_burst: n_trains x bursts_per_train x pulses_per_burst, inter_train_interval_s")


def _tbs_trains(n_pulses: int, pulses_per_train: int, what: str) -> int:
    n = _count(n_pulses, f"{what}: n_pulses")
    if n % pulses_per_train:
        raise ValueError(f"{what}: n_pulses must be a multiple of {pulses_per_train} (pulses per train), "
                         f"got {n}")
    return n // pulses_per_train


def itbs(n_pulses: int = 600, intensity: float = 1.0) -> Protocol:
    """Intermittent TBS (Huang et al. 2005): 3 pulses at 50 Hz, bursts at 5 Hz, 2 s trains
    (30 pulses) every 10 s (8 s gaps). 600 pulses: 20 trains, last pulse at 191.84 s, 192 s
    (Huang et al. quote 190 s); 1800 pulses as in SAINT (Cole et al. 2020): 60 trains."""
    trains = _tbs_trains(n_pulses, 30, "itbs")
    return replace(theta_burst(10, trains, 8.0, intensity=intensity),
                   name="itbs" if n_pulses == 600 else f"itbs{n_pulses}")


def ctbs(n_pulses: int = 600, intensity: float = 1.0) -> Protocol:
    """Continuous TBS (Huang et al. 2005): bursts of 3 pulses at 50 Hz every 200 ms without
    pause; 600 pulses in 40 s (cTBS300: 300 pulses in 20 s)."""
    bursts = _tbs_trains(n_pulses, 3, "ctbs")
    return replace(theta_burst(bursts, intensity=intensity),
                   name="ctbs" if n_pulses == 600 else f"ctbs{n_pulses}")


def imtbs(n_pulses: int = 600, intensity: float = 1.0) -> Protocol:
    """Intermediate TBS (Huang et al. 2005): 5 s trains of TBS (75 pulses) every 15 s (10 s gaps);
    600 pulses: 8 trains in 110 s."""
    trains = _tbs_trains(n_pulses, 75, "imtbs")
    return replace(theta_burst(25, trains, 10.0, intensity=intensity),
                   name="imtbs" if n_pulses == 600 else f"imtbs{n_pulses}")


def one_hz(n_pulses: int = 900, intensity: float = 1.0) -> Protocol:
    """1 Hz rTMS, one continuous train (900 pulses in 15 min; Chen et al. 1997, Neurology
    48:1398, used 0.9 Hz, 810 pulses in 15 min)."""
    return rtms(1.0, _count(n_pulses, "one_hz: n_pulses"), intensity=intensity, name="1hz")


def ten_hz_clinical(intensity: float = 1.0) -> Protocol:
    """Clinical 10 Hz rTMS for depression (O'Reardon et al. 2007): 75 trains of 40 pulses
    (4 s) with 26 s gaps, 3000 pulses; last pulse at 2223.9 s, 2224 s."""
    return rtms(10.0, 40, 75, 26.0, intensity=intensity, name="10hz")


def sham(protocol: Protocol) -> Protocol:
    """The same schedule with no field: every pulse activates nothing."""
    return replace(protocol, name=f"sham-{protocol.name}", sham=True)


_BY_NAME = {
    "single": single_pulse,
    "itbs": itbs,
    "itbs1800": lambda: itbs(1800),
    "ctbs": ctbs,
    "ctbs300": lambda: ctbs(300),
    "imtbs": imtbs,
    "1hz": one_hz,
    "10hz": ten_hz_clinical,
}


def protocol_names() -> tuple[str, ...]:
    """Names protocol_by_name accepts (each also with the prefix "sham-")."""
    return tuple(_BY_NAME)


def protocol_by_name(name: str) -> Protocol:
    """A built-in protocol by name: single, itbs, itbs1800, ctbs, ctbs300, imtbs, 1hz, 10hz; the
    prefix "sham-" gives the sham version (e.g. "sham-itbs")."""
    key = name.strip().lower()
    is_sham = key.startswith("sham-")
    key = key.removeprefix("sham-")
    if key not in _BY_NAME:
        raise ValueError(f"unknown protocol {name!r}; built-in: {', '.join(_BY_NAME)} "
                         f"(each also as sham-NAME), or a .toml schedule file")
    protocol = _BY_NAME[key]()
    return sham(protocol) if is_sham else protocol


# --- schedule files ------------------------------------------------------------------------------

_TOP_KEYS = {"name", "sham", "duration_ms", "pulse_times_ms", "intensities", "train"}
_TRAIN_KEYS = {"start_ms", "frequency_Hz", "pulses", "burst_pulses", "burst_frequency_Hz", "repeat",
               "every_s", "intensity"}
_COUNT = Number(1, MAX_PULSES, integer=True)
_FREQUENCY = Number(0, MAX_FREQUENCY_HZ, open_low=True)


def _train_times(keys: Table) -> tuple[np.ndarray, float, int]:
    """Pulse times (us), intensity and end (us) of one [[train]] table."""
    start_ms = float(keys.get("start_ms", 0.0, Number(0, MAX_DURATION_S * 1e3)))
    start = int(keys.check("start_ms", lambda: to_us(start_ms, "start_ms")))
    pulses = keys.get("pulses", None, _COUNT)
    freq = float(keys.get("frequency_Hz", None, _FREQUENCY))
    per_burst = keys.get("burst_pulses", 1, _COUNT)
    burst_freq = None
    if per_burst > 1:
        burst_freq = float(keys.get("burst_frequency_Hz", None, _FREQUENCY))
    elif "burst_frequency_Hz" in keys.table:
        keys.fail("burst_frequency_Hz", "needs burst_pulses > 1")
    repeat = keys.get("repeat", 1, _COUNT)
    length = int(round(pulses * US_PER_S / freq))
    every = length
    if repeat > 1:
        every_s = float(keys.get("every_s", None, Number(0, MAX_DURATION_S, open_low=True)))
        every = int(keys.check("every_s", lambda: to_us(every_s * 1000, "every_s")))
        if every < length:
            keys.fail("every_s", f"trains of {length / US_PER_S:g} s overlap when repeated every "
                                 f"{every / US_PER_S:g} s")
    elif "every_s" in keys.table:
        keys.fail("every_s", "needs repeat > 1")
    keys.check("repeat" if repeat > 1 else "pulses", lambda: _check_size(
        pulses * per_burst * repeat, start + (repeat - 1) * every + length, "pulses x burst_pulses x repeat"))
    burst = np.zeros(1, np.int64)
    if burst_freq is not None:
        burst = _grid_us(per_burst, burst_freq, "burst_frequency_Hz")
    train = (_grid_us(pulses, freq, "frequency_Hz")[:, None] + burst[None, :]).ravel()
    onsets = start + np.arange(repeat, dtype=np.int64) * every
    times = (onsets[:, None] + train[None, :]).ravel()
    return times, float(keys.get("intensity", 1.0, Number(0, math.inf))), int(onsets[-1] + length)


def read_protocol(path) -> Protocol:
    """Read a schedule file (TOML). Either explicit pulses::

        name = "my-schedule"           # optional (default: the file name)
        pulse_times_ms = [0.0, 50.0, 100.0]
        intensities = [1.0, 0.8, 1.0]  # optional, relative to the session's intensity
        duration_ms = 1000.0           # optional (default: the last pulse)
        sham = false                   # optional

    or trains (pulses at frequency_Hz from start_ms; with burst_pulses > 1 each is a burst at
    burst_frequency_Hz; repeat times every every_s, onset to onset)::

        [[train]]
        start_ms = 0.0
        frequency_Hz = 5.0
        pulses = 10
        burst_pulses = 3
        burst_frequency_Hz = 50.0
        repeat = 20
        every_s = 10.0
        intensity = 1.0

    Frequencies are at most MAX_FREQUENCY_HZ, pulse counts at most MAX_PULSES and times at most
    MAX_DURATION_S. Errors name the file and the key."""
    path = Path(path)
    data = read_toml(path)
    top = Table(path, data, "", _TOP_KEYS)
    name = data.get("name", path.stem)
    if not isinstance(name, str) or not name:
        top.fail("name", f"must be a non-empty string, got {name!r}")
    is_sham = data.get("sham", False)
    if not isinstance(is_sham, bool):
        top.fail("sham", f"must be true or false, got {is_sham!r}")
    if ("pulse_times_ms" in data) == ("train" in data):
        raise ValueError(f"{path}: give either 'pulse_times_ms' or [[train]] tables, not "
                         f"{'both' if 'train' in data else 'neither'}")
    if "train" in data:
        if "intensities" in data:
            top.fail("intensities", "goes with pulse_times_ms; a [[train]] has 'intensity'")
        tables = data["train"]
        if not isinstance(tables, list) or not tables or not all(isinstance(t, dict) for t in tables):
            top.fail("train", "must be one or more [[train]] tables")
        parts = [_train_times(Table(path, t, f"train[{i}].", _TRAIN_KEYS)) for i, t in enumerate(tables)]
        top.check("train", lambda: _check_size(sum(p[0].size for p in parts), 0, "all trains"))
        times = np.concatenate([p[0] for p in parts])
        levels = np.concatenate([np.full(p[0].size, p[1]) for p in parts])
        end = max(p[2] for p in parts)
        order = np.argsort(times, kind="stable")
        times, levels = times[order], levels[order]
        if np.any(np.diff(times) <= 0):
            i = int(np.argmax(np.diff(times) <= 0))
            top.fail("train", f"trains overlap: two pulses at {float(times[i] / US_PER_MS)!r} ms")
    else:
        raw = data["pulse_times_ms"]
        if not isinstance(raw, list) or not raw or not all(
                isinstance(t, (int, float)) and not isinstance(t, bool) for t in raw):
            top.fail("pulse_times_ms", "must be a non-empty list of numbers")
        top.check("pulse_times_ms", lambda: _check_times_ms(raw, "pulse time"))
        times = top.check("pulse_times_ms", lambda: to_us(raw, "pulse time"))
        if times[0] < 0 or np.any(np.diff(times) <= 0):
            top.fail("pulse_times_ms", "must be >= 0 and strictly increasing")
        top.check("pulse_times_ms", lambda: _check_size(times.size, int(times[-1]), "the pulses"))
        levels = data.get("intensities", [1.0] * len(raw))
        if (not isinstance(levels, list) or len(levels) != len(raw) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0
                for v in levels)):
            top.fail("intensities", f"must be {len(raw)} numbers >= 0, one per pulse")
        end = int(times[-1])
    if "duration_ms" in data:
        duration_ms = float(top.get("duration_ms", None, Number(0, MAX_DURATION_S * 1e3)))
        end = int(top.check("duration_ms", lambda: to_us(duration_ms, "duration_ms")))
        if end < times[-1]:
            top.fail("duration_ms", f"is before the last pulse at {float(times[-1] / US_PER_MS)!r} ms")
    return Protocol(name, times, np.asarray(levels, np.float64), end, is_sham)


def _toml_list(values, per_line: int = 8) -> str:
    items = [repr(float(v)) for v in values]
    rows = [", ".join(items[i:i + per_line]) for i in range(0, len(items), per_line)]
    return "[\n    " + ",\n    ".join(rows) + ",\n]"


def config_protocol_names(protocols, folder, where: str = "protocols") -> list[str]:
    """The protocol.name configuration value of each protocol: its built-in name where
    protocol_by_name gives the same schedule, else the absolute path of a schedule file written
    to folder/<name>.toml. ValueError naming `where` if two different protocols share a name."""
    seen, out = {}, []
    for protocol in protocols:
        if seen.setdefault(protocol.name, protocol) != protocol:
            raise ValueError(f"{where}: two different protocols are named {protocol.name!r}")
        if protocol.name.removeprefix("sham-") in _BY_NAME and protocol_by_name(protocol.name) == protocol:
            out.append(protocol.name)
            continue
        path = (Path(folder) / f"{protocol.name}.toml").absolute()
        write_protocol(path, protocol)
        out.append(str(path))
    return out


def write_protocol(path, protocol: Protocol) -> None:
    """Write `protocol` as an explicit-pulse schedule file (TOML) that read_protocol reads back
    equal; the file appears whole or not at all."""
    from tmsim_io import atomic_output

    lines = [f"name = {json.dumps(protocol.name)}", f"sham = {str(protocol.sham).lower()}",
             f"duration_ms = {protocol.duration_ms!r}",
             f"pulse_times_ms = {_toml_list(protocol.times_ms)}"]
    if np.any(protocol.intensities != 1.0):
        lines.append(f"intensities = {_toml_list(protocol.intensities)}")
    with atomic_output(path) as tmp:
        Path(tmp).write_text("\n".join(lines) + "\n", encoding="utf-8")
