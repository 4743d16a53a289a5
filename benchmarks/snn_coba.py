"""Spiking network, COBA (Brette et al. 2007, benchmark 1): tmsim against Brian2 in the same run.

The model is `neurons.coba`, the LIF network with exponential conductances of the
Brian2/BrainPy benchmark scripts (written out in peers/brian2_coba.py): 80 % excitatory /
20 % inhibitory neurons, C 200 pF, gl 10 nS, we 6 nS, wi 67 nS, taue 5 ms, taui 10 ms,
drive 200 pA; dt 0.1 ms, 1 s simulated. Every neuron receives on average 80
synapses (64 excitatory, 16 inhibitory): p = 0.02 at 4,000 neurons as in the original
benchmark, p = 80 / N above (0.002 at 40,000), so that the dynamics stay the same.

For each size:
- tmsim: `neurons.coba` (network construction), then `neurons.simulate` 1 + repeats times:
  the first call includes JIT compilation, the others do not (main loop: the fastest of
  them); spikes and mean rate. By default the tmsim process is pinned to one core
  (`--tmsim-cores 1`, os.sched_setaffinity before JAX starts): XLA then runs on one thread,
  like Brian2, and on a small shared machine that is also faster than XLA's threads.
- Brian2 in cpp_standalone mode, one thread, code generated and compiled afresh, `repeats`
  times, twice: with the exponential-Euler state updater (the same method as tmsim: the
  conductances decay exactly) and with Euler, the updater its users get when they run the
  benchmark as published (`method="euler"`, forward Euler for v and the conductances): total
  wall time (code generation + g++ + binary), the binary alone (synapse creation, main loop,
  writing results) and the main loop as the binary measures it (the run with the fastest
  main loop is kept); spikes and mean rate.
  Optionally also Brian2's runtime mode with Cython (`--brian2-runtime`, about a minute of
  Cython compilation per size).

Brian2 is never a dependency of tmsim: it runs in its own virtual environment,
benchmarks/.venv-brian2, created on first use from benchmarks/peers/brian2-requirements.txt
(needs PyPI and g++), as a subprocess running benchmarks/peers/brian2_coba.py.

    python benchmarks/snn_coba.py                   # 4,000 and 40,000 neurons
    python benchmarks/snn_coba.py --sizes 4000 --brian2-runtime
    python benchmarks/snn_coba.py --tmsim-cores 0   # XLA's default threading

Writes benchmarks/results/snn_coba_<device>.json. Compare ratios, not absolute times.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import subprocess
import sys
import time
import traceback
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from machine import device_label, environment

HERE = Path(__file__).resolve().parent
VENV = HERE / ".venv-brian2"
REQUIREMENTS = HERE / "peers" / "brian2-requirements.txt"
PEER_SCRIPT = HERE / "peers" / "brian2_coba.py"
SIZES = (4000, 40000)
IN_DEGREE = 80          # mean synapses onto each neuron: 0.02 * 4000, as in the original benchmark


def connection_p(n: int) -> float:
    return min(1.0, IN_DEGREE / n)


# ---------------------------------------------------------------------------------- tmsim


def run_tmsim(n: int, duration_ms: float, dt_ms: float, seed: int, repeats: int, cores: int) -> dict:
    """In a fresh process: build, simulate 1 + repeats times (the first with compilation),
    count spikes. cores > 0: pin the process to that many cores before JAX starts."""
    try:
        if cores > 0:
            os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:cores])
        import neurons

        t0 = time.perf_counter()
        net = neurons.coba(n_neurons=n, seed=seed, p=connection_p(n))
        build_s = time.perf_counter() - t0
        times = []
        for _ in range(1 + repeats):
            t0 = time.perf_counter()
            res = neurons.simulate(net, duration_ms=duration_ms, dt_ms=dt_ms, seed=seed,
                                   progress=False)
            times.append(time.perf_counter() - t0)   # simulate returns host arrays: all done
        spikes = sum(len(trains) for trains in res.spikes.values())
        n_synapses = sum(proj.n_synapses for proj in net.projections)
    except Exception as exc:  # noqa: BLE001 -- reported in the table instead of a crash
        return {"unavailable": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(limit=4)}
    loop = min(times[1:])
    return {"build_s": build_s, "first_call_s": times[0], "later_calls_s": times[1:],
            "compile_s": times[0] - loop, "wall_s": build_s + times[0],
            "wall_no_compile_s": build_s + loop, "main_loop_s": loop, "cores": len(os.sched_getaffinity(0)),
            "n_synapses": n_synapses, "spikes": spikes,
            "rate_hz": spikes / (n * duration_ms * 1e-3),
            "rate_hz_by_population": {k: res.mean_rate_Hz(k) for k in res.spikes}}


# --------------------------------------------------------------------------------- Brian2


def brian2_python() -> Path:
    """The Python of the Brian2 environment, created or updated from the requirements file."""
    python = VENV / "bin" / "python"
    stamp = VENV / "installed-requirements.txt"
    wanted = REQUIREMENTS.read_text()
    if not python.exists():
        print(f"creating {VENV} for Brian2 ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    if not stamp.exists() or stamp.read_text() != wanted:
        print(f"installing {REQUIREMENTS.name} into {VENV} ...", flush=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                        "-r", str(REQUIREMENTS)], check=True)
        stamp.write_text(wanted)
    return python


def run_brian2(python: Path, n: int, duration_ms: float, dt_ms: float, seed: int,
               mode: str, threads: int, stdp: bool = False, method: str = "exponential_euler") -> dict:
    """One run of peers/brian2_coba.py (stdp: plastic exc -> exc; method: Brian2's state
    updater) in the Brian2 environment."""
    cmd = [str(python), str(PEER_SCRIPT), "--n", str(n), "--p", repr(connection_p(n)),
           "--duration-ms", repr(duration_ms), "--dt-ms", repr(dt_ms), "--seed", str(seed),
           "--mode", mode, "--threads", str(threads), "--method", method] + (["--stdp"] if stdp else [])
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    process_s = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"unavailable": f"exit {proc.returncode}: {' | '.join(tail)}"}
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["process_s"] = process_s                       # including interpreter start and import
    if mode == "cpp_standalone":
        out["wall_no_compile_s"] = out["binary_s"]
    else:
        out["wall_no_compile_s"] = out["main_loop_s"]
    return out


def best_brian2_run(python: Path, n: int, duration_ms: float, dt_ms: float, seed: int, mode: str,
                    threads: int, repeats: int, stdp: bool = False,
                    method: str = "exponential_euler") -> dict:
    """The run_brian2 result with the fastest main loop of `repeats` runs, with all their
    main loops in main_loops_s (the first failure if none ran)."""
    runs = [run_brian2(python, n, duration_ms, dt_ms, seed, mode, threads, stdp, method)
            for _ in range(max(1, repeats))]
    ok = [r for r in runs if "unavailable" not in r]
    best = min(ok, key=lambda r: r["main_loop_s"]) if ok else runs[0]
    best["main_loops_s"] = [r["main_loop_s"] for r in ok]
    return best


# ----------------------------------------------------------------------------------- main


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=SIZES, metavar="N",
                        help="numbers of neurons")
    parser.add_argument("--duration-ms", type=float, default=1000.0)
    parser.add_argument("--dt-ms", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--brian2-threads", type=int, default=1,
                        help="OpenMP threads of Brian2's standalone binary")
    parser.add_argument("--brian2-runtime", action="store_true",
                        help="also run Brian2's runtime mode (Cython)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed runs without compilation (tmsim) / of the binary (Brian2)")
    parser.add_argument("--tmsim-cores", type=int, default=1,
                        help="cores the tmsim process may use (0: all, XLA's default threading)")
    parser.add_argument("--no-brian2", action="store_true")
    parser.add_argument("--no-tmsim", action="store_true")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()

    env = environment(("jaxlib", "numpy"), ("neurons",))
    python = None
    if not args.no_brian2:
        try:
            python = brian2_python()
        except (OSError, subprocess.CalledProcessError) as exc:
            env["brian2_unavailable"] = f"{type(exc).__name__}: {exc}"
            print(f"brian2: unavailable ({env['brian2_unavailable']})")
    modes = ["cpp_standalone"] + (["runtime"] if args.brian2_runtime else [])
    rows = []
    ctx = mp.get_context("spawn")
    for n in args.sizes:
        row = {"n": n, "p": connection_p(n), "duration_ms": args.duration_ms, "dt_ms": args.dt_ms}
        if not args.no_tmsim:
            with ProcessPoolExecutor(1, mp_context=ctx) as pool:
                row["tmsim"] = pool.submit(run_tmsim, n, args.duration_ms, args.dt_ms,
                                           args.seed, args.repeats, args.tmsim_cores).result()
        if python is not None:
            for mode in modes:
                row[f"brian2_{mode}"] = best_brian2_run(python, n, args.duration_ms, args.dt_ms, args.seed,
                                                        mode, args.brian2_threads, args.repeats)
            row["brian2_cpp_standalone_euler"] = best_brian2_run(
                python, n, args.duration_ms, args.dt_ms, args.seed, "cpp_standalone", args.brian2_threads,
                args.repeats, method="euler")
        add_ratios(row)
        rows.append(row)
    peer = next((r[k] for r in rows for k in r if k.startswith("brian2_") and "brian2" in r[k]), None)
    if peer:
        env["brian2_env"] = {k: peer[k] for k in ("brian2", "numpy", "python", "python_executable")}
    print_table(env, rows)
    device = device_label(env)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"snn_coba_{device}.json"
    settings = {"repeats": args.repeats, "tmsim_cores": args.tmsim_cores,
                "brian2_threads": args.brian2_threads}
    path.write_text(json.dumps({"environment": env, "in_degree": IN_DEGREE, "settings": settings,
                                "rows": rows}, indent=2))
    print(f"wrote {path}")


TIMES = ("wall_s", "wall_no_compile_s", "main_loop_s")


def add_ratios(row):
    """tmsim's times over Brian2 standalone's: exponential Euler (tmsim_over_brian2) and Euler
    (tmsim_over_brian2_euler)."""
    t = row.get("tmsim", {})
    for key, name in (("brian2_cpp_standalone", "tmsim_over_brian2"),
                      ("brian2_cpp_standalone_euler", "tmsim_over_brian2_euler")):
        b = row.get(key, {})
        if t and b and "unavailable" not in t and "unavailable" not in b:
            row[name] = {k: t[k] / b[k] for k in TIMES}


def print_table(env, rows):
    v = env["versions"]
    b2 = env.get("brian2_env", {})
    print(f"\n{env['processor']}, {env['cpu_count']} cores; jax {v['jax']} ({env['jax_backend']}),"
          f" numpy {v['numpy']}; brian2 {b2.get('brian2', '-')} (python {b2.get('python', '-')},"
          f" numpy {b2.get('numpy', '-')})")
    head = (f"{'N':>7} {'tool':<22} {'wall+compile':>12} {'wall':>8} {'main loop':>9}"
            f" {'spikes':>9} {'rate':>8} {'tmsim/brian2':>14}")
    print(head)
    print("-" * len(head))
    for row in rows:
        for key in [k for k in row if k == "tmsim" or k.startswith("brian2_")]:
            r = row[key]
            tool = key.replace("_cpp_standalone", " standalone").replace("_runtime", " runtime") \
                .replace("_euler", " Euler")
            if "unavailable" in r:
                print(f"{row['n']:>7} {tool:<22} unavailable ({r['unavailable']})")
                continue
            ratio = ""
            over = {"brian2_cpp_standalone": "tmsim_over_brian2",
                    "brian2_cpp_standalone_euler": "tmsim_over_brian2_euler"}.get(key)
            if over in row:
                q = row[over]
                ratio = f"{q['wall_s']:.2f}/{q['wall_no_compile_s']:.2f}/{q['main_loop_s']:.2f}"
            print(f"{row['n']:>7} {tool:<22} {r['wall_s']:>11.2f}s {r['wall_no_compile_s']:>7.2f}s"
                  f" {r['main_loop_s']:>8.3f}s {r['spikes']:>9,} {r['rate_hz']:>6.1f}Hz {ratio:>14}")
    print("wall+compile: network construction, code generation and compilation, simulation;"
          " wall: the same without compilation\n(tmsim: fastest later simulate call plus construction;"
          " Brian2 standalone: the compiled binary); main loop: tmsim's fastest later simulate call,"
          "\nBrian2's network run as its binary times it (fastest of the repeats). tmsim/brian2, on each"
          " Brian2 row: tmsim's time over that row's, wall+compile / wall / main loop.")


if __name__ == "__main__":
    main()
