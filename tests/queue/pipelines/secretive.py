"""Pipeline of the no-secrets-on-the-queue test: a task reports which settings it ran with."""

from __future__ import annotations

import hashlib
from datetime import datetime

from headrace import Context, pipeline, task


@task
def peek(ctx: Context) -> dict[str, object]:
    """A hash of the warehouse URL the task sees (the URL itself would put its password in Redis)."""
    url = ctx.settings.connection("wh")
    return {
        "wh": hashlib.sha256(url.encode()).hexdigest()[:12],
        "state": ctx.settings.state_url.split("@")[-1],
    }


@pipeline(start_date=datetime(2024, 1, 1))
def secretive():
    peek()
