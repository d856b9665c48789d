"""Alert routing and callbacks: who hears about a task when it fails, retries, succeeds or misses its SLA.

The engine sends, for each task event of a run it drives:

* the global alerts (:class:`headrace.observe.alerts.Alerter`, built once at the edge
  from the settings): failure, and retry when switched on;
* the task's own routes (``email``, ``webhooks``, set per task or as pipeline defaults):
  failure when ``email_on_failure`` (default), retry when ``email_on_retry``; e-mail goes
  through the global SMTP server to the task's recipients;
* the task's callbacks ``on_failure`` / ``on_retry`` / ``on_success`` with its
  :class:`~headrace.pipeline.Context` (``ctx.error`` set for failures and retries).

SLA misses (found by the scheduler) go through :func:`notify_sla_miss` the same way,
with ``on_sla_miss``. A callback or channel that breaks never breaks the run: the error
is logged, and a callback's traceback is stored with the task's log.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from headrace.config import Settings
from headrace.engine.staging import staging_dir
from headrace.engine.task_variables import variable_reader
from headrace.executors.executor_base import Event
from headrace.observe.alerts import (
    Alert,
    AlertChannel,
    Alerter,
    AlertKind,
    EmailChannel,
    WebhookChannel,
)
from headrace.pipeline import Context, Pipeline
from headrace.pipeline.alerting import AlertRoutes
from headrace.state.store_base import RunRecord, SlaMissRecord, StateStore, TaskState

__all__ = ["TaskNotifier", "notify_sla_miss", "route_channels"]

log = logging.getLogger("headrace.alerts")
_KINDS = {
    TaskState.FAILED.value: AlertKind.FAILURE,
    TaskState.UP_FOR_RETRY.value: AlertKind.RETRY,
    TaskState.SUCCESS.value: "success",
}


def route_channels(routes: AlertRoutes, alerter: Alerter | None, where: str) -> list[AlertChannel]:
    """The channels of a task's own routes: its recipients on the global SMTP server, its webhooks.

    Args:
        routes: the task's alert options.
        alerter: the global alerter, whose e-mail channel gives the SMTP server.
        where: pipeline and task, for the warning when recipients have no SMTP server.
    """
    channels: list[AlertChannel] = [WebhookChannel(url) for url in routes.webhooks]
    if routes.email:
        smtp = next(
            (c for c in (alerter.channels if alerter else ()) if isinstance(c, EmailChannel)), None
        )
        if smtp is None:
            log.warning(
                "%s: e-mail recipients %s set but no SMTP server (HEADRACE_ALERT_SMTP_URL); not e-mailed",
                where,
                ", ".join(routes.email),
            )
        else:
            channels.append(replace(smtp, recipients=list(routes.email)))
    return channels


class TaskNotifier:
    """An engine ``on_event`` callback sending the alerts and callbacks of one run's tasks.

    Args:
        pipeline: the pipeline being run.
        run: its run record.
        store: where a failing callback's traceback is logged.
        settings: what callbacks see as ``ctx.settings``.
        alerter: the global alerter (None: only the tasks' own routes and callbacks).
        then: the next ``on_event`` callback (a live view), called first.
    """

    def __init__(
        self,
        pipeline: Pipeline,
        run: RunRecord,
        store: StateStore,
        settings: Settings,
        alerter: Alerter | None,
        then: Callable[[Event], None] | None = None,
    ) -> None:
        self.pipeline, self.run, self.store, self.settings = pipeline, run, store, settings
        self.alerter, self.then = alerter, then

    def __call__(self, event: Event) -> None:
        if self.then is not None:
            self.then(event)
        if event.kind != "task" or event.state is None or event.task_id is None:
            return
        kind = _KINDS.get(event.state)
        task = self.pipeline.tasks.get(event.task_id)
        if kind is None or task is None or (event.map_index >= 0 and kind != AlertKind.RETRY):
            return  # a mapped task's own outcome follows its elements'
        routes = task.alerts
        callback = routes.callback("success" if kind == "success" else str(kind))
        if callback is not None:
            self._call(callback, event)
        if kind == "success":
            return
        task_label = event.task_id if event.map_index < 0 else f"{event.task_id}[{event.map_index}]"
        alert = Alert(
            kind=AlertKind(kind),
            pipeline=self.pipeline.name,
            run_id=self.run.run_id,
            logical_date=self.run.logical_date,
            task_id=task_label,
            error=event.error,
            attempt=event.attempt,
            detail=(
                f"Resume with: headrace resume {self.run.run_id}"
                if kind == AlertKind.FAILURE
                else "The task will be retried by its retry policy."
            ),
        )
        if self.alerter is not None:
            self.alerter.notify(alert)
        wanted = routes.email_on_failure if kind == AlertKind.FAILURE else routes.email_on_retry
        if wanted and (routes.email or routes.webhooks):
            where = f"pipeline {self.pipeline.name!r}, task {event.task_id!r}"
            Alerter(route_channels(routes, self.alerter, where), on_retry=True).notify(alert)

    def _call(self, callback: Callable[[Context], Any], event: Event) -> None:
        ctx = callback_context(
            self.pipeline,
            self.run,
            self.settings,
            event.task_id or "",
            event.map_index,
            event.attempt or 1,
            event.error,
        )
        try:
            callback(ctx)
        except Exception as exc:  # a broken callback must not break the run it reports on
            name = getattr(callback, "__qualname__", repr(callback))
            log.warning(
                "pipeline %r, task %r: callback %s failed: %s: %s",
                self.pipeline.name,
                event.task_id,
                name,
                type(exc).__name__,
                exc,
            )
            try:
                self.store.append_log(
                    self.run.run_id,
                    event.task_id or "",
                    event.map_index,
                    event.attempt or 0,
                    f"callback {name} failed:\n" + "".join(traceback.format_exception(exc)),
                )
            except Exception:  # pragma: no cover - the store is down: the warning above stays
                log.exception("could not store the callback failure")


def callback_context(
    pipeline: Pipeline,
    run: RunRecord,
    settings: Settings,
    task_id: str,
    map_index: int,
    attempt: int,
    error: str | None,
) -> Context:
    """The Context a callback receives: the task's, with ``error`` set for failures and retries."""
    return Context(
        run_id=run.run_id,
        pipeline=pipeline.name,
        task_id=task_id,
        logical_date=run.logical_date,
        data_interval_start=run.data_interval_start,
        data_interval_end=run.data_interval_end,
        settings=settings,
        staging_dir=staging_dir(settings.home, pipeline.name, run.run_id),
        map_index=map_index,
        attempt=attempt,
        params=dict(run.params or {}),
        log=logging.getLogger(f"headrace.task.{pipeline.name}.{task_id}"),
        timetable=pipeline.timetable,
        error=error,
        variables=variable_reader(settings.state_url),
    )


def notify_sla_miss(
    pipeline: Pipeline,
    miss: SlaMissRecord,
    run: RunRecord,
    alerter: Alerter | None,
    settings: Settings | None,
) -> None:
    """Route an SLA miss of one task: its ``on_sla_miss`` callback and its own e-mail/webhooks.

    The global alert for the miss is the scheduler's (it already sends it).

    Args:
        pipeline: the pipeline.
        miss: the recorded miss.
        run: the run that missed.
        alerter: the global alerter (for its SMTP server).
        settings: what the callback sees as ``ctx.settings`` (None: a home of ``.headrace``).
    """
    task = pipeline.tasks.get(miss.task_id)
    if task is None:
        return
    routes = task.alerts
    where = f"pipeline {pipeline.name!r}, task {miss.task_id!r}"
    if routes.on_sla_miss is not None:
        ctx = callback_context(
            pipeline,
            run,
            settings or Settings(home=Path(".headrace"), state_url=""),
            miss.task_id,
            -1,
            0,
            None,
        )
        try:
            routes.on_sla_miss(ctx)
        except Exception as exc:  # as for the other callbacks: logged, never raised
            log.warning("%s: on_sla_miss callback failed: %s: %s", where, type(exc).__name__, exc)
    if routes.email or routes.webhooks:
        alert = Alert(
            AlertKind.SLA_MISS,
            pipeline.name,
            run.run_id,
            run.logical_date,
            task_id=miss.task_id,
            sla=miss.sla,
            detail=f"Deadline was {miss.deadline.isoformat()} (data interval end + SLA).",
        )
        Alerter(route_channels(routes, alerter, where)).notify(alert)
