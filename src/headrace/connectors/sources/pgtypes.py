"""PostgreSQL column types, as the server describes them, and their faithful Arrow form.

The ADBC driver decodes the common types itself; others arrive as opaque extension
arrays (``numeric`` as text with no precision, ``uuid``/``inet``/``timetz`` as raw
binary) or, for ``money``, as a bare int64 of cents with no mark at all. So a read is
described first — from the catalog for a table, from the server's description of the
prepared statement for a query — and each column gets:

* a SELECT expression when the server should convert it (``money`` -> ``numeric``;
  ``inet``, ``cidr``, ``timetz``, ``macaddr``, ranges, ``xml``... -> their text form;
  arrays of such types -> ``text[]``);
* an Arrow conversion applied per batch with pyarrow compute: ``numeric(p, s)`` ->
  ``decimal128(p, s)`` (``decimal256`` past 38 digits), unconstrained ``numeric`` ->
  ``decimal128(38, 10)``, ``money`` -> ``decimal128(19, 2)``, ``uuid`` -> Arrow's
  ``uuid`` extension (DuckDB ``UUID``, PostgreSQL ``uuid``);
* a check for values with no faithful form (±infinity dates and timestamps, NaN and
  infinities in ``numeric``, numeric values wider than their decimal), settled by the
  source's :class:`~headrace.connectors.fidelity.Fidelity` policy.

Enums, domains (read as their base type), ``json``/``jsonb`` (text), ``char(n)`` (text,
blank-padded as PostgreSQL returns it), ``bytea``, ``interval`` (month-day-nano) and
arrays of scalars are decoded by the driver as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from headrace.connectors.fidelity import Flag, decimal_from_text
from headrace.connectors.naming import quote_ident

#: base types the driver decodes faithfully by itself
NATIVE = frozenset(
    [
        "int2",
        "int4",
        "int8",
        "float4",
        "float8",
        "bool",
        "bytea",
        "text",
        "varchar",
        "bpchar",
        "name",
        "char",
        "json",
        "jsonb",
        "date",
        "time",
        "timestamp",
        "timestamptz",
        "interval",
        "oid",
    ]
)
UNCONSTRAINED_NUMERIC = pa.decimal128(38, 10)
MONEY = pa.decimal128(19, 2)

# The driver (adbc-driver-postgresql < 1.9) adds the 2000-01-01 epoch offset to
# PostgreSQL's infinity markers (int64/int32 extremes) and wraps around.
_EPOCH_US, _EPOCH_DAYS = 946_684_800_000_000, 10_957
_INFINITY = {
    "timestamp": {
        -(2**63) + _EPOCH_US - 1: "infinity",  # INT64_MAX + offset, wrapped
        -(2**63) + _EPOCH_US: "-infinity",
        2**63 - 1: "infinity",  # a driver that passes the markers through
        -(2**63): "-infinity",
    },
    "date": {
        -(2**31) + _EPOCH_DAYS - 1: "infinity",
        -(2**31) + _EPOCH_DAYS: "-infinity",
        2**31 - 1: "infinity",
        -(2**31): "-infinity",
    },
}
# Below these no real PostgreSQL value lies (4713 BC); only the markers do.
_FLOOR = {"timestamp": -211_000_000_000_000_000, "date": -2_500_000}

DESCRIBE_TABLE = (
    "SELECT attname::text, atttypid, atttypmod, attnum FROM pg_attribute "
    "WHERE attrelid = CAST($1 AS regclass) AND attnum > 0 AND NOT attisdropped"
)
DESCRIBE_QUERY = (
    "SELECT * FROM unnest(CAST(%s AS text[]), CAST(%s AS oid[]), CAST(%s AS int[])) WITH ORDINALITY"
)
# base type name, typmod, element type name, type kind ('e' enum...) of each column
RESOLVE = (
    "WITH cols(name, typid, typmod, pos) AS ({}) "
    "SELECT c.name, coalesce(b.typname, t.typname)::text AS base, "
    "CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE c.typmod END AS typmod, "
    "coalesce(eb.typname, e.typname)::text AS element, coalesce(b.typtype, t.typtype)::text AS kind, "
    "coalesce(eb.typtype, e.typtype)::text AS element_kind "
    "FROM cols c JOIN pg_type t ON t.oid = c.typid "
    "LEFT JOIN pg_type b ON t.typtype = 'd' AND b.oid = t.typbasetype "
    "LEFT JOIN pg_type e ON coalesce(b.typcategory, t.typcategory) = 'A' "
    "AND e.oid = coalesce(b.typelem, t.typelem) "
    "LEFT JOIN pg_type eb ON e.typtype = 'd' AND eb.oid = e.typbasetype "
    "ORDER BY c.pos"
)


@dataclass(frozen=True)
class PgColumn:
    """One column as the server describes it (domains resolved to their base type)."""

    name: str
    base: str  # base type name: numeric, money, uuid, timestamptz, my_enum...
    typmod: int
    element: str | None  # element type name of an array
    kind: str  # pg_type.typtype of the base: b(ase), e(num), c(omposite), r(ange)...
    element_kind: str | None = None


def describe_rows(rows: list[tuple]) -> dict[str, PgColumn]:
    """Columns from the rows of :data:`RESOLVE`."""
    return {r[0]: PgColumn(r[0], r[1], int(r[2]), r[3], r[4], r[5]) for r in rows}


def decimal_type(typmod: int) -> pa.DataType:
    """``numeric(p, s)`` as an Arrow decimal; unconstrained numeric as decimal128(38, 10)."""
    if typmod < 4:
        return UNCONSTRAINED_NUMERIC
    precision, scale = (typmod - 4) >> 16, (typmod - 4) & 0xFFFF
    return (pa.decimal128 if precision <= 38 else pa.decimal256)(precision, scale)


def select_expression(col: PgColumn) -> str | None:
    """The SELECT item that makes the server convert the column, or None (as it is)."""
    ident = quote_ident(col.name)
    if col.element is not None:
        if col.element in NATIVE or col.element in ("numeric", "uuid") or col.element_kind == "e":
            return None
        return f"CAST({ident} AS text[]) AS {ident}"
    if col.base in NATIVE or col.base in ("numeric", "uuid") or col.kind == "e":
        return None
    if col.base == "money":
        return f"CAST({ident} AS numeric) AS {ident}"
    return f"CAST({ident} AS text) AS {ident}"


def arrow_type(col: PgColumn, read: pa.DataType) -> pa.DataType:
    """The Arrow type the column is delivered as (``read``: what the driver gives)."""
    if col.element == "numeric":
        return pa.list_(decimal_type(col.typmod))
    if col.element == "uuid":
        return pa.list_(pa.uuid())
    if col.element is not None:
        return _storage(read)
    if col.base == "numeric":
        return decimal_type(col.typmod)
    if col.base == "money":
        return MONEY
    if col.base == "uuid":
        return pa.uuid()
    return _storage(read)


def _storage(t: pa.DataType) -> pa.DataType:
    if isinstance(t, pa.BaseExtensionType):
        return t.storage_type
    if pa.types.is_list(t) and isinstance(t.value_type, pa.BaseExtensionType):
        return pa.list_(t.value_type.storage_type)
    return t


def convert(
    array: pa.Array, col: PgColumn | None, target: pa.DataType, check_infinity: bool
) -> tuple[pa.Array, Flag | None]:
    """One column of a batch in its delivered type, and its values with no faithful form."""
    name = col.name if col is not None else ""
    if isinstance(array.type, pa.BaseExtensionType):
        array = array.storage
    if pa.types.is_list(target) and isinstance(array.type.value_type, pa.BaseExtensionType):
        array = pa.ListArray.from_arrays(
            array.offsets, array.values.storage, mask=array.is_null() if array.null_count else None
        )
    if isinstance(target, pa.Decimal128Type | pa.Decimal256Type):
        if not pa.types.is_string(array.type):
            return array.cast(target), None
        return decimal_from_text(array, target, name)
    if isinstance(target, pa.UuidType):
        return pa.ExtensionArray.from_storage(target, array.cast(pa.binary(16))), None
    if pa.types.is_list(target) and isinstance(
        target.value_type, pa.Decimal128Type | pa.Decimal256Type
    ):
        values, flag = decimal_from_text(array.values, target.value_type, name)
        rebuilt = pa.ListArray.from_arrays(
            array.offsets, values, mask=array.is_null() if array.null_count else None
        )
        if flag is None:
            return rebuilt, None
        parents = pc.list_parent_indices(array)
        rows = pc.unique(pc.filter(parents, flag.mask)).cast(pa.int64())
        mask = pc.is_in(pa.array(range(len(array)), pa.int64()), rows)
        return rebuilt, Flag(name, mask, f"column {name!r}: an array element has no decimal form")
    if pa.types.is_list(target) and isinstance(target.value_type, pa.UuidType):
        values = pa.ExtensionArray.from_storage(pa.uuid(), array.values.cast(pa.binary(16)))
        return pa.ListArray.from_arrays(
            array.offsets, values, mask=array.is_null() if array.null_count else None
        ), None
    if array.type != target:
        array = array.cast(target)
    if check_infinity:
        return array, infinity_flag(array, name)
    return array, None


def infinity_flag(array: pa.Array, column: str) -> Flag | None:
    """PostgreSQL ±infinity in a timestamp or date column (one comparison per value)."""
    if pa.types.is_timestamp(array.type):
        kind, raw = "timestamp", array.view(pa.int64())
    elif pa.types.is_date32(array.type):
        kind, raw = "date", array.view(pa.int32())
    else:
        return None
    low = pc.less(raw, _scalar(_FLOOR[kind], raw.type))
    if not low.true_count:  # nulls are not counted
        return None
    low = pc.fill_null(low, False)
    markers = _INFINITY[kind]
    positive = pc.is_in(raw, pa.array([k for k, v in markers.items() if v == "infinity"], raw.type))
    reason = pc.if_else(
        positive,
        f"column {column!r}: {kind} 'infinity' has no {array.type} value",
        f"column {column!r}: {kind} '-infinity' has no {array.type} value",
    )
    return Flag(column, low, reason)


def _scalar(value: int, type_: pa.DataType) -> pa.Scalar:
    """An integer scalar built from its bytes: a scalar built from a Python value makes
    pyarrow import pandas (0.3-0.5 s, the fixed cost of a small incremental read)."""
    width = type_.bit_width // 8
    data = pa.py_buffer(value.to_bytes(width, "little", signed=True))
    return pa.Array.from_buffers(type_, 1, [None, data])[0]


def fallback_column(name: str, field: pa.Field) -> PgColumn | None:
    """A column known only from the driver's result (the description was not available)."""
    meta: dict[Any, Any] = field.metadata or {}
    typname = meta.get(b"ADBC:postgresql:typname", meta.get(b"POSTGRESQL:type"))
    if typname is not None:
        return PgColumn(name, typname.decode(), -1, None, "b")
    if pa.types.is_list(field.type) and isinstance(field.type.value_type, pa.BaseExtensionType):
        vt = field.type.value_type
        return PgColumn(
            name, "_" + str(getattr(vt, "type_name", "")), -1, getattr(vt, "type_name", None), "b"
        )
    return None
