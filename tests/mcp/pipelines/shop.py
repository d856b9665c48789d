"""A small shop pipeline for the MCP server's tests: checks that quarantine, a load, a task that can fail.

``orders`` makes five orders, two of them bad (no email; a malformed one); the
checks quarantine those. ``load`` writes the good rows to ``orders`` of the
connection named by the ``target`` param, the quarantined ones to
``orders_quarantine``, with a checkpoint (so the ``_hr_loads`` ledger names the
pipeline and source). ``publish`` fails while the file ``publish_fails`` exists in
the headrace home (and is slow while ``publish_sleeps`` does), and logs the password of
connection ``secretdb`` (to be masked).
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

import pyarrow as pa

from headrace import Context, pipeline, task
from headrace.connectors import Checkpoint, open_destination
from headrace.quality import matches_regex, not_null


@task(
    checks=[
        not_null("email", severity="quarantine", reason="email is missing"),
        matches_regex(
            "email", r"^[^@\s]+@[^@\s]+$", severity="quarantine", reason="email is not valid"
        ),
    ]
)
def orders(ctx: Context) -> pa.Table:
    """Five orders, two of them bad."""
    ctx.log.info("made 5 orders for %s", ctx.ds)
    return pa.table(
        {
            "order_id": [1, 2, 3, 4, 5],
            "email": ["a@x.org", None, "c@x.org", "not-an-email", "e@x.org"],
            "amount": [10.5, 20.0, 30.25, 40.0, 50.0],
        }
    )


@task
def load(ctx: Context, clean: pa.Table) -> dict:
    """Append the good rows with the quarantine and a checkpoint, in one transaction."""
    quarantined = ctx.quarantine_of("orders")
    dest = open_destination(ctx.params["target"], ctx.settings)
    load_id = f"{ctx.run_id}:load"
    result = dest.write(
        clean,
        "orders",
        mode="append",
        quarantine=quarantined,
        load_id=load_id,
        metadata=True,
        checkpoint=Checkpoint("shop", "demo.orders", max(clean["order_id"].to_pylist())),
    )
    ctx.log.info("loaded %d rows, quarantined %d", result.rows_loaded, result.rows_quarantined)
    return {
        "loaded": result.rows_loaded,
        "quarantined": result.rows_quarantined,
        "load_id": load_id,
    }


@task
def publish(ctx: Context, stats: dict) -> dict:
    """Fails while <home>/publish_fails exists (takes 2 s while publish_sleeps does); logs a password."""
    password = urlsplit(ctx.settings.connection("secretdb")).password
    ctx.log.info("publishing with password %s", password)
    if (Path(ctx.settings.home) / "publish_sleeps").exists():
        time.sleep(2)
    if (Path(ctx.settings.home) / "publish_fails").exists():
        raise RuntimeError(f"cannot reach the report server with password {password}")
    return {"published": stats["loaded"]}


@pipeline(
    schedule="@daily",
    start_date=datetime(2024, 1, 1),
    params={"target": "warehouse"},
    tags=["shop", "test"],
    owner="shop-team",
    doc="Loads the shop's orders, quarantining bad ones, then publishes a report.",
)
def shop():
    publish(load(orders()))
