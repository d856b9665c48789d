"""Applying a task's data-quality checks to the table it returned.

``headrace.quality`` is imported only when a task declares checks, so pipelines
without checks never pay for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from headrace.errors import QualityError
from headrace.state.store_base import CheckResultRecord


@dataclass
class CheckedTable:
    """The outcome of a task's checks, ready for staging and the store.

    Attributes:
        passed: rows to hand downstream.
        quarantined: rows moved aside by ``quarantine`` checks, or None.
        records: one result per expectation, to be stored even when the task fails.
        failure: the QualityError of ``fail`` checks, or None.
    """

    passed: pa.Table
    quarantined: pa.Table | None
    records: list[CheckResultRecord] = field(default_factory=list)
    failure: QualityError | None = None


def apply_task_checks(
    table: pa.Table, checks: list[Any], *, pipeline: str, task: str, run_id: str
) -> CheckedTable:
    """Run ``checks`` over ``table`` in one pass (``headrace.quality.apply_checks``).

    Args:
        table: the task's result as one Arrow table.
        checks: the task's expectation objects.
        pipeline, task, run_id: what the results are about.

    Returns:
        Passed and quarantined rows, the check records and the failure (if any);
        the caller stores the records before it fails the task.
    """
    from headrace.quality import apply_checks

    outcome = apply_checks(table, checks, pipeline=pipeline, task=task)
    records = list(outcome.records(run_id))
    failure: QualityError | None = None
    try:
        outcome.raise_for_failures()
    except QualityError as exc:
        failure = exc
    return CheckedTable(outcome.passed, outcome.quarantined, records, failure)
