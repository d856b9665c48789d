"""The run context handed to a task that asks for it (a parameter annotated ``Context``)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from headrace.errors import TerminalError
from headrace.pipeline.macros import next_interval, previous_interval, schedule_interval
from headrace.pipeline.timetable import Interval, Timetable

if TYPE_CHECKING:
    import pyarrow as pa

    from headrace.config import Settings


_MISSING: Any = object()


class UnknownVariable(TerminalError, KeyError):
    """A task read a Variable that is not set (and gave no default)."""

    def __init__(self, pipeline: str, task_id: str, name: str) -> None:
        self.task_id, self.name = task_id, name
        super().__init__(
            f"variable {name!r} is not set; set it with `headrace vars set {name} VALUE` or pass "
            "default=...",
            pipeline=pipeline,
            task=task_id,
        )

    def __str__(self) -> str:  # KeyError would show the message quoted
        return str(self.args[0])


def _no_progress(done: float, total: float | None, message: str | None) -> None:
    return None


def _no_checks(records: list[Any]) -> None:
    return None


def _no_metric(name: str, value: float, tags: dict[str, str]) -> None:
    pass


def _no_quarantine(task_id: str) -> pa.Table | None:
    return None


@dataclass
class Context:
    """What a task knows about the run it belongs to.

    Attributes:
        run_id, pipeline, task_id: which run and task this is.
        map_index: element number of a mapped task, -1 otherwise.
        logical_date: the date the run is for; ``data_interval_start`` / ``data_interval_end``
            bound the data it should process.
        attempt: 1 for the first try, 2 for the first retry, ...
        params: the run's parameters, typed by the pipeline's defaults.
        log: a logger whose records are stored with this attempt.
        settings: headrace settings (connections, home folder).
        staging_dir: folder of this run's staged results, for the task's own scratch files.
        timetable: the pipeline's schedule, for ``prev_ds`` / ``next_ds`` and the previous
            interval (see :mod:`headrace.pipeline.macros` for every macro beside Airflow's).
        error: in an ``on_failure`` / ``on_retry`` callback, the error of the failed try.
        variables: reads Variables of the state store (``ctx.var``); None outside a run.
        record_checks: stores check results (``CheckResultRecord``) a task produced itself,
            such as the dbt task's test results; kept even when the task then fails.

    Example:
        >>> @task
        ... def extract(ctx: Context) -> pa.Table:
        ...     ctx.log.info("extracting %s .. %s", ctx.data_interval_start, ctx.data_interval_end)
        ...     return read_rows(ctx.connection("crm"), since=ctx.data_interval_start)
    """

    run_id: str
    pipeline: str
    task_id: str
    logical_date: datetime
    data_interval_start: datetime
    data_interval_end: datetime
    settings: Settings
    staging_dir: Path
    map_index: int = -1
    attempt: int = 1
    params: dict[str, Any] = field(default_factory=dict)
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("headrace.task"))
    report_progress: Callable[[float, float | None, str | None], None] = field(
        default=_no_progress, repr=False
    )
    load_quarantine: Callable[[str], pa.Table | None] = field(default=_no_quarantine, repr=False)
    record_checks: Callable[[list[Any]], None] = field(default=_no_checks, repr=False)
    timetable: Timetable | None = field(default=None, repr=False)
    error: str | None = None
    variables: Callable[[str], Any] | None = field(default=None, repr=False)
    record_metric: Callable[[str, float, dict[str, str]], None] = field(
        default=_no_metric, repr=False
    )

    @property
    def ds(self) -> str:
        """The logical date as ``YYYY-MM-DD`` (Airflow's ``ds``)."""
        return self.logical_date.strftime("%Y-%m-%d")

    @property
    def ds_nodash(self) -> str:
        """The logical date as ``YYYYMMDD`` (Airflow's ``ds_nodash``)."""
        return self.logical_date.strftime("%Y%m%d")

    @property
    def ts(self) -> str:
        """The logical date in ISO 8601 with its UTC offset (Airflow's ``ts``)."""
        return self.logical_date.isoformat()

    @property
    def ts_nodash(self) -> str:
        """The logical date as ``YYYYMMDDTHHMMSS`` (Airflow's ``ts_nodash``)."""
        return self.logical_date.strftime("%Y%m%dT%H%M%S")

    def _scheduled(self) -> Interval | None:
        if self.timetable is None:
            return None
        return schedule_interval(self.timetable, self.logical_date)

    def _previous(self) -> Interval | None:
        base = self._scheduled()
        if base is None or self.timetable is None:
            return None
        # Airflow's previous schedule: the latest scheduled logical date strictly before this one
        # (for a manual run between two schedule points, the interval it falls in).
        return base if base.start < self.logical_date else previous_interval(self.timetable, base)

    @property
    def prev_ds(self) -> str | None:
        """The previous scheduled logical date as ``YYYY-MM-DD`` (Airflow's ``prev_ds``); None without a schedule.

        Not the data interval start: for a daily run of 2024-01-02 it is ``2024-01-01``.
        """
        previous = self._previous()
        return previous.start.strftime("%Y-%m-%d") if previous is not None else None

    @property
    def next_ds(self) -> str | None:
        """The next scheduled logical date as ``YYYY-MM-DD`` (Airflow's ``next_ds``); None without a schedule."""
        base = self._scheduled()
        following = (
            next_interval(self.timetable, base) if base is not None and self.timetable else None
        )
        return following.start.strftime("%Y-%m-%d") if following is not None else None

    @property
    def prev_data_interval_start(self) -> datetime | None:
        """Start of the previous scheduled data interval (None without a schedule)."""
        previous = self._previous()
        return previous.start if previous is not None else None

    @property
    def prev_data_interval_end(self) -> datetime | None:
        """End of the previous scheduled data interval (None without a schedule)."""
        previous = self._previous()
        return previous.end if previous is not None else None

    def var(self, name: str, default: Any = _MISSING, *, deserialize_json: bool = False) -> Any:
        """The Variable ``name`` from the state store (``headrace vars set``), like Airflow's ``Variable.get``.

        Args:
            name: the variable's name.
            default: returned when it is not set; without one an unset variable is an
                :class:`UnknownVariable` (a KeyError) naming it.
            deserialize_json: parse the stored text as JSON (Airflow's ``deserialize_json``).

        Example:
            >>> source = ctx.var("source_db_conn")
        """
        try:
            if self.variables is None:
                raise KeyError(name)
            value = self.variables(name)
        except KeyError:
            if default is not _MISSING:
                return default
            raise UnknownVariable(self.pipeline, self.task_id, name) from None
        return json.loads(value) if deserialize_json else value

    def progress(self, done: float, total: float | None = None, message: str | None = None) -> None:
        """Report progress (shown live by ``headrace run`` and the web UI).

        Args:
            done: units done so far.
            total: units in all, when known.
            message: a short note, e.g. ``"batch 3 of 10"``.
        """
        self.report_progress(done, total, message)

    @classmethod
    def for_test(
        cls,
        logical_date: datetime | None = None,
        *,
        params: dict[str, Any] | None = None,
        connections: dict[str, str] | None = None,
        home: str | Path | None = None,
        pipeline: str = "test",
        task_id: str = "test",
        run_id: str = "test-run",
        interval: timedelta = timedelta(days=1),
        attempt: int = 1,
        map_index: int = -1,
    ) -> Context:
        """A context for calling a task function directly in a unit test or notebook.

        Args:
            logical_date: the run's date (default: today 00:00 UTC); the data interval
                is ``[logical_date - interval, logical_date)``.
            params: the run's parameters.
            connections: connection name -> URL (what ``ctx.connection`` returns).
            home: folder for staging (default: a new temporary folder).
            pipeline, task_id, run_id, attempt, map_index: what the task sees of its run.
            interval: length of the data interval.

        Example:
            >>> ctx = Context.for_test(datetime(2024, 1, 2, tzinfo=UTC), params={"n": 3})
            >>> (ctx.ds, ctx.prev_ds, ctx.params["n"])
            ('2024-01-02', '2024-01-01', 3)
        """
        import tempfile

        from headrace.config import Settings
        from headrace.pipeline.timetable import timetable_from

        if logical_date is None:
            logical_date = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        elif logical_date.tzinfo is None:
            logical_date = logical_date.replace(tzinfo=UTC)
        folder = Path(home) if home is not None else Path(tempfile.mkdtemp(prefix="headrace-test-"))
        settings = Settings(
            home=folder,
            state_url=f"sqlite:///{folder / 'state.db'}",
            connections={k.lower(): v for k, v in (connections or {}).items()},
        )
        return cls(
            run_id=run_id,
            pipeline=pipeline,
            task_id=task_id,
            logical_date=logical_date,
            data_interval_start=logical_date - interval,
            data_interval_end=logical_date,
            settings=settings,
            staging_dir=folder / "staging",
            map_index=map_index,
            attempt=attempt,
            params=dict(params or {}),
            log=logging.getLogger(f"headrace.task.{pipeline}.{task_id}"),
            timetable=timetable_from(interval),  # a schedule of `interval`: prev_ds, next_ds
        )

    def metric(self, name: str, value: float, tags: dict[str, Any] | None = None) -> None:
        """Publish a metric of this task: to StatsD (``[metrics] statsd``) at once, and to
        Prometheus ``/metrics`` (``headrace_custom_<name>``, its latest value) when the attempt ends.

        Args:
            name: letters, digits and ``_`` (``rows_skipped``).
            value: a number.
            tags: labels (``{"source": "crm"}``); pipeline and task are added.

        Example:
            >>> ctx.metric("api_pages", 12, tags={"endpoint": "orders"})
        """
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise TypeError(
                f"ctx.metric({name!r}): value must be a number, got {type(value).__name__}"
            )
        if not name.replace("_", "").isalnum():
            raise ValueError(f"ctx.metric({name!r}): a name is letters, digits and '_'")
        self.record_metric(name, float(value), {str(k): str(v) for k, v in (tags or {}).items()})

    def connection(self, name: str) -> str:
        """The URL of connection ``name`` (``HEADRACE_CONN_<NAME>`` or headrace.toml)."""
        return self.settings.connection(name)

    def quarantine_of(self, task_id: str) -> pa.Table | None:
        """Rows that the checks of upstream task ``task_id`` quarantined in this run, or None."""
        return self.load_quarantine(task_id)
