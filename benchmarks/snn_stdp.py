"""Spiking network with STDP: what plasticity costs, in tmsim and in Brian2 in the same run.

- COBA (`neurons.coba`, 4,000 neurons, 1 s, dt 0.1 ms) with static weights, and the same
  network with all-to-all pair STDP on the excitatory -> excitatory projection (hard bounds
  [0, 2 w_exc], A_plus = 1% and A_minus = 1.05% of w_max, tau 20 ms): `neurons.simulate`
  once with JIT compilation, then `--repeats` times without (the fastest kept); and the same
  pair rule as a BDNF-gated three-factor rule (`neurons.ThreeFactorSTDP`, basal BDNF at the
  half-saturation level, 10 ms conversion ticks).
- Beside them, Brian2 cpp_standalone (one thread) on the static and the pair-STDP network
  (benchmarks/peers/brian2_coba.py, --stdp; its environment as in snn_coba.py), best of
  `--repeats` main loops. The tmsim process is pinned to `--tmsim-cores` cores (1: one
  thread, like Brian2).
- Song, Miller & Abbott (2000) (`neurons.song_stdp`, 1,000 Poisson inputs at 15 Hz onto one
  LIF neuron, 100 s = 1e6 steps): one run with compilation; fractions of weights below
  0.1 g_max and above 0.9 g_max at the end.

    python benchmarks/snn_stdp.py [--song-s 100] [--no-brian2]

Writes benchmarks/results/snn_stdp_<device>.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
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


def time_runs(net, duration_ms: float, repeats: int) -> dict:
    """The first run's wall time (with compilation) and the fastest of `repeats` more."""
    times = []
    for _ in range(1 + repeats):
        t0 = time.perf_counter()
        res = neurons.simulate(net, duration_ms, 0.1, seed=0, progress=False)
        jax.block_until_ready(res.final_state.v)
        times.append(time.perf_counter() - t0)
    out = {"with_compilation_s": times[0], "without_compilation_s": min(times[1:])}
    out["spikes"] = int(sum(len(s) for s in res.spikes.values()))
    out["rate_exc_Hz"] = res.mean_rate_Hz("exc")
    for name, (_, mean) in res.weight_mean.items():
        out[f"mean_weight_{name}_start_end_nS"] = [float(mean[0]), float(mean[-1])]
    return out


def brian2_peer(repeats: int) -> dict:
    """Brian2 cpp_standalone on the static and the pair-STDP COBA-4k, best of `repeats`."""
    from snn_coba import best_brian2_run, brian2_python

    try:
        python = brian2_python()
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"brian2: unavailable ({type(exc).__name__}: {exc})")
        return {"brian2_unavailable": f"{type(exc).__name__}: {exc}"}
    out = {}
    for label, stdp in (("static", False), ("pair_stdp_exc_exc", True)):
        best = best_brian2_run(python, 4000, 1000.0, 0.1, 0, "cpp_standalone", 1, repeats, stdp)
        out[f"brian2_coba4k_{label}"] = best
        print(f"brian2_coba4k_{label}", best, flush=True)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--song-s", type=float, default=100.0, help="Song 2000 run length (s); 0 to skip")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs without compilation")
    parser.add_argument("--tmsim-cores", type=int, default=1, help="cores for tmsim (0: all)")
    parser.add_argument("--no-brian2", action="store_true")
    args = parser.parse_args()
    if args.tmsim_cores > 0:              # before JAX starts its CPU client
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:args.tmsim_cores])
    env = environment(("jaxlib", "numpy"), ("neurons",))
    device = device_label(env)
    results = {"environment": env, "settings": {"repeats": args.repeats, "tmsim_cores": args.tmsim_cores}}
    for label, net in (("coba4k_static", neurons.coba(4000)),
                       ("coba4k_pair_stdp_exc_exc", plastic_coba(4000)),
                       ("coba4k_bdnf_stdp_exc_exc", plastic_coba(4000, three_factor=True))):
        results[label] = time_runs(net, 1000.0, args.repeats)
        print(label, results[label], flush=True)
    if not args.no_brian2:
        results.update(brian2_peer(args.repeats))
        for label in ("static", "pair_stdp_exc_exc"):
            peer, own = results.get(f"brian2_coba4k_{label}", {}), results[f"coba4k_{label}"]
            if "main_loop_s" in peer:
                own["tmsim_over_brian2"] = own["without_compilation_s"] / peer["main_loop_s"]
                print(f"{label}: tmsim {own['without_compilation_s']:.3f} s, Brian2 "
                      f"{peer['main_loop_s']:.3f} s main loop, ratio {own['tmsim_over_brian2']:.2f}",
                      flush=True)
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
