"""A treatment course: a protocol on a calendar of sessions, slow variables in between, checkpoints.

Each session is simulated spike by spike (coupling.run_protocol from the state the course has
reached: LEAD_MS, the protocol, then after_s of spontaneous activity, with plasticity and BDNF);
the MEP proxy, the mean plastic weights and the mean BDNF are measured at its start and at
the end of its window. Between sessions nothing spikes and only the slow variables advance,
in closed form or with their exact propagators (neurons.rest), then homeostatic scaling if
asked for (coupling.homeostasis; operator splitting: the whole gap's rest, then its scaling,
whose time constant is a day; the early phase is scaled with the weight). The MEP proxy is
also measured at the course start (the settled patch) and final_probe_days after the end of
the last session, always with real pulses at the course's test_percent_mso (also in a sham
course). MEP probes are side runs: they do not advance the course's state or clock.

Equations and time constants (defaults of coupling.PatchModel and neurons.bdnf)::

    synaptic calcium           c = c_pre + c_post (jumps 1 / 0.5 per spike)  tau = 20 ms  Graupner 2012
                               + s_pre, NMDA-like (jump 0.3 per pre spike)  tau = 200 ms Shouval 2002
    calcium thresholds         dw/dt = gamma_p Theta(c - theta_p) - gamma_d Theta(c - theta_d)
                               theta_p slides with the presynaptic rate   tau = 15 s      neurons.calcium
    eligibility                de/dt = -e/tau_e + plasticity increments   tau_e = 1 s     Izhikevich 2007
    early phase (tag)          dh/dt = e/tau_e - h/tau_tag                tau_tag = 1 h   Frey & Morris 1997
    capture (late phase)       dw/dt = e/tau_e - (1 - g(b - theta_c)) h/tau_tag, g(x) = x+/(x+ + 1),
                               theta_c = 1.25 (BDNF above it captures)   Clopath 2008
    spike calcium trace        dc/dt = -c/tau_ca + spikes, release above 2  tau_ca = 100 ms  Edelmann 2015
    BDNF delay and decay       3-stage chain, mean delay 3 min; db/dt = x_3/tau_s - b/tau_b
                                                                          tau_b = 30 min  Solinas 2019
    synaptic scaling (option)  dw/dt = w (r_t - r) / (r_t tau_h)          tau_h = 1 day   Turrigiano 1998

(neurons.calcium and neurons.bdnf state the equations in full; Graupner & Brunel 2012, PNAS
109:3991; Shouval et al. 2002, PNAS 99:10831; Izhikevich 2007, Cereb Cortex 17:2443; Frey &
Morris 1997, Nature 385:533; Clopath et al. 2008, PLoS Comput Biol 4:e1000248; Edelmann et
al. 2015, Neuron 86:1041; Solinas et al. 2019, PLoS Comput Biol 15:e1006975; Turrigiano et
al. 1998, Nature 391:892; Turrigiano 2008, Cell 135:422.) Over a gap, BDNF follows its
exact linear propagator with the basal release, the eligibility left at the end of a
session is expressed, the early phase decays and BDNF above the capture threshold captures
its share, integrated over the gap's BDNF (neurons.bdnf.rest_state; an hour's tag outlives a
50-minute gap in part, so the next session acts on what is left), and scaling uses
the rate of each neuron in the last spiking window (the after_s window of the previous
session) held fixed, against its rate in an after_s window of the settled patch before the
course. Scaling is off by default: a rate measured over seconds is held over gaps of up to
a weekend (three tau_h), without the feedback by which scaling itself brings the rate back,
so it is only as good as long windows make it; pass homeostasis=Homeostasis() to use it.

Randomness: the course start, session k and the final probe take the children 0, k + 1 and
n_sessions + 1 of the course's seed (coupling.options.child_seed, numpy's SeedSequence.spawn),
so a session's result does not depend on whether the course was interrupted before it.

Files in `folder`: checkpoint.npz after every session (the state and the records so far,
coupling.checkpoint), course.h5 (the trajectories so far, CourseResult.save) and
last_session_spikes.h5 (SONATA spikes of the latest session only, so that disk use does
not grow with the course). Each is written to a temporary file and renamed; the checkpoint
is written last, so a course interrupted at any point resumes from a consistent state and
re-runs at most the session it was in, with identical results.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

import neurons

from .calendar import MIN_PER_DAY, Calendar
from .checkpoint import load_checkpoint, save_checkpoint
from .homeostasis import Homeostasis
from .options import SessionOptions, check_options, child_seed
from .patch import CorticalPatch
from .protocols import Protocol
from .session import LEAD_MS, mean_bdnf, mean_weights, probe_mep, run_protocol, settle, synapse_counts
from .stimulus import NeuronField

CHECKPOINT = "checkpoint.npz"
TRAJECTORIES = "course.h5"
SPIKES = "last_session_spikes.h5"
MS_PER_DAY = MIN_PER_DAY * 60e3
LABELS = ("start", "before", "after", "final")


@dataclass(frozen=True, eq=False)
class CourseResult:
    """Trajectories of a course, one entry per measurement, in time order: the course start,
    then for each session its start ("before") and the end of its window ("after"), then the
    final probe. times_days: (m,) days from the course start; session: (m,) int (-1 at the
    start, n_sessions at the final probe); label: (m,) one of LABELS; mep: (m,) MEP proxy
    (mean over test pulses of the fraction of L5E firing); mean_weights: plastic projection
    -> (m,) mean weight (nS); bdnf: three-factor projection -> (m,) mean BDNF (units of its
    half-saturation level); final_state: the NetworkState at the last entry; synapses: plastic
    projection -> number of synapses."""

    protocol: Protocol
    calendar: Calendar
    percent_mso: float
    times_days: np.ndarray
    session: np.ndarray
    label: np.ndarray
    mep: np.ndarray
    mean_weights: dict
    bdnf: dict
    final_state: object = None
    synapses: dict | None = None

    @property
    def complete(self) -> bool:
        """Whether the final probe has been taken."""
        return bool(self.label.size) and self.label[-1] == "final"

    def points(self) -> dict:
        """{label: index} of the course's landmarks: "start"; "week_<k>", after the last session
        that starts in calendar week k (days 7(k-1) to 7k from the course start; a week without
        sessions has none); "follow_up", the final probe, once taken."""
        out = {"start": int(np.flatnonzero(self.label == "start")[0])}
        weeks = np.floor(self.calendar.start_days / 7.0).astype(int) + 1
        for i in np.flatnonzero(self.label == "after"):
            out[f"week_{weeks[self.session[i]]}"] = int(i)
        final = np.flatnonzero(self.label == "final")
        if final.size:
            out["follow_up"] = int(final[0])
        return out

    def summary(self) -> dict:
        """Plain-number summary (JSON-ready): MEP and mean weights at the course start, after
        the last session and at the final probe, and their ratios to the start."""
        at = {name: np.flatnonzero(self.label == name) for name in LABELS}
        points = {"start": at["start"][0]}
        if at["after"].size:
            points["after_last_session"] = at["after"][-1]
        if at["final"].size:
            points["final"] = at["final"][0]
        start = points["start"]
        return dict(protocol=self.protocol.name, n_pulses=self.protocol.n_pulses, sham=self.protocol.sham,
                    percent_mso=self.percent_mso, n_sessions=len(self.calendar),
                    sessions_done=int(at["after"].size), course_days=float(self.times_days[-1]),
                    mep={k: float(self.mep[i]) for k, i in points.items()},
                    mep_change={k: float(self.mep[i] / max(self.mep[start], 1e-12))
                                for k, i in points.items()},
                    mean_weights_nS={p: {k: float(w[i]) for k, i in points.items()}
                                     for p, w in self.mean_weights.items()},
                    bdnf={p: {k: float(b[i]) for k, i in points.items()} for p, b in self.bdnf.items()})

    def save(self, path) -> Path:
        """Write the trajectories to an HDF5 file (written whole or not at all): datasets
        times_days, session, label, mep, session_start_days, mean_weights/<projection> (nS),
        bdnf/<projection>; attributes protocol, n_pulses, sham, percent_mso, complete and
        summary (JSON)."""
        from tmsim_io import atomic_hdf5

        path = Path(path)
        with atomic_hdf5(path) as (f, _):
            for name in ("times_days", "session", "mep"):
                f.create_dataset(name, data=getattr(self, name))
            f.create_dataset("label", data=self.label.astype("S"))
            f.create_dataset("session_start_days", data=self.calendar.start_days)
            f["times_days"].attrs["units"] = "days"
            for group, values in (("mean_weights", self.mean_weights), ("bdnf", self.bdnf)):
                for name, series in values.items():
                    f.create_dataset(f"{group}/{name}", data=series)
            f["mean_weights"].attrs["units"] = "nS"
            f.attrs.update(protocol=self.protocol.name, n_pulses=self.protocol.n_pulses,
                           sham=self.protocol.sham, percent_mso=self.percent_mso, complete=self.complete,
                           summary=json.dumps(self.summary()))
        return path


def run_course(patch: CorticalPatch, field: NeuronField, protocol: Protocol, calendar: Calendar,
               percent_mso: float, *, folder, options: SessionOptions = SessionOptions(),
               test_percent_mso: float | None = None, final_probe_days: float = 1.0,
               homeostasis: Homeostasis | None = None, resume: bool = True, progress: bool = True,
               on_session=None) -> CourseResult:
    """Run `protocol` at percent_mso (%MSO) on every session of `calendar` (see the module
    docstring). options: each session's time step, after_s (spontaneous activity simulated after
    its last pulse, s), n_test (test pulses per MEP probe) and the course's seed (its
    probe_minutes are not used: a course probes at each session's start and end).
    test_percent_mso: intensity of the MEP test pulses (%MSO; default percent_mso).
    final_probe_days: from the end of the last session to the final probe; homeostasis:
    synaptic scaling between sessions (None: off). folder: where the checkpoint, course.h5 and
    the last session's spikes go. resume: continue from folder's checkpoint if there is one (it
    must have been written for the same inputs), else start over. progress: a bar over
    sessions. on_session(index, partial CourseResult) is called after each session's checkpoint."""
    check_options(options, "run_course")
    folder = Path(folder)
    test_percent_mso = percent_mso if test_percent_mso is None else test_percent_mso
    for name, value in (("percent_mso", percent_mso), ("test_percent_mso", test_percent_mso)):
        if not 0 <= value <= 100:
            raise ValueError(f"run_course: {name} must be in [0, 100], got {value}")
    window, starts, final_steps = course_steps(protocol, calendar, after_s=options.after_s,
                                               dt_ms=options.dt_ms, final_probe_days=final_probe_days)
    run = _Run(patch, field, protocol, calendar, float(percent_mso), float(test_percent_mso), folder,
               replace(options, probe_minutes=(0.0,)), homeostasis, window)
    fingerprint = run.fingerprint(final_probe_days)
    checkpoint = folder / CHECKPOINT
    course = run.resume(checkpoint, fingerprint) if resume and checkpoint.exists() else run.start()
    n = len(calendar)
    with tqdm(total=n, initial=course.next_session, desc="course", unit="session",
              disable=not progress) as bar:
        for k in range(course.next_session, n):
            run.session(course, k, starts[k])
            partial = run.result(course)
            partial.save(folder / TRAJECTORIES)
            run.save(checkpoint, course, fingerprint)
            bar.update(1)
            if on_session is not None:
                on_session(k, partial)
    run.final(course, starts[-1] + window + final_steps)
    result = run.result(course)
    result.save(folder / TRAJECTORIES)
    return result


