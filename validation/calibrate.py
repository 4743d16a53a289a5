"""The calibration of validation/targets.toml ([calibration]): the pre-registered search over the
free parameters on the calibration rows only, then one confirmation on the whole calibration set.

A screening evaluation runs the calibration rows (each protocol and its sham, paired by seed)
with coupling.run_targets on screening_network_seeds x screening_noise_seeds, the free
parameters set as config keys over the base configuration of validation/after_effects.py
(tmsim run's default patch), and scores each row's value with the loss
sum(((model - human) / LOSS_SCALE_PCT)^2). Points are exponents k per parameter, the value
start x 2^k; `next_batch` replays the search of the targets file's `method` over the losses
found so far and gives the points to evaluate next (none when it is over or the budget is
spent). The held-out rows never run here.

    python validation/calibrate.py                      # the search (about 45 min per evaluation)
    python validation/calibrate.py --max-evaluations 2  # stop after 2 evaluations; rerun to go on
    python validation/calibrate.py --confirm            # the best point on the whole calibration set
    python validation/calibrate.py --small --out /tmp/cal --results /tmp/cal   # smoke run:
                                                          NOT the pre-registered design

Runs go to --out (default results/calibration[_small]), one folder per point, and resume: a
rerun skips every finished run, so a killed search goes on where it stopped (it reads the
evaluations so far from the JSON: after a model change, delete the JSON and the runs). Writes
calibration[_small].json and .png to --results (default validation/results): every
evaluation in order (parameters, row values with their 95 % CIs, loss), the best point, the
next batch or that the search is over, and with --confirm the confirmation and the SHA-256 of
the parameter set that frozen_parameters_sha256 then records.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from matplotlib.ticker import NullLocator

import coupling
from coupling.targets import load_targets
from tmsim_io import figure, save_figure, write_json

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(HERE))  # before benchmarks/, which has an after_effects.py of its own
from after_effects import BASE, SMALL, json_ready  # noqa: E402
from machine import environment  # noqa: E402

LOSS_SCALE_PCT = 15.0
"""The loss's scale (validation/targets.toml, calibration.loss): percentage points."""
DIRECTIONS = ((1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (1, -1), (-1, 1), (-1, -1))
"""The order in which a sweep visits the neighbours of the best point (targets file, method)."""


def next_batch(losses: dict, inside, budget: int) -> list:
    """The points the pre-registered search evaluates next, given `losses` ({exponents tuple:
    loss} of every point evaluated so far); inside(exponents) says whether a point lies in the
    ranges. The start (0, 0) first; then sweeps of step 1 around the best point (in
    DIRECTIONS order, the points not yet evaluated), again around a better point a sweep
    found, then one sweep of step 1/2 (factors sqrt 2). [] when the search is over or the
    budget (evaluations) is spent."""
    left = budget - len(losses)
    if left <= 0:
        return []
    origin = (0.0, 0.0)
    if origin not in losses:
        return [origin]
    best, step = origin, 1.0
    while True:
        sweep = [p for p in ((best[0] + step * a, best[1] + step * b) for a, b in DIRECTIONS) if inside(p)]
        todo = [p for p in sweep if p not in losses]
        if todo:
            return todo[:left]
        lower = min(sweep, key=lambda p: losses[p], default=best)
        if step == 1.0 and losses[lower] < losses[best]:
            best = lower
        elif step == 1.0:
            step = 0.5
        else:
            return []


def best_point(evaluations: list) -> dict:
    """The evaluation with the lowest loss (the first of equals; a missing or NaN loss counts
    as infinite)."""
    return min(evaluations, key=lambda e: _loss(e))


def _loss(evaluation: dict) -> float:
    loss = evaluation.get("loss")
    return math.inf if loss is None or math.isnan(loss) else float(loss)


def resumable(evaluations: list, inside, budget: int, setup: dict, recorded: dict) -> str | None:
    """Why the evaluations read back cannot resume this search (None: they can): each must
    have run with this setup ({key: value}: targets file hash, start, seeds, base
    configuration; an evaluation without its own record of a key takes `recorded`, the
    report's) and be, in order, the point the search proposes after the ones before it."""
    losses = {}
    for i, e in enumerate(evaluations):
        for key, value in setup.items():
            if e.get(key, recorded.get(key)) != value:
                return f"evaluation {i + 1} ran with another {key} ({e.get(key)!r}, now {value!r})"
        proposed = next_batch(losses, inside, budget)
        if not proposed or tuple(e["exponents"]) != proposed[0]:
            return (f"evaluation {i + 1} is at exponents {e['exponents']}, where the search proposes "
                    f"{list(proposed[0]) if proposed else 'nothing'}")
        losses[tuple(e["exponents"])] = _loss(e)
    return None


def parameter_values(calibration, exponents) -> dict:
    """{free parameter: start x 2^k} of a point."""
    return {name: calibration.start[name] * 2.0**k for name, k in zip(calibration.free_parameters, exponents)}


def within_ranges(calibration):
    """inside(exponents): whether every parameter of the point lies in its range."""

    def inside(exponents) -> bool:
        values = parameter_values(calibration, exponents)
        return all(
            low * (1 - 1e-9) <= values[n] <= high * (1 + 1e-9)
            for n, (low, high) in calibration.ranges.items()
        )

    return inside


def evaluate(targets, base, design, exponents, out: Path, **keywords) -> dict:
    """One evaluation: the calibration rows at the point `exponents` on design's calibration
    seeds and noise seeds (coupling.run_targets, keywords go there), scored with the loss."""
    values = parameter_values(targets.calibration, exponents)
    label = "_".join(f"{name.split('.')[-1]}={value:.6g}" for name, value in values.items())
    commit, dirty = _git("rev-parse", "HEAD"), bool(_git("status", "--porcelain", "--untracked-files=no"))
    start = time.perf_counter()
    results = coupling.run_targets(
        targets,
        base.with_values(values, "validation/calibrate.py"),
        out / label,
        calibration=True,
        design=design,
        **keywords,
    )
    rows = {
        name: dict(
            value=r.result.value,
            ci=list(r.result.ci),
            human_change_pct=r.target.human_change_pct,
            band_pct=list(r.target.band_pct),
            passed=r.result.passed,
            per_network_seed=r.changes.mean(axis=1).tolist(),
        )
        for name, r in results.items()
    }
    loss = sum(((row["value"] - row["human_change_pct"]) / LOSS_SCALE_PCT) ** 2 for row in rows.values())
    return dict(
        exponents=list(exponents),
        parameters=values,
        runs=str(out / label),
        loss=float(loss),
        rows=rows,
        network_seeds=list(design.calibration_network_seeds),
        noise_seeds=list(design.noise_seeds),
        wall_s=time.perf_counter() - start,
        commit=commit,
        dirty=dirty,
    )


def parameters_sha256(parameters: dict) -> str:
    """SHA-256 of a parameter set as sorted JSON (calibration.frozen_parameters_sha256)."""
    return hashlib.sha256(json.dumps(parameters, sort_keys=True).encode()).hexdigest()


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--targets", type=Path, default=HERE / "targets.toml")
    parser.add_argument(
        "--max-evaluations",
        type=int,
        default=None,
        help="stop after this many evaluations in this call (default: run the search out)",
    )
    parser.add_argument(
        "--confirm",
        action="store_true",
        help="after the search, measure its best point on the whole calibration set",
    )
    parser.add_argument("--small", action="store_true", help="a smoke run, not the pre-registered design")
    parser.add_argument(
        "--workers", type=int, default=None, help="local Dask workers (default: one per core)"
    )
    parser.add_argument(
        "--scheduler", default=None, help="address or scheduler file of a running Dask cluster"
    )
    parser.add_argument("--out", type=Path, default=None, help="folder of the runs (resumable)")
    parser.add_argument(
        "--results", type=Path, default=HERE / "results", help="folder of the JSON and figure"
    )
    args = parser.parse_args()
    if args.max_evaluations is not None and args.max_evaluations < 1:
        parser.error(f"--max-evaluations: expected an integer >= 1, got {args.max_evaluations}")
    targets = load_targets(args.targets)
    calibration, design = targets.calibration, targets.design
    if len(calibration.free_parameters) != len(DIRECTIONS[0]):
        sys.exit(
            f"{args.targets}: calibration.free_parameters: the search is for two parameters, got "
            f"{list(calibration.free_parameters)}"
        )
    screening = replace(
        design,
        calibration_network_seeds=calibration.screening_network_seeds,
        noise_seeds=calibration.screening_noise_seeds,
    )
    values = dict(BASE)
    if args.small:
        design = replace(
            design,
            calibration_network_seeds=design.calibration_network_seeds[: SMALL["network_seeds"]],
            noise_seeds=design.noise_seeds[: SMALL["noise_seeds"]],
            **SMALL["design"],
        )
        screening = replace(
            screening,
            calibration_network_seeds=screening.calibration_network_seeds[:2],
            noise_seeds=screening.noise_seeds[:1],
            **SMALL["design"],
        )
        values.update(SMALL["base"])
    base = coupling.RunConfig().with_values(values, "validation/calibrate.py")
    for name in calibration.free_parameters:  # config keys, checked before any run
        base.with_values({name: calibration.start[name]}, f"{args.targets}: calibration.start")
    stem = "calibration" + ("_small" if args.small else "")
    out = args.out or REPO / "results" / stem
    path = args.results / f"{stem}.json"
    previous = json.loads(path.read_text()) if path.is_file() else {}
    evaluations = previous.get("evaluations", [])
    inside, done = within_ranges(calibration), 0
    setup = json_ready(dict(targets_sha256=hashlib.sha256(args.targets.read_bytes()).hexdigest(),
                            start=calibration.start, base_config=base.to_dict(),
                            network_seeds=list(screening.calibration_network_seeds),
                            noise_seeds=list(screening.noise_seeds)))
    recorded = dict(targets_sha256=previous.get("targets", {}).get("sha256"), start=previous.get("start"),
                    base_config=previous.get("base_config"))
    reason = resumable(evaluations, inside, calibration.budget, setup, recorded)
    if reason:
        sys.exit(f"{path}: {reason}: its evaluations belong to another search; move it (and the runs in "
                 f"{out}) away to start afresh")
    # one compilation cache for every point: the rule's rates reach the compiled programs as
    # arrays, so the points share them
    keywords = dict(workers=args.workers, scheduler=args.scheduler, compile_cache=out / ".jax_cache")

    def save(extra: dict):
        losses = {tuple(e["exponents"]): _loss(e) for e in evaluations}
        batch = next_batch(losses, inside, calibration.budget)
        report = dict(
            pre_registered=not args.small,
            note="the pre-registered search"
            if not args.small
            else "NOT the pre-registered design: --small sizes",
            targets=dict(
                path=str(args.targets),
                sha256=hashlib.sha256(args.targets.read_bytes()).hexdigest(),
                last_commit=_git("log", "-1", "--format=%H", "--", str(args.targets)),
            ),
            environment=environment(["numpy", "dask", "distributed"], ("coupling", "neurons", "efield")),
            free_parameters=list(calibration.free_parameters),
            start=calibration.start,
            budget=calibration.budget,
            base_config=base.to_dict(),
            runs_folder=str(out),
            evaluations=evaluations,
            best=best_point(evaluations) if evaluations else None,
            search_over=not batch,
            next_batch=[parameter_values(calibration, p) for p in batch],
            **extra,
        )
        args.results.mkdir(parents=True, exist_ok=True)
        write_json(path, json_ready(report))
        plot(report, path.with_suffix(".png"))
        return batch

    batch = save({})
    while batch and (args.max_evaluations is None or done < args.max_evaluations):
        point = batch[0]
        print(f"evaluation {len(evaluations) + 1}: {parameter_values(calibration, point)}", flush=True)
        evaluations.append(dict(evaluate(targets, base, screening, point, out, **keywords), **setup))
        evaluation = evaluations[-1]
        done += 1
        print(
            f"  loss {evaluation['loss']:.3f}: "
            + ", ".join(
                f"{n} {r['value']:+.1f} (human {r['human_change_pct']:+.1f})"
                for n, r in evaluation["rows"].items()
            ),
            flush=True,
        )
        batch = save({})
    if batch:
        print(f"stopped with {len(batch)} point(s) of the current sweep to go; rerun to go on; wrote {path}")
        return
    best = best_point(evaluations)
    print(f"search over after {len(evaluations)} evaluations: best {best['parameters']} "
          f"(loss {best['loss']:.3f})")
    if args.confirm:
        confirmation = evaluate(targets, base, design, tuple(best["exponents"]), out / "confirm", **keywords)
        save(dict(confirmation=confirmation, frozen_parameters_sha256=parameters_sha256(best["parameters"])))
        print(
            f"confirmation on the calibration set: loss {confirmation['loss']:.3f}; parameters "
            f"{best['parameters']}, sha256 {parameters_sha256(best['parameters'])}"
        )
    print(f"wrote {path}")


def _git(*command) -> str | None:
    done = subprocess.run(["git", "-C", str(REPO), *command], capture_output=True, text=True, check=False)
    return done.stdout.strip() or None


def plot(report: dict, path: Path):
    """Left: the evaluated points on the log2 mesh of the two parameters, coloured by loss (the
    best ringed). Right: each calibration row's value (with its 95 % CI) per evaluation beside
    its human band."""
    evaluations = report["evaluations"]
    fig = figure(path, figsize=(11, 4.2))
    left, right = fig.subplots(1, 2)
    names = report["free_parameters"]
    if evaluations:
        x, y = (np.array([e["parameters"][n] for e in evaluations]) for n in names)
        loss = np.array([e["loss"] for e in evaluations])
        dots = left.scatter(x, y, c=np.log10(loss), cmap="viridis_r", s=60)
        fig.colorbar(dots, ax=left, label="log10 loss")
        for i, e in enumerate(evaluations):
            left.annotate(str(i + 1), (x[i], y[i]), xytext=(4, 4), textcoords="offset points", fontsize=7)
        best = report["best"]["parameters"]
        left.scatter([best[names[0]]], [best[names[1]]], s=180, facecolors="none", edgecolors="C3")
        for r, (name, row) in enumerate(evaluations[0]["rows"].items()):
            values = np.array([e["rows"][name]["value"] for e in evaluations])
            ci = np.array([[np.nan if c is None else c for c in e["rows"][name]["ci"]] for e in evaluations])
            low, high = row["band_pct"]
            right.axhspan(low, high, color=f"C{r}", alpha=0.12, linewidth=0)
            right.errorbar(
                np.arange(1, len(values) + 1),
                values,
                yerr=np.abs(ci - values[:, None]).T,
                fmt="o-",
                color=f"C{r}",
                capsize=2,
                label=name,
            )
    left.set(
        xscale="log",
        yscale="log",
        xlabel=names[0],
        ylabel=names[1],
        title=f"screening evaluations ({len(evaluations)} of {report['budget']})",
    )
    if evaluations:  # ticks at the evaluated mesh values (the log axes' own labels overlap)
        for axis, values in ((left.xaxis, x), (left.yaxis, y)):
            axis.set_ticks(np.unique(values), [f"{v:g}" for v in np.unique(values)])
            axis.set_minor_locator(NullLocator())
    right.axhline(0, color="0.5", linewidth=0.6)
    right.set(
        xlabel="evaluation",
        ylabel="MEP change against sham, percentage points",
        title="calibration rows (shaded: human bands)",
    )
    if evaluations:
        right.set_xticks(range(1, len(evaluations) + 1))
        right.legend(fontsize=8)
    fig.suptitle(report["note"], fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


if __name__ == "__main__":
    main()
