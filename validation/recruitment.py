"""Is the default patch worth measuring? Motor threshold, recruitment and the field at threshold.

For network seeds of the default `tmsim run` configuration (the template head, the coil over the
hand knob at C3 with the handle 45 degrees posterolateral: posterior-anterior current), with a
healthy patch by default (the scenario of the after-effects validation), this
measures what the after-effects issue asks of a patch before any after-effect is measured
(aims, reported as they come; the one constant set on these measurements is
coupling.MICRO_MACRO_SCALE, on the field at RMT, which rescales %MSO and V/m and nothing else):

- the emergent median |E| at the output neurons (L5E) at the resting motor threshold (RMT), to
  compare with the 50-70 V/m of whole-head models at motor threshold (Weise et al. 2025, Brain
  Stimul 18:280);
- the afferents a single pulse activates at 80 % RMT (aim: at least 20);
- the trial-to-trial CV of the MEP proxy at 120 % RMT and at 150 % RMT, the MEP test intensity
  of validation/targets.toml (aim: below 20 %);
- the recruitment (input-output) curve, MEP proxy against %RMT, which in people rises
  sigmoidally from RMT to a plateau near 150-170 % RMT (Devanne et al. 1997, Exp Brain Res
  114:329).

Writes validation/results/recruitment.json (with the commit and environment) and
recruitment.png.

    python validation/recruitment.py [--seeds 0 1 2] [--trials 20] [--scenario healthy]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

import coupling
from coupling.session import MEP_CRITERION, settle
from tmsim_io import figure, save_figure

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "benchmarks"))
from machine import environment  # noqa: E402

PERCENT_RMT = (60, 80, 90, 100, 110, 120, 135, 150, 170, 200)
"""Intensities of the recruitment curve, % RMT."""


def activated_counts(prepared, percent_mso: float) -> dict:
    """Neurons of each population that one pulse at percent_mso activates directly."""
    events = coupling.stimulus_events(prepared.patch, prepared.field, np.array([1.0]), np.ones(1),
                                      percent_mso)
    first = events.wave == 0
    return {name: int(np.sum(events.population_index[first] == i))
            for i, name in enumerate(events.populations)}


def measure(seed: int, trials: int, scenario: str) -> dict:
    """RMT, field at RMT, activated neurons and MEP proxy over PERCENT_RMT for network seed `seed`
    of `scenario`."""
    config = coupling.RunConfig().with_values({"patch.seed": seed, "patch.scenario": scenario})
    prepared = coupling.prepare_run(config)
    rmt = prepared.rmt_percent_mso
    state = settle(prepared.patch, seed=0)
    curve = []
    for pct in PERCENT_RMT:
        mso = min(100.0, rmt * pct / 100.0)
        mep = coupling.probe_mep(prepared.patch, prepared.field, state, mso, n_trials=trials, seed=1)
        mean, sd = mep.mean, float(np.std(mep.responses, ddof=1))
        curve.append(dict(percent_rmt=pct, percent_mso=mso, mep=mean, sd=sd,
                          cv=sd / mean if mean > 0 else None, probability=mep.probability,
                          activated=activated_counts(prepared, mso)))
    magnitude = {name: float(np.median(prepared.field.magnitude(name)) * rmt / 100.0)
                 for name in prepared.patch.populations}
    return dict(seed=seed, rmt_percent_mso=rmt, median_E_at_rmt_V_per_m=magnitude,
                sizes={p.name: p.n for p in prepared.patch.network.populations}, curve=curve)


def plot(results: list, scenario: str, path: Path):
    fig = figure(figsize=(6.0, 4.0))
    ax = fig.add_subplot(1, 1, 1)
    for r in results:
        x = [c["percent_rmt"] for c in r["curve"]]
        ax.errorbar(x, [c["mep"] for c in r["curve"]], yerr=[c["sd"] for c in r["curve"]], marker="o",
                    capsize=2, label=f"seed {r['seed']}: RMT {r['rmt_percent_mso']:.1f} % MSO")
    ax.axhline(MEP_CRITERION, color="grey", ls=":", label="MEP criterion")
    ax.axvspan(150, 170, color="grey", alpha=0.15, label="human plateau (Devanne 1997)")
    ax.set(xlabel="intensity (% RMT)", ylabel="MEP proxy (L5 spikes per neuron)",
           title=f"Recruitment curve of the default patch, {scenario} (mean +- SD over test pulses)")
    ax.legend(fontsize=7)
    save_figure(fig, path)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="network seeds")
    parser.add_argument("--trials", type=int, default=20, help="test pulses per intensity")
    parser.add_argument("--scenario", default="healthy", choices=coupling.SCENARIOS,
                        help="patch scenario (the after-effects validation uses healthy)")
    parser.add_argument("--out", type=Path, default=HERE / "results", help="results folder")
    args = parser.parse_args()
    if args.trials < 2 or any(s < 0 for s in args.seeds):
        parser.error("--trials must be >= 2 and --seeds >= 0")
    start = time.perf_counter()
    results = [measure(seed, args.trials, args.scenario) for seed in args.seeds]
    at = lambda r, pct: next(c for c in r["curve"] if c["percent_rmt"] == pct)
    summary = dict(
        median_E_L5E_at_rmt_V_per_m=[r["median_E_at_rmt_V_per_m"]["L5E"] for r in results],
        afferents_at_80_percent_rmt=[at(r, 80)["activated"]["AFF"] for r in results],
        cv_at_120_percent_rmt=[at(r, 120)["cv"] for r in results],
        cv_at_150_percent_rmt=[at(r, 150)["cv"] for r in results])
    record = dict(config=coupling.RunConfig().to_dict(),
                  seeds=args.seeds, trials=args.trials, scenario=args.scenario, summary=summary,
                  results=results,
                  wall_s=time.perf_counter() - start,
                  environment=environment(["numpy"], ("coupling", "neurons", "efield")))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "recruitment.json").write_text(json.dumps(record, indent=1) + "\n")
    plot(results, args.scenario, args.out / "recruitment.png")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
