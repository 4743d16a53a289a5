"""`tmsim run` and `tmsim session` on bad input: each refusal names the key, file or argument and
its allowed range, comes before any work, and leaves no results folder half-written."""

import os
import subprocess
import sys

import numpy as np
import pytest

import efield
import coupling
import neurons
from coupling import Calendar, SessionOptions, protocols, rtms, run_course
from coupling import config as cfg
from coupling import pipeline, prepare
from coupling.checkpoint import load_checkpoint
from coupling.config import ConfigError, load_config
from coupling.course import CHECKPOINT
from coupling.patch import cortical_patch
from coupling.session import MEP, SessionResult
from coupling.stimulus import NeuronField


def _write(tmp_path, text, name="bad.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("text, message", [
    ("[patch]\nradius_mm = 1e6\n", r"patch\.radius_mm: must be > 0 and <= 30"),
    ("[patch]\nn_neurons = 1000000000\n", r"patch\.n_neurons: must lie in \[20, 100000\]"),
    ("[patch]\nseed = -1\n", r"patch\.seed: must lie in \[0, 4294967295\]"),
    ("[session]\nafter_s = inf\n", r"session\.after_s: must be > 0 and <= 3600"),
    ("[session]\ndt_ms = 0.3\n", r"session\.dt_ms: expected one of \[0\.1, 0\.05"),
    ("[session]\nn_test = 0\n", r"session\.n_test: must lie in \[1, 1000\]"),
    ("[session]\nprobe_minutes = [0, inf]\n", r"session\.probe_minutes: .*\[0, 10080\]"),
    ("[course]\nfinal_probe_days = inf\n", r"course\.final_probe_days: must lie in \[0, 365\]"),
    ("[course]\nweeks = 100000000\n", r"course\.weeks: must lie in \[1, 52\]"),
    ("[course]\ninterval_min = nan\n", r"course\.interval_min: must be > 0 and <= 1440"),
    ("[coil]\ndistance_mm = nan\n", r"coil\.distance_mm: must lie in \[0, 50\]"),
    ("[coil]\ncentre = [0, inf, 95]\n", r"coil\.centre: .*finite"),
    ("[head]\nmax_edge_mm = inf\n", r"head\.max_edge_mm: must be > 0 and <= 12"),
    ("[head]\nmodel = \"sphere\"\nmax_edge_mm = 0.3\n",
     r"head\.max_edge_mm = 0\.3 gives about 8e\+08 tetrahedra.*least 1\.4 mm"),
    ("[head]\nmodel = 'template'\nmax_edge_mm = 1.0\n", r"head\.max_edge_mm = 1\.0 .*at least 1\.5 mm"),
    # sessions 50 min apart, each 192 s of iTBS + 3000 s: the second starts before the first ends
    ("[session]\nafter_s = 3000\n", r"session\.after_s = 3000 .*course\.interval_min.*session 1 at 590\.0"),
    ("[course]\nsessions_per_day = 24\n", r"course\.sessions_per_day.*do not fit in a day"),
    ("[course]\ninterval_min = 50.000001\n", r"course\.interval_min.*not a whole number of steps"),
    ("[protocol]\nname = 'missing.toml'\n", r"protocol\.name = 'missing\.toml'.*no such file"),
    ("[protocol]\nname = 'theta'\n", r"protocol\.name = 'theta': unknown protocol"),
])
def test_bad_config_values_name_the_file_key_and_range(tmp_path, text, message):
    with pytest.raises(ConfigError, match=f"bad.toml: .*{message}"):
        load_config(_write(tmp_path, text))


@pytest.mark.parametrize("schedule, message", [
    ("pulse_times_ms = [0.0, 0.05]\n", r" with session\.dt_ms = 0\.1: .*0\.05 ms is not on the"),
    ("[[train]]\nfrequency_Hz = 1e7\npulses = 3\n", r"train\[0\]\.frequency_Hz': must be > 0 and <= 1000"),
    ("pulse_times_ms = [0.0, 1e300]\n", r"pulse_times_ms'.*after MAX_DURATION_S = 14400 s"),
    ("[[train]]\nfrequency_Hz = 10.0\npulses = 1000000000\n", r"train\[0\]\.pulses'.*\[1, 100000\]"),
])
def test_bad_protocol_files_are_refused_at_load(tmp_path, schedule, message):
    path = _write(tmp_path, schedule, "schedule.toml")
    with pytest.raises(ConfigError, match=f"bad.toml: protocol\\.name.*{message}"):
        load_config(_write(tmp_path, f"[protocol]\nname = '{path}'\n"))


