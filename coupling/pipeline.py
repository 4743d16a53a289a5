"""From a run configuration to a results folder: head, coil, placement, patch, session.

Everything that can be checked is checked before any work and before the results folder is
made (check_config, the coil file, the head file, the folder and, for a course, whether its
checkpoint belongs to this configuration); the folder and its config.toml appear only once the
head, field, patch and motor threshold are in hand, so a run that fails early leaves nothing.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import numpy as np

SESSION_SPHERE_RADII_MM = (80.0, 85.0, 90.0, 95.0)
"""Sphere head of the coupling stage: grey matter (r < 80 mm), CSF, bone, scalp; it carries
MNE's spherical 10-05 positions (radius 95 mm, +y anterior), so labels such as F3 work."""
CONFIG = "config.toml"


def build_head(config: dict):
    """The head mesh of config["head"]."""
    import efield

    model, edge = config["head"]["model"], config["head"]["max_edge_mm"]
    if model == "sphere":
        head = efield.sphere_head(radii_mm=SESSION_SPHERE_RADII_MM, max_edge_mm=edge)
        return head.with_eeg_positions(efield.standard_positions(head, "spherical_1005"))
    if model == "template":
        return efield.template_head(max_edge_mm=edge)
    path = _head_path(config)
    return efield.load_subject(path) if path.is_dir() else efield.read_msh(path)


def _head_path(config: dict) -> Path:
    """The head file or m2m folder of config["head"]["model"]; ConfigError if there is none."""
    from .config import ConfigError

    model = config["head"]["model"]
    path = Path(model)
    if not (path.is_dir() or (path.suffix == ".msh" and path.is_file())):
        raise ConfigError(f"head.model = {model!r}: expected \"sphere\", \"template\", an existing .msh file "
                          "or m2m folder")
    return path


def build_coil(config: dict):
    """The efield.Coil of config["coil"]["name"] (with its maximum dI/dt); ConfigError naming
    coil.name if it is unknown, unreadable or has no maximum dI/dt."""
    from efield.coil import load_coil

    from .config import ConfigError

    spec = config["coil"]["name"]
    try:
        coil = load_coil(spec)
    except (ValueError, OSError) as err:
        raise ConfigError(f"coil.name = {spec!r}: {err}") from None
    if coil.didt_max is None:
        raise ConfigError(f"coil.name = {spec!r}: the coil has no maximum dI/dt: intensities need one")
    return coil


def _point(value):
    return value if isinstance(value, str) else np.asarray(value, np.float64)


def build_placement(config: dict, mesh):
    import efield

    coil = config["coil"]
    handle = coil["handle"] or None
    return efield.Placement.on_scalp(mesh, _point(coil["centre"]), None if handle is None else _point(handle),
                                     distance_mm=coil["distance_mm"])


class _Stages:
    """A progress bar over named stages."""

    def __init__(self, names, desc: str, progress: bool):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=len(names), desc=desc, unit="stage", disable=not progress)
        self.started = False

    def __call__(self, name: str):
        if self.started:
            self.bar.update()
        self.started = True
        self.bar.set_postfix_str(name)

    def close(self):
        self.bar.update()
        self.bar.close()


def _prepare(config: dict, default: str, course: bool):
    """Check `config` before any work (check_config, coil, head file, results folder; for a
    course, that the folder's checkpoint was written for this configuration), then remove the
    folder's stale temporaries: (results folder, Protocol, Coil)."""
    from .config import check_config, protocol

    check_config(config, course=course)
    out = Path(config["output"]["folder"] or default)
    _check_folder(out)
    if course:
        _check_resume(out, config)
    coil = build_coil(config)
    if config["head"]["model"] not in ("sphere", "template"):
        _head_path(config)
    from tmsim_io import remove_stale_temporaries

    remove_stale_temporaries(out)
    return out, protocol(config), coil


def _check_folder(out: Path):
    """ConfigError naming output.folder if `out` is not a folder that can be made or written."""
    from .config import ConfigError

    base = next(p for p in (out, *out.absolute().parents) if p.exists())
    if not base.is_dir() or not os.access(base, os.W_OK | os.X_OK):
        raise ConfigError(f"output.folder = {str(out)!r}: {base} is not a folder this process can write in")


def _check_resume(out: Path, config: dict):
    """ConfigError if `out` holds a course checkpoint of another configuration (its config.toml
    differs, [output] aside) or one without config.toml; ValueError if the checkpoint cannot be
    read. The folder is left as it is."""
    from .config import ConfigError, dump_config
    from .course import CHECKPOINT, check_resumable

    if not (out / CHECKPOINT).exists():
        return
    afresh = f"use another output.folder, or move {out / CHECKPOINT} away to start afresh"
    try:
        saved = tomllib.loads((out / CONFIG).read_text())
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise ConfigError(f"{out} holds a course checkpoint but no readable {CONFIG} ({err}): it cannot be "
                          f"told which run it continues; {afresh}") from None
    wanted = tomllib.loads(dump_config(config))
    differ = sorted(f"{table}.{key}" for table in wanted.keys() - {"output"}
                    for key in wanted[table].keys() | saved.get(table, {}).keys()
                    if wanted[table].get(key) != saved.get(table, {}).get(key))
    if differ:
        raise ConfigError(f"{out} holds a course of another configuration (it differs in "
                          f"{', '.join(differ)}); {afresh}")
    check_resumable(out)


