"""Sweeps on Dask (coupling.sweep) and their statistics (coupling.report): the product of the
axes, resume, a failing run, a worker that dies, the same table from 1 and 2 workers, each
worker of a new LocalCluster on its own cores, bad sweep files, the starter file, and the
bootstrap intervals against a direct computation.

One 2-worker LocalCluster serves the module. The runs are tiny `tmsim session` runs (one
network: the seeds of the noise and the coil distance do not change what JAX compiles) or run
functions defined here, which the workers import from this file."""

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("distributed")
pd = pytest.importorskip("pandas")

from coupling import ConfigError, RunConfig  # noqa: E402
from coupling import sweep as sw  # noqa: E402
from coupling.cli import main  # noqa: E402
from coupling.report import bootstrap_ci, report  # noqa: E402

TINY = {"head.model": "sphere", "coil.centre": "F3", "coil.handle": "", "head.max_edge_mm": 12.0,
        "patch.n_neurons": 20, "protocol.name": "single",
        "protocol.intensity": "60% MSO", "protocol.test_intensity": "60% MSO", "session.after_s": 0.05,
        "session.n_test": 1, "session.probe_minutes": [0.0]}


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    cloudpickle = pytest.importorskip("cloudpickle")
    cloudpickle.register_pickle_by_value(sys.modules[__name__])   # the workers need not import this file
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                           silence_logs=50)
    with Client(cluster) as c:
        yield c
    cluster.close()


def synthetic(config, folder):
    """A cheap deterministic run: numbers drawn from the seeds and the axis values."""
    rng = np.random.default_rng([config.patch.seed, config.session.seed, int(config.coil.distance_mm * 10)])
    (folder / "numbers.txt").write_text("ok\n")
    return {"x": float(rng.normal(config.coil.distance_mm)), "nested": {"y": int(rng.integers(100))},
            "label": "dropped"}


def failing(config, folder):
    if config.session.seed == 2:
        raise ValueError("made to fail at noise seed 2")
    return synthetic(config, folder)


def dies_once(config, folder):
    """Kills its worker process the first time the run with noise seed 1 starts."""
    marker = folder.parent.parent / "killed.marker"
    if config.session.seed == 1 and not marker.exists():
        marker.write_text("killed once\n")
        os._exit(1)
    return synthetic(config, folder)


def reports_its_cores(config, folder):
    """The cores the worker running this may use: how many, and the lowest."""
    cores = os.sched_getaffinity(0)
    return {"n_cores": len(cores), "lowest_core": min(cores)}


def small_sweep(**axes) -> sw.Sweep:
    data = {"base": {"coil": {"distance_mm": 4.0}},
            "axes": axes or {"coil.distance_mm": [2.0, 4.0], "network_seeds": [0, 1],
                             "noise_seeds": [0, 1, 2]}}
    return sw.sweep_from_dict(data, "test")


def values(table):
    return table.drop(columns=["wall_s"]).reset_index(drop=True)


@pytest.mark.slow
def test_session_sweep_2x2x2_then_resume(client, tmp_path):
    data = {"base": {k.split(".")[0]: {} for k in TINY},
            "axes": {"protocol.intensity": ["50% MSO", "60% MSO"], "coil.distance_mm": [3.0, 5.0],
                     "noise_seeds": [0, 1]}}
    for key, value in TINY.items():
        table, name = key.split(".")
        data["base"][table][name] = value
    sweep = sw.sweep_from_dict(data, "tiny")
    table = sw.run_sweep(sweep, tmp_path, client=client, progress=False, log=None)
    assert len(table) == 8 and (table["status"] == "done").all()
    expected = [(i, d, s) for i in ["50% MSO", "60% MSO"] for d in [3.0, 5.0] for s in [0, 1]]
    got = zip(table["protocol.intensity"], table["coil.distance_mm"], table["session.seed"])
    assert list(got) == expected
    assert (table["patch.seed"] == 0).all() and list(table["run"]) == list(range(8))
    assert np.allclose(table["percent_mso"], [50.0] * 4 + [60.0] * 4)
    numbers = {"mep_before", "mep_change.0.0", "mean_weights_nS.AFF_to_L5E.after_stimulation"}
    assert numbers <= set(table.columns)
    on_disk = pd.read_parquet(tmp_path / "runs.parquet")
    pd.testing.assert_frame_equal(on_disk, table)
    for row in table.itertuples():
        folder = tmp_path / "runs" / row.run_id
        assert {"config.toml", "summary.json", "spikes.h5", "run.json"} <= {p.name for p in folder.iterdir()}
        assert f'folder = "{folder}"' in (folder / "config.toml").read_text()
    assert not [p for p in (tmp_path / "runs").iterdir() if p.name.startswith(".")]
    assert sw.load_sweep(tmp_path / "sweep.toml").runs() == sweep.runs()
    # the same sweep again: every run is found and skipped
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "runs").iterdir()}
    again = sw.run_sweep(tmp_path / "sweep.toml", tmp_path, client=client, progress=False, log=None)
    pd.testing.assert_frame_equal(again, table)
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "runs").iterdir()} == stamps


