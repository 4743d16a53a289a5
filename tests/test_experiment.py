"""The after-effect harness (coupling.experiment): protocol and sham runs paired by seed, one RMT
per patch shared by all its runs, the MEPs in the right (network, noise, probe) cells, resume,
clear errors before any work, the targets rows judged; and one tiny run through the real
simulation that checks the machinery, not any calibrated number.

The fast tests use run functions defined here (known numbers from the configuration they get)
on a threaded Dask client; the real run needs worker processes (gmsh meshes the head)."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("distributed")
pd = pytest.importorskip("pandas")

import coupling  # noqa: E402
from coupling.config import parse_intensity  # noqa: E402
from coupling.experiment import RMT_FOLDER, SESSIONS_FOLDER  # noqa: E402
from coupling.sweep import read_table  # noqa: E402
from coupling.targets import Design, load_targets  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DESIGN = Design(network_seeds=(3, 5), calibration_network_seeds=(100,), noise_seeds=(0, 7, 9),
                window_min=(0, 30), probe_minutes=(0.0, 10.0), test_percent_rmt=120.0, n_test=4, dt_ms=0.1,
                bridge_min_gap_s=0.0, rmt_trials=3, rmt_tolerance_pct=5.0, baseline_floor=0.05,
                control="sham", resamples=1000, confidence=0.95, ci_method="percentile", bootstrap_seed=0,
                metric="m", pass_rule="p")
BASE = coupling.RunConfig().with_values({"patch.scenario": "healthy"})
CALLS = []


def fake_rmt(config, folder):
    """An RMT of 40 + network seed % MSO (41 + for val66met patches)."""
    CALLS.append(("rmt", config.patch.seed, config.session.seed))
    return {"rmt_percent_mso": 40.0 + config.patch.seed + (config.patch.scenario == "val66met")}


def fake_session(config, folder):
    """MEPs that encode the seeds: before 1 + network / 10 + noise / 100 (protocol and sham
    alike, as common random numbers give), after = before x (1 + minutes / 100 + 0.5 unless sham)."""
    name = config.protocol.name
    CALLS.append(("session", name, config.patch.seed, config.session.seed))
    before = 1.0 + config.patch.seed / 10 + config.session.seed / 100
    gain = 0.0 if Path(name).stem.startswith("sham-") else 0.5
    mso, unit = parse_intensity(config.protocol.intensity)
    test, test_unit = parse_intensity(config.protocol.test_intensity)
    assert unit == test_unit == "mso"
    (folder / "numbers.txt").write_text("ok\n")
    return {"mep_before": before, "percent_mso": mso, "test_percent_mso": test,
            "mep_after": {str(float(m)): before * (1 + m / 100 + gain) for m in config.session.probe_minutes}}


def test_protocol_and_sham_share_patch_rmt_and_noise_and_land_in_their_cells(threaded_client, tmp_path):
    CALLS.clear()
    conditions = [coupling.Condition("itbs80", coupling.itbs(), 80.0),
                  coupling.Condition("rtms20_val", coupling.rtms(20.0, 10), 90.0, "val66met")]
    kw = dict(run=fake_session, rmt_run=fake_rmt, client=threaded_client, progress=False, compile_cache=False,
              log=None)
    effects = coupling.measure_after_effects(BASE, conditions, DESIGN, tmp_path, **kw)
    rmt_calls = [c for c in CALLS if c[0] == "rmt"]
    assert sorted(rmt_calls) == [("rmt", n, coupling.RMT_SEED) for n in (3, 3, 5, 5)]   # one per patch
    assert len([c for c in CALLS if c[0] == "session"]) == 2 * 2 * 2 * 3

    net, noise, minutes = np.array([3, 5]), np.array([0, 7, 9]), np.array([0.0, 10.0])
    before = 1 + net[:, None] / 10 + noise[None, :] / 100
    for name, extra in (("itbs80", 0.0), ("rtms20_val", 1.0)):
        e = effects[name]
        assert e.before.shape == e.sham_before.shape == (2, 3)
        assert e.after.shape == e.sham_after.shape == (2, 3, 2)
        np.testing.assert_allclose(e.before, before)
        np.testing.assert_allclose(e.sham_before, before)
        np.testing.assert_allclose(e.after, before[..., None] * (1.5 + minutes / 100))
        np.testing.assert_allclose(e.sham_after, before[..., None] * (1 + minutes / 100))
        np.testing.assert_allclose(e.ratios - e.sham_ratios, 0.5)
        np.testing.assert_allclose(e.changes(DESIGN.baseline_floor), 50.0)
        np.testing.assert_allclose(e.rmt_percent_mso, 40 + net + extra)
        rmt = 40 + net + extra
        np.testing.assert_allclose(e.percent_mso, e.condition.percent_rmt / 100 * rmt, atol=1e-6)
        np.testing.assert_allclose(e.test_percent_mso, 1.2 * (40 + net + extra), atol=1e-6)
    assert effects["rtms20_val"].scenario == "val66met" and effects["itbs80"].scenario == "healthy"

    table = read_table(tmp_path / SESSIONS_FOLDER)
    assert (table["status"] == "done").all()
    table["sham"] = table["protocol.name"].map(lambda n: Path(n).stem.startswith("sham-"))
    pairs = table.groupby(["protocol.name", "patch.seed", "session.seed"]).size()
    assert (pairs == 1).all()
    for _, group in table.groupby(["patch.scenario", "patch.seed", "session.seed"]):
        active, control = group[~group["sham"]], group[group["sham"]]
        assert len(active) == len(control) == 1                      # one condition per scenario here
        for key in ("protocol.intensity", "protocol.test_intensity", "percent_mso", "mep_before"):
            assert active[key].item() == control[key].item()
    assert set(table["protocol.name"]) >= {"itbs", "sham-itbs"}      # built-in names where they exist
    files = sorted(p.name for p in (tmp_path / "protocols").iterdir())
    assert files == ["rtms-20Hz.toml", "sham-rtms-20Hz.toml"]      # schedule files for the others
    runs = tmp_path / SESSIONS_FOLDER / "runs"
    assert all((runs / rid / "numbers.txt").is_file() for rid in table["run_id"])

    CALLS.clear()                                                   # resume: nothing runs again
    again = coupling.measure_after_effects(BASE, conditions, DESIGN, tmp_path, **kw)
    assert CALLS == []
    np.testing.assert_array_equal(again["itbs80"].after, effects["itbs80"].after)
    assert len(read_table(tmp_path / RMT_FOLDER)) == 4


def test_targets_rows_are_judged_with_their_reference_on_the_same_seeds(threaded_client, tmp_path,
                                                                       validation_script):
    targets = load_targets(ROOT / "validation" / "targets.toml")
    design = replace(DESIGN, probe_minutes=(0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0))
    kw = dict(run=fake_session, rmt_run=fake_rmt, client=threaded_client, progress=False, compile_cache=False,
              log=None)
    results = coupling.run_targets(targets, BASE, tmp_path, rows=["itbs600_val66met"], design=design, **kw)
    assert list(results) == ["itbs600", "itbs600_val66met"]          # the reference comes along
    row, reference = results["itbs600_val66met"], results["itbs600"]
    assert row.effect.scenario == "val66met" and reference.effect.scenario == "healthy"
    assert row.effect.network_seeds == reference.effect.network_seeds == design.network_seeds
    assert reference.result.value == pytest.approx(50.0)  # the fake's change is 50 at every probe
    assert row.result.value == pytest.approx(0.0, abs=1e-9)          # the same change as its reference
    assert not row.result.passed                                    # band [-100, -30]
    assert row.changes.shape == (2, 3, 7)
    script = validation_script("after_effects")     # its figure, from these rows
    script.plot(results, tmp_path / "rows.png", "fake runs")
    assert (tmp_path / "rows.png").stat().st_size > 0
    with pytest.raises(ValueError, match="rows: expected names among"):
        coupling.run_targets(targets, BASE, tmp_path, calibration=True, rows=["imtbs600"], design=design,
                             **kw)


def test_target_protocols():
    targets = {t.name: t for t in load_targets(ROOT / "validation" / "targets.toml").targets}
    assert coupling.target_protocol(targets["itbs600"]) == coupling.itbs()
    assert coupling.target_protocol(targets["ctbs300"]) == coupling.ctbs(300)
    chen = coupling.target_protocol(targets["rtms0.9hz810"])
    assert chen.n_pulses == 810 and chen.name == "rtms0.9hz810"
    assert np.diff(chen.times_ms)[0] == pytest.approx(1000 / 0.9, abs=1e-3)
    gridded = coupling.target_protocol(targets["rtms0.9hz810"], dt_ms=0.1)     # 1111.1 ms is off the grid
    assert np.all(gridded.pulse_times_us % 100 == 0)
    assert np.abs(gridded.times_ms - chen.times_ms).max() <= 0.05 + 1e-9
    assert gridded.duration_us == chen.duration_us and gridded.n_pulses == 810
    assert coupling.target_protocol(targets["itbs600"], dt_ms=0.1) == coupling.itbs()   # on the grid already
    with pytest.raises(ValueError, match="two pulses fall on one step"):
        coupling.rtms(1000.0, 3).on_grid(5.0)


@pytest.mark.parametrize("change, message", [
    (dict(percent_rmt=250.0), r"condition 'c': percent_rmt must be in \(0, 200\]"),
    (dict(scenario="sad"), "scenario must be one of"),
    (dict(protocol=coupling.sham(coupling.itbs())), "not a sham"),
    (dict(network_seeds=[]), "network_seeds: expected distinct integers"),
    (dict(network_seeds=[1, 1]), "network_seeds: expected distinct integers"),
    (dict(design=replace(DESIGN, noise_seeds=(-1,))), r"noise_seeds: expected distinct integers in \["),
    (dict(design=replace(DESIGN, probe_minutes=(10.0, 5.0))), "design.probe_minutes: expected increasing"),
    (dict(design=replace(DESIGN, test_percent_rmt=0.0)), r"design.test_percent_rmt: expected in \(0, 200\]"),
    (dict(base=coupling.RunConfig().with_values({"patch.n_neurons": 100_000, "head.max_edge_mm": 1.0})),
     "memory|tetrahedra"),
])
def test_bad_input_is_refused_before_any_work(tmp_path, change, message):
    args = dict(base=BASE, design=DESIGN, network_seeds=None, protocol=coupling.itbs(), percent_rmt=80.0,
                scenario="")
    args.update(change)
    condition = coupling.Condition("c", args.pop("protocol"), args.pop("percent_rmt"), args.pop("scenario"))
    CALLS.clear()
    with pytest.raises(ValueError, match=message):
        coupling.measure_after_effects(args["base"], [condition], args["design"], tmp_path / "out",
                                       network_seeds=args["network_seeds"], run=fake_session,
                                       rmt_run=fake_rmt, progress=False, log=None)
    assert CALLS == []
    assert not (tmp_path / "out" / RMT_FOLDER).exists() and not (tmp_path / "out" / SESSIONS_FOLDER).exists()


def test_wrong_types_are_named():
    with pytest.raises(TypeError, match="base must be a coupling.RunConfig"):
        coupling.measure_after_effects({}, [coupling.Condition("c", coupling.itbs(), 80.0)], DESIGN, "x")
    with pytest.raises(TypeError, match="targets must be a coupling.targets.Targets"):
        coupling.run_targets("validation/targets.toml", BASE, "x")


@pytest.mark.slow
def test_a_tiny_real_run_pairs_sham_and_gives_finite_meps(tmp_path):
    """On a one-worker process cluster: gmsh (the head) must run in a process's main thread."""
    from distributed import Client, LocalCluster

    base = coupling.RunConfig().with_values({"head.model": "sphere", "coil.centre": "F3", "coil.handle": "",
                                             "head.max_edge_mm": 12.0, "patch.n_neurons": 20,
                                             "patch.scenario": "healthy", "session.after_s": 0.05})
    design = replace(DESIGN, network_seeds=(0, 1), noise_seeds=(0,), probe_minutes=(0.0,), n_test=2,
                     rmt_trials=2, rmt_tolerance_pct=10.0)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0",
                      silence_logs=50) as cluster, Client(cluster) as client:
        effect = coupling.after_effect(base, coupling.rtms(20.0, 5), 100.0, design, tmp_path, client=client,
                                       progress=False, log=None)
    assert effect.before.shape == effect.sham_before.shape == (2, 1)
    assert effect.after.shape == effect.sham_after.shape == (2, 1, 1)
    for values in (effect.before, effect.after, effect.sham_after, effect.rmt_percent_mso):
        assert np.all(np.isfinite(values))
    assert np.all((effect.rmt_percent_mso > 0) & (effect.rmt_percent_mso <= 100))
    np.testing.assert_array_equal(effect.before, effect.sham_before)  # same patch, RMT, noise: same baseline
    table = read_table(tmp_path / SESSIONS_FOLDER)
    assert len(table) == 4 and (table["status"] == "done").all()
    for rid in table["run_id"]:
        assert (tmp_path / SESSIONS_FOLDER / "runs" / rid / "summary.json").is_file()


