"""From a run configuration to a results folder: head, coil, placement, patch, session."""

from __future__ import annotations

from pathlib import Path

import numpy as np

SESSION_SPHERE_RADII_MM = (80.0, 85.0, 90.0, 95.0)
"""Sphere head of the coupling stage: grey matter (r < 80 mm), CSF, bone, scalp; it carries
MNE's spherical 10-05 positions (radius 95 mm, +y anterior), so labels such as F3 work."""


def build_head(config: dict):
    """The head mesh of config["head"]."""
    import efield

    model, edge = config["head"]["model"], config["head"]["max_edge_mm"]
    if model == "sphere":
        head = efield.sphere_head(radii_mm=SESSION_SPHERE_RADII_MM, max_edge_mm=edge)
        return head.with_eeg_positions(efield.standard_positions(head, "spherical_1005"))
    if model == "template":
        return efield.template_head(max_edge_mm=edge)
    path = Path(model)
    if path.is_dir():
        return efield.load_subject(path)
    if path.suffix == ".msh":
        return efield.read_msh(path)
    raise ValueError(f"head.model {model!r}: expected \"sphere\", \"template\", a .msh file or an m2m folder")


def _point(value):
    return value if isinstance(value, str) else np.asarray(value, np.float64)


def build_placement(config: dict, mesh):
    import efield

    coil = config["coil"]
    handle = coil["handle"] or None
    return efield.Placement.on_scalp(mesh, _point(coil["centre"]), None if handle is None else _point(handle),
                                     distance_mm=coil["distance_mm"])


def build_protocol(name: str):
    from .protocols import protocol_by_name, read_protocol

    return read_protocol(name) if name.endswith(".toml") else protocol_by_name(name)


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


def _setup(config: dict, stage):
    """Head, coil, placement, FEM solve, patch, field at the neurons and the intensity:
    (mesh, fem result, patch, field, percent_mso, test_percent_mso, rmt_percent_mso or None)."""
    import efield

    from .cli import _coil
    from .config import intensity
    from .patch import cortical_patch
    from .scenario import scenario_model
    from .session import motor_threshold
    from .stimulus import neuron_field

    levels = (intensity(config), intensity(config, "test_intensity"))
    coil = _coil(config["coil"]["name"])
    if coil.didt_max is None:
        raise ValueError(f"coil {config['coil']['name']!r} has no maximum dI/dt: intensities need one")
    stage("head")
    mesh = build_head(config)
    placement = build_placement(config, mesh)
    stage("E-field")
    fem = efield.simulate(mesh, coil, placement, didt=coil.didt_max)
    stage("patch")
    patch_cfg, session = config["patch"], config["session"]
    patch = cortical_patch(mesh, _point(config["coil"]["centre"]), radius_mm=patch_cfg["radius_mm"],
                           n_neurons=patch_cfg["n_neurons"], seed=patch_cfg["seed"],
                           model=scenario_model(patch_cfg["scenario"]))
    field = neuron_field(mesh, fem, patch, coil.didt_max)
    stage("motor threshold")
    rmt = None
    if any(unit == "rmt" for _, unit in levels):
        rmt = motor_threshold(patch, field, dt_ms=session["dt_ms"], seed=session["seed"])
    percent = [value if unit == "mso" else min(100.0, value / 100.0 * rmt) for value, unit in levels]
    return mesh, fem, patch, field, *percent, rmt


def _output(config: dict, default: str) -> Path:
    from efield.atomic import atomic_output

    from .config import dump_config

    out = Path(config["output"]["folder"] or default)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_output(out / "config.toml") as tmp:
        tmp.write_text(dump_config(config))
    return out


def run_session_config(config: dict, progress: bool = True):
    """Run the session of `config` (coupling.config.load_config) and write its folder:
    config.toml (the configuration it ran), efield.msh, spikes.h5 (SONATA), weights.h5
    (weight and BDNF snapshots), summary.json, session.png. Returns the SessionResult."""
    from .plot import plot_session
    from .session import run_protocol

    out = _output(config, "results/session")
    session = config["session"]
    protocol = build_protocol(config["protocol"]["name"])
    stage = _Stages(["head", "E-field", "patch", "motor threshold", "session", "write"], "tmsim session",
                    progress)
    mesh, fem, patch, field, percent_mso, test_mso, rmt = _setup(config, stage)
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
    import json

    import neurons
    from efield.atomic import atomic_output
    from efield.plot import plot_result

    from .config import calendar
    from .course import SPIKES, run_course
    from .homeostasis import Homeostasis
    from .plot import plot_course, plot_raster

    out = _output(config, "results/run")
    session, course = config["session"], config["course"]
    protocol = build_protocol(config["protocol"]["name"])
    days = calendar(config)
    stage = _Stages(["head", "E-field", "patch", "motor threshold", "course", "write"], "tmsim run", progress)
    mesh, fem, patch, field, percent_mso, test_mso, rmt = _setup(config, stage)
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
    with atomic_output(out / "summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2, default=float) + "\n")
    plot_course(result, out / "course.png")
    plot_raster(neurons.read_sonata_spikes(out / SPIKES), patch, protocol, out / "raster.png")
    stage.close()
    return result
