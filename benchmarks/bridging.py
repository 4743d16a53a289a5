"""Time-scale bridging inside a session against full spiking, on the same seeds.

A bridged session (SessionOptions.bridge_min_gap_s > 0, see coupling.session) simulates each
train and bridge_settle_s after it spike by spike and advances only the slow variables over
the rest of every inter-train gap. This script runs the same sessions both ways on the
default 150-neuron patch of coupling.RunConfig() (coupling.prepare_run: sphere head, 70 mm
figure-8 under F3, intensity 80 % RMT, test pulses 120 % RMT), healthy and depressed
scenarios, iTBS 600 (8 s gaps) and a shortened clinical 10 Hz (--trains trains of 40 pulses,
26 s gaps), on --seeds noise seeds (SessionOptions.seed; the patch is the same), and
compares:

- the final mean weight of every plastic projection (at the last probe): relative
  difference bridged / full - 1 on the same seed; the criterion of the speed issue is
  within 2 % for every projection, seed, scenario and protocol;
- the MEP ratio (after / before, per probe): same-seed difference bridged - full, against
  the noise of the full run, the standard deviation of its ratio over the noise seeds; the
  criterion is the largest same-seed difference within that standard deviation;
- wall time of each run_protocol call (the first call of each kind includes compilation).

    python benchmarks/bridging.py [--seeds 3] [--trains 15] [--itbs-pulses 600] [--settle-s 1.0] [--jobs 2]

Writes benchmarks/results/bridging.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
SCENARIOS = ("healthy", "depressed")
MIN_GAP_S = 5.0
"""Gaps longer than this are bridged: the 8 s of iTBS and the 26 s of clinical 10 Hz."""
WEIGHT_TOLERANCE = 0.02
PROBE_MINUTES = (0.0, 30.0)


def protocols(trains: int, itbs_pulses: int = 600):
    import coupling

    return {"itbs": coupling.itbs(itbs_pulses),
            "10hz": coupling.rtms(10.0, 40, trains, 26.0, name=f"10hz{trains}")}


def run_scenario(scenario: str, seeds: int, trains: int, settle_s: float, itbs_pulses: int = 600,
                 partial: str | None = None) -> dict:
    """Full and bridged sessions of every protocol and seed on the scenario's patch; what is
    done so far is written to `partial` (JSON) after every seed."""
    import coupling

    config = coupling.RunConfig().with_values({
        "head.model": "sphere", "coil.centre": "F3", "coil.handle": "", "patch.n_neurons": 150,
        "patch.scenario": scenario, "session.probe_minutes": list(PROBE_MINUTES)})
    t0 = time.perf_counter()
    run = coupling.prepare_run(config)
    out = dict(rmt_percent_mso=run.rmt_percent_mso, percent_mso=run.percent_mso,
               test_percent_mso=run.test_percent_mso, prepare_s=time.perf_counter() - t0, runs={})
    for name, protocol in protocols(trains, itbs_pulses).items():
        rows = []
        for seed in range(seeds):
            row = dict(seed=seed)
            for mode, gap in (("full", 0.0), ("bridged", MIN_GAP_S)):
                options = replace(config.session, seed=seed, bridge_min_gap_s=gap, bridge_settle_s=settle_s)
                t = time.perf_counter()
                res = coupling.run_protocol(run.patch, run.field, protocol, run.percent_mso, options=options,
                                            test_percent_mso=run.test_percent_mso, progress=False)
                wall = time.perf_counter() - t
                before = res.mep_before.mean
                last = str(PROBE_MINUTES[-1])
                simulated = sum(b - a for a, b in res.windows_ms)
                row[mode] = dict(
                    wall_s=wall, simulated_ms=simulated, n_windows=len(res.windows_ms),
                    mep_before=before,
                    mep_ratio={str(m): mep.mean / before if before > 0 else float("nan")
                               for m, mep in res.mep_after.items()},
                    weights_before={p: w["before"] for p, w in res.mean_weights.items()},
                    weights_final={p: w[last] for p, w in res.mean_weights.items()},
                    bdnf_final={p: b[last] for p, b in res.bdnf.items()})
                print(f"{scenario} {name} seed {seed} {mode}: {wall:.1f} s wall, MEP ratio "
                      + ", ".join(f"{k} min {v:.3f}" for k, v in row[mode]["mep_ratio"].items()), flush=True)
            rows.append(row)
            out["runs"][name] = dict(protocol=protocol.name, n_pulses=protocol.n_pulses,
                                     duration_s=protocol.duration_ms / 1e3, seeds=rows)
            if partial:
                Path(partial).write_text(json.dumps(out, indent=2) + "\n")
    return out


def compare(runs: dict) -> dict:
    """Weight differences, MEP-ratio differences against the full run's noise, wall times."""
    rows = runs["seeds"]
    full, bridged = [r["full"] for r in rows], [r["bridged"] for r in rows]
    projections = list(full[0]["weights_final"])
    rel = {p: [b["weights_final"][p] / f["weights_final"][p] - 1.0 for f, b in zip(full, bridged)]
           for p in projections}
    change = {p: [(b["weights_final"][p] - f["weights_final"][p])
                  / abs(f["weights_final"][p] - f["weights_before"][p])
                  if f["weights_final"][p] != f["weights_before"][p] else float("nan")
                  for f, b in zip(full, bridged)] for p in projections}
    probes = list(full[0]["mep_ratio"])
    diff = {m: [b["mep_ratio"][m] - f["mep_ratio"][m] for f, b in zip(full, bridged)] for m in probes}
    noise = {m: float(np.std([f["mep_ratio"][m] for f in full], ddof=1)) if len(full) > 1 else float("nan")
             for m in probes}
    worst_weight = max(abs(x) for v in rel.values() for x in v)
    worst_mep = {m: max(abs(x) for x in diff[m]) for m in probes}
    return dict(weight_relative_difference=rel, weight_difference_over_full_change=change,
                worst_weight_relative_difference=worst_weight,
                weights_hold=bool(worst_weight <= WEIGHT_TOLERANCE),
                mep_ratio_difference=diff, mep_ratio_noise_sd=noise, worst_mep_ratio_difference=worst_mep,
                mep_hold=bool(all(worst_mep[m] <= noise[m] for m in probes)),
                wall_full_s=[f["wall_s"] for f in full], wall_bridged_s=[b["wall_s"] for b in bridged],
                simulated_fraction=bridged[0]["simulated_ms"] / full[0]["simulated_ms"])


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3, help="noise seeds (SessionOptions.seed 0, 1, ...)")
    parser.add_argument("--trains", type=int, default=15, help="trains of the shortened clinical 10 Hz")
    parser.add_argument("--settle-s", type=float, default=1.0, help="SessionOptions.bridge_settle_s")
    parser.add_argument("--itbs-pulses", type=int, default=600, help="pulses of the iTBS session")
    parser.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=SCENARIOS)
    parser.add_argument("--jobs", type=int, default=1, help="scenarios run in parallel processes")
    parser.add_argument("--out", default=str(RESULTS / "bridging.json"))
    args = parser.parse_args()
    from machine import environment

    t0 = time.perf_counter()
    work = [(s, args.seeds, args.trains, args.settle_s, args.itbs_pulses, f"{args.out}.{s}.partial")
            for s in args.scenarios]
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            done = list(pool.map(run_scenario, *zip(*work)))
    else:
        done = [run_scenario(*w) for w in work]
    scenarios = dict(zip(args.scenarios, done))
    for s in scenarios.values():
        for runs in s["runs"].values():
            runs["comparison"] = compare(runs)
    out = dict(environment=environment(["numpy"], ("neurons", "coupling")), seeds=args.seeds,
               trains_10hz=args.trains, itbs_pulses=args.itbs_pulses, bridge_min_gap_s=MIN_GAP_S,
               bridge_settle_s=args.settle_s,
               probe_minutes=PROBE_MINUTES, weight_tolerance=WEIGHT_TOLERANCE, jobs=args.jobs,
               wall_s=time.perf_counter() - t0, scenarios=scenarios)
    path = Path(args.out)
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    for scenario in args.scenarios:
        Path(f"{args.out}.{scenario}.partial").unlink(missing_ok=True)
    print("\n| scenario | protocol | worst weight diff | weights within 2 % "
          "| MEP ratio diff (worst, per probe) | full-run MEP noise (SD) | MEP within noise "
          "| wall full / bridged, s (median) | simulated |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for scenario, s in scenarios.items():
        for name, runs in s["runs"].items():
            c = runs["comparison"]
            mep = ", ".join(f"{m}: {v:.3f}" for m, v in c["worst_mep_ratio_difference"].items())
            noise = ", ".join(f"{m}: {v:.3f}" for m, v in c["mep_ratio_noise_sd"].items())
            print(f"| {scenario} | {name} | {100 * c['worst_weight_relative_difference']:.2f} % | "
                  f"{'yes' if c['weights_hold'] else 'no'} | {mep} | {noise} | "
                  f"{'yes' if c['mep_hold'] else 'no'} | "
                  f"{np.median(c['wall_full_s']):.0f} / {np.median(c['wall_bridged_s']):.0f} | "
                  f"{100 * c['simulated_fraction']:.0f} % |")
    print("wrote", path, f"({out['wall_s'] / 60:.1f} min)")


if __name__ == "__main__":
    main()
