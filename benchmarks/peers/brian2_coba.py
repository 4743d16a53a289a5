"""Brian2 side of benchmarks/snn_coba.py: the COBA network of Brette et al. (2007), benchmark 1.

Runs in its own virtual environment (see brian2-requirements.txt), never in tmsim's, and
prints one line of JSON on stdout. Not meant to be run by hand, but it can be:

    benchmarks/.venv-brian2/bin/python benchmarks/peers/brian2_coba.py --n 4000 --p 0.02

Model (leaky integrate-and-fire, exponential conductances, all units SI), the same as
tmsim's `neurons.coba`, i.e. the COBA of the Brian2/BrainPy benchmark scripts:
    C dv/dt = gl (El - v) + ge (Ee - v) + gi (Ei - v) + I      (v held at Vr while refractory)
    dge/dt = -ge / taue,  dgi/dt = -gi / taui
    C 200 pF, gl 10 nS (taum 20 ms), El -60 mV, Vt -50 mV, Vr -60 mV, refractory 5 ms,
    Ee 0 mV, Ei -80 mV, taue 5 ms, taui 10 ms, constant drive I = 200 pA (20 mV times gl);
    80 % excitatory, 20 % inhibitory; every ordered pair of distinct neurons connected with
    probability p; a spike adds we = 6 nS to ge or wi = 67 nS to gi of each target, which
    acts on v from the next step on (Brian2 without delay; tmsim's one-step delay of 0.1 ms);
    initial v ~ N(-55 mV, 5 mV), ge = gi = 0.
v takes exponential-Euler steps (exact for conductances frozen over a step) and the
conductances decay exactly, as in tmsim (`--method` chooses another Brian2 state updater).

--stdp makes the excitatory -> excitatory synapses plastic with the all-to-all pair rule of
benchmarks/snn_stdp.py (tmsim's `neurons.PairSTDP`): traces x_pre, x_post decay with
tau_plus = tau_minus = 20 ms and step by 1 at each spike; a presynaptic spike delivers w,
then w -= A_minus x_post; a postsynaptic spike w += A_plus x_pre; A_plus = 1 % and A_minus
= 1.05 % of w_max = 12 nS, hard bounds [0, w_max], w starts at we.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=4000, help="number of neurons")
    parser.add_argument("--p", type=float, default=0.02, help="connection probability")
    parser.add_argument("--duration-ms", type=float, default=1000.0)
    parser.add_argument("--dt-ms", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mode", default="cpp_standalone", choices=["cpp_standalone", "runtime"])
    parser.add_argument("--method", default="exponential_euler", help="Brian2 state updater")
    parser.add_argument("--threads", type=int, default=1,
                        help="cpp_standalone OpenMP threads (1: no OpenMP)")
    parser.add_argument("--stdp", action="store_true", help="pair STDP on excitatory -> excitatory")
    args = parser.parse_args()

    t_start = time.perf_counter()
    import brian2 as b2
    import numpy as np

    t_import = time.perf_counter() - t_start
    out = {"mode": args.mode, "n": args.n, "p": args.p, "duration_ms": args.duration_ms,
           "dt_ms": args.dt_ms, "method": args.method, "seed": args.seed, "stdp": args.stdp,
           "import_s": t_import,
           "brian2": b2.__version__, "numpy": np.__version__,
           "python": platform.python_version(), "python_executable": sys.executable}

    with tempfile.TemporaryDirectory(prefix="brian2_coba_") as tmp:
        if args.mode == "cpp_standalone":
            b2.set_device("cpp_standalone", directory=tmp, build_on_run=True)
            b2.prefs.devices.cpp_standalone.openmp_threads = (
                0 if args.threads <= 1 else args.threads)
            out["threads"] = max(args.threads, 1)
        else:
            b2.prefs.codegen.target = "cython"
            b2.prefs.codegen.runtime.cython.cache_dir = tmp   # compile afresh, as standalone does
            out["threads"] = 1
        t0 = time.perf_counter()
        net, mon, plastic = build(b2, args)
        if args.mode == "cpp_standalone":
            net.run(args.duration_ms * b2.ms)          # code generation, make, run the binary
            out["wall_s"] = time.perf_counter() - t0
            timers = b2.device.timers
            out["compile_s"] = timers["compile"]["make"] or 0.0
            out["binary_s"] = timers["run_binary"]
            out["codegen_s"] = out["wall_s"] - out["compile_s"] - out["binary_s"]
            out["main_loop_s"] = b2.device._last_run_time
        else:
            net.run(0 * b2.ms)                           # code generation and Cython compilation
            t1 = time.perf_counter()
            out["compile_s"] = t1 - t0
            net.run(args.duration_ms * b2.ms)
            out["main_loop_s"] = time.perf_counter() - t1
            out["wall_s"] = time.perf_counter() - t0
        out["n_synapses"] = int(sum(len(s) for s in net.objects if isinstance(s, b2.Synapses)))
        out["spikes"] = int(mon.num_spikes)
        out["rate_hz"] = out["spikes"] / (args.n * args.duration_ms * 1e-3)
        if plastic is not None:
            out["mean_weight_exc_exc_end_nS"] = float(np.mean(plastic.w[:] / b2.nS))
    print(json.dumps(out))


def build(b2, args):
    """The COBA network, its state initialised, and a monitor of all spikes."""
    from brian2 import ms, mV, nS, pA, pF

    b2.seed(args.seed)
    b2.defaultclock.dt = args.dt_ms * ms
    namespace = {"C": 200 * pF, "gl": 10 * nS, "El": -60 * mV, "Vt": -50 * mV,
                 "Vr": -60 * mV, "Ee": 0 * mV, "Ei": -80 * mV, "taue": 5 * ms,
                 "taui": 10 * ms, "I": 200 * pA, "we": 6 * nS, "wi": 67 * nS}
    eqs = """
    dv/dt = (gl*(El - v) + ge*(Ee - v) + gi*(Ei - v) + I) / C : volt (unless refractory)
    dge/dt = -ge / taue : siemens
    dgi/dt = -gi / taui : siemens
    """
    group = b2.NeuronGroup(args.n, eqs, threshold="v > Vt", reset="v = Vr",
                           refractory=5 * ms, method=args.method, namespace=namespace)
    n_exc = round(0.8 * args.n)
    inh = b2.Synapses(group[n_exc:], group, on_pre="gi += wi", namespace=namespace)
    inh.connect(condition=f"i + {n_exc} != j", p=args.p)     # i counts within the subgroup
    plastic = None
    if args.stdp:
        namespace.update(wmax=12 * nS, Aplus=0.01 * 12 * nS, Aminus=0.0105 * 12 * nS,
                         taupre=20 * ms, taupost=20 * ms)
        model = """w : siemens
        dxpre/dt = -xpre / taupre : 1 (event-driven)
        dxpost/dt = -xpost / taupost : 1 (event-driven)"""
        plastic = b2.Synapses(group[:n_exc], group[:n_exc], model, namespace=namespace,
                              on_pre="ge_post += w\nxpre += 1\nw = clip(w - Aminus * xpost, 0 * nS, wmax)",
                              on_post="xpost += 1\nw = clip(w + Aplus * xpre, 0 * nS, wmax)")
        plastic.connect(condition="i != j", p=args.p)
        plastic.w = "we"
        exc = b2.Synapses(group[:n_exc], group[n_exc:], on_pre="ge += we", namespace=namespace)
        exc.connect(p=args.p)
        synapses = (plastic, exc, inh)
    else:
        exc = b2.Synapses(group[:n_exc], group, on_pre="ge += we", namespace=namespace)
        exc.connect(condition="i != j", p=args.p)
        synapses = (exc, inh)
    group.v = "-55*mV + 5*mV*randn()"
    mon = b2.SpikeMonitor(group)
    return b2.Network(group, *synapses, mon), mon, plastic


if __name__ == "__main__":
    main()