def test_session_configs_leave_the_course_table_out(tmp_path):
    path = _write(tmp_path, "[session]\nafter_s = 3000\n")
    assert load_config(path, course=False).session.after_s == 3000


@pytest.mark.parametrize("text, key, limit", [
    ("[patch]\nn_neurons = 20000\n", r"patch\.n_neurons = 20000", r"at most about \d+ here"),
    ("[head]\nmax_edge_mm = 2.0\n", r"head\.max_edge_mm = 2\.0", r"at least [\d.]+ mm here"),
])
def test_runs_beyond_this_machines_memory_are_refused(tmp_path, monkeypatch, text, key, limit):
    monkeypatch.setattr(cfg, "physical_memory_bytes", lambda: 1e9)
    with pytest.raises(ConfigError, match=f"bad.toml: {key}: the run needs about .* GB of memory.*than the "
                                          f"1 GB of this machine: {limit}"):
        load_config(_write(tmp_path, text))


def test_the_reference_documents_the_ranges():
    rows = {line.split("|")[1].strip(): line for line in cfg.reference_table().splitlines()[2:]}
    assert "`(0, 30]`" in rows["`patch.radius_mm`"] and "`[1, 52]`" in rows["`course.weeks`"]
    assert "0.01" in rows["`session.dt_ms`"] and "MAX_TETRAHEDRA" in rows["`head.max_edge_mm`"]


# --- the pipeline checks before any work and makes the folder only after the set-up ----------------


@pytest.fixture
def no_work(monkeypatch):
    """Make building a head or solving a field fail loudly: the checks must come first."""
    def unreachable(*args, **kwargs):
        raise AssertionError("should not be reached")

    monkeypatch.setattr(prepare, "build_head", unreachable)
    monkeypatch.setattr(efield, "simulate", unreachable)


SPHERE = {"head.model": "sphere", "coil.centre": "F3", "coil.handle": ""}


def _config(tmp_path, **tables):
    values = {f"{table}.{key}": value for table, keys in tables.items() for key, value in keys.items()}
    return load_config().with_values({"output.folder": str(tmp_path / "out"), **SPHERE, **values})


@pytest.mark.parametrize("run", [pipeline.run_course_config, pipeline.run_session_config])
@pytest.mark.parametrize("tables, message", [
    (dict(protocol={"name": "missing.toml"}), r"protocol\.name = 'missing\.toml'"),
    (dict(coil={"name": "missing.ccd"}), r"coil\.name = 'missing\.ccd': .*no such file"),
    (dict(coil={"name": "coil.xyz"}), r"coil\.name = 'coil\.xyz': expected"),
    (dict(head={"model": "missing.msh"}), r"head\.model = 'missing\.msh': expected .* existing \.msh file"),
    (dict(session={"dt_ms": 0.3}), r"config: session\.dt_ms: expected one of"),
])
def test_bad_files_stop_the_pipeline_before_any_work_and_folder(tmp_path, no_work, run, tables, message):
    with pytest.raises(ConfigError, match=message):
        run(_config(tmp_path, **tables), progress=False)
    assert not (tmp_path / "out").exists()


def test_an_output_folder_that_is_a_file_is_refused(tmp_path, no_work):
    (tmp_path / "out").write_text("a file")
    with pytest.raises(ConfigError, match="output.folder = .*out.*is not a folder this process can write in"):
        pipeline.run_course_config(_config(tmp_path), progress=False)


def _snapshot(folder):
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.iterdir()}


