"""Who hears about a task: its e-mail recipients, webhooks and callbacks (Airflow's alert options).

Set per task (``@task(email=[...], on_failure=notify)``) or for a whole pipeline through
its defaults (``@pipeline(defaults={"email": [...], "email_on_retry": True})``), the way
Airflow's ``default_args`` work: a task's own value wins over the pipeline default.

======================  ===============================  ==========================================
headrace option         Airflow                          meaning
======================  ===============================  ==========================================
``email``               ``email``                        recipients of this task's alerts
``email_on_failure``    ``email_on_failure``             alert when the task fails for good (True)
``email_on_retry``      ``email_on_retry``               alert when the task will be retried (False)
``webhooks``            (a Slack/HTTP callback)          webhook URLs receiving the same alerts
``on_failure``          ``on_failure_callback``          ``fn(ctx)`` after the last try failed
``on_retry``            ``on_retry_callback``            ``fn(ctx)`` after a try failed, before a retry
``on_success``          ``on_success_callback``          ``fn(ctx)`` after the task succeeded
``on_sla_miss``         ``sla_miss_callback``            ``fn(ctx)`` when the task missed its SLA
======================  ===============================  ==========================================

The e-mail and webhook routes add to the global channels (``HEADRACE_ALERT_*``); the
SMTP server is the global one. This module imports nothing of headrace but its errors.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from headrace.errors import DefinitionError

__all__ = ["AlertRoutes", "CALLBACK_KEYS"]

CALLBACK_KEYS = ("on_failure", "on_retry", "on_success", "on_sla_miss")


@dataclass(frozen=True)
class AlertRoutes:
    """The resolved alert options of one task.

    Attributes:
        email: recipients (besides the global ones).
        webhooks: webhook URLs (besides the global one); secrets, never shown.
        email_on_failure / email_on_retry: which events reach ``email`` and ``webhooks``.
        on_failure / on_retry / on_success / on_sla_miss: callbacks receiving the Context.
    """

    email: tuple[str, ...] = ()
    webhooks: tuple[str, ...] = ()
    email_on_failure: bool = True
    email_on_retry: bool = False
    on_failure: Callable[..., Any] | None = None
    on_retry: Callable[..., Any] | None = None
    on_success: Callable[..., Any] | None = None
    on_sla_miss: Callable[..., Any] | None = None

    def updated(self, values: Mapping[str, Any], **location: Any) -> AlertRoutes:
        """These routes with ``values`` (task options) applied; bad values are a DefinitionError
        whose fields are ``location`` (path, pipeline, task...)."""
        changes: dict[str, Any] = {}
        for key, value in values.items():
            if key in ("email", "webhooks"):
                changes[key] = _addresses(value, key, location)
            elif key in ("email_on_failure", "email_on_retry"):
                changes[key] = bool(value)
            elif key in CALLBACK_KEYS:
                if value is not None and not callable(value):
                    raise DefinitionError(
                        f"{key} must be a function taking the Context, got {type(value).__name__}",
                        **location,
                    )
                changes[key] = value
        return replace(self, **changes)

    def callback(self, event: str) -> Callable[..., Any] | None:
        """The callback for ``event`` (failure, retry, success, sla_miss), or None."""
        return getattr(self, f"on_{event}", None)


def _addresses(value: Any, what: str, location: Mapping[str, Any]) -> tuple[str, ...]:
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(
        isinstance(i, str) and i.strip() for i in items
    ):
        raise DefinitionError(
            f"{what} must be a string or a list of strings, got {value!r}", **location
        )
    return tuple(i.strip() for i in items)
