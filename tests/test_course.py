"""Treatment course: calendars, homeostatic scaling, checkpoints and an exact resume, sham."""

from dataclasses import replace

import h5py
import jax
import numpy as np
import pytest
from scipy.integrate import solve_ivp

import efield
import neurons
from coupling import Calendar, Homeostasis, SessionOptions, rtms, run_course, sham, ten_hz_clinical
from coupling.checkpoint import load_checkpoint
from coupling.course import CHECKPOINT, TRAJECTORIES
from coupling.patch import cortical_patch
from coupling.stimulus import neuron_field

TOP = np.array([0.0, 0.0, 95.0])
DAY = 1440.0
PROTOCOL = rtms(20.0, 5)
CALENDAR = Calendar([0.0, 50.0])
OPTIONS = SessionOptions(after_s=0.3, n_test=1, seed=3)
COURSE = dict(final_probe_days=0.5, homeostasis=Homeostasis(), progress=False)


@pytest.fixture(scope="module")
def setup():
    head = efield.sphere_head(radii_mm=(80.0, 85.0, 90.0, 95.0), max_edge_mm=8.0)
    coil = efield.figure8_70mm()
    pos = efield.Placement.on_scalp(head, centre=TOP, handle=[0.0, 50.0, 95.0])
    E = efield.simulate(head, coil, pos, didt=coil.didt_max)
    patch = cortical_patch(head, TOP, radius_mm=8.0, n_neurons=100, seed=1)
    return head, E, patch, neuron_field(head, E, patch, coil.didt_max)


@pytest.fixture(scope="module")
def uninterrupted(setup, tmp_path_factory):
    _, _, patch, field = setup
    folder = tmp_path_factory.mktemp("whole")
    return folder, run_course(patch, field, PROTOCOL, CALENDAR, 80.0, folder=folder, options=OPTIONS,
                              **COURSE)


def test_clinical_calendar_has_one_session_on_each_weekday_and_none_at_weekends():
    cal = Calendar.clinical_10hz(weeks=2)
    days = [0, 1, 2, 3, 4, 7, 8, 9, 10, 11]
    np.testing.assert_array_equal(cal.start_min, [d * DAY + 540.0 for d in days])
    assert not set(np.floor(cal.start_days).astype(int)) & {5, 6, 12, 13}
    assert Calendar.itbs_daily(weeks=2) == cal and len(Calendar.clinical_10hz(weeks=6)) == 30


def test_saint_calendar_has_ten_sessions_50_min_apart_on_five_days():
    cal = Calendar.saint(days=5)
    assert len(cal) == 50
    per_day = cal.start_min.reshape(5, 10)
    np.testing.assert_array_equal(per_day, np.arange(5)[:, None] * DAY + 540.0 + 50.0 * np.arange(10))
    assert set(np.diff(per_day, axis=1).ravel()) == {50.0}
    two = Calendar.daily(1, days_per_week=7, sessions_per_day=2, interval_min=240.0, first_session_min=0.0)
    np.testing.assert_array_equal(two.start_min, (np.arange(7)[:, None] * DAY + [0.0, 240.0]).ravel())


def test_calendar_errors_name_the_argument():
    with pytest.raises(ValueError, match="strictly increasing: session 2"):
        Calendar([0.0, 60.0, 60.0])
    with pytest.raises(ValueError, match="do not fit in a day"):
        Calendar.on_days([0], sessions_per_day=20, interval_min=90.0)
    with pytest.raises(ValueError, match="days_per_week"):
        Calendar.daily(2, days_per_week=8)
    # 10 Hz clinical lasts 2224 s: a session 30 min after the previous one overlaps it
    with pytest.raises(ValueError, match="session 1 at 30.0 min starts 30.0 min after session 0"):
        run_course(None, None, ten_hz_clinical(), Calendar([0.0, 30.0]), 80.0, folder="unused",
                   progress=False)


def test_scaling_closed_form_solves_its_ode_and_moves_rates_toward_target(setup):
    _, _, patch, _ = setup
    net = patch.network
    state = neurons.initial_state(net)
    rng = np.random.default_rng(0)
    target = rng.uniform(2.0, 8.0, net.n_neurons)
    rate = target * rng.choice([0.0, 0.5, 1.0, 1.5, 3.0], net.n_neurons)
    target[:3] = 0.0                                          # silent before the course: not scaled
    rule, days = Homeostasis(tau_days=1.0), 2.0
    plastic = [i for i, p in enumerate(net.projections) if p.plasticity is not None]
    # an early phase (tagging and capture) of a tenth of each weight, which scales with it
    state = replace(state, plastic=tuple(replace(tr, third=replace(tr.third, early=0.1 * state.weights[i]))
                                         for i, tr in zip(plastic, state.plastic)))
    scaled = rule.scale(net, state, rate, target, days)
    checked = 0
    for index, proj in enumerate(net.projections):
        before, after = np.asarray(state.weights[index]), np.asarray(scaled.weights[index])
        if proj.plasticity is None:
            np.testing.assert_array_equal(before, after)
            continue
        if proj.receptor == "exc":
            early = np.asarray(scaled.plastic[plastic.index(index)].third.early)
            free = after < proj.plasticity.stdp.w_max
            np.testing.assert_allclose(early[free], 0.1 * after[free], rtol=1e-5)
        w_max = proj.plasticity.stdp.w_max
        valid = proj.ell.valid
        np.testing.assert_array_equal(before[~valid], after[~valid])
        post = net.offsets[proj.post] + proj.ell.post[valid]
        r, rt, w0, w1 = rate[post], target[post], before[valid], after[valid]
        assert np.all(w1[rt == 0] == w0[rt == 0])
        up, down = (r < rt) & (w0 < w_max), (r > rt) & (rt > 0)
        assert np.all(w1[down] < w0[down]) and np.all(w1[up] > w0[up]) and down.any() and up.any()
        for k in np.flatnonzero(rt > 0)[:40]:
            # dw/dt = w (r_t - r) / (r_t tau_h), stopped at the upper bound
            hit = lambda t, w: w[0] - w_max
            hit.terminal = True
            sol = solve_ivp(lambda t, w: w * (rt[k] - r[k]) / (rt[k] * rule.tau_days), (0.0, days), [w0[k]],
                            rtol=1e-11, atol=1e-12, events=hit)
            exact = w_max if sol.status == 1 else sol.y[0, -1]
            assert w1[k] == pytest.approx(exact, rel=2e-6)
            checked += 1
    assert checked > 100


