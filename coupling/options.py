"""How a session is simulated and measured (the [session] table of a run configuration), and
the seeds derived from one seed."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .schema import Number, check_fields, setting

SEEDS = 2 ** 32
"""Seeds are integers in [0, SEEDS) (what neurons.simulate accepts)."""
SEED = Number(0, SEEDS - 1, integer=True)
MAX_PROBE_MINUTES = 10080.0
"""Latest MEP probe after a session, min (a week)."""
TIME_STEPS_MS = (0.1, 0.05, 0.025, 0.02, 0.01)
"""Allowed time steps, ms: divisors of 0.1 ms, the grid of the model's delays, I waves and 0.5 ms
plasticity updates (0.3 ms, say, puts the calcium rule's 0.5 ms update between steps)."""


def _time_step(v):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v not in TIME_STEPS_MS:
        return (f"expected one of {list(TIME_STEPS_MS)} ms (divisors of 0.1 ms, the grid of the model's "
                f"delays and plasticity updates), got {v!r}")
    return None


def _minutes(v):
    minute = lambda x: isinstance(x, (int, float)) and not isinstance(x, bool) and 0 <= x <= MAX_PROBE_MINUTES
    if not isinstance(v, (list, tuple)) or len(v) > 100 or not all(minute(x) for x in v):
        return f"expected a list of at most 100 minutes in [0, {MAX_PROBE_MINUTES:g}], got {v!r}"
    return None


@dataclass(frozen=True)
class SessionOptions:
    """How a session is simulated and measured; passed whole to run_protocol and run_course.
    Bad values raise ValueError naming the field.

    Bridging (coupling.session, "Bridging"): a gap between pulses longer than
    bridge_min_gap_s (and than bridge_settle_s + LEAD_MS) is simulated spike by spike only for
    bridge_settle_s after its last pulse and LEAD_MS before its next one; in between only the
    slow variables advance (neurons.rest, with the sliding threshold's rate trace relaxing to
    the spontaneous rates). bridge_settle_s defaults to 1 s, five time constants of the slowest
    fast variable that the rest does not carry over (the 200 ms NMDA-like calcium of the
    calcium rule). Off by default (bridge_min_gap_s = 0): against full spiking on the same seeds
    (benchmarks/bridging.py) the mean weights stay within 2 % but the MEP ratios differ by more
    than the seed-to-seed noise, the criterion of the speed issue for turning it on (see
    benchmarks/RESULTS.md, "Bridging inter-train gaps")."""

    probe_minutes: tuple = setting((0.0, 30.0), _minutes,
                                   "MEP proxy and weights measured at these minutes after stimulation")
    after_s: float = setting(5.0, Number(0, 3600, open_low=True), "spiking simulated after the last pulse, s")
    n_test: int = setting(10, Number(1, 1000, integer=True), "test pulses per MEP measurement")
    dt_ms: float = setting(0.1, _time_step, "time step, ms: one of 0.1, 0.05, 0.025, 0.02, 0.01")
    seed: int = setting(0, SEED, "seed of the background activity")
    bridge_min_gap_s: float = setting(
        0.0, Number(0, 3600),
        "inter-train gaps longer than this are bridged (only the slow variables advance over them), s; "
        "0: off")
    bridge_settle_s: float = setting(1.0, Number(0.1, 60),
                                     "spiking simulated after each train before a bridged gap, s")

    def __post_init__(self):
        check_fields(self, "SessionOptions.")
        object.__setattr__(self, "probe_minutes", tuple(sorted(float(m) for m in self.probe_minutes)))


def check_options(options, where: str) -> SessionOptions:
    """`options` if it is a SessionOptions; TypeError naming `where` otherwise."""
    if not isinstance(options, SessionOptions):
        raise TypeError(f"{where}: options must be a coupling.SessionOptions, got {type(options).__name__}")
    return options


def child_seed(seed: int, *key: int) -> int:
    """Seed in [0, SEEDS) of the stage `key` of a run seeded with `seed`: the state of the
    numpy.random.SeedSequence child with that spawn key (what SeedSequence(seed).spawn gives),
    so that stages draw independent streams and none depends on how many others ran."""
    return int(np.random.SeedSequence(int(seed), spawn_key=tuple(key)).generate_state(1)[0])
