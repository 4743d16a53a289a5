"""Spiking network with STDP: what plasticity costs in tmsim (no peer tool).

- COBA (`neurons.coba`, 4,000 neurons, 1 s, dt 0.1 ms) with static weights, and the same
  network with all-to-all pair STDP on the excitatory -> excitatory projection (hard bounds
  [0, 2 w_exc], A_plus = 1% and A_minus = 1.05% of w_max, tau 20 ms): `neurons.simulate`
  twice each, the first call with JIT compilation, the second without; and the same pair
  rule as a BDNF-gated three-factor rule (`neurons.ThreeFactorSTDP`, basal BDNF at the
  half-saturation level, 10 ms conversion ticks).
- Song, Miller & Abbott (2000) (`neurons.song_stdp`, 1,000 Poisson inputs at 15 Hz onto one
  LIF neuron, 100 s = 1e6 steps): one run with compilation; fractions of weights below
  0.1 g_max and above 0.9 g_max at the end.

    python benchmarks/snn_stdp.py [--song-s 100]

Writes benchmarks/results/snn_stdp_<device>.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import jax
import numpy as np

import neurons
from machine import device_label, environment

HERE = Path(__file__).resolve().parent


def plastic_coba(n: int = 4000, seed: int = 0, three_factor: bool = False) -> neurons.Network:
    net = neurons.coba(n_neurons=n, seed=seed)
    w_max = 12.0
    rule = neurons.PairSTDP(A_plus=0.01 * w_max, A_minus=0.0105 * w_max, tau_plus_ms=20.0, tau_minus_ms=20.0,
                            w_min=0.0, w_max=w_max)
    if three_factor:
        rule = neurons.ThreeFactorSTDP(rule, neurons.BDNF(basal_per_s=1.0 / 1800.0))
    projections = tuple(dataclasses.replace(p, plasticity=rule) if (p.pre, p.post) == ("exc", "exc") else p
                        for p in net.projections)
    return dataclasses.replace(net, projections=projections)


def time_twice(net, duration_ms: float) -> dict:
    out = {}
    for label in ("with_compilation_s", "without_compilation_s"):
        t0 = time.perf_counter()
        res = neurons.simulate(net, duration_ms, 0.1, seed=0, progress=False)
        jax.block_until_ready(res.final_state.v)
        out[label] = time.perf_counter() - t0
    out["spikes"] = int(sum(len(s) for s in res.spikes.values()))
    out["rate_exc_Hz"] = res.mean_rate_Hz("exc")
    for name, (_, mean) in res.weight_mean.items():
        out[f"mean_weight_{name}_start_end_nS"] = [float(mean[0]), float(mean[-1])]
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--song-s", type=float, default=100.0, help="Song 2000 run length (s); 0 to skip")
    args = parser.parse_args()
    env = environment(("jaxlib", "numpy"), ("neurons",))
    device = device_label(env)
    results = {"environment": env}
    for label, net in (("coba4k_static", neurons.coba(4000)),
                       ("coba4k_pair_stdp_exc_exc", plastic_coba(4000)),
                       ("coba4k_bdnf_stdp_exc_exc", plastic_coba(4000, three_factor=True))):
        results[label] = time_twice(net, 1000.0)
        print(label, results[label], flush=True)
    if args.song_s > 0:
        t0 = time.perf_counter()
        res = neurons.simulate(neurons.song_stdp(), args.song_s * 1e3, 0.1, seed=0, progress=False,
                               chunk_steps=10_000)
        wall = time.perf_counter() - t0
        w = res.weights("input_to_neuron") / 0.1
        results["song2000"] = {"biological_s": args.song_s, "wall_s_with_compilation": wall,
                               "fraction_below_0.1_gmax": float(np.mean(w < 0.1)),
                               "fraction_above_0.9_gmax": float(np.mean(w > 0.9)),
                               "post_rate_Hz": res.mean_rate_Hz("neuron")}
        print("song2000", results["song2000"], flush=True)
    out = HERE / "results" / f"snn_stdp_{device}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print("wrote", out)


if __name__ == "__main__":
    main()
