"""Decoding a micro-batch's payloads into rows: JSON, Avro (with a schema), raw bytes.

An event that does not decode is never dropped and never stops the stream: it goes to
the quarantine rows with its partition, position, payload and the reason.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from headrace.errors import DefinitionError
from headrace.extras import require
from headrace.streams.stream_base import PARTITION, PAYLOAD, POSITION

REASON = "_hr_reason"

QUARANTINE_SCHEMA = pa.schema(
    [pa.field(PARTITION, pa.string()), pa.field(POSITION, pa.string()),
     pa.field(PAYLOAD, pa.binary()), pa.field(REASON, pa.string())]
)  # fmt: skip


@dataclass(frozen=True)
class Decoder:
    """How payloads become rows.

    Args:
        format: ``"json"`` (one object per event), ``"avro"`` (schemaless binary
            records of ``schema``) or ``"raw"`` (the bytes, in column ``payload``).
        schema: for Avro the writer's schema (a dict); for JSON an optional
            ``pa.Schema`` the rows must fit (a row that does not is quarantined).
    """

    format: str = "json"
    schema: Any = None

    def __post_init__(self) -> None:
        if self.format not in ("json", "avro", "raw"):
            raise DefinitionError(f"stream decode={self.format!r}: use 'json', 'avro' or 'raw'")
        if self.format == "avro" and not isinstance(self.schema, dict):
            raise DefinitionError("stream decode='avro' needs schema={...} (the Avro schema)")

    def decode(
        self,
        events: pa.Table,
        keep: pa.Array | None,
        table_schema: Callable[[], pa.Schema | None] | None = None,
    ) -> tuple[pa.Table, pa.Table]:
        """``(rows, quarantined)`` of the events where ``keep`` is true.

        Rows carry ``_hr_partition`` and ``_hr_position``; quarantined events carry
        those, the payload and ``_hr_reason``.

        Args:
            events: the batch (partition, position, payload).
            keep: which events to decode (None: all).
            table_schema: the destination table's Arrow schema (None when it does not
                exist yet): its columns' types are the contract the events must fit. A
                fast-path batch whose types the table cannot hold, and a batch that fails
                the fast path, are decoded event by event against it.
        """
        if keep is not None:
            events = events.filter(keep)
        if self.format == "raw":
            return _raw(events)
        if self.format == "avro":
            return _rows_or_reasons(events, _avro_reader(self.schema))
        fast = _json_fast(events, self.schema)
        if fast is not None and (table_schema is None or fits_table(fast, table_schema())):
            return fast, QUARANTINE_SCHEMA.empty_table()
        return _json_rows(events, self.schema, table_schema)


def _raw(events: pa.Table) -> tuple[pa.Table, pa.Table]:
    payload = events.column(PAYLOAD)
    missing = payload.is_null()
    good = events.filter(pa.compute.invert(missing))
    rows = pa.table({"payload": good.column(PAYLOAD), PARTITION: good.column(PARTITION),
                     POSITION: good.column(POSITION)})  # fmt: skip
    bad = events.filter(missing)
    reasons = pa.array(["event has no payload"] * bad.num_rows, pa.string())
    return rows, bad.append_column(REASON, reasons).cast(QUARANTINE_SCHEMA)


def _json_fast(events: pa.Table, schema: pa.Schema | None) -> pa.Table | None:
    """All payloads as newline-delimited JSON in one Arrow parse; None when any event
    is not a one-line JSON object (then each event is decoded on its own).

    No payload becomes a Python object: the check is one regex over the column, the
    NDJSON text is the column's own value buffer after appending a newline to each
    value, and the parse is single-threaded (a stream batch is small; on a busy
    machine the reader's thread pool cost more than it saved).
    """
    payloads = events.column(PAYLOAD).combine_chunks()
    if events.num_rows == 0 or payloads.null_count:
        return None
    # every payload one line that opens an object: then each is one NDJSON row, or
    # the parse fails or the row count differs (two objects on one line)
    if not pc.all(pc.match_substring_regex(payloads, _ONE_LINE_OBJECT)).as_py():
        return None
    lines = pc.binary_join_element_wise(payloads, _EMPTY, _NEWLINE)
    bounds = pa.Array.from_buffers(
        pa.int32(), len(lines) + 1, [None, lines.buffers()[1]], offset=lines.offset
    )
    start, end = bounds[0].as_py(), bounds[-1].as_py()
    text = lines.buffers()[2].slice(start, end - start)
    options = pa_json.ParseOptions(explicit_schema=schema) if schema is not None else None
    try:
        rows = pa_json.read_json(pa.BufferReader(text), read_options=_READ, parse_options=options)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    if rows.num_rows != events.num_rows:
        return None
    return _with_meta(rows, events)


_ONE_LINE_OBJECT = r"^[ \t]*\{[^\n\r]*$"
_EMPTY, _NEWLINE = pa.scalar(b"", pa.binary()), pa.scalar(b"\n", pa.binary())
_READ = pa_json.ReadOptions(use_threads=False)


def fits_table(rows: pa.Table, table: pa.Schema | None) -> bool:
    """Whether every column of ``rows`` goes into the table's column of that name
    without a value changing type: the same kind of type (any timestamp unit; a struct
    or list's fields are the destination's to check), or a number into a wider number."""
    if table is None:
        return True
    return all(
        _goes_into(field.type, table.field(field.name).type)
        for field in rows.schema
        if field.name in table.names
    )


def _goes_into(got: pa.DataType, want: pa.DataType) -> bool:
    types = pa.types
    if got == want or types.is_null(got):
        return True
    if types.is_integer(got) and types.is_integer(want):
        return bool(want.bit_width >= got.bit_width)
    if types.is_integer(got) or types.is_floating(got):
        return bool(types.is_floating(want) or types.is_decimal(want))
    return any(
        same(got) and same(want)
        for same in (types.is_timestamp, types.is_string, types.is_large_string,
                     types.is_struct, types.is_list, types.is_large_list)
    )  # fmt: skip


def _with_meta(rows: pa.Table, events: pa.Table) -> pa.Table:
    for name in (PARTITION, POSITION):
        if name in rows.column_names:
            rows = rows.drop_columns([name])
        rows = rows.append_column(name, events.column(name))
    return rows


def _json_object(payload: bytes) -> dict[str, Any]:
    value = json.loads(payload)
    if not isinstance(value, dict):
        raise ValueError(f"JSON {type(value).__name__}, not an object")
    return value


def _avro_reader(schema: dict[str, Any]) -> Any:
    fastavro = require("avro", "fastavro", "Avro stream events")
    parsed = fastavro.parse_schema(schema)

    def read(payload: bytes) -> dict[str, Any]:
        buffer = io.BytesIO(payload)
        record = fastavro.schemaless_reader(buffer, parsed, None)
        if buffer.tell() != len(payload):
            raise ValueError(f"{len(payload) - buffer.tell()} bytes left after the Avro record")
        return record

    return read


def _rows_or_reasons(events: pa.Table, read: Any) -> tuple[pa.Table, pa.Table]:
    """Decode event by event (Avro: every record fits the writer's schema); a failure
    quarantines that event with the reason."""
    good: list[dict[str, Any]] = []
    keep: list[int] = []
    bad_idx: list[int] = []
    reasons: list[str] = []
    for i, payload in enumerate(events.column(PAYLOAD).to_pylist()):
        if payload is None:
            bad_idx.append(i)
            reasons.append("event has no payload")
            continue
        try:
            row = read(payload)
        except Exception as exc:  # any decoding failure is the event's, not the stream's
            bad_idx.append(i)
            reasons.append(f"cannot decode: {type(exc).__name__}: {exc}"[:500])
            continue
        good.append(row)
        keep.append(i)
    rows = pa.Table.from_pylist(good) if good else pa.table({})
    return _with_meta(rows, events.take(pa.array(keep, pa.int64()))), _quarantine(
        events, bad_idx, reasons
    )


def _quarantine(events: pa.Table, idx: list[int], reasons: list[str]) -> pa.Table:
    bad = events.take(pa.array(idx, pa.int64()))
    return bad.append_column(REASON, pa.array(reasons, pa.string())).cast(QUARANTINE_SCHEMA)


def _json_rows(
    events: pa.Table,
    declared: pa.Schema | None,
    table_schema: Callable[[], pa.Schema | None] | None,
) -> tuple[pa.Table, pa.Table]:
    """The slow path of a JSON batch: event by event, each column's values checked
    against the column's type; an event that does not decode or whose value does not
    fit is quarantined with the reason (``column 'a': expected int64, got string 'x'``).

    The column's type is, in order: the declared ``schema``, the destination table's
    column (the table is the contract), or the type most of the batch's values have
    (ties: the first seen), as the Arrow JSON reader infers it (the type the fast path
    would have given a clean batch). No value is coerced to another type: the rows are
    read by the same Arrow JSON reader with those types as its explicit schema.
    """
    reasons: dict[int, str] = {}
    objects: dict[int, dict[str, Any]] = {}
    for i, payload in enumerate(events.column(PAYLOAD).to_pylist()):
        if payload is None:
            reasons[i] = "event has no payload"
            continue
        try:
            objects[i] = _json_object(payload)
        except Exception as exc:  # any decoding failure is the event's, not the stream's
            reasons[i] = f"cannot decode: {type(exc).__name__}: {exc}"[:500]
    expected: dict[str, pa.DataType] = {}
    if declared is not None:
        expected.update((f.name, f.type) for f in declared)
    names = list(dict.fromkeys(k for obj in objects.values() for k in obj))
    table: pa.Schema | None = None
    if table_schema is not None and any(n not in expected for n in names):
        table = table_schema()
    checked: set[str] = set()
    for name in names:
        if name in expected:
            continue
        if table is not None and name in table.names:
            expected[name] = table.field(name).type
            continue
        values = [(i, obj[name]) for i, obj in objects.items() if obj.get(name) is not None]
        if not values:
            continue
        kinds = [_kind(v) for _, v in values]
        top = max(set(kinds), key=lambda k: (kinds.count(k), -kinds.index(k)))
        same = [v for (_, v), k in zip(values, kinds, strict=True) if k == top]
        texts = [b'{"v":' + json.dumps(v).encode() + b"}" for v in same]
        try:  # the type the Arrow JSON reader gives those values: they all fit it
            expected[name] = _read_lines(texts, None).schema.field("v").type
            checked.add(name)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # nested values of two shapes
            expected[name] = _read_lines(texts[:1], None).schema.field("v").type
            continue
        for (i, value), kind in zip(values, kinds, strict=True):
            if kind != top:
                objects.pop(i)
                reasons[i] = _misfit(name, expected[name], value)
    for name, type_ in expected.items():
        if name in checked:
            continue
        values = [(i, obj[name]) for i, obj in objects.items() if obj.get(name) is not None]
        for i in _misfits(values, type_):
            reasons[i] = _misfit(name, type_, objects.pop(i)[name])
    schema = pa.schema([pa.field(n, t) for n, t in expected.items()])
    lines = {i: json.dumps(obj).encode() for i, obj in objects.items()}
    for i, error in _unreadable(list(lines.items()), schema):  # a safety net: none expected
        del lines[i]
        reasons[i] = f"cannot decode: {error}"[:500]
    keep = list(lines)
    rows = _read_lines(list(lines.values()), schema) if keep else schema.empty_table()
    rows = _with_meta(rows, events.take(pa.array(keep, pa.int64())))
    bad = sorted(reasons)
    return rows, _quarantine(events, bad, [reasons[i] for i in bad])


def _read_lines(lines: list[bytes], schema: pa.Schema | None) -> pa.Table:
    """The lines read by the Arrow JSON reader with ``schema``; a date column (which
    that reader does not take from a string) is read as text, then cast: an ISO date."""
    dates = [f.name for f in schema or () if pa.types.is_date(f.type)]
    read = schema
    if schema is not None and dates:
        read = pa.schema([f.with_type(pa.string()) if f.name in dates else f for f in schema])
    options = pa_json.ParseOptions(explicit_schema=read) if read else None
    text = pa.BufferReader(b"\n".join(lines) + b"\n")
    rows = pa_json.read_json(text, read_options=_READ, parse_options=options)
    for name in dates:
        i = rows.schema.get_field_index(name)
        rows = rows.set_column(i, name, pc.cast(rows.column(i), schema.field(name).type))  # type: ignore[union-attr]
    return rows


def _unreadable(
    lines: list[tuple[int, bytes]], schema: pa.Schema | None
) -> list[tuple[int, Exception]]:
    """The lines the Arrow JSON reader rejects with ``schema``: one read when all are
    fine, halving the lines otherwise (a few reads per bad line)."""
    if not lines:
        return []
    try:
        _read_lines([line for _, line in lines], schema)
        return []
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        if len(lines) == 1:
            return [(lines[0][0], exc)]
    half = len(lines) // 2
    return _unreadable(lines[:half], schema) + _unreadable(lines[half:], schema)


def _misfits(values: list[tuple[int, Any]], type_: pa.DataType) -> list[int]:
    """The events whose value the Arrow JSON reader does not read as ``type_`` (it
    converts nothing: a string is no number, 1.5 no int64, true no double)."""
    schema = pa.schema([pa.field("v", type_)])
    lines = [(i, b'{"v":' + json.dumps(v).encode() + b"}") for i, v in values]
    return [i for i, _ in _unreadable(lines, schema)]


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "object" if isinstance(value, dict) else "array"


def _describe(value: Any) -> str:
    kind = _kind(value)
    if kind == "number":
        kind = "integer" if isinstance(value, int) else "float"
    text = repr(value) if kind == "string" else json.dumps(value)
    return f"{kind} {text if len(text) <= 60 else text[:57] + '...'}"


def _misfit(name: str, type_: pa.DataType, value: Any) -> str:
    return f"column {name!r}: expected {type_}, got {_describe(value)}"[:500]
