"""Times and durations as the CLI and the web UI both show them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from headrace.observe.times import format_duration, format_logical, format_seconds, format_time

T0 = datetime(2024, 3, 2, 1, 0, tzinfo=UTC)


def test_format_duration() -> None:
    assert format_duration(None, None) == "-"
    assert format_duration(T0, T0 + timedelta(milliseconds=420)) == "0.42s"
    assert format_duration(T0, T0 + timedelta(seconds=12.34)) == "12.3s"
    assert format_duration(T0, T0 + timedelta(seconds=185)) == "3m05s"
    assert format_duration(T0, T0 + timedelta(seconds=3720)) == "1h02m"
    assert format_duration(T0, None, now=T0 + timedelta(seconds=2)) == "2.00s…"
    assert format_duration(T0, T0 - timedelta(seconds=1)) == "0.00s"  # clock skew shows as 0


def test_format_seconds_and_times_in_utc() -> None:
    assert format_seconds(60) == "1m00s" and format_seconds(7322) == "2h02m"
    paris = timezone(timedelta(hours=1))
    assert format_time(datetime(2024, 3, 2, 3, 4, 5, tzinfo=paris)) == "2024-03-02 02:04:05"
    assert format_time(None) == "-"
    assert format_logical(datetime(2024, 3, 2, tzinfo=UTC)) == "2024-03-02"
    assert format_logical(datetime(2024, 3, 2, 1, tzinfo=paris)) == "2024-03-02"  # midnight UTC
    assert format_logical(T0) == "2024-03-02 01:00:00"