def test_a_refused_resume_leaves_the_folder_untouched(tmp_path, no_work):
    out = tmp_path / "out"
    out.mkdir()
    old = _config(tmp_path)
    (out / "config.toml").write_text(old.to_toml())
    (out / CHECKPOINT).write_bytes(b"the checkpoint of the old run")
    (out / f".course.h5.{2**22 + 1}.0123abcd.tmp").write_bytes(b"")
    before = _snapshot(out)
    with pytest.raises(ConfigError, match=r"holds a course of another configuration \(it differs in "
                                          r"patch\.n_neurons, session\.seed\); use another output\.folder, "
                                          r"or move .*checkpoint\.npz away"):
        pipeline.run_course_config(_config(tmp_path, patch={"n_neurons": 40}, session={"seed": 3}),
                                   progress=False)
    assert _snapshot(out) == before
    (out / "config.toml").unlink()
    with pytest.raises(ConfigError, match="holds a course checkpoint but no readable config.toml"):
        pipeline.run_course_config(old, progress=False)


def test_an_unreadable_checkpoint_is_refused_before_any_work(tmp_path, no_work):
    out = tmp_path / "out"
    out.mkdir()
    config = _config(tmp_path)
    (out / "config.toml").write_text(config.to_toml())
    (out / CHECKPOINT).write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ValueError, match=r"checkpoint\.npz: not a readable course checkpoint \(BadZipFile"
                                         r".*move it away to start the course afresh"):
        pipeline.run_course_config(config, progress=False)


def _dead_pid():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_stale_temporaries_of_killed_runs_are_removed_before_work(tmp_path, no_work):
    out = tmp_path / "out"
    out.mkdir()
    stale = out / f".checkpoint.npz.{_dead_pid()}.0123abcd.tmp"
    live = out / f".course.h5.{os.getpid()}.89abcdef.tmp"
    other = out / ".notes.1.tmp"
    for path in (stale, live, other):
        path.write_bytes(b"x" * 100)
    with pytest.raises(AssertionError, match="should not be reached"):
        pipeline.run_course_config(_config(tmp_path), progress=False)
    assert sorted(p.name for p in out.iterdir()) == sorted([live.name, other.name])


# --- protocols, calendars and courses from Python ----------------------------------------------------


