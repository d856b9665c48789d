"""Data intervals and the :class:`Timetable` interface every schedule implements.

The semantics (Airflow's data intervals, DST rules, the manual-run meanings and the
differences from Airflow) are described in :mod:`headrace.pipeline.timetable`, which
also re-exports every public name here.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, tzinfo
from enum import StrEnum
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from headrace.errors import DefinitionError, ScheduleError, did_you_mean

#: more than any clock change moves a wall clock: searches start this far away
MAX_DST_SHIFT = timedelta(hours=3)
#: the origin of a timedelta schedule's grid when the pipeline has no start date
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: the smallest step of a datetime: ``t - TICK`` is "just before t"
TICK = timedelta(microseconds=1)


class InvalidScheduleError(ScheduleError, DefinitionError):
    """A schedule or time zone cannot be understood; raised when the pipeline is defined.

    Args:
        message: what is wrong and what to do (it quotes the value).
        schedule: the schedule, time zone or interval that was given.
        location: pipeline, path as for :class:`~headrace.errors.HeadraceError`.
    """

    def __init__(self, message: str, *, schedule: Any = None, **location: Any) -> None:
        self.schedule = schedule
        super().__init__(message, **location)


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
            + did_you_mean(str(value), [m.value for m in ManualInterval]),
            schedule=value,
        ) from None


class Interval(NamedTuple):
    """A data interval ``[start, end)``; the run's logical date is ``start``."""

    start: datetime
    end: datetime

    def due(self, now: datetime) -> bool:
        """Whether the interval's data is complete at ``now`` (a run may start)."""
        return self.end <= as_utc(now, UTC)


def _zone(timezone: str | tzinfo) -> tzinfo:
    if isinstance(timezone, tzinfo):
        return timezone
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidScheduleError(
            f"Unknown time zone {timezone!r}: use an IANA name such as 'UTC' or 'Europe/Amsterdam'."
            + did_you_mean(timezone, _zone_names()),
            schedule=timezone,
        ) from None


@functools.cache
def _zone_names() -> frozenset[str]:
    return frozenset(available_timezones())


def as_utc(dt: datetime, zone: tzinfo) -> datetime:
    """An aware UTC datetime; a naive one is read as wall-clock time in ``zone``."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=zone)
    return dt.astimezone(UTC)


def next_start(
    after_end: datetime | None,
    earliest: datetime | None,
    latest: Callable[[], datetime],
    *,
    catchup: bool,
    has_start_date: bool,
    end_date: datetime | None,
    zone: tzinfo,
) -> datetime | None:
    """Where a schedule's next interval starts; None when there is none (past ``end_date``).

    Args:
        after_end: where the last run's interval ended (None: no run yet).
        earliest: the first start the schedule allows (from its start date), if any.
        latest: the start of the latest complete interval, asked only when the schedule
            does not catch up, or has nothing to catch up from.
        catchup, has_start_date, end_date: the pipeline's; ``zone`` reads a naive
            ``end_date``.
    """
    if not catchup or (not has_start_date and after_end is None):
        earliest = latest() if earliest is None else max(earliest, latest())
    if after_end is None:
        start = earliest
    else:
        # Exactly where the last run ended, even off the schedule (it changed, or the run
        # predates a rule change): a shorter interval to the next fire keeps runs
        # contiguous, where aligning forward would skip data and back would repeat it.
        start = as_utc(after_end, UTC)
        if earliest is not None:
            start = max(start, earliest)
    if start is None or (end_date is not None and start > as_utc(end_date, zone)):
        return None
    return start


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
        self,
        timezone: str | tzinfo = "UTC",
        *,
        manual_interval: ManualInterval | str = "containing",
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
        at = as_utc(logical_date, self.timezone)
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
        at = as_utc(now, UTC)
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
                The next interval starts exactly there, so runs stay contiguous; when it is
                not a fire time (the schedule changed) that interval ends at the next one.
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
