"""File sources: CSV, JSON/NDJSON, Parquet, Avro, ORC and Arrow IPC, from a path, glob or folder.

Every format streams record batches except JSON arrays (a JSON document must be
parsed whole). CSV lines that cannot be read are never dropped silently: each one is
kept as a :class:`MalformedRow` with its file, line number and reason, and each CSV or
NDJSON file's lines are accounted for in a :class:`FileReport` (rules: :mod:`.csv`,
:mod:`.ndjson`). A broken Parquet, ORC, Avro or Arrow file, or JSON array, fails
loudly with one line naming it.
"""

from __future__ import annotations

import glob as globmod
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from headrace.connectors.objectstore import ObjectStore, local_copy
from headrace.connectors.sources.csv import DEFAULT_MAX_RECORD_BYTES, open_csv
from headrace.connectors.sources.csv_values import DEFAULT_NULL_VALUES
from headrace.connectors.sources.malformed import FileReport, MalformedRow, NanRule
from headrace.connectors.sources.ndjson import open_ndjson
from headrace.connectors.sources.source_base import DEFAULT_BATCH_ROWS, Extract
from headrace.errors import ConnectorError, did_you_mean
from headrace.extras import require

__all__ = ["FORMATS", "FileExtract", "FileReport", "FileSource", "MalformedRow", "NanRule"]

FORMATS = ("csv", "json", "ndjson", "parquet", "avro", "orc", "arrow")
_EXTENSIONS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "csv",
    ".json": "json",
    ".ndjson": "ndjson",
    ".jsonl": "ndjson",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".avro": "avro",
    ".orc": "orc",
    ".arrow": "arrow",
    ".feather": "arrow",
    ".ipc": "arrow",
}


class FileExtract(Extract):
    """An :class:`Extract` of files, with what could not be read and each file's accounting.

    Args:
        malformed: the rejected lines (filled while the batches are read).
        reports: one :class:`FileReport` per CSV or NDJSON file (complete once read).
    """

    def __init__(
        self,
        schema: pa.Schema,
        batches: Iterator[pa.RecordBatch],
        *,
        malformed: list[MalformedRow],
        reports: list[FileReport],
        **options: Any,
    ) -> None:
        super().__init__(schema, batches, **options)
        self.malformed = malformed
        self.reports = reports

    def quarantine_table(self) -> pa.Table:
        """The rejected lines as a table (file, line, reason, text), for ``quarantine=``.

        Read it after the batches: lines are rejected while they are read.

        Example:
            >>> good = extract.to_table()
            >>> dest.write(good, "orders", quarantine=extract.quarantine_table())
        """
        return pa.table(
            {
                "file": pa.array([m.file for m in self.malformed], pa.string()),
                "line": pa.array([m.line for m in self.malformed], pa.int64()),
                "reason": pa.array([m.reason for m in self.malformed], pa.string()),
                "text": pa.array([m.text for m in self.malformed], pa.string()),
            }
        )


