"""When the sessions of a treatment course take place: start times in minutes from the course start.

Builders hold the clinical schedules: once a day on weekdays (clinical 10 Hz rTMS, O'Reardon
et al. 2007, Biol Psychiatry 62:1208; daily iTBS, Blumberger et al. 2018, Lancet 391:1683),
and the accelerated SAINT schedule (Cole et al. 2020, Am J Psychiatry 177:716: ten sessions a
day, 50 min apart, on five consecutive days). Day d of the course runs from d * 1440 min;
days d with d % 7 >= days_per_week (the weekend) have no session. Times are sums of whole
numbers of minutes and the intervals given, so they are exact in float64 for whole-minute
inputs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MIN_PER_DAY = 1440.0
MAX_COURSE_DAYS = 3650
"""Longest course the builders make, days (ten years; clinical courses last 1-6 weeks)."""


@dataclass(frozen=True, eq=False)
class Calendar:
    """Session start times, minutes from the course start: (n,) float64, >= 0, increasing."""

    start_min: np.ndarray

    def __post_init__(self):
        times = np.array(self.start_min, dtype=np.float64)
        if times.ndim != 1 or times.size == 0 or not np.all(np.isfinite(times)):
            raise ValueError(f"Calendar.start_min must be a non-empty 1-D array of finite minutes, "
                             f"got shape {times.shape}")
        if times[0] < 0 or np.any(np.diff(times) <= 0):
            k = 0 if times[0] < 0 else int(np.argmax(np.diff(times) <= 0)) + 1
            raise ValueError(f"Calendar.start_min must be >= 0 and strictly increasing: session {k} "
                             f"at {float(times[k])!r} min")
        times.setflags(write=False)
        object.__setattr__(self, "start_min", times)

    @classmethod
    def on_days(cls, days, sessions_per_day: int = 1, interval_min: float = 50.0,
                first_session_min: float = 9 * 60.0) -> Calendar:
        """sessions_per_day sessions, interval_min apart (onset to onset), from first_session_min
        after midnight on each of `days` (course days, 0-based, increasing)."""
        days = np.asarray(days)
        if days.ndim != 1 or days.size == 0 or not np.issubdtype(days.dtype, np.integer) or days.min() < 0 \
                or days.max() >= MAX_COURSE_DAYS:
            raise ValueError(f"Calendar.on_days: days must be non-empty whole day numbers in [0, "
                             f"{MAX_COURSE_DAYS}) (MAX_COURSE_DAYS), got {days}")
        if isinstance(sessions_per_day, bool) or not isinstance(sessions_per_day, (int, np.integer)) \
                or sessions_per_day < 1:
            raise ValueError(f"Calendar: sessions_per_day must be an integer >= 1, got {sessions_per_day!r}")
        if not (math.isfinite(interval_min) and interval_min > 0):
            raise ValueError(f"Calendar: interval_min must be > 0, got {interval_min}")
        last = first_session_min + (sessions_per_day - 1) * interval_min
        if not (math.isfinite(first_session_min) and 0 <= first_session_min and last < MIN_PER_DAY):
            raise ValueError(f"Calendar: {sessions_per_day} sessions {interval_min} min apart from "
                             f"first_session_min={first_session_min} do not fit in a day "
                             f"(last at {last} min)")
        within = first_session_min + np.arange(sessions_per_day) * float(interval_min)
        return cls((days.astype(np.float64)[:, None] * MIN_PER_DAY + within[None, :]).ravel())

    @classmethod
    def daily(cls, weeks: int, days_per_week: int = 5, sessions_per_day: int = 1, interval_min: float = 50.0,
              first_session_min: float = 9 * 60.0) -> Calendar:
        """Sessions on the first days_per_week days of each of `weeks` weeks (the rest of the
        week is a gap), sessions_per_day a day interval_min apart from first_session_min."""
        for name, value, top in (("weeks", weeks, MAX_COURSE_DAYS // 7), ("days_per_week", days_per_week, 7)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 1 <= value <= top:
                raise ValueError(f"Calendar.daily: {name} must be an integer in [1, {top}], got {value!r}")
        days = np.arange(7 * weeks)
        return cls.on_days(days[days % 7 < days_per_week], sessions_per_day, interval_min, first_session_min)

    @classmethod
    def clinical_10hz(cls, weeks: int = 4) -> Calendar:
        """One session a day, five days a week (O'Reardon et al. 2007: 4-6 weeks)."""
        return cls.daily(weeks, 5, 1)

    @classmethod
    def itbs_daily(cls, weeks: int = 4) -> Calendar:
        """One session a day, five days a week (Blumberger et al. 2018: 600-pulse iTBS, 4-6 weeks)."""
        return cls.daily(weeks, 5, 1)

    @classmethod
    def saint(cls, days: int = 5) -> Calendar:
        """Ten sessions a day, 50 min apart (onset to onset), on `days` consecutive days from
        09:00 (Cole et al. 2020: 1800-pulse iTBS, five days)."""
        if isinstance(days, bool) or not isinstance(days, (int, np.integer)) \
                or not 1 <= days <= MAX_COURSE_DAYS:
            raise ValueError(f"Calendar.saint: days must be an integer in [1, {MAX_COURSE_DAYS}], "
                             f"got {days!r}")
        return cls.on_days(np.arange(days), 10, 50.0)

    def __eq__(self, other):
        if not isinstance(other, Calendar):
            return NotImplemented
        return np.array_equal(self.start_min, other.start_min)

    __hash__ = None

    def __len__(self) -> int:
        return int(self.start_min.size)

    def __repr__(self):
        return f"Calendar({len(self)} sessions over {self.start_min[-1] / MIN_PER_DAY:.3g} days)"

    @property
    def start_days(self) -> np.ndarray:
        """Session start times, days."""
        return self.start_min / MIN_PER_DAY

    def check(self, session_min: float, what: str = "a session") -> None:
        """Raise ValueError if a session starts before the previous one (lasting session_min
        minutes) has ended."""
        gaps = np.diff(self.start_min)
        if np.any(gaps < session_min):
            k = int(np.argmax(gaps < session_min))
            raise ValueError(f"calendar: session {k + 1} at {float(self.start_min[k + 1])!r} min starts "
                             f"{float(gaps[k])!r} min after session {k}, before it ends ({what} lasts "
                             f"{session_min:.6g} min)")
