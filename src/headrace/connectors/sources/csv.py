"""CSV reading that accounts for every line: loaded, quarantined with a reason, header or blank.

The rules, for every file:

* **Accounting.** Lines in = header + loaded + quarantined + blank + continuation lines
  (the further lines of a loaded record whose quoted value spans lines). The reader
  checks the sum at the end of each file and raises :class:`ConnectorError` if it does
  not hold; the figures are kept as a :class:`FileReport` (``source.reports``, also on
  the extract) and logged. Line numbers are physical lines, 1-based, header included;
  a line ends at ``\\n``, ``\\r\\n`` or ``\\r`` (mixed endings are fine).
* **Bad lines are quarantined one line at a time**, with file, line, reason (naming the
  column when one is at fault) and text: a wrong number of fields, a value that does
  not fit its column's type, a line that is not valid in the file's encoding, a line
  longer than ``max_record_bytes`` (default 8 MiB; only its first
  :data:`~headrace.connectors.sources.malformed.TEXT_LIMIT` characters are kept, memory
  stays bounded whatever its size).
* **Unterminated quotes resynchronise at the next line.** A quoted value may span lines
  (an address, a note). A record that spans lines is instead taken for a runaway quote
  when it has the wrong number of fields, breaks quoting (text after a closing quote),
  is not closed by the end of the file or within ``max_record_bytes``, or when one of
  its continuation lines holds, on its own, a full record's number of fields (files of
  two or more columns). Then only its first line is quarantined ("unterminated quote
  in column ...") and reading resumes at the next line. A legitimate multi-line value
  whose continuation lines look like whole records is therefore quarantined too,
  never loaded wrong.
* **Nulls and NaN.** In non-text columns the texts in ``null_values`` (default
  ``"", NULL, null, NA, N/A, #N/A, None``) are NULL; text columns keep every text as it
  is (an empty field is the empty string). ``NaN`` is not a null marker: in a float
  column it is the float NaN by default (``nan="keep"``), or NULL counted in the report
  and logged (``nan="null"``), or a quarantined line (``nan="quarantine"``); in a column
  of another type it does not fit and its line is quarantined.
* **Encoding.** UTF-8 by default; a UTF-8 byte-order mark is dropped. Other encodings must
  keep ``\\n`` as one byte (latin-1, cp1252, ...); UTF-16/32 files must be transcoded
  first.
* **Types** are inferred by pyarrow from the first block of good lines, with the
  source's overrides on top; a column with no values in that block is text.

How it stays fast: the file is read in 4 MiB pieces cut at line ends, straight into one
buffer. A piece is parsed by pyarrow (every column as text, then cast) and taken as is
after a few O(1) and memchr-speed checks: a sentinel record after the piece proves no
quote was left open, no row is all empty (a blank line), and values are searched for
line ends only when the piece has a quote character at all. Records whose quoted
values do span lines are counted row by row and each one is read again line by line to
confirm it is no runaway quote. Any other piece (a malformed record over several lines,
a blank line, invalid UTF-8, a runaway) is read line by line with Python's ``csv``
module, which knows where each record starts. Measured on 1M rows (``bench/csv_read.py``):
a clean file reads no slower than the reader before these rules; a file with a quoted
multi-line value every 1,000 rows costs about a quarter more.
"""

from __future__ import annotations

import codecs
import csv as pycsv
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from headrace.connectors.sources.csv_layout import (
    LineOf,
    extra_lines,
    has_blank_row,
    layout,
    line_function,
    line_starts,
    lines_from,
    offsets,
)
from headrace.connectors.sources.csv_lines import LineSplitter, SplitResult
from headrace.connectors.sources.csv_values import Casting, typed
from headrace.connectors.sources.malformed import TEXT_LIMIT, FileReport, MalformedRow
from headrace.errors import ConnectorError

if TYPE_CHECKING:
    from headrace.connectors.sources.file_sources import FileSource

