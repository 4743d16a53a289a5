"""The `tmsim` command line."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

from .config import CoilConfig, HeadConfig

HEAD, COIL = HeadConfig(), CoilConfig()
"""The defaults of `tmsim efield` and `tmsim target`: those of a run configuration."""
BUILTIN_COILS = ("fig8-70", "circular")
"""efield.coil.BUILTIN_COILS, for the help texts (not imported, for the same reason)."""


def main(argv=None) -> int:
    """Run the command in argv (default sys.argv[1:]); returns the exit code: 0, 2 for bad
    input (argparse's code too: its errors and --help return instead of exiting), 130 on Ctrl-C."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:
        return stop.code
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return args.run(args)
    except (ValueError, TypeError, OSError) as err:
        print(f"tmsim {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        hint = _resume_hint(args) if args.command == "run" else ""
        print(f"tmsim {args.command}: interrupted{hint}", file=sys.stderr)
        return 130


def _resume_hint(args) -> str:
    """What an interrupted `tmsim run` left: a checkpoint to resume from, or none."""
    from .course import CHECKPOINT

    folder = Path(_config(args).output.folder or "results/run")
    if (folder / CHECKPOINT).is_file():
        return (f"; {folder / CHECKPOINT} holds the last finished session: rerun the same command to "
                "resume from it")
    return "; no session had finished, so there is nothing to resume"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tmsim", description=(
        "Simulate what a TMS protocol at a coil placement does to a brain."))
    sub = parser.add_subparsers(dest="command")
    ef = sub.add_parser("efield", help="E-field of one coil placement", description=(
        "Compute the E-field of a coil at one placement and write a results folder: "
        "efield.msh (E, magnE per element; v, D per node; opens in Gmsh and SimNIBS), "
        "efield.h5 (summary and fields), efield.png and summary.json."))
    _head_options(ef)
    ef.add_argument("--coil", default=COIL.name,
                    help=f"built-in coil ({', '.join(BUILTIN_COILS)}) or a .ccd/.tcd file "
                         f"(default {COIL.name}: Magstim 70 mm figure-8 model)")
    ef.add_argument("--centre", type=_xyz_or_label, metavar="X,Y,Z|LABEL",
                    help="point on or near the scalp under the coil centre, mm, or an EEG "
                         f"label such as C3 (default {COIL.centre}, as coil.centre of a run); on the "
                         "sphere, labels take MNE's spherical 10-05 positions")
    ef.add_argument("--handle", type=_xyz_or_label, metavar="X,Y,Z|LABEL",
                    help="point the coil handle points to, mm, or an EEG label (SimNIBS pos_ydir; "
                         f"default {COIL.handle} with the default centre, as coil.handle of a run; "
                         "posterior with any other centre)")
    ef.add_argument("--matsimnibs", type=Path, metavar="PATH",
                    help="4x4 coil pose (text or .npy) instead of --centre/--handle/--distance")
    _add_coil_drive_options(ef)
    ef.add_argument("--out", type=Path, default=Path("results/efield"), metavar="DIR",
                    help="results folder (default results/efield)")
    ef.add_argument("--quiet", action="store_true", help="no progress bar")
    ef.set_defaults(run=_run_efield)
    _target_parser(sub)
    se = sub.add_parser("session", help="one rTMS session on a cortical patch under the coil", description=(
        "Run one rTMS session from a TOML config (keys and defaults: README, 'Config reference'; "
        "without a file, the defaults): E-field, cortical patch, motor threshold, protocol, MEP proxy "
        "and weights after it. Writes efield.msh, spikes.h5, weights.h5, summary.json, session.png."))
    se.add_argument("config", nargs="?", type=Path, help="config file (.toml)")
    se.add_argument("--out", type=Path, metavar="DIR", help="results folder (overrides output.folder)")
    se.add_argument("--quiet", action="store_true", help="no progress bars")
    se.set_defaults(run=_run_session)
    ru = sub.add_parser("run", help="the main job: a treatment course on a cortical patch", description=(
        "Run an rTMS treatment course from a TOML config (keys and defaults: README, 'Config reference'; "
        "without a file, the built-in default: a short iTBS course on the depressed patch): head, "
        "E-field, cortical patch, motor threshold, every session spike by spike with the slow "
        "variables in between, checkpoints (an interrupted run resumes). Writes config.toml, "
        "efield.msh, efield.png, course.h5, last_session_spikes.h5, summary.json, course.png, "
        "raster.png."))
    ru.add_argument("config", nargs="?", type=Path, help="config file (.toml)")
    ru.add_argument("--out", type=Path, metavar="DIR", help="results folder (overrides output.folder)")
    ru.add_argument("--quiet", action="store_true", help="no progress bars")
    ru.set_defaults(run=_run_course)
    _sweep_parsers(sub)
    return parser


