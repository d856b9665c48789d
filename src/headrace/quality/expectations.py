"""Expectations: what a table must satisfy (declared here, compiled to SQL by :mod:`.check_compiler`).

Row-level expectations (not_null, unique, matches_regex, between, accepted_values,
relationships, sql_expression) give one boolean per row, ``True`` where the row
fails; all of a table's expectations run in one DuckDB query (over the in-memory
Arrow table in :func:`~headrace.quality.apply.apply_checks`, over the stored table in
:func:`~headrace.quality.sql_checks.check_table`).
Table-level expectations (row_count_between, stat_between, freshness, schema_is)
judge the whole table and therefore cannot quarantine rows.

Null semantics (as dbt tests): only ``not_null`` fails on nulls; every other
row-level expectation ignores null values (a null email passes ``matches_regex``).
Float NaN counts as null everywhere. ``unique`` ignores nulls like SQL ``UNIQUE``
(two null ids are not duplicates; with several columns a row with any null is
ignored) and marks every row of a duplicated value, not only the second one.
Time zones: see :mod:`headrace.quality.values` (bounds without a zone mean UTC).
Regexes use RE2 syntax (DuckDB's engine; no look-around or backreferences) with the
Unicode meaning of ``\\s``, ``\\d`` and ``\\w`` (as in Python and Rust), and match
anywhere in the value unless anchored with ``^``/``$``; the same pattern means the same
in DuckDB and PostgreSQL (:mod:`headrace.quality.patterns`). ``mostly`` (GX's
option) lets a row-level expectation pass when that fraction of the rows it judges
(those with a value; every row for ``not_null`` and ``sql_expression``) pass.
"""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.compute as pc

from headrace.errors import did_you_mean
from headrace.quality.quality_errors import ExpectationDefinitionError
from headrace.quality.values import check_range, coerce_bound, family, to_utc


class Severity(StrEnum):
    """What a failure does: ``fail`` stops the task, ``warn`` records, ``quarantine`` moves rows."""

    FAIL = "fail"
    WARN = "warn"
    QUARANTINE = "quarantine"


@dataclass(frozen=True)
class Verdict:
    """The judgement of a table-level expectation."""

    ok: bool
    observed: Any
    message: str


@dataclass(frozen=True, kw_only=True)
class Expectation(ABC):
    """Base of every expectation: a name, a severity, an optional reason and ``mostly``."""

    name: str
    severity: Severity = Severity.FAIL
    reason: str | None = None
    column: str | None = None
    #: row-level only: pass when at least this fraction of the judged rows pass (GX's
    #: ``mostly``); failing rows are still counted, sampled and quarantined
    mostly: float | None = None

    kind: ClassVar[str] = "expectation"
    row_level: ClassVar[bool] = True

    @property
    def column_name(self) -> str:
        """The column of a single-column expectation."""
        if self.column is None:
            raise ExpectationDefinitionError(
                f"expectation {self.name!r} names no column.", expectation=self.name
            )
        return self.column

    def where(self) -> str:
        """Names the expectation (and column) for messages."""
        on = f" on column {self.column!r}" if self.column else ""
        return f"expectation {self.name!r}{on}"

    def about(self) -> dict[str, str | None]:
        """The error fields naming the expectation and its column (``**exp.about()``)."""
        return {"expectation": self.name, "column": self.column}

    def used_columns(self) -> list[str] | None:
        """The columns it reads (only these reach the engine), or None if it cannot tell."""
        return [self.column] if self.column else []

    def column_type(self, schema: pa.Schema, column: str | None = None) -> pa.DataType:
        """The Arrow type of ``column`` in ``schema``; unknown names suggest the closest."""
        name = column if column is not None else self.column
        assert name is not None
        if name not in schema.names:
            raise ExpectationDefinitionError(
                f"{self.where()}: the table has no column {name!r} "
                f"(columns: {', '.join(schema.names) or 'none'})."
                + did_you_mean(name, schema.names),
                expectation=self.name,
                column=name,
            )
        return schema.field(name).type


