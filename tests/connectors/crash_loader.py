"""Child process of the crash tests: one incremental load, source SQLite -> destination.

Usage: python crash_loader.py <source sqlite path> <destination url> [schema]
Set HEADRACE_CRASHPOINT to make it SIGKILL itself at that point of the load.
"""

from __future__ import annotations

import datetime as dt
import sys

import pyarrow as pa

from headrace.connectors import Checkpoint, Cursor, SqlSource, open_destination

source_path, dest_url = sys.argv[1], sys.argv[2]
dest = open_destination(dest_url)
if len(sys.argv) > 3:
    dest.schema = sys.argv[3]
cursor = Cursor("updated_at", lookback=dt.timedelta(seconds=30), primary_key="id")
src = SqlSource(f"sqlite:///{source_path}", table="items", types={"updated_at": pa.timestamp("us")})
extract = src.read(cursor=cursor, checkpoint=dest.checkpoint("crash", "items"))
table = extract.to_table()
bad = table.filter(pa.compute.equal(table.column("qty"), -1))
good = table.filter(pa.compute.not_equal(table.column("qty"), -1))
result = dest.write(
    good, "items", mode="merge", keys=["id"], dedupe_order_by="updated_at",
    quarantine=bad.append_column("_reason", pa.array(["qty is -1"] * bad.num_rows)),
    checkpoint=Checkpoint("crash", "items", extract.cursor_max), metadata=True,
)
print(f"extracted={extract.rows} loaded={result.rows_loaded} quarantined={result.rows_quarantined}")
