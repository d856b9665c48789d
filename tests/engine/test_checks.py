"""Quality checks declared on a task: records stored, bad rows quarantined, fail stops the task."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa

from headrace import Context, pipeline, task
from headrace.engine import Runner
from headrace.quality import matches_regex, not_null, unique
from headrace.state.store_base import RunState, TaskState

DAY = datetime(2024, 3, 5, tzinfo=UTC)


@task(checks=[not_null("id"), matches_regex("email", r"^[^@\s]+@[^@\s]+$", severity="quarantine")])
def clean() -> pa.Table:
    return pa.table({"id": [1, 2, 3, 4], "email": ["a@x.io", "broken", "c@x.io", "also broken"]})


@task
def load(ctx: Context, rows: pa.Table) -> dict:
    quarantined = ctx.quarantine_of("clean")
    assert quarantined is not None, "the checks of 'clean' quarantined no rows"
    return {
        "loaded": rows.column("id").to_pylist(),
        "quarantined": quarantined.column("id").to_pylist(),
    }


@pipeline
def checked():
    load(clean())


@task(retries=3, checks=[unique("id")])
def duplicated() -> pa.Table:
    return pa.table({"id": [1, 1, 2]})


@task
def after_dupes(rows: pa.Table) -> int:
    return rows.num_rows


@pipeline
def failing_checks():
    after_dupes(duplicated())


def test_quarantined_rows_are_set_aside_and_readable_downstream(store, settings) -> None:
    result = Runner(store, executor="inprocess", settings=settings).run(checked, DAY)

    assert result.state == RunState.SUCCESS
    assert result.result_of("load") == {"loaded": [1, 3], "quarantined": [2, 4]}
    assert result.task("clean").rows == 2  # rows in = 2 loaded + 2 quarantined
    records = {r.expectation: r for r in store.get_check_results(result.run_id, "clean")}
    assert len(records) == 2
    assert sum(r.failed for r in records.values()) == 2
    assert {r.severity for r in records.values()} == {"fail", "quarantine"}


def test_a_failing_check_fails_the_task_without_retry_and_keeps_its_results(
    store, settings
) -> None:
    result = Runner(store, executor="inprocess", settings=settings).run(failing_checks, DAY)

    ti = result.task("duplicated")
    assert result.state == RunState.FAILED
    assert ti.state == TaskState.FAILED
    assert ti.attempt == 1  # QualityError is terminal although retries=3
    assert result.task("after_dupes").state == TaskState.UPSTREAM_FAILED
    (record,) = store.get_check_results(result.run_id, "duplicated")
    assert (record.status, record.failed) == ("failed", 2)
