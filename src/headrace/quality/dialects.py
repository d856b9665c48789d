"""Connections and SQL dialects for checks that run inside a database (DuckDB, PostgreSQL).

Identifiers are always quoted; values are always bound parameters. psycopg reads
``%`` as the start of a placeholder, so SQL text written by users (expressions,
test files) is escaped before it is combined with parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from headrace.config import mask_url
from headrace.errors import did_you_mean
from headrace.extras import require
from headrace.quality.patterns import to_postgres, to_re2
from headrace.quality.quality_errors import ExpectationDefinitionError


@dataclass(frozen=True)
class Dialect:
    """How DuckDB and PostgreSQL spell the few things that differ."""

    name: str
    placeholder: str
    text_type: str

    def quote(self, identifier: str) -> str:
        return '"' + identifier.replace('"', '""') + '"'

    def table(self, name: str) -> str:
        """A possibly schema-qualified table name, each part quoted."""
        return ".".join(self.quote(part) for part in name.split("."))

    def raw(self, sql: str) -> str:
        """User SQL text made safe to combine with parameters."""
        return sql.replace("%", "%%") if self.placeholder == "%s" else sql

    def pattern(self, pattern: str, where: str) -> str:
        """A declared regex (RE2 syntax, Unicode classes) as this database must be given it: see :mod:`.patterns`."""
        return to_re2(pattern, where) if self.name == "duckdb" else to_postgres(pattern, where)

    def regex_fails(self, column_sql: str) -> str:
        if self.name == "duckdb":
            return f"NOT regexp_matches(CAST({column_sql} AS VARCHAR), {self.placeholder})"
        return f"NOT (CAST({column_sql} AS TEXT) ~ {self.placeholder})"

    def is_nan(self, column_sql: str) -> str:
        if self.name == "duckdb":
            return f"isnan({column_sql})"
        return f"({column_sql} = 'NaN'::float8)"

    def not_in_list(self, column_sql: str) -> str:
        """True where the value is not in the list bound as one parameter."""
        if self.name == "duckdb":
            return f"NOT list_contains({self.placeholder}, {column_sql})"
        return f"NOT ({column_sql} = ANY({self.placeholder}))"

    def median(self, column_sql: str) -> str:
        if self.name == "duckdb":
            return f"median({column_sql})"
        return f"percentile_cont(0.5) WITHIN GROUP (ORDER BY {column_sql})"


DUCKDB = Dialect("duckdb", "?", "VARCHAR")
POSTGRES = Dialect("postgresql", "%s", "TEXT")

_PG_TYPES: dict[str, pa.DataType] = {
    "int2": pa.int16(),
    "int4": pa.int32(),
    "int8": pa.int64(),
    "float4": pa.float32(),
    "float8": pa.float64(),
    "numeric": pa.decimal128(38, 10),
    "text": pa.string(),
    "varchar": pa.string(),
    "bpchar": pa.string(),
    "name": pa.string(),
    "bool": pa.bool_(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us"),
    "timestamptz": pa.timestamp("us", tz="UTC"),
    "bytea": pa.binary(),
}


class Database:
    """One open connection to DuckDB or PostgreSQL, with the dialect to use on it.

    Args:
        target: a URL (``duckdb:///file.duckdb``, ``postgresql://…``) or an open
            ``duckdb`` / ``psycopg`` connection (left open by :meth:`close`).
    """

    def __init__(self, target: Any) -> None:
        self.owned = False
        self.label = "connection"
        if isinstance(target, str):
            self.label = mask_url(target)
            self.conn = self._open(target)
            self.owned = True
        else:
            self.conn = target
        module = type(self.conn).__module__
        if module.startswith("duckdb") or module == "_duckdb":
            self.dialect = DUCKDB
        elif module.startswith("psycopg"):
            self.dialect = POSTGRES
        else:
            raise ExpectationDefinitionError(
                f"checks run on DuckDB or PostgreSQL: pass a URL or a duckdb/psycopg connection, "
                f"got {type(self.conn).__name__}."
            )

    @staticmethod
    def _open(url: str) -> Any:
        scheme = url.split("://", 1)[0].lower() if "://" in url else ""
        if scheme == "duckdb":
            import duckdb

            path = url.split("://", 1)[1]
            path = path[1:] if path.startswith("/") else path  # duckdb:///rel or duckdb:////abs
            return duckdb.connect(path or ":memory:")
        if scheme.split("+")[0] in ("postgresql", "postgres"):
            require("postgres", "psycopg", "Checks on PostgreSQL")
            import psycopg

            return psycopg.connect("postgresql://" + url.split("://", 1)[1], autocommit=True)
        raise ExpectationDefinitionError(
            f"cannot check tables at {mask_url(url)}: use a duckdb:/// or postgresql:// URL."
            + did_you_mean(scheme, ["duckdb", "postgresql"])
        )

    def query(self, sql: str, params: Sequence[Any] = ()) -> tuple[list[str], list[tuple]]:
        """Run one query with bound parameters; column names and all rows."""
        if self.dialect is DUCKDB:
            cursor = self.conn.execute(sql, list(params))
            rows = cursor.fetchall()
            return [d[0] for d in cursor.description or []], rows
        with self.conn.cursor() as cursor:
            cursor.execute(sql, list(params))
            rows = cursor.fetchall() if cursor.description else []
            return [d.name for d in cursor.description or []], rows

    def tables(self) -> list[str]:
        """Known table names (``table`` and ``schema.table``), for suggestions."""
        _, rows = self.query(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_schema NOT IN ('information_schema', 'pg_catalog')"
        )
        return [n for schema, table in rows for n in (table, f"{schema}.{table}")]

    def ensure_table(self, name: str) -> None:
        known = self.tables()
        if name not in known:
            raise ExpectationDefinitionError(
                f"check_table: no such table in {self.label}." + did_you_mean(name, known),
                table=name,
            )

    def schema(self, table: str) -> pa.Schema:
        """The Arrow schema of a table (PostgreSQL types mapped to their Arrow kin)."""
        sql = f"SELECT * FROM {self.dialect.table(table)} LIMIT 0"
        if self.dialect is DUCKDB:
            return self.conn.sql(sql).to_arrow_table().schema
        fields = []
        with self.conn.cursor() as cursor:
            cursor.execute(sql)
            for d in cursor.description or []:
                info = self.conn.adapters.types.get(d.type_code)
                fields.append(pa.field(d.name, _PG_TYPES.get(info.name if info else "", pa.null())))
        return pa.schema(fields)

    def close(self) -> None:
        if self.owned:
            self.conn.close()
