"""Readers for each file format: DuckDB's native ones, Arrow for the rest.

CSV, Parquet and JSON use DuckDB's own readers, which stream and run in parallel.
Avro, ORC and Arrow IPC have no reader built into DuckDB that works offline, so the
connectors' file source streams them as Arrow record batches and DuckDB scans those.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from headrace.analytics.sql_quoting import quote_ident, quote_literal
from headrace.errors import AnalyticsError, ConnectorError, did_you_mean

# Extension to format; compressed CSV/JSON keep their inner extension (x.csv.gz).
FORMATS: dict[str, str] = {
    ".csv": "csv", ".tsv": "csv", ".txt": "csv",
    ".parquet": "parquet", ".pq": "parquet",
    ".json": "json", ".jsonl": "json", ".ndjson": "json",
    ".avro": "avro",
    ".orc": "orc",
    ".arrow": "arrow", ".feather": "arrow", ".ipc": "arrow", ".arrows": "arrow",
}  # fmt: skip

_READERS = {"csv": "read_csv", "parquet": "read_parquet", "json": "read_json"}

# Options each native reader accepts, with the Python types allowed for their values.
# Names are checked against this list because they go into SQL as keywords.
_OPTIONS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "csv": {
        "header": bool, "delim": str, "sep": str, "quote": str, "escape": str, "skip": int,
        "all_varchar": bool, "nullstr": str, "dateformat": str, "timestampformat": str,
        "sample_size": int, "compression": str, "union_by_name": bool, "filename": bool,
        "decimal_separator": str, "new_line": str, "normalize_names": bool, "strict_mode": bool,
    },
    "parquet": {"union_by_name": bool, "filename": bool, "hive_partitioning": bool, "binary_as_string": bool},
    "json": {
        "format": str, "records": (bool, str), "maximum_object_size": int, "union_by_name": bool,
        "compression": str, "filename": bool, "sample_size": int, "dateformat": str,
        "timestampformat": str, "maximum_depth": int,
    },
}  # fmt: skip


def default_table_name(path: str | Path) -> str:
    """The name a loaded file gets: its file name without format and compression extensions."""
    name = Path(path).name
    while True:
        stem, dot, ext = name.rpartition(".")
        if not (
            dot and stem and (f".{ext.lower()}" in FORMATS or ext.lower() in ("gz", "zst", "gzip"))
        ):
            return name
        name = stem


def format_for_path(path: str | Path) -> str:
    """The format of a file from its extension (``x.csv.gz`` is CSV); unknown ones raise."""
    suffixes = [s.lower() for s in Path(path).suffixes]
    if suffixes and suffixes[-1] in (".gz", ".zst", ".gzip"):
        suffixes = suffixes[:-1]
    if suffixes and suffixes[-1] in FORMATS:
        return FORMATS[suffixes[-1]]
    ext = suffixes[-1] if suffixes else ""
    raise AnalyticsError(
        f"Cannot tell the format of {str(path)!r} from its extension {ext!r}."
        + did_you_mean(ext, FORMATS)
        + f" Known: {', '.join(sorted(FORMATS))}; or call load_csv/load_parquet/... directly."
    )


def _check_exists(path: str | Path) -> str:
    text = str(path)
    if any(ch in text for ch in "*?[") or "://" in text:
        return text  # globs and remote URLs are for DuckDB to resolve
    p = Path(text)
    if not p.exists():
        raise AnalyticsError(
            f"File {text!r} not found (working directory {Path.cwd()}); check the path."
        )
    # Absolute, so a view stored in a database file still works from another directory.
    return str(p.resolve())


def _check_options(fmt: str, options: Mapping[str, Any]) -> None:
    allowed = _OPTIONS[fmt]
    for key, value in options.items():
        if key not in allowed:
            raise AnalyticsError(
                f"Unknown {fmt} option {key!r}."
                + did_you_mean(key, allowed)
                + f" Known: {', '.join(sorted(allowed))}."
            )
        # bool is an int subclass: refuse it where an int is wanted and vice versa.
        expected = allowed[key]
        ok = isinstance(value, expected) and not (isinstance(value, bool) and expected is int)
        if not ok:
            raise AnalyticsError(
                f"{fmt} option {key!r} has the wrong type {type(value).__name__} ({value!r})."
            )


def _literal(value: Any) -> str:
    """A literal for a view body (views are stored as text and cannot hold parameters)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(int(value))
    return quote_literal(str(value))


def native_load(
    con: duckdb.DuckDBPyConnection,
    fmt: str,
    path: str | Path,
    name: str,
    *,
    view: bool,
    replace: bool,
    temp: bool,
    options: Mapping[str, Any],
) -> None:
    """Create table or view ``name`` over a CSV, Parquet or JSON file with DuckDB's reader.

    Args:
        con: the connection.
        fmt: ``csv``, ``parquet`` or ``json``.
        path: file path, glob or URL.
        name: new table or view name (quoted here).
        view: create a view instead of a table.
        replace: ``CREATE OR REPLACE``.
        temp: create a temporary object (for read-only databases).
        options: reader options, checked against the reader's known ones.
    """
    _check_options(fmt, options)
    source = _check_exists(path)
    reader = _READERS[fmt]
    head = f"CREATE {'OR REPLACE ' if replace else ''}{'TEMP ' if temp else ''}{'VIEW' if view else 'TABLE'}"
    try:
        if view:
            args = "".join(f", {k} := {_literal(v)}" for k, v in options.items())
            con.execute(
                f"{head} {quote_ident(name)} AS SELECT * FROM {reader}({quote_literal(source)}{args})"
            )
        else:
            args = "".join(f", {k} := ?" for k in options)
            con.execute(
                f"{head} {quote_ident(name)} AS SELECT * FROM {reader}(?{args})",
                [source, *options.values()],
            )
    except duckdb.Error as exc:
        raise AnalyticsError(
            f"Loading {fmt} file {str(path)!r} into {name!r} failed: {exc}"
        ) from exc


def arrow_reader(fmt: str, path: str | Path) -> pa.RecordBatchReader:
    """Arrow record batches of Avro, ORC or Arrow IPC files, through the connectors' file source.

    The source streams (fastavro records in batches, one ORC stripe at a time, IPC
    batches), so loading holds about one batch in memory, not the file.

    Args:
        fmt: ``avro``, ``orc`` or ``arrow``.
        path: a file, a folder or a glob.

    Returns:
        A record-batch reader for DuckDB to scan.
    """
    from headrace.connectors.sources.file_sources import FileSource

    source = _check_exists(path)
    try:
        return FileSource(source, format=fmt).read().reader()
    except ConnectorError as exc:
        raise AnalyticsError(f"Reading {fmt} file {str(path)!r} failed: {exc}") from exc
