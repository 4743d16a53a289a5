"""The trial harness (coupling.trial): every arm's courses and its sham's on the same seeds and
doses, one RMT per patch, each arm's calendar keys in its runs, the landmarks in the right
(network, noise, point) cells, resume, clear errors before any work; the course landmarks
(CourseResult.points) and the protocol names of the sweeps (config_protocol_names).

Run functions defined here return known numbers from the configuration they get, on a
threaded Dask client."""

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("distributed")
pytest.importorskip("pandas")

import coupling  # noqa: E402
from coupling.config import parse_intensity  # noqa: E402
from coupling.experiment import RMT_FOLDER  # noqa: E402
from coupling.sweep import read_table  # noqa: E402
from coupling.targets import Design  # noqa: E402
from coupling.trial import COURSES_FOLDER  # noqa: E402

DESIGN = Design(network_seeds=(3, 5), calibration_network_seeds=(100,), noise_seeds=(0, 7),
                window_min=(0, 30), probe_minutes=(0.0,), test_percent_rmt=150.0, n_test=4, dt_ms=0.1,
                bridge_min_gap_s=0.0, rmt_trials=3, rmt_tolerance_pct=5.0, baseline_floor=0.05,
                control="sham", resamples=1000, confidence=0.95, ci_method="percentile", bootstrap_seed=0,
                metric="m", pass_rule="p")
BASE = coupling.RunConfig().with_values({"patch.scenario": "depressed"})
CALLS = []
PROJECTIONS = ("L23E_to_L23E", "AFF_to_L5E")
EE = ("L23E_to_L23E", "L23E_to_L5E", "L5E_to_L23E", "L5E_to_L5E")


def fake_rmt(config, folder):
    """An RMT of 40 + network seed % MSO (+2 on a healthy patch)."""
    CALLS.append(("rmt", config.patch.scenario, config.patch.seed))
    return {"rmt_percent_mso": 40.0 + config.patch.seed + 2.0 * (config.patch.scenario == "healthy")}


def fake_course(config, folder):
    """Landmarks start (day 0), week_1 (day 4) and, on a saint calendar, no week 2 but the
    follow-up (day 5); every value encodes the seeds: weight = seeds + gain x point index (gain
    1 for an active protocol, 0 for sham), MEP = 1 + gain x index / 10, BDNF = 2 x weight."""
    name = Path(config.protocol.name).stem
    CALLS.append(("course", name, config.patch.seed, config.session.seed, config.course.calendar))
    mso, unit = parse_intensity(config.protocol.intensity)
    test, test_unit = parse_intensity(config.protocol.test_intensity)
    assert unit == test_unit == "mso"
    seeds = config.patch.seed + config.session.seed / 100
    gain = 0.0 if name.startswith("sham-") else 1.0
    days = {"start": 0.0, "week_1": 4.0, "follow_up": 5.0}
    if config.course.calendar == "daily":
        days["week_2"] = 11.0
        days["follow_up"] = 12.0
    points = {}
    for k, (label, day) in enumerate(sorted(days.items(), key=lambda kv: kv[1])):
        w = seeds + gain * k
        points[label] = dict(days=day, mep=1.0 + gain * k / 10, bdnf={PROJECTIONS[0]: 2 * w},
                             weights={p: w + i for i, p in enumerate(PROJECTIONS)})
    synapses = {p: 100 * (i + 1) + config.patch.seed for i, p in enumerate(PROJECTIONS)}
    return {"percent_mso": mso, "test_percent_mso": test, "points": points, "synapses": synapses}


ARMS = [coupling.Arm("itbs_saint", coupling.itbs(), 90.0, {"course.calendar": "saint", "course.days": 1}),
        coupling.Arm("10hz_daily", coupling.rtms(10.0, 20), 120.0,
                     {"course.calendar": "daily", "course.weeks": 2}),
        coupling.Arm("healthy_reference", coupling.sham(coupling.itbs()), 90.0,
                     {"course.calendar": "saint", "course.days": 1}, "healthy")]
KW = dict(run=fake_course, rmt_run=fake_rmt, progress=False, compile_cache=False, log=None)