def course_steps(protocol: Protocol, calendar: Calendar, *, after_s: float, dt_ms: float,
                 final_probe_days: float) -> tuple[int, list[int], int]:
    """(session window, session starts, final probe delay) of a course, in steps of dt_ms; a
    session's window is LEAD_MS + the protocol + after_s (s). ValueError naming the argument if
    sessions overlap, a pulse or start is off the grid, or final_probe_days (>= 0) is not finite."""
    if not (np.isfinite(after_s) and after_s > 0):
        raise ValueError(f"run_course: after_s must be > 0 (s), got {after_s}")
    if not (np.isfinite(final_probe_days) and final_probe_days >= 0):
        raise ValueError(f"run_course: final_probe_days must be finite and >= 0, got {final_probe_days}")
    protocol.steps(dt_ms)
    window = int(round((LEAD_MS + protocol.duration_ms + after_s * 1e3) / dt_ms))
    calendar.check(window * dt_ms / 60e3, f"a session of {protocol!r} with after_s={after_s}")
    starts = [_steps(m * 60e3, dt_ms, f"calendar session {k} at {float(m)!r} min")
              for k, m in enumerate(calendar.start_min)]
    final = _steps(final_probe_days * MS_PER_DAY, dt_ms, f"final_probe_days={final_probe_days!r}")
    return window, starts, final


