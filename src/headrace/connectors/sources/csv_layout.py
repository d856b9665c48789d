"""Where each record of a CSV piece parsed by pyarrow lies: line numbers, blank rows and
values that span lines (see :mod:`.csv`)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

LineOf = Callable[[int], int]


def line_function(first: int, offset: int, skipped: list[int]) -> LineOf:
    """Line of the ``offset + i``-th good record, knowing which record numbers were bad."""

    def line_of(i: int) -> int:
        line = first + offset + i
        for number in skipped:
            if first + number - 1 <= line:
                line += 1
        return line

    return line_of


def extra_lines(table: pa.Table) -> np.ndarray | None:
    """Line ends inside each row's values (None when there are none anywhere).

    The value bytes are searched first (memchr speed); only columns that hold a line end
    are counted row by row. ``\r\n`` counts once, as a line end does.
    """
    extra = None
    for column in table.columns:
        newline, carriage = line_ends_in(column)
        if not (newline or carriage):
            continue
        ends = pc.count_substring(column, "\n")
        if carriage:
            ends = pc.subtract(
                pc.add(ends, pc.count_substring(column, "\r")),
                pc.count_substring(column, "\r\n"),
            )
        counted = ends.to_numpy().astype(np.int64)
        extra = counted if extra is None else extra + counted
    return extra


def line_ends_in(column: pa.ChunkedArray) -> tuple[bool, bool]:
    """Whether a text column's value bytes hold ``\n``, and ``\r`` (a copy, then memchr)."""
    newline = carriage = False
    for chunk in column.chunks:
        data = chunk.buffers()[2]
        if data is None:
            continue
        raw = data.to_pybytes()
        newline = newline or b"\n" in raw
        carriage = carriage or b"\r" in raw
    return newline, carriage


def layout(
    first: int, rows: int, invalid: list[tuple[int, int, str]], extra: np.ndarray
) -> tuple[np.ndarray, list[int], int]:
    """Lines of a piece whose records may span lines.

    Args:
        first: the piece's first line.
        rows: the valid records.
        invalid: (record number, fields, text) of the invalid ones (one line each).
        extra: further lines of each valid record.

    Returns:
        The first line of each valid record, the line of each invalid one (in order),
        and the lines of the piece.
    """
    records = rows + len(invalid)
    bad = np.array([number for number, _, _ in invalid], dtype=np.int64)
    is_good = np.ones(records + 1, dtype=bool)
    is_good[0] = False
    is_good[bad] = False
    good = np.flatnonzero(is_good)
    spans = np.zeros(records + 1, dtype=np.int64)
    spans[good] = extra
    before = np.cumsum(spans)  # before[k - 1]: further lines of the records before k
    line = first + np.arange(records + 1, dtype=np.int64) - 1 + np.concatenate(([0], before[:-1]))
    return line[good], [int(line[k]) for k in bad], records + int(extra.sum())


def line_starts(buf: bytearray, size: int) -> np.ndarray:
    """Byte offset of each line of ``buf[:size]`` (whole lines), then ``size``.

    A line ends at ``\n``, ``\r\n`` or a lone ``\r``, as ``bytes.splitlines`` has it.
    """
    raw = np.frombuffer(buf, dtype=np.uint8, count=size)
    if buf.find(b"\r", 0, size) < 0:  # the usual file: one pass for "\n" only
        found = np.flatnonzero(raw == 10)
    else:
        ends = raw == 10
        returns = np.flatnonzero(raw == 13)
        ends[returns[(returns + 1 >= size) | (raw[np.minimum(returns + 1, size - 1)] != 10)]] = True
        found = np.flatnonzero(ends)
    starts = np.concatenate(([0], found + 1)).astype(np.int64)
    return starts if starts[-1] == size else np.append(starts, size)  # a last line unended


def lines_from(valid_lines: np.ndarray, offset: int) -> LineOf:
    """Line of the ``offset + i``-th valid record, from the piece's layout."""
    return lambda i: int(valid_lines[offset + i])


def offsets(table: pa.Table) -> list[int]:
    """The row offset of each of the table's batches."""
    offsets, offset = [], 0
    for batch in table.to_batches():
        offsets.append(offset)
        offset += batch.num_rows
    return offsets


def has_blank_row(table: pa.Table) -> bool:
    """Whether a row has every value empty (an empty line, or a line of delimiters only)."""
    if table.num_rows == 0 or pc.min(pc.binary_length(table.column(0))).as_py() > 0:
        return False
    empty = None
    for column in table.columns:
        this = pc.equal(pc.binary_length(column), 0)
        empty = this if empty is None else pc.and_(empty, this)
    return bool(pc.any(empty).as_py())
