"""Times and durations as the CLI and the web UI show them: UTC, short, the same everywhere.

Example:
    >>> format_duration(started, started + timedelta(seconds=185))
    '3m05s'
"""

from __future__ import annotations

from datetime import UTC, datetime


def format_time(value: datetime | None) -> str:
    """``2024-01-31 02:00:00`` in UTC, or ``-``."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if value is not None else "-"


def format_logical(value: datetime) -> str:
    """A logical date: the day alone at midnight UTC, else the full time."""
    utc = value.astimezone(UTC)
    return utc.strftime("%Y-%m-%d") if utc.time() == datetime.min.time() else format_time(utc)


def format_seconds(seconds: float) -> str:
    """``0.42s``, ``12.3s``, ``3m05s`` or ``1h02m`` (a negative span counts as 0)."""
    seconds = max(seconds, 0.0)
    if seconds < 10:
        return f"{seconds:.2f}s"
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"


def format_duration(
    started: datetime | None, ended: datetime | None, now: datetime | None = None
) -> str:
    """How long work took, as :func:`format_seconds`; ``-`` if it never started.

    Args:
        started: when the work started.
        ended: when it ended; None while it still runs (then measured up to ``now``,
            with a trailing ``…``).
        now: the current time (default: now, UTC).
    """
    if started is None:
        return "-"
    end = ended if ended is not None else (now or datetime.now(UTC))
    return format_seconds((end - started).total_seconds()) + ("…" if ended is None else "")