def test_each_arm_and_its_sham_share_seeds_doses_and_calendar_and_land_in_their_cells(threaded_client,
                                                                                      tmp_path):
    CALLS.clear()
    results = coupling.run_trial(BASE, ARMS, DESIGN, tmp_path, client=threaded_client, **KW)
    assert sorted(c for c in CALLS if c[0] == "rmt") == [("rmt", s, n) for s in ("depressed", "healthy")
                                                          for n in (3, 5)]
    courses = [c for c in CALLS if c[0] == "course"]
    assert len(courses) == (2 * 2 + 1) * 2 * 2                     # (arms + shams) x network x noise
    assert {(c[1], c[4]) for c in courses} == {("itbs", "saint"), ("sham-itbs", "saint"),
                                               ("rtms-10Hz", "daily"), ("sham-rtms-10Hz", "daily")}

    net, noise = np.array([3, 5]), np.array([0, 7])
    seeds = net[:, None] + noise[None, :] / 100
    saint, daily = results["itbs_saint"], results["10hz_daily"]
    assert saint.points == ("start", "week_1", "follow_up") and daily.points == ("start", "week_1", "week_2",
                                                                                  "follow_up")
    np.testing.assert_array_equal(daily.days, [0.0, 4.0, 11.0, 12.0])
    for r in (saint, daily):
        k = np.arange(len(r.points))
        assert set(r.weights) == set(r.sham_weights) == set(PROJECTIONS) and set(r.bdnf) == {PROJECTIONS[0]}
        for i, p in enumerate(PROJECTIONS):
            np.testing.assert_allclose(r.weights[p], seeds[..., None] + k + i)
            np.testing.assert_allclose(r.sham_weights[p], seeds[..., None] + i + 0 * k)
        np.testing.assert_allclose(r.mep, np.broadcast_to(1 + k / 10, (2, 2, k.size)))
        np.testing.assert_allclose(r.sham_mep, 1.0)
        np.testing.assert_allclose(r.bdnf[PROJECTIONS[0]], 2 * r.weights[PROJECTIONS[0]])
        np.testing.assert_allclose(r.rmt_percent_mso, 40 + net)
        np.testing.assert_array_equal(r.synapses[PROJECTIONS[1]], 200 + net)       # per network seed
        np.testing.assert_allclose(r.percent_mso, r.arm.percent_rmt / 100 * (40 + net), atol=1e-6)
        assert r.scenario == "depressed"
    reference = results["healthy_reference"]
    assert reference.sham_mep is None and reference.sham_weights is None and reference.scenario == "healthy"
    np.testing.assert_allclose(reference.rmt_percent_mso, 42 + net)
    np.testing.assert_allclose(reference.weights[PROJECTIONS[0]], seeds[..., None] + np.zeros(3))

    table = read_table(tmp_path / COURSES_FOLDER)
    table["sham"] = table["protocol.name"].map(lambda n: Path(n).stem.startswith("sham-"))
    for _, group in table.groupby(["course.calendar", "patch.scenario", "patch.seed", "session.seed"]):
        active, control = group[~group["sham"]], group[group["sham"]]
        if len(active):
            assert len(active) == len(control) == 1
            for key in ("protocol.intensity", "protocol.test_intensity", "course.days", "course.weeks"):
                assert active[key].item() == control[key].item()
    assert set(table["course.weeks"]) == {1, 2}                       # the base's weeks where not given
    doc = results["10hz_daily"].to_dict()
    assert doc["course"] == {"course.calendar": "daily", "course.weeks": 2} and len(doc["mep"]) == 2

    CALLS.clear()                                                    # resume: nothing runs again
    again = coupling.run_trial(BASE, ARMS, DESIGN, tmp_path, client=threaded_client, **KW)
    assert CALLS == []
    np.testing.assert_array_equal(again["10hz_daily"].weights[PROJECTIONS[1]], daily.weights[PROJECTIONS[1]])
    assert len(read_table(tmp_path / RMT_FOLDER)) == 4


@pytest.mark.parametrize("arms, message", [
    ([], "expected at least one Arm"),
    ([ARMS[0], ARMS[0]], "names must be distinct"),
    ([coupling.Arm("a", coupling.itbs(), 0.0)], r"arm 'a': percent_rmt must be in \(0, 200\]"),
    ([coupling.Arm("a", coupling.itbs(), 80.0, scenario="sad")], "scenario must be one of"),
    ([coupling.Arm("a", coupling.itbs(), 80.0, {"patch.seed": 1})], "'patch.seed' is not a course"),
    ([coupling.Arm("a", coupling.itbs(), 80.0, {"course.weeks": 0})], "course.weeks"),
    ([coupling.Arm("a", coupling.itbs(), 80.0, {"course.calendar": "weekly"})], "course.calendar"),
])
def test_bad_arms_are_refused_before_any_work(tmp_path, arms, message):
    CALLS.clear()
    with pytest.raises(ValueError, match=message):
        coupling.run_trial(BASE, arms, DESIGN, tmp_path / "out", **KW)
    assert CALLS == [] and not (tmp_path / "out" / RMT_FOLDER).exists()