class FileSource:
    """Rows of one or more files of one format.

    Args:
        path: a file, a folder (every file with a matching extension, sorted) or a glob.
        format: one of csv, json, ndjson, parquet, avro, orc, arrow; default: from the
            extension.
        types: column -> Arrow type overrides of the inferred schema.
        delimiter, quote_char, encoding, header, column_names: CSV options.
        null_values: CSV texts that are NULL in non-text columns (default: empty,
            NULL, null, NA, N/A, #N/A, None; never NaN).
        nan: what the text NaN becomes in a CSV float column: ``keep`` (the float NaN,
            default), ``null`` (counted and logged) or ``quarantine`` (the line).
        max_record_bytes: a CSV line (or quoted record) longer than this is quarantined.
        batch_rows: rows per record batch for formats that let us choose.
        store: the object store (credentials, endpoint) of a relative or ``s3://``
            path; an ``s3://`` path without one uses the default credential chain. The
            matching objects are copied to a temporary folder and read from there.

    Example:
        >>> src = FileSource("landing/*.csv", types={"zip": pa.string()})
        >>> extract = src.read(); table = extract.to_table()
        >>> src.malformed  # lines that were rejected, with file, line and reason
        >>> extract.reports  # per CSV/NDJSON file: lines = header + loaded + quarantined + ...
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        format: str | None = None,
        types: dict[str, pa.DataType] | None = None,
        delimiter: str = ",",
        quote_char: str | bool = '"',
        encoding: str = "utf8",
        header: bool = True,
        column_names: Sequence[str] | None = None,
        null_values: Sequence[str] = DEFAULT_NULL_VALUES,
        nan: NanRule | str = NanRule.KEEP,
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
        batch_rows: int = DEFAULT_BATCH_ROWS,
        store: ObjectStore | None = None,
    ) -> None:
        self.path = str(path)
        self.store = store
        self._copies: Any = None  # the temporary folder of an object-store path
        if format is not None and format not in FORMATS:
            raise ConnectorError(
                f"Unknown file format {format!r} for {self.path}." + did_you_mean(format, FORMATS)
            )
        self.format = format
        self.types = dict(types or {})
        self.delimiter = delimiter
        self.quote_char = quote_char
        self.encoding = encoding
        self.header = header
        self.column_names = list(column_names) if column_names else None
        self.null_values = tuple(null_values)
        try:
            self.nan = NanRule(nan)
        except ValueError:
            raise ConnectorError(
                f"Unknown nan rule {nan!r} for {self.path}; use one of "
                f"{', '.join(r.value for r in NanRule)}."
                + did_you_mean(str(nan), [r.value for r in NanRule])
            ) from None
        if max_record_bytes < 2:
            raise ConnectorError(f"max_record_bytes must be at least 2, not {max_record_bytes}.")
        self.max_record_bytes = max_record_bytes
        self.batch_rows = batch_rows
        self.malformed: list[MalformedRow] = []
        self.reports: list[FileReport] = []

    @property
    def name(self) -> str:
        return self.path

    def files(self) -> list[Path]:
        """The files this source reads, sorted; an error if there are none."""
        path = self.path
        if self.store is not None or path.startswith("s3://"):
            if self._copies is None:
                self._copies = local_copy(path, self.store)
            path = self._copies[0]
        p = Path(path)
        if p.is_dir():
            wanted = {"json", "ndjson"} if self.format in ("json", "ndjson") else {self.format}
            found = sorted(
                f
                for f in p.iterdir()
                if f.is_file()
                and (fmt := _EXTENSIONS.get(f.suffix.lower())) is not None
                and (self.format is None or fmt in wanted)
            )
        elif p.is_file():
            found = [p]
        else:
            found = sorted(Path(f) for f in globmod.glob(path, recursive=True) if Path(f).is_file())
        if not found:
            raise ConnectorError(f"No files found at {self.path!r}; check the path or glob.")
        return found

    def _format_of(self, file: Path) -> str:
        if self.format:
            return self.format
        fmt = _EXTENSIONS.get(file.suffix.lower())
        if fmt is None:
            raise ConnectorError(
                f"Cannot tell the format of {file} from its extension; pass format= one of "
                f"{', '.join(FORMATS)}."
            )
        return fmt

    def read(self, *, progress: Callable[[int], None] | None = None, **_: Any) -> FileExtract:
        """Stream every file's rows as record batches of one schema.

        Args:
            progress: called with the rows read so far after each batch.

        Returns:
            A :class:`FileExtract`. Rejected CSV lines collect in ``self.malformed`` and
            each CSV or NDJSON file's accounting in ``self.reports`` (both also on the
            extract).
        """
        self.malformed = []
        self.reports = []
        files = self.files()
        first_schema, first_batches = self._open(files[0])

        def batches() -> Iterator[pa.RecordBatch]:
            yield from first_batches
            for file in files[1:]:
                _, more = self._open(file)
                for batch in more:
                    yield _conform(batch, first_schema, file)

        return FileExtract(
            first_schema,
            batches(),
            description=self.path,
            progress=progress,
            malformed=self.malformed,
            reports=self.reports,
        )

    def _open(self, file: Path) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
        fmt = self._format_of(file)
        opener = {
            "csv": self._csv,
            "json": self._json,
            "ndjson": self._ndjson,
            "parquet": self._parquet,
            "avro": self._avro,
            "orc": self._orc,
            "arrow": self._arrow,
        }[fmt]
        try:
            schema, batches = opener(file)
        except ConnectorError:
            raise
        except _READ_ERRORS as exc:
            raise _read_error(file, fmt, exc) from exc
        _check_names(file, schema.names)
        schema = pa.schema([pa.field(f.name, self.types.get(f.name, f.type)) for f in schema])
        unknown = set(self.types) - set(schema.names)
        if unknown:
            name = sorted(unknown)[0]
            raise ConnectorError(
                "a type override for a column the file does not have."
                + did_you_mean(name, schema.names),
                path=str(file),
                column=name,
            )
        return schema, (self._cast(b, schema, file) for b in _guard(batches, file, fmt))

    def _cast(self, batch: pa.RecordBatch, schema: pa.Schema, file: Path) -> pa.RecordBatch:
        if batch.schema.equals(schema):
            return batch
        return _conform(batch, schema, file)

    # -- formats ---------------------------------------------------------------------

    def _csv(self, file: Path) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
        return open_csv(self, file)

    def _ndjson(self, file: Path) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
        return open_ndjson(self, file)

    def _json(self, file: Path) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
        import json

        with open(file, "rb") as fh:
            head = fh.read(4096).lstrip()
        if not head.startswith(b"["):
            return self._ndjson(file)
        try:
            records = json.loads(file.read_text(encoding=self.encoding))
        except json.JSONDecodeError as exc:
            raise ConnectorError(f"{file}:{exc.lineno}: not valid JSON: {exc.msg}") from exc
        if not all(isinstance(r, dict) for r in records):
            raise ConnectorError("a JSON array of objects is expected.", path=str(file))
        table = pa.Table.from_pylist(records)
        return table.schema, iter(table.to_batches(max_chunksize=self.batch_rows))

    def _parquet(self, file: Path) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(file)
        return pf.schema_arrow, pf.iter_batches(batch_size=self.batch_rows)

    def _orc(self, file: Path) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
        import pyarrow.orc as orc

        of = orc.ORCFile(file)

        def stripes() -> Iterator[pa.RecordBatch]:
            for i in range(of.nstripes):  # one stripe in memory at a time
                yield from pa.Table.from_batches([of.read_stripe(i)]).to_batches(self.batch_rows)

        return of.schema, stripes()

    def _arrow(self, file: Path) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
        source = pa.memory_map(str(file))
        try:
            reader = pa.ipc.open_file(source)
            return reader.schema, (reader.get_batch(i) for i in range(reader.num_record_batches))
        except pa.ArrowInvalid as exc:
            with open(file, "rb") as fh:
                if fh.read(6) == b"ARROW1":  # the file format, but its footer is missing
                    raise ConnectorError(
                        f"Cannot read {file} as arrow: an Arrow IPC file without its footer "
                        "(truncated, or still being written)."
                    ) from exc
            stream = pa.ipc.open_stream(pa.memory_map(str(file)))
            return stream.schema, iter(stream)

    def _avro(self, file: Path) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
        require("avro", "fastavro", f"Avro file {file}")
        import fastavro

        fh = open(file, "rb")  # noqa: SIM115 - closed by the generator below when it ends
        reader = fastavro.reader(fh)
        schema = _avro_schema(reader.writer_schema)  # type: ignore[arg-type]

        def batches() -> Iterator[pa.RecordBatch]:
            try:
                chunk: list[dict] = []
                for record in reader:
                    chunk.append(record)  # type: ignore[arg-type]
                    if len(chunk) >= self.batch_rows:
                        yield pa.RecordBatch.from_pylist(chunk, schema=schema)
                        chunk = []
                if chunk:
                    yield pa.RecordBatch.from_pylist(chunk, schema=schema)
            finally:
                fh.close()

        return schema, batches()


def _check_names(file: Path, names: list[str]) -> None:
    """Refuse a file whose columns cannot be told apart (an empty or a repeated name)."""
    for i, name in enumerate(names):
        if not name.strip():
            raise ConnectorError(
                f"column {i + 1} has an empty name; rename it in the file (or read "
                "a CSV file with column_names=).",
                path=str(file),
            )
        if name in names[:i]:
            raise ConnectorError(
                f"column name {name!r} appears twice (columns {names.index(name) + 1} "
                f"and {i + 1}); columns must be told apart to be loaded.",
                path=str(file),
            )


def _guard(batches: Iterator[pa.RecordBatch], file: Path, fmt: str) -> Iterator[pa.RecordBatch]:
    """Turn a reader's mid-stream failure into a ConnectorError naming the file."""
    try:
        yield from batches
    except ConnectorError:
        raise
    except _READ_ERRORS as exc:
        raise _read_error(file, fmt, exc) from exc