def _head_options(parser):
    """--head/--mesh, --max-edge and --conductivity, shared by `tmsim efield` and `tmsim target`."""
    head = parser.add_mutually_exclusive_group()
    head.add_argument("--head", choices=["sphere", "template"], default="sphere",
                      help="built-in head model: sphere (radii 80/85/90/95 mm, the default here; a "
                           "run's default is the template) or "
                           "template (five tissues from fsaverage; built on first use, then cached "
                           "in $TMSIM_CACHE_DIR or ~/.cache/tmsim)")
    head.add_argument("--mesh", type=Path, help="head mesh file (.msh, e.g. from SimNIBS charm)")
    parser.add_argument("--max-edge", type=_number(0, strict=True), metavar="MM",
                        help=f"resolution of the built-in head: largest tetrahedron edge, mm "
                             f"(default {HEAD.max_edge_mm:g}, as head.max_edge_mm of a run)")
    parser.add_argument("--conductivity", type=_conductivity, action="append", default=[],
                        metavar="TAG=S_PER_M",
                        help="conductivity of a tissue tag, S/m, overriding SimNIBS's default or adding "
                             "a tag the defaults lack; repeatable (e.g. --conductivity 6=0.5)")


def _target_parser(sub):
    ta = sub.add_parser("target", help="best coil placement for a target region", description=(
        "Score coil placements on a grid of scalp centres and handle angles for the mean field in "
        "a target region, by reciprocity (no FEM solve per placement), refine the best by gradient "
        "ascent and check it with one FEM solve. Writes best_matsimnibs.txt, score_map.csv, "
        "summary.json and score_map.png."))
    _head_options(ta)
    ta.add_argument("--coil", default=COIL.name,
                    help=f"built-in coil ({', '.join(BUILTIN_COILS)}) or a .ccd/.tcd file")
    ta.add_argument("--target", type=_xyz_or_label, required=True, metavar="X,Y,Z|LABEL",
                    help="centre of the target region, mm, or an EEG label (then the target is the "
                         "point of the target tissue closest to that electrode)")
    ta.add_argument("--radius", type=_number(0, strict=True), default=10.0, metavar="MM",
                    help="radius of the target region, mm (default 10)")
    ta.add_argument("--tissues", type=_tags, default=(2,), metavar="TAG[,TAG]",
                    help="tissue tags of the target region (default 2, grey matter)")
    ta.add_argument("--direction", default="magnitude", metavar="X,Y,Z|magnitude",
                    help="score the mean field along this direction (head coordinates), or "
                         "'magnitude' for |mean E| (default)")
    ta.add_argument("--search-radius", type=_number(0), default=20.0, metavar="MM",
                    help="candidate centres within this distance of the scalp point over the "
                         "target, mm (default 20)")
    ta.add_argument("--spacing", type=_number(0, strict=True), default=5.0, metavar="MM",
                    help="spacing of the candidate centres, mm (default 5)")
    ta.add_argument("--angle-step", type=_number(0, 360, strict=True), default=30.0, metavar="DEG",
                    help="handle angle step, degrees (default 30)")
    _add_coil_drive_options(ta)
    ta.add_argument("--grid-spacing", type=_number(0, strict=True), default=4.0, metavar="MM",
                    help="spacing of the reciprocal-field grid, mm (default 4)")
    ta.add_argument("--refine-steps", type=_number(0, integer=True), default=40, metavar="N",
                    help="gradient-ascent steps from the best candidate (default 40; 0: none)")
    ta.add_argument("--out", type=Path, default=Path("results/target"), metavar="DIR",
                    help="results folder (default results/target)")
    ta.add_argument("--quiet", action="store_true", help="no progress output")
    ta.set_defaults(run=_run_target)


