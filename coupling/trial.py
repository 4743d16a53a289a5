"""A treatment trial in silico: courses of several arms over network x noise seeds, each arm
paired with its sham course on the same seeds.

An `Arm` is a protocol at a % of the resting motor threshold (RMT), on a calendar (course.*
configuration keys), on a patch of one scenario. `run_trial` works as
coupling.measure_after_effects does for single sessions, in two sweeps on Dask
(coupling.sweep.run_sweep: parallel, resumable, one folder per run, a runs table):

1. `rmt/`: the RMT of each (scenario, network seed), measured once
   (coupling.experiment.motor_thresholds) and shared by every course on that patch;
2. `courses/`: one `tmsim run` per (arm or its sham, network seed, noise seed), intensities in
   %MSO of that RMT, MEP test pulses at the design's test_percent_rmt. The sham course
   (coupling.sham: the same sessions with no field) runs on exactly the seeds, doses and
   calendar of its arm (common random numbers). An arm whose protocol is itself a sham is an
   untreated reference: it runs alone, with no control.

Each course is read at its landmarks (coupling.CourseResult.points: the start, after the last
session of each calendar week, the follow-up probe): the MEP proxy, the mean weight of each
plastic projection and the mean BDNF of each BDNF-gated projection (`CourseRun`, which also
writes everything `tmsim run` writes). Statistics over the seeds are the caller's
(validation/depression.py).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from .config import RunConfig
from .experiment import PROTOCOLS_FOLDER, RMT_FOLDER, check_design, motor_thresholds, mso_doses
from .protocols import Protocol, config_protocol_names, sham
from .scenario import SCENARIOS
from .targets import Design

COURSES_FOLDER = "courses"
MEASURES = ("mep", "weights", "bdnf")
"""What CourseRun returns at each landmark (besides its time, "days")."""


@dataclass(frozen=True, eq=False)
class Arm:
    """`protocol` at percent_rmt % RMT (0 to 200) on the calendar given by `course` ({course.*
    configuration key: value}, e.g. {"course.calendar": "saint", "course.days": 5}; keys not
    given keep the base configuration's) on a patch of `scenario` (coupling.SCENARIOS; "": the
    base's patch.scenario). A sham protocol makes an untreated reference arm. `name` labels it."""

    name: str
    protocol: Protocol
    percent_rmt: float
    course: Mapping = None
    scenario: str = ""


@dataclass(frozen=True, eq=False)
class ArmResult:
    """An arm's courses on network_seeds x noise_seeds, read at `points` (landmark labels, in
    time order) at `days` (days from the course start). mep: (network, noise, points) MEP proxy;
    weights: {plastic projection: (network, noise, points) mean weight, nS}; bdnf: {BDNF-gated
    projection: (network, noise, points) mean BDNF, half-saturation units}; sham_mep,
    sham_weights, sham_bdnf: the same of its sham courses (None for a reference arm).
    rmt_percent_mso, percent_mso: (network,) the RMT and the arm's intensity, %MSO; synapses:
    {plastic projection: (network,) number of synapses} (None where the run function gave none)."""

    arm: Arm
    scenario: str
    network_seeds: tuple
    noise_seeds: tuple
    points: tuple
    days: np.ndarray
    rmt_percent_mso: np.ndarray
    percent_mso: np.ndarray
    mep: np.ndarray
    weights: dict
    bdnf: dict
    sham_mep: np.ndarray | None = None
    sham_weights: dict | None = None
    sham_bdnf: dict | None = None
    synapses: dict | None = None

    def to_dict(self) -> dict:
        """Plain lists and numbers (JSON-ready)."""
        plain = lambda a: None if a is None else np.asarray(a, float).tolist()
        series = lambda d: None if d is None else {k: plain(v) for k, v in d.items()}
        return dict(name=self.arm.name, protocol=self.arm.protocol.name, n_pulses=self.arm.protocol.n_pulses,
                    sham=self.arm.protocol.sham, percent_rmt=self.arm.percent_rmt,
                    course=dict(self.arm.course or {}), scenario=self.scenario,
                    network_seeds=list(self.network_seeds), noise_seeds=list(self.noise_seeds),
                    points=list(self.points), days=plain(self.days),
                    rmt_percent_mso=plain(self.rmt_percent_mso), percent_mso=plain(self.percent_mso),
                    mep=plain(self.mep), weights=series(self.weights), bdnf=series(self.bdnf),
                    sham_mep=plain(self.sham_mep), sham_weights=series(self.sham_weights),
                    sham_bdnf=series(self.sham_bdnf), synapses=series(self.synapses))


@dataclass(frozen=True)
class CourseRun:
    """Run function of the course sweep: `tmsim run` of the configuration into `folder`
    (coupling.pipeline.run_course_config), returning its summary, {"points": {label: {"days",
    "mep", "weights": {projection: nS}, "bdnf": {projection: ...}}}} at the course's landmarks
    (CourseResult.points) and {"synapses": {projection: count}}."""

    def __call__(self, config: RunConfig, folder: Path) -> dict:
        import json

        from .pipeline import run_course_config

        result = run_course_config(config.with_values({"output.folder": str(folder)}), progress=False)
        points = {label: dict(days=float(result.times_days[i]), mep=float(result.mep[i]),
                              weights={p: float(w[i]) for p, w in result.mean_weights.items()},
                              bdnf={p: float(b[i]) for p, b in result.bdnf.items()})
                  for label, i in result.points().items()}
        return dict(json.loads((Path(folder) / "summary.json").read_text()), points=points,
                    synapses=result.synapses)


def run_trial(base: RunConfig, arms: Sequence[Arm], design: Design, out, *,
              network_seeds: Sequence[int] | None = None, run: Callable | None = None,
              rmt_run: Callable | None = None, client=None, scheduler=None, workers: int | None = None,
              progress: bool = True, compile_cache: bool | str = True, log=print) -> dict:
    """Run every arm and its sham on network_seeds (default design.network_seeds) x
    design.noise_seeds into the folder `out` (see the module docstring) and return {arm name:
    ArmResult}.

    base: the head, coil, patch, plasticity, session.after_s and course keys of every course;
    the design sets n_test, dt_ms and bridging over base's [session], the RMT search and the
    test pulses. run: a run function for the courses instead of CourseRun (run(config, folder)
    -> dict with "points" as CourseRun's); rmt_run, client, scheduler, workers, progress,
    compile_cache, log: as in coupling.measure_after_effects. Bad arguments raise ValueError
    naming them before any work; a failed run raises coupling.sweep.SweepFailed after the
    others of its sweep finish (rerun to resume)."""
    from .sweep import Sweep, run_sweep

    network_seeds = check_design(base, design, network_seeds, "run_trial")
    arms = _check(arms)
    out = Path(out)
    course_base = replace(base, session=replace(base.session, n_test=design.n_test, dt_ms=design.dt_ms,
                                                bridge_min_gap_s=design.bridge_min_gap_s)
                          ).with_values({"output.folder": ""})
    course_keys = sorted({k for a in arms for k in (a.course or {})})
    base_value = Sweep(base=course_base).base_value
    courses = {a.name: {**{k: base_value(k) for k in course_keys}, **(a.course or {})} for a in arms}
    calendar = lambda a: tuple(courses[a.name][k] for k in course_keys)
    scenario = {a.name: a.scenario or base.patch.scenario for a in arms}
    runs_of = lambda a: (a.protocol,) if a.protocol.sham else (a.protocol, sham(a.protocol))
    protocols = [q for a in arms for q in runs_of(a)]
    values = iter(config_protocol_names(protocols, out / PROTOCOLS_FOLDER, "run_trial: arms"))
    names = {a.name: tuple(next(values) for _ in runs_of(a)) for a in arms}
    test = f"{design.test_percent_rmt:g}% RMT"
    keys = ("protocol.name", "patch.scenario", "patch.seed", "protocol.intensity", "protocol.test_intensity",
            *course_keys)

    def sweep(dose: Callable) -> Sweep:
        """The course sweep, dose(arm, network seed) -> (protocol.intensity,
        protocol.test_intensity) of its courses, sham alike."""
        runs = {(name, scenario[a.name], seed, *dose(a, seed), *calendar(a)): None
                for a in arms for seed in network_seeds for name in names[a.name]}
        return Sweep(base=course_base, axes={"session.seed": tuple(design.noise_seeds)},
                     zip=({k: [r[i] for r in runs] for i, k in enumerate(keys)},), kind="run",
                     source="run_trial: courses")

    sweep(lambda a, seed: (f"{a.percent_rmt:g}% RMT", test)).check()      # everything, before any work
    cache = out / ".jax_cache" if compile_cache is True else compile_cache
    common = dict(client=client, scheduler=scheduler, workers=workers, progress=progress, log=log,
                  compile_cache=cache, raise_on_failure=True)
    rmt = motor_thresholds(course_base, sorted(set(scenario.values())), network_seeds, design,
                           out / RMT_FOLDER, run=rmt_run, source="run_trial: motor thresholds", **common)

    doses = mso_doses(arms, scenario, rmt, network_seeds, design.test_percent_rmt, "run_trial: arm")
    table = run_sweep(sweep(lambda a, seed: doses[(a.name, seed)]), out / COURSES_FOLDER,
                      run=run or CourseRun(), **common)
    rows = {tuple(r[k] for k in (*keys, "session.seed")): r for r in table.to_dict("records")}

    def read(name: str, a: Arm):
        """(points, days, mep, weights, bdnf) of the courses of `name` on the arm's seeds."""
        picked = [[rows[(name, scenario[a.name], n, *doses[(a.name, n)], *calendar(a), s)]
                   for s in design.noise_seeds] for n in network_seeds]
        first = picked[0][0]
        points = _points(first, name)
        grid = lambda column: np.array([[[r[f"points.{p}.{column}"] for p in points] for r in seed]
                                        for seed in picked], float)
        names_of = lambda measure: [c.split(".")[-1] for c, v in first.items()
                                    if c.startswith(f"points.{points[0]}.{measure}.") and np.isfinite(v)]
        series = lambda measure: {p: grid(f"{measure}.{p}") for p in names_of(measure)}
        days = np.array([first[f"points.{p}.days"] for p in points], float)
        return points, days, grid("mep"), series("weights"), series("bdnf")

    def counts(name: str, a: Arm) -> dict | None:
        """{projection: (network,) synapses} of the courses of `name` (their first noise seed)."""
        picked = [rows[(name, scenario[a.name], n, *doses[(a.name, n)], *calendar(a), design.noise_seeds[0])]
                  for n in network_seeds]
        found = [c.split(".", 1)[1] for c, v in picked[0].items()
                 if c.startswith("synapses.") and np.isfinite(v)]
        return {p: np.array([r[f"synapses.{p}"] for r in picked], float) for p in found} or None

    results = {}
    for a in arms:
        points, days, mep, weights, bdnf = read(names[a.name][0], a)
        control = (None,) * 3
        if not a.protocol.sham:
            sham_points, _, *control = read(names[a.name][1], a)
            if sham_points != points:
                raise ValueError(f"run_trial: arm {a.name!r}: its sham courses have landmarks {sham_points}, "
                                 f"the arm's {points}")
        dose = np.array([[float(v.split("%")[0]) for v in doses[(a.name, seed)]] for seed in network_seeds])
        rmts = np.array([rmt[(scenario[a.name], seed)] for seed in network_seeds])
        results[a.name] = ArmResult(a, scenario[a.name], network_seeds, tuple(design.noise_seeds), points,
                                    days, rmts, dose[:, 0], mep, weights, bdnf, *control,
                                    synapses=counts(names[a.name][0], a))
    return results


def _points(row: Mapping, name: str) -> tuple:
    """The landmark labels of a course's row, in time order; ValueError if it has none."""
    labels = {c.split(".")[1] for c, v in row.items()
              if c.startswith("points.") and c.endswith(".days") and np.isfinite(v)}     # NaN: another run's
    if "start" not in labels:
        raise ValueError(f"run_trial: the courses of {name!r} returned no points (a run function must return "
                         f"{{'points': {{label: {{'days', 'mep', 'weights', 'bdnf'}}}}}} with a 'start')")
    return tuple(sorted(labels, key=lambda p: row[f"points.{p}.days"]))


def _check(arms: Sequence[Arm]) -> list:
    """The arms as a list; TypeError or ValueError naming the first bad one."""
    arms = list(arms)
    if not arms:
        raise ValueError("run_trial: arms: expected at least one Arm")
    names = []
    for i, a in enumerate(arms):
        if not isinstance(a, Arm):
            raise TypeError(f"run_trial: arms[{i}]: expected a coupling.Arm, got {type(a).__name__}")
        where = f"run_trial: arm {a.name!r}"
        if not isinstance(a.protocol, Protocol):
            raise TypeError(f"{where}: protocol must be a coupling.Protocol, got {type(a.protocol).__name__}")
        if not (isinstance(a.percent_rmt, (int, float)) and 0 < a.percent_rmt <= 200):
            raise ValueError(f"{where}: percent_rmt must be in (0, 200], got {a.percent_rmt!r}")
        if a.scenario not in ("", *SCENARIOS):
            raise ValueError(f"{where}: scenario must be one of {SCENARIOS} (or \"\" for base's), got "
                             f"{a.scenario!r}")
        bad = [k for k in (a.course or {}) if not (isinstance(k, str) and k.startswith("course."))]
        if bad:
            raise ValueError(f"{where}: course: {bad[0]!r} is not a course.* configuration key")
        names.append(a.name)
    if len(set(names)) != len(names) or not all(isinstance(n, str) and n for n in names):
        raise ValueError(f"run_trial: arms: names must be distinct non-empty strings, got {names}")
    return arms
