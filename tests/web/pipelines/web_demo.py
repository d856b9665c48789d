"""A small pipeline for the web tests: a task group, a retry, checks, a hostile failure."""

from __future__ import annotations

from datetime import datetime

import pyarrow as pa

from headrace import Context, Retry, pipeline, task, task_group
from headrace.quality import accepted_values, matches_regex, not_null

HOSTILE = "bad row <script>alert('pwned')</script> from postgresql://bob:s3cret@db.internal/crm"


@task(retries=Retry(attempts=3))
def fetch(ctx: Context) -> pa.Table:
    """Fails on its first try, so every run shows one retry."""
    if ctx.attempt == 1:
        raise ConnectionError("source not ready yet (fails once on purpose)")
    ctx.log.info("fetched 5 rows on attempt %d", ctx.attempt)
    return pa.table(
        {
            "id": [1, 2, 3, 4, 5],
            "email": ["a@x.io", "broken", "c@x.io", "d@x.io", "also broken"],
            "status": ["active", "active", "gone", "inactive", "active"],
        }
    )


@task(
    checks=[
        not_null("id"),
        matches_regex("email", r"^[^@\s]+@[^@\s]+$", severity="quarantine"),
        accepted_values("status", ["active", "inactive"], severity="warn"),
    ]
)
def clean(rows: pa.Table) -> pa.Table:
    return rows


@task
def publish(ctx: Context, rows: pa.Table) -> int:
    ctx.log.info("publishing <b>%d</b> rows", rows.num_rows)
    if ctx.params["fail_publish"]:
        raise ValueError(HOSTILE)
    return rows.num_rows


@task
def notify(count: int) -> str:
    return f"published {count}"


@pipeline(schedule="@daily", start_date=datetime(2024, 1, 1), params={"fail_publish": False})
def web_demo():
    with task_group("extract"):
        rows = clean(fetch())
    notify(publish(rows))
