"""Run expectations against a table inside DuckDB or PostgreSQL (post-load checks).

All expectations compile to one ``SELECT`` over the table (counts of failing rows
and the aggregates of table-level expectations), with quoted identifiers and bound
values; then one small ``LIMIT 5`` query per failing expectation fetches its
sample. The rows stay where they are: a ``quarantine`` expectation is counted and
recorded here like ``warn``, since moving loaded rows is the load's job.

The null, NaN and time-zone rules are those of :mod:`headrace.quality.expectations`
(the golden tests run every case in Polars, DuckDB and PostgreSQL). Regexes keep
their Rust ``regex`` meaning in both databases: :mod:`headrace.quality.patterns` spells
the Unicode ``\\s``, ``\\d``, ``\\w`` out for DuckDB's RE2 and for PostgreSQL's ARE
(which has no ``\\p{L}``). ``sql_expression`` text is the destination's SQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from headrace.quality.apply import check_names
from headrace.quality.check_results import (
    SAMPLE_ROWS,
    CheckReport,
    ExpectationResult,
    row_result,
    table_result,
)
from headrace.quality.dialects import Database, Dialect
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
    frame_of,
)
from headrace.quality.quality_errors import ExpectationDefinitionError
from headrace.quality.values import family, json_safe

_BASE = "_hr_t"


class _Compiler:
    """Builds the one query: predicates and aggregates, parameters in text order."""

    def __init__(self, dialect: Dialect, schema: pa.Schema) -> None:
        self.d = dialect
        self.schema = schema
        self.windows: list[str] = []

    def col(self, name: str) -> str:
        return f"{_BASE}.{self.d.quote(name)}"

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
            alias = f"_hr_u{len(self.windows)}"
            partition = ", ".join(self.d.quote(c) for c in check.columns)
            self.windows.append(
                f"COUNT(*) OVER (PARTITION BY {partition}) AS {self.d.quote(alias)}"
            )
            present = " AND ".join(f"NOT {self.missing(check, c)}" for c in check.columns)
            return f"({_BASE}.{self.d.quote(alias)} > 1 AND {present})", []
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
            check.column_type(self.schema)
            column = self.col(check.column_name)
            if isinstance(check.to_table, str):
                match = (
                    f"NOT EXISTS (SELECT 1 FROM {self.d.table(check.to_table)} AS _hr_r "
                    f"WHERE _hr_r.{self.d.quote(check.to_column)} = {column})"
                )
                return f"({column} IS NOT NULL AND {match})", []
            keys = (
                frame_of(check.to_table).get_column(check.to_column).drop_nulls().unique().to_list()
            )
            return f"({column} IS NOT NULL AND {self.d.not_in_list(column)})", [keys]
        if isinstance(check, SqlExpression):
            return f"NOT COALESCE(({self.d.raw(check.expression)}), TRUE)", []
        raise ExpectationDefinitionError(
            f"{check.where()}: {check.kind} cannot run in SQL.", **check.about()
        )

    def judged(self, check: RowExpectation) -> str | None:
        """The predicate of the rows ``mostly`` counts (None: every row)."""
        if isinstance(check, NotNull | SqlExpression):
            return None
        columns = check.columns if isinstance(check, Unique) else (check.column_name,)
        return " AND ".join(f"NOT {self.missing(check, c)}" for c in columns)

    def aggregates(self, check: TableExpectation) -> list[str]:
        if isinstance(check, StatBetween):
            arrow_type = check.column_type(self.schema)
            if check.stat not in ("min", "max") and family(arrow_type) not in (
                "integer",
                "float",
                "decimal",
            ):
                raise ExpectationDefinitionError(
                    f"{check.where()}: {check.stat} needs a numeric column, {check.column!r} is {arrow_type}.",
                    **check.about(),
                )
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
            check.aggregates(self.schema)  # validates the column type
            return [f"MAX({self.col(check.column_name)})"]
        return []


def check_table(
    target: Any, table: str, checks: Sequence[Expectation], *, pipeline: str | None = None
) -> CheckReport:
    """Run expectations against a table in DuckDB or PostgreSQL.

    Args:
        target: ``duckdb:///path``, ``postgresql://…`` or an open duckdb/psycopg connection.
        table: table name, optionally ``schema.table``.
        checks: the same expectations as for apply_checks.
        pipeline: named in messages.

    Returns:
        A :class:`CheckReport` (``task`` is the table name); call ``raise_for_failures()``.

    Example:
        >>> report = check_table("duckdb:///warehouse.duckdb", "customers", [unique("customer_id")])
    """
    where: dict[str, str | None] = {"pipeline": pipeline or None, "table": table}
    check_names(checks, where)
    db = Database(target)
    try:
        db.ensure_table(table)
        schema = db.schema(table)
        compiler = _Compiler(db.dialect, schema)
        select: list[str] = ["COUNT(*)"]
        params: list[Any] = []
        predicates: dict[int, tuple[str, list[Any]]] = {}
        agg_slots: dict[int, tuple[int, int]] = {}
        row_slots: dict[int, int] = {}
        judged_slots: dict[int, int] = {}
        try:
            for i, check in enumerate(checks):
                if isinstance(check, RowExpectation):
                    predicate, values = compiler.failing(check)
                    predicates[i] = (predicate, values)
                    row_slots[i] = len(select)
                    select.append(f"COALESCE(SUM(CASE WHEN {predicate} THEN 1 ELSE 0 END), 0)")
                    params.extend(values)
                    judged = compiler.judged(check) if check.mostly is not None else None
                    if judged is not None:
                        judged_slots[i] = len(select)
                        select.append(f"COALESCE(SUM(CASE WHEN {judged} THEN 1 ELSE 0 END), 0)")
                elif isinstance(check, TableExpectation):
                    aggs = compiler.aggregates(check)
                    agg_slots[i] = (len(select), len(aggs))
                    select.extend(aggs)
        except ExpectationDefinitionError as exc:
            raise exc.located(**where) from None  # the same error, located: nothing is lost
        source = _source(db.dialect, table, compiler.windows)
        _, rows = db.query(f"SELECT {', '.join(select)} FROM {source}", params)
        values_row = rows[0]
        n_rows = int(values_row[0])
        columns = ", ".join(f"{_BASE}.{db.dialect.quote(n)}" for n in schema.names)
        results: list[ExpectationResult] = []
        for i, check in enumerate(checks):
            if isinstance(check, RowExpectation):
                failed = int(values_row[row_slots[i]])
                judged_rows = int(values_row[judged_slots[i]]) if i in judged_slots else n_rows
                sample: list[dict[str, Any]] = []
                if failed:
                    predicate, values = predicates[i]
                    names, sample_rows = db.query(
                        f"SELECT {columns} FROM {source} WHERE {predicate} LIMIT {SAMPLE_ROWS}",
                        values,
                    )
                    sample = [json_safe(dict(zip(names, r, strict=True))) for r in sample_rows]
                results.append(row_result(check, n_rows, failed, judged_rows, sample))
            else:
                assert isinstance(check, TableExpectation)
                start, width = agg_slots[i]
                results.append(
                    table_result(
                        check, list(values_row[start : start + width]), n_rows, schema, where
                    )
                )
        return CheckReport(results=results, pipeline=pipeline, task=table)
    finally:
        db.close()


def _source(dialect: Dialect, table: str, windows: list[str]) -> str:
    """The table under the alias ``_hr_t``, with window counts for unique checks."""
    if not windows:
        return f"{dialect.table(table)} AS {_BASE}"
    return f"(SELECT *, {', '.join(windows)} FROM {dialect.table(table)}) AS {_BASE}"
