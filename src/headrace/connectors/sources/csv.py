"""CSV reading that keeps every line it cannot read, with its line number and reason.

Two kinds of bad line exist. A line with the wrong number of fields is reported by
pyarrow's ``invalid_row_handler`` with its physical line number. A value that does not
fit its column's type (``abc`` in an integer column) would fail the whole block, so
every column is parsed as text and cast batch by batch; rows whose cast fails are
taken out and kept. The types are those pyarrow infers from the first block, with
the source's overrides on top.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from headrace.errors import ConnectorError

if TYPE_CHECKING:
    from headrace.connectors.sources.files import FileSource


def open_csv(src: FileSource, file: Path) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    """Schema and batches of one CSV file; bad lines go to ``src.malformed``.

    Args:
        src: the file source (options, type overrides, the malformed list).
        file: the CSV file.
    """
    from headrace.connectors.sources.files import MalformedRow

    def on_invalid(row: pcsv.InvalidRow) -> str:
        src.malformed.append(
            MalformedRow(
                file=str(file),
                line=row.number,  # record number counting the header line
                reason=f"expected {row.expected_columns} fields, found {row.actual_columns}",
                text=row.text,
            )
        )
        return "skip"

    read_options = pcsv.ReadOptions(
        encoding=src.encoding,
        column_names=src.column_names,
        autogenerate_column_names=not src.header and not src.column_names,
        block_size=1 << 22,
        use_threads=False,
    )
    parse_options = pcsv.ParseOptions(
        delimiter=src.delimiter,
        quote_char=src.quote_char,
        newlines_in_values=True,
        invalid_row_handler=on_invalid,
    )
    if src.header and src.column_names:
        read_options.skip_rows = 1
    try:
        probe = pcsv.open_csv(file, read_options=read_options, parse_options=parse_options)
        inferred = probe.schema
        probe.close()
    except pa.ArrowInvalid as exc:
        raise ConnectorError(f"Cannot read {file} as CSV: {exc}") from None
    src.malformed[:] = [m for m in src.malformed if m.file != str(file)]  # probe's duplicates
    target = pa.schema([pa.field(f.name, src.types.get(f.name, f.type)) for f in inferred])
    as_text = pcsv.ConvertOptions(
        column_types={name: pa.string() for name in inferred.names}, strings_can_be_null=False
    )
    reader = pcsv.open_csv(
        file, read_options=read_options, parse_options=parse_options, convert_options=as_text
    )
    first_line = 2 if src.header else 1

    def line_of(valid_index: int) -> int:
        """Record number (counting the header) of the valid_index-th well-formed record."""
        line = first_line + valid_index
        for skipped in sorted(m.line for m in src.malformed if m.file == str(file) and m.line):
            if skipped <= line:
                line += 1
        return line

    def batches() -> Iterator[pa.RecordBatch]:
        record = 0  # well-formed records read so far, to number lines of type errors
        for batch in reader:
            yield _typed(batch, target, file, record, line_of, src)
            record += batch.num_rows

    return target, batches()


_NULLS = ["", "NULL", "null", "NA", "N/A", "NaN", "nan", "#N/A", "None"]


def _typed(
    batch: pa.RecordBatch,
    target: pa.Schema,
    file: Path,
    first: int,
    line_of: Callable[[int], int],
    src: FileSource,
) -> pa.RecordBatch:
    """Cast a text batch to ``target``; rows with values that do not fit are kept aside."""
    from headrace.connectors.sources.files import MalformedRow

    arrays: list[pa.Array] = []
    bad = pa.array([False] * batch.num_rows)
    reasons: dict[int, str] = {}
    for field, column in zip(target, batch.columns, strict=True):
        if pa.types.is_string(field.type) or pa.types.is_large_string(field.type):
            arrays.append(column)
            continue
        nullish = pc.is_in(column, value_set=pa.array(_NULLS))
        column = pc.if_else(nullish, pa.scalar(None, pa.string()), column)
        try:
            arrays.append(_cast_text(column, field.type))
            continue
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
        values = []
        for i, text in enumerate(column.to_pylist()):
            try:
                values.append(_cast_text(pa.array([text], pa.string()), field.type)[0].as_py())
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                values.append(None)
                reasons.setdefault(i, f"column {field.name!r}: {text!r} is not {field.type}")
        arrays.append(pa.array(values, field.type))
    if not reasons:
        return pa.RecordBatch.from_arrays(arrays, schema=target)
    raw = batch.to_pylist()
    found = []
    for i, reason in sorted(reasons.items()):
        text = src.delimiter.join("" if v is None else str(v) for v in raw[i].values())
        found.append(MalformedRow(str(file), line_of(first + i), reason, text))
    src.malformed.extend(found)
    bad = pa.array([i in reasons for i in range(batch.num_rows)])
    return pa.RecordBatch.from_arrays(arrays, schema=target).filter(pc.invert(bad))


def _cast_text(column: pa.Array, target: pa.DataType) -> pa.Array:
    if pa.types.is_boolean(target):
        lowered = pc.utf8_lower(column)
        true = pc.is_in(lowered, value_set=pa.array(["true", "1", "yes", "t", "y"]))
        false = pc.is_in(lowered, value_set=pa.array(["false", "0", "no", "f", "n"]))
        if pc.any(pc.and_(pc.is_valid(column), pc.invert(pc.or_(true, false)))).as_py():
            raise pa.ArrowInvalid("not a boolean")
        return pc.if_else(pc.is_valid(column), true, pa.scalar(None, pa.bool_()))
    return column.cast(target)
