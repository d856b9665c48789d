"""Clickstream: events produced into a Redis stream, loaded into DuckDB exactly once,
then summed per page over one-minute windows.

Run it (Redis at ``HEADRACE_REDIS_URL``, default ``redis://127.0.0.1:6379/0``; the
warehouse is ``.headrace/warehouse.duckdb``):

    python examples/clickstream.py                      # produce, load, aggregate, print
    headrace stream examples/clickstream.py:clicks      # long-lived consumer (Ctrl-C stops)
    headrace run examples/clickstream.py                # one scheduled-style run

The ``clicks`` stream sync is a long-lived consumer under ``headrace stream`` and, in
the ``clickstream`` pipeline, a bounded task that loads what is in the stream and
returns. Either way the stream position is committed with the rows, so the two never
load an event twice. A malformed event is quarantined into ``clicks_quarantine``.
"""

from __future__ import annotations

import json
import os
import random
from datetime import UTC, datetime, timedelta

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from headrace import Context, pipeline, task
from headrace.connectors.naming import default_warehouse
from headrace.streams import redis_stream, stream_sync
from headrace.sync import destination

REDIS_URL = os.environ.get("HEADRACE_REDIS_URL", "redis://127.0.0.1:6379/0")
STREAM = os.environ.get("CLICKSTREAM_KEY", "headrace:example:clicks")
PAGES = ["/", "/pricing", "/docs", "/blog", "/signup"]


def stamp(rows: pa.Table) -> pa.Table:
    """Event time from the producer's epoch milliseconds (a transform of each batch)."""
    at = pc.cast(pc.multiply(rows.column("ts_ms"), 1000), pa.timestamp("us", tz="UTC"))
    return rows.append_column("event_time", at)


clicks = stream_sync(
    "clicks",
    source=redis_stream(STREAM, url=REDIS_URL, group="warehouse"),
    destination=destination("warehouse", table="clicks"),
    transform=stamp,
    max_events=5_000,
    max_wait=0.5,
)


@task
def clicks_per_minute(ctx: Context, loaded: dict) -> int:
    """Rebuild the one-minute tumbling-window aggregate of the loaded clicks."""
    path = default_warehouse(ctx.settings).removeprefix("duckdb:///")
    with duckdb.connect(path) as conn:
        conn.execute(
            "CREATE OR REPLACE TABLE clicks_per_minute AS "
            "SELECT time_bucket(INTERVAL 1 MINUTE, event_time) AS window_start, page, "
            "count(*) AS clicks, count(DISTINCT user_id) AS users "
            "FROM clicks GROUP BY ALL ORDER BY window_start, page"
        )
        (windows,) = conn.execute("SELECT count(*) FROM clicks_per_minute").fetchall()[0]
    ctx.log.info("loaded %s new clicks; %d page-minute windows", loaded["loaded"], windows)
    return windows


@pipeline(schedule="*/5 * * * *", start_date=datetime(2024, 1, 1), tags=["example"])
def clickstream():
    clicks_per_minute(clicks())


def produce(n: int, seed: int = 7) -> None:
    """Write ``n`` click events (and one malformed event) into the stream."""
    import redis

    rng = random.Random(seed)
    start = datetime(2024, 1, 1, 12, tzinfo=UTC)
    client = redis.Redis.from_url(REDIS_URL)
    pipe = client.pipeline(transaction=False)
    for i in range(n):
        at = start + timedelta(seconds=i * 0.5)
        event = {"click_id": i, "user_id": f"u{rng.randrange(50)}", "page": rng.choice(PAGES),
                 "ts_ms": int(at.timestamp() * 1000)}  # fmt: skip
        pipe.xadd(STREAM, {"data": json.dumps(event)})
        if i == n // 2:
            pipe.xadd(STREAM, {"data": b"{truncated"})
    pipe.execute()
    client.close()


if __name__ == "__main__":
    from headrace.config import Settings
    from headrace.engine import Runner
    from headrace.state import open_store

    produce(int(os.environ.get("CLICKSTREAM_EVENTS", "2000")))
    settings = Settings.from_env()
    with open_store(settings.state_url) as store:
        result = Runner(store, settings=settings).run(clickstream)
    print(f"run {result.run_id}: {result.state}")
    print("clicks:", result.result_of("clicks"))
    print("windows:", result.result_of("clicks_per_minute"))
