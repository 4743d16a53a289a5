"""What the MEP proxy at the test intensity is made of, and how much the plastic synapses move it.

An after-effect can only show in the MEP proxy (coupling.probe_mep: L5 pyramidal spikes in the
10 ms after a test pulse, minus background) through the synapses that plasticity changes. A
directly activated L5 cell (the D wave) fires whatever its synapses; only the trans-synaptic
part (the I waves: afferent volleys onto L5, and recurrence) depends on them. In people, posterior-
anterior pulses near motor threshold evoke I waves, the D wave joining at higher intensities
(Di Lazzaro et al. 2012, J Physiol 590:4713; Kaneko et al. 1996, J Neurol Sci 139:131), and TBS
changes the later I waves (Di Lazzaro et al. 2008, J Physiol 586:3871). This measures, on the
default `tmsim run` patch (healthy), at the targets file's test intensity (150 % RMT):

- the MEP and the L5 cells a test pulse activates directly;
- the MEP without direct L5 activation (L5 thresholds set out of reach): its trans-synaptic part;
- the sensitivity of the MEP to the plastic weights, d ln MEP / d ln w, from the MEP with every
  afferent weight (and, separately, every E->E weight) of the settled state scaled by
  --weight-factor (frozen weights, same test pulses and noise);
- the afferents activated at 80 % RMT (the TBS dose), the RMT and the median |E| at L5 at RMT,

for each --w-aff (the afferent synapses' weight, nS; PatchModel.w_aff_nS, whose plasticity
scales with it) and each --afferent-factor (the afferents' activation thresholds times that
factor, drawn with the same seed, so every afferent keeps its rank), the RMT searched again for
each. The defaults (w_aff the PatchModel's, factor 1) are the model as it stands; other values
are what-ifs that change nothing in the package.

The network seeds default to 900-902, outside both seed sets of validation/targets.toml: this is
a diagnostic of the patch before calibration, not a measurement of the rows it judges.

    python validation/mep_sources.py [--seeds 900 901 902] [--w-aff 0.1 0.5] [--afferent-factors 1 0.75]

Writes validation/results/mep_sources.json (with the commit and environment).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

import coupling
from coupling import PatchModel
from coupling.scenario import scenario_model
from coupling.session import motor_threshold, settle
from tmsim_io import write_json

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "benchmarks"))
from machine import environment  # noqa: E402

OUTPUT, AFFERENTS = "L5E", "AFF"
TEST_PERCENT_RMT, DOSE_PERCENT_RMT = 150.0, 80.0


def patch_with(prepared, seed: int, w_aff_nS: float, factor: float):
    """The healthy patch of network seed `seed` with afferent weight w_aff_nS and its afferents'
    thresholds times `factor`, and the field at its neurons."""
    model = replace(scenario_model("healthy"), w_aff_nS=w_aff_nS)
    patch = coupling.cortical_patch(prepared.mesh, prepared.patch.target_mm, model=model, seed=seed,
                                    radius_mm=prepared.patch.radius_mm,
                                    n_neurons=prepared.config.patch.n_neurons)
    field = coupling.neuron_field(prepared.mesh, prepared.fem, patch, prepared.coil.didt_max)
    thresholds = dict(patch.thresholds_V_per_m)
    thresholds[AFFERENTS] = thresholds[AFFERENTS] * factor
    return replace(patch, thresholds_V_per_m=thresholds), field


def without_direct(patch, population: str):
    """`patch` with `population` out of reach of the field (no direct activation)."""
    thresholds = dict(patch.thresholds_V_per_m)
    thresholds[population] = np.full_like(thresholds[population], np.inf)
    return replace(patch, thresholds_V_per_m=thresholds)


def scaled_weights(patch, state, factor: float, afferent: bool):
    """`state` with the weights of the plastic afferent (afferent=True) or E->E projections times
    `factor`."""
    weights = list(state.weights)
    for i, proj in enumerate(patch.network.projections):
        if proj.plasticity is not None and (proj.pre == AFFERENTS) == afferent:
            weights[i] = weights[i] * factor
    return replace(state, weights=tuple(weights))


def activated(patch, field, percent_mso: float) -> dict:
    """Neurons per population that one pulse at percent_mso activates directly."""
    events = coupling.stimulus_events(patch, field, np.array([1.0]), np.ones(1), percent_mso)
    first = events.wave == 0
    return {name: int(np.sum(events.population_index[first] == i))
            for i, name in enumerate(events.populations)}


def measure(patch, field, trials: int, weight_factor: float, rmt_trials: int) -> dict:
    state = settle(patch, seed=0)
    rmt = motor_threshold(patch, field, n_trials=rmt_trials, seed=0)
    test = min(100.0, rmt * TEST_PERCENT_RMT / 100.0)
    mep = lambda p, s: coupling.probe_mep(p, field, s, test, n_trials=trials, seed=1).mean
    total = mep(patch, state)
    synaptic = mep(without_direct(patch, OUTPUT), state)
    aff = mep(patch, scaled_weights(patch, state, weight_factor, afferent=True))
    ee = mep(patch, scaled_weights(patch, state, weight_factor, afferent=False))
    sensitivity = lambda m: math.log(m / total) / math.log(weight_factor) if m > 0 and total > 0 else None
    n_out = patch.network.population(OUTPUT).n
    at_test, at_dose = activated(patch, field, test), activated(patch, field, rmt * DOSE_PERCENT_RMT / 100.0)
    return dict(rmt_percent_mso=rmt, test_percent_mso=test,
                median_E_L5E_at_rmt_V_per_m=float(np.median(field.magnitude(OUTPUT)) * rmt / 100.0),
                afferents_at_80_percent_rmt=at_dose[AFFERENTS],
                activated_at_test=at_test, mep=total, mep_without_direct_L5=synaptic,
                direct_L5_per_neuron=at_test[OUTPUT] / n_out,
                trans_synaptic_share=synaptic / total if total > 0 else None,
                mep_afferent_weights_scaled=aff, mep_ee_weights_scaled=ee,
                sensitivity_afferent=sensitivity(aff), sensitivity_ee=sensitivity(ee))


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[900, 901, 902], help="network seeds (>= 0)")
    parser.add_argument("--w-aff", type=float, nargs="+", default=[PatchModel().w_aff_nS],
                        help="afferent synapse weights, nS (> 0; default: the PatchModel's)")
    parser.add_argument("--afferent-factors", type=float, nargs="+", default=[1.0],
                        help="factors on the afferents' thresholds (> 0; 1: the model as it stands)")
    parser.add_argument("--trials", type=int, default=40, help="test pulses per MEP (>= 2)")
    parser.add_argument("--rmt-trials", type=int, default=20, help="trials per step of the RMT search (>= 2)")
    parser.add_argument("--weight-factor", type=float, default=1.2, help="factor on the weights (> 0, != 1)")
    parser.add_argument("--out", type=Path, default=HERE / "results", help="results folder")
    args = parser.parse_args()
    positive = lambda v: 0 < v < math.inf
    if any(s < 0 for s in args.seeds) or not all(map(positive, args.afferent_factors + args.w_aff)):
        parser.error("--seeds must be >= 0, --w-aff and --afferent-factors finite and > 0")
    if args.trials < 2 or args.rmt_trials < 2 or not positive(args.weight_factor) or args.weight_factor == 1:
        parser.error("--trials and --rmt-trials must be >= 2, --weight-factor finite, > 0 and != 1")
    start, results = time.perf_counter(), []
    for seed in args.seeds:
        config = coupling.RunConfig().with_values({"patch.seed": seed, "patch.scenario": "healthy",
                                                   "protocol.intensity": "30% MSO",
                                                   "protocol.test_intensity": "50% MSO"})
        prepared = coupling.prepare_run(config)
        for w_aff, factor in itertools.product(args.w_aff, args.afferent_factors):
            patch, field = patch_with(prepared, seed, w_aff, factor)
            row = dict(seed=seed, w_aff_nS=w_aff, afferent_factor=factor,
                       **measure(patch, field, args.trials, args.weight_factor, args.rmt_trials))
            results.append(row)
            print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}),
                  flush=True)
    record = dict(settings={k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                  test_percent_rmt=TEST_PERCENT_RMT, results=results, wall_s=time.perf_counter() - start,
                  environment=environment(["numpy"], ("coupling", "neurons", "efield")))
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "mep_sources.json", record)


if __name__ == "__main__":
    main()
