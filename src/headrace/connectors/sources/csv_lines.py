"""The careful CSV path: a piece read line by line, each record's first line known.

Used for the pieces the fast path cannot vouch for (see :mod:`.csv`). Each record is
gathered line by line while a quote is open, then split by Python's ``csv`` module in
strict mode. A record that spans lines and is broken is taken for a runaway quote: only
its first line is rejected and reading resumes at the next line.
"""

from __future__ import annotations

import csv as pycsv
from dataclasses import dataclass, field


@dataclass
class SplitResult:
    """What a piece held, line by line.

    Args:
        rows: the records' fields (text), in order.
        row_lines: the first line of each record.
        rejected: (line, reason, text) of each rejected line.
        lines: lines consumed (the carry excluded).
        blank: empty lines among them.
        continued: further lines of kept records whose quoted values span lines.
        carry: the lines of a record still open at the end of a piece that is not the
            file's last: read again with the next piece.
    """

    rows: list[list[str]] = field(default_factory=list)
    row_lines: list[int] = field(default_factory=list)
    rejected: list[tuple[int, str, str]] = field(default_factory=list)
    lines: int = 0
    blank: int = 0
    continued: int = 0
    carry: bytes = b""


@dataclass
class LineSplitter:
    """Splits pieces of one file into records.

    Args:
        names: the column names (their number is the expected field count).
        delimiter: the field delimiter.
        quote: the quote character, or None when quoting is off.
        encoding: the file's encoding.
        max_record: the most bytes a record may span.
    """

    names: list[str]
    delimiter: str
    quote: str | None
    encoding: str
    max_record: int

    def split(self, piece: bytes, first_line: int, final: bool) -> SplitResult:
        """Records of ``piece``, whose first line is ``first_line``.

        Args:
            piece: whole lines of the file.
            first_line: the line number of the piece's first line.
            final: whether the piece ends the file (an open quote then cannot close).
        """
        lines = piece.splitlines(keepends=True)
        out = SplitResult()
        i = 0
        while i < len(lines):
            raw = lines[i]
            line = first_line + i
            if not raw.rstrip(b"\r\n"):
                out.blank += 1
                i += 1
                continue
            lines_of = _Lines(lines, i, self.encoding, self.max_record)
            fields, reason = self._record(lines_of, final)
            if fields is None and reason is None:  # open at the end of the piece: read on
                out.carry = b"".join(lines[i:])
                break
            if fields is None:
                text = raw.decode(self.encoding, "backslashreplace").rstrip("\r\n")
                out.rejected.append((line, str(reason), text))
                i += 1  # resynchronise at the next line
                continue
            out.rows.append(fields)
            out.row_lines.append(line)
            out.continued += lines_of.taken - 1
            i += lines_of.taken
        out.lines = i
        return out

    def confirms(self, lines: list[bytes], start: int, span: int) -> bool:
        """Whether the record at ``lines[start]`` reads, line by line, as ``span`` lines.

        Args:
            lines: the piece's lines.
            start: the record's first line (index in ``lines``).
            span: the lines the fast path found it to span.
        """
        lines_of = _Lines(lines, start, self.encoding, self.max_record)
        fields, _ = self._record(lines_of, final=True)
        return fields is not None and lines_of.taken == span

    def _record(self, lines_of: _Lines, final: bool) -> tuple[list[str] | None, str | None]:
        """The record starting at ``lines_of``'s first line: (fields, None) or (None, why).

        (None, None) means a quote is still open where the piece ends, and it is not the
        file's last: the record is read again with the next piece.
        """
        expected = len(self.names)
        try:
            fields = next(pycsv.reader(lines_of, **self._dialect(strict=True)))
        except UnicodeDecodeError as exc:
            if lines_of.taken == 0:
                bad = lines_of.first[exc.start : exc.start + 1]
                return (
                    None,
                    f"not valid {self.encoding}: byte {exc.start + 1} of the line is {bad!r}",
                )
            return None, self._runaway(lines_of, f"before a line not valid {self.encoding}")
        except _TooLong:
            return None, self._runaway(lines_of, f"within max_record_bytes={self.max_record}")
        except pycsv.Error as exc:
            if lines_of.exhausted:
                if not final:
                    return None, None
                return None, self._runaway(lines_of, "before the end of the file")
            if lines_of.taken > 1:
                return None, self._runaway(lines_of, f"cleanly (then: {exc})")
            # one line with text after a closing quote ("a"b): read leniently, as pyarrow
            # does on the fast path, so that a file reads the same whichever path it takes
            lenient = self._dialect(strict=False)
            fields = next(pycsv.reader(lines_of.parts, **lenient))
        if len(fields) != expected:
            if lines_of.taken > 1:
                return None, self._runaway(lines_of, f"into a record of {expected} fields")
            return None, f"expected {expected} fields, found {len(fields)}"
        if lines_of.taken > 1 and expected > 1 and self._looks_like_records(lines_of.parts):
            return None, self._runaway(lines_of, "(its lines split as whole records)")
        return fields, None

    def _runaway(self, lines_of: _Lines, how: str) -> str:
        """The reason given for a runaway quote, naming the column where it opens."""
        spanned = max(lines_of.taken - 1, 0)
        column = self._open_quote_field(lines_of.parts[0] if lines_of.parts else "")
        where = f"column {self.names[column]!r}" if column < len(self.names) else "the line"
        return (
            f"unterminated quote in {where}: its quoted value does not close {how} over "
            f"{spanned} more lines; this line is quarantined and reading resumes at the next"
        )

    def _looks_like_records(self, parts: list[str]) -> bool:
        """Whether a multi-line record is rather several records joined by a stray quote.

        So judged when, split without quoting, a middle line has exactly a record's number
        of fields, or the first and the last lines both do. A real multi-line value
        rarely does; one that does is quarantined (with its reason), never loaded wrong.
        """
        plain = self._dialect(strict=False, quoting=False)
        expected = len(self.names)

        def whole(part: str) -> bool:
            return len(next(pycsv.reader([part], **plain), [])) == expected

        if any(whole(part) for part in parts[1:-1]):
            return True
        return whole(parts[0]) and whole(parts[-1])

    def _open_quote_field(self, text: str) -> int:
        """Index of the field in which the line's last unclosed quote opens."""
        in_quote = closed = False
        at_start = True
        field_index = opened = 0
        for ch in text:
            if in_quote:
                if ch == self.quote:
                    in_quote, closed = False, True
                continue
            if ch == self.quote and (at_start or closed):  # a field opens, or "" inside one
                in_quote = True
                opened = field_index
            elif ch == self.delimiter:
                field_index += 1
                at_start = True
                closed = False
                continue
            at_start = closed = False
        return opened

    def _dialect(self, *, strict: bool, quoting: bool = True) -> dict:
        if self.quote is None or not quoting:
            return {"delimiter": self.delimiter, "quoting": pycsv.QUOTE_NONE, "strict": strict}
        return {
            "delimiter": self.delimiter,
            "quotechar": self.quote,
            "doublequote": True,
            "strict": strict,
        }


class _TooLong(Exception):
    """A record grew past max_record_bytes (control flow inside the csv reader, not an error)."""


class _Lines:
    """Decoded lines from ``lines[start]`` on, for ``csv.reader``, counting what it took.

    Args:
        lines: the piece's lines (bytes, line ends kept).
        start: the first line of the record.
        encoding: the file's encoding.
        max_record: the most bytes the record may span.
    """

    def __init__(self, lines: list[bytes], start: int, encoding: str, max_record: int) -> None:
        self.lines = lines
        self.first = lines[start]
        self.next = start
        self.encoding = encoding
        self.max_record = max_record
        self.size = 0
        self.taken = 0
        self.parts: list[str] = []
        self.exhausted = False

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        if self.next >= len(self.lines):
            self.exhausted = True
            raise StopIteration
        raw = self.lines[self.next]
        self.size += len(raw)
        if self.taken and self.size > self.max_record:
            raise _TooLong
        text = raw.decode(self.encoding)
        self.next += 1
        self.taken += 1
        self.parts.append(text)
        return text