def check_resumable(folder) -> None:
    """ValueError naming the file if `folder` holds a checkpoint that cannot be read (e.g. a
    truncated copy): checked before a course's set-up, as run_course would fail on it."""
    path = Path(folder) / CHECKPOINT
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as data:
                json.loads(str(data["meta"]))
        except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as err:
            raise ValueError(_unreadable(path, err)) from None


def _unreadable(path: Path, err: Exception) -> str:
    return (f"{path}: not a readable course checkpoint ({type(err).__name__}: {err}); move it away to start "
            "the course afresh")


def _steps(duration_ms: float, dt_ms: float, what: str) -> int:
    """duration_ms as a whole number of steps of dt_ms (error naming `what` otherwise)."""
    k = round(duration_ms / dt_ms)
    if abs(k * dt_ms - duration_ms) > 1e-9 * max(duration_ms, 1.0):
        raise ValueError(f"run_course: {what} is not a whole number of steps of dt_ms={dt_ms}")
    return int(k)


def _rates_Hz(patch: CorticalPatch, spikes, start_ms: float, end_ms: float) -> np.ndarray:
    """Rate of every neuron (global order, Hz) over [start_ms, end_ms) of a run's spikes."""
    parts = []
    for pop in patch.network.populations:
        times, ids = spikes[pop.name]
        inside = (times >= start_ms) & (times < end_ms)
        parts.append(np.bincount(ids[inside], minlength=pop.n) / ((end_ms - start_ms) * 1e-3))
    return np.concatenate(parts).astype(np.float64)


