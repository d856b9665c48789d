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
  intervals of that one sequence (Airflow raises "did not advance" there).

timedelta schedules lie on one grid whatever ``catchup`` says: counted from the
pipeline's ``start_date``, or from the Unix epoch (UTC) when there is none.

Manual runs (:meth:`Timetable.infer_manual_interval`): with a date, headrace's default
(:attr:`ManualInterval.CONTAINING`) runs the interval that contains the date (its logical
date is the interval's start, like a scheduled run); :attr:`ManualInterval.ENDING` gives
Airflow's meaning, the latest interval that ends at or before the date. Without a date
(:meth:`Timetable.latest_complete_interval`) both cover the latest complete interval.

Side by side with Airflow 3.3 (the cases are checked against Airflow's own answers in
``tests/pipeline/test_airflow_differential.py``):

=========================================  ===============================  ==========================
case                                       Airflow                          headrace
=========================================  ===============================  ==========================
fixed-hour cron at a fall-back             second occurrence                same
every-hour cron at any DST change          absolute spacing                 same
manual run without a date                  latest complete interval         same
manual run, 30-minute DST zone             error "did not advance"          latest complete interval
manual run with a date (cron)              interval ending at/before date   interval containing date
                                                                            (``ENDING``: as Airflow)
manual run with a date (timedelta)         ``[date - delta, date)``         ``[date, date + delta)``
                                                                            (``ENDING``: as Airflow)
timedelta, ``catchup=True``                grid from ``start_date``         same
timedelta, ``catchup=False``               grid from the Unix epoch         grid from ``start_date``
                                                                            (epoch when none)
cron with a list of hours (``0 6,18 * *``) absolute spacing                 wall-clock hours
=========================================  ===============================  ==========================

This module imports nothing of headrace but its errors, so every part may use it.
"""

from __future__ import annotations

import copy
import functools
from abc import ABC, abstractmethod
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, tzinfo
from enum import StrEnum
from typing import NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from croniter import croniter
from croniter.croniter import CroniterError

from headrace.errors import DefinitionError, ScheduleError, did_you_mean

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

PRESETS: dict[str, str] = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_SPECIAL = ("@once",)
_MAX_DST_SHIFT = timedelta(hours=3)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TICK = timedelta(microseconds=1)


class InvalidScheduleError(ScheduleError, DefinitionError):
    """A schedule or time zone cannot be understood; raised when the pipeline is defined."""


class ManualInterval(StrEnum):
    """Which interval a manual run with an explicit date covers."""

    #: the interval that contains the date (headrace's default; a scheduled interval's
    #: start gives exactly that interval)
    CONTAINING = "containing"
    #: the latest interval that ends at or before the date (Airflow's meaning)
    ENDING = "ending"


def _manual_choice(value: ManualInterval | str) -> ManualInterval:
    try:
        return ManualInterval(value)
    except ValueError:
        known = ", ".join(repr(m.value) for m in ManualInterval)
        raise InvalidScheduleError(
            f"Unknown manual_interval {value!r}: use one of {known}."
            + did_you_mean(str(value), [m.value for m in ManualInterval])
        ) from None


class Interval(NamedTuple):
    """A data interval ``[start, end)``; the run's logical date is ``start``."""

    start: datetime
    end: datetime

    def due(self, now: datetime) -> bool:
        """Whether the interval's data is complete at ``now`` (a run may start)."""
        return self.end <= _to_utc(now, UTC)


def _zone(timezone: str | tzinfo) -> tzinfo:
    if isinstance(timezone, tzinfo):
        return timezone
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidScheduleError(
            f"Unknown time zone {timezone!r}: use an IANA name such as 'UTC' or 'Europe/Amsterdam'."
            + did_you_mean(timezone, _zone_names())
        ) from None


@functools.cache
def _zone_names() -> frozenset[str]:
    return frozenset(available_timezones())


def _to_utc(dt: datetime, zone: tzinfo) -> datetime:
    """An aware UTC datetime; a naive one is read as wall-clock time in ``zone``."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=zone)
    return dt.astimezone(UTC)


class Timetable(ABC):
    """Turns a schedule into data intervals.

    Args:
        timezone: the zone in which the schedule and naive datetimes are read.
        manual_interval: what a manual run with a date covers: ``"containing"`` (default)
            or ``"ending"`` (Airflow's meaning); see :class:`ManualInterval`.
    """

    #: whether the scheduler creates runs on its own (False: manual runs only)
    periodic: bool = True

    def __init__(
        self, timezone: str | tzinfo = "UTC", *, manual_interval: ManualInterval | str = "containing"
    ) -> None:
        self.timezone = _zone(timezone)
        self.manual_interval = _manual_choice(manual_interval)

    @property
    @abstractmethod
    def summary(self) -> str:
        """The schedule as the user wrote it, for listings."""

    def infer_manual_interval(
        self, logical_date: datetime, *, semantics: ManualInterval | str | None = None
    ) -> Interval:
        """The data interval of a manual run at ``logical_date``.

        Args:
            logical_date: the date the user asked for (naive = pipeline time zone).
            semantics: overrides the timetable's ``manual_interval`` for this call.

        Returns:
            ``containing``: for a cron schedule the interval containing ``logical_date``
            (exactly the scheduled interval when ``logical_date`` is one of its starts);
            for a timedelta ``[logical_date, logical_date + delta)``.
            ``ending`` (Airflow): for a cron schedule the latest interval ending at or
            before ``logical_date``; for a timedelta ``[logical_date - delta, logical_date)``.
            For no schedule, either way the empty interval ``[logical_date, logical_date)``.

        Example:
            >>> tt = timetable_from("0 2 * * *")
            >>> tt.infer_manual_interval(datetime(2024, 1, 5, 12), semantics="ending").start
            datetime.datetime(2024, 1, 4, 2, 0, tzinfo=datetime.timezone.utc)
        """
        at = _to_utc(logical_date, self.timezone)
        choice = self.manual_interval if semantics is None else _manual_choice(semantics)
        if choice is ManualInterval.ENDING:
            return self._interval_ending(at)
        return self._interval_containing(at)

    @abstractmethod
    def _interval_containing(self, at: datetime) -> Interval:
        """The interval a manual run at the UTC instant ``at`` covers (headrace's meaning)."""

    @abstractmethod
    def _interval_ending(self, at: datetime) -> Interval:
        """The latest interval ending at or before the UTC instant ``at`` (Airflow's meaning)."""

    def latest_complete_interval(self, now: datetime) -> Interval:
        """The data interval of a run triggered at ``now`` without a date.

        As in Airflow, a manual trigger covers the latest interval that has ended
        (for a daily 02:00 schedule at 05:00: yesterday 02:00 to today 02:00); with no
        schedule, the empty interval ``[now, now)``.
        """
        at = _to_utc(now, UTC)
        interval = self.next_interval(None, catchup=False, now=at)
        if interval is None or not interval.due(at):
            return Interval(at, at)
        return interval

    @abstractmethod
    def align(self, when: datetime) -> datetime:
        """The latest interval start at or before ``when`` (for a given time, the start of its interval)."""

    @abstractmethod
    def next_interval(
        self,
        after_end: datetime | None,
        *,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
        catchup: bool = True,
        now: datetime,
    ) -> Interval | None:
        """The next interval the scheduler should create a run for, due or not.

        Args:
            after_end: end of the latest scheduled interval already run (None: none yet).
            start_date: no interval starts before it; without one, the first interval is
                the latest complete one (there is no past to catch up on).
            end_date: no interval starts after it (a run whose logical date equals it runs).
            catchup: when False, intervals older than the latest complete one are skipped.
            now: the current time (injected, so tests control the clock).

        Returns:
            The interval, or None when the schedule has nothing more to run. It is due
            when ``interval.due(now)``.

        Example:
            >>> tt = timetable_from("0 2 * * *")
            >>> tt.next_interval(None, start_date=datetime(2024, 1, 1), now=datetime(2024, 1, 3, tzinfo=UTC))
            Interval(start=datetime.datetime(2024, 1, 1, 2, 0, tzinfo=datetime.timezone.utc), end=datetime.datetime(2024, 1, 2, 2, 0, tzinfo=datetime.timezone.utc))
        """

    @abstractmethod
    def intervals(
        self, start: datetime, end: datetime, *, anchor: datetime | None = None
    ) -> Iterator[Interval]:
        """Every interval whose logical date lies in ``[start, end]``, oldest first (backfills).

        Args:
            start: first logical date considered (naive = pipeline time zone).
            end: last logical date considered, inclusive.
            anchor: for timedelta schedules, the grid origin (the pipeline's start_date);
                ``start`` when None. Ignored by cron schedules.
        """

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.summary!r}, timezone={str(self.timezone)!r})"


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
        return _to_utc(when, self.timezone)

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
        at = _to_utc(start_date, self.timezone)
        return Interval(at, at)


class CronTimetable(Timetable):
    """A cron expression (5 fields, or 6 with seconds) read in a time zone.

    Args:
        expression: cron expression or preset (``@daily`` ...).
        timezone: IANA zone name or tzinfo.
        manual_interval: ``"containing"`` (default) or ``"ending"`` (Airflow's meaning).
    """

    def __init__(
        self, expression: str, timezone: str | tzinfo = "UTC", *,
        manual_interval: ManualInterval | str = "containing",
    ) -> None:
        super().__init__(timezone, manual_interval=manual_interval)
        self.expression = expression
        cron = PRESETS.get(expression.strip(), expression.strip())
        try:
            parsed = croniter(cron)
        except (CroniterError, ValueError, KeyError) as exc:
            raise InvalidScheduleError(
                f"Invalid cron schedule {expression!r}: {exc}. Use five fields "
                f"'minute hour day-of-month month day-of-week' (e.g. '0 2 * * *') or a preset "
                f"({', '.join(sorted(PRESETS))}, @once)."
                + did_you_mean(expression, [*PRESETS, *_SPECIAL])
            ) from None
        self._cron = cron
        self._parsed = parsed  # copied per use: parsing costs more than stepping
        # An every-hour schedule keeps absolute spacing across DST (see module docstring).
        self._every_hour = parsed.expanded[1] == ["*"]

    @property
    def summary(self) -> str:
        return self.expression

    # -- the two primitives; everything else is built from them -------------------

    def _iter(self, naive: datetime) -> croniter:
        """A croniter positioned at the wall-clock time ``naive``."""
        it = copy.copy(self._parsed)
        it.set_current(naive, force=True)
        return it

    def _local_naive(self, at: datetime) -> datetime:
        return at.astimezone(self.timezone).replace(tzinfo=None)

    def _wall_to_utc(self, naive: datetime) -> datetime:
        """The instant of a wall-clock time: its last occurrence, or the end of a DST gap.

        A wall time that happens twice (fall back) maps to the second occurrence
        (``fold=1``), as in Airflow. Mapping a skipped wall time to the first instant after
        the gap (not an hour later, as ``fold=0`` does) keeps the mapping monotonic, so
        fire times come out in order and the searches below can stop at the first hit.
        """
        second = naive.replace(tzinfo=self.timezone, fold=1).astimezone(UTC)
        if self._local_naive(second) == naive:
            return second
        first = naive.replace(tzinfo=self.timezone).astimezone(UTC)
        if self._local_naive(first) == naive:  # pragma: no cover - fold=1 round-trips first
            return first
        lo, hi = int(min(first, second).timestamp()), int(max(first, second).timestamp())
        after = datetime.fromtimestamp(hi, UTC).astimezone(self.timezone).utcoffset()
        while hi - lo > 1:  # bisect to the transition second
            mid = (lo + hi) // 2
            if datetime.fromtimestamp(mid, UTC).astimezone(self.timezone).utcoffset() == after:
                hi = mid
            else:
                lo = mid
        return datetime.fromtimestamp(hi, UTC)

    def _following(self, at: datetime) -> datetime:
        """The first fire time strictly after the UTC instant ``at``."""
        naive = self._local_naive(at)
        if self._every_hour:
            step = self._iter(naive).get_next(datetime) - naive
            if step <= timedelta(hours=1):
                return at + step  # absolute spacing across a clock change
            # a longer pause (day fields: ``0 * * * 1-5``) resumes at its wall-clock time
            return self._wall_to_utc(naive + step)
        # Start before any DST shift: a wall time earlier than ``naive`` can still fire
        # after ``at`` when it is the second occurrence of a repeated hour.
        it = self._iter(naive - _MAX_DST_SHIFT)
        while True:
            candidate = self._wall_to_utc(it.get_next(datetime))
            if candidate > at:
                return candidate

    def _at_or_before(self, at: datetime) -> datetime:
        """The latest fire time at or before the UTC instant ``at``."""
        if self._every_hour:
            return self._every_hour_at_or_before(at)
        # Start past any DST shift: during a repeated hour a later wall time can be an
        # earlier instant, so searching back from ``naive`` itself could miss it.
        it = self._iter(self._local_naive(at) + _MAX_DST_SHIFT)
        while True:
            candidate = self._wall_to_utc(it.get_prev(datetime))
            if candidate <= at:
                return candidate

    def _every_hour_at_or_before(self, at: datetime) -> datetime:
        """``_at_or_before`` of an every-hour schedule: a member of ``_following``'s sequence."""
        if self._following(at - _TICK) == at:
            return at
        naive = self._local_naive(at)
        guess = at + (self._iter(naive).get_prev(datetime) - naive)
        shift = abs(self._offset(guess) - self._offset(at))
        if not shift:  # no clock change in between: stepping back by wall clock is exact
            return guess
        # Across a change, walk the sequence forward from before the guess: stepping back
        # by wall clock would, in a 30-minute DST zone, land on instants (15:00 instead of
        # 15:30) that forward steps never produce.
        current = self._following(guess - shift - _TICK)
        while (following := self._following(current)) <= at:
            current = following
        return current

    def _offset(self, at: datetime) -> timedelta:
        return at.astimezone(self.timezone).utcoffset() or timedelta(0)

    def _at_or_after(self, at: datetime) -> datetime:
        aligned = self._at_or_before(at)
        return aligned if aligned == at else self._following(at)

    # -- public API ---------------------------------------------------------------

    def _interval_containing(self, at: datetime) -> Interval:
        start = self._at_or_before(at)
        return Interval(start, self._following(start))

    def _interval_ending(self, at: datetime) -> Interval:
        end = self._at_or_before(at)
        return Interval(self._at_or_before(end - _TICK), end)

    def align(self, when: datetime) -> datetime:
        return self._at_or_before(_to_utc(when, self.timezone))

    def next_interval(
        self,
        after_end: datetime | None,
        *,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
        catchup: bool = True,
        now: datetime,
    ) -> Interval | None:
        earliest = self._at_or_after(_to_utc(start_date, self.timezone)) if start_date else None
        # Without a start date there is nothing to catch up from: begin at the latest.
        if not catchup or (start_date is None and after_end is None):
            # Start of the latest complete interval: the one ending at the last fire <= now.
            latest = self._at_or_before(self._at_or_before(_to_utc(now, UTC)) - _TICK)
            earliest = latest if earliest is None else max(earliest, latest)
        if after_end is None:
            if earliest is None:
                return None
            start = earliest
        else:
            start = self._at_or_after(_to_utc(after_end, UTC))
            if earliest is not None:
                start = max(start, earliest)
        if end_date is not None and start > _to_utc(end_date, self.timezone):
            return None
        return Interval(start, self._following(start))

    def intervals(
        self, start: datetime, end: datetime, *, anchor: datetime | None = None
    ) -> Iterator[Interval]:
        last = _to_utc(end, self.timezone)
        current = self._at_or_after(_to_utc(start, self.timezone))
        while current <= last:
            following = self._following(current)
            yield Interval(current, following)
            current = following


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
        self, delta: timedelta, timezone: str | tzinfo = "UTC", *,
        manual_interval: ManualInterval | str = "containing",
    ) -> None:
        super().__init__(timezone, manual_interval=manual_interval)
        if delta <= timedelta(0):
            raise InvalidScheduleError(
                f"Invalid schedule {delta!r}: a timedelta schedule must be positive."
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
        return self._interval_ending(_to_utc(now, UTC))

    def align(self, when: datetime) -> datetime:
        # Without a start date there is no grid: the logical date is the moment itself.
        return _to_utc(when, self.timezone)

    def _grid_at_or_after(self, at: datetime, anchor: datetime) -> datetime:
        steps = -((anchor - at) // self.delta)  # ceiling division, also before the anchor
        return anchor + steps * self.delta

    def _anchor(self, start_date: datetime | None) -> datetime:
        return _to_utc(start_date, self.timezone) if start_date else _EPOCH

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
        earliest = anchor if start_date else None
        if not catchup or (start_date is None and after_end is None):
            complete = (_to_utc(now, UTC) - anchor) // self.delta  # whole intervals ended by now
            latest = anchor + (complete - 1) * self.delta
            earliest = latest if earliest is None else max(earliest, latest)
        if after_end is None:
            if earliest is None:
                return None
            start = earliest
        else:
            start = _to_utc(after_end, UTC)
            if earliest is not None:
                start = max(start, earliest)
        if end_date is not None and start > _to_utc(end_date, self.timezone):
            return None
        return Interval(start, start + self.delta)

    def intervals(
        self, start: datetime, end: datetime, *, anchor: datetime | None = None
    ) -> Iterator[Interval]:
        first = _to_utc(start, self.timezone)
        last = _to_utc(end, self.timezone)
        origin = self._anchor(anchor)
        current = self._grid_at_or_after(max(first, origin) if anchor else first, origin)
        while current <= last:
            yield Interval(current, current + self.delta)
            current += self.delta


def timetable_from(
    schedule: str | timedelta | Timetable | None, timezone: str | tzinfo = "UTC", *,
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
        f"a timedelta or None, got {type(schedule).__name__}."
    )
