"""The depression scenario as a trial in silico: does a course of rTMS bring the depressed
patch's excitatory-to-excitatory (E->E) synapses toward the healthy patch's, on which calendar,
and does Val66Met blunt it?

Arms (coupling.run_trial: each active arm paired with its sham course on the same network and
noise seeds, doses and calendar), on each of two calendars, every arm of a calendar on the same
one: "clinical", one session a day, five days a week for CLINICAL_WEEKS weeks (O'Reardon et al.
2007, Biol Psychiatry 62:1208; Blumberger et al. 2018, Lancet 391:1683), and "accelerated",
ten sessions a day 50 min apart for ACCELERATED_DAYS days (SAINT: Cole et al. 2020, Am J
Psychiatry 177:716). On the depressed patch: 10 Hz (3000 pulses a session, the clinical
train), iTBS 600 and, on the accelerated calendar, iTBS 1800 (SAINT's session); on the
depressed Val66Met patch: 10 Hz and iTBS 600; on the healthy patch: iTBS 600 (the positive
control: can a course leave a lasting change at all?) and an untreated reference (a sham iTBS
course). Every arm at PERCENT_RMT % of its patch's own RMT, so that calendars and protocols
differ only in their timing; the after-effects are calibrated at 80-115 % RMT, so 120 % is an
extrapolation (SAINT used 90 %).

The patch is the one the after-effects are calibrated on (`tmsim run`'s default: the template
head's hand knob, 500 neurons; validation/after_effects.py's base), with the rule and
parameters of its configuration (plasticity.*): no scenario-specific parameter beyond the
depressed state of coupling.scenario (half the basal BDNF, E->E weights at 0.75 of healthy,
Val66Met release at 0.75). The same circuit stands for the prefrontal target and the motor
patch whose MEP proxy is read, which is the project's assumption. Homeostatic scaling is off,
as in the single sessions (coupling.course); unconsolidated changes decay with the 1 h tag.

Metrics, per network seed (noise seeds averaged), then the mean over network seeds and its 95 %
BCa bootstrap CI over them (the targets file's design: resamples, bootstrap_seed), at every
landmark (course start, after each calendar week, follow-up FOLLOW_UP_DAYS after the last
session): the mean weight of each plastic projection, the primary outcome being the mean over
the four depressed E->E projections (L2/3 and L5, within and between layers), weighted by
their synapse counts: the mean weight of a depressed synapse (the afferents and the
inhibitory synapses are not depressed, and the inhibitory ones are not plastic); its change
from the course start, and an arm's effect: its change minus its sham's; the MEP proxy's
change against sham in percentage points (the after-effects metric, with its baseline_floor);
the mean BDNF. Effects are also given per pulse and per
minute of stimulation. The endpoint is the follow-up: a week landmark is read at the end of a
session, when its early phase (1 h tag) is still there, so it measures the last session
rather than the course. Checks, each with its CI, on each calendar, at the endpoint, effects
in % of the network seed's healthy - depressed E->E gap at the start:

(a) a manipulation check: at the start the depressed E->E weight lies below the healthy
    reference's (CI of healthy - depressed above 0; true by construction);
(b) the 10 Hz course closes the gap: CI above MIN_GAP_CLOSED_PCT;
(c) iTBS 600 does too (CI above MIN_GAP_CLOSED_PCT), and in fewer minutes of stimulation
    (effect per minute, iTBS - 10 Hz, CI above 0): both must hold;
(d) Val66Met blunts it, for iTBS 600 and for 10 Hz (gap closed by the arm - by its Val66Met
    variant, CI above 0); the same for the MEP change against sham, secondary (the MEP proxy
    reads the afferents as much as the E->E synapses);
(e) sham courses leave the depressed E->E where they were: an equivalence test, the 90 % CI of
    each sham's change within +-SHAM_MARGIN_PCT of the gap;
(f) the positive control: iTBS 600 on the healthy patch leaves a change at the follow-up (CI
    of its E->E effect above 0). The capture threshold (BDNF above 1.25, a model constant not
    calibrated) decides whether any change outlives its day: the healthy patch rests at 1 and
    the depressed one at 0.5.

A miss is reported as a miss. This design is pre-registered in validation/targets.toml before
its first full run, which waits for the calibration's frozen parameters
(validation/calibrate.py); until then only --size small runs, a smoke run of the machinery
(40 neurons on the sphere head, shortened protocols and calendars, 2 network seeds, 1 noise
seed: NOT the design, and its JSON says so).

    python validation/depression.py --size small      # minutes; writes depression_small.json/.png
    python validation/depression.py --size full       # the design: about 10^6 simulated s (see the JSON)

Runs go to --out (default results/depression_<size>; resumable: a rerun skips finished runs) on
local Dask workers (--workers) or a running cluster (--scheduler); the JSON and figure go to
--results (default validation/results): design, arms, per-arm landmarks with CIs, checks,
simulated seconds, wall time, commit and environment.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

import coupling
from coupling.aftereffect import paired_changes, seed_ci
from coupling.config import calendar
from coupling.targets import load_targets
from tmsim_io import figure, save_figure, write_json

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(HERE))  # before benchmarks/, which has an after_effects.py of its own
from after_effects import BASE, SMALL, json_ready  # noqa: E402
from machine import environment  # noqa: E402

PERCENT_RMT = 120.0
CLINICAL_WEEKS = 4
ACCELERATED_DAYS = 5
FOLLOW_UP_DAYS = 7.0
MIN_GAP_CLOSED_PCT = 5.0
"""Smallest effect of interest: % of the healthy - depressed E->E gap a course must close (the
project's choice)."""
SHAM_MARGIN_PCT = 10.0
"""Equivalence margin of a sham's drift, % of the gap (the project's choice)."""
E_TO_E = ("L23E_to_L23E", "L23E_to_L5E", "L5E_to_L23E", "L5E_to_L5E")
"""The depressed projections (coupling.scenario: E->E weights at 0.75 of healthy)."""
SIZES = {
    "full": dict(protocols=dict(ten_hz=coupling.ten_hz_clinical(), itbs=coupling.itbs(),
                                itbs1800=coupling.itbs(1800)),
                 calendars=dict(clinical={"course.calendar": "daily", "course.weeks": CLINICAL_WEEKS,
                                          "course.days_per_week": 5, "course.sessions_per_day": 1},
                                accelerated={"course.calendar": "saint", "course.days": ACCELERATED_DAYS}),
                 base={}),
    "small": dict(protocols=dict(ten_hz=coupling.rtms(10.0, 40, 2, 26.0), itbs=coupling.itbs(60),
                                 itbs1800=coupling.itbs(120)),
                  calendars=dict(clinical={"course.calendar": "daily", "course.weeks": 2,
                                           "course.days_per_week": 1, "course.sessions_per_day": 1},
                                 accelerated={"course.calendar": "daily", "course.weeks": 1,
                                              "course.days_per_week": 1, "course.sessions_per_day": 3}),
                  base=SMALL["base"]),
}


def arms(size: dict) -> list:
    """Every arm of the trial (see the module docstring), named <protocol>_<calendar>[_val66met |
    _healthy], and healthy_<calendar>, the untreated reference."""
    p = size["protocols"]
    out = []
    for when, course in size["calendars"].items():
        names = ("ten_hz", "itbs") + (("itbs1800",) if when == "accelerated" else ())
        out += [coupling.Arm(f"{n}_{when}", p[n], PERCENT_RMT, course, "depressed") for n in names]
        out += [coupling.Arm(f"{n}_{when}_val66met", p[n], PERCENT_RMT, course, "depressed_val66met")
                for n in ("ten_hz", "itbs")]
        out.append(coupling.Arm(f"itbs_{when}_healthy", p["itbs"], PERCENT_RMT, course, "healthy"))
        out.append(coupling.Arm(f"healthy_{when}", coupling.sham(p["itbs"]), PERCENT_RMT, course, "healthy"))
    return out


def per_seed(x) -> np.ndarray:
    """(network, noise, ...) -> (network, ...): the mean over noise seeds."""
    return np.asarray(x, float).mean(axis=1)


def estimate(values: np.ndarray, design) -> dict:
    """Mean over network seeds of (network,) values and its CI (coupling.aftereffect.seed_ci)."""
    values = np.asarray(values, float)
    low, high = seed_ci(lambda s: values[s].mean(), np.arange(values.size), design)
    return dict(mean=float(values.mean()), ci=[low, high], per_network_seed=values.tolist())


def ee(weights: dict, synapses: dict) -> np.ndarray:
    """The primary outcome, (network, noise, points): the mean weight over the synapses of the
    E->E projections (each projection's mean weighted by its synapse count on that network
    seed: synapses {projection: (network,) counts})."""
    missing = [p for p in E_TO_E if p not in weights or p not in (synapses or {})]
    if missing:
        raise ValueError(f"the courses report no weights or synapse counts of {missing} (plastic "
                         f"projections: {sorted(weights)})")
    counts = np.array([synapses[p] for p in E_TO_E], float)[:, :, None, None]
    return (np.array([weights[p] for p in E_TO_E]) * counts).sum(axis=0) / counts.sum(axis=0)


def arm_outcomes(r, design, minutes: float, pulses: int) -> dict:
    """Per landmark: E->E and per-projection weights (nS) and their change from the start, the
    effect over sham (change - sham's change), the MEP change against sham (percentage points)
    and mean BDNF; each an estimate over network seeds. minutes, pulses: of stimulation over
    the course."""
    out = {"points": list(r.points), "days": r.days.tolist(), "stimulation_min": minutes, "pulses": pulses}
    series = {"E->E": ee(r.weights, r.synapses), **r.weights}
    shams = None if r.sham_weights is None else {"E->E": ee(r.sham_weights, r.synapses), **r.sham_weights}
    for name, w in series.items():
        w = per_seed(w)
        entry = {"weight_nS": [estimate(w[:, k], design) for k in range(w.shape[1])],
                 "change_nS": [estimate(w[:, k] - w[:, 0], design) for k in range(w.shape[1])]}
        if shams is not None:
            s = per_seed(shams[name])
            effect = (w - w[:, :1]) - (s - s[:, :1])
            entry["effect_nS"] = [estimate(effect[:, k], design) for k in range(w.shape[1])]
            entry["sham_change_nS"] = [estimate(s[:, k] - s[:, 0], design) for k in range(w.shape[1])]
        out.setdefault("weights", {})[name] = entry
    if r.sham_mep is not None:
        change = per_seed(paired_changes(r.mep[..., 0], r.mep, r.sham_mep[..., 0], r.sham_mep,
                                         design.baseline_floor))
        out["mep_change_pp"] = [estimate(change[:, k], design) for k in range(change.shape[1])]
    out["mep"] = [estimate(per_seed(r.mep)[:, k], design) for k in range(len(r.points))]
    if r.bdnf:
        b = per_seed(np.mean(list(r.bdnf.values()), axis=0))
        out["bdnf"] = [estimate(b[:, k], design) for k in range(len(r.points))]
    return out


def end(r) -> int:
    """Index of the endpoint: the follow-up (FOLLOW_UP_DAYS after the last session, when the
    early phase of every session has decayed and only captured change remains)."""
    return r.points.index("follow_up")


def effect_at_end(r) -> np.ndarray:
    """(network,) E->E effect over sham at the endpoint, nS."""
    w, s, k = per_seed(ee(r.weights, r.synapses)), per_seed(ee(r.sham_weights, r.synapses)), end(r)
    return (w[:, k] - w[:, 0]) - (s[:, k] - s[:, 0])


def mep_gain_at_end(r, design) -> np.ndarray:
    """(network,) MEP change against sham at the endpoint, percentage points."""
    change = paired_changes(r.mep[..., 0], r.mep, r.sham_mep[..., 0], r.sham_mep, design.baseline_floor)
    return per_seed(change)[:, end(r)]


def check(values, design, passes) -> dict:
    """An estimate with its verdict: passes(ci low, ci high)."""
    e = estimate(values, design)
    low, high = e["ci"]
    e["passed"] = bool(not math.isnan(low) and passes(low, high))
    return e


def checks(results: dict, when: str, design, minutes: dict) -> dict:
    """Checks (a)-(f) of the module docstring on calendar `when`, at the endpoint; effects in %
    of each network seed's healthy - depressed E->E gap at the start."""
    r = {name.removesuffix(f"_{when}").replace(f"_{when}_", "_"): res for name, res in results.items()
         if name.endswith(f"_{when}") or f"_{when}_" in name}
    healthy = per_seed(ee(r["healthy"].weights, r["healthy"].synapses))[:, 0]
    depressed = per_seed(ee(r["ten_hz"].weights, r["ten_hz"].synapses))[:, 0]
    gap = healthy - depressed
    closed = lambda k: 100.0 * effect_at_end(r[k]) / gap
    per_min = {k: effect_at_end(r[k]) / minutes[f"{k}_{when}"] for k in ("ten_hz", "itbs")}
    above = lambda floor: (lambda low, high: low > floor)
    out = {"a_manipulation_depressed_below_healthy_nS": check(gap, design, above(0.0)),
           "b_ten_hz_gap_closed_pct": check(closed("ten_hz"), design, above(MIN_GAP_CLOSED_PCT)),
           "c_itbs_gap_closed_pct": check(closed("itbs"), design, above(MIN_GAP_CLOSED_PCT)),
           "c_itbs_minus_ten_hz_per_min_nS": check(per_min["itbs"] - per_min["ten_hz"], design, above(0.0))}
    out["c_itbs_minus_ten_hz_per_min_nS"]["passed"] &= out["c_itbs_gap_closed_pct"]["passed"]
    for k in ("itbs", "ten_hz"):
        out[f"d_{k}_minus_val66met_gap_pct"] = check(closed(k) - closed(f"{k}_val66met"), design, above(0.0))
        out[f"d_{k}_minus_val66met_mep_pp_secondary"] = check(
            mep_gain_at_end(r[k], design) - mep_gain_at_end(r[f"{k}_val66met"], design), design, above(0.0))
    tost = replace(design, confidence=1.0 - 2.0 * (1.0 - design.confidence))      # 90 % CI for 95 % TOST
    for k, res in r.items():
        if res.sham_weights is not None:
            s = per_seed(ee(res.sham_weights, res.synapses))
            out[f"e_sham_of_{k}_change_gap_pct"] = check(100.0 * (s[:, end(res)] - s[:, 0]) / gap, tost,
                                                         lambda low, high: -SHAM_MARGIN_PCT < low and
                                                         high < SHAM_MARGIN_PCT)
    out["f_positive_control_healthy_itbs_nS"] = check(effect_at_end(r["itbs_healthy"]), design, above(0.0))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--targets", type=Path, default=HERE / "targets.toml",
                        help="its [design]: seeds, RMT search, test pulses, bootstrap")
    parser.add_argument("--workers", type=int, default=None,
                        help="local Dask workers (default: one per core)")
    parser.add_argument("--scheduler", default=None,
                        help="address or scheduler file of a running Dask cluster")
    parser.add_argument("--out", type=Path, default=None, help="folder of the runs (resumable)")
    parser.add_argument("--results", type=Path, default=HERE / "results",
                        help="folder of the JSON and figure")
    args = parser.parse_args()
    size = SIZES[args.size]
    design = load_targets(args.targets).design
    if args.size == "small":
        design = replace(design, network_seeds=design.network_seeds[:SMALL["network_seeds"]],
                         noise_seeds=design.noise_seeds[:SMALL["noise_seeds"]], **SMALL["design"])
    base = coupling.RunConfig().with_values(
        {**BASE, **size["base"], "course.final_probe_days": FOLLOW_UP_DAYS}, "validation/depression.py")
    trial = arms(size)
    minutes, pulses, simulated = {}, {}, {}
    for a in trial:
        sessions = len(calendar(base.with_values(a.course)))
        minutes[a.name] = sessions * a.protocol.duration_ms / 60e3
        pulses[a.name] = sessions * a.protocol.n_pulses
        runs = (1 if a.protocol.sham else 2) * len(design.network_seeds) * len(design.noise_seeds)
        simulated[a.name] = runs * sessions * (a.protocol.duration_ms / 1e3 + base.session.after_s)
    out = args.out or REPO / "results" / f"depression_{args.size}"
    print(f"{len(trial)} arms, about {sum(simulated.values()):.3g} s of spiking to simulate", flush=True)
    start = time.perf_counter()
    results = coupling.run_trial(base, trial, design, out, workers=args.workers, scheduler=args.scheduler)
    report = dict(
        pre_registered=False,
        note=("--size full: the design, to be pre-registered in validation/targets.toml before its first run"
              if args.size == "full" else "--size small: a smoke run of the machinery, NOT the design"),
        environment=environment(["numpy", "scipy", "dask", "distributed"], ("coupling", "neurons", "efield")),
        design=json_ready(asdict(design)), base_config=base.to_dict(), percent_rmt=PERCENT_RMT,
        e_to_e=list(E_TO_E), runs_folder=str(out), wall_s=time.perf_counter() - start,
        simulated_s=simulated,
        arms={name: arm_outcomes(r, design, minutes[name], pulses[name]) for name, r in results.items()},
        checks={when: checks(results, when, design, minutes) for when in size["calendars"]},
        raw={name: r.to_dict() for name, r in results.items()})
    args.results.mkdir(parents=True, exist_ok=True)
    path = write_json(args.results / f"depression_{args.size}.json", json_ready(report))
    plot(report, args.results / f"depression_{args.size}.png")
    print("\n| calendar | check | mean | 95 % CI | passes |\n" + "| --- " * 5 + "|")
    for when, found in report["checks"].items():
        for name, c in found.items():
            print(f"| {when} | {name} | {c['mean']:+.4g} | [{c['ci'][0]:+.3g}, {c['ci'][1]:+.3g}] | "
                  f"{'yes' if c['passed'] else 'NO'} |")
    print("wrote", path)


