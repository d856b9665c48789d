"""Syncs of the web tests: the SQLite ``orders`` table (connection ``shop``) into ``warehouse``.

``orders`` quarantines rows with a negative qty (streamed: row checks only) and warns on
empty notes; ``strict`` stops on a missing email (held in memory: ``unique`` judges the
whole table).
"""

from __future__ import annotations

from datetime import datetime

from headrace import destination, full, sql_source, sync
from headrace.quality import between, not_null, unique

orders = sync(
    "orders",
    source=sql_source("shop", table="orders"),
    incremental=full(),
    checks=[
        between("qty", min=0, severity="quarantine", reason="qty is negative"),
        not_null("note", severity="warn"),
    ],
    destination=destination("warehouse", table="orders", mode="replace"),
)
orders_pipeline = orders.pipeline(name="web_orders", start_date=datetime(2024, 1, 1))

strict = sync(
    "strict",
    source=sql_source("shop", table="orders"),
    incremental=full(),
    checks=[unique("id"), not_null("email")],
    destination=destination("warehouse", table="strict_orders", mode="replace"),
)
strict_pipeline = strict.pipeline(name="web_strict", start_date=datetime(2024, 1, 1))
