"""Two simulations at once on a small CPU, with and without each pinned to its own core.

What a LocalCluster of `tmsim sweep` (one worker process per core) meets: each process runs
--duration-s of the plastic 500-neuron patch (`coupling.cortical_patch` on the four-shell
sphere head, its default calcium rule inside the BDNF rule, spontaneous activity after 0.3 s
to compile), timed after compilation. Cases: one process alone, unpinned and on one core; two
at once, unpinned (XLA runs threads on every core in each); two at once, each restricted to
its own core before JAX starts in it (as coupling.sweep pins a LocalCluster's workers); two at
once, each restricted to its own core after JAX started with every core visible (its thread
pool then keeps a thread per core on one core). Every process also reports a hash of its final
network state: pinning must not change results.

    python benchmarks/pinning.py [--duration-s 10] [--repeats 2]

Writes benchmarks/results/pinning_<device>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

HERE = Path(__file__).resolve().parent


def one_run(job) -> dict:
    """Simulate duration_s of the patch in this (fresh) process, pinned to `cores` if given:
    before JAX starts, or after it when `late`."""
    duration_s, cores, late = job
    if cores is not None and not late:
        os.sched_setaffinity(0, cores)
    import hashlib

    import jax
    if cores is not None and late:
        jax.devices("cpu")
        for tid in os.listdir("/proc/self/task"):
            os.sched_setaffinity(int(tid), cores)
    import numpy as np

    import coupling
    import efield
    import neurons

    head = efield.sphere_head(radii_mm=(80.0, 85.0, 90.0, 95.0), max_edge_mm=6.0)
    patch = coupling.cortical_patch(head, np.array([0.0, 0.0, 95.0]), radius_mm=8.0, n_neurons=500, seed=0)
    warm = neurons.simulate(patch.network, 300.0, 0.1, seed=1, progress=False)
    start = time.perf_counter()
    res = neurons.simulate(patch.network, duration_s * 1e3, 0.1, seed=2, state=warm.final_state,
                           progress=False)
    jax.block_until_ready(res.final_state.v)
    wall = time.perf_counter() - start
    leaves = jax.tree_util.tree_leaves(res.final_state)
    digest = hashlib.sha256(b"".join(np.asarray(a).tobytes() for a in leaves)).hexdigest()[:16]
    return dict(wall_s=wall, state_sha256=digest)


def at_once(duration_s: float, pins: list, late: bool = False) -> list[dict]:
    """One fresh process per entry of pins (a core set or None), all started together."""
    with ProcessPoolExecutor(len(pins), mp_context=get_context("spawn")) as pool:
        return list(pool.map(one_run, [(duration_s, p, late) for p in pins]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration-s", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    if not 0 < args.duration_s <= 3600:
        parser.error(f"--duration-s: expected a number of seconds in (0, 3600], got {args.duration_s}")
    if args.repeats < 1:
        parser.error(f"--repeats: expected an integer >= 1, got {args.repeats}")
    sys.path.insert(0, str(HERE))
    from machine import device_label, environment

    env = environment([], ["coupling/sweep.py", "benchmarks/pinning.py"])
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        sys.exit("benchmarks/pinning.py: needs at least 2 usable cores")
    cases = {"alone": [None], "alone, pinned": [{cores[0]}], "two, unpinned": [None, None],
             "two, pinned": [{cores[0]}, {cores[1]}], "two, pinned late": [{cores[0]}, {cores[1]}]}
    runs = {name: [] for name in cases}
    for _ in range(args.repeats):
        for name, pins in cases.items():
            runs[name] += at_once(args.duration_s, pins, late=name.endswith("late"))
    digests = {r["state_sha256"] for rows in runs.values() for r in rows}
    summary = {name: dict(median_wall_s=statistics.median(r["wall_s"] for r in rows),
                          walls_s=[r["wall_s"] for r in rows]) for name, rows in runs.items()}
    alone = summary["alone"]["median_wall_s"]
    print(f"{args.duration_s:g} s of the plastic 500-neuron patch per process, {args.repeats} repeats, "
          f"{env['processor']} x{env['cpu_count']}")
    for name, s in summary.items():
        s["slowdown_vs_alone"] = s["median_wall_s"] / alone
        print(f"{name:17s} median {s['median_wall_s']:.2f} s per process "
              f"({s['slowdown_vs_alone']:.2f}x alone)")
    print(f"same final state in every process: {len(digests) == 1}")
    out = HERE / "results" / f"pinning_{device_label(env)}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(dict(environment=env, duration_s=args.duration_s, cases=summary,
                                   same_state=len(digests) == 1), indent=2) + "\n")
    print(f"written {out}")


if __name__ == "__main__":
    main()