class RowExpectation(Expectation):
    """An expectation judged row by row; its failing rows can be quarantined."""

    @abstractmethod
    def describe(self) -> str:
        """Why a failing row fails, in words; used as the row's quarantine reason."""

    def row_reason(self) -> str:
        return self.reason or self.describe()

    def passes(self, failed: int, judged: int) -> tuple[bool, str]:
        """Whether the expectation passes with ``failed`` of ``judged`` rows failing, and a note.

        Without ``mostly`` any failing row fails it. With it, as in Great Expectations,
        it passes when ``(judged - failed) / judged >= mostly`` (and with nothing judged).
        """
        if self.mostly is None:
            return failed == 0, ""
        ratio = 1.0 if judged == 0 else (judged - failed) / judged
        return ratio >= self.mostly, (
            f" ({judged - failed} of {judged} rows pass = "
            f"{100 * ratio:.2f}%, mostly requires {100 * self.mostly:g}%)"
        )


class TableExpectation(Expectation):
    """An expectation judged on the whole table (counts, statistics, schema)."""

    row_level: ClassVar[bool] = False

    def validate(self, schema: pa.Schema) -> None:
        """Refuse a column this expectation cannot judge (before any query runs)."""

    @abstractmethod
    def judge(self, values: list[Any], n_rows: int, schema: pa.Schema) -> Verdict:
        """Decide from the aggregate values, the row count and the schema."""


@dataclass(frozen=True, kw_only=True)
class NotNull(RowExpectation):
    kind: ClassVar[str] = "not_null"

    def describe(self) -> str:
        return f"{self.column} is null"


@dataclass(frozen=True, kw_only=True)
class Unique(RowExpectation):
    columns: tuple[str, ...]
    kind: ClassVar[str] = "unique"

    def used_columns(self) -> list[str] | None:
        return list(self.columns)

    def describe(self) -> str:
        return (
            f"({', '.join(self.columns)}) is duplicated"
            if len(self.columns) > 1
            else f"{self.column} is duplicated"
        )


@dataclass(frozen=True, kw_only=True)
class MatchesRegex(RowExpectation):
    pattern: str
    kind: ClassVar[str] = "matches_regex"

    def describe(self) -> str:
        return f"{self.column} does not match {self.pattern}"


@dataclass(frozen=True, kw_only=True)
class Between(RowExpectation):
    min: Any = None
    max: Any = None
    strict_min: bool = False
    strict_max: bool = False
    kind: ClassVar[str] = "between"

    def bounds(self, arrow_type: pa.DataType) -> tuple[Any, Any]:
        """The bounds coerced to the column's type (None where open); an empty range is refused."""
        lo = (
            None
            if self.min is None
            else coerce_bound(self.min, arrow_type, self.where(), **self.about())
        )
        hi = (
            None
            if self.max is None
            else coerce_bound(self.max, arrow_type, self.where(), **self.about())
        )
        check_range(self.name, self.column, lo, hi, self.strict_min or self.strict_max)
        return lo, hi

    def describe(self) -> str:
        left = "(" if self.strict_min or self.min is None else "["
        right = ")" if self.strict_max or self.max is None else "]"
        lo = "-∞" if self.min is None else str(self.min)
        hi = "∞" if self.max is None else str(self.max)
        return f"{self.column} is outside {left}{lo}, {hi}{right}"


_BOOLEAN_TEXT = {"true": True, "false": False}


