"""Type families of Arrow columns and the coercion of bounds to them.

Bounds given by users (``min="2020-01-01"``, ``max=10``) are coerced once, against
the column's Arrow type, to a Python value that the SQL compiler binds (in memory and
in the database). Time-zone rule: a timestamp bound without a zone is read as UTC; a
column with a zone is compared in UTC; a column without a zone is taken to hold UTC
wall-clock times, so an aware bound is converted to UTC and its zone dropped.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
from typing import Any

import pyarrow as pa

from headrace.quality.quality_errors import ExpectationDefinitionError

UTC = dt.UTC


def family(arrow_type: pa.DataType) -> str:
    """The family of an Arrow type: integer, float, decimal, string, boolean, date, timestamp, other."""
    if pa.types.is_dictionary(arrow_type):
        return family(arrow_type.value_type)
    if pa.types.is_integer(arrow_type):
        return "integer"
    if pa.types.is_floating(arrow_type):
        return "float"
    if pa.types.is_decimal(arrow_type):
        return "decimal"
    if (
        pa.types.is_string(arrow_type)
        or pa.types.is_large_string(arrow_type)
        or pa.types.is_string_view(arrow_type)
    ):
        return "string"
    if pa.types.is_boolean(arrow_type):
        return "boolean"
    if pa.types.is_date(arrow_type):
        return "date"
    if pa.types.is_timestamp(arrow_type):
        return "timestamp"
    if pa.types.is_binary(arrow_type) or pa.types.is_large_binary(arrow_type):
        return "binary"
    return "other"


NUMERIC = ("integer", "float", "decimal")


def parse_datetime(value: str | dt.date, where: str, **about: Any) -> dt.datetime:
    """An ISO date or timestamp string (or date) as a datetime; naive stays naive."""
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day)
    try:
        return dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise ExpectationDefinitionError(
            f"{where}: bound {value!r} is not an ISO date or timestamp; "
            f"write it like '2020-01-01' or '2020-01-01T12:00:00+00:00'.",
            **about,
        ) from None


def to_utc(value: dt.datetime) -> dt.datetime:
    """Aware UTC datetime; a naive one is taken to be UTC already."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def coerce_bound(value: Any, arrow_type: pa.DataType, where: str, **about: Any) -> Any:
    """Coerce a user bound to a value comparable with a column of ``arrow_type``.

    Args:
        value: the bound as declared (number, str, date, datetime, Decimal).
        arrow_type: the column's type.
        where: names the expectation and column, for error messages.
        about: ``expectation`` and ``column``, kept on an error as fields.

    Returns:
        The bound as int/float/Decimal, str, date, or datetime (aware UTC for a zoned
        column, naive UTC wall-clock for a naive one).
    """
    fam = family(arrow_type)
    if fam in NUMERIC:
        if isinstance(value, bool) or not isinstance(value, int | float | decimal.Decimal):
            raise ExpectationDefinitionError(
                f"{where}: column is {arrow_type} but bound {value!r} is "
                f"{type(value).__name__}; give a number.",
                **about,
            )
        if isinstance(value, float) and math.isnan(value):
            raise ExpectationDefinitionError(f"{where}: a bound cannot be NaN.", **about)
        if fam == "decimal" and isinstance(value, float):
            return decimal.Decimal(str(value))
        return value
    if fam == "timestamp":
        if not isinstance(value, str | dt.date):
            raise ExpectationDefinitionError(
                f"{where}: column is {arrow_type} but bound {value!r} is "
                f"{type(value).__name__}; give a datetime, date or ISO string.",
                **about,
            )
        stamp = parse_datetime(value, where, **about)
        if arrow_type.tz is not None:
            return to_utc(stamp)
        return stamp if stamp.tzinfo is None else stamp.astimezone(UTC).replace(tzinfo=None)
    if fam == "date":
        if isinstance(value, dt.datetime) or isinstance(value, str) and len(value.strip()) > 10:
            stamp = parse_datetime(value, where, **about)
            if stamp.time() != dt.time(0) or stamp.tzinfo is not None:
                raise ExpectationDefinitionError(
                    f"{where}: column is a date but bound {value!r} has a time of day; "
                    f"give a date like '2020-01-01'.",
                    **about,
                )
            return stamp.date()
        if isinstance(value, dt.date):
            return value
        if isinstance(value, str):
            return parse_datetime(value, where, **about).date()
        raise ExpectationDefinitionError(
            f"{where}: column is a date but bound {value!r} is {type(value).__name__}.", **about
        )
    if fam == "string":
        if not isinstance(value, str):
            raise ExpectationDefinitionError(
                f"{where}: column is a string but bound {value!r} is {type(value).__name__}; "
                f"strings compare in code-point order, give a string.",
                **about,
            )
        return value
    raise ExpectationDefinitionError(
        f"{where}: cannot compare a column of type {arrow_type} with bounds; "
        f"use sql_expression for this column.",
        **about,
    )


def check_range(name: str, column: str | None, lo: Any, hi: Any, strict: bool = False) -> None:
    """Refuse bounds that leave no value in range: ``min > max``, or ``min == max`` with a strict side.

    Args:
        name: the expectation, for the error.
        column: its column (None for the row count).
        lo: the lower bound, or None.
        hi: the upper bound, or None.
        strict: whether either bound excludes itself.

    Bounds that cannot be compared with each other (a naive and an aware datetime)
    are left to the check against the column's type.
    """
    if lo is None or hi is None:
        return
    try:
        empty = bool(lo > hi or (lo == hi and strict))
    except TypeError:
        return
    if empty:
        on = f" on column {column!r}" if column else ""
        how = "greater than" if lo > hi else "equal to (with a strict bound)"
        raise ExpectationDefinitionError(
            f"expectation {name!r}{on}: min {lo!r} is {how} max {hi!r}, so the range is empty "
            f"and every row would fail; swap min and max.",
            expectation=name,
            column=column,
        )


def json_safe(value: Any, max_len: int = 200) -> Any:
    """A value that json.dumps accepts: dates as ISO strings, Decimal as str, long text cut."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        # NaN and infinities are not JSON; keep them visible as text.
        return str(value) if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, str):
        return value if len(value) <= max_len else value[:max_len] + "…"
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | dt.timedelta):
        return str(value)
    if isinstance(value, bytes):
        return value[:max_len].hex()
    if isinstance(value, list | tuple):
        return [json_safe(v, max_len) for v in value]
    if isinstance(value, dict):
        return {str(k): json_safe(v, max_len) for k, v in value.items()}
    return str(value)[:max_len]


def frame_to_arrow(value: Any) -> pa.Table | None:
    """A Polars or pandas DataFrame as a pyarrow Table, converted at the edge without importing
    either (neither is a core dependency); None for anything else."""
    module = type(value).__module__.split(".")[0]
    if module == "polars" and hasattr(value, "to_arrow"):
        converted = value.to_arrow()
        assert isinstance(converted, pa.Table)
        return converted
    if module == "pandas":
        return pa.Table.from_pandas(value, preserve_index=False)
    return None
