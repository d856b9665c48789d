"""Cron schedules read in a time zone, with Airflow's DST rules.

See :mod:`headrace.pipeline.timetable` for the rules and the differences from Airflow.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from headrace.errors import did_you_mean
from headrace.pipeline.intervals import (
    MAX_DST_SHIFT,
    TICK,
    Interval,
    InvalidScheduleError,
    ManualInterval,
    Timetable,
    as_utc,
    next_start,
)

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


def croniter(*args: object) -> Any:
    """``croniter.croniter``, imported on first use (``import headrace`` stays fast)."""
    from croniter import croniter as make

    return make(*args)


def _cron_errors() -> tuple[type[Exception], ...]:
    from croniter.croniter import CroniterError

    return (CroniterError, ValueError, KeyError)


class CronTimetable(Timetable):
    """A cron expression (5 fields, or 6 with seconds) read in a time zone.

    Args:
        expression: cron expression or preset (``@daily`` ...).
        timezone: IANA zone name or tzinfo.
        manual_interval: ``"containing"`` (default) or ``"ending"`` (Airflow's meaning).
    """

    def __init__(
        self,
        expression: str,
        timezone: str | tzinfo = "UTC",
        *,
        manual_interval: ManualInterval | str = "containing",
    ) -> None:
        super().__init__(timezone, manual_interval=manual_interval)
        self.expression = expression
        cron = PRESETS.get(expression.strip(), expression.strip())
        try:
            parsed = croniter(cron)
        except _cron_errors() as exc:
            raise InvalidScheduleError(
                f"Invalid cron schedule {expression!r}: {exc}. Use five fields "
                f"'minute hour day-of-month month day-of-week' (e.g. '0 2 * * *') or a preset "
                f"({', '.join(sorted(PRESETS))}, @once)."
                + did_you_mean(expression, [*PRESETS, *_SPECIAL]),
                schedule=expression,
            ) from exc
        self._cron = cron
        self._parsed = parsed  # copied per use: parsing costs more than stepping
        # An every-hour schedule keeps absolute spacing across DST (see module docstring).
        self._every_hour = parsed.expanded[1] == ["*"]

    @property
    def summary(self) -> str:
        return self.expression

    # -- the two primitives; everything else is built from them -------------------

    def _iter(self, naive: datetime) -> Any:
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
        it = self._iter(naive - MAX_DST_SHIFT)
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
        it = self._iter(self._local_naive(at) + MAX_DST_SHIFT)
        while True:
            candidate = self._wall_to_utc(it.get_prev(datetime))
            if candidate <= at:
                return candidate

    def _every_hour_at_or_before(self, at: datetime) -> datetime:
        """``_at_or_before`` of an every-hour schedule: a member of ``_following``'s sequence."""
        if self._following(at - TICK) == at:
            return at
        naive = self._local_naive(at)
        guess = at + (self._iter(naive).get_prev(datetime) - naive)
        shift = abs(self._offset(guess) - self._offset(at))
        if not shift:  # no clock change in between: stepping back by wall clock is exact
            return guess
        # Across a change, walk the sequence forward from before the guess: stepping back
        # by wall clock would, in a 30-minute DST zone, land on instants (15:00 instead of
        # 15:30) that forward steps never produce.
        current = self._following(guess - shift - TICK)
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
        return Interval(self._at_or_before(end - TICK), end)

    def align(self, when: datetime) -> datetime:
        return self._at_or_before(as_utc(when, self.timezone))

    def next_interval(
        self,
        after_end: datetime | None,
        *,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
        catchup: bool = True,
        now: datetime,
    ) -> Interval | None:
        earliest = self._at_or_after(as_utc(start_date, self.timezone)) if start_date else None
        start = next_start(
            after_end, earliest,
            # the start of the latest complete interval: the one ending at the last fire <= now
            lambda: self._at_or_before(self._at_or_before(as_utc(now, UTC)) - TICK),
            catchup=catchup, has_start_date=start_date is not None, end_date=end_date, zone=self.timezone,
        )  # fmt: skip
        return None if start is None else Interval(start, self._following(start))

    def intervals(
        self, start: datetime, end: datetime, *, anchor: datetime | None = None
    ) -> Iterator[Interval]:
        last = as_utc(end, self.timezone)
        current = self._at_or_after(as_utc(start, self.timezone))
        while current <= last:
            following = self._following(current)
            yield Interval(current, following)
            current = following
