"""NDJSON reading where a broken line is quarantined alone and every line is accounted for.

One JSON object per line. The file is read in 4 MiB pieces of whole lines; pyarrow
parses a piece at once (the types are those of the first piece, with the source's
overrides). A piece pyarrow refuses, or whose lines are not all records, is read line by
line: a line that is not JSON, not an object, or whose fields do not fit the file's
types (a field that changes type, a field the first lines did not have) is quarantined
with its line number and reason; the others are loaded. Lines in = loaded + quarantined
+ blank, checked at the end of each file (a mismatch is a loud error) and kept as a
:class:`FileReport`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.json as pj

from headrace.connectors.sources.malformed import TEXT_LIMIT, FileReport, MalformedRow
from headrace.errors import ConnectorError

if TYPE_CHECKING:
    from headrace.connectors.sources.file_sources import FileSource

BLOCK_BYTES = 1 << 22
log = logging.getLogger(__name__)


def open_ndjson(src: FileSource, file: Path) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    """Schema and batches of one NDJSON file; broken lines go to ``src.malformed``.

    Args:
        src: the file source (type overrides, the malformed and report lists).
        file: the NDJSON file.
    """
    return NdjsonReader(src, file).open()


class NdjsonReader:
    """One NDJSON file, piece by piece.

    Args:
        src: the file source.
        file: the file.
    """

    def __init__(self, src: FileSource, file: Path) -> None:
        self.src = src
        self.file = file
        self.report = FileReport(str(file))
        self.line = 1
        self.schema: pa.Schema | None = None
        self.fh = open(file, "rb")  # noqa: SIM115 - closed when the batches end or fail
        self.tail = b""

    def open(self) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
        """Read the first piece (for the types); the rest streams."""
        try:
            piece = self._next_piece()
            first = self._parse(*piece) if piece is not None else []
        except BaseException:
            self.fh.close()
            raise
        if self.schema is None:
            if not self.src.types:
                self.fh.close()
                raise ConnectorError(
                    f"no JSON object in the file ({self.report}); nothing to "
                    "take its columns from (pass types= to read it as empty).",
                    path=str(self.file),
                )
            self.schema = pa.schema([pa.field(n, t) for n, t in self.src.types.items()])
        self.src.reports.append(self.report)
        return self.schema, self._batches(first)

    def _batches(self, first: list[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        try:
            yield from self._count(first)
            while (piece := self._next_piece()) is not None:
                yield from self._count(self._parse(*piece))
        finally:
            self.fh.close()
        report = self.report
        if report.lines != report.accounted:
            raise ConnectorError(
                f"{report.lines} lines read but {report.accounted} accounted for "
                f"({report}); this is a bug in the NDJSON reader: please report it.",
                path=str(self.file),
            )
        log.info("%s", report)

    def _count(self, batches: list[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            self.report.loaded += batch.num_rows
            if batch.num_rows:
                yield batch

    def _next_piece(self) -> tuple[memoryview, bool] | None:
        """Whole lines, read straight into one buffer (no copy of the block)."""
        while True:
            head = self.tail
            buf = bytearray(len(head) + BLOCK_BYTES)
            buf[: len(head)] = head
            read = self.fh.readinto(memoryview(buf)[len(head) :])
            if not read:
                self.tail = b""
                return (memoryview(bytearray(head)), True) if head else None
            end = len(head) + read
            cut = buf.rfind(b"\n", 0, end) + 1
            if cut:
                self.tail = bytes(buf[cut:end])
                return memoryview(buf)[:cut], False
            self.tail = bytes(buf[:end])

    def _parse(self, piece: memoryview, final: bool) -> list[pa.RecordBatch]:
        """Batches of a piece; its lines booked."""
        size = len(piece)
        buf = piece.obj
        assert isinstance(buf, bytearray)
        lines = buf.count(b"\n", 0, size) + (0 if buf[size - 1] == ord("\n") else 1)
        table = self._read(pa.py_buffer(piece))
        if table is not None and table.num_rows == lines:
            self.report.lines += lines
            self.line += lines
            return table.to_batches()
        return self._careful(bytes(buf[:size]))

    def _read(self, data: pa.Buffer | bytes) -> pa.Table | None:
        """pyarrow's parse of whole lines, in the file's types; None if it refuses them."""
        if self.schema is None:
            explicit = pa.schema(list(self.src.types.items())) if self.src.types else None
            behaviour = "infer"
        else:
            explicit, behaviour = self.schema, "error"
        try:
            table = pj.read_json(
                pa.BufferReader(data),
                read_options=pj.ReadOptions(block_size=len(data) + 64, use_threads=False),
                parse_options=pj.ParseOptions(
                    explicit_schema=explicit, unexpected_field_behavior=behaviour
                ),
            )
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return None
        if self.schema is None and table.num_rows:
            self.schema = table.schema
        return table

    def _careful(self, piece: bytes) -> list[pa.RecordBatch]:
        """A piece line by line: broken lines quarantined, the others parsed together."""
        good: list[tuple[int, bytes]] = []
        lines = piece.split(b"\n")
        if piece.endswith(b"\n"):
            lines.pop()  # split leaves an empty string after the last line end
        for raw in lines:
            number = self.line
            self.line += 1
            self.report.lines += 1
            text = raw.strip()
            if not text:
                self.report.blank += 1
                continue
            why = _broken(text)
            if why is not None:
                self._reject(number, why, raw)
            else:
                good.append((number, text))
        return self._fitting(good)

    def _fitting(self, good: list[tuple[int, bytes]]) -> list[pa.RecordBatch]:
        """Parse valid JSON lines; a line whose fields do not fit the types is quarantined."""
        if not good:
            return []
        table = self._read(b"\n".join(text for _, text in good) + b"\n")
        if table is not None and table.num_rows == len(good):
            return table.to_batches()
        if len(good) == 1:
            number, text = good[0]
            self._reject(number, self._misfit(text), text)
            return []
        half = len(good) // 2
        return self._fitting(good[:half]) + self._fitting(good[half:])

    def _misfit(self, text: bytes) -> str:
        """Why one valid JSON line does not fit the file's types, naming the field."""
        assert self.schema is not None
        record = json.loads(text)
        unknown = [key for key in record if key not in self.schema.names]
        if unknown:
            return (
                f"field {unknown[0]!r} is not among the file's fields "
                f"({', '.join(self.schema.names)}), taken from its first lines"
            )
        for field in self.schema:
            value = record.get(field.name)
            try:
                pa.array([value], field.type)
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError):
                return f"field {field.name!r}: {value!r} is not {field.type}"
        return f"does not fit the file's types ({', '.join(_types(self.schema))})"

    def _reject(self, line: int, reason: str, raw: bytes) -> None:
        text = raw.decode("utf8", "backslashreplace").rstrip("\r\n")[:TEXT_LIMIT]
        self.src.malformed.append(MalformedRow(str(self.file), line, reason, text))
        self.report.quarantined += 1


def _broken(text: bytes) -> str | None:
    """Why a line is not a JSON object, or None."""
    try:
        record = json.loads(text)
    except UnicodeDecodeError as exc:
        return f"not valid utf-8: byte {exc.start + 1} of the line"
    except json.JSONDecodeError as exc:
        return f"not valid JSON: {exc.msg} (column {exc.colno})"
    if not isinstance(record, dict):
        return f"a JSON object is expected, found {type(record).__name__}"
    return None


def _types(schema: pa.Schema) -> list[str]:
    return [f"{f.name}: {f.type}" for f in schema]
