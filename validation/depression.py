"""The depression scenario: does a course of rTMS bring a depressed patch toward the healthy one?

Checks, each a direction that must hold (the figures are reported as they come). A course's
effect is its gain of mean plastic weight minus that of the sham course (the same sessions
and spontaneous activity without field), as a trial compares active with sham:
(a) at baseline the depressed patch has weaker excitatory connectivity than the healthy one;
(b) a 10 Hz course raises it toward the healthy level;
(c) an iTBS course does the same in fewer minutes of stimulation (gain per minute);
(d) reduced BDNF release (Val66Met) blunts the iTBS effect;
(e) a sham course leaves the connectivity where it was (its drift under a tenth of iTBS's effect).

All patches sit under F3 of the coupling stage's sphere head (70 mm figure-8, the same field
for every run) at 120 % of the depressed patch's resting motor threshold, the clinical
intensity of both protocols (10 Hz: O'Reardon et al. 2007, Biol Psychiatry 62:1208; iTBS:
Blumberger et al. 2018, Lancet 391:1683). 10 Hz runs once a day; iTBS (and its sham) on an
accelerated calendar, sessions 50 min apart as in SAINT (Cole et al. 2020, Am J Psychiatry
177:716). The BDNF a session releases (3 min delay, 30 min decay), where it rises above the
capture threshold (coupling.PatchModel), is captured by that
session's tagged changes (1 h tag, coupling.PatchModel) and, 50 min later, by the next
session's as well, which is where the reduced release of Val66Met shows. Sizes:
--size small (CPU, minutes): 150 neurons; 10 Hz on two days as 15 trains of 40 pulses (600
pulses, the clinical train and gap); iTBS three 600-pulse sessions in one day;
--size full: 1000 neurons; five daily sessions of the clinical 3000-pulse 10 Hz; one SAINT day
(ten 1800-pulse iTBS sessions). Writes validation/results/depression_<size>.json and
depression_<size>.png.

    python validation/depression.py [--size small|full]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

import coupling
from tmsim_io import figure, save_figure

HERE = Path(__file__).resolve().parent
CLINICAL_PERCENT_RMT = 120.0
SIZES = {
    # (protocol, calendar) of each course
    "small": dict(n_neurons=150,
                  ten_hz=(coupling.rtms(10.0, 40, 15, 26.0), coupling.Calendar.on_days([0, 1])),
                  itbs=(coupling.itbs(), coupling.Calendar.on_days([0], sessions_per_day=3)),
                  after_s=2.0, n_test=4),
    "full": dict(n_neurons=1000, ten_hz=(coupling.ten_hz_clinical(), coupling.Calendar.daily(1)),
                 itbs=(coupling.itbs(1800), coupling.Calendar.saint(1)), after_s=10.0, n_test=10),
}


def mean_ee_weight(result, index: int) -> float:
    """Mean over the plastic projections of their mean weight at measurement `index`."""
    return float(np.mean([w[index] for w in result.mean_weights.values()]))


def mean_bdnf(result) -> np.ndarray:
    """Mean over the three-factor projections of their mean BDNF (units of its half-saturation
    level) at every measurement."""
    return np.mean(list(result.bdnf.values()), axis=0)


def bdnf_at_session_starts(result) -> list[float]:
    """Mean BDNF at the start of each session."""
    return [float(b) for b in mean_bdnf(result)[result.label == "before"]]


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    args = parser.parse_args()
    size = SIZES[args.size]
    config = coupling.RunConfig().with_values({
        "head.model": "sphere", "coil.centre": "F3", "coil.handle": "",
        "patch.n_neurons": size["n_neurons"], "patch.scenario": "depressed",
        "protocol.intensity": f"{CLINICAL_PERCENT_RMT:g}% RMT",
        "protocol.test_intensity": f"{CLINICAL_PERCENT_RMT:g}% RMT",
        "session.after_s": size["after_s"], "session.n_test": size["n_test"]})
    run = coupling.prepare_run(config)
    head, rmt, percent_mso = run.mesh, run.rmt_percent_mso, run.percent_mso
    patches = {name: coupling.cortical_patch(head, "F3", config.patch.radius_mm, size["n_neurons"], seed=0,
                                             model=coupling.scenario_model(name))
               for name in ("healthy", "depressed", "depressed_val66met")}
    fields = {name: coupling.neuron_field(head, run.fem, p, run.coil.didt_max) for name, p in patches.items()}
    itbs, itbs_calendar = size["itbs"]
    runs = {"10hz": ("depressed", *size["ten_hz"]), "itbs": ("depressed", itbs, itbs_calendar),
            "itbs_val66met": ("depressed_val66met", itbs, itbs_calendar),
            "sham": ("depressed", coupling.sham(itbs), itbs_calendar)}
    out, results = {}, {}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        for label, (scenario, protocol, calendar) in runs.items():
            results[label] = coupling.run_course(patches[scenario], fields[scenario], protocol, calendar,
                                                 percent_mso, folder=Path(scratch) / label,
                                                 options=config.session)
            print(label, results[label].summary()["mean_weights_nS"], flush=True)
    healthy = np.mean([p.weight.mean() for p in patches["healthy"].network.projections if p.plasticity])
    depressed = np.mean([p.weight.mean() for p in patches["depressed"].network.projections if p.plasticity])
    minutes = {k: len(calendar) * protocol.duration_ms / 60e3 for k, (_, protocol, calendar) in runs.items()}
    gain = {k: mean_ee_weight(r, -1) - mean_ee_weight(r, 0) for k, r in results.items()}
    # a course's effect is its gain over sham's (the same sessions without field), as in trials
    effect = {k: gain[k] - gain["sham"] for k in gain if not runs[k][1].sham}
    per_min = {k: effect[k] / minutes[k] for k in effect}
    out = dict(size=args.size, percent_mso=percent_mso, rmt_percent_mso=rmt, wall_s=time.perf_counter() - t0,
               healthy_ee_nS=float(healthy), depressed_ee_nS=float(depressed),
               gain_nS=gain, effect_over_sham_nS=effect, stimulation_min=minutes, effect_per_min=per_min,
               mep_change={k: r.summary()["mep_change"] for k, r in results.items()},
               bdnf_at_session_starts={k: bdnf_at_session_starts(r) for k, r in results.items()},
               checks={"a_depressed_weaker": bool(depressed < healthy),
                       "b_10hz_raises": bool(effect["10hz"] > 0),
                       "c_itbs_faster_per_minute": bool(per_min["itbs"] > per_min["10hz"] > 0),
                       "d_val66met_blunts": bool(0 <= effect["itbs_val66met"] < effect["itbs"]),
                       "e_sham_nothing": bool(abs(gain["sham"]) < 0.1 * abs(effect["itbs"]))})
    (HERE / "results").mkdir(exist_ok=True)
    path = HERE / "results" / f"depression_{args.size}.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    plot(results, healthy, depressed, HERE / "results" / f"depression_{args.size}.png")
    print(json.dumps(out["checks"], indent=2))
    print("wrote", path)


def plot(results, healthy: float, depressed: float, path: Path):
    fig = figure(path, figsize=(15, 4.5))
    axes = fig.subplots(1, 3)
    for label, r in results.items():
        w = [mean_ee_weight(r, i) for i in range(r.times_days.size)]
        axes[0].plot(r.times_days, w, "o-", markersize=3, label=label)
        axes[1].plot(r.times_days, r.mep, "o-", markersize=3, label=label)
        axes[2].plot(r.times_days, mean_bdnf(r), "o-", markersize=3, label=label)
    axes[0].axhline(healthy, color="k", linestyle="--", linewidth=0.8, label="healthy")
    axes[0].axhline(depressed, color="0.5", linestyle=":", linewidth=0.8, label="depressed baseline")
    axes[0].set(xlabel="days", ylabel="mean E->E weight (nS)", title="connectivity over the course")
    axes[1].set(xlabel="days", ylabel="MEP proxy", title="response to test pulses")
    axes[2].set(xlabel="days", ylabel="mean BDNF (half-saturation units)",
                title="BDNF at session starts and ends")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)


if __name__ == "__main__":
    main()