def test_rest_over_a_weekend_wraps_the_step_counter_keeping_its_phases(setup):
    _, _, patch, _ = setup
    net = patch.network
    state = neurons.initial_state(net)
    state = neurons.rest(net, state, 1.0, 0.1)
    n_steps = 3 * 864_000_000                                 # three days at 0.1 ms: beyond int32
    rested = neurons.rest(net, state, n_steps * 0.1, 0.1)
    step = int(rested.step)
    assert 0 <= step < 2**31
    # ring slots, 10 ms tick, 1 s chain step, 60 s tag step
    for period in (state.ring.shape[0], 100, 10_000, 600_000):
        assert step % period == (10 + n_steps) % period


@pytest.mark.slow
def test_interrupted_course_resumes_to_exactly_the_uninterrupted_one(setup, uninterrupted, tmp_path):
    _, _, patch, field = setup
    whole_folder, whole = uninterrupted
    assert whole.complete and list(whole.label) == ["start", "before", "after", "before", "after", "final"]
    np.testing.assert_array_equal(whole.times_days[[0, 1, 3]], [0.0, 0.0, 50.0 / DAY])

    class Stop(Exception):
        pass

    def stop(index, partial):
        raise Stop(index)

    with pytest.raises(Stop):
        run_course(patch, field, PROTOCOL, CALENDAR, 80.0, folder=tmp_path, options=OPTIONS, on_session=stop,
                   **COURSE)
    with h5py.File(tmp_path / TRAJECTORIES) as f:
        assert not f.attrs["complete"] and list(f["session"][:]) == [-1, 0, 0]
    done = []
    resumed = run_course(patch, field, PROTOCOL, CALENDAR, 80.0, folder=tmp_path, options=OPTIONS,
                         on_session=lambda index, partial: done.append(index), **COURSE)
    assert done == [1]                                        # session 0 came from the checkpoint
    leaves = jax.tree_util.tree_leaves
    for a, b in zip(leaves(whole.final_state), leaves(resumed.final_state), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    for name in ("times_days", "session", "label", "mep"):
        np.testing.assert_array_equal(getattr(whole, name), getattr(resumed, name))
    for group in ("mean_weights", "bdnf"):
        assert getattr(whole, group).keys() == getattr(resumed, group).keys()
        for key, series in getattr(whole, group).items():
            np.testing.assert_array_equal(series, getattr(resumed, group)[key])
    with h5py.File(tmp_path / TRAJECTORIES) as f:
        assert f.attrs["complete"]
        np.testing.assert_array_equal(f["mep"][:], whole.mep)
        np.testing.assert_array_equal(f["mean_weights/L5E_to_L5E"][:], whole.mean_weights["L5E_to_L5E"])
    for folder in (tmp_path, whole_folder):
        assert not [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.slow
def test_resuming_with_other_inputs_is_refused(setup, uninterrupted):
    head, E, patch, field = setup
    folder, _ = uninterrupted
    for change, name in ((dict(protocol=rtms(20.0, 6)), "protocol"),
                         (dict(options=replace(OPTIONS, seed=4)), "seed"),
                         (dict(percent_mso=70.0), "percent_mso"),
                         (dict(calendar=Calendar([0.0, 60.0])), "calendar")):
        args = dict(protocol=PROTOCOL, calendar=CALENDAR, percent_mso=80.0, options=OPTIONS) | change
        with pytest.raises(ValueError, match=f"different inputs \\({name}\\)"):
            run_course(patch, field, args.pop("protocol"), args.pop("calendar"), args.pop("percent_mso"),
                       folder=folder, **args, **COURSE)
    other = cortical_patch(head, TOP, radius_mm=8.0, n_neurons=120, seed=1)
    with pytest.raises(ValueError, match=f"{CHECKPOINT}: the saved network state does not fit"):
        load_checkpoint(folder / CHECKPOINT, other.network, 0.1)


@pytest.mark.slow
def test_sham_course_equals_a_course_without_pulses(setup, uninterrupted, tmp_path):
    _, _, patch, field = setup
    _, real = uninterrupted
    shammed = run_course(patch, field, sham(PROTOCOL), CALENDAR, 80.0, folder=tmp_path / "sham",
                         options=OPTIONS, **COURSE)
    silent = run_course(patch, field, PROTOCOL, CALENDAR, 0.0, folder=tmp_path / "zero", options=OPTIONS,
                        **COURSE)
    a, b, c = (jax.tree_util.tree_leaves(r.final_state.weights) for r in (shammed, silent, real))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert any(not np.array_equal(np.asarray(x), np.asarray(z)) for x, z in zip(a, c))
    for key, series in shammed.mean_weights.items():
        np.testing.assert_array_equal(series, silent.mean_weights[key])