def test_calibration_search_replays_the_pre_registered_pattern_search(validation_script):
    script = validation_script("calibrate")
    minimum = (2.0, -1.0)
    loss = lambda p: (p[0] - minimum[0]) ** 2 + (p[1] - minimum[1]) ** 2 + 0.1 * p[0]
    inside = lambda p: -5 <= p[0] <= 3 and -4 <= p[1] <= 4
    losses, order = {}, []
    while batch := script.next_batch(losses, inside, budget=100):
        losses[batch[0]] = loss(batch[0])
        order.append(batch[0])
    assert order[:3] == [(0.0, 0.0), (1.0, 0.0), (-1.0, 0.0)]            # start, then DIRECTIONS order
    assert len(set(order)) == len(order)                               # nothing twice
    best = min(order, key=loss)
    assert best == minimum                                             # the mesh point of least loss
    refined = {(minimum[0] + 0.5 * a, minimum[1] + 0.5 * b) for a, b in script.DIRECTIONS}
    assert set(order[-8:]) == refined                                  # one sweep at factors sqrt 2 last
    assert script.next_batch({p: loss(p) for p in order[:3]}, inside, budget=3) == []   # budget spent
    assert script.next_batch({}, lambda p: True, budget=1) == [(0.0, 0.0)]
    # resuming: the evaluations read back must be the search's own, in its order, with this setup
    setup = {"targets_sha256": "a", "start": {"x": 1.0}}
    logged = [dict(exponents=list(p), loss=loss(p), **setup) for p in order[:5]]
    assert script.resumable(logged, inside, 100, setup, {}) is None
    assert "proposes" in script.resumable([logged[1], logged[0]], inside, 100, setup, {})
    other = dict(setup, targets_sha256="b")
    assert "another targets_sha256" in script.resumable(logged, inside, 100, other, {})
    unrecorded = [{k: v for k, v in e.items() if k != "start"} for e in logged]     # the report's record
    assert script.resumable(unrecorded, inside, 100, setup, {"start": {"x": 1.0}}) is None
    assert "another start" in script.resumable(unrecorded, inside, 100, setup, {"start": {"x": 2.0}})
    assert script.best_point([dict(loss=None), dict(loss=1.0)])["loss"] == 1.0     # NaN written as null