BLOCK_BYTES = 1 << 22
DEFAULT_MAX_RECORD_BYTES = 1 << 23
_SENTINELS = ("\x1e\x1f\x1e\x1f", "\x02\x03\x02\x03")  # the first without the delimiter
_BOM = b"\xef\xbb\xbf"
log = logging.getLogger(__name__)

# further lines of each valid record, and the layout worked out from them
_Spans = tuple[pa.Int64Array, tuple[pa.Int64Array, list[int], int]]
_Fast = tuple[pa.Table, list[tuple[int, int, str]], "_Spans | None"]


def open_csv(src: FileSource, file: Path) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    """Schema and batches of one CSV file; bad lines go to ``src.malformed``.

    Args:
        src: the file source (options, type overrides, the malformed and report lists).
        file: the CSV file.

    Returns:
        The file's schema and its batches; the file's :class:`FileReport` is appended
        to ``src.reports`` now and complete once the batches are consumed.
    """
    return CsvReader(src, file).open()


class CsvReader:
    """One CSV file, read piece by piece; see the module docstring for the rules.

    Args:
        src: the file source.
        file: the file.
    """

    def __init__(self, src: FileSource, file: Path) -> None:
        self.src = src
        self.file = file
        self.report = FileReport(str(file))
        self.encoding = codecs.lookup(src.encoding).name
        if "\n".encode(self.encoding) != b"\n":
            raise ConnectorError(
                f"encoding {src.encoding!r} does not write a line end as one byte; "
                "transcode the file to UTF-8 first.",
                path=str(file),
            )
        self.utf8 = self.encoding == "utf-8"
        self.max_record = src.max_record_bytes
        self.block = max(1, min(BLOCK_BYTES, self.max_record // 2))
        self.quote = src.quote_char if isinstance(src.quote_char, str) else None
        self.rules = Casting(src.null_values, src.nan, src.delimiter)
        self.line = 1  # physical line number at which ``pending`` starts
        self.pending = b""
        self.eof = False
        self.names: list[str] = []
        self._ropts: pcsv.ReadOptions | None = None
        self.fh = open(file, "rb")  # noqa: SIM115 - closed when the batches end or fail

    # -- the file ----------------------------------------------------------------------

    def open(self) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
        """Read the header and the first piece (for the types); the rest streams."""
        try:
            self.names = self._header()
            self.as_text = pcsv.ConvertOptions(
                column_types={n: pa.string() for n in self.names}, strings_can_be_null=False
            )
            self.mark = next(m for m in _SENTINELS if self.src.delimiter not in m)
            self.sentinel = (self.src.delimiter.join([self.mark] * len(self.names)) + "\n").encode()
            self.room = len(self.sentinel) + 1
            self.splitter = LineSplitter(
                names=self.names,
                delimiter=self.src.delimiter,
                quote=self.quote,
                encoding=self.encoding,
                max_record=self.max_record,
            )
            piece = self._next_piece()
            first: list[tuple[pa.RecordBatch, LineOf]] = []
            inferred: pa.Schema | None = None
            if piece is not None:
                first, inferred = self._parse(piece, infer=True)
            self.target = self._target(inferred)
        except BaseException:
            self.fh.close()
            raise
        self.src.reports.append(self.report)
        return self.target, self._batches(first)

    def _batches(self, first: list[tuple[pa.RecordBatch, LineOf]]) -> Iterator[pa.RecordBatch]:
        try:
            yield from self._typed(first)
            while (piece := self._next_piece()) is not None:
                parsed, _ = self._parse(piece)
                yield from self._typed(parsed)
        finally:
            self.fh.close()
        self._check()

    def _check(self) -> None:
        """Lines in = accounted, or a loud error; the report goes to the log either way."""
        report = self.report
        if report.lines != report.accounted:
            raise ConnectorError(
                f"{report.lines} lines read but {report.accounted} accounted for "
                f"({report}); this is a bug in the CSV reader: please report it with the file.",
                path=str(self.file),
            )
        log.info("%s", report)
        if report.quarantined:
            first = next(m for m in self.src.malformed if m.file == report.file)
            log.warning("%s: %d lines quarantined, first %s", self.file, report.quarantined, first)
        if report.nan_to_null:
            log.warning(
                "%s: %d NaN values loaded as NULL (nan='null')", self.file, report.nan_to_null
            )

    def _target(self, inferred: pa.Schema | None) -> pa.Schema:
        """The file's schema: inferred types (null -> text), the source's overrides on top."""
        fields = []
        for i, name in enumerate(self.names):
            kind = pa.string() if inferred is None else inferred.field(i).type
            if pa.types.is_null(kind):
                kind = pa.string()
            fields.append(pa.field(name, self.src.types.get(name, kind)))
        return pa.schema(fields)

    def _typed(self, parsed: list[tuple[pa.RecordBatch, LineOf]]) -> Iterator[pa.RecordBatch]:
        for batch, line_of in parsed:
            good, rejected = typed(batch, self.target, self.rules)
            for r in rejected:
                self._reject(line_of(r.index), r.reason, r.text)
            self.report.loaded += good.num_rows
            self.report.nan_to_null = self.rules.nan_to_null
            if good.num_rows:
                yield good

    def _reject(self, line: int, reason: str, text: str) -> None:
        self.src.malformed.append(MalformedRow(str(self.file), line, reason, text[:TEXT_LIMIT]))
        self.report.quarantined += 1

    # -- header and pieces -------------------------------------------------------------

    def _header(self) -> list[str]:
        """Column names (from the header line or the options); the header is consumed."""
        self._fill()
        if self.pending.startswith(_BOM) and self.utf8:
            self.pending = self.pending[len(_BOM) :]
        if not self.src.header and self.src.column_names:
            return self._valid_names(list(self.src.column_names), given=True)
        end = self._line_end(self.pending, 0)
        while end < 0 and not self.eof and len(self.pending) <= self.max_record:
            self._fill()
            end = self._line_end(self.pending, 0)
        if end < 0 and not self.eof:
            raise ConnectorError(
                f"{self.file}:1: the first line is longer than max_record_bytes="
                f"{self.max_record}; is this a CSV file?"
            )
        end = len(self.pending) if end < 0 else end
        raw = self.pending[:end]
        if not raw.strip(b"\r\n"):
            raise ConnectorError(f"{self.file}:1: the first line is empty; expected a header.")
        try:
            text = raw.decode(self.encoding).rstrip("\r\n")
        except UnicodeDecodeError as exc:
            raise ConnectorError(
                f"{self.file}:1: the first line is not valid {self.encoding} "
                f"(byte {exc.start + 1}); pass encoding=."
            ) from exc
        fields = next(pycsv.reader([text], **_dialect(self.src.delimiter, self.quote)))
        if not self.src.header:
            return [f"f{i}" for i in range(len(fields))]
        self.report.header = 1
        self.report.lines = 1
        self.line = 2
        self.pending = self.pending[end:]
        if self.src.column_names:
            return self._valid_names(list(self.src.column_names), given=True)
        return self._valid_names(fields, given=False)

    def _valid_names(self, names: list[str], *, given: bool) -> list[str]:
        where = "column_names" if given else f"{self.file}:1"
        for i, name in enumerate(names):
            if not name.strip():
                raise ConnectorError(
                    f"{where}: column {i + 1} has an empty name; pass column_names= to name "
                    "every column."
                )
            if name in names[:i]:
                raise ConnectorError(
                    f"{where}: column name {name!r} appears twice (columns "
                    f"{names.index(name) + 1} and {i + 1}); pass column_names= to tell them "
                    "apart."
                )
        return names

    def _fill(self) -> None:
        block = self.fh.read(self.block)
        if block:
            self.pending += block
        else:
            self.eof = True

    def _line_end(self, data: bytes, start: int) -> int:
        """Index just past the first line end at or after ``start``; -1 if none is sure."""
        n = data.find(b"\n", start)
        r = data.find(b"\r", start, n if n >= 0 else len(data))
        if r < 0:
            return n + 1 if n >= 0 else -1
        if r + 1 < len(data):
            return r + 2 if data[r + 1 : r + 2] == b"\n" else r + 1
        return r + 1 if self.eof else -1  # a "\r" last: the "\n" may follow in the next block

    def _next_piece(self) -> _Piece | None:
        """The next run of whole lines, read straight into a buffer with room for the sentinel."""
        while True:
            if self.eof:
                piece, self.pending = self._drop_long_first_line(self.pending), b""
                return _Piece.of(piece, self.room, final=True) if piece else None
            head = self.pending
            buf = bytearray(len(head) + self.block + self.room)
            buf[: len(head)] = head
            read = self.fh.readinto(memoryview(buf)[len(head) : len(head) + self.block])
            if not read:
                self.eof = True
                continue
            end = len(head) + read
            cut = max(buf.rfind(b"\n", 0, end), buf.rfind(b"\r", 0, end - 1)) + 1
            if cut == 0:  # no line end yet: a long line
                self.pending = bytes(buf[:end])
                if len(self.pending) > self.max_record:
                    self._skip_long_line()
                continue
            self.pending = bytes(buf[cut:end])
            if cut <= self.max_record:
                return _Piece(buf, cut, final=False)
            piece = self._drop_long_first_line(bytes(buf[:cut]))
            if piece:
                return _Piece.of(piece, self.room, final=False)

    def _drop_long_first_line(self, piece: bytes) -> bytes:
        """Quarantine the piece's first line when it is over max_record_bytes.

        Only the first line can be: every other line lies inside one block, which is at
        most half of max_record_bytes.
        """
        if len(piece) <= self.max_record:
            return piece
        end = self._line_end(piece, 0)
        end = len(piece) if end < 0 else end
        if end <= self.max_record:
            return piece
        self._long_line(piece[:TEXT_LIMIT], end - _ending(piece, end))
        return piece[end:]

    def _skip_long_line(self) -> None:
        """The pending line has no end within max_record_bytes: skip it, keep its head."""
        head, size = self.pending[:TEXT_LIMIT], len(self.pending)
        self.pending = b""
        while True:
            block = self.fh.read(self.block)
            if not block:
                self.eof = True
                break
            end = self._line_end(block, 0)
            if end >= 0:
                size += end - _ending(block, end)
                self.pending = block[end:]
                break
            size += len(block)
        self._long_line(head, size)

    def _long_line(self, head: bytes, size: int) -> None:
        self._reject(
            self.line,
            f"the line is {size} bytes, over max_record_bytes={self.max_record}; raise "
            "max_record_bytes to read it",
            head.decode(self.encoding, "backslashreplace"),
        )
        self.report.lines += 1
        self.line += 1

    # -- parsing -----------------------------------------------------------------------

    def _parse(
        self, piece: _Piece, *, infer: bool = False
    ) -> tuple[list[tuple[pa.RecordBatch, LineOf]], pa.Schema | None]:
        """Text batches of a piece with a line-number function each (and inferred types)."""
        fast = self._fast(piece)
        if fast is not None:
            inferred = self._infer(memoryview(piece.buf)[: piece.size]) if infer else None
            return self._from_fast(*fast), inferred
        split = self.splitter.split(bytes(piece.buf[: piece.size]), self.line, piece.final)
        if split.carry:  # an open quote at the end of the piece: read on, from its record
            self.pending = split.carry + self.pending
        for line, reason, text in split.rejected:
            self._reject(line, reason, text)
        self.report.lines += split.lines
        self.report.blank += split.blank
        self.report.continued += split.continued
        self.line += split.lines
        if not split.rows:
            return [], None
        batch = self._slow_batch(split)
        inferred = self._infer_rows(split) if infer else None
        lines = split.row_lines
        return [(batch, lambda i: lines[i])], inferred

    def _fast(self, piece: _Piece) -> _Fast | None:
        """Parse with pyarrow; None when the piece needs the careful path.

        That is when a quote is left open at its end, a malformed record spans lines, a
        line is blank, or a record spanning lines does not read the same line by line.
        """
        buf, size = piece.buf, piece.size
        if not self.utf8:
            try:
                text = bytes(buf[:size]).decode(self.encoding).encode()
            except UnicodeDecodeError:
                return None
            buf, size = bytearray(text + bytes(self.room)), len(text)
        if buf[size - 1] not in b"\r\n":  # the file's last line has no line end
            buf[size] = ord("\n")
            size += 1
        buf[size : size + len(self.sentinel)] = self.sentinel
        data = pa.py_buffer(memoryview(buf)[: size + len(self.sentinel)])
        invalid: list[tuple[int, int, str]] = []

        def on_invalid(row: pcsv.InvalidRow) -> str:
            invalid.append((row.number, row.actual_columns, row.text))
            return "skip"

        try:
            with _quiet_about(on_invalid):
                table = pcsv.read_csv(
                    pa.BufferReader(data),
                    read_options=self._read_options(data.size),
                    parse_options=self._parse_options(on_invalid),
                    convert_options=self.as_text,
                )
        except pa.ArrowInvalid:
            return None
        n = table.num_rows
        if n == 0 or table.column(0)[n - 1].as_py() != self.mark:
            return None  # a quote left open swallowed the sentinel
        table = table.slice(0, n - 1)
        if any("\n" in text or "\r" in text for _, _, text in invalid):
            return None
        if has_blank_row(table):
            return None
        quoted = self.quote is not None and piece.buf.find(self.quote.encode(), 0, piece.size) >= 0
        extra = extra_lines(table) if quoted else None
        if extra is None:
            return table, invalid, None
        lay = layout(self.line, table.num_rows, invalid, extra)
        if not self._multiline_ok(piece, extra, lay[0]):
            return None
        return table, invalid, (extra, lay)

    def _multiline_ok(
        self, piece: _Piece, extra: pa.Int64Array, valid_lines: pa.Int64Array
    ) -> bool:
        """Whether every record that spans lines reads the same line by line (no runaway)."""
        starts = line_starts(piece.buf, piece.size)
        spanning = pc.indices_nonzero(extra)
        firsts = pc.take(valid_lines, spanning).to_pylist()
        spans = pc.take(extra, spanning).to_pylist()
        for line, further in zip(firsts, spans, strict=True):
            first = line - self.line
            span = further + 1
            bounds = starts.slice(first, span + 1).to_pylist()
            lines = [bytes(piece.buf[bounds[k] : bounds[k + 1]]) for k in range(span)]
            if not self.splitter.confirms(lines, 0, span):
                return False
        return True

    def _from_fast(
        self, table: pa.Table, invalid: list[tuple[int, int, str]], spans: _Spans | None
    ) -> list[tuple[pa.RecordBatch, LineOf]]:
        """Book a fast piece: invalid records quarantined, every line accounted."""
        first = self.line
        expected = len(self.names)
        if spans is None:  # every record one line: numbers are lines, worked out on demand
            for number, found, text in invalid:
                self._reject(first + number - 1, f"expected {expected} fields, found {found}", text)
            skipped = sorted(number for number, _, _ in invalid)
            lines = table.num_rows + len(invalid)
            line_functions = [line_function(first, offset, skipped) for offset in offsets(table)]
        else:
            extra, (valid_lines, invalid_lines, lines) = spans
            for (_, found, text), line in zip(invalid, invalid_lines, strict=True):
                self._reject(line, f"expected {expected} fields, found {found}", text)
            self.report.continued += pc.sum(extra).as_py() or 0
            line_functions = [lines_from(valid_lines, offset) for offset in offsets(table)]
        self.report.lines += lines
        self.line += lines
        return list(zip(table.to_batches(), line_functions, strict=True))

    def _slow_batch(self, split: SplitResult) -> pa.RecordBatch:
        columns = list(zip(*split.rows, strict=True))
        return pa.RecordBatch.from_arrays(
            [pa.array(list(c), pa.string()) for c in columns],
            schema=pa.schema([pa.field(n, pa.string()) for n in self.names]),
        )

    def _read_options(self, size: int) -> pcsv.ReadOptions:
        if self._ropts is None:
            self._ropts = pcsv.ReadOptions(column_names=self.names, use_threads=False)
        self._ropts.block_size = size + 64  # the whole piece in one block
        return self._ropts

    def _parse_options(self, handler: Callable[[pcsv.InvalidRow], str]) -> pcsv.ParseOptions:
        return pcsv.ParseOptions(
            delimiter=self.src.delimiter,
            quote_char=self.quote or False,
            newlines_in_values=True,
            ignore_empty_lines=False,
            invalid_row_handler=handler,
        )

    def _infer(self, piece: memoryview | bytes) -> pa.Schema | None:
        """pyarrow's inference over a piece of good lines."""
        try:
            data = pa.py_buffer(piece if self.utf8 else bytes(piece).decode(self.encoding).encode())
            return pcsv.read_csv(
                pa.BufferReader(data),
                read_options=self._read_options(data.size),
                parse_options=self._parse_options(lambda _: "skip"),
            ).schema
        except (pa.ArrowInvalid, UnicodeDecodeError):
            return None

    def _infer_rows(self, split: SplitResult) -> pa.Schema | None:
        """Inference over the rows the line reader kept, written back as clean CSV."""
        import io

        out = io.StringIO()
        writer = pycsv.writer(out, **_dialect(self.src.delimiter, self.quote or '"'))
        writer.writerows(split.rows)
        return self._infer(out.getvalue().encode(self.encoding))


@contextmanager
def _quiet_about(handler: Callable[[pcsv.InvalidRow], str]) -> Iterator[None]:
    """Silence pyarrow's "Exception ignored" print when it cannot decode a bad row for
    ``handler`` (a malformed row that is not UTF-8): the parse then fails, and the piece
    is read line by line, which quarantines that line with its reason. Any other
    unraisable exception goes to the hook that was there.
    """
    previous = sys.unraisablehook

    def hook(unraisable: Any) -> None:
        if unraisable.object is handler and isinstance(unraisable.exc_value, UnicodeDecodeError):
            return
        previous(unraisable)

    sys.unraisablehook = hook
    try:
        yield
    finally:
        sys.unraisablehook = previous


@dataclass
class _Piece:
    """Whole lines of a file in ``buf[:size]``, with room after them for the sentinel.

    Args:
        buf: the buffer (read into directly: no copy on the clean path).
        size: bytes of lines in it.
        final: whether the lines end the file.
    """

    buf: bytearray
    size: int
    final: bool

    @classmethod
    def of(cls, lines: bytes, room: int, *, final: bool) -> _Piece:
        """A piece copied from ``lines``."""
        return cls(bytearray(lines) + bytearray(room), len(lines), final)


def _ending(data: bytes, end: int) -> int:
    """Length of the line end just before ``end`` (0, 1 or 2 bytes)."""
    if data[end - 2 : end] == b"\r\n":
        return 2
    return 1 if end and data[end - 1 : end] in (b"\n", b"\r") else 0


def _dialect(delimiter: str, quote: str | None) -> dict:
    if quote is None:
        return {"delimiter": delimiter, "quoting": pycsv.QUOTE_NONE}
    return {"delimiter": delimiter, "quotechar": quote, "doublequote": True}
