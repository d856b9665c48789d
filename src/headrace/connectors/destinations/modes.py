"""The SQL of each write mode, shared by SQL destinations (mixed into ``SqlDestination``).

De-duplicating merge input, the atomic replace, schema evolution, deleting a partition
or the keys a merge replaces (keeping newer stored rows when a cursor column is given),
and appending to the quarantine table: each one or two statements with bound values.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from headrace.connectors.destinations.destination_base import (
    META_LOAD_ID,
    META_LOADED_AT,
    WriteMode,
    check_columns,
    key_text,
)
from headrace.connectors.incremental import Interval
from headrace.connectors.naming import quote_ident
from headrace.errors import ConnectorError, did_you_mean


class ModeSteps:
    """The write-mode statements; the backend primitives come from ``SqlDestination``."""

    dialect: str

    if TYPE_CHECKING:  # supplied by SqlDestination and its backends

        def q(self, name: str) -> str: ...
        def _exec(self, conn: Any, sql: str, params: Sequence[Any] = ()) -> list[tuple]: ...
        def _exec_count(self, conn: Any, sql: str, params: Sequence[Any] = ()) -> int: ...
        def _stage(self, conn: Any, data: Any, name: str, table: str) -> None: ...
        def _columns(
            self, conn: Any, table: str, temporary: bool = False
        ) -> dict[str, str] | None: ...
        def _column_ddl(self, conn: Any, stage: str, column: str, sql_type: str) -> str: ...

        where: str

    def _dedupe(
        self, conn: Any, stage: str, keys: list[str], order_by: str | None, table: str
    ) -> str:
        """Refuse null keys; keep the latest row per key (or refuse duplicates)."""
        qs = quote_ident(stage, self.dialect)
        key_list = ", ".join(quote_ident(k, self.dialect) for k in keys)
        nulls = " OR ".join(f"{quote_ident(k, self.dialect)} IS NULL" for k in keys)
        per_key = ", ".join(f"count(*) - count({quote_ident(k, self.dialect)})" for k in keys)
        n_null, *null_in = self._exec(conn, f"SELECT count(*), {per_key} FROM {qs} WHERE {nulls}")[
            0
        ]
        if n_null:
            raise ConnectorError(
                f"merge: {n_null} row(s) have a null key; a null key can never match, so they "
                "would be inserted again on every run. Quarantine or fix them before loading.",
                table=table,
                column=next(k for k, n in zip(keys, null_in, strict=True) if n),
                connection=self.where,
            )
        # One aggregate finds whether any key repeats; the window below (a sort of the
        # whole data, spilling past DuckDB's memory limit) runs only when one does.
        dup = self._exec(
            conn,
            f"SELECT {key_list}, count(*) FROM {qs} GROUP BY {key_list} HAVING count(*) > 1 LIMIT 1",
        )
        if not dup:
            return stage
        if order_by is None:
            raise ConnectorError(
                f"merge: the key appears {dup[0][-1]} times in the data. De-duplicate first or "
                "pass dedupe_order_by=<column> to keep the latest row.",
                table=table,
                row=key_text(keys, dup[0][:-1]),
                connection=self.where,
            )
        deduped = f"{stage}_d"
        self._exec(
            conn,
            f"CREATE TEMPORARY TABLE {quote_ident(deduped, self.dialect)} AS SELECT * FROM ("
            f"SELECT *, row_number() OVER (PARTITION BY {key_list} ORDER BY "
            f"{quote_ident(order_by, self.dialect)} DESC NULLS LAST) AS _hr_rn FROM {qs}) AS r "
            "WHERE _hr_rn = 1",
        )
        return deduped

    def _replace(
        self, conn: Any, table: str, source: str, select: str, meta_sql: str, params: tuple
    ) -> None:
        """Atomic swap: build the new table beside the old, then drop and rename in the txn."""
        new = f"{table}__hr_new"
        self._exec(conn, f"DROP TABLE IF EXISTS {self.q(new)}")
        self._exec(
            conn,
            f"CREATE TABLE {self.q(new)} AS SELECT {select}{meta_sql} FROM {quote_ident(source, self.dialect)}",
            params,
        )
        self._exec(conn, f"DROP TABLE IF EXISTS {self.q(table)}")
        self._exec(conn, f"ALTER TABLE {self.q(new)} RENAME TO {quote_ident(table, self.dialect)}")

    def _evolve(self, conn: Any, table: str, stage: str, meta_cols: list[str]) -> bool:
        """Create ``table`` from the staged types (True), or add the data's new columns to it."""
        incoming = self._columns(conn, stage, temporary=True) or {}
        incoming = {c: t for c, t in incoming.items() if c != "_hr_rn"}
        if META_LOAD_ID in meta_cols:
            incoming[META_LOAD_ID] = "TEXT"
            incoming[META_LOADED_AT] = "TIMESTAMPTZ"
        existing = self._columns(conn, table)
        if existing is None:
            cols = ", ".join(self._column_ddl(conn, stage, c, t) for c, t in incoming.items())
            self._exec(conn, f"CREATE TABLE {self.q(table)} ({cols})")
            return True
        for column, sql_type in check_columns(table, existing, incoming):
            self._exec(
                conn,
                f"ALTER TABLE {self.q(table)} ADD COLUMN {quote_ident(column, self.dialect)} {sql_type}",
            )
        return False

    def _delete_partition(self, conn: Any, table: str, stage: str, part: Interval) -> int:
        col = quote_ident(part.column, self.dialect)
        (outside,) = self._exec(
            conn,
            f"SELECT count(*) FROM {quote_ident(stage, self.dialect)} "
            f"WHERE {col} IS NULL OR {col} < $1 OR {col} >= $2",
            (part.start, part.end),
        )[0]
        if outside:
            raise ConnectorError(
                f"replace_partition: {outside} row(s) are outside [{part.start}, {part.end}); "
                "they would survive the next replace of their own interval as duplicates. "
                "Filter the data to the run's interval.",
                table=table,
                column=part.column,
                connection=self.where,
            )
        return self._exec_count(
            conn,
            f"DELETE FROM {self.q(table)} WHERE {col} >= $1 AND {col} < $2",
            (part.start, part.end),
        )

    def _key_match(self, keys: list[str]) -> str:
        """``t.k = s.k AND ...`` joining the table (``t``) to the staged rows (``s``)."""
        return " AND ".join(
            f"t.{quote_ident(k, self.dialect)} = s.{quote_ident(k, self.dialect)}" for k in keys
        )

    def _delete_keys(
        self, conn: Any, table: str, source: str, keys: list[str], cursor: str | None = None
    ) -> int:
        """Delete the stored rows the staged rows replace (not newer ones, given ``cursor``)."""
        guard = ""
        if cursor is not None:  # a stored row with a greater cursor value is newer: keep it
            col = quote_ident(cursor, self.dialect)
            guard = f" AND (t.{col} > s.{col}) IS NOT TRUE"
        return self._exec_count(
            conn,
            f"DELETE FROM {self.q(table)} AS t USING {quote_ident(source, self.dialect)} AS s "
            f"WHERE {self._key_match(keys)}{guard}",
        )

    def _quarantine(
        self, conn: Any, table: str, data: Any, load_id: str, at: dt.datetime, stage: str
    ) -> int:
        qtable = f"{table}_quarantine"
        self._stage(conn, data, stage, qtable)
        columns = [c for c in data.schema.names]
        meta_cols, meta_sql, meta_params = meta_columns(True, load_id, at, 0)
        self._evolve(conn, qtable, stage, meta_cols)
        cols = ", ".join(quote_ident(c, self.dialect) for c in columns + meta_cols)
        select = ", ".join(quote_ident(c, self.dialect) for c in columns)
        self._exec(
            conn,
            f"INSERT INTO {self.q(qtable)} ({cols}) SELECT {select}{meta_sql} "
            f"FROM {quote_ident(stage, self.dialect)}",
            meta_params,
        )
        return self._exec(conn, f"SELECT count(*) FROM {quote_ident(stage, self.dialect)}")[0][0]


