"""Two syncs of the SQLite ``items`` table (connection ``items``) into connection ``warehouse``,
as the exactly-once tests and the reliability harness run them through the CLI.

``ITEMS_PAUSE=<file>``: the transform waits until that file exists, so a test can let
another run load between this run's extract and its load; ``ITEMS_DELAY=<seconds>``:
it sleeps that long (the harness's slow run of two at once).
"""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path

import polars as pl
import pyarrow as pa

from headrace import Retry, cursor, destination, interval, sql_source, sync
from headrace.quality import between

TYPES = {"updated_at": pa.timestamp("us"), "day": pa.timestamp("us")}
CHECKS = [between("qty", min=0, severity="quarantine", reason="qty is negative")]


def hold(df: pl.DataFrame) -> pl.DataFrame:
    """Wait for the test's go-ahead when ITEMS_PAUSE names a file; sleep ITEMS_DELAY seconds."""
    time.sleep(float(os.environ.get("ITEMS_DELAY", "0")))
    gate = os.environ.get("ITEMS_PAUSE")
    if gate:
        Path(gate + ".waiting").touch()
        deadline = time.monotonic() + 60
        while not Path(gate).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    return df


items = sync(
    "items",
    source=sql_source("items", table="items", types=TYPES),
    incremental=cursor("updated_at", lookback=dt.timedelta(seconds=30), primary_key="id"),
    transform=hold,
    checks=CHECKS,
    destination=destination("warehouse", table="items", mode="merge", keys="id"),
    retries=Retry(attempts=6, delay=dt.timedelta(seconds=0.5)),
)
items_pipeline = items.pipeline(name="items")

daily = sync(
    "daily",
    source=sql_source("items", table="items", types=TYPES),
    incremental=interval("day"),
    checks=CHECKS,
    destination=destination("warehouse", table="daily", mode="replace_partition"),
    retries=Retry(attempts=6, delay=dt.timedelta(seconds=0.5)),
)
daily_pipeline = daily.pipeline(name="daily", schedule="@daily", start_date=dt.datetime(2024, 1, 1))
