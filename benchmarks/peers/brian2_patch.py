"""Brian2 side of benchmarks/snn_plastic.py: the cortical patch with its calcium rule.

Runs in its own virtual environment (see brian2-requirements.txt), never in tmsim's, and
prints one line of JSON on stdout. It reads the network snn_plastic.py exported (an .npz:
the neurons' parameters, every projection's synapses with weights and delays, the Poisson
background, the generator rates, the forced spikes and the rule), so that both simulators
run the same neurons and synapses:

    benchmarks/.venv-brian2/bin/python benchmarks/peers/brian2_patch.py --network patch.npz

Model, as tmsim's `neurons` runs it (all per neuron, in the units of the export):
    C dv/dt = g_leak (E_leak - v) + ge (E_exc - v) + gi (E_inh - v) + I_bias   (unless refractory)
    dge/dt = -ge / tau_exc,  dgi/dt = -gi / tau_inh; a spike at v > v_threshold resets v
    to v_reset for t_ref; a synaptic event adds its weight (nS) to ge or gi after its delay
    (Brian2 applies it after the step's state update, so its delay here is one step shorter,
    and the event acts on v in the same step as in tmsim);
    each neuron of a Poisson generator population spikes with probability rate x dt per step;
    n_sources Poisson trains at rate_Hz onto every neuron of the other populations
    (PoissonInput). A forced spike (the stand-in for a TMS pulse) sets a flag that fires the
    neuron at its next threshold check, one step after tmsim, where it fires in its own step;
    Brian2 checks thresholds only outside the refractory period, so a forced spike on a
    neuron that fired within t_ref (2 ms) before waits for its end, and generator neurons are
    refractory for t_ref too (tmsim fires both regardless). Brian2 computes in float64, tmsim
    in float32.
Calcium rule, as Brian2 users write such a rule: the traces live on the neurons and decay
every step (ca_axon, s_axon, nu for the neuron's role as presynaptic cell, ca_dendrite as
postsynaptic one: Brian2 keeps the _pre and _post suffixes for synapses) and jump in the
reset; the plastic synapses compare the synaptic calcium c = ca_axon + s_axon + ca_dendrite with theta_d
and the sliding theta_p = theta_p (1 + nu / sliding_rate_Hz) every update_ms in a
`run_regularly` operation and add gamma_p h or subtract gamma_d h (h = update_ms) with soft
bounds, as tmsim's `neurons.CalciumRule` (tmsim also skips the comparison while no
calcium anywhere can reach theta_d; this script compares at every update).
v takes exponential-Euler steps and the conductances decay exactly (tmsim's method);
`--method` picks another Brian2 state updater, `--method default` Brian2's own choice (Euler
for these equations, as its users run them).
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
    parser.add_argument("--network", required=True, help="the .npz snn_plastic.py exported")
    parser.add_argument("--method", default="exponential_euler",
                        help="Brian2 state updater ('default': Brian2's own choice, as its users run it)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    t_start = time.perf_counter()
    import brian2 as b2
    import numpy as np

    data = dict(np.load(args.network, allow_pickle=False))
    duration_ms, dt_ms = float(data["duration_ms"]), float(data["dt_ms"])
    out = {"duration_ms": duration_ms, "dt_ms": dt_ms, "method": args.method, "seed": args.seed,
           "rule": str(data["rule"]), "import_s": time.perf_counter() - t_start, "brian2": b2.__version__,
           "numpy": np.__version__, "python": platform.python_version(), "python_executable": sys.executable,
           "mode": "cpp_standalone", "threads": 1}
    with tempfile.TemporaryDirectory(prefix="brian2_patch_") as tmp:
        b2.set_device("cpp_standalone", directory=tmp, build_on_run=True)
        b2.prefs.devices.cpp_standalone.openmp_threads = 0
        t0 = time.perf_counter()
        net, monitor, plastic = build(b2, data, args)
        net.run(duration_ms * b2.ms)                     # code generation, make, run the binary
        out["wall_s"] = time.perf_counter() - t0
        timers = b2.device.timers
        out["compile_s"] = timers["compile"]["make"] or 0.0
        out["binary_s"] = timers["run_binary"]
        out["main_loop_s"] = b2.device._last_run_time
        out["n_synapses"] = int(sum(len(s) for s in net.objects if isinstance(s, b2.Synapses)))
        out["n_neurons"] = int(data["n"])
        spikes = np.asarray(monitor.i[:])
        offsets = data["population_offsets"]
        out["rates_Hz"] = {
            str(name): float(np.sum((spikes >= o) & (spikes < o + m)) / (m * duration_ms * 1e-3))
            for name, o, m in zip(data["population_names"], offsets, data["population_sizes"])}
        out["mean_weight_end_nS"] = {name: float(np.mean(s.w[:])) for name, s in plastic.items()}
    print(json.dumps(out))


def build(b2, data, args):
    """The network of the export, its state initialised, a monitor of all spikes and the
    plastic Synapses by projection name."""
    import numpy as np
    from brian2 import Hz, ms, mV, nS, pA, pF

    b2.seed(args.seed)
    b2.defaultclock.dt = float(data["dt_ms"]) * ms
    n = int(data["n"])
    eqs = """
    dv/dt = (g_leak*(E_leak - v) + ge*(E_exc - v) + gi*(E_inh - v) + I_bias) / C : volt (unless refractory)
    dge/dt = -ge / tau_exc : siemens
    dgi/dt = -gi / tau_inh : siemens
    dca_axon/dt = -ca_axon / tau_ca : 1
    ds_axon/dt = -s_axon / tau_slow : 1
    dnu/dt = -nu / tau_sliding : 1
    dca_dendrite/dt = -ca_dendrite / tau_ca : 1
    C : farad (constant)
    g_leak : siemens (constant)
    E_leak : volt (constant)
    v_threshold : volt (constant)
    v_reset : volt (constant)
    t_ref : second (constant)
    tau_exc : second (constant)
    tau_inh : second (constant)
    E_exc : volt (constant)
    E_inh : volt (constant)
    I_bias : amp (constant)
    rate : Hz (constant)
    generator : boolean (constant)
    forced : boolean
    """
    p = data
    namespace = {"tau_ca": float(p["tau_calcium_ms"]) * ms, "tau_slow": float(p["tau_slow_ms"]) * ms,
                 "tau_sliding": float(p["sliding_tau_ms"]) * ms, "C_pre": float(p["C_pre"]),
                 "C_pre_slow": float(p["C_pre_slow"]), "C_post": float(p["C_post"]),
                 "nu_jump": 1000.0 / float(p["sliding_tau_ms"])}
    threshold = "forced or (generator and rand() < rate * dt) or (not generator and v > v_threshold)"
    reset = ("v = v_reset\nforced = False\nca_axon += C_pre\ns_axon += C_pre_slow\nnu += nu_jump\n"
             "ca_dendrite += C_post")
    method = {} if args.method == "default" else {"method": args.method}
    group = b2.NeuronGroup(n, eqs, threshold=threshold, reset=reset, refractory="t_ref", namespace=namespace,
                           **method)
    for name, unit in (("C", pF), ("g_leak", nS), ("E_leak", mV), ("v_threshold", mV), ("v_reset", mV),
                       ("t_ref", ms), ("tau_exc", ms), ("tau_inh", ms), ("E_exc", mV), ("E_inh", mV),
                       ("I_bias", pA)):
        setattr(group, name, p[f"neuron_{name}"] * unit)
    group.rate = p["neuron_rate_Hz"] * Hz
    group.generator = p["neuron_generator"].astype(bool)
    group.v = p["neuron_v_init_mV"] * mV
    objects = [group]
    for start, stop, n_sources, rate_hz, weight_ns, receptor in p["poisson"]:
        variable = "ge" if int(receptor) == 0 else "gi"
        objects.append(b2.PoissonInput(group[int(start):int(stop)], variable, int(n_sources), rate_hz * Hz,
                                       weight=weight_ns * nS))
    plastic = {}
    for k, name in enumerate(p["projection_names"]):
        pre_off, pre_n, post_off, post_n, receptor, is_plastic = (int(x) for x in p["projection_ranges"][k])
        variable = "ge" if receptor == 0 else "gi"
        pre, post = group[pre_off:pre_off + pre_n], group[post_off:post_off + post_n]
        if is_plastic:
            r = {key: float(p[f"rule_{key}_{k}"])
                 for key in ("gamma_p_per_s", "gamma_d_per_s", "w_min", "w_max")}
            r.update(theta_p=float(p["theta_p"]), theta_d=float(p["theta_d"]),
                     sliding_rate=float(p["sliding_rate_Hz"]), h=float(p["update_ms"]) * 1e-3)
            syn = b2.Synapses(pre, post, "w : 1", on_pre=f"{variable}_post += w * nS", namespace=r)
            syn.run_regularly(
                "c = ca_axon_pre + s_axon_pre + ca_dendrite_post\n"
                "dw_plus = gamma_p_per_s * h * int(c > theta_p * (1 + nu_pre / sliding_rate))\n"
                "dw_minus = gamma_d_per_s * h * int(c > theta_d)\n"
                "w = clip(w + dw_plus * (w_max - w) / (w_max - w_min)"
                " - dw_minus * (w - w_min) / (w_max - w_min), w_min, w_max)", dt=float(p["update_ms"]) * ms)
            plastic[str(name)] = syn
        else:
            syn = b2.Synapses(pre, post, "w : 1", on_pre=f"{variable}_post += w * nS")
        syn.connect(i=p[f"pre_{k}"], j=p[f"post_{k}"])
        syn.w = p[f"weight_{k}"]
        syn.delay = np.maximum(p[f"delay_ms_{k}"] - float(p["dt_ms"]), 0.0) * ms
        objects.append(syn)
    times, ids = p["forced_times_ms"], p["forced_ids"]
    if len(times):
        source = b2.SpikeGeneratorGroup(n, ids, times * ms)
        force = b2.Synapses(source, group, on_pre="forced_post = True")
        force.connect(j="i")
        objects += [source, force]
    monitor = b2.SpikeMonitor(group)
    return b2.Network(*objects, monitor), monitor, plastic


if __name__ == "__main__":
    main()
