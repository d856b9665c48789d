"""CSV text to typed columns: null markers, the NaN rule, and rows whose values do not fit.

Every column of a CSV file is parsed as text and cast here, batch by batch. A value
that does not fit its column's type takes its row out of the batch and into the
quarantine with the column, the value and the type named; the others go on.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from headrace.connectors.sources.malformed import NanRule

DEFAULT_NULL_VALUES = ("", "NULL", "null", "NA", "N/A", "#N/A", "None")
NAN_TEXTS = ("nan", "-nan", "+nan")  # compared lower-cased
_TRUE = ("true", "1", "yes", "t", "y")
_FALSE = ("false", "0", "no", "f", "n")


@functools.cache
def _value_set(words: tuple[str, ...]) -> pa.Array:
    """``words`` as an Arrow array, built on first use: building an array from Python
    objects makes pyarrow import pandas (~0.5 s), which a read without booleans never pays."""
    return pa.array(words, type=pa.string())


@dataclass
class Casting:
    """The rules of one file's cast: null markers, the NaN rule, the delimiter for texts.

    Args:
        null_values: texts that are NULL in non-text columns (text columns keep them).
        nan: what ``NaN`` in a float column becomes.
        delimiter: to rebuild a rejected row's text.
        nan_to_null: NaN values turned into NULL so far (``nan="null"``).
    """

    null_values: Sequence[str]
    nan: NanRule
    delimiter: str
    nan_to_null: int = 0
    _nulls: pa.Array = field(init=False)

    def __post_init__(self) -> None:
        self._nulls = pa.array(list(self.null_values), pa.string())


@dataclass(frozen=True)
class Rejected:
    """One row taken out of a batch: its index, reason and rebuilt text."""

    index: int
    reason: str
    text: str


def typed(
    batch: pa.RecordBatch, target: pa.Schema, rules: Casting
) -> tuple[pa.RecordBatch, list[Rejected]]:
    """Cast a text batch to ``target``; rows with a value that does not fit are taken out.

    Args:
        batch: every column text, as parsed.
        target: the file's schema.
        rules: null markers and the NaN rule.

    Returns:
        The typed batch without the rejected rows, and the rejected rows (by index).
    """
    arrays: list[pa.Array] = []
    reasons: dict[int, str] = {}
    for target_field, column in zip(target, batch.columns, strict=True):
        kind = target_field.type
        if pa.types.is_string(kind) or pa.types.is_large_string(kind):
            arrays.append(column if kind == column.type else column.cast(kind))
            continue
        cast, bad = _cast_column(column, target_field, rules, reasons)
        arrays.append(cast)
        for i, reason in bad.items():
            reasons.setdefault(i, reason)
    result = pa.RecordBatch.from_arrays(arrays, schema=target)
    if not reasons:
        return result, []
    rejected = [
        Rejected(i, reason, _row_text(batch, i, rules.delimiter))
        for i, reason in sorted(reasons.items())
    ]
    keep = pa.array([i not in reasons for i in range(batch.num_rows)])
    return result.filter(keep), rejected


def _cast_column(
    column: pa.Array, target_field: pa.Field, rules: Casting, reasons: dict[int, str]
) -> tuple[pa.Array, dict[int, str]]:
    """One column cast; values that do not fit become null and are named in the result."""
    kind = target_field.type
    if len(column) and pc.min(pc.binary_length(column)).as_py() > 0:
        try:  # no empty value: try the one cast alone (a failed cast costs a full one)
            return _cast_text(column, kind), {}
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
    bad: dict[int, str] = {}
    column = pc.if_else(
        pc.is_in(column, value_set=rules._nulls), pa.scalar(None, pa.string()), column
    )
    if pa.types.is_floating(kind) and rules.nan is not NanRule.KEEP:
        nan = pc.fill_null(pc.is_in(pc.utf8_lower(column), value_set=pa.array(NAN_TEXTS)), False)
        found = pc.sum(nan).as_py() or 0
        if found and rules.nan is NanRule.NULL:
            rules.nan_to_null += found
        elif found:
            for i in pc.indices_nonzero(nan).to_pylist():
                bad[i] = (
                    f"column {target_field.name!r}: {column[i].as_py()!r} is NaN "
                    "(the source's nan rule is 'quarantine')"
                )
        column = pc.if_else(nan, pa.scalar(None, pa.string()), column)
    cast, failed = _cast_or_find(column, kind)
    for i in failed:
        bad.setdefault(i, f"column {target_field.name!r}: {column[i].as_py()!r} is not {kind}")
    return cast, bad


def _cast_or_find(column: pa.Array, kind: pa.DataType) -> tuple[pa.Array, list[int]]:
    """Cast, or find the values that do not cast by halving (a few casts per bad value)."""
    try:
        return _cast_text(column, kind), []
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    if len(column) == 1:
        return pa.nulls(1, kind), [0]
    half = len(column) // 2
    left, bad_left = _cast_or_find(column.slice(0, half), kind)
    right, bad_right = _cast_or_find(column.slice(half), kind)
    joined = pa.concat_arrays([left, right])
    return joined, bad_left + [half + i for i in bad_right]


def _cast_text(column: pa.Array, kind: pa.DataType) -> pa.Array:
    """Text to ``kind``; booleans accept true/false, 1/0, yes/no, t/f, y/n in any case."""
    if pa.types.is_boolean(kind):
        lowered = pc.utf8_lower(column)
        true = pc.is_in(lowered, value_set=_value_set(_TRUE))
        false = pc.is_in(lowered, value_set=_value_set(_FALSE))
        if pc.any(pc.and_(pc.is_valid(column), pc.invert(pc.or_(true, false)))).as_py():
            raise pa.ArrowInvalid("not a boolean")
        return pc.if_else(pc.is_valid(column), true, pa.scalar(None, pa.bool_()))
    return column.cast(kind)


def _row_text(batch: pa.RecordBatch, index: int, delimiter: str) -> str:
    """The rejected row's fields joined by the delimiter (its text as far as it is known)."""
    values = [column[index].as_py() for column in batch.columns]
    return delimiter.join("" if v is None else str(v) for v in values)