@pytest.mark.parametrize("build, message", [
    (lambda: rtms(1e7, 10), r"rtms: frequency_Hz: must be in \(0, 1000\] Hz"),
    (lambda: rtms(10.0, 10**9), r"rtms: pulses_per_train: must be an integer in \[1, 100000\]"),
    (lambda: rtms(10.0, 1000, 1000), r"rtms: n_trains x pulses_per_train.*1000000 pulses, more than"),
    (lambda: rtms(10.0, 10, 10, 1e7), r"rtms: .*inter_train_interval_s: lasts .* longer than MAX_DURATION_S"),
    (lambda: protocols.theta_burst(10**5, 10**5), r"theta_burst: .*bursts_per_train x pulses_per_burst"),
    (lambda: protocols.itbs(10**9), r"itbs: n_pulses: must be an integer in \[1, 100000\]"),
    (lambda: protocols.one_hz(10**9), r"one_hz: n_pulses"),
    (lambda: protocols.Protocol.from_times_ms("x", [0.0, 1e300]), r"'x': pulse time: 1e\+300 ms is after "
                                                                  r"MAX_DURATION_S = 14400 s"),
    (lambda: protocols.Protocol("x", np.arange(2 * 10**5)), r"'x': pulse_times_us: 200000 pulses"),
    (lambda: Calendar.daily(10**8), r"Calendar\.daily: weeks must be an integer in \[1, 521\]"),
    (lambda: Calendar.saint(10**6), r"Calendar\.saint: days must be an integer in \[1, 3650\]"),
    (lambda: SessionOptions(after_s=np.inf), r"SessionOptions\.after_s: must be > 0 and <= 3600"),
    (lambda: run_course(None, None, rtms(10.0, 3), Calendar([0.0]), 50.0, folder="unused",
                        final_probe_days=np.inf), r"run_course: final_probe_days must be finite"),
])
def test_python_builders_name_the_argument_and_limit(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_protocol_file_limits(tmp_path):
    path = _write(tmp_path, "[[train]]\nfrequency_Hz = 10.0\npulses = 1000\nrepeat = 1000\nevery_s = 100.0\n",
                  "long.toml")
    with pytest.raises(ValueError, match=r"long\.toml: key 'train\[0\]\.repeat': .*1000000 pulses"):
        protocols.read_protocol(path)


# --- an interrupted course keeps its last checkpoint and resumes from it ---------------------------


@pytest.fixture(scope="module")
def small_patch():
    head = efield.sphere_head(radii_mm=(80.0, 85.0, 90.0, 95.0), max_edge_mm=8.0)
    patch = cortical_patch(head, np.array([0.0, 0.0, 95.0]), radius_mm=6.0, n_neurons=40, seed=1)
    return patch, NeuronField({p: np.zeros_like(x) for p, x in patch.positions_mm.items()}, {}, 1e8)


def _quick_sessions(monkeypatch, patch, interrupt_at=None):
    """Sessions that only hand their state on (no spiking: the checkpoints are under test);
    KeyboardInterrupt in session `interrupt_at`."""
    import coupling.course

    state = neurons.initial_state(patch.network, 0.1)
    mep = MEP(np.zeros(1))
    sessions = []

    def session(patch, field, protocol, percent_mso, *, state, **options):
        sessions.append(1)
        if len(sessions) - 1 == interrupt_at:
            raise KeyboardInterrupt
        values = {p.name: {"before": 1.0, "after_stimulation": 1.0}
                  for p in patch.network.projections if p.plasticity is not None}
        return SessionResult(protocol, percent_mso, None, mep, {0.0: mep}, values, values, {}, state, field)

    monkeypatch.setattr(coupling.course, "settle", lambda *a, **k: state)
    monkeypatch.setattr(coupling.course, "probe_mep", lambda *a, **k: mep)
    monkeypatch.setattr(coupling.course, "run_protocol", session)


def test_a_keyboard_interrupt_keeps_the_last_checkpoint_and_resumes(small_patch, tmp_path, monkeypatch):
    patch, field = small_patch
    course = dict(options=SessionOptions(after_s=0.2, n_test=1), final_probe_days=0.01, progress=False,
                  folder=tmp_path)
    args = (patch, field, rtms(20.0, 3), Calendar([0.0, 30.0]), 80.0)
    _quick_sessions(monkeypatch, patch, interrupt_at=1)
    with pytest.raises(KeyboardInterrupt):
        run_course(*args, **course)
    _, meta, _ = load_checkpoint(tmp_path / CHECKPOINT, patch.network, 0.1)
    assert meta["next_session"] == 1

    def interrupted_while_saving(file, **arrays):  # half a file, then Ctrl-C
        file.write(b"PK\x03\x04 half")
        raise KeyboardInterrupt

    _quick_sessions(monkeypatch, patch)
    savez = np.savez
    monkeypatch.setattr(np, "savez", interrupted_while_saving)
    with pytest.raises(KeyboardInterrupt):
        run_course(*args, **course)
    monkeypatch.setattr(np, "savez", savez)
    _, meta, _ = load_checkpoint(tmp_path / CHECKPOINT, patch.network, 0.1)
    assert meta["next_session"] == 1
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]

    resumed = []
    result = run_course(*args, **course, on_session=lambda k, partial: resumed.append(k))
    assert resumed == [1] and result.complete
    assert result.label.tolist() == ["start", "before", "after", "before", "after", "final"]

    (tmp_path / CHECKPOINT).write_bytes((tmp_path / CHECKPOINT).read_bytes()[:100])
    with pytest.raises(ValueError, match=r"checkpoint\.npz: not a readable course checkpoint.*move it away"):
        run_course(*args, **course)


def test_entry_points_name_a_configuration_or_options_of_the_wrong_type():
    with pytest.raises(TypeError, match=r"prepare_run: config must be a coupling\.RunConfig"):
        prepare.prepare_run({"patch": {"n_neurons": 40}})
    with pytest.raises(TypeError, match=r"run_protocol: options must be a coupling\.SessionOptions, got di"):
        coupling.run_protocol(None, None, rtms(10.0, 3), 50.0, options={"seed": 1})
    with pytest.raises(TypeError, match=r"run_course: options must be a coupling\.SessionOptions"):
        run_course(None, None, rtms(10.0, 3), Calendar([0.0]), 50.0, folder="unused", options=None)