def _setup(config: dict, coil, stage):
    """Head, placement, patch, FEM solve, field at the neurons and the intensity:
    (mesh, fem result, patch, field, percent_mso, test_percent_mso, rmt_percent_mso or None)."""
    import efield

    from .config import intensity
    from .patch import cortical_patch
    from .scenario import scenario_model
    from .session import motor_threshold
    from .stimulus import neuron_field

    levels = (intensity(config), intensity(config, "test_intensity"))
    stage("head")
    mesh = build_head(config)
    placement = build_placement(config, mesh)
    stage("patch")
    patch_cfg, session = config["patch"], config["session"]
    patch = cortical_patch(mesh, _point(config["coil"]["centre"]), radius_mm=patch_cfg["radius_mm"],
                           n_neurons=patch_cfg["n_neurons"], seed=patch_cfg["seed"],
                           model=scenario_model(patch_cfg["scenario"]))
    stage("E-field")
    fem = efield.simulate(mesh, coil, placement, didt=coil.didt_max)
    field = neuron_field(mesh, fem, patch, coil.didt_max)
    stage("motor threshold")
    rmt = None
    if any(unit == "rmt" for _, unit in levels):
        rmt = motor_threshold(patch, field, dt_ms=session["dt_ms"], seed=session["seed"])
    percent = [value if unit == "mso" else min(100.0, value / 100.0 * rmt) for value, unit in levels]
    return mesh, fem, patch, field, *percent, rmt


def _write_config(out: Path, config: dict):
    """Make the results folder and write config.toml (the configuration it runs) into it."""
    from tmsim_io import atomic_output

    from .config import dump_config

    with atomic_output(out / CONFIG) as tmp:
        tmp.write_text(dump_config(config))


def run_session_config(config: dict, progress: bool = True):
    """Run the session of `config` (coupling.config.load_config) and write its folder:
    config.toml (the configuration it ran), efield.msh, spikes.h5 (SONATA), weights.h5
    (weight and BDNF snapshots), summary.json, session.png. Returns the SessionResult."""
    from .plot import plot_session
    from .session import run_protocol

    out, protocol, coil = _prepare(config, "results/session", course=False)
    session = config["session"]
    stage = _Stages(["head", "patch", "E-field", "motor threshold", "session", "write"], "tmsim session",
                    progress)
    mesh, fem, patch, field, percent_mso, test_mso, rmt = _setup(config, coil, stage)
    _write_config(out, config)
    stage("session")
    result = run_protocol(patch, field, protocol, percent_mso, test_percent_mso=test_mso,
                          probe_minutes=session["probe_minutes"],
                          after_s=session["after_s"], n_test=session["n_test"], dt_ms=session["dt_ms"],
                          seed=session["seed"], rmt_percent_mso=rmt, snapshots_path=out / "weights.h5",
                          progress=progress)
    stage("write")
    fem.save(out / "efield.msh")
    result.save(out)
    plot_session(result, patch, out / "session.png")
    stage.close()
    return result


def run_course_config(config: dict, progress: bool = True):
    """Run the course of `config` and write its folder: config.toml, efield.msh and efield.png
    (|E| on a slice and on the cortex), course.h5 (MEP proxy, mean weights and BDNF per
    session), last_session_spikes.h5 (SONATA), checkpoint.npz (resumable), summary.json,
    course.png and raster.png (the last session). Returns the CourseResult."""
    import neurons
    from efield.plot import plot_result
    from tmsim_io import write_json

    from .config import calendar
    from .course import SPIKES, run_course
    from .homeostasis import Homeostasis
    from .plot import plot_course, plot_raster

    out, protocol, coil = _prepare(config, "results/run", course=True)
    session, course = config["session"], config["course"]
    days = calendar(config)
    stage = _Stages(["head", "patch", "E-field", "motor threshold", "course", "write"], "tmsim run", progress)
    mesh, fem, patch, field, percent_mso, test_mso, rmt = _setup(config, coil, stage)
    _write_config(out, config)
    stage("course")
    result = run_course(patch, field, protocol, days, percent_mso, test_percent_mso=test_mso, folder=out,
                        after_s=session["after_s"],
                        n_test=session["n_test"], dt_ms=session["dt_ms"], seed=session["seed"],
                        final_probe_days=course["final_probe_days"],
                        homeostasis=Homeostasis() if course["homeostasis"] else None, progress=progress)
    stage("write")
    fem.save(out / "efield.msh")
    plot_result(fem, out / "efield.png", tissue=2)
    summary = dict(result.summary(), rmt_percent_mso=rmt, scenario=config["patch"]["scenario"],
                   field_at_neurons=field.summary(patch))
    write_json(out / "summary.json", summary, default=float)
    plot_course(result, out / "course.png")
    plot_raster(neurons.read_sonata_spikes(out / SPIKES), patch, protocol, out / "raster.png")
    stage.close()
    return result
