"""Task policies: retry with exponential backoff, timeouts, SLAs and their validation.

Policies are checked when they are built, so a bad value fails when the pipeline
file is loaded (``headrace.engine.load_pipelines`` adds the file and line).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Any

from headrace.errors import DefinitionError, did_you_mean


class TriggerRule(StrEnum):
    """When a task may start, given the final states of its upstream tasks.

    A plain string works wherever a rule is taken (``trigger_rule="all_done"``): the
    members compare equal to their values.
    """

    ALL_SUCCESS = "all_success"  # every upstream succeeded (the default)
    ALL_DONE = "all_done"  # every upstream finished, however
    ALL_FAILED = "all_failed"
    ONE_SUCCESS = "one_success"
    ONE_FAILED = "one_failed"
    NONE_FAILED = "none_failed"  # none failed; skipped ones are fine


TRIGGER_RULES = tuple(TriggerRule)


def as_timedelta(value: Any, what: str, **location: Any) -> timedelta | None:
    """Accept a timedelta, a number of seconds or None; anything else is a DefinitionError.

    Args:
        value: the value given by the user.
        what: what it is, for the message (``"timeout"``).
        location: path, pipeline, task... kept on the error as fields.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise DefinitionError(f"{what} must be a timedelta or seconds, got {value!r}", **location)
    if isinstance(value, int | float):
        value = timedelta(seconds=value)
    if not isinstance(value, timedelta):
        raise DefinitionError(
            f"{what} must be a timedelta or a number of seconds, got {type(value).__name__} {value!r}",
            **location,
        )
    if value < timedelta(0):
        raise DefinitionError(f"{what} must not be negative, got {value}", **location)
    return value


@dataclass(frozen=True, init=False)
class Retry:
    """How often a task is tried and how long to wait between tries.

    The wait before try ``n + 1`` (after try ``n`` failed) is
    ``delay * backoff ** (n - 1)``, capped at ``max_delay``, then spread by
    ``jitter`` (a fraction: 0.1 means ±10 %), and capped again.

    One vocabulary everywhere: **attempts** counts every try (the first included),
    **retries** counts the tries after the first. ``Retry(attempts=4)``,
    ``@task(attempts=4)`` and ``@task(retries=3)`` are the same policy; ``Retry.retries``
    gives the retries of a Retry.

    Args:
        attempts: total number of tries, the first included (1 = no retry).
        delay: wait before the first retry (timedelta or seconds).
        backoff: factor applied to the wait at every further retry (1 = constant).
        max_delay: upper bound of any wait.
        jitter: random spread as a fraction of the wait, in [0, 1].

    Example:
        >>> Retry(attempts=3, delay=timedelta(minutes=5), backoff=2.0).delay_before(3)
        datetime.timedelta(seconds=600)
    """

    attempts: int
    delay: timedelta
    backoff: float
    max_delay: timedelta | None
    jitter: float

    def __init__(
        self,
        attempts: int = 1,
        delay: timedelta | float = timedelta(0),
        backoff: float = 1.0,
        max_delay: timedelta | float | None = None,
        jitter: float = 0.0,
    ) -> None:
        # Written out (not generated) so the waits may be given in seconds and are
        # always timedeltas once built.
        if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
            raise DefinitionError(
                f"Retry(attempts={attempts!r}): attempts is the total number of tries "
                "and must be an integer >= 1"
            )
        object.__setattr__(self, "attempts", attempts)
        object.__setattr__(self, "delay", as_timedelta(delay, "Retry delay") or timedelta(0))
        object.__setattr__(self, "max_delay", as_timedelta(max_delay, "Retry max_delay"))
        object.__setattr__(self, "backoff", backoff)
        object.__setattr__(self, "jitter", jitter)
        if not isinstance(self.backoff, int | float) or self.backoff < 1:
            raise DefinitionError(f"Retry(backoff={self.backoff!r}): backoff must be a number >= 1")
        if not isinstance(self.jitter, int | float) or not 0 <= self.jitter <= 1:
            raise DefinitionError(
                f"Retry(jitter={self.jitter!r}): jitter must be a fraction in [0, 1]"
            )

    @property
    def retries(self) -> int:
        """The number of tries after the first: ``attempts - 1``."""
        return self.attempts - 1

    @classmethod
    def coerce(cls, value: Any, what: str = "retries", **location: Any) -> Retry:
        """A Retry from a Retry, an int (number of retries after the first try, as in Airflow) or None.

        ``location`` (path, pipeline, task...) is kept on a DefinitionError as fields.
        """
        if value is None:
            return cls()
        if isinstance(value, Retry):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            if value < 0:
                raise DefinitionError(
                    f"{what}={value}: the number of retries must be >= 0", **location
                )
            return cls(attempts=value + 1)
        raise DefinitionError(
            f"{what} must be a Retry(...) or an int number of retries, got {type(value).__name__} {value!r}",
            **location,
        )

    def delay_before(self, attempt: int, rng: random.Random | None = None) -> timedelta:
        """The wait before try ``attempt`` (2 = first retry).

        Args:
            attempt: the 1-based number of the try about to start; must be >= 2.
            rng: random source for jitter (tests pass a seeded one).
        """
        if attempt < 2:
            return timedelta(0)
        seconds = self.delay.total_seconds() * self.backoff ** (attempt - 2)
        cap = self.max_delay.total_seconds() if self.max_delay is not None else None
        if cap is not None:
            seconds = min(seconds, cap)
        if self.jitter:
            seconds *= 1 + (rng or random).uniform(-self.jitter, self.jitter)
            if cap is not None:
                seconds = min(seconds, cap)
        return timedelta(seconds=max(seconds, 0.0))


def check_trigger_rule(
    rule: TriggerRule | str, what: str | None = None, **location: Any
) -> TriggerRule:
    """Validate a trigger rule (a :class:`TriggerRule` or its name), suggesting the closest known one.

    Args:
        rule: the rule given by the user.
        what: what it is set on, for the message, when no location field names it
            (``"task 'load'"``).
        location: path, pipeline, task... kept on the error as fields.
    """
    if rule not in TRIGGER_RULES:
        prefix = f"{what}: " if what else ""
        raise DefinitionError(
            f"{prefix}unknown trigger_rule {rule!r}; known: {', '.join(TRIGGER_RULES)}."
            + did_you_mean(str(rule), TRIGGER_RULES),
            **location,
        )
    return TriggerRule(rule)