@dataclass
class _Course:
    """Where a course stands: state at course step `now`; next_session; rates of the last
    spiking window and the targets (None without homeostasis); records: lists by column."""

    state: object
    now: int
    next_session: int
    rates: np.ndarray | None
    target: np.ndarray | None
    records: dict


@dataclass(frozen=True, eq=False)
class _Run:
    """The fixed inputs of a course and its stages."""

    patch: CorticalPatch
    field: NeuronField
    protocol: Protocol
    calendar: Calendar
    percent_mso: float
    test_percent_mso: float
    folder: Path
    options: SessionOptions
    homeostasis: Homeostasis | None
    window: int

    @property
    def net(self) -> neurons.Network:
        return self.patch.network

    @property
    def dt_ms(self) -> float:
        return self.options.dt_ms

    def start(self) -> _Course:
        """Settle the patch, probe the MEP at the course start, measure the target rates."""
        seed = lambda i: child_seed(self.options.seed, 0, i)
        state = settle(self.patch, dt_ms=self.dt_ms, seed=seed(0))
        target = None
        if self.homeostasis is not None:
            baseline = neurons.simulate(self.net, self.options.after_s * 1e3, self.dt_ms, seed=seed(2),
                                        state=state, progress=False)
            target = _rates_Hz(self.patch, baseline.spikes, 0.0, baseline.duration_ms)
        course = _Course(state, 0, 0, None, target, {})
        mep = probe_mep(self.patch, self.field, state, self.test_percent_mso, n_trials=self.options.n_test,
                        dt_ms=self.dt_ms, seed=seed(1)).mean
        self._record(course, "start", -1, 0, mep, mean_weights(self.patch, state),
                     mean_bdnf(self.patch, state))
        return course

    def session(self, course: _Course, k: int, start: int):
        """Rest until `start` (course steps), then session k."""
        self._rest(course, start - course.now)
        options = replace(self.options, seed=child_seed(self.options.seed, k + 1))
        res = run_protocol(self.patch, self.field, self.protocol, self.percent_mso, options=options,
                           test_percent_mso=self.test_percent_mso, spikes_path=self.folder / SPIKES,
                           progress=False, state=course.state)
        column = lambda values, when: {p: v[when] for p, v in values.items()}
        self._record(course, "before", k, start, res.mep_before.mean, column(res.mean_weights, "before"),
                     column(res.bdnf, "before"))
        self._record(course, "after", k, start + self.window, res.mep_after[0.0].mean,
                     column(res.mean_weights, "after_stimulation"), column(res.bdnf, "after_stimulation"))
        if self.homeostasis is not None:
            course.rates = _rates_Hz(self.patch, res.spikes, LEAD_MS + self.protocol.duration_ms,
                                     self.window * self.dt_ms)
        course.state, course.now, course.next_session = res.final_state, start + self.window, k + 1

    def final(self, course: _Course, at: int):
        """Rest until `at` (course steps) and probe the MEP there."""
        self._rest(course, at - course.now)
        mep = probe_mep(self.patch, self.field, course.state, self.test_percent_mso,
                        n_trials=self.options.n_test, dt_ms=self.dt_ms,
                        seed=child_seed(self.options.seed, len(self.calendar) + 1)).mean
        self._record(course, "final", len(self.calendar), at, mep, mean_weights(self.patch, course.state),
                     mean_bdnf(self.patch, course.state))

    def _rest(self, course: _Course, steps: int):
        """Advance the slow variables (neurons.rest, then scaling) over `steps` without spikes."""
        if steps <= 0:
            return
        state = neurons.rest(self.net, course.state, steps * self.dt_ms, self.dt_ms)
        if self.homeostasis is not None and course.rates is not None:
            state = self.homeostasis.scale(self.net, state, course.rates, course.target,
                                           steps * self.dt_ms / MS_PER_DAY)
        course.state, course.now = state, course.now + steps

    def _record(self, course: _Course, label: str, session: int, at: int, mep: float, weights: dict,
                bdnf: dict):
        """Append one measurement at course step `at`."""
        rec = course.records
        for key, value in (("times_days", at * self.dt_ms / MS_PER_DAY), ("session", session),
                           ("label", label), ("mep", mep)):
            rec.setdefault(key, []).append(value)
        for group, values in (("mean_weights", weights), ("bdnf", bdnf)):
            for name, value in values.items():
                rec.setdefault(group, {}).setdefault(name, []).append(value)

    def result(self, course: _Course) -> CourseResult:
        rec = course.records
        series = lambda group: {k: np.asarray(v, np.float64) for k, v in rec.get(group, {}).items()}
        return CourseResult(self.protocol, self.calendar, self.percent_mso,
                            np.asarray(rec["times_days"], np.float64), np.asarray(rec["session"], np.int64),
                            np.asarray(rec["label"], dtype=f"<U{max(map(len, LABELS))}"),
                            np.asarray(rec["mep"], np.float64), series("mean_weights"), series("bdnf"),
                            course.state, synapse_counts(self.patch))

    def fingerprint(self, final_probe_days: float) -> dict:
        """A digest of every input the results depend on, by input."""
        net, patch, proto = self.net, self.patch, self.protocol
        network = [(p.name, p.n, repr(p.params), p.rate_Hz) for p in net.populations]
        network += [(p.name, p.pre, p.post, p.receptor, repr(p.plasticity), p.ell.weight, p.ell.post,
                     p.ell.delay_ms) for p in net.projections]
        network += [repr(p) for p in net.poisson]
        parts = dict(
            protocol=(proto.name, proto.sham, proto.duration_us, proto.pulse_times_us, proto.intensities),
            calendar=self.calendar.start_min, percent_mso=(self.percent_mso, self.test_percent_mso),
            seed=self.options.seed,
            session=(self.options.after_s, self.options.n_test, self.dt_ms, final_probe_days),
            homeostasis=repr(self.homeostasis),
            network=network, field=([self.field.E[p] for p in patch.populations], self.field.didt_A_per_s),
            patch=([patch.thresholds_V_per_m[p] for p in patch.populations], repr(patch.cell_classes),
                   repr(patch.waves)))
        return {name: _digest(value) for name, value in parts.items()}

    def save(self, path: Path, course: _Course, fingerprint: dict):
        rec = course.records
        arrays = {"rec_times_days": np.asarray(rec["times_days"], np.float64),
                  "rec_session": np.asarray(rec["session"], np.int64),
                  "rec_label": np.asarray(rec["label"]), "rec_mep": np.asarray(rec["mep"], np.float64)}
        names = {group: list(rec.get(group, {})) for group in ("mean_weights", "bdnf")}
        for group, keys in names.items():
            for i, name in enumerate(keys):
                arrays[f"rec_{group}_{i}"] = np.asarray(rec[group][name], np.float64)
        for name in ("rates", "target"):
            if getattr(course, name) is not None:
                arrays[name] = getattr(course, name)
        meta = dict(fingerprint=fingerprint, now=course.now, next_session=course.next_session,
                    elapsed_days=course.now * self.dt_ms / MS_PER_DAY, names=names)
        save_checkpoint(path, course.state, meta, arrays)

    def resume(self, path: Path, fingerprint: dict) -> _Course:
        try:
            state, meta, arrays = load_checkpoint(path, self.net, self.dt_ms)
        except (zipfile.BadZipFile, EOFError) as err:
            raise ValueError(_unreadable(path, err)) from None
        except ValueError as err:
            raise ValueError(f"{err}; move it away to start the course afresh") from None
        differ = sorted(k for k in fingerprint.keys() | meta["fingerprint"].keys()
                        if fingerprint.get(k) != meta["fingerprint"].get(k))
        if differ:
            raise ValueError(f"run_course: {path} was written for a course with different inputs "
                             f"({', '.join(differ)}); pass resume=False to start over, or use another folder")
        rec = {"times_days": arrays["rec_times_days"].tolist(), "session": arrays["rec_session"].tolist(),
               "label": arrays["rec_label"].tolist(), "mep": arrays["rec_mep"].tolist()}
        for group, keys in meta["names"].items():
            for i, name in enumerate(keys):
                rec.setdefault(group, {})[name] = arrays[f"rec_{group}_{i}"].tolist()
        return _Course(state, int(meta["now"]), int(meta["next_session"]), arrays.get("rates"),
                       arrays.get("target"), rec)


def _digest(value) -> str:
    """SHA-256 of a nest of tuples, lists, arrays and plain values."""
    h = hashlib.sha256()

    def feed(v):
        if isinstance(v, (tuple, list)):
            h.update(f"[{len(v)}".encode())
            for item in v:
                feed(item)
        elif isinstance(v, np.ndarray):
            h.update(f"a{v.dtype.str}{v.shape}".encode())
            h.update(np.ascontiguousarray(v).tobytes())
        else:
            h.update(f"{type(v).__name__}:{v!r};".encode())

    feed(value)
    return h.hexdigest()[:16]
