"""Run expectations against a table inside DuckDB or PostgreSQL (post-load checks).

All expectations compile to one ``SELECT`` over the table (counts of failing rows
and the aggregates of table-level expectations), with quoted identifiers and bound
values; then one small ``LIMIT 5`` query per failing expectation fetches its
sample. The rows stay where they are: a ``quarantine`` expectation is counted and
recorded here like ``warn``, since moving loaded rows is the load's job.

The null, NaN and time-zone rules are those of :mod:`headrace.quality.expectations`
(the golden tests run every case in memory, in DuckDB and in PostgreSQL). Regexes keep
their Unicode classes in both databases: :mod:`headrace.quality.patterns` spells
the Unicode ``\\s``, ``\\d``, ``\\w`` out for DuckDB's RE2 and for PostgreSQL's ARE
(which has no ``\\p{L}``). ``sql_expression`` text is the destination's SQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from headrace.quality.apply import check_names
from headrace.quality.check_compiler import BASE, CheckCompiler
from headrace.quality.check_results import (
    SAMPLE_ROWS,
    CheckReport,
    ExpectationResult,
    row_result,
    table_result,
)
from headrace.quality.dialects import Database
from headrace.quality.expectations import Expectation, RowExpectation, TableExpectation
from headrace.quality.quality_errors import ExpectationDefinitionError
from headrace.quality.values import json_safe


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
        compiler = CheckCompiler(db.dialect, schema)
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
        source = compiler.source(db.dialect.table(table))
        _, rows = db.query(f"SELECT {', '.join(select)} FROM {source}", params)
        values_row = rows[0]
        n_rows = int(values_row[0])
        columns = ", ".join(f"{BASE}.{db.dialect.quote(n)}" for n in schema.names)
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
