"""Data quality: expectations checked in one pass, quarantine, reconciliation, SQL tests.

Example:
    >>> from headrace.quality import apply_checks, not_null, unique, matches_regex
    >>> outcome = apply_checks(table, [not_null("id"), unique("id"),
    ...                                matches_regex("email", r"@", severity="quarantine")],
    ...                        pipeline="crm", task="clean")
    >>> outcome.raise_for_failures()          # severity 'fail' stops the task
    >>> outcome.passed, outcome.quarantined   # rows that go on, rows set aside with reasons

Semantics (golden-tested in tests/quality/golden): only ``not_null`` fails on nulls,
every other row-level expectation lets nulls pass (as dbt tests); float NaN counts as
null; ``unique`` ignores nulls like SQL ``UNIQUE`` and fails every copy of a
duplicated value; timestamp bounds without a zone are UTC, zoned columns compare in
UTC, naive columns are taken to hold UTC. Table-level expectations (row count,
statistics, freshness, schema) cannot have severity ``quarantine``. Row-level ones take
Great Expectations' ``mostly`` threshold; regexes are RE2 syntax and mean the same (Unicode
``\\s \\d \\w``) in memory and in DuckDB and PostgreSQL tables; ``sql_expression`` is DuckDB
SQL in memory (:func:`apply_checks` runs DuckDB over the Arrow table). Where headrace and GX differ on purpose is listed, and checked
against GX's own answers, in ``tests/quality/test_gx_differential.py``.

``quality`` knows nothing of the engine: the engine calls :func:`apply_checks` on a
task's output, stores ``outcome.records(run_id)`` and stages the two tables.
"""

from __future__ import annotations

from headrace.quality.apply import EXPECTATION_COLUMN, REASON_COLUMN, apply_checks
from headrace.quality.check_builders import (
    accepted_values,
    between,
    freshness,
    matches_regex,
    not_null,
    relationships,
    row_count_between,
    schema_is,
    sql_expression,
    stat_between,
    unique,
)
from headrace.quality.check_results import (
    CheckOutcome,
    CheckReport,
    CheckStatus,
    ExpectationResult,
    ReportTally,
)
from headrace.quality.expectations import Expectation, Severity
from headrace.quality.quality_errors import (
    ExpectationDefinitionError,
    ExpectationsFailed,
    ReconciliationError,
)
from headrace.quality.reconcile import Reconciliation, reconcile
from headrace.quality.sql_checks import check_table
from headrace.quality.sql_tests import run_sql_tests

__all__ = [
    "EXPECTATION_COLUMN",
    "REASON_COLUMN",
    "CheckOutcome",
    "CheckReport",
    "CheckStatus",
    "Expectation",
    "ExpectationDefinitionError",
    "ExpectationResult",
    "ExpectationsFailed",
    "Reconciliation",
    "ReconciliationError",
    "ReportTally",
    "Severity",
    "accepted_values",
    "apply_checks",
    "between",
    "check_table",
    "freshness",
    "matches_regex",
    "not_null",
    "reconcile",
    "relationships",
    "row_count_between",
    "run_sql_tests",
    "schema_is",
    "sql_expression",
    "stat_between",
    "unique",
]
