"""The after-effects validation: every row of validation/targets.toml measured with the harness
(coupling.run_targets) and judged by its pre-registered statistic and pass rule.

Each row's protocol and its sham run on the design's network seeds x noise seeds, paired by
seed; the resting motor threshold is measured once per patch (network seed and scenario) and
shared by its runs; MEP probes, test pulses, time step and bridging are the design's. The
patch is the one the targets file's revision names and validation/recruitment.py measured:
the default of `tmsim run` (coupling.RunConfig: template head, 70 mm figure-8 over the hand
knob at C3, handle towards CP5, an 8 mm patch of --n-neurons neurons, 500), with 10 s of
spiking after the last pulse; the base configuration is recorded in the JSON.

    python validation/after_effects.py                 # all rows on network_seeds (hours)
    python validation/after_effects.py --calibration   # calibration rows on calibration_network_seeds
    python validation/after_effects.py --small --rows ctbs300 --out /tmp/ae --results /tmp/ae
                                                       # smoke run: NOT the pre-registered design

--small shrinks everything (40 neurons on the 12 mm sphere head, the first 2 network seeds and 1 noise
seed, probes at 0 and 5 min, 2 test pulses at 120 % RMT (150 % of that patch's RMT of about 70 %
MSO passes 100 % MSO), a 4-trial RMT to 5 %, 1000 resamples); its JSON
says pre_registered = false. The runs go through the sweeps engine on Dask (--workers, or
--scheduler for a running cluster) into --out (default results/after_effects[_calibration]
[_small]); rerunning skips finished runs. Writes after_effects[_calibration][_small].json and
.png to --results (default validation/results): per row the model's value and 95 % CI beside
the human mean and pass band, calibration and held-out rows marked, misses marked.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import subprocess
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import coupling
from coupling.targets import load_targets
from tmsim_io import figure, save_figure, write_json

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "benchmarks"))
from machine import environment  # noqa: E402

BASE = {"session.after_s": 10.0}
SMALL = dict(base={"head.model": "sphere", "head.max_edge_mm": 12.0, "patch.n_neurons": 40,
                   "session.after_s": 0.05},
             network_seeds=2, noise_seeds=1, design=dict(probe_minutes=(0.0, 5.0), n_test=2, rmt_trials=4,
                                                         rmt_tolerance_pct=5.0, resamples=1000,
                                                         test_percent_rmt=120.0))
CALIBRATION_ROWS_TO_PASS = "all"
HELD_OUT_ROWS_TO_PASS = 5
"""The pass rule of the targets file: all calibration rows and at least 5 of the 7 held-out rows."""


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", type=Path, default=HERE / "targets.toml")
    parser.add_argument("--calibration", action="store_true",
                        help="the calibration rows on calibration_network_seeds only")
    parser.add_argument("--rows", default="", help="comma-separated row names (default: all of the set)")
    parser.add_argument("--small", action="store_true", help="a smoke run, not the pre-registered design")
    parser.add_argument("--n-neurons", type=int, default=coupling.RunConfig().patch.n_neurons,
                        help="neurons in the patch (20 to 100000; default: tmsim run's)")
    parser.add_argument("--workers", type=int, default=None,
                        help="local Dask workers (default: one per core)")
    parser.add_argument("--scheduler", default=None,
                        help="address or scheduler file of a running Dask cluster")
    parser.add_argument("--out", type=Path, default=None, help="folder of the runs (resumable)")
    parser.add_argument("--results", type=Path, default=HERE / "results",
                        help="folder of the JSON and figure")
    args = parser.parse_args()
    stem = "after_effects" + ("_calibration" if args.calibration else "") + ("_small" if args.small else "")
    out = args.out or REPO / "results" / stem
    targets = load_targets(args.targets)
    design = targets.design
    values = dict(BASE, **{"patch.n_neurons": args.n_neurons})
    if args.small:
        seeds = "calibration_network_seeds" if args.calibration else "network_seeds"
        design = replace(design, noise_seeds=design.noise_seeds[:SMALL["noise_seeds"]],
                         **{seeds: getattr(design, seeds)[:SMALL["network_seeds"]]}, **SMALL["design"])
        values.update(SMALL["base"])
    base = coupling.RunConfig().with_values(values, "validation/after_effects.py")
    rows = [r.strip() for r in args.rows.split(",") if r.strip()] or None
    pre_registered = not args.small and rows is None

    start = time.perf_counter()
    results = coupling.run_targets(targets, base, out, calibration=args.calibration, rows=rows, design=design,
                                   workers=args.workers, scheduler=args.scheduler)
    wall_s = time.perf_counter() - start
    report = dict(
        pre_registered=pre_registered,
        note=("the pre-registered design" if pre_registered else
              "NOT the pre-registered run: " + ("--small sizes; " if args.small else "")
              + ("rows chosen with --rows" if rows else "")).rstrip("; "),
        targets=dict(path=str(args.targets), sha256=hashlib.sha256(args.targets.read_bytes()).hexdigest(),
                     last_commit=_git("log", "-1", "--format=%H", "--", str(args.targets))),
        environment=environment(["numpy", "dask", "distributed"], ("coupling", "neurons", "efield")),
        calibration=args.calibration, design=json_ready(asdict(design)), base_config=base.to_dict(),
        rmt_seed=coupling.RMT_SEED, runs_folder=str(out), wall_s=wall_s,
        runs=dict(rmt=_runs(out / "rmt"), sessions=_runs(out / "sessions")),
        rows={name: _row(r) for name, r in results.items()})
    report["verdict"] = _verdict(results, targets, complete=pre_registered and not args.calibration)
    args.results.mkdir(parents=True, exist_ok=True)
    path = write_json(args.results / f"{stem}.json", json_ready(report))
    plot(results, args.results / f"{stem}.png", report["note"])
    print("\n| row | role | model | 95 % CI | human | band | passes |\n" + "| --- " * 7 + "|")
    for name, r in results.items():
        t, v = r.target, r.result
        human = "" if t.human_change_pct is None else f"{t.human_change_pct:+.1f}"
        print(f"| {name} | {t.role} | {v.value:+.1f} | [{v.ci[0]:+.1f}, {v.ci[1]:+.1f}] | {human} | "
              f"[{t.band_pct[0]:+g}, {t.band_pct[1]:+g}] | {'yes' if v.passed else 'MISS'} |")
    print(f"{report['note']}; {wall_s:.0f} s; wrote {path}")


def _git(*command) -> str | None:
    done = subprocess.run(["git", "-C", str(REPO), *command], capture_output=True, text=True, check=False)
    return done.stdout.strip() or None


def _runs(folder: Path) -> dict:
    """Runs and their mean wall time (s) in a sweep folder."""
    from coupling.sweep import read_table

    table = read_table(folder)
    return dict(n=len(table), mean_wall_s=float(table["wall_s"].mean()),
                total_wall_s=float(table["wall_s"].sum()))


def _row(r) -> dict:
    t, v = r.target, r.result
    return dict(role=t.role, protocol=t.protocol, pulses=t.pulses, frequency_hz=t.frequency_hz,
                percent_rmt=t.percent_rmt, scenario=t.scenario, statistic=t.statistic,
                window_min=t.window_min,
                compare_to=t.compare_to, human_change_pct=t.human_change_pct, band_pct=t.band_pct,
                source=t.source, value=v.value, ci=v.ci, passed=v.passed,
                changes_pct=r.changes.tolist(), after_effect=r.effect.to_dict())


def _verdict(results: dict, targets, complete: bool) -> dict:
    """Rows passed by role; the validation's verdict under the pass rule only when every row
    ran on the pre-registered design (else None)."""
    passed = {role: [n for n, r in results.items() if r.target.role == role and r.result.passed]
              for role in ("calibration", "held_out")}
    verdict = None
    if complete:
        verdict = (len(passed["calibration"]) == len(targets.by_role("calibration"))
                   and len(passed["held_out"]) >= HELD_OUT_ROWS_TO_PASS)
    return dict(passed=passed, validation_passed=verdict,
                rule=f"{CALIBRATION_ROWS_TO_PASS} calibration rows and at least {HELD_OUT_ROWS_TO_PASS} "
                     "held-out rows")


def json_ready(value):
    """JSON-ready: tuples as lists, NaN and infinities as None."""
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def plot(results: dict, path: Path, note: str):
    """Per row: the human band (shaded) and mean (black bar), the model's value with its CI
    (circle: calibration, square: held out; red: a miss)."""
    fig = figure(path, figsize=(8, 0.55 * len(results) + 1.8))
    ax = fig.subplots()
    for y, (name, r) in enumerate(reversed(list(results.items()))):
        t, v = r.target, r.result
        ax.fill_betweenx([y - 0.35, y + 0.35], *t.band_pct, color="0.85", linewidth=0)
        if t.human_change_pct is not None:
            ax.plot([t.human_change_pct] * 2, [y - 0.35, y + 0.35], color="k", linewidth=2)
        low, high = (v.value if math.isnan(c) else c for c in v.ci)
        colour = "C0" if v.passed else "C3"
        marker = "o" if t.role == "calibration" else "s"
        ax.errorbar(v.value, y, xerr=[[v.value - low], [high - v.value]], fmt=marker, color=colour, capsize=3)
        if not v.passed:
            ax.annotate("miss", (v.value, y), xytext=(6, 6), textcoords="offset points", color=colour,
                        fontsize=8)
    labels = [f"{n} ({r.target.role.replace('_', '-')})"
              + (f", % vs {r.target.compare_to}" if r.target.compare_to else "")
              for n, r in reversed(list(results.items()))]
    ax.set_yticks(range(len(results)), labels, fontsize=8)
    ax.axvline(0, color="0.5", linewidth=0.6)
    ax.set(xlabel="MEP change against sham (percentage points; % for compare_to rows)",
           title=f"after-effects: model (circle calibration, square held out; red: miss), human band\n{note}")
    ax.title.set_fontsize(9)
    fig.tight_layout()
    save_figure(fig, path)


if __name__ == "__main__":
    main()