def test_a_failing_run_is_recorded_and_the_others_finish(client, tmp_path):
    logged = []
    table = sw.run_sweep(small_sweep(), tmp_path, run=failing, client=client, progress=False,
                         log=logged.append)
    failed = table[table["status"] == "failed"]
    assert len(table) == 12 and len(failed) == 4 and (failed["session.seed"] == 2).all()
    assert failed["error"].str.contains("ValueError: made to fail at noise seed 2").all()
    assert failed["x"].isna().all() and table.loc[table["status"] == "done", "x"].notna().all()
    assert "4 of 12 runs failed" in logged[-1] and "session.seed = 2" in logged[-1]
    assert all((tmp_path / "errors" / f"{r}.txt").is_file() for r in failed["run_id"])
    assert not any((tmp_path / "runs" / r).exists() for r in failed["run_id"])
    with pytest.raises(sw.SweepFailed, match="4 of 12 runs failed"):
        sw.run_sweep(small_sweep(), tmp_path, run=failing, client=client, progress=False, log=None,
                     raise_on_failure=True)


def test_a_killed_worker_has_its_run_retried_once(client, tmp_path):
    table = sw.run_sweep(small_sweep(**{"coil.distance_mm": [2.0, 4.0], "noise_seeds": [0, 1, 2]}), tmp_path,
                         run=dies_once, client=client, progress=False, log=None)
    assert (tmp_path / "killed.marker").is_file()
    assert len(table) == 6 and (table["status"] == "done").all()
    assert table["run_id"].is_unique and list(table["run"]) == list(range(6))
    folders = [p for p in (tmp_path / "runs").iterdir()]
    assert sorted(p.name for p in folders) == sorted(table["run_id"])
    reference = sw.run_sweep(small_sweep(**{"coil.distance_mm": [2.0, 4.0], "noise_seeds": [0, 1, 2]}),
                             tmp_path / "reference", run=synthetic, client=client, progress=False, log=None)
    assert np.array_equal(table["x"], reference["x"])


def test_one_and_two_workers_give_the_same_table(client, tmp_path):
    two = sw.run_sweep(small_sweep(), tmp_path / "two", run=synthetic, client=client, progress=False,
                       log=None)
    one = sw.run_sweep(small_sweep(), tmp_path / "one", run=synthetic, workers=1, progress=False, log=None)
    pd.testing.assert_frame_equal(values(one), values(two))
    assert len(two) == 12 and list(two.columns[:6]) == ["run", "run_id", "coil.distance_mm", "patch.seed",
                                                         "session.seed", "status"]
    assert {"x", "nested.y"} <= set(two.columns) and "label" not in two.columns
    # the sweep grown by one value: the old runs are found, the new ones run
    grown = small_sweep(**{"coil.distance_mm": [2.0, 4.0, 6.0], "network_seeds": [0, 1],
                           "noise_seeds": [0, 1, 2]})
    table = sw.run_sweep(grown, tmp_path / "two", run=synthetic, client=client, progress=False, log=None)
    assert len(table) == 18
    pd.testing.assert_frame_equal(values(table[table["coil.distance_mm"] < 5]).drop(columns="run"),
                                  values(two).drop(columns="run"))


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs Linux and at least 2 usable cores")
def test_a_new_local_cluster_gives_each_worker_its_own_cores(tmp_path):
    cores = sorted(os.sched_getaffinity(0))
    shares = {(len(cores[i::2]), cores[i]) for i in range(2)}
    table = sw.run_sweep(small_sweep(), tmp_path, run=reports_its_cores, workers=2, progress=False, log=None)
    assert set(zip(table["n_cores"], table["lowest_core"])) <= shares
    # a worker per core at most: with more workers than cores, none is pinned
    crowded = sw.run_sweep(small_sweep(**{"noise_seeds": [0, 1]}), tmp_path / "crowded",
                           run=reports_its_cores, workers=len(cores) + 1, progress=False, log=None)
    assert set(crowded["n_cores"]) == {len(cores)}