_READ_ERRORS = (pa.ArrowInvalid, OSError, ValueError, EOFError)


def _read_error(file: Path, fmt: str, exc: BaseException) -> ConnectorError:
    """One line naming the file of a reader's failure."""
    detail = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, EOFError):
        detail = f"the file ends too early (truncated?): {detail}"
    return ConnectorError(f"Cannot read {file} as {fmt}: {detail}")


def _conform(batch: pa.RecordBatch, schema: pa.Schema, file: Path) -> pa.RecordBatch:
    """Give ``batch`` the columns and types of ``schema`` (missing columns become null)."""
    extra = [n for n in batch.schema.names if n not in schema.names]
    if extra:
        raise ConnectorError(
            "the first file of this source has no such column; "
            "read files of different layouts as separate sources.",
            path=str(file),
            column=extra[0],
        )
    arrays = []
    for field in schema:
        if field.name in batch.schema.names:
            column = batch.column(field.name)
            if column.type != field.type:
                try:
                    column = column.cast(field.type)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                    raise ConnectorError(
                        f"column {field.name!r} cannot be read as {field.type}: {exc}",
                        path=str(file),
                    ) from exc
            arrays.append(column)
        else:
            arrays.append(pa.nulls(batch.num_rows, field.type))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


_AVRO_PRIMITIVES = {
    "null": pa.null(),
    "boolean": pa.bool_(),
    "int": pa.int32(),
    "long": pa.int64(),
    "float": pa.float32(),
    "double": pa.float64(),
    "bytes": pa.binary(),
    "string": pa.string(),
}


