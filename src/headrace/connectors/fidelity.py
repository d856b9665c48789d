"""Type fidelity: values that have no faithful form are quarantined, nulled or refused.

A warehouse that changes values is worse than one that fails. Sources convert each
database type to the Arrow type that holds it exactly (the matrix is in the README,
"Type fidelity", and in ``tests/connectors/type_matrix.json``); a few values have no
faithful form anywhere downstream:

* PostgreSQL ``timestamp``/``timestamptz``/``date`` ``'infinity'`` and ``'-infinity'``
  (Arrow, DuckDB and Python have no infinite timestamp; the driver hands them over as
  dates 290,000 years BC);
* MySQL/MariaDB zero dates (``'0000-00-00'``, ``'2024-00-00'``, ``'2024-02-00 ...'``);
* ``NaN`` and ``±Infinity`` in a PostgreSQL ``numeric``, and a ``numeric`` value that
  does not fit the decimal it is read as (unconstrained ``numeric`` is read as
  ``decimal128(38, 10)``);
* text with a NUL byte (PostgreSQL cannot store it; DuckDB can, but the outcome must
  not depend on the destination) or with invalid UTF-8.

For each, a :class:`ValuePolicy` decides: ``quarantine`` (the default) sets the row
aside in ``<table>_quarantine`` with a ``_hr_reason`` naming the column and the value,
in the same transaction as the load; ``null`` stores NULL instead, logs a warning and
counts the value (``LoadResult.values_nulled``); ``fail`` stops the read or the load
with an :class:`UnrepresentableValueError` naming column and row. Unrepresentable
source values follow ``Fidelity.values``; bad text follows ``Fidelity.text``.

The checks are vectorised (pyarrow compute over each batch): a clean batch costs one
comparison or one cast per checked column, and only a batch holding a bad value takes
the slower path that finds and explains it.

Example:
    >>> src = SqlSource(url, table="events", fidelity=Fidelity(values=ValuePolicy.NULL))
    >>> dest = DuckDBDestination(path, fidelity=Fidelity(text=ValuePolicy.FAIL))
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from headrace.connectors.prefetch import prefetched
from headrace.errors import ConnectorError, one_of

REASON_COLUMN = "_hr_reason"  # the quality checks' quarantine reason column, shared

log = logging.getLogger(__name__)


class ValuePolicy(StrEnum):
    """What happens to a value that has no faithful form."""

    QUARANTINE = "quarantine"  # set the row aside with its reason
    NULL = "null"  # store NULL, warn, count it
    FAIL = "fail"  # stop with an error naming column and row

    @classmethod
    def parse(cls, value: str | ValuePolicy) -> ValuePolicy:
        """``ValuePolicy`` from its name, suggesting the closest on a typo."""
        try:
            return cls(value)
        except ValueError:
            names = [m.value for m in cls]
            raise ConnectorError(
                f"Unknown value policy {value!r}; {one_of(str(value), names)}"
            ) from None


@dataclass(frozen=True)
class Fidelity:
    """The value policies of a source or destination.

    Args:
        values: for source values with no faithful type (±infinity timestamps, zero
            dates, NaN/±Infinity or out-of-range numeric).
        text: for text with a NUL byte or invalid UTF-8 (destinations).
    """

    values: ValuePolicy = ValuePolicy.QUARANTINE
    text: ValuePolicy = ValuePolicy.QUARANTINE

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", ValuePolicy.parse(self.values))
        object.__setattr__(self, "text", ValuePolicy.parse(self.text))


class UnrepresentableValueError(ConnectorError):
    """A value with no faithful form, under the ``fail`` policy.

    Attributes:
        where: the table or source read or written.
        column: the column holding the value.
        row: the row's position in the stream (0-based).
        reason: what is wrong with the value.
    """

    def __init__(self, where: str, column: str, row: int, reason: str) -> None:
        self.where, self.reason = where, reason
        super().__init__(
            f"{reason}. The value policy is 'fail'; use 'quarantine' to set such rows aside or "
            "'null' to store NULL (Fidelity).",
            path=where,
            row=row,
            column=column,
        )


@dataclass
class Flag:
    """Values of one column of a batch that have no faithful form.

    Args:
        column: the column's name.
        mask: True where the value is bad (no nulls).
        reason: a reason per row (string array) or one for all flagged rows.
        shown: the value kept in the quarantine row (default NULL).
    """

    column: str
    mask: pa.Array
    reason: str | pa.Array
    shown: pa.Array | None = None


class Rejects:
    """Rows set aside and values nulled while a stream is read or written."""

    def __init__(self) -> None:
        self.tables: list[pa.Table] = []
        self.nulled = 0
        self.rows = 0  # rows seen, for the position of a failing row

    @property
    def count(self) -> int:
        """Rows set aside so far."""
        return sum(t.num_rows for t in self.tables)

    def table(self) -> pa.Table | None:
        """The rows set aside, each with its ``_hr_reason``; None when there are none."""
        if not self.tables:
            return None
        return pa.concat_tables(self.tables, promote_options="permissive")


def settle(
    batch: pa.RecordBatch,
    flags: list[Flag],
    policy: ValuePolicy,
    rejects: Rejects,
    where: str,
) -> pa.RecordBatch:
    """Apply ``policy`` to the flagged values of ``batch``; return the rows that go on.

    Args:
        batch: the batch, already converted to its final types.
        flags: the bad values found per column (none: the batch is returned as is).
        policy: quarantine, null or fail.
        rejects: collects quarantined rows and counts nulled values.
        where: the source or table, for messages.

    Returns:
        The batch without quarantined rows, or with NULL in place of bad values.
    """
    flags = [f for f in flags if f.mask.true_count]
    if not flags:
        return batch
    if policy is ValuePolicy.FAIL:
        # the first bad row, and its first bad column
        index, first = (
            min(((pc.index(f.mask, True).as_py(), i), f) for i, f in enumerate(flags))[0][0],
            None,
        )
        first = next(f for f in flags if f.mask[index].as_py())
        reason = first.reason if isinstance(first.reason, str) else first.reason[index].as_py()
        raise UnrepresentableValueError(where, first.column, rejects.rows + index, reason)
    names = batch.schema.names
    if policy is ValuePolicy.NULL:
        columns = dict(zip(names, batch.columns, strict=True))
        for flag in flags:
            column = columns[flag.column]
            columns[flag.column] = pc.if_else(flag.mask, pa.nulls(1, column.type)[0], column)
            rejects.nulled += flag.mask.true_count
            log.warning(
                "%s: %d value(s) of column %r stored as NULL (%s)",
                where,
                flag.mask.true_count,
                flag.column,
                flag.reason if isinstance(flag.reason, str) else flag.reason.filter(flag.mask)[0],
            )
        return pa.RecordBatch.from_arrays(list(columns.values()), schema=batch.schema)
    any_bad = flags[0].mask
    for flag in flags[1:]:
        any_bad = pc.or_(any_bad, flag.mask)
    shown = dict(zip(names, batch.columns, strict=True))
    reasons = []
    for flag in flags:
        column = shown[flag.column]
        replacement = flag.shown if flag.shown is not None else pa.nulls(len(column), column.type)
        shown[flag.column] = pc.if_else(flag.mask, replacement, column)
        text = flag.reason if isinstance(flag.reason, str) else None
        reasons.append(
            pc.if_else(
                flag.mask, text if text is not None else flag.reason, pa.scalar(None, pa.string())
            )
        )
    reason = reasons[0]
    for more in reasons[1:]:  # (binary_join's null_handling="skip" drops rows, pyarrow 26)
        reason = pc.coalesce(pc.binary_join_element_wise(reason, more, "; "), reason, more)
    rejected = pa.RecordBatch.from_arrays(
        [*shown.values(), reason], names=[*names, REASON_COLUMN]
    ).filter(any_bad)
    rejects.tables.append(pa.Table.from_batches([rejected]))
    return batch.filter(pc.invert(any_bad))


# -- numeric text -> decimal ----------------------------------------------------------

_SPECIAL_NUMERIC = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity",
                    "infinity": "Infinity", "-infinity": "-Infinity"}  # fmt: skip


def decimal_from_text(
    text: pa.Array, target: pa.DataType, column: str
) -> tuple[pa.Array, Flag | None]:
    """Exact decimal from numeric text; NaN, ±Infinity and values that do not fit are flagged.

    The cast is the fast path; only a batch whose cast fails is searched for its bad
    values (which become NULL in the returned array).
    """
    try:
        return pc.cast(text, target), None
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    lower = pc.utf8_lower(text)
    special = pc.is_in(lower, pa.array(list(_SPECIAL_NUMERIC)))
    digits = target.precision - target.scale
    pattern = rf"^[+-]?0*\d{{0,{digits}}}(\.\d{{0,{target.scale}}}0*)?$"
    fits = pc.match_substring_regex(text, pattern)
    bad = pc.fill_null(pc.or_(special, pc.invert(fits)), False)
    reason = pc.binary_join_element_wise(
        f"column {column!r}: numeric value '",
        text,
        pc.if_else(special, "' has no decimal form", f"' does not fit {target} exactly"),
        "",
    )
    values = pc.cast(pc.if_else(bad, pa.scalar(None, pa.string()), text), target)
    return values, Flag(column, bad, reason, shown=None)


# -- text screening (destinations) ----------------------------------------------------


def _text_flags(batch: pa.RecordBatch) -> list[Flag]:
    """NUL bytes and invalid UTF-8 in the string columns of ``batch``."""
    flags = []
    for name, column in zip(batch.schema.names, batch.columns, strict=True):
        if pa.types.is_list(column.type) and pa.types.is_string(column.type.value_type):
            values, parents = column.flatten(), pc.list_parent_indices(column)
        elif pa.types.is_string(column.type):
            values, parents = column, None
        else:
            continue
        raw = _bytes_of(values)
        low, high = (0x01, 0x00) if raw is None else _min_max(raw)
        # ASCII is valid UTF-8: the max over the bytes spares the validating cast
        invalid = None if high < 0x80 else _invalid_utf8(values)
        if invalid is None and low != 0:
            continue  # the fast path: one min/max pass over the bytes, no per-row work
        if invalid is not None:
            values = pc.cast(
                pc.if_else(invalid, pa.scalar(None, pa.binary()), values.cast(pa.binary())),
                pa.string(),
            )
        nul = pc.fill_null(pc.match_substring(values, "\x00"), False)
        if invalid is not None:
            nul = pc.or_(nul, invalid)
        if not nul.true_count:
            continue
        if parents is not None:
            rows = pc.unique(pc.filter(parents, nul))
            mask = pc.is_in(pa.array(range(len(column)), pa.int64()), rows.cast(pa.int64()))
            flags.append(
                Flag(
                    name, mask, f"column {name!r}: a list element holds a NUL byte or invalid UTF-8"
                )
            )
            continue
        reason = pc.if_else(
            invalid if invalid is not None else pa.array([False] * len(values)),
            f"column {name!r}: invalid UTF-8 (bad bytes shown as U+FFFD)",
            f"column {name!r}: text holds a NUL byte (shown as U+FFFD)",
        )
        flags.append(Flag(name, nul, reason, shown=_readable(column, invalid)))
    return flags


def _invalid_utf8(values: pa.Array) -> pa.Array | None:
    """Where ``values`` is not valid UTF-8, or None when all of it is (the fast path)."""
    try:
        values.view(pa.binary()).cast(pa.string())  # the cast checks UTF-8 (simdutf)
        return None
    except pa.ArrowInvalid:
        pass
    bad = []
    for value in values.view(pa.binary()).to_pylist():  # rare: only a batch with bad bytes
        try:
            if value is not None:
                value.decode("utf-8")
            bad.append(False)
        except UnicodeDecodeError:
            bad.append(True)
    return pa.array(bad, pa.bool_())


def _bytes_of(values: pa.Array) -> pa.Array | None:
    """The bytes of a string array's values (the array may be a slice) as a uint8 array
    over the same buffer, without a copy; None when there are none.

    Bytes under null slots may be included: a check over them can give a false
    positive (then the exact per-row path runs), never a false negative.
    """
    offsets, data = values.buffers()[1], values.buffers()[2]
    if data is None or len(values) == 0:
        return None
    bounds = pa.Array.from_buffers(
        pa.int32(), len(values) + 1, [None, offsets], offset=values.offset
    )
    start, end = bounds[0].as_py(), bounds[-1].as_py()
    if end == start:
        return None
    return pa.Array.from_buffers(pa.uint8(), end - start, [None, data], offset=start)


def _min_max(raw: pa.Array) -> tuple[int, int]:
    both = pc.min_max(raw)
    return both["min"].as_py(), both["max"].as_py()


def _readable(column: pa.Array, invalid: pa.Array | None) -> pa.Array:
    """``column`` with NUL bytes and invalid bytes as U+FFFD, storable everywhere."""
    if invalid is not None:
        raw = column.cast(pa.binary()).to_pylist()
        column = pa.array(
            [None if v is None else v.decode("utf-8", "replace") for v in raw], pa.string()
        )
    return pc.replace_substring(column, "\x00", "\ufffd")


def screen_text(
    data: pa.Table | pa.RecordBatchReader, policy: ValuePolicy, rejects: Rejects, where: str
) -> pa.Table | pa.RecordBatchReader:
    """``data`` without rows whose text no destination stores the same way.

    Also drops columns of Arrow type ``null`` (an empty or all-None pandas object
    column): they hold no value and no type; the column is created by the first load
    that has values. Data whose columns are all ``null`` keeps them, as text.
    """
    schema = _typed_schema(data.schema)
    keep = schema.names

    def clean(batch: pa.RecordBatch) -> pa.RecordBatch:
        if keep != batch.schema.names or schema != batch.schema:
            batch = pa.RecordBatch.from_arrays(
                [batch.column(n).cast(schema.field(n).type) for n in keep], schema=schema
            )
        good = settle(batch, _text_flags(batch), policy, rejects, where)
        rejects.rows += batch.num_rows
        return good

    if isinstance(data, pa.Table):
        return pa.Table.from_batches([clean(b) for b in data.to_batches()], schema=schema)
    # Screened in a thread of its own: run in the consumer's thread (DuckDB's scan), each
    # GIL hand-off waited on the decoding thread and a 2M-row load took ~1 s longer.
    return pa.RecordBatchReader.from_batches(schema, prefetched((clean(b) for b in data), 2))


def with_rejects(quarantine: Any, *collected: Rejects | None) -> pa.Table | None:
    """The user's quarantine data (Arrow table or reader, or None) with the rows that
    sources and the text screen set aside, as one table; None when there are none."""
    tables = [r.table() for r in collected if r is not None]
    tables = [t for t in tables if t is not None]
    if not tables:
        return quarantine
    if isinstance(quarantine, pa.RecordBatchReader):
        quarantine = quarantine.read_all()
    if quarantine is not None:
        tables.insert(0, quarantine)
    return pa.concat_tables(tables, promote_options="permissive")


def _typed_schema(schema: pa.Schema) -> pa.Schema:
    typed = [f for f in schema if not pa.types.is_null(f.type)]
    if typed:
        return pa.schema(typed)
    return pa.schema([pa.field(f.name, pa.string()) for f in schema])


def zero_date_flags(
    text: pa.Array, target: pa.DataType, column: str
) -> tuple[pa.Array, Flag | None]:
    """Date or timestamp from MySQL's text form; zero dates are flagged (and NULL)."""
    zero = pc.fill_null(pc.match_substring_regex(text, _ZERO_DATE), False)
    if zero.true_count:
        reason = pc.binary_join_element_wise(
            f"column {column!r}: zero date '", text, "' has no date value", ""
        )
        text = pc.if_else(zero, pa.scalar(None, pa.string()), text)
        flag: Flag | None = Flag(column, zero, reason)
    else:
        flag = None
    if pa.types.is_date(target):
        return pc.cast(pc.cast(text, pa.timestamp("s")), target), flag
    return pc.cast(text, target), flag


_ZERO_DATE = r"^\d{4}-(00-\d\d|\d\d-00)"  # a zero month or day (0000-00-00 too)