def test_zip_groups_vary_together():
    sweep = sw.sweep_from_dict({"axes": {"noise_seeds": [0, 1]},
                                "zip": [{"coil.distance_mm": [2.0, 6.0],
                                         "head": {"max_edge_mm": [8.0, 10.0]}}]},
                               "zipped")
    assert sweep.runs() == [{"coil.distance_mm": d, "head.max_edge_mm": e, "session.seed": s}
                            for d, e in [(2.0, 8.0), (6.0, 10.0)] for s in [0, 1]]
    assert sweep.keys == ["coil.distance_mm", "head.max_edge_mm", "session.seed"]


@pytest.mark.parametrize("text, named", [
    ('[axes]\n"protocol.intensity" = ["80% RMT", "300% RMT"]', "protocol.intensity"),
    ('[axes]\n"patch.n_neuron" = [20, 40]', "patch.n_neuron"),
    ('[axes]\n"pach.n_neurons" = [20, 40]', "pach"),
    ('[axes]\nprotocol.name = []', "protocol.name"),
    ('[axes]\n"patch.seed" = [1, 2]', "network_seeds"),
    ('[axes]\nnoise_seeds = [0, -1]', "session.seed"),
    ('[axes]\n"protocol.name" = ["itbs", "itbs"]', "listed twice"),
    ('[axes]\n"protocol.name" = ["itbs", "no-such-protocol"]', "protocol.name"),
    ('[base]\npatch.n_neurons = 5', "patch.n_neurons"),
    ('[base]\nsession.colour = 5', "session.colour"),
    ('kind = "course"', "kind"),
    ('axis = 3', "axis"),
    ('[[zip]]\n"coil.distance_mm" = [1.0, 2.0]\n"head.max_edge_mm" = [8.0]', "same length"),
    ('[axes]\n"coil.distance_mm" = [1.0]\n[[zip]]\n"coil.distance_mm" = [2.0]', "coil.distance_mm"),
    ('[report]\ncontrol = "protocol.name=sham-itbs"', "protocol.name"),
    ('[axes]\n"patch.n_neurons" = [20, 100000]', "patch.n_neurons"),     # too large for this machine
])
def test_bad_sweep_files_name_the_key(tmp_path, text, named):
    path = tmp_path / "bad.toml"
    path.write_text(text + "\n")
    with pytest.raises(ConfigError, match=named) as caught:
        sw.load_sweep(path).check()
    assert str(path) in str(caught.value)


def test_cli_sweep_init_writes_a_file_that_loads(tmp_path, capsys):
    path = tmp_path / "start.toml"
    assert main(["sweep", "--init", str(path)]) == 0
    sweep = sw.load_sweep(path)
    sweep.check()
    assert 4 <= len(sweep.runs()) <= 16 and sweep.base.patch.n_neurons <= 40
    assert sweep.report["control"] == "protocol.name=sham-single"
    assert main(["sweep", "--init", str(path)]) == 2           # never overwritten
    assert "exists" in capsys.readouterr().err
    assert main(["sweep", str(tmp_path / "missing.toml")]) == 2
    assert "no such sweep file" in capsys.readouterr().err


def test_bootstrap_ci_matches_a_direct_bootstrap():
    x = np.random.default_rng(3).normal(1.0, 0.5, size=7)
    rng = np.random.default_rng(11)
    means = np.array([x[rng.integers(0, 7, 7)].mean() for _ in range(2000)])
    direct = np.percentile(means, [2.5, 97.5])
    assert np.allclose(bootstrap_ci(x, n_resamples=2000, seed=11), direct)
    scipy_stats = pytest.importorskip("scipy.stats")
    wide = scipy_stats.bootstrap((x,), np.mean, n_resamples=20000, method="percentile",
                                 random_state=np.random.default_rng(5)).confidence_interval
    assert np.allclose(bootstrap_ci(x, n_resamples=20000), (wide.low, wide.high), atol=0.02)
    assert all(np.isnan(bootstrap_ci([1.0])))


def synthetic_table():
    """Per-seed numbers of two protocols and two intensities, 5 paired seeds each."""
    rng = np.random.default_rng(0)
    rows = []
    for name, shift in [("itbs", 0.3), ("sham-itbs", 0.0)]:
        for intensity in ["70% RMT", "90% RMT"]:
            for seed in range(5):
                rows.append({"run": len(rows), "run_id": f"r{len(rows)}", "protocol.name": name,
                             "protocol.intensity": intensity, "patch.seed": 0, "session.seed": seed,
                             "status": "done", "error": "", "wall_s": 1.0,
                             "m": seed * 0.1 + shift + (intensity == "90% RMT") + rng.normal(0, 0.01)})
    rows.append(dict(rows[0], run=len(rows), run_id="failed", **{"session.seed": 9, "status": "failed",
                                                                "m": np.nan}))
    return pd.DataFrame(rows)


