"""After-effects of rTMS protocols against sham, paired by seed: the harness of the
pre-registered validation (validation/targets.toml, coupling.targets, coupling.aftereffect).

A `Condition` is a protocol at a % of the resting motor threshold (RMT) on a patch of one
scenario. `measure_after_effects` runs every condition and its sham (coupling.sham: the same
schedule with no field) on network seeds (patch.seed) x noise seeds (session.seed), a sham run
on exactly the seeds of its protocol run (common random numbers: same patch, same RMT, same
background noise, so the same baseline MEP). It works in two sweeps on Dask
(coupling.sweep.run_sweep: parallel, resumable, one folder per run, a runs table):

1. `rmt/`: the RMT of each (scenario, network seed), measured once by `MotorThresholdRun`
   (coupling.motor_threshold with the design's rmt_trials and rmt_tolerance_pct, noise seed
   RMT_SEED) and shared by every run on that patch, protocol and sham alike;
2. `sessions/`: one `tmsim session` per (condition or its sham, network seed, noise seed), the
   intensities given in %MSO (coupling.mso_from_rmt of that RMT); MEP test pulses at the
   design's test_percent_rmt, n_test per probe, probes at its probe_minutes, time step dt_ms,
   bridging from bridge_min_gap_s. Each run folder holds what `tmsim session` writes
   (config.toml reruns it alone).

Protocols that are not built-in names are written as schedule files to `protocols/`. Rerunning
with the same arguments skips the finished runs of both sweeps. `run_targets` does this for
the rows of a targets file and judges each row (coupling.aftereffect.judge).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .activation import mso_from_rmt
from .aftereffect import RowResult, judge, paired_changes
from .config import RunConfig
from .options import SEEDS, SessionOptions
from .protocols import Protocol, config_protocol_names, ctbs, imtbs, itbs, rtms, sham
from .scenario import SCENARIOS
from .targets import Design, Target, Targets

RMT_SEED = 0
"""Noise seed (session.seed) of every RMT search: the RMT of a patch is measured once, with
this seed, so that it belongs to the patch rather than to a noise draw."""
RMT_FOLDER = "rmt"
SESSIONS_FOLDER = "sessions"
PROTOCOLS_FOLDER = "protocols"


@dataclass(frozen=True)
class Condition:
    """`protocol` (a coupling.Protocol, not a sham) at percent_rmt % RMT (0 to 200) on a patch of
    `scenario` (coupling.SCENARIOS; "": the base configuration's patch.scenario); `name` labels
    it in the results."""

    name: str
    protocol: Protocol
    percent_rmt: float
    scenario: str = ""


@dataclass(frozen=True, eq=False)
class AfterEffect:
    """MEP proxies (L5 pyramidal spikes per neuron per test pulse) of a condition and of its sham
    on the same seeds. before, sham_before: (network seeds, noise seeds), before stimulation;
    after, sham_after: (network seeds, noise seeds, probes) at probe_minutes (min after the end
    of stimulation). rmt_percent_mso, percent_mso, test_percent_mso: (network seeds,) the RMT,
    the protocol's and the test pulses' intensities, %MSO (sham runs at the same)."""

    condition: Condition
    scenario: str
    network_seeds: tuple
    noise_seeds: tuple
    probe_minutes: tuple
    rmt_percent_mso: np.ndarray
    percent_mso: np.ndarray
    test_percent_mso: np.ndarray
    before: np.ndarray
    after: np.ndarray
    sham_before: np.ndarray
    sham_after: np.ndarray

    @property
    def ratios(self) -> np.ndarray:
        """MEP after / before of the protocol runs, (network, noise, probes); NaN where before is 0."""
        return _ratio(self.after, self.before)

    @property
    def sham_ratios(self) -> np.ndarray:
        """MEP after / before of the sham runs, (network, noise, probes); NaN where before is 0."""
        return _ratio(self.sham_after, self.sham_before)

    def changes(self, floor: float) -> np.ndarray:
        """coupling.aftereffect.paired_changes of these runs: percentage points, (network, noise,
        probes); a pair whose baseline (protocol or sham) is below `floor` counts as 0."""
        return paired_changes(self.before, self.after, self.sham_before, self.sham_after, floor)

    def to_dict(self) -> dict:
        """Plain lists and numbers (JSON-ready); ratios with NaN as None."""
        plain = lambda a: [plain(x) for x in a] if np.ndim(a) else (None if np.isnan(a) else float(a))
        return dict(name=self.condition.name, protocol=self.condition.protocol.name,
                    n_pulses=self.condition.protocol.n_pulses, percent_rmt=self.condition.percent_rmt,
                    scenario=self.scenario, network_seeds=list(self.network_seeds),
                    noise_seeds=list(self.noise_seeds), probe_minutes=list(self.probe_minutes),
                    rmt_percent_mso=plain(self.rmt_percent_mso), percent_mso=plain(self.percent_mso),
                    test_percent_mso=plain(self.test_percent_mso), before=plain(self.before),
                    after=plain(self.after), sham_before=plain(self.sham_before),
                    sham_after=plain(self.sham_after), ratios=plain(self.ratios),
                    sham_ratios=plain(self.sham_ratios))


def _ratio(after, before) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(before[..., None] > 0, after / before[..., None], np.nan)


@dataclass(frozen=True)
class MotorThresholdRun:
    """Run function of the RMT sweep: set up the configuration's patch and field
    (coupling.prepare_run) and measure its RMT (coupling.motor_threshold with n_trials pulses per
    intensity to tolerance_pct, the configuration's dt_ms and session.seed); writes rmt.json and
    returns {"rmt_percent_mso": RMT in %MSO}."""

    n_trials: int
    tolerance_pct: float

    def __call__(self, config: RunConfig, folder: Path) -> dict:
        from tmsim_io import write_json

        from .prepare import prepare_run
        from .session import motor_threshold

        run = prepare_run(config)
        rmt = motor_threshold(run.patch, run.field, n_trials=self.n_trials, tolerance_pct=self.tolerance_pct,
                              dt_ms=config.session.dt_ms, seed=config.session.seed)
        result = {"rmt_percent_mso": float(rmt), "n_trials": self.n_trials,
                  "tolerance_pct": self.tolerance_pct}
        write_json(Path(folder) / "rmt.json", result)
        return result


def measure_after_effects(base: RunConfig, conditions: Sequence[Condition], design: Design, out, *,
                          network_seeds: Sequence[int] | None = None, run: Callable | None = None,
                          rmt_run: Callable | None = None, client=None, scheduler=None,
                          workers: int | None = None, progress: bool = True, compile_cache: bool | str = True,
                          log=print) -> dict:
    """Run each condition and its sham on network_seeds (default design.network_seeds) x
    design.noise_seeds into the folder `out` (see the module docstring) and return
    {condition name: AfterEffect}.

    base: the head, coil, patch (radius, neurons; its scenario unless a condition names one)
    and session.after_s of every run; the design sets the probes, test pulses, dt_ms and
    bridging over base's [session]. run: a run function for the sessions instead of
    `tmsim session` (as in run_sweep: run(config, folder) -> dict with mep_before and
    mep_after {str(float(minutes)): MEP}); rmt_run: one for the RMT sweep (default
    MotorThresholdRun of the design; it returns {"rmt_percent_mso": ...}). client, scheduler,
    workers, progress, log: as in coupling.sweep.run_sweep (a client's workers must be processes
    for real runs: gmsh meshes the head, and crashed in a worker thread); compile_cache: True puts JAX's
    compilation cache in out/.jax_cache, shared by both sweeps (a folder: there; False: none).
    Bad arguments raise ValueError (TypeError for a wrong type) naming them before any work
    (a %RMT beyond 100 % MSO: once the RMTs are known, before the sessions); a failed run raises
    coupling.sweep.SweepFailed after the others of its sweep finish (rerun to resume)."""
    from .sweep import Sweep, run_sweep

    conditions = _check(base, conditions, design, network_seeds)
    network_seeds = tuple(design.network_seeds if network_seeds is None else network_seeds)
    out = Path(out)
    session_base = replace(base, session=replace(
        base.session, probe_minutes=tuple(design.probe_minutes), n_test=design.n_test, dt_ms=design.dt_ms,
        bridge_min_gap_s=design.bridge_min_gap_s)).with_values({"output.folder": ""})
    scenario = {c.name: c.scenario or base.patch.scenario for c in conditions}
    values = config_protocol_names([q for c in conditions for q in (c.protocol, sham(c.protocol))],
                                   out / PROTOCOLS_FOLDER, "measure_after_effects: conditions")
    names = {c.name: tuple(values[2 * i:2 * i + 2]) for i, c in enumerate(conditions)}
    test = f"{design.test_percent_rmt:g}% RMT"

    keys = ("protocol.name", "patch.scenario", "patch.seed", "protocol.intensity", "protocol.test_intensity")

    def sessions(intensity: Callable) -> Sweep:
        """The session sweep, intensity(condition, network seed) -> (protocol.intensity,
        protocol.test_intensity) of its runs, sham alike."""
        runs = {(name, scenario[c.name], seed, *intensity(c, seed)): None
                for c in conditions for seed in network_seeds for name in names[c.name]}
        return Sweep(base=session_base, axes={"session.seed": tuple(design.noise_seeds)},
                     zip=({k: [r[i] for r in runs] for i, k in enumerate(keys)},),
                     source="measure_after_effects: sessions")

    sessions(lambda c, seed: (f"{c.percent_rmt:g}% RMT", test)).check()      # everything, before any work
    cache = out / ".jax_cache" if compile_cache is True else compile_cache
    common = dict(client=client, scheduler=scheduler, workers=workers, progress=progress, log=log,
                  compile_cache=cache, raise_on_failure=True)
    rmt = motor_thresholds(session_base, sorted(set(scenario.values())), network_seeds, design,
                           out / RMT_FOLDER, run=rmt_run, source="measure_after_effects: motor thresholds",
                           **common)

    doses = mso_doses(conditions, scenario, rmt, network_seeds, design.test_percent_rmt,
                      "measure_after_effects: condition")
    table = run_sweep(sessions(lambda c, seed: doses[(c.name, seed)]), out / SESSIONS_FOLDER, run=run,
                      **common)
    rows = {(*(r[k] for k in keys), r["session.seed"]): r for r in table.to_dict("records")}
    probes = [f"mep_after.{float(m)}" for m in design.probe_minutes]

    def meps(name: str, c: Condition):
        """(before (network, noise), after (network, noise, probes)) of the runs of `name`."""
        picked = [[rows[(name, scenario[c.name], n, *doses[(c.name, n)], s)] for s in design.noise_seeds]
                  for n in network_seeds]
        missing = [p for p in ["mep_before", *probes] if p not in picked[0][0]]
        if missing:
            raise ValueError(f"measure_after_effects: the session runs' results have no {missing[0]!r} "
                             f"(a run function must return mep_before and mep_after by minutes)")
        return (np.array([[r["mep_before"] for r in seed] for seed in picked], float),
                np.array([[[r[p] for p in probes] for r in seed] for seed in picked], float))

    effects = {}
    for c in conditions:
        active, control = names[c.name]
        dose = np.array([[float(v.split("%")[0]) for v in doses[(c.name, seed)]] for seed in network_seeds])
        effects[c.name] = AfterEffect(
            c, scenario[c.name], network_seeds, tuple(design.noise_seeds), tuple(design.probe_minutes),
            np.array([rmt[(scenario[c.name], seed)] for seed in network_seeds]), dose[:, 0], dose[:, 1],
            *meps(active, c), *meps(control, c))
    return effects


def motor_thresholds(base: RunConfig, scenarios: Sequence[str], network_seeds: Sequence[int], design: Design,
                     out, *, run: Callable | None = None, source: str = "motor thresholds",
                     **sweep_keywords) -> dict:
    """{(scenario, network seed): RMT in %MSO} of base's patch in each scenario on each network
    seed, measured once per patch (noise seed RMT_SEED, design.dt_ms; run: default
    MotorThresholdRun of the design's rmt_trials and rmt_tolerance_pct) by a sweep into the
    folder `out` (resumable); sweep_keywords go to coupling.sweep.run_sweep."""
    from .sweep import Sweep, run_sweep

    rmt_base = replace(base, session=SessionOptions(dt_ms=design.dt_ms, seed=RMT_SEED)).with_values(
        {"protocol.name": "single", "protocol.intensity": "100% MSO", "protocol.test_intensity": "100% MSO",
         "output.folder": ""})
    table = run_sweep(Sweep(base=rmt_base, axes={"patch.scenario": tuple(scenarios),
                                                 "patch.seed": tuple(network_seeds)}, source=source),
                      out, run=run or MotorThresholdRun(design.rmt_trials, design.rmt_tolerance_pct),
                      **sweep_keywords)
    return {(r["patch.scenario"], int(r["patch.seed"])): float(r["rmt_percent_mso"])
            for r in table.to_dict("records")}


def mso_doses(items, scenario: dict, rmt: dict, network_seeds, test_percent_rmt: float, where: str) -> dict:
    """{(name, network seed): (protocol.intensity, protocol.test_intensity)} of each item (a
    Condition or an Arm: name, percent_rmt) on each network seed, in %MSO of the RMT of its
    patch (rmt[(scenario[name], seed)]), the test pulses at test_percent_rmt; ValueError naming
    `where`, the item and the seed if a dose passes 100 % MSO."""
    def mso(percent_rmt: float, name: str, seed: int) -> str:
        try:
            return f"{mso_from_rmt(percent_rmt, rmt[(scenario[name], seed)]):.6f}% MSO"
        except ValueError as err:
            raise ValueError(f"{where} {name!r} on network seed {seed} ({scenario[name]}): {err}") from None

    return {(i.name, seed): (mso(i.percent_rmt, i.name, seed), mso(test_percent_rmt, i.name, seed))
            for i in items for seed in network_seeds}


def after_effect(base: RunConfig, protocol: Protocol, percent_rmt: float, design: Design, out, *,
                 scenario: str = "", **keywords) -> AfterEffect:
    """The AfterEffect of one protocol at percent_rmt % RMT (measure_after_effects; keywords go
    there)."""
    condition = Condition(getattr(protocol, "name", "protocol"), protocol, percent_rmt, scenario)
    return measure_after_effects(base, [condition], design, out, **keywords)[condition.name]


def target_protocol(target: Target, dt_ms: float | None = None) -> Protocol:
    """The Protocol of a targets row: coupling.itbs, ctbs or imtbs of its pulses, or rTMS as one
    continuous train of its pulses at frequency_hz (named e.g. "rtms0.9hz810"); with dt_ms, its
    pulses on that time grid (Protocol.on_grid: 0.9 Hz pulses move by at most dt_ms / 2)."""
    build = {"itbs": itbs, "ctbs": ctbs, "imtbs": imtbs}
    if target.protocol in build:
        protocol = build[target.protocol](target.pulses)
    else:
        protocol = rtms(target.frequency_hz, target.pulses,
                        name=f"rtms{target.frequency_hz:g}hz{target.pulses}")
    return protocol if dt_ms is None else protocol.on_grid(dt_ms)


@dataclass(frozen=True, eq=False)
class TargetResult:
    """A targets row measured: its AfterEffect, the paired changes (network, noise, probes;
    percentage points) and the verdict (coupling.aftereffect.RowResult)."""

    target: Target
    effect: AfterEffect
    changes: np.ndarray
    result: RowResult


def run_targets(targets: Targets, base: RunConfig, out, *, calibration: bool = False,
                rows: Sequence[str] | None = None, design: Design | None = None, **keywords) -> dict:
    """Measure and judge rows of a loaded targets file (coupling.targets.load_targets): all of
    them on design.network_seeds, or with `calibration` the calibration rows on
    design.calibration_network_seeds; `rows` narrows them to these names (a compare_to row
    brings its reference row along). Each row is a Condition (target_protocol on the design's
    dt_ms grid at its percent_rmt, its scenario: a val66met row runs protocol and sham on val66met patches); a
    compare_to row is judged against its reference row's changes on the same seeds. design:
    the targets' design unless given (e.g. smaller, for a smoke run). Keywords go to
    measure_after_effects. Returns {row name: TargetResult}, in the file's order."""
    if not isinstance(targets, Targets):
        raise TypeError(f"run_targets: targets must be a coupling.targets.Targets (load_targets), "
                        f"got {type(targets).__name__}")
    design = design or targets.design
    chosen = targets.by_role("calibration") if calibration else targets.targets
    if rows is not None:
        known = [t.name for t in chosen]
        unknown = [r for r in rows if r not in known]
        if unknown or not rows:
            raise ValueError(f"run_targets: rows: expected names among {known}, got {list(rows)!r}")
        wanted = set(rows) | {t.compare_to for t in chosen if t.name in rows and t.compare_to}
        chosen = tuple(t for t in targets.targets if t.name in wanted)
    by_name = {t.name: t for t in chosen}
    conditions = [Condition(t.name, target_protocol(t, design.dt_ms), t.percent_rmt, t.scenario)
                  for t in chosen]
    seeds = design.calibration_network_seeds if calibration else design.network_seeds
    effects = measure_after_effects(base, conditions, design, out, network_seeds=seeds, **keywords)
    changes = {t.name: effects[t.name].changes(design.baseline_floor) for t in chosen}
    results = {}
    for t in chosen:
        if t.compare_to and t.compare_to not in by_name:
            raise ValueError(f"run_targets: row {t.name!r} compares to {t.compare_to!r}, which is not among "
                             f"the rows run (calibration = {calibration})")
        reference = (changes[t.compare_to], by_name[t.compare_to]) if t.compare_to else None
        results[t.name] = TargetResult(t, effects[t.name], changes[t.name],
                                       judge(changes[t.name], design.probe_minutes, t, design, reference))
    return results


def _check(base, conditions, design, network_seeds) -> list:
    """The conditions as a list; TypeError or ValueError naming the bad argument."""
    where = "measure_after_effects"
    check_design(base, design, network_seeds, where)
    conditions = list(conditions)
    if not conditions:
        raise ValueError(f"{where}: conditions: expected at least one Condition")
    for c in conditions:
        if not isinstance(c, Condition):
            raise TypeError(f"{where}: conditions: expected coupling.Condition items, got {type(c).__name__}")
        if not isinstance(c.protocol, Protocol) or c.protocol.sham:
            raise ValueError(f"{where}: condition {c.name!r}: protocol must be a coupling.Protocol that is "
                             "not a sham (its sham is run beside it)")
        if not (isinstance(c.percent_rmt, (int, float)) and 0 < c.percent_rmt <= 200):
            raise ValueError(f"{where}: condition {c.name!r}: percent_rmt must be in (0, 200], got "
                             f"{c.percent_rmt!r}")
        if c.scenario not in ("", *SCENARIOS):
            raise ValueError(f"{where}: condition {c.name!r}: scenario must be one of {SCENARIOS} (or \"\" "
                             f"for base's), got {c.scenario!r}")
    names = [c.name for c in conditions]
    if len(set(names)) != len(names) or not all(isinstance(n, str) and n for n in names):
        raise ValueError(f"{where}: conditions: names must be distinct non-empty strings, got {names}")
    return conditions


def check_design(base, design, network_seeds, where: str) -> tuple:
    """network_seeds (None: design.network_seeds) as a tuple, once base (a RunConfig), design (a
    coupling.targets.Design: its noise seeds, probes, test pulses and RMT search) and the seeds
    are checked; TypeError or ValueError naming `where` and the bad argument."""
    if not isinstance(base, RunConfig):
        raise TypeError(f"{where}: base must be a coupling.RunConfig, got {type(base).__name__}")
    if not isinstance(design, Design):
        raise TypeError(f"{where}: design must be a coupling.targets.Design (load_targets(...).design), "
                        f"got {type(design).__name__}")
    network_seeds = tuple(design.network_seeds if network_seeds is None else network_seeds)
    for label, seeds in (("network_seeds", network_seeds), ("design.noise_seeds", design.noise_seeds)):
        seeds = list(seeds)
        integers = all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and 0 <= s < SEEDS
                       for s in seeds)
        if not seeds or len(set(seeds)) != len(seeds) or not integers:
            raise ValueError(f"{where}: {label}: expected distinct integers in [0, 2**32 - 1], at least one, "
                             f"got {seeds!r}")
    increasing = lambda v: len(v) > 0 and v[0] >= 0 and all(a < b for a, b in zip(v, v[1:]))
    checks = (("design.probe_minutes", design.probe_minutes, increasing,
               "increasing minutes >= 0, at least one"),
              ("design.test_percent_rmt", design.test_percent_rmt, lambda v: 0 < v <= 200, "in (0, 200]"),
              ("design.rmt_trials", design.rmt_trials, lambda v: isinstance(v, int) and v >= 1,
               "an integer >= 1"),
              ("design.rmt_tolerance_pct", design.rmt_tolerance_pct, lambda v: 0 < v <= 10, "in (0, 10]"))
    for label, value, ok, allowed in checks:
        if not ok(value):
            raise ValueError(f"{where}: {label}: expected {allowed}, got {value!r}")
    return network_seeds
