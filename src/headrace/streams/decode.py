"""Decoding a micro-batch's payloads into rows: JSON, Avro (with a schema), raw bytes.

An event that does not decode is never dropped and never stops the stream: it goes to
the quarantine rows with its partition, position, payload and the reason.
"""

from __future__ import annotations

import io
import json
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

    def decode(self, events: pa.Table, keep: pa.Array | None) -> tuple[pa.Table, pa.Table]:
        """``(rows, quarantined)`` of the events where ``keep`` is true.

        Rows carry ``_hr_partition`` and ``_hr_position``; quarantined events carry
        those, the payload and ``_hr_reason``.
        """
        if keep is not None:
            events = events.filter(keep)
        if self.format == "raw":
            return _raw(events)
        if self.format == "avro":
            return _rows_or_reasons(events, _avro_reader(self.schema), None)
        fast = _json_fast(events, self.schema)
        if fast is not None:
            return fast, QUARANTINE_SCHEMA.empty_table()
        return _rows_or_reasons(events, _json_object, self.schema)


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


def _rows_or_reasons(
    events: pa.Table, read: Any, schema: pa.Schema | None
) -> tuple[pa.Table, pa.Table]:
    """Decode event by event; a failure quarantines that event with the reason."""
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
            if schema is not None:
                pa.Table.from_pylist([row], schema=schema)  # the row fits the declared schema
        except Exception as exc:  # any decoding failure is the event's, not the stream's
            bad_idx.append(i)
            reasons.append(f"cannot decode: {type(exc).__name__}: {exc}"[:500])
            continue
        good.append(row)
        keep.append(i)
    kept = events.take(pa.array(keep, pa.int64()))
    if good:
        rows = pa.Table.from_pylist(good, schema=schema)
    else:
        rows = schema.empty_table() if schema is not None else pa.table({})
    rows = _with_meta(rows, kept)
    bad = events.take(pa.array(bad_idx, pa.int64()))
    bad = bad.append_column(REASON, pa.array(reasons, pa.string()))
    return rows, bad.cast(QUARANTINE_SCHEMA)
