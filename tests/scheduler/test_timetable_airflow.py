"""Timetable semantics that follow Airflow (issue 21): fall-back fold=1, 30-minute DST
zones, the timedelta grid and the two meanings of a manual run's date."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from headrace.pipeline.timetable import (
    CronTimetable,
    DeltaTimetable,
    Interval,
    InvalidScheduleError,
    ManualInterval,
    timetable_from,
)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("expr", "zone", "start_date", "first"),
    [
        # Berlin falls back at 03:00 CEST -> 02:00 CET: 02:00 happens twice, Airflow fires
        # at the second (01:00 UTC), not the first (00:00 UTC).
        (
            "0 2 * * *",
            "Europe/Berlin",
            utc(2024, 10, 26, 20),
            Interval(utc(2024, 10, 27, 1), utc(2024, 10, 28, 1)),
        ),
        # New York: 01:30 happens twice on 2024-11-03 (EDT, then EST).
        (
            "30 1 * * 0",
            "America/New_York",
            utc(2024, 11, 2, 12),
            Interval(utc(2024, 11, 3, 6, 30), utc(2024, 11, 10, 6, 30)),
        ),
        # Lord Howe falls back by 30 minutes at 02:00 LHDT -> 01:30 LHST.
        (
            "30 1 * * 0",
            "Australia/Lord_Howe",
            utc(2024, 4, 5),
            Interval(utc(2024, 4, 6, 15), utc(2024, 4, 13, 15)),
        ),
    ],
)
def test_fall_back_fires_at_the_second_occurrence_as_airflow(expr, zone, start_date, first):
    tt = timetable_from(expr, zone)
    got = tt.next_interval(None, start_date=start_date, catchup=True, now=utc(2030, 1, 1))
    assert got == first
    # the same interval whichever way it is reached
    assert list(tt.intervals(start_date, first.start)) == [first]
    assert tt.infer_manual_interval(first.start) == first
    assert tt.align(first.end - timedelta(seconds=1)) == first.start


def test_fall_back_moves_the_catchup_false_start_and_the_manual_interval():
    tt = timetable_from("0 2 * * *", "Europe/Berlin")
    now = utc(2024, 10, 28, 1, 30)  # just after the interval that began at the second 02:00
    latest = tt.next_interval(None, start_date=utc(2024, 10, 1), catchup=False, now=now)
    assert latest == Interval(utc(2024, 10, 27, 1), utc(2024, 10, 28, 1))
    assert tt.latest_complete_interval(now) == latest


def _schedule_intervals(tt, lo, hi):
    return list(tt.intervals(lo, hi))


@pytest.mark.parametrize(
    ("now", "day"),
    [
        (utc(2024, 10, 5, 16, 43), (2024, 10, 5, 12)),  # spring forward 02:00 -> 02:30
        (utc(2024, 4, 6, 16, 13), (2024, 4, 6, 12)),  # fall back 02:00 -> 01:30
    ],
)
@pytest.mark.parametrize("expr", ["@hourly", "*/15 * * * *", "0 2 * * *"])
def test_lord_howe_latest_complete_interval_is_one_of_the_schedules_own(expr, now, day):
    tt = timetable_from(expr, "Australia/Lord_Howe")
    own = _schedule_intervals(tt, utc(*day) - timedelta(days=2), now + timedelta(days=1))
    # every minute around the transition, never an error and always a real interval
    for minute in range(0, 240, 7):
        at = now - timedelta(minutes=minute)
        latest = tt.latest_complete_interval(at)
        assert latest in own, f"{expr} at {at}: {latest} is not a scheduled interval"
        assert latest.end <= at
        following = own[own.index(latest) + 1]
        assert following.end > at  # and it is the latest one that has ended


def test_lord_howe_hourly_manual_run_examples_from_the_issue():
    tt = timetable_from("@hourly", "Australia/Lord_Howe")
    assert tt.latest_complete_interval(utc(2024, 10, 5, 16, 43)) == Interval(
        utc(2024, 10, 5, 15, 30), utc(2024, 10, 5, 16)
    )
    assert tt.latest_complete_interval(utc(2024, 4, 6, 16, 13)) == Interval(
        utc(2024, 4, 6, 15), utc(2024, 4, 6, 15, 30)
    )


def test_timedelta_grid_is_the_same_for_catchup_true_and_false():
    tt = timetable_from(timedelta(hours=6))
    start = utc(2024, 3, 30, 1, 17)  # not on the epoch grid
    now = utc(2024, 4, 2, 3)
    first = tt.next_interval(None, start_date=start, catchup=True, now=now)
    latest = tt.next_interval(None, start_date=start, catchup=False, now=now)
    assert first is not None and latest is not None
    assert (latest.start - first.start) % timedelta(hours=6) == timedelta(0)
    assert latest == Interval(utc(2024, 4, 1, 19, 17), utc(2024, 4, 2, 1, 17))
    backfill = list(tt.intervals(start, now, anchor=start))
    assert latest in backfill and first == backfill[0]


def test_timedelta_without_start_date_uses_the_epoch_grid_as_airflow():
    tt = timetable_from(timedelta(hours=6))
    now = utc(2024, 4, 2, 3, 41)
    for catchup in (True, False):
        assert tt.next_interval(None, catchup=catchup, now=now) == Interval(
            utc(2024, 4, 1, 18), utc(2024, 4, 2, 0)
        )
    assert [iv.start.hour for iv in tt.intervals(utc(2024, 4, 1, 1), utc(2024, 4, 1, 23))] == [
        6,
        12,
        18,
    ]


@pytest.mark.parametrize(
    ("schedule", "zone", "date", "containing", "ending"),
    [
        (
            "0 2 * * *",
            "UTC",
            utc(2024, 1, 5, 12),
            Interval(utc(2024, 1, 5, 2), utc(2024, 1, 6, 2)),
            Interval(utc(2024, 1, 4, 2), utc(2024, 1, 5, 2)),
        ),
        # on a boundary both meanings differ: Airflow's interval ends there
        (
            "0 2 * * *",
            "UTC",
            utc(2024, 1, 5, 2),
            Interval(utc(2024, 1, 5, 2), utc(2024, 1, 6, 2)),
            Interval(utc(2024, 1, 4, 2), utc(2024, 1, 5, 2)),
        ),
        (
            "@hourly",
            "Europe/Berlin",
            utc(2024, 3, 31, 1, 30),
            Interval(utc(2024, 3, 31, 1), utc(2024, 3, 31, 2)),
            Interval(utc(2024, 3, 31, 0), utc(2024, 3, 31, 1)),
        ),
        (
            timedelta(hours=6),
            "UTC",
            utc(2024, 1, 5, 5, 26),
            Interval(utc(2024, 1, 5, 5, 26), utc(2024, 1, 5, 11, 26)),
            Interval(utc(2024, 1, 4, 23, 26), utc(2024, 1, 5, 5, 26)),
        ),
        (
            None,
            "UTC",
            utc(2024, 1, 5),
            Interval(utc(2024, 1, 5), utc(2024, 1, 5)),
            Interval(utc(2024, 1, 5), utc(2024, 1, 5)),
        ),
    ],
)
def test_manual_run_date_containing_by_default_or_ending_as_airflow(
    schedule, zone, date, containing, ending
):
    tt = timetable_from(schedule, zone)
    assert tt.manual_interval is ManualInterval.CONTAINING
    assert tt.infer_manual_interval(date) == containing
    assert tt.infer_manual_interval(date, semantics="ending") == ending
    airflow_like = timetable_from(schedule, zone, manual_interval=ManualInterval.ENDING)
    assert airflow_like.infer_manual_interval(date) == ending


def test_manual_interval_choice_is_checked_and_kept_by_ready_timetables():
    with pytest.raises(InvalidScheduleError, match="'containing', 'ending'"):
        CronTimetable("@daily", manual_interval="end")
    tt = DeltaTimetable(timedelta(hours=1), manual_interval="ending")
    assert timetable_from(tt) is tt and tt.manual_interval is ManualInterval.ENDING


_CHANGES_2024 = {  # the two clock changes of 2024 (UTC days)
    "Australia/Lord_Howe": [utc(2024, 4, 6), utc(2024, 10, 5)],
    "Europe/Berlin": [utc(2024, 3, 31), utc(2024, 10, 27)],
    "America/New_York": [utc(2024, 3, 10), utc(2024, 11, 3)],
}


@pytest.mark.parametrize("zone", sorted(_CHANGES_2024))
@pytest.mark.parametrize("expr", ["0 * * * 1-5", "*/30 * * * 0", "15,45 * * * 1-6"])
def test_every_hour_schedules_with_day_fields_align_near_clock_changes(expr, zone):
    tt = timetable_from(expr, zone)
    for day in _CHANGES_2024[zone]:
        own = list(tt.intervals(day - timedelta(days=1), day + timedelta(days=2)))
        assert len(own) > 2 and all(a.end == b.start for a, b in zip(own, own[1:], strict=False))
        for before, iv in zip(own, own[1:], strict=False):
            for at in (iv.start + (iv.end - iv.start) / 2, iv.end - _TICK):
                assert tt.align(at) == iv.start
                assert tt.latest_complete_interval(at) == before


_TICK = timedelta(microseconds=1)


def test_after_a_run_that_ended_off_the_schedule_the_next_interval_closes_the_gap():
    # A run stored before the fall-back rule changed ended at the first 02:00 (00:00 UTC).
    tt = timetable_from("0 2 * * *", "Europe/Berlin")
    old_end = utc(2024, 10, 27, 0)
    repair = tt.next_interval(old_end, start_date=utc(2024, 10, 1), now=utc(2024, 11, 1))
    assert repair == Interval(old_end, utc(2024, 10, 27, 1))  # no hour left unrun
    assert tt.next_interval(
        repair.end, start_date=utc(2024, 10, 1), now=utc(2024, 11, 1)
    ) == Interval(utc(2024, 10, 27, 1), utc(2024, 10, 28, 1))
    # A schedule changed from hourly to daily: the last hourly run ended at 05:00.
    daily = timetable_from("0 2 * * *")
    assert daily.next_interval(utc(2024, 3, 1, 5), now=utc(2024, 3, 5)) == Interval(
        utc(2024, 3, 1, 5), utc(2024, 3, 2, 2)
    )
