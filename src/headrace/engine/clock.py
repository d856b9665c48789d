"""Time as the engine sees it: injectable, so retry tests never really sleep."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """The engine's source of time (``now``) and of waiting (``sleep``)."""

    def now(self) -> datetime: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """Real time in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds))


class FakeClock:
    """A clock for tests: ``sleep`` advances time at once and records each wait.

    Example:
        >>> clock = FakeClock(datetime(2024, 1, 1, tzinfo=UTC))
        >>> clock.sleep(300); clock.slept
        [300]
    """

    def __init__(self, start: datetime | None = None) -> None:
        self.current = start or datetime(2024, 1, 1, tzinfo=UTC)
        self.slept: list[float] = []

    def now(self) -> datetime:
        return self.current

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.current += timedelta(seconds=max(0.0, seconds))
