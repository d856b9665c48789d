"""Expectations compiled to SQL: one predicate per row-level check, aggregates for the rest.

Both engines of :mod:`headrace.quality` run what this module writes: ``apply_checks``
on DuckDB over the in-memory Arrow table, ``check_table`` on DuckDB or PostgreSQL over
a stored table. Identifiers are quoted, values bound (parameters in text order). The
null, NaN and time-zone rules are those of :mod:`headrace.quality.expectations`; the
golden tests in tests/quality run every case in memory, in DuckDB and in PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from headrace.quality.dialects import Dialect
from headrace.quality.expectations import (
    AcceptedValues,
    Between,
    Expectation,
    Freshness,
    MatchesRegex,
    NotNull,
    Relationships,
    RowExpectation,
    SqlExpression,
    StatBetween,
    TableExpectation,
    Unique,
    _coerce_values,
)
from headrace.quality.quality_errors import ExpectationDefinitionError
from headrace.quality.values import family

#: the alias of the checked table in every query
BASE = "_hr_t"
#: the column of a registered key table (in-memory relationships)
KEY_COLUMN = "_hr_key"


class CheckCompiler:
    """Builds the predicates and aggregates of one table's expectations.

    Args:
        dialect: DuckDB or PostgreSQL.
        schema: the checked table's Arrow schema (column types decide NaN and casts).
        key_tables: expectation name -> a table of keys (one column ``_hr_key``) the
            database can read, for ``relationships`` against in-memory rows; without
            one the keys are bound as a list.
        duplicates_in: the checked table's SQL name, to find ``unique``'s duplicates
            with a grouped subquery (a hash aggregate and a semi-join: 2M rows in DuckDB
            ~40% faster than a window) instead of a ``COUNT(*) OVER`` window.
    """

    def __init__(
        self,
        dialect: Dialect,
        schema: pa.Schema,
        key_tables: Mapping[str, str] | None = None,
        duplicates_in: str | None = None,
    ) -> None:
        self.d = dialect
        self.schema = schema
        self.key_tables = dict(key_tables or {})
        self.duplicates_in = duplicates_in
        self.windows: list[str] = []

    def col(self, name: str) -> str:
        return f"{BASE}.{self.d.quote(name)}"

    def missing(self, check: Expectation, name: str) -> str:
        """Null, or NaN for floats (NaN counts as null)."""
        arrow_type = check.column_type(self.schema, name)
        sql = f"{self.col(name)} IS NULL"
        if family(arrow_type) == "float":
            sql = f"({sql} OR {self.d.is_nan(self.col(name))})"
        return sql

    def ordered(self, column_sql: str, arrow_type: pa.DataType) -> str:
        """Text compares by code points everywhere, whatever the database's collation."""
        if family(arrow_type) == "string" and self.d.name == "postgresql":
            return f'{column_sql} COLLATE "C"'
        return column_sql

    def failing(self, check: RowExpectation) -> tuple[str, list[Any]]:
        """The predicate true for a failing row, and its parameters."""
        p = self.d.placeholder
        if isinstance(check, NotNull):
            return self.missing(check, check.column_name), []
        if isinstance(check, Unique):
            for name in check.columns:
                check.column_type(self.schema, name)
            present = " AND ".join(f"NOT {self.missing(check, c)}" for c in check.columns)
            if self.duplicates_in is not None:
                keys = ", ".join(self.d.quote(c) for c in check.columns)
                row = ", ".join(self.col(c) for c in check.columns)
                duplicated = (
                    f"SELECT {keys} FROM {self.duplicates_in} GROUP BY ALL HAVING COUNT(*) > 1"
                )
                row = row if len(check.columns) == 1 else f"({row})"
                return f"({present} AND {row} IN ({duplicated}))", []
            alias = f"_hr_u{len(self.windows)}"
            partition = ", ".join(self.d.quote(c) for c in check.columns)
            self.windows.append(
                f"COUNT(*) OVER (PARTITION BY {partition}) AS {self.d.quote(alias)}"
            )
            return f"({BASE}.{self.d.quote(alias)} > 1 AND {present})", []
        if isinstance(check, MatchesRegex):
            present = f"NOT {self.missing(check, check.column_name)}"
            pattern = self.d.pattern(check.pattern, check.where())
            return f"({present} AND {self.d.regex_fails(self.col(check.column_name))})", [pattern]
        if isinstance(check, Between):
            arrow_type = check.column_type(self.schema)
            lo, hi = check.bounds(arrow_type)
            value = self.ordered(self.col(check.column_name), arrow_type)
            parts, params = [], []
            if lo is not None:
                parts.append(f"{value} {'<=' if check.strict_min else '<'} {p}")
                params.append(lo)
            if hi is not None:
                parts.append(f"{value} {'>=' if check.strict_max else '>'} {p}")
                params.append(hi)
            present = f"NOT {self.missing(check, check.column_name)}"
            return f"({present} AND ({' OR '.join(parts)}))", params
        if isinstance(check, AcceptedValues):
            values = _coerce_values(check, check.values, check.column_type(self.schema))
            marks = ", ".join(p for _ in values)
            present = f"NOT {self.missing(check, check.column_name)}"
            return f"({present} AND {self.col(check.column_name)} NOT IN ({marks}))", values
        if isinstance(check, Relationships):
            return self._relationship(check)
        if isinstance(check, SqlExpression):
            # A null result passes, as in dbt's expression_is_true (WHERE NOT (expr)).
            return f"NOT COALESCE(({self.d.raw(check.expression)}), TRUE)", []
        raise ExpectationDefinitionError(
            f"{check.where()}: {check.kind} cannot run in SQL.", **check.about()
        )

    def _relationship(self, check: Relationships) -> tuple[str, list[Any]]:
        check.column_type(self.schema)
        column = self.col(check.column_name)
        if isinstance(check.to_table, str) or check.name in self.key_tables:
            if isinstance(check.to_table, str):
                table, key = self.d.table(check.to_table), self.d.quote(check.to_column)
            else:
                check.keys()  # refuses a missing key column, naming it
                table, key = self.d.quote(self.key_tables[check.name]), self.d.quote(KEY_COLUMN)
            match = f"NOT EXISTS (SELECT 1 FROM {table} AS _hr_r WHERE _hr_r.{key} = {column})"
            return f"({column} IS NOT NULL AND {match})", []
        keys = check.keys().to_pylist()
        return f"({column} IS NOT NULL AND {self.d.not_in_list(column)})", [keys]

    def judged(self, check: RowExpectation) -> str | None:
        """The predicate of the rows ``mostly`` counts (None: every row)."""
        if isinstance(check, NotNull | SqlExpression):
            return None
        columns = check.columns if isinstance(check, Unique) else (check.column_name,)
        return " AND ".join(f"NOT {self.missing(check, c)}" for c in columns)

    def aggregates(self, check: TableExpectation) -> list[str]:
        """The aggregates a table-level expectation is judged on (none for row count, schema)."""
        check.validate(self.schema)
        if isinstance(check, StatBetween):
            arrow_type = check.column_type(self.schema)
            value = self.ordered(self.col(check.column_name), arrow_type)
            if family(arrow_type) == "float":
                value = f"CASE WHEN {self.d.is_nan(value)} THEN NULL ELSE {value} END"
            if check.stat == "median":
                return [self.d.median(value)]
            func = {
                "min": "MIN",
                "max": "MAX",
                "mean": "AVG",
                "sum": "SUM",
                "stddev": "STDDEV_SAMP",
            }[check.stat]
            return [f"{func}({value})"]
        if isinstance(check, Freshness):
            return [f"MAX({self.col(check.column_name)})"]
        return []

    def source(self, table_sql: str) -> str:
        """The table under the alias ``_hr_t``, with the window counts of unique checks."""
        if not self.windows:
            return f"{table_sql} AS {BASE}"
        return f"(SELECT *, {', '.join(self.windows)} FROM {table_sql}) AS {BASE}"
