"""The functions users call to declare expectations.

Example:
    >>> checks = [not_null("customer_id"), unique("customer_id"),
    ...           matches_regex("email", r"^[^\\s@]+@[^\\s@]+\\.[^\\s@]+$", severity="quarantine"),
    ...           between("created_at", min="2020-01-01", severity="warn")]

Every function takes ``severity`` (``fail`` | ``warn`` | ``quarantine``), an optional
``reason`` (shown with failing rows) and an optional ``name`` (unique per table;
defaults to ``kind(column)``). Row-level checks also take ``mostly`` (Great
Expectations' option): the check passes when at least that fraction of the rows it
judges pass, e.g. ``matches_regex("email", EMAIL, mostly=0.95)``; rows with a null
value are not judged (except by ``not_null``), and failing rows are still counted,
sampled and, with ``severity="quarantine"``, quarantined. Declaration errors (a bad
regex, a reversed range) are raised here, when the pipeline file is loaded, not when
data arrives.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

import duckdb
import pyarrow as pa

from headrace.errors import one_of
from headrace.quality.expectations import (
    STATS,
    AcceptedValues,
    Between,
    Freshness,
    MatchesRegex,
    NotNull,
    Relationships,
    RowCountBetween,
    SchemaIs,
    Severity,
    SqlExpression,
    StatBetween,
    Unique,
)
from headrace.quality.memory_engine import memory_cursor
from headrace.quality.patterns import to_re2
from headrace.quality.quality_errors import ExpectationDefinitionError
from headrace.quality.values import check_range, frame_to_arrow


def _severity(severity: str | Severity, name: str, row_level: bool) -> Severity:
    try:
        level = Severity(severity)
    except ValueError:
        known = [s.value for s in Severity]
        raise ExpectationDefinitionError(
            f"expectation {name!r}: unknown severity {severity!r}; {one_of(str(severity), known)}"
        ) from None
    if level is Severity.QUARANTINE and not row_level:
        raise ExpectationDefinitionError(
            f"expectation {name!r} judges the whole table, so it has no failing rows to "
            f"quarantine; use severity 'fail' or 'warn'."
        )
    return level


def _mostly(mostly: float | None, name: str, column: str | None) -> float | None:
    if mostly is None:
        return None
    if isinstance(mostly, bool) or not isinstance(mostly, int | float) or not 0 <= mostly <= 1:
        raise ExpectationDefinitionError(
            f"expectation {name!r}: mostly must be a fraction between 0 and 1 (0.95 for 95%), "
            f"got {mostly!r}.",
            expectation=name,
            column=column,
        )
    return float(mostly)


def _declared_range(name: str, column: str | None, lo: Any, hi: Any, strict: bool = False) -> None:
    """Refuse a reversed range now when the bounds compare alone (text waits for the column type)."""
    if not isinstance(lo, str) and not isinstance(hi, str):
        check_range(name, column, lo, hi, strict)


def _column(column: Any, what: str) -> str:
    if not isinstance(column, str) or not column:
        raise ExpectationDefinitionError(
            f"{what}: column must be a non-empty string, got {column!r}."
        )
    return column


def not_null(
    column: str,
    *,
    severity: str = "fail",
    reason: str | None = None,
    name: str | None = None,
    mostly: float | None = None,
) -> NotNull:
    """Every value is present (null and float NaN fail).

    Args:
        column: the column.
        severity: fail | warn | quarantine.
        reason: shown with failing rows instead of the generated one.
        name: unique name on the table; defaults to ``not_null(column)``.
    """
    name = name or f"not_null({_column(column, 'not_null')})"
    return NotNull(
        name=name,
        column=column,
        severity=_severity(severity, name, True),
        reason=reason,
        mostly=_mostly(mostly, name, column),
    )


def unique(
    *columns: str | list[str] | tuple[str, ...],
    severity: str = "fail",
    reason: str | None = None,
    name: str | None = None,
    mostly: float | None = None,
) -> Unique:
    """Values (or combinations of several columns) appear once; nulls are ignored.

    Every row of a duplicated value fails (both copies), so quarantine keeps neither.

    Args:
        columns: one column, several, or one list of columns.
    """
    flat: list[str] = []
    for c in columns:
        flat.extend([c] if isinstance(c, str) else list(c))
    if not flat:
        raise ExpectationDefinitionError("unique: name at least one column.")
    for c in flat:
        _column(c, "unique")
    name = name or f"unique({', '.join(flat)})"
    return Unique(
        name=name,
        column=", ".join(flat),
        columns=tuple(flat),
        severity=_severity(severity, name, True),
        reason=reason,
        mostly=_mostly(mostly, name, ", ".join(flat)),
    )


def matches_regex(
    column: str,
    pattern: str,
    *,
    severity: str = "fail",
    reason: str | None = None,
    name: str | None = None,
    mostly: float | None = None,
) -> MatchesRegex:
    """Values match ``pattern`` (searched anywhere; anchor with ``^``/``$``); nulls pass.

    The pattern is RE2 syntax (DuckDB's regex engine: no look-around or backreferences)
    with Unicode ``\\s``, ``\\d``, ``\\w`` as in Python (:mod:`headrace.quality.patterns`).
    Non-string columns are cast to text first.
    """
    name = name or f"matches_regex({_column(column, 'matches_regex')})"
    translated = to_re2(pattern, f"expectation {name!r}")
    try:
        with memory_cursor() as con:
            con.execute("SELECT regexp_matches('', ?)", [translated]).fetchall()
    except duckdb.Error as exc:
        raise ExpectationDefinitionError(
            f"expectation {name!r}: regex {pattern!r} is not valid (RE2 syntax: no "
            f"look-around or backreferences): {' '.join(str(exc).split())[:300]}",
            expectation=name,
            column=column,
        ) from exc
    return MatchesRegex(
        name=name,
        column=column,
        pattern=pattern,
        severity=_severity(severity, name, True),
        reason=reason,
        mostly=_mostly(mostly, name, column),
    )


def between(
    column: str,
    min: Any = None,
    max: Any = None,
    *,
    strict_min: bool = False,
    strict_max: bool = False,
    severity: str = "fail",
    reason: str | None = None,
    name: str | None = None,
    mostly: float | None = None,
) -> Between:
    """Values lie between ``min`` and ``max`` (inclusive unless strict); nulls and NaN pass.

    Bounds may be numbers, dates, datetimes or ISO strings; a bound without a time
    zone is read as UTC.

    Args:
        min: lower bound, or None for none.
        max: upper bound, or None for none.
        strict_min: exclude ``min`` itself.
        strict_max: exclude ``max`` itself.
    """
    name = name or f"between({_column(column, 'between')})"
    if min is None and max is None:
        raise ExpectationDefinitionError(f"expectation {name!r}: give min, max or both.")
    _declared_range(name, column, min, max, strict_min or strict_max)
    return Between(
        name=name,
        column=column,
        min=min,
        max=max,
        strict_min=strict_min,
        strict_max=strict_max,
        severity=_severity(severity, name, True),
        reason=reason,
        mostly=_mostly(mostly, name, column),
    )


def accepted_values(
    column: str,
    values: list[Any] | tuple[Any, ...] | set[Any],
    *,
    severity: str = "fail",
    reason: str | None = None,
    name: str | None = None,
    mostly: float | None = None,
) -> AcceptedValues:
    """Values are among ``values``; nulls pass (add not_null to forbid them)."""
    name = name or f"accepted_values({_column(column, 'accepted_values')})"
    if isinstance(values, str) or not values:
        raise ExpectationDefinitionError(
            f"expectation {name!r}: values must be a non-empty list, got {values!r}."
        )
    ordered = tuple(sorted(values, key=repr)) if isinstance(values, set) else tuple(values)
    return AcceptedValues(
        name=name,
        column=column,
        values=ordered,
        severity=_severity(severity, name, True),
        reason=reason,
        mostly=_mostly(mostly, name, column),
    )


def _reference(to_table: Any, name: str) -> str | pa.Table:
    """The referenced table as a name or a pyarrow Table (Polars and pandas converted here)."""
    if isinstance(to_table, str | pa.Table):
        return to_table
    converted = frame_to_arrow(to_table)
    if converted is not None:
        return converted
    raise ExpectationDefinitionError(
        f"expectation {name!r}: to_table must be a table name, a pyarrow Table or a "
        f"Polars or pandas DataFrame, got {type(to_table).__name__}."
    )


def relationships(
    column: str,
    to_table: Any,
    to_column: str | None = None,
    *,
    severity: str = "fail",
    reason: str | None = None,
    name: str | None = None,
    mostly: float | None = None,
) -> Relationships:
    """Every non-null value is present in ``to_table.to_column`` (a foreign key).

    Args:
        to_table: a table name in the same database (check_table), or the referenced
            rows: a pyarrow Table, Polars or pandas DataFrame (apply_checks and check_table).
        to_column: defaults to ``column``.
    """
    target = to_column or column
    label = to_table if isinstance(to_table, str) else "table"
    name = name or f"relationships({_column(column, 'relationships')} -> {label}.{target})"
    return Relationships(
        name=name,
        column=column,
        to_table=_reference(to_table, name),
        to_column=target,
        severity=_severity(severity, name, True),
        reason=reason,
        mostly=_mostly(mostly, name, column),
    )


def sql_expression(
    expression: str,
    *,
    severity: str = "fail",
    reason: str | None = None,
    name: str | None = None,
    mostly: float | None = None,
) -> SqlExpression:
    """A SQL boolean expression every row satisfies, e.g. ``"amount >= 0 OR refunded"``.

    A row fails where the expression is false; null passes (dbt's expression_is_true).
    The text is DuckDB SQL in apply_checks and the destination's SQL in check_table, so
    keep to portable SQL. It is parsed here (syntax, one expression, known functions and
    operators, no aggregates); its columns are known when the table is.
    """
    name = name or f"sql_expression({expression})"
    problem, references = _parse_sql_expression(expression)
    if problem:
        raise ExpectationDefinitionError(
            f"expectation {name!r}: cannot parse SQL expression {expression!r}: {problem}",
            expectation=name,
        )
    return SqlExpression(
        name=name,
        expression=expression,
        references=references,
        severity=_severity(severity, name, True),
        reason=reason,
        mostly=_mostly(mostly, name, None),
    )


@functools.cache
def _function_kinds() -> dict[str, str]:
    """DuckDB's functions and operators by name: scalar, aggregate, window, macro…"""
    with memory_cursor() as con:
        rows = con.execute(
            "SELECT DISTINCT lower(function_name), function_type FROM duckdb_functions()"
        ).fetchall()
    kinds: dict[str, str] = {}
    for fn, kind in rows:
        kinds[fn] = "scalar" if kinds.get(fn) == "scalar" else kind
    return kinds


def _nodes(tree: Any) -> Iterator[dict[str, Any]]:
    if isinstance(tree, dict):
        yield tree
        for value in tree.values():
            yield from _nodes(value)
    elif isinstance(tree, list):
        for value in tree:
            yield from _nodes(value)


def _parse_sql_expression(expression: str) -> tuple[str | None, tuple[str, ...]]:
    """Why ``expression`` is not one row-level DuckDB expression (None if it is), and the
    names it refers to (its columns; lambda parameters too, which select nothing)."""
    with memory_cursor() as con:
        rows = con.execute("SELECT json_serialize_sql(?)", [f"SELECT ({expression})"]).fetchall()
    parsed = json.loads(rows[0][0])
    if parsed.get("error"):
        message = str(parsed.get("error_message", "not a SQL expression"))
        return " ".join(message.split())[:300], ()
    statements = parsed["statements"]
    node = statements[0]["node"] if len(statements) == 1 else {}
    if len(node.get("select_list", ())) != 1 or node.get("from_table", {}).get("type") != "EMPTY":
        return "write one boolean expression, not a list or a query", ()
    kinds = _function_kinds()
    references: dict[str, None] = {}
    for sub in _nodes(node["select_list"]):
        if sub.get("class") == "COLUMN_REF" and sub.get("column_names"):
            references[str(sub["column_names"][-1])] = None
        if sub.get("class") == "WINDOW":
            return "window functions do not judge one row", ()
        if sub.get("class") != "FUNCTION":
            continue
        function = str(sub.get("function_name", "")).lower()
        if function not in kinds:
            return f"unknown function or operator {function!r}", ()
        if kinds[function] == "aggregate":
            return f"{function}() is an aggregate; a row-level expression judges one row", ()
    return None, tuple(references)


def row_count_between(
    min: int | None = None,
    max: int | None = None,
    *,
    severity: str = "fail",
    reason: str | None = None,
    name: str | None = None,
) -> RowCountBetween:
    """The table has between ``min`` and ``max`` rows (inclusive)."""
    name = name or "row_count_between"
    if min is None and max is None:
        raise ExpectationDefinitionError(f"expectation {name!r}: give min, max or both.")
    _declared_range(name, None, min, max)
    return RowCountBetween(
        name=name, min=min, max=max, severity=_severity(severity, name, False), reason=reason
    )


def stat_between(
    column: str,
    stat: str,
    min: Any = None,
    max: Any = None,
    *,
    severity: str = "fail",
    reason: str | None = None,
    name: str | None = None,
) -> StatBetween:
    """A statistic of a column lies within bounds (inclusive); nulls and NaN are left out.

    Args:
        stat: min | max | mean | median | sum | stddev.
    """
    name = name or f"stat_between({stat}({_column(column, 'stat_between')}))"
    if stat not in STATS:
        raise ExpectationDefinitionError(
            f"expectation {name!r}: unknown statistic {stat!r}; {one_of(stat, STATS)}"
        )
    if min is None and max is None:
        raise ExpectationDefinitionError(f"expectation {name!r}: give min, max or both.")
    _declared_range(name, column, min, max)
    return StatBetween(
        name=name,
        column=column,
        stat=stat,
        min=min,
        max=max,
        severity=_severity(severity, name, False),
        reason=reason,
    )


_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def freshness(
    column: str,
    max_age: dt.timedelta | str,
    *,
    now: dt.datetime | None = None,
    severity: str = "fail",
    reason: str | None = None,
    name: str | None = None,
) -> Freshness:
    """The newest value of a timestamp column is at most ``max_age`` old.

    Args:
        max_age: a timedelta or text like ``"36h"``, ``"2d"`` (s, m, h, d, w).
        now: the reference time (default: the time of the check, UTC); naive means UTC.
    """
    name = name or f"freshness({_column(column, 'freshness')})"
    if isinstance(max_age, str):
        match = _AGE.match(max_age)
        if not match:
            raise ExpectationDefinitionError(
                f"expectation {name!r}: max_age {max_age!r} is not like '36h' or '2d'."
            )
        max_age = dt.timedelta(**{_UNITS[match[2]]: float(match[1])})
    return Freshness(
        name=name,
        column=column,
        max_age=max_age,
        now=now,
        severity=_severity(severity, name, False),
        reason=reason,
    )


def schema_is(
    columns: Mapping[str, str | pa.DataType],
    *,
    allow_extra: bool = False,
    severity: str = "fail",
    reason: str | None = None,
    name: str | None = None,
) -> SchemaIs:
    """The table has these columns with these types.

    Types are families (integer, float, decimal, number, string, boolean, date,
    timestamp, binary) or exact Arrow types (``"int64"``, ``"timestamp[us, tz=UTC]"``,
    ``pa.int32()``).

    Args:
        allow_extra: accept columns that are not listed.
    """
    name = name or "schema_is"
    if not columns:
        raise ExpectationDefinitionError(
            f"expectation {name!r}: list at least one column.", expectation=name
        )
    return SchemaIs(
        name=name,
        columns=tuple(columns.items()),
        allow_extra=allow_extra,
        severity=_severity(severity, name, False),
        reason=reason,
    )