def meta_columns(on: bool, load_id: str, at: dt.datetime, _n: int) -> tuple[list[str], str, tuple]:
    """Metadata columns, their SELECT expressions (bound values) and parameters."""
    if not on:
        return [], "", ()
    return (
        [META_LOAD_ID, META_LOADED_AT],
        f", CAST($1 AS TEXT) AS {META_LOAD_ID}, CAST($2 AS TIMESTAMPTZ) AS {META_LOADED_AT}",
        (load_id, at),
    )


def check_names(columns: list[str], plan: Plan) -> None:
    """Every column the write names (keys, partition, order, cursor) must be in the data."""
    named = [(k, "key") for k in plan.keys]
    if plan.partition:
        named.append((plan.partition.column, "partition column"))
    if plan.dedupe_order_by:
        named.append((plan.dedupe_order_by, "dedupe_order_by column"))
    if plan.cursor_column:
        named.append((plan.cursor_column, "cursor_column"))
    for name, role in named:
        if name not in columns:
            raise ConnectorError(
                f"{role} {name!r} is not a column of the data." + did_you_mean(name, columns),
                table=plan.table,
                column=name,
                connection=plan.connection,
            )


@dataclass(frozen=True)
class Plan:
    """What every step of one write shares: its arguments, checked, plus ids and time."""

    table: str
    mode: WriteMode
    keys: list[str]
    partition: Interval | None
    load_id: str
    metadata: bool
    dedupe_order_by: str | None
    cursor_column: str | None
    loaded_at: dt.datetime
    stage: str
    connection: str  # the destination, as errors name it

    @property
    def where(self) -> str:
        """The table and destination, for messages that name them in their text."""
        return f"{self.table!r} in {self.connection}"
