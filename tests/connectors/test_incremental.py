"""Incremental extract and load end to end: PostgreSQL source -> DuckDB and PostgreSQL
destinations, checkpoint in the destination, late rows inside the lookback window."""

from __future__ import annotations

import datetime as dt

import psycopg
import pyarrow as pa
import pytest

from headrace.connectors import Checkpoint, Cursor, Extract, Interval, SqlSource
from headrace.connectors.incremental import decode_value, encode_value
from headrace.errors import ConnectorError

T0 = dt.datetime(2024, 6, 1, 8, 0)


def incremental_load(src: SqlSource, dest, cursor: Cursor) -> tuple[int, int]:
    """One run: extract past the destination's checkpoint, merge with the new checkpoint."""
    extract = src.read(cursor=cursor, checkpoint=dest.checkpoint("orders_etl", "shop.orders"))
    result = dest.write(
        extract,
        "orders_wh",
        mode="merge",
        keys=list(cursor.primary_key),
        dedupe_order_by=cursor.column,
        checkpoint=lambda: (
            Checkpoint("orders_etl", "shop.orders", extract.cursor_max)
            if extract.cursor_max is not None
            else None
        ),
    )
    return extract.rows, result.rows_loaded


def test_late_rows_inside_lookback_are_loaded_once(pg_schema, destination) -> None:
    url, schema = pg_schema
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            f'CREATE TABLE "{schema}".orders (id bigint PRIMARY KEY, amount numeric(10, 2), updated_at timestamp)'
        )
        conn.cursor().executemany(
            f'INSERT INTO "{schema}".orders VALUES (%s, %s, %s)',
            [(i, i * 1.5, T0 + dt.timedelta(minutes=i)) for i in range(1, 101)],
        )
    src = SqlSource(url, table="orders", schema=schema, batch_rows=32)
    cursor = Cursor("updated_at", lookback=dt.timedelta(minutes=15), primary_key=("id",))
    assert incremental_load(src, destination, cursor) == (100, 100)
    assert destination.checkpoint("orders_etl", "shop.orders").value == T0 + dt.timedelta(
        minutes=100
    )

    with psycopg.connect(url, autocommit=True) as conn:
        conn.cursor().executemany(
            f'INSERT INTO "{schema}".orders VALUES (%s, %s, %s)',
            [
                (500, 1, T0 + dt.timedelta(minutes=95)),  # committed late, inside the lookback
                (501, 1, T0 + dt.timedelta(minutes=120)),  # new
                (502, 1, T0 + dt.timedelta(minutes=10)),  # far too late: outside the window
            ],
        )
        conn.execute(
            f'UPDATE "{schema}".orders SET amount = 0, updated_at = %s WHERE id = 3',
            (T0 + dt.timedelta(minutes=121),),
        )
    extracted, loaded = incremental_load(src, destination, cursor)
    # the window [85, ...] re-reads ids 85..100, plus 500, 501 and the updated id 3
    assert extracted == 16 + 3 and loaded == extracted
    got = destination.query(
        f"SELECT id, amount FROM {destination.q('orders_wh')} ORDER BY id"
    ).to_pylist()
    ids = [r["id"] for r in got]
    assert len(ids) == len(set(ids)) == 102
    assert 500 in ids and 501 in ids and 502 not in ids  # the lookback bounds what is caught
    assert {r["id"]: float(r["amount"]) for r in got}[3] == 0.0
    # nothing changed: a third run re-reads only the window and changes nothing
    incremental_load(src, destination, cursor)
    assert (
        destination.query(f"SELECT count(*) AS n FROM {destination.q('orders_wh')}")
        .column("n")[0]
        .as_py()
        == 102
    )


def test_interval_mode_backfill_with_replace_partition(pg_schema, destination) -> None:
    url, schema = pg_schema
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE TABLE "{schema}".events (id bigint, at timestamp)')
        conn.cursor().executemany(
            f'INSERT INTO "{schema}".events VALUES (%s, %s)',
            [(i, T0 + dt.timedelta(hours=i)) for i in range(48)],
        )
    src = SqlSource(url, table="events", schema=schema)
    for day in (0, 1, 0):  # the backfill of day 0 runs twice: still no duplicate
        start = T0 + dt.timedelta(days=day)
        interval = Interval("at", start, start + dt.timedelta(days=1))
        destination.write(
            src.read(interval=interval), "events_wh", mode="replace_partition", partition=interval
        )
    ids = (
        destination.query(f"SELECT id FROM {destination.q('events_wh')} ORDER BY id")
        .column("id")
        .to_pylist()
    )
    assert ids == list(range(48))


def test_prefetched_reader_keeps_order_and_raises_source_errors() -> None:
    schema = pa.schema([("x", pa.int64())])

    def good():
        for i in range(20):
            yield pa.record_batch([pa.array([i])], schema=schema)

    reader = Extract(schema, good(), cursor_column="x").reader(prefetch=2)
    assert [b.column(0)[0].as_py() for b in reader] == list(range(20))

    def bad():
        yield pa.record_batch([pa.array([1])], schema=schema)
        raise ConnectorError("source went away at batch 2")

    with pytest.raises(ConnectorError, match="batch 2"):
        pa.Table.from_batches(list(Extract(schema, bad()).reader(prefetch=2)))


def test_checkpoint_values_round_trip_and_lookback_rules() -> None:
    for value in (42, 1.5, "abc", T0, T0.replace(tzinfo=dt.UTC), dt.date(2024, 1, 1), None):
        assert decode_value(*encode_value(value)) == value
    with pytest.raises(ConnectorError, match="primary_key"):
        Cursor("updated_at", lookback=dt.timedelta(minutes=5))
    cursor = Cursor("id", lookback=10, primary_key="id")
    assert cursor.lower_bound(Checkpoint("p", "s", 100)) == (90, True)
    assert Cursor("id").lower_bound(Checkpoint("p", "s", 100)) == (100, False)
    with pytest.raises(ConnectorError, match="empty or reversed"):
        Interval("at", T0, T0)
