"""What plasticity costs on the default cortical patch: static, pair STDP, the calcium rule,
and the calcium rule inside the BDNF three-factor rule (the patch's default), one core.

The patch (`coupling.cortical_patch`, the `coupling.PatchModel` defaults: L2/3 and L5
excitatory and inhibitory cells, afferents at 2 Hz, Poisson background) under the top of the
four-shell sphere head, at each of `--sizes` neurons, run for `--spontaneous-s` of spontaneous
activity and then one iTBS train block (`--block-s`, default 10 s: a 2 s train of 10 bursts of
3 pulses at 50 Hz every 200 ms, then 8 s without): each pulse forces a spike in a fixed 30 %
of the afferents and 2 % of the L5 excitatory cells (a stand-in for the activation by the
E-field, which this benchmark leaves out). dt 0.1 ms. For each rule: one run with JIT
compilation, then `--repeats` more without (the fastest kept); real-time factor = wall /
simulated time; its CPU-time counterpart (the process's CPU time over simulated time, which
time-sharing with other jobs on a loaded machine does not inflate) beside it. The plastic
rules are the patch's own, on the excitatory-to-excitatory and
afferent synapses (`PatchModel.afferent_rule`); pair STDP: soft-bounded at 3 nS, A_plus 1 %
and A_minus 1.05 % of w_max, tau 20 ms.

Beside tmsim, in the same run and on the same core (unless --no-brian2): Brian2 2.9
cpp_standalone, one thread, with the same network (the patch of the calcium rule exported
to an .npz: every neuron's parameters, every synapse's weight and delay, the background, the
generators, the forced spikes) and the same calcium rule written as Brian2 users write it
(benchmarks/peers/brian2_patch.py; its differences are listed there), in its own environment
benchmarks/.venv-brian2 (snn_coba.py makes it): with tmsim's method (exponential Euler) and
with Brian2's default state updater, as its users run it. Its real-time factor is the main
loop's time (without code generation, compilation and set-up) over the simulated time.

    python benchmarks/snn_plastic.py [--sizes 1000 10000] [--repeats 2] [--cores 1] [--no-brian2]
                                     [--rules static calcium_bdnf] [--output FILE]

Writes benchmarks/results/snn_plastic_<device>.json (or --output).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
TOP = np.array([0.0, 0.0, 95.0])
PEER_SCRIPT = HERE / "peers" / "brian2_patch.py"


def rules() -> dict:
    """Rule name -> the PatchModel with that rule on its plastic synapses (None: static)."""
    import coupling
    import neurons

    default = coupling.PatchModel()
    calcium = default.plasticity.stdp
    pair = neurons.PairSTDP(A_plus=0.01 * calcium.w_max, A_minus=0.0105 * calcium.w_max, tau_plus_ms=20.0,
                            tau_minus_ms=20.0, w_min=0.0, w_max=calcium.w_max, bounds="soft")
    return {"static": replace(default, plasticity=None), "pair_stdp": replace(default, plasticity=pair),
            "calcium": replace(default, plasticity=calcium), "calcium_bdnf": default}


def itbs_block(patch, start_ms: float, seed: int = 0) -> list:
    """Forced spikes (time_ms, population, id) of one iTBS train from start_ms."""
    rng = np.random.default_rng(seed)
    sizes = {pop: patch.network.population(pop).n for pop in ("AFF", "L5E")}
    chosen = {pop: rng.choice(sizes[pop], max(1, round(share * sizes[pop])), replace=False)
              for pop, share in (("AFF", 0.30), ("L5E", 0.02))}
    pulses = [start_ms + 200.0 * burst + 20.0 * k for burst in range(10) for k in range(3)]
    return [(t, pop, int(i)) for t in pulses for pop, ids in chosen.items() for i in ids]


def time_rule(patch, duration_ms: float, forced: list, repeats: int) -> dict:
    """Wall time of the first run (with compilation) and the fastest of `repeats` more."""
    import jax
    import neurons

    times, cpu = [], []
    for _ in range(1 + repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        res = neurons.simulate(patch.network, duration_ms, 0.1, seed=0, forced_spikes=forced, progress=False)
        jax.block_until_ready(res.final_state.v)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    best = min(times[1:]) if repeats else times[0]
    out = {"with_compilation_s": times[0], "without_compilation_s": best,
           "real_time_factor": best / (duration_ms * 1e-3),
           "cpu_real_time_factor": (min(cpu[1:]) if repeats else cpu[0]) / (duration_ms * 1e-3),
           "rates_Hz": {p.name: res.mean_rate_Hz(p.name) for p in patch.network.populations}}
    for name, (_, mean) in res.weight_mean.items():
        out.setdefault("mean_weight_start_end_nS", {})[name] = [float(mean[0]), float(mean[-1])]
    return out


def export_network(patch, forced: list, duration_ms: float, dt_ms: float, path: Path):
    """Write the patch's network, its forced spikes and its calcium rule to `path` (.npz) for
    peers/brian2_patch.py."""
    import neurons
    from neurons.connectivity import RECEPTORS

    net = patch.network
    offsets = net.offsets
    params = [p.params.arrays(p.n, p.name) for p in net.populations]
    stop = lambda i: offsets[i.population] + net.population(i.population).n   # noqa: E731
    data = {"n": net.n_neurons, "duration_ms": duration_ms, "dt_ms": dt_ms,
            "population_names": np.array([p.name for p in net.populations]),
            "population_offsets": np.array([offsets[p.name] for p in net.populations]),
            "population_sizes": np.array([p.n for p in net.populations]),
            "neuron_rate_Hz": np.concatenate([np.full(p.n, p.rate_Hz or 0.0) for p in net.populations]),
            "neuron_generator": np.concatenate([np.full(p.n, p.rate_Hz is not None)
                                                for p in net.populations]),
            "neuron_v_init_mV": np.concatenate([np.broadcast_to(np.asarray(p.v_init_mV, float), (p.n,))
                                                for p in net.populations])}
    for key, unit in (("C", "C_pF"), ("g_leak", "g_leak_nS"), ("E_leak", "E_leak_mV"),
                      ("v_threshold", "v_threshold_mV"), ("v_reset", "v_reset_mV"), ("t_ref", "t_ref_ms"),
                      ("tau_exc", "tau_exc_ms"), ("tau_inh", "tau_inh_ms"), ("E_exc", "E_exc_mV"),
                      ("E_inh", "E_inh_mV"), ("I_bias", "I_bias_pA")):
        data[f"neuron_{key}"] = np.concatenate([a[unit] for a in params])
    data["poisson"] = np.array([[offsets[i.population], stop(i),
                                 i.n_sources, i.rate_Hz, i.weight, RECEPTORS.index(i.receptor)]
                                for i in net.poisson], float).reshape(-1, 6)
    rules, ranges = [], []
    for k, proj in enumerate(net.projections):
        rule = proj.plasticity
        if rule is not None and not isinstance(rule, neurons.CalciumRule):
            raise ValueError(f"export_network: projection {proj.name!r} has {type(rule).__name__}; the peer "
                             "runs the calcium rule only")
        ranges.append([offsets[proj.pre], proj.n_pre, offsets[proj.post], proj.n_post,
                       RECEPTORS.index(proj.receptor), rule is not None])
        data.update({f"pre_{k}": proj.pre_ids, f"post_{k}": proj.post_ids, f"weight_{k}": proj.weight,
                     f"delay_ms_{k}": proj.delay_ms})
        if rule is not None:
            rules.append(rule)
            data.update({f"rule_{key}_{k}": getattr(rule, key)
                         for key in ("gamma_p_per_s", "gamma_d_per_s", "w_min", "w_max")})
    shared = ("theta_p", "theta_d", "C_pre", "C_post", "tau_calcium_ms", "C_pre_slow", "tau_slow_ms",
              "sliding_tau_ms", "sliding_rate_Hz", "update_ms")
    if any(getattr(r, key) != getattr(rules[0], key) for r in rules for key in shared) or \
            any(r.bounds != "soft" for r in rules):
        raise ValueError("export_network: the peer needs one calcium rule (but its rates and bounds) with "
                         "soft bounds on every plastic projection")
    data.update({key: getattr(rules[0], key) for key in shared} if rules else {key: 1.0 for key in shared})
    data["rule"] = "calcium" if rules else "static"
    data["projection_names"] = np.array([p.name for p in net.projections])
    data["projection_ranges"] = np.array(ranges, np.int64)
    data["forced_times_ms"] = np.array([t for t, _, _ in forced], float)
    data["forced_ids"] = np.array([offsets[pop] + i for _, pop, i in forced], np.int64)
    np.savez(path, **data)


def run_brian2(patch, forced: list, duration_ms: float, repeats: int, method: str) -> dict:
    """The fastest of `repeats` runs of peers/brian2_patch.py on the exported patch with Brian2
    state updater `method` (each run generates, compiles and runs its own binary);
    main_loops_s holds every run's."""
    from snn_coba import brian2_python

    python = brian2_python()
    with tempfile.TemporaryDirectory(prefix="snn_plastic_") as tmp:
        path = Path(tmp) / "patch.npz"
        export_network(patch, forced, duration_ms, 0.1, path)
        runs = []
        for _ in range(max(1, repeats)):
            proc = subprocess.run([str(python), str(PEER_SCRIPT), "--network", str(path), "--method", method],
                                  capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
                return {"unavailable": f"exit {proc.returncode}: {' | '.join(tail)}"}
            runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    best = min(runs, key=lambda r: r["main_loop_s"])
    best["main_loops_s"] = [r["main_loop_s"] for r in runs]
    best["real_time_factor"] = best["main_loop_s"] / (duration_ms * 1e-3)
    return best


def compare(tmsim: dict, brian2: dict, duration_ms: float) -> dict:
    """tmsim's time over Brian2's: against its main loop and against its whole binary (set-up,
    synapse creation and main loop; tmsim's time is its whole `neurons.simulate` call), and
    whether the two ran the same activity (every population's rate within RATE_TOLERANCE)."""
    rates = {p: (tmsim["rates_Hz"][p], brian2["rates_Hz"][p]) for p in tmsim["rates_Hz"]}
    same = all(abs(a - b) <= RATE_TOLERANCE * max(a, b) for a, b in rates.values())
    return {"tmsim_over_brian2": tmsim["real_time_factor"] / brian2["real_time_factor"],
            "tmsim_over_brian2_binary": tmsim["without_compilation_s"] / brian2["binary_s"],
            "same_activity": same, "rates_tmsim_brian2_Hz": rates}


RATE_TOLERANCE = 0.1
"""Largest relative difference of a population's rate for the two simulators' runs to count
as the same activity (their random streams differ)."""


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--spontaneous-s", type=float, default=10.0)
    parser.add_argument("--block-s", type=float, default=10.0, help="the iTBS train block, at least 2 s")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs without compilation")
    parser.add_argument("--cores", type=int, default=1, help="cores for the process (0: all)")
    parser.add_argument("--rules", nargs="+", default=["static", "pair_stdp", "calcium", "calcium_bdnf"])
    parser.add_argument("--no-brian2", action="store_true", help="leave out the Brian2 peer")
    parser.add_argument("--output", type=Path, default=None,
                        help="the JSON to write (default: results/snn_plastic_<device>.json)")
    args = parser.parse_args()
    if not 2.0 <= args.block_s < float("inf"):
        parser.error(f"--block-s must be at least 2 (the train lasts 2 s) and finite, got {args.block_s}")
    if not 0.0 <= args.spontaneous_s < float("inf"):
        parser.error(f"--spontaneous-s must be >= 0 and finite, got {args.spontaneous_s}")
    if min(args.sizes) < 10 or args.repeats < 0 or args.cores < 0:
        parser.error(f"--sizes must be >= 10 (got {args.sizes}), --repeats and --cores >= 0 "
                     f"(got {args.repeats}, {args.cores})")
    if args.cores > 0:                    # before JAX starts its CPU client
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:args.cores])
    import efield
    import coupling
    from machine import device_label, environment

    env = environment(("jaxlib", "numpy"), ("neurons", "coupling"))
    models = rules()
    unknown = sorted(set(args.rules) - set(models))
    if unknown:
        parser.error(f"--rules: unknown {unknown}; known: {sorted(models)}")
    head = efield.sphere_head(radii_mm=(80.0, 85.0, 90.0, 95.0), max_edge_mm=6.0)
    duration_ms = 1e3 * (args.spontaneous_s + args.block_s)
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    results = {"environment": env, "settings": settings, "sizes": {}}
    for n in args.sizes:
        per_size = results["sizes"][str(n)] = {}
        for name in args.rules:
            patch = coupling.cortical_patch(head, TOP, radius_mm=8.0, n_neurons=n, model=models[name], seed=0)
            forced = itbs_block(patch, 1e3 * args.spontaneous_s)
            per_size[name] = time_rule(patch, duration_ms, forced, args.repeats)
            per_size[name]["synapses"] = int(sum(p.n_synapses for p in patch.network.projections))
            shown = {k: v for k, v in per_size[name].items() if k != "mean_weight_start_end_nS"}
            print(n, name, shown, flush=True)
            for method in (() if name != "calcium" or args.no_brian2 else ("exponential_euler", "default")):
                key = f"brian2_calcium_{method}"
                peer = per_size[key] = run_brian2(patch, forced, duration_ms, args.repeats, method)
                if "real_time_factor" in peer:
                    peer.update(compare(per_size[name], peer, duration_ms))
                print(n, key, {k: v for k, v in peer.items() if k != "mean_weight_end_nS"}, flush=True)
        if "static" in per_size:
            for name in args.rules:
                per_size[name]["over_static"] = (per_size[name]["without_compilation_s"]
                                                 / per_size["static"]["without_compilation_s"])
                per_size[name]["cpu_over_static"] = (per_size[name]["cpu_real_time_factor"]
                                                     / per_size["static"]["cpu_real_time_factor"])
    out = args.output or HERE / "results" / f"snn_plastic_{device_label(env)}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print("wrote", out)


if __name__ == "__main__":
    main()
