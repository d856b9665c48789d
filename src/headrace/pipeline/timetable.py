"""Timetables: which data intervals a pipeline's schedule produces, and when each is due.

A schedule (a cron expression, a preset such as ``@daily``, a :class:`~datetime.timedelta`
or ``None`` for manual runs only) becomes a :class:`Timetable`. Semantics follow Airflow:
a scheduled run covers the data interval ``[start, end)``, its logical date is ``start``,
and it becomes due once ``end <= now`` (the interval's data is complete).

Cron expressions are read in the pipeline's time zone and every datetime returned is
time-zone aware **in UTC**. UTC is returned on purpose: two local datetimes sharing one
``ZoneInfo`` compare and subtract by wall clock, so the two 02:30s of a fall-back night
would look equal; UTC instants never do.

DST rules, as in Airflow:

- a schedule with a fixed hour (``0 2 * * *``) fires at that wall-clock time every day;
  when the time does not exist (spring forward) it fires at the first instant after the
  gap, and when it exists twice (fall back) it fires once, at the first occurrence;
- a schedule that runs every hour (``*/15 * * * *``) keeps its absolute spacing, so no
  interval is lost or doubled when the clocks change.

This module imports nothing of headrace but its errors, so every part may use it.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from headrace.errors import DefinitionError, ScheduleError, did_you_mean


def croniter(*args: object) -> Any:
    """``croniter.croniter``, imported on first use (``import headrace`` stays fast)."""
    from croniter import croniter as make

    return make(*args)


def _cron_errors() -> tuple[type[Exception], ...]:
    from croniter.croniter import CroniterError

    return (CroniterError, ValueError, KeyError)

__all__ = [
    "PRESETS",
    "CronTimetable",
    "DeltaTimetable",
    "Interval",
    "InvalidScheduleError",
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


class InvalidScheduleError(ScheduleError, DefinitionError):
    """A schedule or time zone cannot be understood; raised when the pipeline is defined."""


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
    """

    #: whether the scheduler creates runs on its own (False: manual runs only)
    periodic: bool = True

    def __init__(self, timezone: str | tzinfo = "UTC") -> None:
        self.timezone = _zone(timezone)

    @property
    @abstractmethod
    def summary(self) -> str:
        """The schedule as the user wrote it, for listings."""

    @abstractmethod
    def infer_manual_interval(self, logical_date: datetime) -> Interval:
        """The data interval of a manual run at ``logical_date``.

        Args:
            logical_date: the date the user asked for (naive = pipeline time zone).

        Returns:
            For a cron schedule the interval containing ``logical_date`` (exactly the
            scheduled interval when ``logical_date`` is one of its starts); for a
            timedelta ``[logical_date, logical_date + delta)``; for no schedule the empty
            interval ``[logical_date, logical_date)``.
        """

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

    def infer_manual_interval(self, logical_date: datetime) -> Interval:
        at = _to_utc(logical_date, self.timezone)
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
    """

    def __init__(self, expression: str, timezone: str | tzinfo = "UTC") -> None:
        super().__init__(timezone)
        self.expression = expression
        cron = PRESETS.get(expression.strip(), expression.strip())
        try:
            parsed = croniter(cron)
        except _cron_errors() as exc:
            raise InvalidScheduleError(
                f"Invalid cron schedule {expression!r}: {exc}. Use five fields "
                f"'minute hour day-of-month month day-of-week' (e.g. '0 2 * * *') or a preset "
                f"({', '.join(sorted(PRESETS))}, @once)."
                + did_you_mean(expression, [*PRESETS, *_SPECIAL])
            ) from None
        self._cron = cron
        # An every-hour schedule keeps absolute spacing across DST (see module docstring).
        self._every_hour = parsed.expanded[1] == ["*"]

    @property
    def summary(self) -> str:
        return self.expression

    # -- the two primitives; everything else is built from them -------------------

    def _local_naive(self, at: datetime) -> datetime:
        return at.astimezone(self.timezone).replace(tzinfo=None)

    def _wall_to_utc(self, naive: datetime) -> datetime:
        """The instant of a wall-clock time: its first occurrence, or the end of a DST gap.

        Mapping a skipped wall time to the first instant after the gap (not an hour
        later, as ``fold=0`` does) keeps the mapping monotonic, so fire times come out
        in order and the searches below can stop at the first hit.
        """
        first = naive.replace(tzinfo=self.timezone).astimezone(UTC)
        if self._local_naive(first) == naive:
            return first
        other = naive.replace(tzinfo=self.timezone, fold=1).astimezone(UTC)
        lo, hi = int(min(first, other).timestamp()), int(max(first, other).timestamp())
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
        it = croniter(self._cron, naive)
        if self._every_hour:
            return at + (it.get_next(datetime) - naive)
        while True:
            candidate = self._wall_to_utc(it.get_next(datetime))
            # After a fall-back, later wall times can name earlier instants: skip them.
            if candidate > at:
                return candidate

    def _at_or_before(self, at: datetime) -> datetime:
        """The latest fire time at or before the UTC instant ``at``."""
        naive = self._local_naive(at)
        if self._every_hour:
            if self._following(at - timedelta(microseconds=1)) == at:
                return at
            return at + (croniter(self._cron, naive).get_prev(datetime) - naive)
        # Start past any DST shift: during a repeated hour a later wall time can be an
        # earlier instant, so searching back from ``naive`` itself could miss it.
        it = croniter(self._cron, naive + _MAX_DST_SHIFT)
        while True:
            candidate = self._wall_to_utc(it.get_prev(datetime))
            if candidate <= at:
                return candidate

    def _at_or_after(self, at: datetime) -> datetime:
        aligned = self._at_or_before(at)
        return aligned if aligned == at else self._following(at)

    # -- public API ---------------------------------------------------------------

    def infer_manual_interval(self, logical_date: datetime) -> Interval:
        start = self._at_or_before(_to_utc(logical_date, self.timezone))
        return Interval(start, self._following(start))

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
            latest = self._at_or_before(
                self._at_or_before(_to_utc(now, UTC)) - timedelta(microseconds=1)
            )
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
    """A fixed absolute period (``timedelta(hours=6)``) on a grid starting at the start date.

    Args:
        delta: the interval length; must be positive.
        timezone: zone in which naive datetimes are read.
    """

    def __init__(self, delta: timedelta, timezone: str | tzinfo = "UTC") -> None:
        super().__init__(timezone)
        if delta <= timedelta(0):
            raise InvalidScheduleError(
                f"Invalid schedule {delta!r}: a timedelta schedule must be positive."
            )
        self.delta = delta

    @property
    def summary(self) -> str:
        return f"every {self.delta}"

    def infer_manual_interval(self, logical_date: datetime) -> Interval:
        start = _to_utc(logical_date, self.timezone)
        return Interval(start, start + self.delta)

    def align(self, when: datetime) -> datetime:
        # Without a start date there is no grid: the logical date is the moment itself.
        return _to_utc(when, self.timezone)

    def _grid_at_or_after(self, at: datetime, anchor: datetime) -> datetime:
        if at <= anchor:
            return anchor
        steps = -((anchor - at) // self.delta)  # ceiling division
        return anchor + steps * self.delta

    def next_interval(
        self,
        after_end: datetime | None,
        *,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
        catchup: bool = True,
        now: datetime,
    ) -> Interval | None:
        anchor = _to_utc(start_date, self.timezone) if start_date else None
        earliest = anchor
        if not catchup or (anchor is None and after_end is None):
            now_utc = _to_utc(now, UTC)
            if anchor is None:
                latest = now_utc - self.delta
            else:
                complete = (now_utc - anchor) // self.delta  # whole intervals ended by now
                latest = anchor + max(complete - 1, 0) * self.delta
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
        current = self._grid_at_or_after(first, _to_utc(anchor, self.timezone) if anchor else first)
        while current <= last:
            yield Interval(current, current + self.delta)
            current += self.delta


def timetable_from(
    schedule: str | timedelta | Timetable | None, timezone: str | tzinfo = "UTC"
) -> Timetable:
    """Build the timetable of a pipeline's schedule.

    Args:
        schedule: cron expression, preset (``@daily``, ``@hourly``, ``@once`` ...),
            positive timedelta, a ready Timetable, or None for manual runs only.
        timezone: IANA zone in which the schedule is read (default UTC).

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
        return NullTimetable(timezone)
    if isinstance(schedule, timedelta):
        return DeltaTimetable(schedule, timezone)
    if isinstance(schedule, str):
        if schedule.strip() == "@once":
            return OnceTimetable(timezone)
        return CronTimetable(schedule, timezone)
    raise InvalidScheduleError(
        f"Invalid schedule {schedule!r}: expected a cron string, a preset such as '@daily', "
        f"a timedelta or None, got {type(schedule).__name__}."
    )
