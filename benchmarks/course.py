"""Wall time of a treatment course: the clinical 10 Hz course on patches of growing size.

A depressed patch under F3 of the coupling stage's sphere head (70 mm figure-8, one FEM
field), BDNF-gated STDP on its excitatory synapses, receives the clinical 10 Hz session
(75 trains of 40 pulses at 10 Hz, 26 s gaps: 3000 pulses, 37 min) on 5 days a week
(coupling.Calendar.clinical_10hz); each session and `--after-s` after it are simulated spike
by spike, the gaps in closed form (coupling.run_course). The issue's aim: 10^4 neurons
through a 20-session course in under 10 minutes on one H100/H200.

    python benchmarks/course.py [--sizes 1000 10000 100000] [--sessions 20] [--trains 75]

--sessions and --trains shorten the course for a CPU (wall time grows linearly with the
simulated time, so the full course is extrapolated from the spiking time per biological
second; the JSON records what was run and what is extrapolated). Beside wall time it records
the process's CPU time per session, the figure to compare on a machine shared with other
work (pin the process to one core, `taskset -c 1`, for a one-core figure). Writes
benchmarks/results/course_<device>.json, or --out.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import coupling
from machine import device_label, environment

HERE = Path(__file__).resolve().parent
FULL_SESSIONS, FULL_TRAINS = 20, 75


def run(head, fem, coil, n_neurons: int, sessions: int, trains: int, after_s: float) -> dict:
    """Build a patch of n_neurons and run the course; wall and CPU times in s."""
    t0 = time.perf_counter()
    patch = coupling.cortical_patch(head, "F3", 8.0, n_neurons, seed=0,
                                    model=coupling.scenario_model("depressed"))
    field = coupling.neuron_field(head, fem, patch, coil.didt_max)
    built, built_cpu = time.perf_counter(), time.process_time()
    protocol = coupling.rtms(10.0, 40, trains, 26.0)
    weeks = -(-sessions // 5)
    calendar = coupling.Calendar(coupling.Calendar.clinical_10hz(weeks=weeks).start_min[:sessions])
    ends, ends_cpu = [], []
    with tempfile.TemporaryDirectory() as folder:
        result = coupling.run_course(patch, field, protocol, calendar, 60.0, folder=folder,
                                     options=coupling.SessionOptions(after_s=after_s, n_test=2),
                                     final_probe_days=0.0, progress=False,
                                     on_session=lambda k, _: (ends.append(time.perf_counter()),
                                                              ends_cpu.append(time.process_time())))
    done = time.perf_counter()
    per_session = [b - a for a, b in zip([built] + ends[:-1], ends)]
    cpu_per_session = [b - a for a, b in zip([built_cpu] + ends_cpu[:-1], ends_cpu)]
    biological_s = protocol.duration_ms / 1e3 + after_s
    steady = min(per_session[1:]) if len(per_session) > 1 else per_session[0]
    steady_cpu = min(cpu_per_session[1:]) if len(cpu_per_session) > 1 else cpu_per_session[0]
    full_biological_s = FULL_SESSIONS * (FULL_TRAINS * 30.0 - 26.0 + after_s)
    synapses = sum(int(p.ell.valid.sum()) for p in patch.network.projections)
    return dict(n_neurons=n_neurons, synapses=synapses, sessions=sessions, trains=trains,
                pulses_per_session=protocol.n_pulses, spiking_s_per_session=biological_s,
                build_s=built - t0, session_wall_s=per_session, course_wall_s=done - built,
                session_cpu_s=cpu_per_session, real_time_factor=steady / biological_s,
                real_time_factor_cpu=steady_cpu / biological_s,
                full_course_extrapolated_s=full_biological_s * steady / biological_s,
                full_course_extrapolated_cpu_s=full_biological_s * steady_cpu / biological_s,
                mean_weight_change=result.summary()["mean_weights_nS"])


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--sessions", type=int, default=FULL_SESSIONS)
    parser.add_argument("--trains", type=int, default=FULL_TRAINS, help="10 Hz trains per session")
    parser.add_argument("--after-s", type=float, default=10.0)
    parser.add_argument("--out", type=Path, help="JSON path (default results/course_<device>.json)")
    args = parser.parse_args()
    env = environment(["numpy"], ("neurons", "coupling"))
    config = coupling.RunConfig().with_values({"head.model": "sphere", "coil.centre": "F3", "coil.handle": "",
                                               "protocol.intensity": "60% MSO",
                                                "protocol.test_intensity": "60% MSO"})
    prepared = coupling.prepare_run(config)
    head, coil, fem = prepared.mesh, prepared.coil, prepared.fem
    out = dict(environment=env, runs=[])
    path = args.out or HERE / "results" / f"course_{device_label(env)}.json"
    path.parent.mkdir(exist_ok=True)
    for n in args.sizes:
        out["runs"].append(run(head, fem, coil, n, args.sessions, args.trains, args.after_s))
        path.write_text(json.dumps(out, indent=2, default=float) + "\n")   # after each size
        r = out["runs"][-1]
        sessions = [round(s, 1) for s in r["session_wall_s"]]
        cpu = [round(s, 1) for s in r["session_cpu_s"]]
        print(f"{n} neurons ({r['synapses']} synapses): sessions {sessions} s wall, {cpu} s CPU; "
              f"real-time factor {r['real_time_factor']:.3f} wall, {r['real_time_factor_cpu']:.3f} CPU; "
              f"full course (extrapolated) {r['full_course_extrapolated_s'] / 60:.1f} min wall, "
              f"{r['full_course_extrapolated_cpu_s'] / 60:.1f} min CPU", flush=True)
    print("wrote", path)


if __name__ == "__main__":
    main()
