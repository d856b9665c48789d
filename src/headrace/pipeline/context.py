"""The run context handed to a task that asks for it (a parameter annotated ``Context``)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
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

    def connection(self, name: str) -> str:
        """The URL of connection ``name`` (``HEADRACE_CONN_<NAME>`` or headrace.toml)."""
        return self.settings.connection(name)

    def quarantine_of(self, task_id: str) -> pa.Table | None:
        """Rows that the checks of upstream task ``task_id`` quarantined in this run, or None."""
        return self.load_quarantine(task_id)