def _add_coil_drive_options(parser):
    """--distance, --didt and --backend, shared by `tmsim efield` and `tmsim target`."""
    parser.add_argument("--distance", type=_number(0), default=COIL.distance_mm, metavar="MM",
                        help=f"coil bottom to scalp, mm (default {COIL.distance_mm:g})")
    parser.add_argument("--didt", type=_number(0, strict=True), default=1e6, metavar="A_PER_S",
                        help="rate of change of the coil current, A/s (default 1e6 = 1 A/us)")
    parser.add_argument("--backend", choices=["auto", "scipy", "jax"], default="auto",
                        help="linear-solver backend (default: scipy on CPU, jax on GPU)")


def _number(low: float, high: float = math.inf, *, strict: bool = False, integer: bool = False):
    """An argparse type: a finite number (an integer with `integer`) from `low` (excluded with
    `strict`) to `high`; else the standard "argument --NAME: ..." error naming the range."""
    kind = "an integer" if integer else "a finite number"
    allowed = f"{'>' if strict else '>='} {low:g}" + ("" if high == math.inf else f" and <= {high:g}")

    def parse(text: str):
        try:
            value = int(text) if integer else float(text)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and (value > low if strict else value >= low) and value <= high):
            raise argparse.ArgumentTypeError(f"{text!r}: expected {kind} {allowed}")
        return value

    return parse


def _conductivity(text: str) -> tuple:
    """TAG=S_PER_M: a tissue tag (integer >= 1) and its conductivity (finite, > 0 S/m)."""
    tag, _, value = text.partition("=")
    try:
        pair = _number(1, integer=True)(tag), _number(0, strict=True)(value)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected TAG=S_PER_M, a tissue tag >= 1 and a "
                                         "finite conductivity > 0 in S/m, e.g. 6=0.5") from None
    return pair


def _tags(text: str) -> tuple:
    try:
        tags = tuple(_number(1, integer=True)(t) for t in text.split(","))
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected tissue tags (integers >= 1) such as "
                                         "2 or 1,2") from None
    return tags


def _direction(text: str):
    """None for 'magnitude', else a vector X,Y,Z."""
    if text.strip().lower() == "magnitude":
        return None
    try:
        return _xyz(text)
    except argparse.ArgumentTypeError as err:
        raise ValueError(f"--direction: {err}; or 'magnitude'") from None


