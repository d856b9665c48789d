"""The merge plan of a write read whole before its commit (lakehouse tables, Snowflake).

A merge keeps one row per key (:func:`dedupe`) and, with a cursor column, never lets
an incoming row overwrite a stored row that is newer (:func:`plan_merge`, the
newer-row guard); the plan also counts the stored keys the merge replaces.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyarrow as pa

from headrace.connectors.destinations.destination_base import key_text
from headrace.connectors.naming import quote_ident
from headrace.errors import ConnectorError


def dedupe(
    rows: pa.Table, keys: list[str], order_by: str | None, table: str, connection: str
) -> pa.Table:
    """One row per key: the greatest ``order_by``; without it duplicate keys are an error
    (naming ``table`` in the destination ``connection``)."""
    import duckdb
    import pyarrow.compute as pc

    if (
        len(keys) == 1
        and pc.count_distinct(rows.column(keys[0]), mode="all").as_py() == rows.num_rows
    ):
        return rows  # every key once (the usual case): nothing to drop
    con = duckdb.connect()
    try:
        con.register("s", rows)
        cols = ", ".join(quote_ident(k) for k in keys)
        if order_by is None:
            dup = con.execute(
                f"SELECT {cols}, count(*) FROM s GROUP BY ALL HAVING count(*) > 1 LIMIT 1"
            ).fetchone()
            if dup:
                raise ConnectorError(
                    f"merge: the key appears {dup[-1]} times in the data. De-duplicate it, or "
                    "pass dedupe_order_by=.",
                    table=table,
                    row=key_text(keys, dup[:-1]),
                    connection=connection,
                )
            return rows
        out = con.sql(
            f"SELECT * FROM s QUALIFY row_number() OVER (PARTITION BY {cols} "
            f"ORDER BY {quote_ident(order_by)} DESC NULLS LAST) = 1"
        ).to_arrow_table()
    finally:
        con.close()
    return out.cast(rows.schema)


def plan_merge(
    rows: pa.Table,
    keys: list[str],
    cursor_column: str | None,
    stored_columns: list[str],
    keys_stored: Callable[[list[str], pa.Table], pa.Table],
    may_hold_newer: Callable[[str, pa.ChunkedArray], bool],
    table: str,
    connection: str,
) -> tuple[pa.Table, int]:
    """Drop incoming rows older than the stored row of their key; count the keys replaced.

    Arrow compute only (a hash join of the incoming keys on the stored keys, one row
    per stored key with its newest cursor): a DuckDB connection costs more to open
    than the whole plan of a 1% merge.

    Args:
        rows: the incoming rows, one per key (:func:`dedupe`).
        keys: the merge key columns.
        cursor_column: the column that orders versions of a row (None: no guard).
        stored_columns: the stored table's column names.
        keys_stored: the given columns of the stored rows, at least those whose key is
            among the incoming keys passed with them.
        may_hold_newer: whether a stored row may have the cursor above the smallest
            incoming value (False skips reading the stored cursors).
        table, connection: what errors name (the table, the destination).

    Returns:
        The rows to write and the number of stored keys they replace.
    """
    import pyarrow.compute as pc

    if any(k not in stored_columns for k in keys):
        return rows, 0  # the key columns are new: nothing stored can match
    cursor = cursor_column if cursor_column and cursor_column in stored_columns else None
    if cursor is not None and not may_hold_newer(cursor, rows.column(cursor)):
        cursor = None  # every stored row is older: nothing to drop, only keys to count
    distinct = rows.select(keys).group_by(keys, use_threads=False).aggregate([])
    stored = keys_stored(keys + ([cursor] if cursor else []), distinct)
    stored = _join(stored, distinct, keys, "left semi", table, connection)
    aggregates: list[Any] = [([], "count_all")] + ([(cursor, "max")] if cursor else [])
    per_key = stored.group_by(keys, use_threads=False).aggregate(aggregates)
    named = {"count_all": "_hr_n", f"{cursor}_max": "_hr_newest"}
    per_key = per_key.rename_columns([n if n in keys else named[n] for n in per_key.column_names])
    incoming = rows.select(keys).append_column(
        "_hr_row", pa.array(range(rows.num_rows), pa.int64())
    )
    joined = _join(incoming, per_key, keys, "left outer", table, connection)
    joined = joined.take(pc.sort_indices(joined.column("_hr_row")))
    matched = pc.is_valid(joined.column("_hr_n"))
    if cursor is None:
        return rows, int(pc.sum(matched).as_py() or 0)
    incoming_cursor = rows.column(cursor)
    try:
        newest = joined.column("_hr_newest").cast(incoming_cursor.type, safe=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise ConnectorError(
            f"merge cursor: {incoming_cursor.type} in the data but "
            f"{joined.schema.field('_hr_newest').type} in the stored table: {exc}",
            table=table,
            column=cursor,
            connection=connection,
        ) from None
    keep = pc.invert(pc.fill_null(pc.greater(newest, incoming_cursor), False))
    replaced = pc.sum(pc.and_(matched, keep)).as_py() or 0
    return rows.filter(keep), int(replaced)


def _join(
    left: pa.Table, right: pa.Table, keys: list[str], join_type: str, table: str, connection: str
) -> pa.Table:
    """``left`` joined with ``right`` on ``keys``; a ConnectorError when their types differ."""
    try:
        return left.join(right, keys, join_type=join_type, use_threads=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise ConnectorError(
            f"merge keys {keys} have other types in the data than in the stored table: {exc}",
            table=table,
            column=keys[0] if len(keys) == 1 else None,
            connection=connection,
        ) from None