def test_a_calibration_evaluation_scores_the_calibration_rows_with_the_loss(threaded_client, tmp_path,
                                                                           validation_script):
    script = validation_script("calibrate")
    targets = load_targets(ROOT / "validation" / "targets.toml")
    kw = dict(run=fake_session, rmt_run=fake_rmt, client=threaded_client, progress=False, compile_cache=False,
              log=None)
    design = replace(DESIGN, calibration_network_seeds=(8, 9))       # fake RMTs 48, 49 % MSO
    evaluation = script.evaluate(targets, BASE, design, (1.0, -1.0), tmp_path, **kw)
    start = targets.calibration.start
    assert evaluation["parameters"] == {"plasticity.gamma_p_per_s": 2 * start["plasticity.gamma_p_per_s"],
                                        "plasticity.gamma_d_per_s": start["plasticity.gamma_d_per_s"] / 2}
    human = {t.name: t.human_change_pct for t in targets.by_role("calibration")}
    assert list(evaluation["rows"]) == list(human)                     # the calibration rows only
    # the fake's change is 50 percentage points at every probe of every row
    assert evaluation["loss"] == pytest.approx(sum(((50.0 - h) / 15.0) ** 2 for h in human.values()))
    assert evaluation["network_seeds"] == [8, 9]
    runs = read_table(Path(evaluation["runs"]) / SESSIONS_FOLDER)
    assert len(runs) == 3 * 2 * 2 * len(DESIGN.noise_seeds)           # rows x (protocol, sham) x seeds
    assert script.parameters_sha256(evaluation["parameters"]) == script.parameters_sha256(
        dict(reversed(list(evaluation["parameters"].items()))))
