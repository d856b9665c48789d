"""Timetables with an injected clock: presets, catchup, start/end dates, DST days."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from headrace.errors import DefinitionError, ScheduleError
from headrace.pipeline.timetable import (
    CronTimetable,
    Interval,
    InvalidScheduleError,
    timetable_from,
)

AMS = ZoneInfo("Europe/Amsterdam")
NYC = ZoneInfo("America/New_York")


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def local_starts(tt, start, end) -> list[str]:
    return [iv.start.astimezone(tt.timezone).isoformat() for iv in tt.intervals(start, end)]


def test_presets_match_their_cron():
    for preset, cron in [
        ("@daily", "0 0 * * *"),
        ("@hourly", "0 * * * *"),
        ("@weekly", "0 0 * * 0"),
    ]:
        a = list(timetable_from(preset).intervals(datetime(2024, 1, 1), datetime(2024, 1, 20)))
        b = list(timetable_from(cron).intervals(datetime(2024, 1, 1), datetime(2024, 1, 20)))
        assert a == b and a


def test_daily_intervals_are_contiguous_and_logical_date_is_start():
    tt = timetable_from("0 2 * * *")
    ivs = list(tt.intervals(datetime(2024, 1, 1), datetime(2024, 1, 5)))
    assert [iv.start for iv in ivs] == [utc(2024, 1, d, 2) for d in range(1, 5)]
    assert all(a.end == b.start for a, b in zip(ivs, ivs[1:], strict=False))
    assert ivs[-1].end == utc(2024, 1, 5, 2)


def test_bad_cron_names_expression_and_is_definition_error():
    with pytest.raises(InvalidScheduleError, match=r"'0 25 \* \* \*'") as info:
        timetable_from("0 25 * * *")
    assert isinstance(info.value, DefinitionError) and isinstance(info.value, ScheduleError)
    with pytest.raises(InvalidScheduleError, match="Did you mean '@daily'"):
        timetable_from("@dialy")
    with pytest.raises(InvalidScheduleError, match="Europe/Amsterdam"):
        timetable_from("@daily", "Europe/Amsterdm")
    with pytest.raises(InvalidScheduleError, match="positive"):
        timetable_from(timedelta(0))


def test_manual_interval_contains_logical_date():
    tt = timetable_from("0 2 * * *")
    assert tt.infer_manual_interval(utc(2024, 1, 5, 2)) == (utc(2024, 1, 5, 2), utc(2024, 1, 6, 2))
    assert tt.infer_manual_interval(utc(2024, 1, 5, 12)) == (utc(2024, 1, 5, 2), utc(2024, 1, 6, 2))
    assert tt.infer_manual_interval(utc(2024, 1, 5, 1)) == (utc(2024, 1, 4, 2), utc(2024, 1, 5, 2))
    assert tt.align(utc(2024, 1, 5, 1, 59)) == utc(2024, 1, 4, 2)
    assert timetable_from(None).infer_manual_interval(utc(2024, 1, 5)) == (
        utc(2024, 1, 5),
        utc(2024, 1, 5),
    )
    assert timetable_from(timedelta(hours=6)).infer_manual_interval(utc(2024, 1, 5)) == (
        utc(2024, 1, 5),
        utc(2024, 1, 5, 6),
    )


def test_naive_dates_are_read_in_the_pipeline_zone():
    tt = timetable_from("@daily", "Europe/Amsterdam")
    iv = tt.infer_manual_interval(datetime(2024, 7, 1))
    assert iv == (utc(2024, 6, 30, 22), utc(2024, 7, 1, 22))
    assert iv.start.tzinfo is UTC


def test_catchup_on_creates_every_interval_from_start_date():
    tt = timetable_from("0 2 * * *")
    now = utc(2024, 1, 4, 12)
    seen, after = [], None
    while (
        iv := tt.next_interval(after, start_date=datetime(2024, 1, 1), catchup=True, now=now)
    ) and iv.due(now):
        seen.append(iv.start)
        after = iv.end
    assert seen == [utc(2024, 1, 1, 2), utc(2024, 1, 2, 2), utc(2024, 1, 3, 2)]
    # the next one exists but is not due until its end
    nxt = tt.next_interval(after, start_date=datetime(2024, 1, 1), catchup=True, now=now)
    assert nxt == (utc(2024, 1, 4, 2), utc(2024, 1, 5, 2)) and not nxt.due(now)
    assert nxt.due(utc(2024, 1, 5, 2))


def test_catchup_off_starts_at_latest_complete_interval_and_skips_downtime():
    tt = timetable_from("0 2 * * *")
    now = utc(2024, 3, 10, 12)
    first = tt.next_interval(None, start_date=datetime(2024, 1, 1), catchup=False, now=now)
    assert first == (utc(2024, 3, 9, 2), utc(2024, 3, 10, 2)) and first.due(now)
    # scheduler was down for a week after an earlier run: resume at the latest, not the missed ones
    later = utc(2024, 3, 20, 3)
    nxt = tt.next_interval(first.end, start_date=datetime(2024, 1, 1), catchup=False, now=later)
    assert nxt == (utc(2024, 3, 19, 2), utc(2024, 3, 20, 2))
    # start_date in the future wins over "latest"
    fut = tt.next_interval(None, start_date=datetime(2024, 4, 1), catchup=False, now=now)
    assert fut.start == utc(2024, 4, 1, 2)
    # exactly on a boundary: the interval that just ended is the latest complete one
    edge = tt.next_interval(
        None, start_date=datetime(2024, 1, 1), catchup=False, now=utc(2024, 3, 10, 2)
    )
    assert edge == (utc(2024, 3, 9, 2), utc(2024, 3, 10, 2))


def test_end_date_stops_the_schedule_inclusive_of_its_logical_date():
    tt = timetable_from("@daily")
    kw = dict(
        start_date=datetime(2024, 1, 1),
        end_date=datetime(2024, 1, 3),
        catchup=True,
        now=utc(2025, 1, 1),
    )
    starts, after = [], None
    while iv := tt.next_interval(after, **kw):
        starts.append(iv.start)
        after = iv.end
    assert starts == [utc(2024, 1, 1), utc(2024, 1, 2), utc(2024, 1, 3)]
    assert (
        tt.next_interval(
            None,
            start_date=datetime(2024, 2, 1),
            end_date=datetime(2024, 1, 3),
            now=utc(2025, 1, 1),
        )
        is None
    )


def test_start_date_not_on_schedule_aligns_forward():
    tt = timetable_from("0 2 * * *")
    iv = tt.next_interval(None, start_date=datetime(2024, 1, 1, 3), now=utc(2024, 2, 1))
    assert iv.start == utc(2024, 1, 2, 2)


@pytest.mark.parametrize(
    ("zone", "day", "expected"),
    [
        # spring forward: 02:00 does not exist, the run fires when the gap ends (03:00 CEST)
        (
            "Europe/Amsterdam",
            (2024, 3, 31),
            ["2024-03-30T02:00:00+01:00", "2024-03-31T03:00:00+02:00", "2024-04-01T02:00:00+02:00"],
        ),
        # fall back: 02:00 exists twice, the run fires once (second occurrence, as Airflow)
        (
            "Europe/Amsterdam",
            (2024, 10, 27),
            ["2024-10-26T02:00:00+02:00", "2024-10-27T02:00:00+01:00", "2024-10-28T02:00:00+01:00"],
        ),
        (
            "America/New_York",
            (2024, 3, 10),
            ["2024-03-09T02:00:00-05:00", "2024-03-10T03:00:00-04:00", "2024-03-11T02:00:00-04:00"],
        ),
        # NY falls back at 02:00 EDT -> 01:00 EST: 02:00 shows once on the wall
        (
            "America/New_York",
            (2024, 11, 3),
            ["2024-11-02T02:00:00-04:00", "2024-11-03T02:00:00-05:00", "2024-11-04T02:00:00-05:00"],
        ),
    ],
)
def test_daily_at_two_across_dst(zone, day, expected):
    tt = timetable_from("0 2 * * *", zone)
    d = datetime(*day)
    got = local_starts(tt, d - timedelta(days=1), d + timedelta(days=1, hours=3))
    assert got == expected


@pytest.mark.parametrize(
    ("zone", "start", "end", "n"),
    [
        ("Europe/Amsterdam", datetime(2024, 3, 31), datetime(2024, 4, 1), 23),
        ("Europe/Amsterdam", datetime(2024, 10, 27), datetime(2024, 10, 28), 25),
        ("America/New_York", datetime(2024, 3, 10), datetime(2024, 3, 11), 23),
        ("America/New_York", datetime(2024, 11, 3), datetime(2024, 11, 4), 25),
    ],
)
def test_hourly_keeps_absolute_spacing_across_dst(zone, start, end, n):
    tt = timetable_from("@hourly", zone)
    ivs = [iv for iv in tt.intervals(start, end) if iv.start < tt.align(end)]
    assert len(ivs) == n  # one run per real hour of that local day
    assert all(iv.end - iv.start == timedelta(hours=1) for iv in ivs)
    assert all(a.end == b.start for a, b in zip(ivs, ivs[1:], strict=False))
    assert len({iv.start for iv in ivs}) == n


@pytest.mark.parametrize(
    "expr", ["0 2 * * *", "30 2 * * *", "*/20 1-3 * * *", "0 0 * * 0", "15 * * * *"]
)
@pytest.mark.parametrize("zone", ["Europe/Amsterdam", "America/New_York", "UTC"])
def test_intervals_strictly_increase_and_align_round_trips(expr, zone):
    tt = timetable_from(expr, zone)
    assert isinstance(tt, CronTimetable)
    for lo, hi in [
        (datetime(2024, 3, 8), datetime(2024, 4, 2)),
        (datetime(2024, 10, 25), datetime(2024, 11, 5)),
    ]:
        ivs = list(tt.intervals(lo, hi))
        assert ivs
        for a, b in zip(ivs, ivs[1:], strict=False):
            assert a.start < a.end == b.start
        for iv in ivs:
            assert tt.align(iv.start) == iv.start
            assert tt.align(iv.end - timedelta(seconds=1)) == iv.start
            assert tt.infer_manual_interval(iv.start) == iv
            # restart-safety: the interval after a stored run's end is the next one
            assert tt.next_interval(iv.start, now=utc(2030, 1, 1)) == iv


def test_timedelta_schedule_grid_is_anchored_on_start_date():
    tt = timetable_from(timedelta(hours=6))
    start = datetime(2024, 1, 1, 1)
    now = utc(2024, 1, 2, 2)
    first = tt.next_interval(None, start_date=start, catchup=True, now=now)
    assert first == (utc(2024, 1, 1, 1), utc(2024, 1, 1, 7))
    latest = tt.next_interval(None, start_date=start, catchup=False, now=now)
    assert latest == (utc(2024, 1, 1, 19), utc(2024, 1, 2, 1)) and latest.due(now)
    ivs = list(tt.intervals(datetime(2024, 1, 1, 3), datetime(2024, 1, 2), anchor=start))
    assert [iv.start.hour for iv in ivs] == [7, 13, 19]


def test_manual_only_and_once():
    assert (
        timetable_from(None).next_interval(
            None, start_date=datetime(2024, 1, 1), now=utc(2030, 1, 1)
        )
        is None
    )
    assert not timetable_from(None).periodic
    with pytest.raises(ScheduleError, match="no schedule"):
        list(timetable_from(None).intervals(datetime(2024, 1, 1), datetime(2024, 1, 2)))
    once = timetable_from("@once")
    iv = once.next_interval(None, start_date=datetime(2024, 1, 1), now=utc(2030, 1, 1))
    assert iv == Interval(utc(2024, 1, 1), utc(2024, 1, 1)) and iv.due(utc(2024, 1, 1))
    assert once.next_interval(iv.end, start_date=datetime(2024, 1, 1), now=utc(2030, 1, 1)) is None


def test_without_start_date_scheduling_begins_at_the_latest_interval():
    now = utc(2024, 3, 10, 12)
    for catchup in (True, False):
        iv = timetable_from("0 2 * * *").next_interval(None, catchup=catchup, now=now)
        assert iv == (utc(2024, 3, 9, 2), utc(2024, 3, 10, 2))
        delta = timetable_from(timedelta(hours=6)).next_interval(None, catchup=catchup, now=now)
        assert delta == (utc(2024, 3, 10, 6), utc(2024, 3, 10, 12))


@pytest.mark.parametrize(
    ("schedule", "start", "end"),
    [
        ("0 2 * * *", datetime(2026, 11, 28, 2, tzinfo=UTC), datetime(2026, 11, 29, 2, tzinfo=UTC)),
        ("@hourly", datetime(2026, 11, 29, 4, tzinfo=UTC), datetime(2026, 11, 29, 5, tzinfo=UTC)),
        (
            timedelta(hours=6),
            datetime(2026, 11, 28, 23, 26, tzinfo=UTC),
            datetime(2026, 11, 29, 5, 26, tzinfo=UTC),
        ),
        (
            None,
            datetime(2026, 11, 29, 5, 26, tzinfo=UTC),
            datetime(2026, 11, 29, 5, 26, tzinfo=UTC),
        ),
    ],
)
def test_latest_complete_interval_is_what_a_dateless_trigger_covers(schedule, start, end):
    now = datetime(2026, 11, 29, 5, 26, tzinfo=UTC)
    interval = timetable_from(schedule).latest_complete_interval(now)
    assert (interval.start, interval.end) == (start, end)


def test_latest_complete_interval_in_a_time_zone():
    now = datetime(2026, 11, 29, 5, 26, tzinfo=UTC)
    interval = timetable_from("0 2 * * *", "Europe/Amsterdam").latest_complete_interval(now)
    assert (interval.start, interval.end) == (
        datetime(2026, 11, 28, 1, tzinfo=UTC),
        datetime(2026, 11, 29, 1, tzinfo=UTC),
    )
