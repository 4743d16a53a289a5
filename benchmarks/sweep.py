"""Throughput of a sweep on Dask: 16 tiny `tmsim session` runs with 1 and 2 worker processes
(a LocalCluster of single-threaded workers, as `tmsim sweep` starts) against the same runs in a
plain loop in one process (coupling.sweep.execute_run, which writes the same run folders).

The runs: the sphere head at 12 mm, a patch of --n-neurons, a single pulse at 50 or 60 % MSO,
the coil 3 or 5 mm above the scalp, noise seeds 0-3, --after-s of spiking after the pulse, one
MEP test pulse. One network seed, so each process compiles the network once (JAX's persistent
compilation cache is off here, so each process compiles as a fresh machine would).

Reported: the wall time of each (the cluster's start-up counted apart), runs per minute, the
speed-up of 2 workers over the loop, the overhead per run of the 1-worker sweep over the loop
((sweep - loop) / runs), and the same in steady state (every run after each process's first,
from the runs' own wall times). The issue's aims: 2 workers at least 1.8x the loop, overhead
under 1 s a run.

    python benchmarks/sweep.py [--n-neurons 40] [--after-s 0.2]

Writes benchmarks/results/sweep_<device>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from coupling import sweep as sw
from machine import device_label, environment

HERE = Path(__file__).resolve().parent


def make_sweep(n_neurons: int, after_s: float) -> sw.Sweep:
    base = {"head": {"max_edge_mm": 12.0}, "patch": {"n_neurons": n_neurons},
            "protocol": {"name": "single", "test_intensity": "60% MSO"},
            "session": {"after_s": after_s, "n_test": 1, "probe_minutes": [0.0]}}
    axes = {"protocol.intensity": ["50% MSO", "60% MSO"], "coil.distance_mm": [3.0, 5.0],
            "noise_seeds": [0, 1, 2, 3]}
    return sw.sweep_from_dict({"base": base, "axes": axes}, "benchmark")


def loop(sweep: sw.Sweep, out: Path) -> tuple[float, list[dict]]:
    """The runs one after another in this process, as a worker runs each."""
    start = time.perf_counter()
    rows = []
    columns = sweep.keys + [k for k in sw.SEED_KEYS if k not in sweep.keys]
    for index, (values, config) in enumerate(zip(sweep.runs(), sweep.configs())):
        values = {k: values.get(k, sweep.base_value(k)) for k in columns}
        rows.append(sw.execute_run(dict(run=index, run_id=sw.run_id(config, sweep.kind), values=values,
                                        config=config, kind=sweep.kind, run_fn=None, out=str(out))))
    return time.perf_counter() - start, rows


def on_cluster(sweep: sw.Sweep, out: Path, workers: int) -> dict:
    from distributed import Client, LocalCluster

    start = time.perf_counter()
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                           silence_logs=50)
    client = Client(cluster)
    client.wait_for_workers(workers)
    started = time.perf_counter()
    table = sw.run_sweep(sweep, out, client=client, progress=False, compile_cache=False, log=None)
    done = time.perf_counter()
    client.close()
    cluster.close()
    assert (table["status"] == "done").all(), table[["run", "error"]]
    return dict(startup_s=started - start, wall_s=done - started, run_wall_s=table["wall_s"].tolist(),
                table=table)


def steady(wall_s: list[float], processes: int) -> float:
    """Mean wall time of a run after each process's first (the slowest `processes` runs left out:
    those that compiled)."""
    rest = sorted(wall_s)[:len(wall_s) - processes]
    return sum(rest) / len(rest)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-neurons", type=int, default=40)
    parser.add_argument("--after-s", type=float, default=0.2)
    args = parser.parse_args()
    env = environment(["dask", "distributed", "pandas", "pyarrow"],
                      ["coupling/sweep.py", "benchmarks/sweep.py"])
    sweep = make_sweep(args.n_neurons, args.after_s)
    n = len(sweep.runs())
    sweep.check()
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        two = on_cluster(sweep, folder / "two", 2)
        one = on_cluster(sweep, folder / "one", 1)
        loop_s, loop_rows = loop(sweep, folder / "loop")
    same = all(abs(a - b) < 1e-12 for a, b in zip(one["table"]["mep_before"], two["table"]["mep_before"]))
    loop_walls = [r["wall_s"] for r in loop_rows]
    results = dict(
        runs=n, n_neurons=args.n_neurons, after_s=args.after_s,
        loop_wall_s=loop_s, loop_runs_per_min=60 * n / loop_s, loop_steady_run_s=steady(loop_walls, 1),
        one_worker=dict(startup_s=one["startup_s"], wall_s=one["wall_s"],
                        runs_per_min=60 * n / one["wall_s"], steady_run_s=steady(one["run_wall_s"], 1)),
        two_workers=dict(startup_s=two["startup_s"], wall_s=two["wall_s"],
                         runs_per_min=60 * n / two["wall_s"], steady_run_s=steady(two["run_wall_s"], 2)),
        speedup_two_workers_over_loop=loop_s / two["wall_s"],
        overhead_per_run_s=(one["wall_s"] - loop_s) / n,
        steady_overhead_per_run_s=steady(one["run_wall_s"], 1) - steady(loop_walls, 1),
        same_numbers_one_and_two_workers=bool(same),
        load_average_at_end=os.getloadavg(),
    )
    # steady-state throughput: 2 workers each running one run at a time after their compile
    results["steady_speedup_two_workers_over_loop"] = (
        2 * results["loop_steady_run_s"] / results["two_workers"]["steady_run_s"])
    print(f"{n} runs ({args.n_neurons} neurons, {args.after_s:g} s after the pulse) on {env['processor']} "
          f"x{env['cpu_count']}, load {env['load_average_at_start'][0]:.1f} at start")
    print(f"{'':24s} {'wall s':>8s} {'runs/min':>9s} {'start-up s':>10s} {'steady s/run':>12s}")
    print(f"{'loop, one process':24s} {loop_s:8.1f} {results['loop_runs_per_min']:9.1f} {'':>10s} "
          f"{results['loop_steady_run_s']:12.2f}")
    for name, key in [("sweep, 1 worker", "one_worker"), ("sweep, 2 workers", "two_workers")]:
        r = results[key]
        print(f"{name:24s} {r['wall_s']:8.1f} {r['runs_per_min']:9.1f} {r['startup_s']:10.1f} "
              f"{r['steady_run_s']:12.2f}")
    print(f"2 workers / loop: {results['speedup_two_workers_over_loop']:.2f}x (steady state "
          f"{results['steady_speedup_two_workers_over_loop']:.2f}x; aim >= 1.8x); overhead per run "
          f"{results['overhead_per_run_s']:.2f} s (steady {results['steady_overhead_per_run_s']:.2f} s; "
          f"aim < 1 s); "
          f"same numbers with 1 and 2 workers: {same}")
    out = HERE / "results" / f"sweep_{device_label(env)}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(dict(environment=env, results=results), indent=2, default=float) + "\n")
    print(f"written {out}")


if __name__ == "__main__":
    main()
