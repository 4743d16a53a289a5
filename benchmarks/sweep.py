"""Throughput of a sweep on Dask: 16 `tmsim session` runs with 1 and 2 worker processes, as
`tmsim sweep --workers N` runs them (run_sweep's defaults: its own LocalCluster of
single-threaded workers, started inside the wall time, and JAX's compilation cache in the
sweep folder, so that the first run compiles alone and the others load), against the same runs
in a plain loop in one process (coupling.sweep.execute_run, which writes the same run folders).

The runs: the sphere head at 12 mm, a patch of --n-neurons, a single pulse at 50 or 60 % MSO,
the coil 3 or 5 mm above the scalp, noise seeds 0-3, --after-s of spiking after the pulse, one
MEP test pulse. One network seed, so the loop compiles the network once. At the default size
a run simulates about a second and compiling its programs takes longer than the rest of the
loop's runs together; --after-s 5 gives runs where simulation dominates.

Beside them, the runs split between two plain processes at once (no Dask, each compiling its
own programs): what two processes of these runs get from this machine, Dask aside.

Reported: the wall time of each, runs per minute, the speed-up of 2 workers over the loop, the
overhead per run of the 1-worker sweep over the loop ((sweep - loop) / runs, and the same for
the median run). The issue's aims: 2 workers at least 1.8x the loop, overhead under 1 s a run.

    python benchmarks/sweep.py [--n-neurons 40] [--after-s 0.2]

Writes benchmarks/results/sweep_<device>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
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


def loop(sweep: sw.Sweep, out: Path, part: int = 0, parts: int = 1) -> tuple[float, list[dict]]:
    """The runs (every `parts`-th from `part`) one after another in this process, as a worker
    runs each."""
    start = time.perf_counter()
    rows = []
    columns = sweep.keys + [k for k in sw.SEED_KEYS if k not in sweep.keys]
    for index, (values, config) in enumerate(zip(sweep.runs(), sweep.configs())):
        if index % parts != part:
            continue
        values = {k: values.get(k, sweep.base_value(k)) for k in columns}
        rows.append(sw.execute_run(dict(run=index, run_id=sw.run_id(config, sweep.kind), values=values,
                                        config=config, kind=sweep.kind, run_fn=None, out=str(out))))
    return time.perf_counter() - start, rows


def two_loops(args, out: Path) -> tuple[float, list[dict]]:
    """Half of the runs in each of two plain processes at once (no Dask, no compilation cache):
    what two processes of these runs get from this machine."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    start = time.perf_counter()
    with ProcessPoolExecutor(2, mp_context=get_context("spawn")) as pool:
        halves = list(pool.map(_half, [(args.n_neurons, args.after_s, str(out), part) for part in (0, 1)]))
    return time.perf_counter() - start, [row for _, rows in halves for row in rows]


def _half(job):
    n_neurons, after_s, out, part = job
    return loop(make_sweep(n_neurons, after_s), Path(out), part, 2)


def on_cluster(sweep: sw.Sweep, out: Path, workers: int) -> dict:
    """The sweep as `tmsim sweep --workers N` runs it: run_sweep's defaults (its own LocalCluster,
    started and closed inside the wall time, and the compilation cache in DIR)."""
    start = time.perf_counter()
    table = sw.run_sweep(sweep, out, workers=workers, progress=False, log=None)
    wall = time.perf_counter() - start
    assert (table["status"] == "done").all(), table[["run", "error"]]
    return dict(wall_s=wall, run_wall_s=table["wall_s"].tolist(), table=table)


def median(values: list[float]) -> float:
    return float(statistics.median(values))


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
        loops_s, loops_rows = two_loops(args, folder / "loops")
    same = all(abs(a - b) < 1e-12 for a, b in zip(one["table"]["mep_before"], two["table"]["mep_before"]))
    loop_walls = [r["wall_s"] for r in loop_rows]
    results = dict(
        runs=n, n_neurons=args.n_neurons, after_s=args.after_s,
        loop_wall_s=loop_s, loop_runs_per_min=60 * n / loop_s, loop_median_run_s=median(loop_walls),
        one_worker=dict(wall_s=one["wall_s"], runs_per_min=60 * n / one["wall_s"],
                        median_run_s=median(one["run_wall_s"])),
        two_workers=dict(wall_s=two["wall_s"], runs_per_min=60 * n / two["wall_s"],
                         median_run_s=median(two["run_wall_s"])),
        two_plain_processes=dict(wall_s=loops_s, runs_per_min=60 * n / loops_s,
                                 median_run_s=median([r["wall_s"] for r in loops_rows])),
        speedup_two_workers_over_loop=loop_s / two["wall_s"],
        overhead_per_run_s=(one["wall_s"] - loop_s) / n,
        median_overhead_per_run_s=median(one["run_wall_s"]) - median(loop_walls),
        same_numbers_one_and_two_workers=bool(same),
        load_average_at_end=os.getloadavg(),
    )
    print(f"{n} runs ({args.n_neurons} neurons, {args.after_s:g} s after the pulse) on {env['processor']} "
          f"x{env['cpu_count']}, load {env['load_average_at_start'][0]:.1f} at start")
    print(f"{'':24s} {'wall s':>8s} {'runs/min':>9s} {'median s/run':>12s}")
    print(f"{'loop, one process':24s} {loop_s:8.1f} {results['loop_runs_per_min']:9.1f} "
          f"{results['loop_median_run_s']:12.2f}")
    for name, key in [("sweep, 1 worker", "one_worker"), ("sweep, 2 workers", "two_workers"),
                      ("2 plain processes", "two_plain_processes")]:
        r = results[key]
        print(f"{name:24s} {r['wall_s']:8.1f} {r['runs_per_min']:9.1f} {r['median_run_s']:12.2f}")
    print(f"2 workers / loop: {results['speedup_two_workers_over_loop']:.2f}x (aim >= 1.8x); "
          f"overhead per run {results['overhead_per_run_s']:.2f} s "
          f"(median run {results['median_overhead_per_run_s']:.2f} s; "
          f"aim < 1 s); same numbers with 1 and 2 workers: {same}")
    out = HERE / "results" / f"sweep_{device_label(env)}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(dict(environment=env, results=results), indent=2, default=float) + "\n")
    print(f"written {out}")


if __name__ == "__main__":
    main()
