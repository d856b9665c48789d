"""Where each record of a CSV piece parsed by pyarrow lies: line numbers, blank rows and
values that span lines (see :mod:`.csv`).

The arithmetic is vectorised with pyarrow compute (the core install has no NumPy).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable

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


def extra_lines(table: pa.Table) -> pa.Int64Array | None:
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
        counted = ends.combine_chunks().cast(pa.int64())
        extra = counted if extra is None else pc.add(extra, counted)
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
    first: int, rows: int, invalid: list[tuple[int, int, str]], extra: pa.Int64Array
) -> tuple[pa.Int64Array, list[int], int]:
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
    bad = [number for number, _, _ in invalid]
    numbers = pc.cumulative_sum(pa.repeat(pa.scalar(1, pa.int64()), records))  # 1 .. records
    good = (
        pc.filter(numbers, pc.invert(pc.is_in(numbers, pa.array(bad, pa.int64()))))
        if bad
        else numbers
    )
    through = pc.cumulative_sum(extra)  # through[j]: further lines of good records 0..j
    before = pc.subtract(through, extra)  # further lines of the records before each good one
    valid_lines = pc.add(pc.add(good, before), first - 1)
    bad_set = sorted(bad)
    invalid_lines = []
    for k in bad:  # the line of bad record k: the good records before it and their extra lines
        goods_before = k - 1 - bisect.bisect_left(bad_set, k)
        lines_before = through[goods_before - 1].as_py() if goods_before else 0
        invalid_lines.append(first + k - 1 + lines_before)
    total = pc.sum(extra).as_py() or 0
    return valid_lines, invalid_lines, records + total


def line_starts(buf: bytearray, size: int) -> pa.Int64Array:
    """Byte offset of each line of ``buf[:size]`` (whole lines), then ``size``.

    A line ends at ``\n``, ``\r\n`` or a lone ``\r``, as ``bytes.splitlines`` has it.
    """
    raw = pa.Array.from_buffers(pa.uint8(), size, [None, pa.py_buffer(buf)])
    ends = pc.equal(raw, 10)
    if buf.find(b"\r", 0, size) >= 0:  # a lone "\r" ends a line too; "\r\n" ends one
        newline_next = pa.concat_arrays([ends.slice(1), pa.array([False])])
        ends = pc.or_(ends, pc.and_(pc.equal(raw, 13), pc.invert(newline_next)))
    found = pc.add(pc.indices_nonzero(ends).cast(pa.int64()), 1)
    starts = pa.concat_arrays([pa.array([0], pa.int64()), found])
    if starts[-1].as_py() != size:  # a last line unended
        starts = pa.concat_arrays([starts, pa.array([size], pa.int64())])
    return starts


def lines_from(valid_lines: pa.Int64Array, offset: int) -> LineOf:
    """Line of the ``offset + i``-th valid record, from the piece's layout."""
    return lambda i: valid_lines[offset + i].as_py()


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