def test_a_dose_beyond_the_stimulator_is_named_before_any_course(threaded_client, tmp_path):
    CALLS.clear()
    arm = coupling.Arm("strong", coupling.itbs(), 200.0, {"course.calendar": "saint", "course.days": 1})
    with pytest.raises(ValueError, match=r"run_trial: arm 'strong' on network seed 20 \(depressed\)"):
        coupling.run_trial(BASE, [arm], DESIGN, tmp_path, network_seeds=[3, 20], client=threaded_client, **KW)
    assert [c[0] for c in CALLS] == ["rmt", "rmt"]                   # RMT 60 % MSO: 200 % of it is 120


def test_wrong_types_are_named(tmp_path):
    with pytest.raises(TypeError, match=r"arms\[0\]: expected a coupling.Arm"):
        coupling.run_trial(BASE, [coupling.Condition("c", coupling.itbs(), 80.0)], DESIGN, tmp_path)
    with pytest.raises(TypeError, match="run_trial: design must be a coupling.targets.Design"):
        coupling.run_trial(BASE, ARMS, {}, tmp_path)
    with pytest.raises(ValueError, match="run_trial: network_seeds: expected distinct"):
        coupling.run_trial(BASE, ARMS, DESIGN, tmp_path, network_seeds=[1, 1])


@pytest.mark.slow
def test_a_tiny_real_trial_reads_every_landmark_and_starts_arm_and_sham_alike(tmp_path):
    """Real courses (coupling.CourseRun) on a one-worker process cluster: gmsh (the head) must
    run in a process's main thread."""
    from dataclasses import replace

    from distributed import Client, LocalCluster

    base = coupling.RunConfig().with_values({"head.model": "sphere", "coil.centre": "F3", "coil.handle": "",
                                             "head.max_edge_mm": 12.0, "patch.n_neurons": 20,
                                             "session.after_s": 0.05, "course.final_probe_days": 0.5})
    design = replace(DESIGN, network_seeds=(0,), noise_seeds=(0,), n_test=2, rmt_trials=2,
                     rmt_tolerance_pct=10.0, test_percent_rmt=110.0)
    arm = coupling.Arm("tbs", coupling.itbs(30), 100.0, {"course.calendar": "daily", "course.weeks": 2,
                                                         "course.days_per_week": 1})
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0",
                      silence_logs=50) as cluster, Client(cluster) as client:
        r = coupling.run_trial(base, [arm], design, tmp_path, client=client, progress=False, log=None)["tbs"]
    assert r.points == ("start", "week_1", "week_2", "follow_up")
    assert 0 < r.days[1] < 1 and 7 < r.days[2] < 8 and r.days[3] == pytest.approx(r.days[2] + 0.5)  # 9 am
    plastic = {p for p in r.weights}
    assert {"L23E_to_L23E", "L5E_to_L5E", "AFF_to_L5E"} <= plastic == set(r.sham_weights)
    for values in (r.mep, r.sham_mep, *r.weights.values(), *r.sham_weights.values(), *r.bdnf.values()):
        assert values.shape == (1, 1, 4) and np.all(np.isfinite(values))
    assert set(r.synapses) == plastic and all(c.shape == (1,) and c[0] > 0 for c in r.synapses.values())
    for p in plastic:                    # same patch, same settling seed: the same start, bit for bit
        assert r.weights[p][..., 0] == r.sham_weights[p][..., 0]
    assert r.mep[..., 0] == r.sham_mep[..., 0]
    table = pytest.importorskip("pandas").read_parquet(tmp_path / COURSES_FOLDER / "runs.parquet")
    assert len(table) == 2 and (table["status"] == "done").all()
    for rid in table["run_id"]:
        assert (tmp_path / COURSES_FOLDER / "runs" / rid / "course.h5").is_file()