def _run_target(args) -> int:
    import efield
    from efield.plot import plot_score_map

    direction = _direction(args.direction)
    coil = _coil(args.coil)
    mesh, description = _head(args)
    if args.mesh is None and args.head == "sphere" and isinstance(args.target, str):
        mesh = mesh.with_eeg_positions(efield.standard_positions(mesh, "spherical_1005"))
    target = efield.Target.at(mesh, args.target, args.radius, args.tissues, direction)
    conductivity = dict(args.conductivity)
    solver = efield.FieldSolver(mesh, conductivity, backend=args.backend)
    if not args.quiet:
        print(f"tmsim target: {description}, {mesh.n_tets} tets; scoring placements ...")
    result = efield.optimize_placement(
        mesh, coil, target, search_radius_mm=args.search_radius, spacing_mm=args.spacing,
        angle_step_deg=args.angle_step, distance_mm=args.distance, didt=args.didt, solver=solver,
        grid_spacing_mm=args.grid_spacing, refine_steps=args.refine_steps)
    args.out.mkdir(parents=True, exist_ok=True)
    _write_text(args.out / "best_matsimnibs.txt", _matrix_text(result.placement.matsimnibs))
    _write_text(args.out / "score_map.csv", _score_csv(result))
    summary = result.summary()
    summary.update(mesh=description, n_tets=mesh.n_tets, coil=coil.name, didt_A_per_s=args.didt,
                   conductivity_S_per_m=conductivity)
    _write_json(args.out / "summary.json", summary)
    plot_score_map(result, args.out / "score_map.png")
    direct = "" if result.direct_score is None else f" (FEM check {result.direct_score:.4g} V/m)"
    print(f"best score {result.score:.4g} V/m{direct} from {result.n_grid_evaluations} candidates "
          f"and {result.n_refine_evaluations} refinement steps; results in {args.out}/")
    return 0


def _matrix_text(matrix) -> str:
    return "\n".join(" ".join(f"{x:.10g}" for x in row) for row in matrix) + "\n"


def _score_csv(result) -> str:
    lines = ["u_mm,v_mm,x_mm,y_mm,z_mm,angle_deg,score_V_per_m"]
    for (u, v), c, row in zip(result.offsets_mm, result.centres_mm, result.scores):
        lines += [f"{u:g},{v:g},{c[0]:.4f},{c[1]:.4f},{c[2]:.4f},{a:g},{s:.6g}"
                  for a, s in zip(result.angles_deg, row)]
    return "\n".join(lines) + "\n"


def _write_text(path: Path, text: str):
    from tmsim_io import atomic_output

    with atomic_output(path) as tmp:
        tmp.write_text(text)


def _xyz(text: str) -> np.ndarray:
    try:
        values = np.array([float(v) for v in text.split(",")])
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected three numbers X,Y,Z in mm") from None
    if values.shape != (3,):
        raise argparse.ArgumentTypeError(f"{text!r}: expected three numbers X,Y,Z in mm")
    return values


def _xyz_or_label(text: str):
    """X,Y,Z in mm, or an EEG label (resolved on the head's positions later)."""
    if "," in text:
        return _xyz(text)
    label = text.strip()
    try:
        float(label)
    except ValueError:
        if label:
            return label
    raise argparse.ArgumentTypeError(f"{text!r}: expected X,Y,Z in mm or an EEG label such as F3")


def _run_efield(args) -> int:
    from tqdm.auto import tqdm

    import efield
    from efield.plot import plot_result

    steps = ["coil", "head", "placement", "solver set-up", "solve", "write"]
    with tqdm(total=len(steps), desc="tmsim efield", unit="step", disable=args.quiet) as bar:
        def step(i):
            bar.set_postfix_str(steps[i])

        step(0)
        coil = _coil(args.coil)
        bar.update()
        step(1)
        mesh, description = _head(args)
        bar.update()
        step(2)
        placement = _placement(args, mesh)
        bar.update()
        step(3)
        conductivity = dict(args.conductivity)
        solver = efield.FieldSolver(mesh, conductivity, backend=args.backend)
        bar.update()
        step(4)
        result = solver.solve(coil, [placement], didt=args.didt, progress=False)[0]
        bar.update()
        step(5)
        args.out.mkdir(parents=True, exist_ok=True)
        result.save(args.out / "efield.msh")
        result.save(args.out / "efield.h5")
        plot_result(result, args.out / "efield.png")
        summary = result.summary()
        summary.update(mesh=description, n_tets=mesh.n_tets, conductivity_S_per_m=conductivity,
                       cg_iterations=solver.iterations, timings_s=solver.timings)
        _write_json(args.out / "summary.json", summary)
        bar.update()
    print(f"peak |E| {summary['max']:.1f} V/m (99.9th percentile {summary['p99_9']:.1f} V/m) "
          f"at {np.round(summary['max_location_mm'], 1).tolist()} mm; results in {args.out}/")
    return 0


