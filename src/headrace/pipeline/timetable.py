"""Timetables: which data intervals a pipeline's schedule produces, and when each is due.

A schedule (a cron expression, a preset such as ``@daily``, a :class:`~datetime.timedelta`
or ``None`` for manual runs only) becomes a :class:`Timetable`. Semantics follow Airflow's
``CronDataIntervalTimetable`` / ``DeltaDataIntervalTimetable``: a scheduled run covers the
data interval ``[start, end)``, its logical date is ``start``, and it becomes due once
``end <= now`` (the interval's data is complete).

Cron expressions are read in the pipeline's time zone and every datetime returned is
time-zone aware **in UTC**. UTC is returned on purpose: two local datetimes sharing one
``ZoneInfo`` compare and subtract by wall clock, so the two 02:30s of a fall-back night
would look equal; UTC instants never do.

DST rules, as in Airflow:

- a schedule with a fixed hour (``0 2 * * *``) fires at that wall-clock time every day;
  when the time does not exist (spring forward) it fires at the first instant after the
  gap, and when it exists twice (fall back) it fires once, at the **second** occurrence
  (``fold=1``, Airflow's choice: the wall clock has settled);
- a schedule that runs every hour (``*/15 * * * *``) keeps its absolute spacing, so no
  interval is lost or doubled when the clocks change. In zones that shift by 30 minutes
  (Australia/Lord_Howe) one interval is half as long; every function here answers with
  intervals of that one sequence (Airflow answers with other intervals there, or raises).

timedelta schedules lie on one grid whatever ``catchup`` says: counted from the
pipeline's ``start_date``, or from the Unix epoch (UTC) when there is none.

Manual runs (:meth:`Timetable.infer_manual_interval`): with a date, headrace's default
(:attr:`ManualInterval.CONTAINING`) runs the interval that contains the date (its logical
date is the interval's start, like a scheduled run); :attr:`ManualInterval.ENDING` gives
Airflow's meaning, the latest interval that ends at or before the date. Without a date
(:meth:`Timetable.latest_complete_interval`) both cover the latest complete interval.

Side by side with Airflow 3.3 (checked against Airflow's own answers, 1,440 cases, in
``tests/pipeline/test_airflow_differential.py``, which lists the differences by name):

========================================  ================================  ===========================
case                                      Airflow                           headrace
========================================  ================================  ===========================
fixed-hour cron at a fall-back            second occurrence                 same
every-hour cron at any DST change         absolute spacing                  same
manual run without a date                 latest complete interval          same (also in the cases
                                                                            below, where Airflow is
                                                                            not)
manual run, 30-minute DST zone            an interval not on its schedule;  latest complete interval
                                          ``catchup=False`` raises "next
                                          schedule shouldn't be earlier"
manual run at a fire time that ends a     the empty interval ``[t, t)``     latest complete interval
DST gap, and until the next fire
manual run inside a repeated hour         an interval ending after the      latest complete interval
                                          date
manual run with a date (cron)             interval ending at/before date    interval containing date
                                                                            (``ENDING``: as Airflow)
manual run with a date (timedelta)        ``[date - delta, date)``          ``[date, date + delta)``
                                                                            (``ENDING``: as Airflow)
start date inside a repeated hour         skips that night's fire           fires at it (2nd occurrence)
``catchup=False`` just after a fire that  skips the interval that just      runs it
ends a DST gap                            ended
timedelta, ``catchup=True``               grid from ``start_date``          same
timedelta, ``catchup=False``              grid from the Unix epoch          grid from ``start_date``
                                                                            (epoch when none)
the last run ended off the schedule       next run from the fire before     from that end to the next
(the schedule changed)                    it (overlaps)                     fire (contiguous)
========================================  ================================  ===========================

This module and the two it is built from (:mod:`.intervals`: the interface; :mod:`.cron`)
import nothing of headrace but its errors, so every part may use them.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, tzinfo

from headrace.errors import ScheduleError
from headrace.pipeline.cron import PRESETS, CronTimetable
from headrace.pipeline.intervals import (
    EPOCH,
    Interval,
    InvalidScheduleError,
    ManualInterval,
    Timetable,
    as_utc,
    next_start,
)

__all__ = [
    "PRESETS",
    "CronTimetable",
    "DeltaTimetable",
    "Interval",
    "InvalidScheduleError",
    "ManualInterval",
    "NullTimetable",
    "OnceTimetable",
    "Timetable",
    "timetable_from",
]


class NullTimetable(Timetable):
    """No schedule: runs are only triggered by hand."""

    periodic = False

    @property
    def summary(self) -> str:
        return "manual"

    def _interval_containing(self, at: datetime) -> Interval:
        return Interval(at, at)

    def _interval_ending(self, at: datetime) -> Interval:
        return Interval(at, at)

    def align(self, when: datetime) -> datetime:
        return as_utc(when, self.timezone)

    def next_interval(
        self,
        after_end: datetime | None,
        *,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
        catchup: bool = True,
        now: datetime,
    ) -> Interval | None:
        return None

    def intervals(
        self, start: datetime, end: datetime, *, anchor: datetime | None = None
    ) -> Iterator[Interval]:
        raise ScheduleError(
            "This pipeline has no schedule, so there are no intervals to backfill: "
            "give it schedule='@daily' (or a cron/timedelta) or trigger runs with `headrace run --date`."
        )


class OnceTimetable(NullTimetable):
    """``@once``: one scheduled run, at the start date."""

    periodic = True

    @property
    def summary(self) -> str:
        return "@once"

    def next_interval(
        self,
        after_end: datetime | None,
        *,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
        catchup: bool = True,
        now: datetime,
    ) -> Interval | None:
        if after_end is not None or start_date is None:
            return None
        at = as_utc(start_date, self.timezone)
        return Interval(at, at)


class DeltaTimetable(Timetable):
    """A fixed absolute period (``timedelta(hours=6)``) on one grid, whatever ``catchup`` says.

    The grid is counted from the pipeline's start date, or from the Unix epoch (UTC)
    when there is none. Airflow uses the start date with ``catchup=True`` but the epoch
    with ``catchup=False``, so its runs move when catchup is switched; headrace's do not.

    Args:
        delta: the interval length; must be positive.
        timezone: zone in which naive datetimes are read.
        manual_interval: ``"containing"`` (default) or ``"ending"`` (Airflow's meaning).
    """

    def __init__(
        self,
        delta: timedelta,
        timezone: str | tzinfo = "UTC",
        *,
        manual_interval: ManualInterval | str = "containing",
    ) -> None:
        super().__init__(timezone, manual_interval=manual_interval)
        if delta <= timedelta(0):
            raise InvalidScheduleError(
                f"Invalid schedule {delta!r}: a timedelta schedule must be positive.",
                schedule=delta,
            )
        self.delta = delta

    @property
    def summary(self) -> str:
        return f"every {self.delta}"

    def _interval_containing(self, at: datetime) -> Interval:
        return Interval(at, at + self.delta)

    def _interval_ending(self, at: datetime) -> Interval:
        return Interval(at - self.delta, at)

    def latest_complete_interval(self, now: datetime) -> Interval:
        """The ``delta`` that ends at ``now`` (as Airflow: the timetable knows no start date)."""
        return self._interval_ending(as_utc(now, UTC))

    def align(self, when: datetime) -> datetime:
        # Without a start date there is no grid: the logical date is the moment itself.
        return as_utc(when, self.timezone)

    def _grid_at_or_after(self, at: datetime, anchor: datetime) -> datetime:
        steps = -((anchor - at) // self.delta)  # ceiling division, also before the anchor
        return anchor + steps * self.delta

    def _anchor(self, start_date: datetime | None) -> datetime:
        return as_utc(start_date, self.timezone) if start_date else EPOCH

    def next_interval(
        self,
        after_end: datetime | None,
        *,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
        catchup: bool = True,
        now: datetime,
    ) -> Interval | None:
        anchor = self._anchor(start_date)

        def latest() -> datetime:
            complete = (as_utc(now, UTC) - anchor) // self.delta  # whole intervals ended by now
            return anchor + (complete - 1) * self.delta

        start = next_start(
            after_end, anchor if start_date else None, latest, catchup=catchup,
            has_start_date=start_date is not None, end_date=end_date, zone=self.timezone,
        )  # fmt: skip
        return None if start is None else Interval(start, start + self.delta)

    def intervals(
        self, start: datetime, end: datetime, *, anchor: datetime | None = None
    ) -> Iterator[Interval]:
        first = as_utc(start, self.timezone)
        last = as_utc(end, self.timezone)
        origin = self._anchor(anchor)
        current = self._grid_at_or_after(max(first, origin) if anchor else first, origin)
        while current <= last:
            yield Interval(current, current + self.delta)
            current += self.delta


def timetable_from(
    schedule: str | timedelta | Timetable | None,
    timezone: str | tzinfo = "UTC",
    *,
    manual_interval: ManualInterval | str = "containing",
) -> Timetable:
    """Build the timetable of a pipeline's schedule.

    Args:
        schedule: cron expression, preset (``@daily``, ``@hourly``, ``@once`` ...),
            positive timedelta, a ready Timetable, or None for manual runs only.
        timezone: IANA zone in which the schedule is read (default UTC).
        manual_interval: what a manual run with a date covers (see :class:`ManualInterval`);
            a ready Timetable keeps its own.

    Returns:
        The timetable. A bad expression or zone raises :class:`InvalidScheduleError`
        (both a ScheduleError and a DefinitionError) naming it.

    Example:
        >>> timetable_from("@daily", "Europe/Amsterdam").infer_manual_interval(datetime(2024, 3, 31))
        Interval(start=datetime.datetime(2024, 3, 30, 23, 0, tzinfo=datetime.timezone.utc), end=datetime.datetime(2024, 3, 31, 22, 0, tzinfo=datetime.timezone.utc))
    """
    if isinstance(schedule, Timetable):
        return schedule
    if schedule is None:
        return NullTimetable(timezone, manual_interval=manual_interval)
    if isinstance(schedule, timedelta):
        return DeltaTimetable(schedule, timezone, manual_interval=manual_interval)
    if isinstance(schedule, str):
        if schedule.strip() == "@once":
            return OnceTimetable(timezone, manual_interval=manual_interval)
        return CronTimetable(schedule, timezone, manual_interval=manual_interval)
    raise InvalidScheduleError(
        f"Invalid schedule {schedule!r}: expected a cron string, a preset such as '@daily', "
        f"a timedelta or None, got {type(schedule).__name__}.",
        schedule=schedule,
    )