def _course(calendar, labels, sessions):
    n = len(labels)
    return coupling.CourseResult(coupling.itbs(), calendar, 30.0, np.linspace(0, 20, n), np.array(sessions),
                                 np.array(labels), np.ones(n), {}, {})


def test_course_landmarks_are_the_last_session_of_each_calendar_week():
    # two weeks of three days: sessions on days 0, 1, 2, 7, 8, 9
    calendar = coupling.Calendar.daily(2, days_per_week=3)
    labels = ["start"] + ["before", "after"] * 6 + ["final"]
    sessions = [-1] + [k for k in range(6) for _ in (0, 1)] + [6]
    points = _course(calendar, labels, sessions).points()
    assert points == {"start": 0, "week_1": 6, "week_2": 12, "follow_up": 13}
    # a course stopped after its fourth session: week 2 so far, no follow-up
    assert _course(calendar, labels[:9], sessions[:9]).points() == {"start": 0, "week_1": 6, "week_2": 8}
    # sessions on days 0 and 15: weeks 1 and 3, none in week 2
    gap = coupling.Calendar.on_days([0, 15])
    assert _course(gap, ["start", "before", "after", "before", "after"], [-1, 0, 0, 1, 1]).points() == \
        {"start": 0, "week_1": 2, "week_3": 4}


def test_config_protocol_names_are_built_in_names_or_schedule_files(tmp_path):
    own = coupling.rtms(10.0, 20)
    names = coupling.config_protocol_names([coupling.itbs(), coupling.sham(coupling.itbs()), own,
                                            coupling.sham(own)], tmp_path, "here")
    assert names[:2] == ["itbs", "sham-itbs"]
    assert [Path(n).name for n in names[2:]] == ["rtms-10Hz.toml", "sham-rtms-10Hz.toml"]
    assert coupling.read_protocol(names[3]) == coupling.sham(own)
    renamed = coupling.rtms(10.0, 20).__class__(**{**own.__dict__, "name": "itbs"})
    with pytest.raises(ValueError, match="here: two different protocols are named 'itbs'"):
        coupling.config_protocol_names([coupling.itbs(), renamed], tmp_path, "here")
    assert coupling.config_protocol_names([renamed], tmp_path)[0].endswith("itbs.toml")   # not the built-in


def _arm_result(name, scenario, ee_gain, sham_gain, mep_gain, network=4, noise=2, sham=False):
    """An ArmResult with landmarks start, week_1, follow_up: every E->E projection at 0.75 nS
    (1.0 on a healthy patch) plus the network seed's index / 100 at the start, rising by ee_gain
    (nS) by week 1 and staying; its sham rises by sham_gain; MEP 1 x (1 + mep_gain) from week 1,
    sham's 1; the afferents at 0.2 nS throughout."""
    from coupling.trial import Arm, ArmResult

    level = (1.0 if scenario == "healthy" else 0.75) + np.arange(network)[:, None, None] / 100
    steps = np.array([0.0, 1.0, 1.0])
    shape = (network, noise, 3)
    grow = lambda gain: {**{p: np.broadcast_to(level + gain * steps, shape) for p in EE},
                         "AFF_to_L5E": np.full(shape, 0.2)}
    mep = lambda gain: np.broadcast_to(1.0 + gain * steps, shape)
    control = (None, None, None) if sham else (mep(0.0), grow(sham_gain), {})
    protocol = coupling.sham(coupling.itbs()) if sham else coupling.itbs()
    return ArmResult(Arm(name, protocol, 120.0, {}, scenario), scenario, tuple(range(network)),
                     tuple(range(noise)), ("start", "week_1", "follow_up"), np.array([0.0, 4.0, 11.0]),
                     np.full(network, 40.0), np.full(network, 48.0), mep(mep_gain), grow(ee_gain), {},
                     *control, synapses={p: np.full(network, 100.0) for p in (*EE, "AFF_to_L5E")})


