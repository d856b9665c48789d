"""Expectations: what a table must satisfy, and how each compiles to a Polars expression.

Row-level expectations (not_null, unique, matches_regex, between, accepted_values,
relationships, sql_expression) give one boolean per row, ``True`` where the row
fails; all of a table's row-level expectations run in one Polars ``select``.
Table-level expectations (row_count_between, stat_between, freshness, schema_is)
judge the whole table and therefore cannot quarantine rows.

Null semantics (as dbt tests): only ``not_null`` fails on nulls; every other
row-level expectation ignores null values (a null email passes ``matches_regex``).
Float NaN counts as null everywhere. ``unique`` ignores nulls like SQL ``UNIQUE``
(two null ids are not duplicates; with several columns a row with any null is
ignored) and marks every row of a duplicated value, not only the second one.
Time zones: see :mod:`headrace.quality.values` (bounds without a zone mean UTC).
Regexes use Rust ``regex`` syntax (Unicode-aware, no look-around or backreferences)
and match anywhere in the value unless anchored with ``^``/``$``; the same pattern
means the same in DuckDB and PostgreSQL (:mod:`headrace.quality.patterns`). ``mostly`` (GX's
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

import polars as pl
import pyarrow as pa

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

    def used_columns(self) -> list[str]:
        """Columns the expectation reads (only these are handed to Polars)."""
        return [self.column] if self.column else []

    def where(self) -> str:
        """Names the expectation (and column) for messages."""
        on = f" on column {self.column!r}" if self.column else ""
        return f"expectation {self.name!r}{on}"

    def about(self) -> dict[str, str | None]:
        """The error fields naming the expectation and its column (``**exp.about()``)."""
        return {"expectation": self.name, "column": self.column}

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
    def failing(self, schema: pa.Schema) -> pl.Expr:
        """A boolean expression, true where the row fails (never null)."""

    @abstractmethod
    def describe(self) -> str:
        """Why a failing row fails, in words; used as the row's quarantine reason."""

    def row_reason(self) -> str:
        return self.reason or self.describe()

    def judged(self, schema: pa.Schema) -> pl.Expr:
        """True for the rows ``mostly`` counts: those with a value (nulls pass unjudged, as in GX)."""
        return _not_missing(self.column_name, self.column_type(schema))

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

    def aggregates(self, schema: pa.Schema) -> list[pl.Expr]:
        """Aggregate expressions this expectation needs (evaluated in one select)."""
        return []

    @abstractmethod
    def judge(self, values: list[Any], n_rows: int, schema: pa.Schema) -> Verdict:
        """Decide from the aggregate values, the row count and the schema."""


def _present(column: str) -> pl.Expr:
    return pl.col(column).is_not_null()


def _not_missing(column: str, arrow_type: pa.DataType) -> pl.Expr:
    """Not null and, for floats, not NaN (NaN counts as null)."""
    if family(arrow_type) == "float":
        return pl.col(column).is_not_null() & pl.col(column).is_not_nan()
    return _present(column)


def _comparable(column: str, arrow_type: pa.DataType) -> pl.Expr:
    """The column as compared with coerced bounds: zoned timestamps in UTC, categories as text."""
    if family(arrow_type) == "timestamp" and arrow_type.tz is not None:
        return pl.col(column).dt.convert_time_zone("UTC")
    if pa.types.is_dictionary(arrow_type):
        return pl.col(column).cast(polars_type(arrow_type.value_type))
    return pl.col(column)


@dataclass(frozen=True, kw_only=True)
class NotNull(RowExpectation):
    kind: ClassVar[str] = "not_null"

    def failing(self, schema: pa.Schema) -> pl.Expr:
        return ~_not_missing(self.column_name, self.column_type(schema))

    def judged(self, schema: pa.Schema) -> pl.Expr:
        return pl.repeat(True, pl.len())  # every row is judged

    def describe(self) -> str:
        return f"{self.column} is null"


@dataclass(frozen=True, kw_only=True)
class Unique(RowExpectation):
    columns: tuple[str, ...]
    kind: ClassVar[str] = "unique"

    def used_columns(self) -> list[str]:
        return list(self.columns)

    def failing(self, schema: pa.Schema) -> pl.Expr:
        present = [_not_missing(c, self.column_type(schema, c)) for c in self.columns]
        keyed = pl.col(self.columns[0]) if len(self.columns) == 1 else pl.struct(self.columns)
        return keyed.is_duplicated() & pl.all_horizontal(present)

    def judged(self, schema: pa.Schema) -> pl.Expr:
        return pl.all_horizontal(
            [_not_missing(c, self.column_type(schema, c)) for c in self.columns]
        )

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

    def failing(self, schema: pa.Schema) -> pl.Expr:
        arrow_type = self.column_type(schema)
        text = pl.col(self.column_name)
        if family(arrow_type) != "string" or pa.types.is_dictionary(arrow_type):
            text = text.cast(pl.String)  # numbers as text; categories by their text
        return _not_missing(self.column_name, arrow_type) & ~text.str.contains(self.pattern)

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

    def failing(self, schema: pa.Schema) -> pl.Expr:
        arrow_type = self.column_type(schema)
        lo, hi = self.bounds(arrow_type)
        value = _comparable(self.column_name, arrow_type)
        outside: list[pl.Expr] = []
        if lo is not None:
            outside.append(value <= pl.lit(lo) if self.strict_min else value < pl.lit(lo))
        if hi is not None:
            outside.append(value >= pl.lit(hi) if self.strict_max else value > pl.lit(hi))
        return _not_missing(self.column_name, arrow_type) & pl.any_horizontal(outside)

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


