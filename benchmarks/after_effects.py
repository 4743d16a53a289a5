"""After-effects of rTMS protocols on the MEP proxy, against the human data.

Each protocol is delivered to the same healthy patch under F3 of the default run's sphere
head (coupling.prepare_run: 70 mm figure-8, one FEM field for all runs); the MEP proxy (test
pulses at 120 % of the
model's resting motor threshold) is measured before and at several minutes after it. Human
after-effects (MEP after / before, healthy subjects, motor cortex):

    iTBS   600 pulses, 80 % AMT    +35 % for 20-60 min    Huang et al. 2005, Neuron 45:201;
                                                          Wischnewski & Schutter 2015, Brain Stimul 8:685
    cTBS   600 pulses, 80 % AMT    -23 %                  Wischnewski & Schutter 2015
    1 Hz   900 pulses, 115 % RMT   -20 %                  Chen et al. 1997, Neurology 48:1398
    imTBS  600 pulses, 80 % AMT    about 0                Huang et al. 2005

The model's active motor threshold is not defined (the patch has no voluntary drive), so the
TBS protocols run at 80 % of the resting threshold. Each protocol's effect is the mean MEP
ratio over the probes from 20 to 60 min minus that of sham iTBS (the same run without field);
a sign "matches" when it is the human one (imTBS: |effect| below 10 %). The figures are
reported as the model gives them with its default parameters.

    python benchmarks/after_effects.py [--size small|full] [--seed N]

Writes benchmarks/results/after_effects_<size>[_seed<N>].json and .png.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import coupling
from machine import environment
from tmsim_io import figure, save_figure

RESULTS = Path(__file__).resolve().parent / "results"
PROBE_MINUTES = (0.0, 10.0, 20.0, 30.0, 60.0)
LATE = (20.0, 30.0, 60.0)
"""Probes averaged for the effect (Huang et al. 2005 report iTBS facilitation for 20-60 min)."""

HUMAN = {   # protocol: (builder, % RMT, human MEP change, source)
    "itbs": (coupling.itbs, 80.0, +0.35, "Huang et al. 2005; Wischnewski & Schutter 2015"),
    "ctbs": (coupling.ctbs, 80.0, -0.23, "Wischnewski & Schutter 2015"),
    "1hz": (coupling.one_hz, 115.0, -0.20, "Chen et al. 1997"),
    "imtbs": (coupling.imtbs, 80.0, 0.0, "Huang et al. 2005"),
}
SIZES = {"small": dict(n_neurons=150, n_test=10, after_s=2.0),
         "full": dict(n_neurons=1000, n_test=20, after_s=10.0)}
NULL_BAND = 0.10
"""|effect| below which a change counts as none (imTBS)."""


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the patch (positions, synapses, thresholds)")
    args = parser.parse_args()
    size = SIZES[args.size]
    config = coupling.RunConfig().with_values({
        "head.model": "sphere", "coil.centre": "F3", "coil.handle": "",
        "patch.n_neurons": size["n_neurons"], "patch.seed": args.seed,
        "patch.scenario": "healthy", "protocol.test_intensity": "120% RMT",
        "session.probe_minutes": list(PROBE_MINUTES), "session.after_s": size["after_s"],
        "session.n_test": size["n_test"]})
    t0 = time.perf_counter()
    run = coupling.prepare_run(config)
    rmt, test_mso = run.rmt_percent_mso, run.test_percent_mso
    runs = {name: (build(), pct) for name, (build, pct, _, _) in HUMAN.items()}
    runs["sham"] = (coupling.sham(coupling.itbs()), 80.0)
    ratios, weights = {}, {}
    for name, (protocol, pct) in runs.items():
        res = coupling.run_protocol(run.patch, run.field, protocol, coupling.mso_from_rmt(pct, rmt),
                                    options=config.session, test_percent_mso=test_mso, progress=False)
        before = res.mep_before.mean
        ratios[name] = {m: mep.mean / before if before > 0 else float("nan")
                        for m, mep in res.mep_after.items()}
        weights[name] = {p: w["60.0"] / w["before"] for p, w in res.mean_weights.items()}
        print(f"{name:6s} MEP before {before:.3f}, after/before "
              + " ".join(f"{m:g} min {r:.2f}" for m, r in ratios[name].items()), flush=True)
    late = {name: float(np.mean([r[m] for m in LATE])) for name, r in ratios.items()}
    effects = {name: late[name] - late["sham"] for name in HUMAN}
    matches = {}
    for name, (_, _, human, _) in HUMAN.items():
        same = abs(effects[name]) < NULL_BAND if human == 0 else np.sign(effects[name]) == np.sign(human)
        matches[name] = bool(same)
    out = dict(environment=environment(["numpy"], ("neurons", "coupling")), size=args.size, seed=args.seed,
               n_neurons=size["n_neurons"],
               n_test=size["n_test"], rmt_percent_mso=rmt,
               test_percent_mso=test_mso, wall_s=time.perf_counter() - t0, mep_ratio=ratios,
               weight_ratio_60min=weights, effect_vs_sham=effects, sign_matches=matches,
               human={name: dict(change=h, percent_rmt=pct, source=src)
                      for name, (_, pct, h, src) in HUMAN.items()})
    RESULTS.mkdir(exist_ok=True)
    stem = f"after_effects_{args.size}" + (f"_seed{args.seed}" if args.seed else "")
    path = RESULTS / f"{stem}.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    plot(ratios, RESULTS / f"{stem}.png")
    print("\n| protocol | model effect vs sham | human | sign matches |\n| --- | --- | --- | --- |")
    for name, (_, _, human, _) in HUMAN.items():
        print(f"| {name} | {effects[name]:+.2f} | {human:+.2f} | {'yes' if matches[name] else 'no'} |")
    print("wrote", path)


def plot(ratios: dict, path: Path):
    fig = figure(path, figsize=(7, 4.5))
    ax = fig.subplots()
    for i, (name, r) in enumerate(ratios.items()):
        colour = f"C{i}"
        ax.plot(list(r), list(r.values()), "o-", color=colour, label=f"model {name}")
        if name in HUMAN:
            ax.axhline(1.0 + HUMAN[name][2], color=colour, linestyle="--", linewidth=0.8)
    ax.axhline(1.0, color="k", linewidth=0.6)
    ax.set(xlabel="minutes after stimulation", ylabel="MEP proxy, after / before",
           title="after-effects: model (lines) and human data (dashed)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


if __name__ == "__main__":
    main()
