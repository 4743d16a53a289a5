"""Real-time factor of the Potjans & Diesmann (2014) cortical microcircuit, static and plastic.

`neurons.potjans_diesmann(scale)` (77,169 neurons and 3x10^8 synapses at scale 1; in-degrees
scaled with the sizes and DC-compensated below it), dt 0.1 ms, 1 s of biological time by
default, simulated twice: the first call includes JIT compilation, the second is the
main loop. Real-time factor = wall time / biological time. The plastic variant puts
all-to-all pair STDP (soft bounds, tau 20 ms, A_plus 1 % and A_minus 1.05 % of twice the
mean excitatory weight) on every excitatory-to-excitatory projection. Aims of the issue:
at scale 1 on one H100/H200, real-time factor below 0.25 (GeNN reports 0.27 on an RTX 4090,
NEST GPU 0.386; Golosio et al. 2021, Front Comput Neurosci 15:627620).

    python benchmarks/snn_microcircuit.py [--scales 0.02 0.05] [--duration-ms 1000]

Writes benchmarks/results/snn_microcircuit_<device>.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax

import neurons
from machine import device_label, environment
from neurons.microcircuit import POPULATIONS, mean_weights_pA

HERE = Path(__file__).resolve().parent


def stdp_rule(scale: float) -> neurons.PairSTDP:
    w_max = 2.0 * mean_weights_pA()[0, 0] / scale**0.5
    return neurons.PairSTDP(A_plus=0.01 * w_max, A_minus=0.0105 * w_max, w_min=0.0, w_max=w_max,
                            bounds="soft")


def measure(scale: float, duration_ms: float, plastic: bool) -> dict:
    t0 = time.perf_counter()
    net = neurons.potjans_diesmann(scale=scale, seed=0, plasticity=stdp_rule(scale) if plastic else None)
    built = time.perf_counter() - t0
    out = {"build_s": built, "neurons": sum(p.n for p in net.populations),
           "synapses": sum(int(p.pre_ids.size) for p in net.projections)}
    for label in ("with_compilation_s", "without_compilation_s"):
        t0 = time.perf_counter()
        res = neurons.simulate(net, duration_ms, 0.1, seed=0, progress=False)
        jax.block_until_ready(res.final_state.v)
        out[label] = time.perf_counter() - t0
    out["real_time_factor"] = out["without_compilation_s"] / (duration_ms * 1e-3)
    out["rates_Hz"] = {p: res.mean_rate_Hz(p) for p in POPULATIONS}
    out["spikes"] = int(sum(len(s) for s in res.spikes.values()))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", type=float, nargs="+", default=[0.02, 0.05])
    parser.add_argument("--duration-ms", type=float, default=1000.0)
    args = parser.parse_args()
    env = environment(("jaxlib", "numpy"), ("neurons",))
    results = {"environment": env, "duration_ms": args.duration_ms, "runs": []}
    for scale in args.scales:
        for plastic in (False, True):
            row = dict(scale=scale, plastic=plastic, **measure(scale, args.duration_ms, plastic))
            results["runs"].append(row)
            print(f"scale {scale} {'STDP' if plastic else 'static'}: {row['neurons']} neurons, "
                  f"{row['synapses']} synapses, RTF {row['real_time_factor']:.2f} "
                  f"(first call {row['with_compilation_s']:.1f} s)", flush=True)
    out = HERE / "results" / f"snn_microcircuit_{device_label(env)}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print("wrote", out)


if __name__ == "__main__":
    main()