def _boolean(exp: Expectation, value: Any) -> bool:
    """A declared value as a boolean: True/False, 1/0 or the text true/false (any case)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _BOOLEAN_TEXT:
        return _BOOLEAN_TEXT[value.strip().lower()]
    raise ExpectationDefinitionError(
        f"{exp.where()}: the column is boolean but value {value!r} is not a boolean; "
        f"use True/False (or the text true, false, or 1, 0).",
        expectation=exp.name,
        column=exp.column,
    )


def _coerce_values(exp: Expectation, values: Sequence[Any], arrow_type: pa.DataType) -> list[Any]:
    if family(arrow_type) == "boolean":
        return [_boolean(exp, v) for v in values]
    return [coerce_bound(v, arrow_type, exp.where(), **exp.about()) for v in values]


@dataclass(frozen=True, kw_only=True)
class AcceptedValues(RowExpectation):
    values: tuple[Any, ...]
    kind: ClassVar[str] = "accepted_values"

    def describe(self) -> str:
        shown = ", ".join(repr(v) for v in self.values[:10]) + (
            ", …" if len(self.values) > 10 else ""
        )
        return f"{self.column} is not one of {shown}"


@dataclass(frozen=True, kw_only=True)
class Relationships(RowExpectation):
    to_table: str | pa.Table  # a table name (check_table) or the referenced rows
    to_column: str
    kind: ClassVar[str] = "relationships"

    def target_name(self) -> str:
        return self.to_table if isinstance(self.to_table, str) else "<table>"

    def keys(self) -> pa.Array:
        """The distinct non-null keys of the referenced in-memory table."""
        if isinstance(self.to_table, str):
            raise ExpectationDefinitionError(
                f"{self.where()}: {self.to_table!r} is a table name, which only check_table can "
                f"look up in its database; pass the referenced table as a pyarrow Table (or a "
                f"Polars or pandas DataFrame) to check rows in memory.",
                expectation=self.name,
                column=self.column,
            )
        if self.to_column not in self.to_table.column_names:
            raise ExpectationDefinitionError(
                f"{self.where()}: the referenced table has no column {self.to_column!r}."
                + did_you_mean(self.to_column, self.to_table.column_names),
                expectation=self.name,
                column=self.column,
            )
        column = self.to_table.column(self.to_column)
        if pa.types.is_dictionary(column.type):
            column = column.cast(column.type.value_type)
        return pc.unique(pc.drop_null(column).combine_chunks())

    def describe(self) -> str:
        return f"{self.column} has no match in {self.target_name()}.{self.to_column}"


@dataclass(frozen=True, kw_only=True)
class SqlExpression(RowExpectation):
    expression: str
    #: the names the expression refers to (found by the parser when declared); None: unknown
    references: tuple[str, ...] | None = None
    kind: ClassVar[str] = "sql_expression"

    def used_columns(self) -> list[str] | None:
        return None if self.references is None else list(self.references)

    def describe(self) -> str:
        return f"not ({self.expression})"


@dataclass(frozen=True, kw_only=True)
class RowCountBetween(TableExpectation):
    min: int | None = None
    max: int | None = None
    kind: ClassVar[str] = "row_count_between"

    def judge(self, values: list[Any], n_rows: int, schema: pa.Schema) -> Verdict:
        ok = (self.min is None or n_rows >= self.min) and (self.max is None or n_rows <= self.max)
        return Verdict(
            ok,
            n_rows,
            f"row count {n_rows} is {'within' if ok else 'outside'} "
            f"[{self.min if self.min is not None else 0}, {self.max if self.max is not None else '∞'}]",
        )


STATS = ("min", "max", "mean", "median", "sum", "stddev")


@dataclass(frozen=True, kw_only=True)
class StatBetween(TableExpectation):
    stat: str
    min: Any = None
    max: Any = None
    kind: ClassVar[str] = "stat_between"

    def validate(self, schema: pa.Schema) -> None:
        arrow_type = self.column_type(schema)
        if self.stat not in ("min", "max") and family(arrow_type) not in (
            "integer",
            "float",
            "decimal",
        ):
            raise ExpectationDefinitionError(
                f"{self.where()}: {self.stat} needs a numeric column, {self.column!r} is {arrow_type}.",
                expectation=self.name,
                column=self.column,
            )

    def judge(self, values: list[Any], n_rows: int, schema: pa.Schema) -> Verdict:
        arrow_type = self.column_type(schema)
        observed = values[0]
        if observed is None:
            return Verdict(
                False, None, f"{self.stat}({self.column}) has no value: no non-null rows"
            )
        bound_type = arrow_type if self.stat in ("min", "max") else pa.float64()
        lo = (
            None
            if self.min is None
            else coerce_bound(self.min, bound_type, self.where(), **self.about())
        )
        hi = (
            None
            if self.max is None
            else coerce_bound(self.max, bound_type, self.where(), **self.about())
        )
        check_range(self.name, self.column, lo, hi)
        if isinstance(observed, dt.datetime) and observed.tzinfo is not None:
            observed = to_utc(observed)
        if isinstance(observed, float) and observed != observed:  # NaN
            ok = False
        else:
            ok = (lo is None or observed >= lo) and (hi is None or observed <= hi)
        return Verdict(
            ok,
            observed,
            f"{self.stat}({self.column}) = {observed} is "
            f"{'within' if ok else 'outside'} [{self.min}, {self.max}]",
        )


@dataclass(frozen=True, kw_only=True)
class Freshness(TableExpectation):
    max_age: dt.timedelta
    now: dt.datetime | None = None
    kind: ClassVar[str] = "freshness"

    def validate(self, schema: pa.Schema) -> None:
        arrow_type = self.column_type(schema)
        if family(arrow_type) not in ("timestamp", "date"):
            raise ExpectationDefinitionError(
                f"{self.where()}: freshness needs a timestamp or date column, {self.column!r} is {arrow_type}.",
                expectation=self.name,
                column=self.column,
            )

    def judge(self, values: list[Any], n_rows: int, schema: pa.Schema) -> Verdict:
        newest = values[0]
        if newest is None:
            return Verdict(False, None, f"{self.column} has no values, so nothing is fresh")
        if not isinstance(newest, dt.datetime):
            newest = dt.datetime(newest.year, newest.month, newest.day)
        newest = to_utc(newest)
        now = to_utc(self.now) if self.now is not None else dt.datetime.now(dt.UTC)
        age = now - newest
        ok = age <= self.max_age
        age = dt.timedelta(seconds=round(age.total_seconds()))  # for the message only
        return Verdict(
            ok,
            newest,
            f"newest {self.column} is {newest.isoformat()}, {age} old (allowed {self.max_age})",
        )


TYPE_FAMILIES = (
    "integer",
    "float",
    "decimal",
    "string",
    "boolean",
    "date",
    "timestamp",
    "binary",
    "number",
)


def type_matches(actual: pa.DataType, wanted: str | pa.DataType) -> bool:
    """Whether an Arrow type meets a wanted type: a family name or an exact Arrow type."""
    if isinstance(wanted, pa.DataType):
        return actual == wanted
    spec = wanted.strip().lower()
    aliases = {
        "int": "integer",
        "str": "string",
        "text": "string",
        "bool": "boolean",
        "datetime": "timestamp",
        "numeric": "number",
        "double": "float64",
    }
    spec = aliases.get(spec, spec)
    if spec == "number":
        return family(actual) in ("integer", "float", "decimal")
    if spec in TYPE_FAMILIES:
        return family(actual) == spec
    return str(actual).lower().replace(" ", "") == spec.replace(" ", "")


@dataclass(frozen=True, kw_only=True)
class SchemaIs(TableExpectation):
    columns: tuple[tuple[str, Any], ...]
    allow_extra: bool = False
    kind: ClassVar[str] = "schema_is"

    def judge(self, values: list[Any], n_rows: int, schema: pa.Schema) -> Verdict:
        problems: list[str] = []
        for name, wanted in self.columns:
            if name not in schema.names:
                problems.append(f"missing column {name!r}" + did_you_mean(name, schema.names))
            elif not type_matches(schema.field(name).type, wanted):
                problems.append(f"{name} is {schema.field(name).type}, expected {wanted}")
        if not self.allow_extra:
            declared = {n for n, _ in self.columns}
            extra = [n for n in schema.names if n not in declared]
            if extra:
                problems.append(f"unexpected columns {', '.join(extra)}")
        observed = {f.name: str(f.type) for f in schema}
        return Verdict(not problems, observed, "; ".join(problems) or "schema matches")
