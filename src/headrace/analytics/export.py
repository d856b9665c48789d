"""Writing tables and query results to Parquet, CSV, JSON and NDJSON with DuckDB's COPY."""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from headrace.analytics.sql_quoting import quote_ident
from headrace.errors import AnalyticsError, did_you_mean

EXPORT_FORMATS = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".json": "json",
    ".ndjson": "ndjson",
    ".jsonl": "ndjson",
}
# Codec names go into COPY options as keywords, so only these are accepted.
CODECS = {
    "parquet": ("zstd", "snappy", "gzip", "lz4", "brotli", "uncompressed"),
    "csv": ("none", "gzip", "zstd"),
    "json": ("none", "gzip", "zstd"),
    "ndjson": ("none", "gzip", "zstd"),
}
DEFAULT_CODEC = {"parquet": "zstd", "csv": "none", "json": "none", "ndjson": "none"}


@dataclass
class ExportInfo:
    """What an export wrote.

    Args:
        path: the file, or the folder of a partitioned export.
        format: ``parquet``, ``csv``, ``json`` or ``ndjson``.
        codec: the compression used.
        rows: rows written.
        files: files written (one unless partitioned).
    """

    path: Path
    format: str
    codec: str
    rows: int
    files: list[Path] = field(default_factory=list)


def _format_for(path: Path, fmt: str | None) -> str:
    if fmt is not None:
        fmt = fmt.lower()
        if fmt not in CODECS:
            raise AnalyticsError(
                f"Unknown export format {fmt!r}."
                + did_you_mean(fmt, CODECS)
                + f" Known: {', '.join(CODECS)}."
            )
        return fmt
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in (".gz", ".zst"):
        suffixes = suffixes[:-1]
    if suffixes and suffixes[-1] in EXPORT_FORMATS:
        return EXPORT_FORMATS[suffixes[-1]]
    raise AnalyticsError(
        f"Cannot tell the export format of {str(path)!r} from its extension; pass format= one of {', '.join(CODECS)}."
    )


def _check_replaceable_folder(out: Path, partition_by: Sequence[str] | None, what: str) -> None:
    """Refuse to delete a folder unless it holds only an earlier partitioned export."""
    if not partition_by:
        raise AnalyticsError(
            f"{str(out)!r} is a folder; exporting {what!r} needs a file path (or partition_by)."
        )
    # Hive layout only: key=value folders and Parquet files. Anything else might be the
    # user's data, and overwrite=True must never delete that.
    strays = [
        p
        for p in out.rglob("*")
        if not ((p.is_dir() and "=" in p.name) or (p.is_file() and p.suffix == ".parquet"))
    ]
    if strays:
        listed = ", ".join(str(p.relative_to(out)) for p in strays[:3])
        raise AnalyticsError(
            f"Not replacing folder {str(out)!r}: it holds more than a partitioned export "
            f"({listed}). Remove those files or export {what!r} to another folder."
        )


def export_relation(
    con: duckdb.DuckDBPyConnection,
    sql: str,
    params: Sequence[Any] | Mapping[str, Any] | None,
    path: str | Path,
    what: str,
    *,
    format: str | None = None,
    codec: str | None = None,
    partition_by: Sequence[str] | None = None,
    overwrite: bool = False,
) -> ExportInfo:
    """Write the rows of ``sql`` to ``path`` with ``COPY ... TO ?``.

    Args:
        con: the connection.
        sql: a SELECT whose identifiers are already quoted.
        params: its bound parameters.
        path: output file, or folder when partitioned.
        what: the table name or ``query``, for messages.
        format: ``parquet``, ``csv``, ``json`` or ``ndjson``; from the extension by default.
        codec: compression, see :data:`CODECS`.
        partition_by: Parquet only: hive-partition into a folder by these columns.
        overwrite: replace an existing file or folder.

    Returns:
        An :class:`ExportInfo`.
    """
    out = Path(path)
    # A partitioned export writes a folder, which usually has no extension to go by.
    known_suffix = bool(out.suffixes) and out.suffixes[-1].lower() in (
        *EXPORT_FORMATS,
        ".gz",
        ".zst",
    )
    fmt = _format_for(out, format or (None if known_suffix or not partition_by else "parquet"))
    chosen = (codec or DEFAULT_CODEC[fmt]).lower()
    if chosen not in CODECS[fmt]:
        raise AnalyticsError(
            f"Codec {chosen!r} is not available for {fmt}."
            + did_you_mean(chosen, CODECS[fmt])
            + f" Known: {', '.join(CODECS[fmt])}."
        )
    if partition_by and fmt != "parquet":
        raise AnalyticsError(f"partition_by works with Parquet only; exporting {what!r} as {fmt}.")
    if out.exists():
        if not overwrite:
            raise AnalyticsError(
                f"{str(out)!r} already exists; pass overwrite=True to replace it (exporting {what!r})."
            )
        # Removed first so no file of an earlier export survives next to the new ones.
        if out.is_dir():
            _check_replaceable_folder(out, partition_by, what)
            shutil.rmtree(out)
        else:
            out.unlink()
    out.parent.mkdir(parents=True, exist_ok=True)

    if fmt == "parquet":
        options = [f"FORMAT parquet, COMPRESSION {chosen}"]
        if partition_by:
            options.append(f"PARTITION_BY ({', '.join(quote_ident(c) for c in partition_by)})")
    elif fmt == "csv":
        options = [f"FORMAT csv, HEADER true, COMPRESSION {chosen}"]
    else:
        options = [
            f"FORMAT json, ARRAY {'true' if fmt == 'json' else 'false'}, COMPRESSION {chosen}"
        ]
    bound: list[Any] | dict[str, Any]
    if isinstance(params, Mapping):
        # Named parameters: the path gets a name no user query is likely to use.
        bound = {**params, "__headrace_path": str(out)}
        target = "$__headrace_path"
    else:
        bound = [*(params or []), str(out)]
        target = "?" if not params or "?" in sql else f"${len(bound)}"
    copy = f"COPY ({sql}) TO {target} ({', '.join(options)})"
    try:
        rows = con.execute(copy, bound).fetchall()[0][0]
    except duckdb.Error as exc:
        raise AnalyticsError(f"Exporting {what!r} to {str(out)!r} as {fmt} failed: {exc}") from exc
    files = sorted(p for p in out.rglob("*") if p.is_file()) if out.is_dir() else [out]
    return ExportInfo(path=out, format=fmt, codec=chosen, rows=int(rows), files=files)
