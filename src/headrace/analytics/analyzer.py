"""The DuckDB analyzer: load files, query with bound parameters, summarise, export.

One :class:`Analyzer` owns one DuckDB connection, in memory or on a file such as a
pipeline's warehouse (``.headrace/warehouse.duckdb``). Every table and column name
that reaches SQL is looked up in the catalog first, so an unknown one fails with the
closest known name, and is then quoted; every value is a bound parameter.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from headrace.analytics import aggregate as agg
from headrace.analytics.aggregate import Summary
from headrace.analytics.loaders import (
    FORMATS,
    arrow_reader,
    default_table_name,
    format_for_path,
    native_load,
)
from headrace.analytics.query_result import Result
from headrace.analytics.sql_quoting import quote_qualified
from headrace.analytics.table_catalog import Relation, TableRef, find_relation, list_relations
from headrace.errors import AnalyticsError, TransientError, did_you_mean

if TYPE_CHECKING:
    from headrace.analytics.export import ExportInfo
    from headrace.analytics.profile import Profile


class WarehouseBusyError(AnalyticsError, TransientError):
    """The database file is locked by a process writing to it; trying later can work."""


class Analyzer:
    """In-process analytics over DuckDB.

    Args:
        path: ``None`` or ``":memory:"`` for an in-memory database, or a ``.duckdb``
            file (a pipeline's warehouse, for instance).
        read_only: open the file read-only, so a running pipeline's warehouse can be
            inspected safely; loads then create temporary tables and views.
        memory_limit: DuckDB memory limit such as ``"2GB"``; DuckDB spills to a
            private temporary folder beyond it. ``None`` keeps DuckDB's default.
        threads: worker threads for DuckDB; ``None`` keeps DuckDB's default.

    Example:
        >>> with Analyzer() as a:
        ...     _ = a.query("CREATE TABLE sales AS SELECT 'toys' AS category, 9.5 AS amount")
        ...     a.group_by("sales", "category", ["count", "sum"], on="amount").rows()
        [('toys', 1, Decimal('9.5'))]
    """

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        read_only: bool = False,
        memory_limit: str | None = None,
        threads: int | None = None,
    ) -> None:
        in_memory = path is None or str(path) == ":memory:"
        if in_memory and read_only:
            raise AnalyticsError(
                "read_only=True needs a database file; an in-memory database is always writable."
            )
        if not in_memory and read_only and not Path(str(path)).exists():
            raise AnalyticsError(
                f"Database file {str(path)!r} does not exist; check the path "
                "(a pipeline's warehouse is .headrace/warehouse.duckdb after its first run)."
            )
        self.location = ":memory:" if in_memory else str(path)
        self.read_only = read_only
        # Spill files go to a private folder instead of DuckDB's default ``.tmp``
        # in the working directory, and are removed on close.
        self._tmpdir = tempfile.mkdtemp(prefix="headrace-duckdb-")
        config: dict[str, Any] = {"temp_directory": self._tmpdir}
        if memory_limit is not None:
            config["memory_limit"] = memory_limit
        if threads is not None:
            config["threads"] = threads
        try:
            self._con = duckdb.connect(self.location, read_only=read_only, config=config)
        except duckdb.Error as exc:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            message = f"Cannot open DuckDB database {self.location!r}: {exc}."
            if "lock" in str(exc).lower():
                raise WarehouseBusyError(
                    message + " Another process (a running pipeline?) holds the file open "
                    "for writing; retry when it finishes."
                ) from exc
            raise AnalyticsError(message) from exc
        # The progress bar is enabled only so query_progress() reports; DuckDB's own
        # printing stays off (the CLI draws a Rich bar instead).
        self._con.execute("SET enable_progress_bar = true; SET enable_progress_bar_print = false")

    # -- lifecycle -------------------------------------------------------------

    def close(self) -> None:
        """Close the connection and remove the spill folder."""
        self._con.close()
        shutil.rmtree(self._tmpdir, ignore_errors=True)

    def __enter__(self) -> Analyzer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def connection(self) -> duckdb.DuckDBPyConnection:
        """The underlying DuckDB connection, for what this class does not cover."""
        return self._con

    def progress(self) -> float | None:
        """Percent done of the query running now (from another thread), or ``None``."""
        value = self._con.query_progress()
        return None if value < 0 else float(value)

    # -- catalog ---------------------------------------------------------------

    def relations(self) -> list[Relation]:
        """Every user table and view visible to this connection."""
        return list_relations(self._con)

    def tables(self) -> list[str]:
        """Names of the tables and views, as :meth:`resolve` accepts them."""
        return [r.display for r in self.relations()]

    def resolve(self, table: TableRef) -> Relation:
        """Find a table or view by name; an unknown name raises with the closest one.

        Args:
            table: a name (``"sales"``; ``"raw.sales"`` when no table is literally
                called that), or a ``(schema, name)`` / ``(database, schema, name)`` tuple.

        Returns:
            The catalog entry, whose :attr:`Relation.sql` is safe to put in SQL.
        """
        return find_relation(self._con, table, self.location)

    def columns(self, table: TableRef) -> dict[str, str]:
        """Column name to DuckDB type name, in table order."""
        rel = self.resolve(table)
        desc = self._con.sql(f"SELECT * FROM {rel.sql} LIMIT 0")
        return {name: str(t) for name, t in zip(desc.columns, desc.types, strict=True)}

    def check_columns(self, table: TableRef, names: Sequence[str]) -> dict[str, str]:
        """Types of ``names`` in ``table``; an unknown column raises with the closest one."""
        cols = self.columns(table)
        for name in names:
            if name not in cols:
                raise AnalyticsError(
                    "unknown column."
                    + did_you_mean(name, cols)
                    + f" Columns: {', '.join(repr(c) for c in cols)}.",
                    table=self.resolve(table).display,
                    column=name,
                )
        return {n: cols[n] for n in names}

    # -- loading ---------------------------------------------------------------

    def load(self, path: str | Path, table: str | None = None, **kwargs: Any) -> str:
        """Load a file, choosing the reader from its extension.

        Args:
            path: CSV/TSV, Parquet, JSON/NDJSON, Avro, ORC or Arrow IPC file.
            table: name of the new table or view; the file's stem by default.
            kwargs: passed to the format's ``load_*`` method.

        Returns:
            The name of the table or view created.
        """
        fmt = format_for_path(path)
        return getattr(self, f"load_{fmt}")(path, table, **kwargs)

    def load_csv(
        self,
        path: str | Path,
        table: str | None = None,
        *,
        view: bool = False,
        replace: bool = False,
        **options: Any,
    ) -> str:
        """Load a CSV file (DuckDB ``read_csv``; header, delimiter and types detected).

        Args:
            path: file path or glob.
            table: name of the table or view; by default the file name without its
                extensions (``sales.csv.gz`` gives ``sales``).
            view: create a view that reads the file at each query instead of a table.
            replace: replace an existing table or view of that name.
            options: ``read_csv`` options such as ``header=True``, ``delim=";"``,
                ``nullstr="NA"``, ``all_varchar=True``. Bad rows are never skipped.

        Returns:
            The name of the table or view created.
        """
        return self._native("csv", path, table, view, replace, options)

    def load_parquet(
        self,
        path: str | Path,
        table: str | None = None,
        *,
        view: bool = False,
        replace: bool = False,
        **options: Any,
    ) -> str:
        """Load Parquet (a file, a glob or a hive-partitioned folder's glob); see :meth:`load_csv`."""
        return self._native("parquet", path, table, view, replace, options)

    def load_json(
        self,
        path: str | Path,
        table: str | None = None,
        *,
        view: bool = False,
        replace: bool = False,
        **options: Any,
    ) -> str:
        """Load JSON: an array of objects or newline-delimited (NDJSON), detected; see :meth:`load_csv`."""
        return self._native("json", path, table, view, replace, options)

    def load_avro(
        self, path: str | Path, table: str | None = None, *, replace: bool = False
    ) -> str:
        """Load Avro as a table, streamed in batches (logical types such as timestamps kept)."""
        return self.load_arrow(
            arrow_reader("avro", path), table or default_table_name(path), replace=replace
        )

    def load_orc(self, path: str | Path, table: str | None = None, *, replace: bool = False) -> str:
        """Load ORC as a table, one stripe at a time."""
        return self.load_arrow(
            arrow_reader("orc", path), table or default_table_name(path), replace=replace
        )

    def load_arrow(
        self,
        source: str | Path | pa.Table | pa.RecordBatchReader | Any,
        table: str | None = None,
        *,
        replace: bool = False,
    ) -> str:
        """Load Arrow data as a table: an Arrow IPC file/stream, a ``pyarrow`` table or reader, a Polars frame.

        Args:
            source: the data, or the path of an Arrow IPC (Feather v2) file or stream.
            table: table name; the file's stem for a path, required otherwise.
            replace: replace an existing table or view of that name.

        Returns:
            The name of the table created.
        """
        if isinstance(source, str | Path):
            name = table or default_table_name(source)
            data: Any = arrow_reader("arrow", source)
        else:
            if table is None:
                raise AnalyticsError("load_arrow needs a table name when given in-memory data.")
            name, data = table, source
            if hasattr(data, "to_arrow") and not isinstance(data, pa.Table):  # Polars frames
                data = data.to_arrow()
        self._check_new_name(name, replace)
        scratch = f"__headrace_src_{uuid.uuid4().hex}"
        self._con.register(scratch, data)
        try:
            self._con.execute(
                f"CREATE {'OR REPLACE ' if replace else ''}{self._temp()}TABLE "
                f"{quote_qualified((name,))} AS SELECT * FROM {quote_qualified((scratch,))}"
            )
        except duckdb.Error as exc:
            raise AnalyticsError(f"loading Arrow data failed: {exc}", table=name) from exc
        finally:
            self._con.unregister(scratch)
        return name

    def _native(
        self,
        fmt: str,
        path: str | Path,
        table: str | None,
        view: bool,
        replace: bool,
        options: Mapping[str, Any],
    ) -> str:
        name = table or default_table_name(path)
        self._check_new_name(name, replace)
        native_load(
            self._con,
            fmt,
            path,
            name,
            view=view,
            replace=replace,
            temp=self.read_only,
            options=options,
        )
        return name

    def _temp(self) -> str:
        # A read-only database accepts only temporary objects, which live in memory.
        return "TEMP " if self.read_only else ""

    def _check_new_name(self, name: str, replace: bool) -> None:
        if replace:
            return
        taken = {r.name for r in self.relations() if r.schema == "main"}
        if name in taken:
            raise AnalyticsError(
                f"already exists in {self.location}; pass replace=True or choose another name.",
                table=name,
            )

    # -- querying --------------------------------------------------------------

    def query(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> Result:
        """Run SQL with bound parameters and return its rows.

        Args:
            sql: one or more statements; ``?``/``$1`` or ``$name`` placeholders.
            params: values for the placeholders of the last statement.

        Returns:
            A :class:`Result` (empty for statements that return nothing).

        Example:
            >>> with Analyzer() as a:
            ...     a.query("SELECT $n * 2 AS doubled", {"n": 21}).scalar()
            42
        """
        try:
            rel = self._con.sql(sql, params=params)
            table = rel.to_arrow_table() if rel is not None else pa.table({})
        except duckdb.Error as exc:
            raise AnalyticsError(f"Query failed: {exc}\n  in: {_excerpt(sql)}") from exc
        return Result(table)

    def reader(
        self,
        sql: str,
        params: Sequence[Any] | Mapping[str, Any] | None = None,
        batch_size: int = 131_072,
    ) -> pa.RecordBatchReader:
        """Run a query and return its rows as a streaming Arrow record-batch reader.

        Memory holds about one batch, whatever the result size. Read it to the end or
        close it before the next query: DuckDB keeps the connection busy until then.
        """
        try:
            rel = self._con.sql(sql, params=params)
            if rel is None:  # a statement that returns no rows
                return pa.RecordBatchReader.from_batches(pa.schema([]), [])
            return rel.to_arrow_reader(batch_size=batch_size)
        except duckdb.Error as exc:
            raise AnalyticsError(f"Query failed: {exc}\n  in: {_excerpt(sql)}") from exc

    def stream(
        self,
        sql: str,
        params: Sequence[Any] | Mapping[str, Any] | None = None,
        batch_size: int = 131_072,
    ) -> Iterator[pa.RecordBatch]:
        """Run a query and yield its rows as Arrow record batches, holding one batch at a time."""
        with self.reader(sql, params, batch_size) as batches:
            yield from batches

    # -- summaries -------------------------------------------------------------

    def aggregate(
        self,
        table: TableRef,
        columns: Sequence[str] | None = None,
        metrics: Sequence[str] | None = None,
    ) -> Summary:
        """Summary statistics of chosen columns in one pass.

        Args:
            table: table or view.
            columns: columns to summarise; all by default.
            metrics: among ``count, nulls, distinct, min, max, mean, median, stddev,
                sum``; all by default. A metric that does not apply to a column's type
                (``sum`` of text) is left out for that column.

        Returns:
            A :class:`Summary`: ``summary.rows`` and ``summary["amount"]["sum"]``.
        """
        return agg.aggregate(self, table, columns, metrics)

    def group_by(
        self,
        table: TableRef,
        by: str | Sequence[str],
        metrics: Sequence[str] | Mapping[str, Sequence[str]] = ("count",),
        *,
        on: str | Sequence[str] | None = None,
        order_by: str | None = None,
        descending: bool | None = None,
        limit: int | None = None,
    ) -> Result:
        """Group rows and compute metrics per group.

        Args:
            table: table or view.
            by: grouping column(s).
            metrics: names such as ``count, distinct, sum, avg, min, max, median,
                stddev, var, p95`` applied to every ``on`` column (``count`` alone
                counts rows), or a mapping ``{"amount": ["sum", "avg"]}``.
            on: value column(s) for the metrics given as a list.
            order_by: output column to sort by; by default ``count`` when computed,
                else the first metric, largest first.
            descending: sort direction; largest first for metrics, A-Z for groups.
            limit: keep only the first rows.

        Returns:
            One row per group: the group columns, then ``count`` and ``<metric>_<column>``.
            Exact percentiles (``median``, ``pNN``) keep the column's values in memory
            (8 bytes a row); every other metric needs a few bytes per group.
        """
        return agg.group_by(
            self, table, by, metrics, on=on, order_by=order_by, descending=descending, limit=limit
        )

    def percentiles(
        self,
        table: TableRef,
        column: str,
        percentiles: Sequence[float] = (25, 50, 75, 90, 95, 99),
        *,
        approximate: bool = False,
    ) -> dict[str, Any]:
        """Percentiles of one column (exact and interpolated, or approximate with t-digest).

        Args:
            table: table or view.
            column: numeric or temporal column.
            percentiles: values between 0 and 100.
            approximate: use DuckDB's ``approx_quantile`` (bounded memory, ~1% error).

        Returns:
            ``{"p50": ..., "p95": ...}``; values are ``None`` for an empty table.
        """
        return agg.percentiles(self, table, column, percentiles, approximate=approximate)

    def profile(
        self, table: TableRef, *, top: int = 5, bins: int = 20, exact_distinct: bool | None = None
    ) -> Profile:
        """Profile every column: type, null share, distinct count, min/max, top values, histogram.

        Args:
            table: table or view.
            top: how many most frequent values to keep per column.
            bins: histogram bins for numeric and temporal columns.
            exact_distinct: count distinct values exactly (``True``, more memory) or
                with HyperLogLog (``False``, a few percent of error); by default
                exactly up to a million rows.

        Returns:
            A :class:`~headrace.analytics.profile.Profile`.
        """
        from headrace.analytics.profile import profile_table

        return profile_table(self, table, top=top, bins=bins, exact_distinct=exact_distinct)

    # -- export ----------------------------------------------------------------

    def export(
        self,
        table: TableRef,
        path: str | Path,
        *,
        format: str | None = None,
        codec: str | None = None,
        partition_by: Sequence[str] | None = None,
        overwrite: bool = False,
    ) -> ExportInfo:
        """Write a table or view to a file.

        Args:
            table: table or view.
            path: output file, or folder for ``partition_by``.
            format: ``parquet``, ``csv``, ``json`` (one array) or ``ndjson``; from
                the extension by default.
            codec: compression: Parquet ``zstd`` (default), ``snappy``, ``gzip``,
                ``lz4``, ``brotli``, ``uncompressed``; CSV/JSON ``none`` (default),
                ``gzip``, ``zstd``.
            partition_by: Parquet only: write a hive-partitioned folder by these columns.
            overwrite: replace an existing file or folder.

        Returns:
            An :class:`~headrace.analytics.export.ExportInfo` with the path and row count.
        """
        from headrace.analytics.export import export_relation

        rel = self.resolve(table)
        if partition_by:
            self.check_columns(table, list(partition_by))
        return export_relation(
            self._con, f"SELECT * FROM {rel.sql}", None, path, rel.display,
            format=format, codec=codec, partition_by=partition_by, overwrite=overwrite,
        )  # fmt: skip

    def export_query(
        self,
        sql: str,
        path: str | Path,
        params: Sequence[Any] | Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> ExportInfo:
        """Write the rows of a query to a file; options as in :meth:`export`."""
        from headrace.analytics.export import export_relation

        return export_relation(self._con, sql, params, path, "query", **kwargs)


def _excerpt(sql: str, limit: int = 200) -> str:
    flat = " ".join(sql.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


__all__ = ["FORMATS", "Analyzer", "Relation", "TableRef", "WarehouseBusyError"]
