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

from .config import ConfigError, RunConfig
from .prepare import check_inputs, prepare_run

CONFIG = "config.toml"


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


def _prepare(config: RunConfig, default: str, course: bool) -> Path:
    """Check `config` before any work (check_inputs: its keys, coil, head file; the results
    folder; for a course, that the folder's checkpoint was written for this configuration), then
    remove the folder's stale temporaries; the results folder."""
    from tmsim_io import remove_stale_temporaries

    check_inputs(config, course=course)
    out = Path(config.output.folder or default)
    _check_folder(out)
    if course:
        _check_resume(out, config)
    remove_stale_temporaries(out)
    return out


def _check_folder(out: Path):
    """ConfigError naming output.folder if `out` is not a folder that can be made or written."""
    base = next(p for p in (out, *out.absolute().parents) if p.exists())
    if not base.is_dir() or not os.access(base, os.W_OK | os.X_OK):
        raise ConfigError(f"output.folder = {str(out)!r}: {base} is not a folder this process can write in")


def _check_resume(out: Path, config: dict):
    """ConfigError if `out` holds a course checkpoint of another configuration (its config.toml
    differs, [output] aside) or one without config.toml; ValueError if the checkpoint cannot be
    read. The folder is left as it is."""
    from .course import CHECKPOINT, check_resumable

    if not (out / CHECKPOINT).exists():
        return
    afresh = f"use another output.folder, or move {out / CHECKPOINT} away to start afresh"
    try:
        saved = tomllib.loads((out / CONFIG).read_text())
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise ConfigError(f"{out} holds a course checkpoint but no readable {CONFIG} ({err}): it cannot be "
                          f"told which run it continues; {afresh}") from None
    wanted = tomllib.loads(config.to_toml())
    differ = sorted(f"{table}.{key}" for table in wanted.keys() - {"output"}
                    for key in wanted[table].keys() | saved.get(table, {}).keys()
                    if wanted[table].get(key) != saved.get(table, {}).get(key))
    if differ:
        raise ConfigError(f"{out} holds a course of another configuration (it differs in "
                          f"{', '.join(differ)}); {afresh}")
    check_resumable(out)


def _write_config(out: Path, config: RunConfig):
    """Make the results folder and write config.toml (the configuration it runs) into it."""
    from tmsim_io import atomic_output

    with atomic_output(out / CONFIG) as tmp:
        tmp.write_text(config.to_toml())


def run_session_config(config: RunConfig, progress: bool = True):
    """Run the session of `config` (coupling.load_config) and write its folder: config.toml (the
    configuration it ran), efield.msh, spikes.h5 (SONATA), weights.h5 (weight and BDNF
    snapshots), summary.json, session.png. Returns the SessionResult."""
    from .plot import plot_session
    from .session import run_protocol

    out = _prepare(config, "results/session", course=False)
    stage = _Stages(["head", "patch", "E-field", "motor threshold", "session", "write"], "tmsim session",
                    progress)
    run = prepare_run(config, stage=stage)
    _write_config(out, config)
    stage("session")
    result = run_protocol(run.patch, run.field, run.protocol, run.percent_mso, options=config.session,
                          test_percent_mso=run.test_percent_mso, rmt_percent_mso=run.rmt_percent_mso,
                          snapshots_path=out / "weights.h5", progress=progress)
    stage("write")
    run.fem.save(out / "efield.msh")
    result.save(out)
    plot_session(result, run.patch, out / "session.png")
    stage.close()
    return result


def run_course_config(config: RunConfig, progress: bool = True):
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

    out = _prepare(config, "results/run", course=True)
    stage = _Stages(["head", "patch", "E-field", "motor threshold", "course", "write"], "tmsim run", progress)
    run = prepare_run(config, stage=stage)
    _write_config(out, config)
    stage("course")
    result = run_course(run.patch, run.field, run.protocol, calendar(config), run.percent_mso, folder=out,
                        options=config.session, test_percent_mso=run.test_percent_mso,
                        final_probe_days=config.course.final_probe_days,
                        homeostasis=Homeostasis() if config.course.homeostasis else None, progress=progress)
    stage("write")
    run.fem.save(out / "efield.msh")
    plot_result(run.fem, out / "efield.png", tissue=2)
    summary = dict(result.summary(), rmt_percent_mso=run.rmt_percent_mso, scenario=config.patch.scenario,
                   field_at_neurons=run.field.summary(run.patch))
    write_json(out / "summary.json", summary, default=float)
    plot_course(result, out / "course.png")
    plot_raster(neurons.read_sonata_spikes(out / SPIKES), run.patch, run.protocol, out / "raster.png")
    stage.close()
    return result