def test_report_means_intervals_and_paired_effects(tmp_path):
    table = synthetic_table()
    result = report(table, control="protocol.name=sham-itbs", n_resamples=3000, seed=4, out=tmp_path)
    assert len(result) == 4 and set(result["metric"]) == {"m"}
    row = result[(result["protocol.name"] == "itbs") & (result["protocol.intensity"] == "90% RMT")].iloc[0]
    x = table[(table["protocol.name"] == "itbs") & (table["protocol.intensity"] == "90% RMT")
              & (table["status"] == "done")]
    c = table[(table["protocol.name"] == "sham-itbs") & (table["protocol.intensity"] == "90% RMT")]
    assert row["n"] == 5 and np.isclose(row["mean"], x["m"].mean())
    assert np.allclose([row["ci_low"], row["ci_high"]], bootstrap_ci(x["m"], n_resamples=3000, seed=4))
    d = x.sort_values("session.seed")["m"].to_numpy() - c.sort_values("session.seed")["m"].to_numpy()
    assert row["n_pairs"] == 5 and np.isclose(row["effect"], d.mean()) and abs(row["effect"] - 0.3) < 0.02
    interval = bootstrap_ci(d, n_resamples=3000, seed=4)
    assert np.allclose([row["effect_ci_low"], row["effect_ci_high"]], interval)
    control = result[result["protocol.name"] == "sham-itbs"]
    assert control["effect"].isna().all() and (control["n_pairs"] == 0).all()
    assert {"report.csv", "report.md", "report.png"} <= {p.name for p in tmp_path.iterdir()}
    assert "3000 resamples" in (tmp_path / "report.md").read_text()
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "report.csv"), result, check_dtype=False)
    with pytest.raises(ValueError, match="not an axis"):
        report(table, control="patch.scenario=healthy")
    with pytest.raises(ValueError, match="nope"):
        report(table, metrics=["nope"])


def test_cli_report_reads_the_sweep_folder(client, tmp_path, capsys):
    sweep = sw.sweep_from_dict({"axes": {"coil.distance_mm": [2.0, 4.0], "noise_seeds": [0, 1, 2]},
                                "report": {"control": "coil.distance_mm=2.0", "metrics": ["x"]}}, "cli")
    sw.run_sweep(sweep, tmp_path, run=synthetic, client=client, progress=False, log=None)
    assert main(["report", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "| coil.distance_mm |" in printed and "effect" in printed
    result = pd.read_csv(tmp_path / "report.csv")
    assert list(result["metric"]) == ["x", "x"] and list(result["n_pairs"]) == [0, 3]
    assert np.isfinite(result["effect"].iloc[1]) and np.isnan(result["effect"].iloc[0])
    assert main(["report", str(tmp_path), "--control", "coil.distance_mm=4.0", "--resamples", "500"]) == 0
    assert pd.read_csv(tmp_path / "report.csv")["effect"].notna().sum() == 1
    assert main(["report", str(tmp_path / "nothing")]) == 2


def test_cli_sweep_on_a_running_cluster_exits_non_zero_on_failure(client, tmp_path, capsys):
    # tiny session runs on the module's cluster (its workers compiled this network already);
    # a head file that is not a mesh passes the checks of the keys but fails when the run starts
    path, broken = tmp_path / "s.toml", tmp_path / "broken.msh"
    broken.write_text("not a mesh\n")
    base = "".join(f"{k} = {json.dumps(v)}\n" for k, v in TINY.items())
    path.write_text(f'[base]\n{base}[axes]\n"head.model" = ["sphere", "{broken}"]\nnoise_seeds = [3]\n')
    out = tmp_path / "out"
    address = client.scheduler.address
    assert main(["sweep", str(path), "--out", str(out), "--scheduler", address, "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "1 of 2 runs failed" in err and f"head.model = '{broken}'" in err
    table = pd.read_parquet(out / "runs.parquet")
    assert list(table["status"]) == ["done", "failed"] and table["error"].iloc[1]
    assert table["mep_before"].notna().iloc[0]
    assert (out / "errors" / f"{table['run_id'].iloc[1]}.txt").is_file()


def test_import_coupling_stays_light():
    import subprocess

    code = "import coupling, coupling.sweep, coupling.report, sys; print(sorted({'dask', 'distributed', " \
           "'pandas', 'pyarrow'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1])))
    assert done.stdout.strip() == "[]"


def test_run_config_default_seeds_are_columns():
    sweep = small_sweep(**{"coil.distance_mm": [2.0]})
    assert sweep.runs() == [{"coil.distance_mm": 2.0}]
    assert RunConfig().patch.seed == 0