def polars_type(arrow_type: pa.DataType) -> pl.DataType:
    """The Polars type a column of ``arrow_type`` becomes."""
    return frame_of(pa.table({"c": pa.array([], arrow_type)})).schema["c"]


def is_in(value: pl.Expr, arrow_type: pa.DataType, keys: pl.Series, exp: Expectation) -> pl.Expr:
    """``value`` is one of ``keys``, comparing both in a common type.

    Polars 2 refuses ``is_in`` across types, so numbers meet in Int64 or Float64,
    zoned timestamps in UTC, and anything else is cast to the column's type.
    """
    fam = family(arrow_type)
    key_type = keys.dtype
    if fam in ("integer", "float", "decimal") and key_type.is_numeric():
        both_int = fam == "integer" and key_type.is_integer()
        common: pl.DataType = pl.Int64() if both_int else pl.Float64()
        return value.cast(common).is_in(keys.cast(common).implode())
    if fam == "timestamp":
        target: pl.DataType = pl.Datetime("us", "UTC" if arrow_type.tz is not None else None)
        return value.cast(target).is_in(_cast_keys(keys, target, exp).implode())
    if fam == "string":
        return value.cast(pl.String).is_in(_cast_keys(keys, pl.String(), exp).implode())
    return value.is_in(_cast_keys(keys, polars_type(arrow_type), exp).implode())


def _cast_keys(keys: pl.Series, target: pl.DataType, exp: Expectation) -> pl.Series:
    try:
        return keys.cast(target)
    except pl.exceptions.PolarsError as exc:
        raise ExpectationDefinitionError(
            f"{exp.where()}: values of type {keys.dtype} cannot be compared with the column "
            f"({target}): {' '.join(str(exc).split())[:300]}",
            expectation=exp.name,
            column=exp.column,
        ) from exc


@dataclass(frozen=True, kw_only=True)
class AcceptedValues(RowExpectation):
    values: tuple[Any, ...]
    kind: ClassVar[str] = "accepted_values"

    def failing(self, schema: pa.Schema) -> pl.Expr:
        arrow_type = self.column_type(schema)
        allowed = pl.Series(_coerce_values(self, self.values, arrow_type))
        value = _comparable(self.column_name, arrow_type)
        return _not_missing(self.column_name, arrow_type) & ~is_in(value, arrow_type, allowed, self)

    def describe(self) -> str:
        shown = ", ".join(repr(v) for v in self.values[:10]) + (
            ", …" if len(self.values) > 10 else ""
        )
        return f"{self.column} is not one of {shown}"


def frame_of(table: pa.Table | pl.DataFrame) -> pl.DataFrame:
    """A referenced table as a Polars DataFrame."""
    if isinstance(table, pl.DataFrame):
        return table
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame


@dataclass(frozen=True, kw_only=True)
class Relationships(RowExpectation):
    to_table: Any  # table name (check_table) or a pa.Table / pl.DataFrame
    to_column: str
    kind: ClassVar[str] = "relationships"

    def target_name(self) -> str:
        return self.to_table if isinstance(self.to_table, str) else "<table>"

    def failing(self, schema: pa.Schema) -> pl.Expr:
        arrow_type = self.column_type(schema)
        if isinstance(self.to_table, str):
            raise ExpectationDefinitionError(
                f"{self.where()}: {self.to_table!r} is a table name, which only check_table can "
                f"look up in its database; pass the referenced table as a pyarrow Table or "
                f"Polars DataFrame to check rows in memory.",
                expectation=self.name,
                column=self.column,
            )
        target = frame_of(self.to_table)
        if self.to_column not in target.columns:
            raise ExpectationDefinitionError(
                f"{self.where()}: the referenced table has no column {self.to_column!r}."
                + did_you_mean(self.to_column, target.columns),
                expectation=self.name,
                column=self.column,
            )
        keys = target.get_column(self.to_column).drop_nulls().unique()
        value = _comparable(self.column_name, arrow_type)
        return _present(self.column_name) & ~is_in(value, arrow_type, keys, self)

    def describe(self) -> str:
        return f"{self.column} has no match in {self.target_name()}.{self.to_column}"


@dataclass(frozen=True, kw_only=True)
class SqlExpression(RowExpectation):
    expression: str
    kind: ClassVar[str] = "sql_expression"

    def used_columns(self) -> list[str]:
        return pl.sql_expr(self.expression).meta.root_names()

    def failing(self, schema: pa.Schema) -> pl.Expr:
        # A null result passes, as in dbt's expression_is_true (WHERE NOT (expr)).
        return ~pl.sql_expr(self.expression).fill_null(True)

    def judged(self, schema: pa.Schema) -> pl.Expr:
        return pl.repeat(True, pl.len())

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

    def aggregates(self, schema: pa.Schema) -> list[pl.Expr]:
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
        value = _comparable(self.column_name, arrow_type)
        if family(arrow_type) == "float":
            value = value.fill_nan(None)  # NaN counts as null
        # Int64 sums wrap silently past 2**63; Int128 gives the exact sum DuckDB and GX give.
        total = value.cast(pl.Int128).sum() if family(arrow_type) == "integer" else value.sum()
        agg = {
            "min": value.min(),
            "max": value.max(),
            "mean": value.mean(),
            "median": value.median(),
            "sum": total,
            "stddev": value.std(),
        }[self.stat]
        return [agg]

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

    def aggregates(self, schema: pa.Schema) -> list[pl.Expr]:
        arrow_type = self.column_type(schema)
        if family(arrow_type) not in ("timestamp", "date"):
            raise ExpectationDefinitionError(
                f"{self.where()}: freshness needs a timestamp or date column, {self.column!r} is {arrow_type}.",
                expectation=self.name,
                column=self.column,
            )
        return [pl.col(self.column_name).max()]

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