def _avro_schema(schema: dict) -> pa.Schema:
    """Arrow schema of an Avro record schema (logical types for dates and timestamps)."""
    return pa.schema([pa.field(f["name"], _avro_type(f["type"])) for f in schema["fields"]])


def _avro_type(t: Any) -> pa.DataType:
    if isinstance(t, list):  # a union: ["null", X] is a nullable X
        rest = [x for x in t if x != "null"]
        return _avro_type(rest[0]) if len(rest) == 1 else pa.string()
    if isinstance(t, dict):
        logical = t.get("logicalType")
        if logical == "timestamp-millis":
            return pa.timestamp("ms", tz="UTC")
        if logical == "timestamp-micros":
            return pa.timestamp("us", tz="UTC")
        if logical == "date":
            return pa.date32()
        if logical == "decimal":
            return pa.decimal128(t["precision"], t.get("scale", 0))
        if t.get("type") == "array":
            return pa.list_(_avro_type(t["items"]))
        if t.get("type") == "map":
            return pa.map_(pa.string(), _avro_type(t["values"]))
        if t.get("type") == "record":
            return pa.struct([pa.field(f["name"], _avro_type(f["type"])) for f in t["fields"]])
        if t.get("type") == "enum":
            return pa.string()
        if t.get("type") == "fixed":
            return pa.binary(t["size"])
        return _avro_type(t["type"])
    return _AVRO_PRIMITIVES.get(t, pa.string())