def _config(args, course: bool = True):
    """The RunConfig of args.config, with --out as output.folder."""
    from .config import load_config

    config = load_config(args.config, course=course)
    return config if args.out is None else config.with_values({"output.folder": str(args.out)}, "--out")


def _use_compile_cache():
    """JAX's persistent compilation cache in the jax folder of tmsim's cache
    (efield.template.cache_root), so that a run loads the programs an earlier run compiled;
    JAX_COMPILATION_CACHE_DIR names another folder and JAX_ENABLE_COMPILATION_CACHE=false turns
    it off. The folder can be deleted at any time."""
    from efield.template import cache_root

    from .sweep import use_compile_cache

    use_compile_cache(cache_root() / "jax")


def _run_session(args) -> int:
    from .pipeline import run_session_config

    _use_compile_cache()
    config = _config(args, course=False)
    summary = run_session_config(config, progress=not args.quiet).summary()
    after = ", ".join(f"+{k} min {v:.3f}" for k, v in summary["mep_after"].items())
    print(f"{summary['protocol']} ({summary['n_pulses']} pulses) at {summary['percent_mso']:.1f} % MSO: "
          f"MEP proxy {summary['mep_before']:.3f} before, {after}; results in "
          f"{config.output.folder or 'results/session'}/")
    return 0


def _run_course(args) -> int:
    from .pipeline import run_course_config

    _use_compile_cache()
    config = _config(args)
    summary = run_course_config(config, progress=not args.quiet).summary()
    weights = "; ".join(f"{p} {w['start']:.3f} -> {w.get('final', w.get('after_last_session')):.3f}"
                        for p, w in summary["mean_weights_nS"].items())
    print(f"{summary['n_sessions']} sessions of {summary['protocol']} at {summary['percent_mso']:.1f} % MSO: "
          f"MEP proxy x{summary['mep_change'].get('final', float('nan')):.2f}; mean weights (nS) {weights}; "
          f"results in {config.output.folder or 'results/run'}/")
    return 0


def _sweep_parsers(sub):
    """`tmsim sweep` and `tmsim report` (coupling.sweep, coupling.report)."""
    sw = sub.add_parser("sweep", help="an ensemble or parameter sweep of runs on Dask", description=(
        "Run every combination of the axes of a sweep file (a base configuration, lists of values of "
        "config keys, network_seeds and noise_seeds; README, 'Sweeps') on a Dask cluster: a local one of "
        "one single-threaded worker process per core by default. Writes DIR/runs/<run_id>/ per run, "
        "DIR/runs.parquet (one row per run) and DIR/sweep.toml; finished runs are skipped when it is "
        "rerun. Exits 1 if a run failed."))
    sw.add_argument("sweep", nargs="?", type=Path, help="sweep file (.toml)")
    sw.add_argument("--init", type=Path, metavar="FILE",
                    help="write a commented starter sweep to FILE and stop")
    sw.add_argument("--out", type=Path, metavar="DIR",
                    help="results folder (default results/<sweep file name>)")
    sw.add_argument("--scheduler", metavar="ADDRESS",
                    help="a running Dask scheduler (tcp://host:8786) or its scheduler file, instead of a "
                         "local cluster")
    sw.add_argument("--workers", type=_number(1, integer=True), metavar="N",
                    help="worker processes of the local cluster (default: one per core)")
    sw.add_argument("--quiet", action="store_true", help="no progress bar")
    sw.set_defaults(run=_run_sweep)
    rp = sub.add_parser("report", help="means, 95 %% CIs and effects against a control of a sweep",
                        description=(
        "Group the finished runs of a sweep folder by condition (the axis values other than the seeds): "
        "mean and 95 %% percentile-bootstrap interval over the seeds, and the effect against a control "
        "condition paired by seed. Writes DIR/report.csv, DIR/report.md and DIR/report.png."))
    rp.add_argument("folder", type=Path, metavar="DIR", help="sweep folder (with runs.parquet)")
    rp.add_argument("--control", metavar="KEY=VALUE[,KEY=VALUE]",
                    help="control condition, e.g. protocol.name=sham-itbs (default: [report] control "
                         "of the sweep)")
    rp.add_argument("--metrics", nargs="+", metavar="COLUMN",
                    help="columns to report (default: [report] metrics of the sweep, else every number)")
    rp.add_argument("--resamples", type=_number(100, integer=True), default=10_000, metavar="N",
                    help="bootstrap resamples (default 10000)")
    rp.add_argument("--seed", type=_number(0, integer=True), default=0,
                    help="seed of the resampling (default 0)")
    rp.set_defaults(run=_run_report)