def plot(report: dict, path: Path):
    """Per calendar (columns): the E->E effect over sham (nS) with its 95 % CI, the MEP change
    against sham (percentage points) and the mean BDNF, against days; the gap to the healthy
    reference in the first row's title."""
    calendars = list(report["checks"])
    labels = list(dict.fromkeys(n.replace(f"_{w}", "").removesuffix("_val66met") for n in report["arms"]
                                for w in calendars if f"_{w}" in n))
    colour = {label: f"C{i}" for i, label in enumerate(labels)}   # one per protocol; Val66Met dashed
    fig = figure(path, figsize=(6.5 * len(calendars), 11))
    axes = np.atleast_2d(fig.subplots(3, len(calendars), squeeze=False))
    for col, when in enumerate(calendars):
        for name, arm in report["arms"].items():
            if not (name.endswith(f"_{when}") or f"_{when}_" in name):
                continue
            days = np.array(arm["days"])
            for row, values in enumerate((arm["weights"]["E->E"].get("effect_nS"), arm.get("mep_change_pp"),
                                          arm.get("bdnf"))):
                if values is None:
                    continue
                mean = np.array([v["mean"] for v in values])
                low, high = (np.array([v["ci"][i] for v in values], float) for i in (0, 1))
                label = name.replace(f"_{when}", "")
                c = colour[label.removesuffix("_val66met")]
                axes[row, col].plot(days, mean, "o--" if label.endswith("_val66met") else "o-", markersize=3,
                                    label=label, color=c)
                axes[row, col].fill_between(days, low, high, color=c, alpha=0.12, linewidth=0)
        gap = report["checks"][when]["a_manipulation_depressed_below_healthy_nS"]["mean"]
        for row in range(3):
            axes[row, col].axhline(0.0, color="0.6", linewidth=0.6)
        axes[0, col].set(ylabel="E->E weight, effect over sham (nS)",
                         title=f"{when} calendar (healthy - depressed E->E at the start: {gap:.3g} nS)")
        axes[1, col].set(ylabel="MEP proxy change against sham (pp)")
        axes[2, col].set(xlabel="days from the course start", ylabel="mean BDNF (half-saturation units)")
        axes[2, col].legend(fontsize=7)
    fig.suptitle(report["note"], fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


if __name__ == "__main__":
    main()