def test_depression_checks_on_courses_with_known_effects(validation_script):
    from dataclasses import replace

    script = validation_script("depression")
    results = {"ten_hz_clinical": _arm_result("ten_hz_clinical", "depressed", 0.05, 0.03, 0.2),
               "itbs_clinical": _arm_result("itbs_clinical", "depressed", 0.02, -0.01, 0.1),
               "ten_hz_clinical_val66met": _arm_result("v1", "depressed_val66met", 0.03, 0.01, 0.2),
               "itbs_clinical_val66met": _arm_result("v2", "depressed_val66met", 0.01, 0.0, 0.05),
               "itbs_clinical_healthy": _arm_result("p", "healthy", 0.01, 0.0, 0.0),
               "healthy_clinical": _arm_result("h", "healthy", 0.0, 0.0, 0.0, sham=True)}
    minutes = {"ten_hz_clinical": 20.0, "itbs_clinical": 4.0}
    design = replace(DESIGN, ci_method="percentile", resamples=2000)
    np.testing.assert_allclose(script.effect_at_end(results["ten_hz_clinical"]), 0.02)
    np.testing.assert_allclose(script.effect_at_end(results["itbs_clinical"]), 0.03)
    np.testing.assert_allclose(script.mep_gain_at_end(results["itbs_clinical"], design), 10.0)
    found = script.checks(results, "clinical", design, minutes)
    mean = {k: v["mean"] for k, v in found.items()}
    assert mean == pytest.approx({                    # effects in % of the 0.25 nS gap of every seed
        "a_manipulation_depressed_below_healthy_nS": 0.25, "b_ten_hz_gap_closed_pct": 8.0,
        "c_itbs_gap_closed_pct": 12.0, "c_itbs_minus_ten_hz_per_min_nS": 0.03 / 4 - 0.02 / 20,
        "d_itbs_minus_val66met_gap_pct": 8.0, "d_itbs_minus_val66met_mep_pp_secondary": 5.0,
        "d_ten_hz_minus_val66met_gap_pct": 0.0, "d_ten_hz_minus_val66met_mep_pp_secondary": 0.0,
        "e_sham_of_ten_hz_change_gap_pct": 12.0, "e_sham_of_itbs_change_gap_pct": -4.0,
        "e_sham_of_ten_hz_val66met_change_gap_pct": 4.0, "e_sham_of_itbs_val66met_change_gap_pct": 0.0,
        "e_sham_of_itbs_healthy_change_gap_pct": 0.0, "f_positive_control_healthy_itbs_nS": 0.01}, abs=1e-9)
    # no spread over seeds: a CI of zero width at the mean
    failed = {k for k, v in found.items() if not v["passed"]}
    assert failed == {"d_ten_hz_minus_val66met_gap_pct", "d_ten_hz_minus_val66met_mep_pp_secondary",
                      "e_sham_of_ten_hz_change_gap_pct"}                  # 0 blunting; a drift beyond 10 %
    weak = dict(results, itbs_clinical=_arm_result("itbs_clinical", "depressed", 0.0, -0.01, 0.1))  # 4 %
    found = script.checks(weak, "clinical", design, minutes)
    assert found["c_itbs_minus_ten_hz_per_min_nS"]["mean"] > 0                          # faster per minute,
    assert not found["c_itbs_minus_ten_hz_per_min_nS"]["passed"]                         # but too small
    outcome = script.arm_outcomes(results["itbs_clinical"], design, 4.0, 600)
    assert [e["mean"] for e in outcome["weights"]["E->E"]["effect_nS"]] == pytest.approx([0.0, 0.03, 0.03])
    assert [e["mean"] for e in outcome["weights"]["AFF_to_L5E"]["change_nS"]] == pytest.approx([0.0] * 3)
    assert [e["mean"] for e in outcome["mep_change_pp"]] == pytest.approx([0.0, 10.0, 10.0])


def test_the_primary_outcome_is_the_mean_over_the_depressed_synapses(validation_script):
    script = validation_script("depression")
    weights = {p: np.full((2, 1, 1), float(i + 1)) for i, p in enumerate(EE)}   # 1, 2, 3, 4 nS
    weights["AFF_to_L5E"] = np.full((2, 1, 1), 100.0)                        # not an E->E projection
    synapses = {"L23E_to_L23E": np.array([3.0, 1.0]), "L23E_to_L5E": np.array([1.0, 1.0]),
                "L5E_to_L23E": np.array([0.0, 1.0]), "L5E_to_L5E": np.array([0.0, 1.0]),
                "AFF_to_L5E": np.array([50.0, 50.0])}
    np.testing.assert_allclose(script.ee(weights, synapses)[:, 0, 0], [(3 * 1 + 2) / 4, (1 + 2 + 3 + 4) / 4])
    with pytest.raises(ValueError, match="synapse counts of"):
        script.ee(weights, {"L23E_to_L23E": np.ones(2)})