def _run_sweep(args) -> int:
    from .sweep import run_sweep, write_starter

    if args.init is not None:
        write_starter(args.init)
        print(f"wrote {args.init}: edit it, then run tmsim sweep {args.init}")
        return 0
    if args.sweep is None:
        raise ValueError("give a sweep file, or --init FILE to write a starter")
    log = lambda text: print(text, file=sys.stderr)
    table = run_sweep(args.sweep, args.out, scheduler=args.scheduler, workers=args.workers,
                      progress=not args.quiet, log=log)
    out = args.out or Path("results") / args.sweep.stem
    done = int((table["status"] == "done").sum())
    print(f"{done} of {len(table)} runs done; table in {out / 'runs.parquet'}; statistics: "
          f"tmsim report {out}")
    return 0 if done == len(table) else 1


def _run_report(args) -> int:
    from .report import markdown, report

    result = report(args.folder, control=args.control, metrics=args.metrics, n_resamples=args.resamples,
                    seed=args.seed)
    print(markdown(result))
    print(f"written: {args.folder / 'report.csv'}, report.md, report.png")
    return 0


def _coil(spec: str):
    from efield.coil import load_coil

    try:
        return load_coil(spec)
    except (ValueError, OSError) as err:
        raise ValueError(f"--coil {spec!r}: {err}") from None


def _placement(args, mesh):
    import efield

    if args.matsimnibs is not None:
        path = args.matsimnibs
        matrix = np.load(path) if path.suffix == ".npy" else np.loadtxt(path, delimiter=_delimiter(path))
        return efield.Placement(matrix)
    if args.centre is None and args.mesh is not None:
        raise ValueError("--centre (or --matsimnibs) is required with --mesh")
    centre = _resolve(mesh, COIL.centre if args.centre is None else args.centre, "--centre")
    handle = (COIL.handle or None) if args.centre is None and args.handle is None else args.handle
    return efield.Placement.on_scalp(mesh, centre, _resolve(mesh, handle, "--handle"),
                                     distance_mm=args.distance)


def _resolve(mesh, value, option: str):
    """An EEG label's position on the mesh (mm); coordinates and None as they are."""
    if not isinstance(value, str):
        return value
    try:
        return mesh.eeg_position(value)
    except ValueError as err:
        raise ValueError(f"{option}: {err}") from None


def _head(args):
    """The head mesh and its description: a file (--mesh) or a built-in head at --max-edge, built
    as a run builds it (coupling.prepare.build_head)."""
    import efield
    from efield.heads import check_head_size

    from .prepare import build_head

    if args.mesh is not None:
        return efield.read_msh(args.mesh), str(args.mesh)
    max_edge = HEAD.max_edge_mm if args.max_edge is None else args.max_edge
    check_head_size(args.head, max_edge, "--max-edge")
    mesh = build_head(HeadConfig(args.head, max_edge), progress=not args.quiet)
    return mesh, f"{args.head}, max edge {max_edge:g} mm"


def _delimiter(path: Path):
    return "," if "," in path.read_text() else None


def _write_json(path: Path, data: dict):
    from tmsim_io import write_json

    write_json(path, data, default=float)


if __name__ == "__main__":
    sys.exit(main())
