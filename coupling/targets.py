"""Pre-registered after-effect targets (validation/targets.toml): what the after-effects
validation is judged against, read and checked before any run.

The file has one `[design]` table (seeds, probes, window, statistics), one `[calibration]`
table (what calibration may change and in what ranges, how it searches, its loss and budget)
and one `[[target]]` table per row: a protocol at an intensity, the human effect with its
spread and source, the pass band, the statistic over the window, and whether the row is
calibration or held out. A bad entry raises ValueError naming the file and the key, e.g.
``targets.toml: key 'target[3].band_pct': ...``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from .scenario import SCENARIOS
from .schema import Number, Table, optional, read_toml, text

PROTOCOLS = ("itbs", "ctbs", "imtbs", "rtms")
"""Protocol kinds of a target: the TBS patterns (coupling.itbs, ctbs, imtbs) or rTMS at
frequency_hz (coupling.rtms)."""

ROLES = ("calibration", "held_out")

STATISTICS = ("mean", "peak")
"""A row's statistic over its window: the mean over its probes, or the probe whose change
(mean over network seeds) is largest in magnitude ("mean maximum" in meta-analyses)."""

_DESIGN_KEYS = {"network_seeds", "calibration_network_seeds", "noise_seeds", "window_min", "probe_minutes",
                "test_percent_rmt", "n_test", "dt_ms", "bridge_min_gap_s", "rmt_trials", "rmt_tolerance_pct",
                "baseline_floor", "control", "resamples", "confidence", "ci_method", "bootstrap_seed",
                "metric", "pass_rule"}
_CALIBRATION_KEYS = {"free_parameters", "ranges", "start", "screening_network_seeds", "screening_noise_seeds",
                     "method", "loss", "budget", "frozen_parameters_sha256"}
_TARGET_KEYS = {"name", "protocol", "pulses", "frequency_hz", "percent_rmt", "scenario", "role",
                "human_change_pct", "spread_pct", "spread", "band_pct", "compare_to", "window_min",
                "statistic", "source", "note"}


@dataclass(frozen=True)
class Design:
    """How every row is measured: network_seeds x noise_seeds runs per condition, each paired
    with `control` on the same seeds (calibration runs on calibration_network_seeds); MEP
    probes of n_test pulses at test_percent_rmt % RMT at probe_minutes after the end of
    stimulation, steps of dt_ms, bridging from bridge_min_gap_s (0: off); the RMT found per
    network seed with rmt_trials pulses to rmt_tolerance_pct; a seed whose baseline MEP proxy
    is below baseline_floor counts against the row; CI: `confidence` `ci_method` bootstrap
    over network seeds, `resamples` resamples from bootstrap_seed."""

    network_seeds: tuple
    calibration_network_seeds: tuple
    noise_seeds: tuple
    window_min: tuple
    probe_minutes: tuple
    test_percent_rmt: float
    n_test: int
    dt_ms: float
    bridge_min_gap_s: float
    rmt_trials: int
    rmt_tolerance_pct: float
    baseline_floor: float
    control: str
    resamples: int
    confidence: float
    ci_method: str
    bootstrap_seed: int
    metric: str
    pass_rule: str


@dataclass(frozen=True)
class Calibration:
    """What calibration may change (free_parameters: dotted config keys, fixed before the first
    calibration run; ranges: {key: (low, high)}; start: {key: value}, the search's first
    point), how it searches (`method`: screening evaluations of the calibration rows on
    screening_network_seeds x screening_noise_seeds, subsets of the design's calibration and
    noise seeds), its loss and its budget (screening evaluations); frozen_parameters_sha256:
    the hash of the parameter set it ends with, committed before any held-out run ("" before)."""

    free_parameters: tuple
    ranges: dict
    start: dict
    screening_network_seeds: tuple
    screening_noise_seeds: tuple
    method: str
    loss: str
    budget: int
    frozen_parameters_sha256: str


@dataclass(frozen=True)
class Target:
    """One row: `protocol` (PROTOCOLS) with `pulses` (and frequency_hz for rtms) at
    percent_rmt % RMT in `scenario`; the human MEP change (%, spread_pct of kind `spread`,
    from `source`); the pass band (%); compare_to: the row whose effect this one is measured
    against (empty: the design's control, i.e. the change itself); role: calibration or
    held_out; window_min: this row's probe window if it differs from the design's; statistic:
    mean or peak over it (STATISTICS)."""

    name: str
    protocol: str
    pulses: int
    frequency_hz: float | None
    percent_rmt: float
    scenario: str
    role: str
    human_change_pct: float | None
    spread_pct: float | None
    spread: str
    band_pct: tuple
    compare_to: str
    window_min: tuple
    statistic: str
    source: str
    note: str


@dataclass(frozen=True)
class Targets:
    path: Path
    design: Design
    calibration: Calibration
    targets: tuple

    def by_role(self, role: str) -> tuple:
        return tuple(t for t in self.targets if t.role == role)


def load_targets(path) -> Targets:
    """Read and check a targets file; ValueError naming the file and key of a bad entry."""
    path = Path(path)
    data = read_toml(path)
    top = Table(path, data, "", {"design", "calibration", "target"})
    design = _design(Table(path, top.get("design", None, _is_table), "design.", _DESIGN_KEYS))
    calibration = _calibration(Table(path, top.get("calibration", None, _is_table), "calibration.",
                                     _CALIBRATION_KEYS), design)
    rows = top.get("target", None, _is_list_of_tables)
    targets = tuple(_target(Table(path, row, f"target[{i}].", _TARGET_KEYS), design)
                    for i, row in enumerate(rows))
    names = [t.name for t in targets]
    for i, t in enumerate(targets):
        if names.index(t.name) != i:
            Table(path, {}, f"target[{i}].", ()).fail("name", f"{t.name!r} is used twice")
        if t.compare_to and t.compare_to not in names:
            Table(path, {}, f"target[{i}].", ()).fail("compare_to", f"no target named {t.compare_to!r}")
    if not any(t.role == "calibration" for t in targets):
        top.fail("target", "no calibration row")
    return Targets(path, design, calibration, targets)


def _design(table: Table) -> Design:
    network = tuple(table.get("network_seeds", None, _seeds))
    calibration = tuple(table.get("calibration_network_seeds", None, _seeds))
    if set(network) & set(calibration):
        table.fail("calibration_network_seeds", "must not share a seed with network_seeds")
    return Design(
        network_seeds=network,
        calibration_network_seeds=calibration,
        noise_seeds=tuple(table.get("noise_seeds", None, _seeds)),
        window_min=tuple(table.get("window_min", None, _window)),
        probe_minutes=tuple(table.get("probe_minutes", None, _probes)),
        test_percent_rmt=float(table.get("test_percent_rmt", None, Number(50, 200))),
        n_test=table.get("n_test", None, Number(1, 1000, integer=True)),
        dt_ms=float(table.get("dt_ms", 0.1, Number(0, 1, open_low=True))),
        bridge_min_gap_s=float(table.get("bridge_min_gap_s", 0.0, Number(0, 3600))),
        rmt_trials=table.get("rmt_trials", None, Number(1, 1000, integer=True)),
        rmt_tolerance_pct=float(table.get("rmt_tolerance_pct", None, Number(0, 10, open_low=True))),
        baseline_floor=float(table.get("baseline_floor", None, Number(0, 100, open_low=True))),
        control=table.get("control", "sham", text()),
        resamples=table.get("resamples", 10000, Number(1000, 10**6, integer=True)),
        confidence=table.get("confidence", 0.95, Number(0.5, 0.999)),
        ci_method=table.get("ci_method", "BCa", text("BCa", "percentile")),
        bootstrap_seed=table.get("bootstrap_seed", None, Number(0, 2**32 - 1, integer=True)),
        metric=table.get("metric", None, text()),
        pass_rule=table.get("pass_rule", None, text()))


def _calibration(table: Table, design: Design) -> Calibration:
    names = tuple(table.get("free_parameters", None, _names))
    ranges = table.get("ranges", None, _is_table)
    if sorted(ranges) != sorted(names):
        table.fail("ranges", f"expected one [low, high] per free parameter {list(names)}, "
                             f"got {sorted(ranges)}")
    for name, bounds in ranges.items():
        if not (_pair(bounds) and 0 < bounds[0] < bounds[1] < math.inf):
            table.fail("ranges", f"{name}: expected finite [low, high] with 0 < low < high, got {bounds!r}")
    start = table.get("start", None, _is_table)
    for name in names:
        if not (_number(start.get(name)) and ranges[name][0] <= start[name] <= ranges[name][1]):
            table.fail("start", f"{name}: expected a number in its range {ranges[name]}, "
                                f"got {start.get(name)!r}")
    if sorted(start) != sorted(names):
        table.fail("start", f"expected one value per free parameter {list(names)}, got {sorted(start)}")
    screening = {}
    for key, within, of in (("screening_network_seeds", design.calibration_network_seeds,
                             "design.calibration_network_seeds"),
                            ("screening_noise_seeds", design.noise_seeds, "design.noise_seeds")):
        screening[key] = tuple(table.get(key, None, _seeds))
        if not set(screening[key]) <= set(within):
            table.fail(key, f"expected seeds among {of} {list(within)}, got {list(screening[key])}")
    return Calibration(
        free_parameters=names,
        ranges={name: tuple(ranges[name]) for name in names},
        start={name: start[name] for name in names},
        **screening,
        method=table.get("method", None, text()),
        loss=table.get("loss", None, text()),
        budget=table.get("budget", None, Number(1, 10**6, integer=True)),
        frozen_parameters_sha256=table.get("frozen_parameters_sha256", "", _sha256))


def _target(table: Table, design: Design) -> Target:
    protocol = table.get("protocol", None, text(*PROTOCOLS))
    frequency = table.get("frequency_hz", 0.0, Number(0, 100))
    if (protocol == "rtms") != (frequency > 0):
        table.fail("frequency_hz", "required (> 0) for protocol \"rtms\", and only for it")
    human = table.get("human_change_pct", "", optional(Number(-100, 1000)))
    band = tuple(table.get("band_pct", None, _band))
    if human != "" and not band[0] <= human <= band[1]:
        table.fail("band_pct", f"{list(band)} does not hold the human change {human:g} %")
    spread = table.get("spread_pct", "", optional(Number(0, 1000, open_low=True)))
    window = tuple(table.get("window_min", list(design.window_min), _window))
    if sum(window[0] <= t <= window[1] for t in design.probe_minutes) < 2:
        table.fail("window_min", f"{list(window)} holds fewer than 2 of design.probe_minutes "
                                 f"{list(design.probe_minutes)}")
    return Target(
        name=table.get("name", None, text()),
        protocol=protocol,
        pulses=table.get("pulses", None, Number(1, 100000, integer=True)),
        frequency_hz=frequency or None,
        percent_rmt=float(table.get("percent_rmt", None, Number(0, 200, open_low=True))),
        scenario=table.get("scenario", "healthy", text(*SCENARIOS)),
        role=table.get("role", None, text(*ROLES)),
        human_change_pct=None if human == "" else float(human),
        spread_pct=None if spread == "" else float(spread),
        spread=table.get("spread", "" if spread == "" else None,
                         optional(text("SE", "SD", "95% CI half-width"))),
        band_pct=band,
        compare_to=table.get("compare_to", "", optional(text())),
        window_min=window,
        statistic=table.get("statistic", "mean", text(*STATISTICS)),
        source=table.get("source", None, text()),
        note=table.get("note", "", optional(text())))


def _is_table(v) -> str | None:
    return None if isinstance(v, dict) else f"expected a table, got {v!r}"


def _is_list_of_tables(v) -> str | None:
    ok = isinstance(v, list) and v and all(isinstance(x, dict) for x in v)
    return None if ok else "expected one or more [[target]] tables"


def _seeds(v) -> str | None:
    ok = (isinstance(v, list) and v and len(set(v)) == len(v)
          and all(isinstance(x, int) and not isinstance(x, bool) and 0 <= x < 2**32 for x in v))
    return None if ok else f"expected a list of distinct integer seeds in [0, 2**32 - 1], got {v!r}"


def _probes(v) -> str | None:
    ok = (isinstance(v, list) and len(v) >= 2 and all(_number(x) for x in v)
          and all(0 <= a < b <= 1440 for a, b in zip(v, v[1:])))
    return None if ok else f"expected increasing minutes in [0, 1440], at least two, got {v!r}"


def _names(v) -> str | None:
    ok = isinstance(v, list) and all(isinstance(x, str) and x for x in v) and len(set(v)) == len(v)
    return None if ok else f"expected a list of distinct parameter names, got {v!r}"


def _sha256(v) -> str | None:
    ok = v == "" or (isinstance(v, str) and len(v) == 64 and all(c in "0123456789abcdef" for c in v))
    return None if ok else f"expected \"\" or 64 lowercase hex digits, got {v!r}"


def _window(v) -> str | None:
    ok = _pair(v) and 0 <= v[0] < v[1] <= 1440
    return None if ok else f"expected [start, end] minutes with 0 <= start < end <= 1440, got {v!r}"


def _band(v) -> str | None:
    ok = _pair(v) and -100 <= v[0] < v[1] <= 1000
    return None if ok else f"expected [low, high] % with -100 <= low < high <= 1000, got {v!r}"


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _pair(v) -> bool:
    return isinstance(v, list) and len(v) == 2 and all(_number(x) for x in v)
