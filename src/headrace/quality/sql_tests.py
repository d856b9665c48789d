"""dbt-style SQL tests: each ``.sql`` file is a query that returns the failing rows.

Zero rows pass. A file may start with comment lines that configure it::

    -- severity: warn
    -- reason: every order needs a customer
    SELECT o.* FROM orders o LEFT JOIN customers c USING (customer_id)
    WHERE c.customer_id IS NULL
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from headrace.quality.check_results import SAMPLE_ROWS, CheckReport, CheckStatus, ExpectationResult
from headrace.quality.dialects import Database
from headrace.quality.expectations import Severity
from headrace.quality.quality_errors import ExpectationDefinitionError
from headrace.quality.values import json_safe

_SETTING = re.compile(r"^\s*--\s*(severity|reason|name)\s*:\s*(.+?)\s*$", re.IGNORECASE)


def _files(paths: str | Path | Sequence[str | Path]) -> list[Path]:
    items = [paths] if isinstance(paths, str | Path) else list(paths)
    files: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = sorted(path.rglob("*.sql"))
            if not found:
                raise ExpectationDefinitionError(f"run_sql_tests: no .sql files under {path}.")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise ExpectationDefinitionError(f"run_sql_tests: {path} does not exist.")
    return files


def _parse(path: Path) -> tuple[str, dict[str, str], int]:
    """The query (without trailing ``;``), its settings, and the line the query starts on."""
    text = path.read_text(encoding="utf-8")
    settings: dict[str, str] = {}
    first_line = 1
    for number, line in enumerate(text.splitlines(), start=1):
        match = _SETTING.match(line)
        if match:
            settings[match[1].lower()] = match[2]
        elif line.strip() and not line.strip().startswith("--"):
            first_line = number
            break
    query = text.strip().rstrip(";").strip()
    if not query or all(not ln.strip() or ln.strip().startswith("--") for ln in query.splitlines()):
        raise ExpectationDefinitionError(
            f"{path}:1: the SQL test is empty; write a query returning failing rows."
        )
    if ";" in _strip_comments(query):
        raise ExpectationDefinitionError(
            "a SQL test is one query; split several statements into several files.", path=str(path)
        )
    return query, settings, first_line


def _strip_comments(sql: str) -> str:
    without_lines = re.sub(r"--[^\n]*", "", sql)
    without_strings = re.sub(r"'(?:[^']|'')*'", "''", without_lines)
    return without_strings


def run_sql_tests(
    target: Any,
    paths: str | Path | Sequence[str | Path],
    *,
    pipeline: str | None = None,
    task: str | None = "sql_tests",
) -> CheckReport:
    """Run SQL test files against DuckDB or PostgreSQL.

    Args:
        target: ``duckdb:///path``, ``postgresql://…`` or an open duckdb/psycopg connection.
        paths: a folder (every ``*.sql`` under it, sorted), a file, or a list of either.
        pipeline: named in messages.
        task: recorded as the task of the results.

    Returns:
        A :class:`CheckReport` with one result per file (name: the file's stem or
        its ``-- name:``; total = failed = rows returned; up to 5 as the sample).

    Example:
        >>> run_sql_tests("duckdb:///warehouse.duckdb", "tests/sql").raise_for_failures()
    """
    files = _files(paths)
    db = Database(target)
    results: list[ExpectationResult] = []
    seen: dict[str, Path] = {}
    try:
        for path in files:
            query, settings, first_line = _parse(path)
            name = settings.get("name", path.stem)
            if name in seen:
                raise ExpectationDefinitionError(
                    f"SQL test name {name!r} is also used by {seen[name]}; add '-- name: …'.",
                    path=str(path),
                )
            seen[name] = path
            try:
                severity = Severity(settings.get("severity", "fail").lower())
            except ValueError:
                raise ExpectationDefinitionError(
                    f"unknown severity {settings['severity']!r}; use fail, warn or quarantine.",
                    path=str(path),
                ) from None
            body = db.dialect.raw(query)
            try:
                _, count_rows = db.query(f"SELECT COUNT(*) FROM ({body}) AS _hr_q", [])
                failed = int(count_rows[0][0])
                names, rows = (
                    db.query(f"SELECT * FROM ({body}) AS _hr_q LIMIT {SAMPLE_ROWS}", [])
                    if failed
                    else ([], [])
                )
            except Exception as exc:  # the driver's own error types differ; name the file
                if db.dialect.name == "postgresql" and not getattr(db.conn, "autocommit", True):
                    db.conn.rollback()
                raise ExpectationDefinitionError(
                    f"{path}:{first_line}: SQL test {name!r} could not run on {db.label}: "
                    f"{' '.join(str(exc).split())[:500]}"
                ) from exc
            results.append(
                ExpectationResult(
                    name=name,
                    kind="sql_test",
                    severity=severity,
                    status=CheckStatus.FAILED if failed else CheckStatus.PASSED,
                    total=failed,
                    failed=failed,
                    column=None,
                    reason=settings.get("reason", f"{path.name} returned failing rows"),
                    sample=[json_safe(dict(zip(names, r, strict=True))) for r in rows],
                )
            )
    finally:
        db.close()
    return CheckReport(results=results, pipeline=pipeline, task=task)
