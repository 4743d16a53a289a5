"""`tmsim session` end to end on a small patch, and its figure."""

import json

import h5py
import matplotlib.image
import numpy as np
import pytest

from coupling.cli import main
from coupling.config import load_config


@pytest.mark.slow
def test_tmsim_session_writes_a_complete_results_folder(tmp_path):
    schedule = tmp_path / "five.toml"
    schedule.write_text('name = "five pulses"\npulse_times_ms = [0.0, 100.0, 200.0, 300.0, 400.0]\n')
    config = tmp_path / "run.toml"
    config.write_text(f"""
[head]
model = "sphere"
max_edge_mm = 8.0
[coil]
centre = "F3"
handle = ""
[patch]
n_neurons = 60
radius_mm = 6.0
[protocol]
name = "{schedule}"
intensity = "70% MSO"
test_intensity = "60% MSO"
[session]
probe_minutes = [0.0, 5.0]
after_s = 0.2
n_test = 2
[output]
folder = "{tmp_path / 'out'}"
""")
    assert main(["session", str(config), "--quiet"]) == 0
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["config.toml", "efield.msh", "session.png", "spikes.h5",
                                                     "summary.json", "weights.h5"]
    assert load_config(out / "config.toml") == load_config(config).with_values({"output.folder": str(out)})
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_pulses"] == 5 and summary["percent_mso"] == 70.0
    assert set(summary["mep_after"]) == {"0.0", "5.0"}
    with h5py.File(out / "spikes.h5") as f:
        assert set(f["spikes"]) == {"L23E", "L23I", "L5E", "L5I", "AFF"}
    image = matplotlib.image.imread(out / "session.png")
    assert image.shape[:2] == (int(7.5 * 110), 11 * 110) and np.ptp(image) > 0


def test_a_bad_config_key_stops_before_any_work(tmp_path, capsys):
    config = tmp_path / "bad.toml"
    config.write_text("[patch]\nneurons = 10\n")
    assert main(["session", str(config), "--out", str(tmp_path / "out")]) == 2
    assert "unknown key patch.neurons" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_tmsim_run_writes_the_course_folder(tmp_path):
    schedule = tmp_path / "three.toml"
    schedule.write_text('pulse_times_ms = [0.0, 100.0, 200.0]\n')
    config = tmp_path / "run.toml"
    config.write_text(f"""
[head]
model = "sphere"
max_edge_mm = 8.0
[coil]
centre = "F3"
handle = ""
[patch]
n_neurons = 60
radius_mm = 6.0
scenario = "depressed_val66met"
[protocol]
name = "{schedule}"
intensity = "70% MSO"
test_intensity = "90% MSO"
[session]
after_s = 0.2
n_test = 2
[course]
sessions_per_day = 2
interval_min = 10.0
final_probe_days = 0.01
""")
    out = tmp_path / "out"
    assert main(["run", str(config), "--out", str(out), "--quiet"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "checkpoint.npz", "config.toml", "course.h5", "course.png", "efield.msh", "efield.png",
        "last_session_spikes.h5", "raster.png", "summary.json"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_sessions"] == summary["sessions_done"] == 2
    assert summary["scenario"] == "depressed_val66met"
    with h5py.File(out / "course.h5") as f:
        assert list(f["label"][:].astype(str)) == ["start", "before", "after", "before", "after", "final"]
        np.testing.assert_allclose(f["session_start_days"][:], [540 / 1440, 550 / 1440])


@pytest.mark.parametrize("command", ["run", "session"])
def test_run_and_session_keep_compiled_programs_in_tmsims_cache_folder(tmp_path, monkeypatch, command):
    import jax

    keys = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs")
    saved = {k: getattr(jax.config, k) for k in keys}
    monkeypatch.setenv("TMSIM_CACHE_DIR", str(tmp_path / "cache"))
    try:
        jax.config.update("jax_compilation_cache_dir", None)
        assert main([command, str(tmp_path / "missing.toml")]) == 2         # set before the config is read
        assert jax.config.jax_compilation_cache_dir == str(tmp_path / "cache" / "jax")
        jax.config.update("jax_compilation_cache_dir", str(tmp_path / "mine"))
        assert main([command, str(tmp_path / "missing.toml")]) == 2
        assert jax.config.jax_compilation_cache_dir == str(tmp_path / "mine")  # a folder set already stays
    finally:
        for k, v in saved.items():
            jax.config.update(k, v)
