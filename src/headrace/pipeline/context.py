"""The run context handed to a task that asks for it (a parameter annotated ``Context``)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

    from headrace.config import Settings


def _no_progress(done: float, total: float | None, message: str | None) -> None:
    return None


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

    @property
    def ds(self) -> str:
        """The logical date as ``YYYY-MM-DD`` (Airflow's ``ds``)."""
        return self.logical_date.strftime("%Y-%m-%d")

    @property
    def prev_ds(self) -> str:
        """The data interval start as ``YYYY-MM-DD`` (what Airflow users call ``prev_ds``)."""
        return self.data_interval_start.strftime("%Y-%m-%d")

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

        if logical_date is None:
            logical_date = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        elif logical_date.tzinfo is None:
            logical_date = logical_date.replace(tzinfo=UTC)
        folder = Path(home) if home is not None else Path(tempfile.mkdtemp(prefix="headrace-test-"))
        settings = Settings(home=folder, state_url=f"sqlite:///{folder / 'state.db'}",
                            connections={k.lower(): v for k, v in (connections or {}).items()})
        return cls(
            run_id=run_id, pipeline=pipeline, task_id=task_id, logical_date=logical_date,
            data_interval_start=logical_date - interval, data_interval_end=logical_date,
            settings=settings, staging_dir=folder / "staging", map_index=map_index, attempt=attempt,
            params=dict(params or {}), log=logging.getLogger(f"headrace.task.{pipeline}.{task_id}"),
        )

    def connection(self, name: str) -> str:
        """The URL of connection ``name`` (``HEADRACE_CONN_<NAME>`` or headrace.toml)."""
        return self.settings.connection(name)

    def quarantine_of(self, task_id: str) -> pa.Table | None:
        """Rows that the checks of upstream task ``task_id`` quarantined in this run, or None."""
        return self.load_quarantine(task_id)
