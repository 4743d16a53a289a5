"""From a run configuration to a results folder: head, coil, placement, patch, session."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

SESSION_SPHERE_RADII_MM = (80.0, 85.0, 90.0, 95.0)
"""Sphere head of the coupling stage: grey matter (r < 80 mm), CSF, bone, scalp."""


def build_head(config: dict):
    """The head mesh of config["head"]."""
    import efield

    model, edge = config["head"]["model"], config["head"]["max_edge_mm"]
    if model == "sphere":
        return efield.sphere_head(radii_mm=SESSION_SPHERE_RADII_MM, max_edge_mm=edge)
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


def run_session_config(config: dict, config_path=None, progress: bool = True):
    """Run the session of `config` (coupling.config.load_config) and write its folder:
    config.toml (when run from a file), efield.msh, spikes.h5 (SONATA), weights.h5 (weight
    and BDNF snapshots), summary.json, session.png. Returns the SessionResult."""
    from tqdm.auto import tqdm

    import efield

    from .cli import _coil
    from .config import intensity
    from .patch import cortical_patch
    from .plot import plot_session
    from .session import motor_threshold, run_protocol
    from .stimulus import neuron_field

    out = Path(config["output"]["folder"])
    session = config["session"]
    value, unit = intensity(config)
    protocol = build_protocol(config["protocol"]["name"])
    coil = _coil(config["coil"]["name"])
    if coil.didt_max is None:
        raise ValueError(f"coil {config['coil']['name']!r} has no maximum dI/dt: intensities need one")
    stages = ["head", "E-field", "patch", "motor threshold", "session", "write"]
    with tqdm(total=len(stages), desc="tmsim session", unit="stage", disable=not progress) as bar:
        def stage(i):
            bar.set_postfix_str(stages[i])

        stage(0)
        mesh = build_head(config)
        placement = build_placement(config, mesh)
        bar.update()
        stage(1)
        fem = efield.simulate(mesh, coil, placement, didt=coil.didt_max)
        bar.update()
        stage(2)
        patch_cfg = config["patch"]
        target = _point(config["coil"]["centre"])
        patch = cortical_patch(mesh, target, radius_mm=patch_cfg["radius_mm"],
                               n_neurons=patch_cfg["n_neurons"],
                               seed=patch_cfg["seed"])
        field = neuron_field(mesh, fem, patch, coil.didt_max)
        bar.update()
        stage(3)
        rmt = None
        if unit == "rmt":
            rmt = motor_threshold(patch, field, dt_ms=session["dt_ms"], seed=session["seed"])
        percent_mso = value if unit == "mso" else min(100.0, value / 100.0 * rmt)
        bar.update()
        stage(4)
        out.mkdir(parents=True, exist_ok=True)
        result = run_protocol(patch, field, protocol, percent_mso, probe_minutes=session["probe_minutes"],
                              after_s=session["after_s"], n_test=session["n_test"], dt_ms=session["dt_ms"],
                              seed=session["seed"], rmt_percent_mso=rmt, snapshots_path=out / "weights.h5",
                              progress=progress)
        bar.update()
        stage(5)
        if config_path is not None:
            shutil.copyfile(config_path, out / "config.toml")
        fem.save(out / "efield.msh")
        result.save(out)
        plot_session(result, patch, out / "session.png")
        bar.update()
    return result
