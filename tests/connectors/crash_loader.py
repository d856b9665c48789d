"""One incremental load, source SQLite -> destination, as the crash tests run it.

As a script (the process the tests kill): ``python crash_loader.py <sqlite path>
<destination url> [schema]`` with HEADRACE_CRASHPOINT set to make it SIGKILL itself
at that point of the load (and CRASH_FAKESNOW_DB=<folder> for Snowflake under fakesnow). The tests call :func:`load` in-process for the runs that
must not die.
"""

from __future__ import annotations

import datetime as dt
import os
import sys

import pyarrow as pa
import pyarrow.compute as pc

from headrace.connectors import Checkpoint, Cursor, SqlSource, open_destination
from headrace.connectors.destinations import SqlDestination

FAKESNOW_DB = "CRASH_FAKESNOW_DB"  # set: the destination is Snowflake under fakesnow


def load(source_path: str, dest_url: str, schema: str | None = None) -> str:
    dest = open_destination(dest_url)
    if schema:
        assert isinstance(dest, SqlDestination)
        dest.schema = schema
    cursor = Cursor("updated_at", lookback=dt.timedelta(seconds=30), primary_key="id")
    src = SqlSource(
        f"sqlite:///{source_path}", table="items", types={"updated_at": pa.timestamp("us")}
    )
    extract = src.read(cursor=cursor, checkpoint=dest.checkpoint("crash", "items"))
    table = extract.to_table()
    bad = table.filter(pc.equal(table.column("qty"), -1))
    good = table.filter(pc.not_equal(table.column("qty"), -1))
    result = dest.write(
        good,
        "items",
        mode="merge",
        keys=["id"],
        dedupe_order_by="updated_at",
        quarantine=bad.append_column("_reason", pa.array(["qty is -1"] * bad.num_rows)),
        checkpoint=Checkpoint("crash", "items", extract.cursor_max),
        metadata=True,
    )
    return f"extracted={extract.rows} loaded={result.rows_loaded} quarantined={result.rows_quarantined}"


if __name__ == "__main__":
    snow = os.environ.get(FAKESNOW_DB)
    if snow:  # Snowflake emulated by fakesnow, its databases kept in this folder
        import fakesnow

        with fakesnow.patch(db_path=snow):
            print(load(*sys.argv[1:]))
    else:
        print(load(*sys.argv[1:]))
