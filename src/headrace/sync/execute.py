"""Running one sync: checkpoint → extract → transform → checks → fenced load, re-extracting
when another load overtook this one.

Every step a hand-wired pipeline used to write is here once: the checkpoint is read
from the destination; the load is fenced on it (:class:`CheckpointMoved` means another
run committed first: extract again from its checkpoint, at most ``max_reextracts``
times); the load id comes from what is loaded (:func:`load_identity`); quarantined rows
go to ``<table>_quarantine`` in the load's transaction; rows reconcile before commit.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import pyarrow as pa

from headrace.connectors import Checkpoint, Cursor, FileSource, Interval, SqlSource
from headrace.connectors.destinations import (
    AnyDestination,
    DuckDBDestination,
    LakeDestination,
    PostgresDestination,
    open_destination,
)
from headrace.connectors.destinations.destination_base import LoadResult, as_arrow
from headrace.connectors.incremental import (
    CheckpointMoved,
    DataDigest,
    column_max,
    data_digest,
    later,
    load_identity,
)
from headrace.connectors.naming import default_warehouse
from headrace.connectors.objectstore import ObjectStore
from headrace.connectors.sources import Extract
from headrace.errors import ConnectorError
from headrace.extras import require
from headrace.pipeline import Context
from headrace.quality import CheckReport, ReportTally, apply_checks, reconcile, run_sql_tests
from headrace.quality.expectations import RowExpectation, Unique
from headrace.state.store_base import CheckResultRecord
from headrace.sync.sync_lineage import source_connection, sync_lineage
from headrace.sync.sync_spec import (
    CursorStrategy,
    FileSourceSpec,
    FullStrategy,
    IntervalStrategy,
    SqlSourceSpec,
)

if TYPE_CHECKING:
    from headrace.sync.declaration import Sync


def run_sync(spec: Sync, ctx: Context) -> dict[str, Any]:
    """Run ``spec`` once for the run of ``ctx``; return the load's stats.

    Returns:
        extracted, loaded, replaced, quarantined, superseded, load_id, already_loaded,
        reextracts, checkpoint, source and destination (datasets, for lineage).
    """
    dest = open_sync_destination(spec, ctx)
    # The checks' results go to the state store like a task's (the web UI's checks),
    # once per sync: those of the extract that was loaded, or that failed it.
    tally = ReportTally()
    try:
        for attempt in range(spec.max_reextracts + 1):
            tally.clear()  # a re-extract checks its rows again
            try:
                load = _stream_and_load if streamable(spec) else _extract_and_load
                stats = load(spec, ctx, dest, attempt, tally)
                break
            except CheckpointMoved as moved:
                ctx.log.warning(
                    "sync %s: another load committed first (checkpoint %r -> %r); "
                    "re-extracting (%d of %d)",
                    spec.name, moved.expected, moved.found, attempt + 1, spec.max_reextracts,
                )  # fmt: skip
                if attempt == spec.max_reextracts:
                    raise
                time.sleep(0.05 * (attempt + 1))
        if spec.sql_tests is not None:
            report = _run_sql_tests(spec, ctx, dest)
            tally.add(report)
            report.raise_for_failures()
            stats["sql_tests_passed"] = len(report.results)
    finally:
        if tally.results:
            ctx.record_checks(tally.records(ctx.run_id, ctx.task_id))
    return stats


def _run_sql_tests(spec: Sync, ctx: Context, dest: AnyDestination) -> CheckReport:
    """The sync's SQL tests over the loaded destination. A lake (Delta, Iceberg, files)
    has no SQL engine of its own: the tests run in DuckDB, each table registered at its
    latest version under its own name."""
    assert spec.sql_tests is not None
    if isinstance(dest, LakeDestination):
        import duckdb

        con = duckdb.connect()
        try:
            dest.register(con)
            return run_sql_tests(con, spec.sql_tests, pipeline=ctx.pipeline)
        finally:
            con.close()
    return run_sql_tests(sql_test_target(dest), spec.sql_tests, pipeline=ctx.pipeline)


def sql_test_target(dest: AnyDestination) -> str:
    """The URL SQL tests run against: the DuckDB file, or PostgreSQL with the schema first
    on its search_path (so tests name tables without a schema)."""
    if isinstance(dest, DuckDBDestination):
        return f"duckdb:///{dest.path}"
    if not isinstance(dest, PostgresDestination):
        raise ConnectorError(
            f"SQL tests (sql_tests=) run on DuckDB, PostgreSQL and lake destinations (Delta, "
            f"Iceberg, files), not on {dest.where}; check the loaded table with checks= instead."
        )
    url = dest.conn_url.url
    if not dest.schema:
        return url
    options = urlencode({"options": f"-csearch_path={dest.schema}"})
    return f"{url}{'&' if '?' in url else '?'}{options}"


def open_sync_destination(spec: Sync, ctx: Context) -> AnyDestination:
    """The destination connection by name (``warehouse``: the embedded DuckDB by default)."""
    name = spec.destination.connection
    if name == "warehouse" and not ctx.settings.has_connection(name):
        return open_destination(default_warehouse(ctx.settings))
    return open_destination(name, ctx.settings)


def _extract_and_load(
    spec: Sync, ctx: Context, dest: AnyDestination, attempt: int, tally: ReportTally
) -> dict[str, Any]:
    """One pass holding the extract in memory (for a transform or table-wide checks)."""
    dataset, strategy, target = spec.source.dataset, spec.incremental, spec.destination
    start = dest.checkpoint(ctx.pipeline, dataset) if isinstance(strategy, CursorStrategy) else None
    raw, aside = _extract(spec, ctx, start)
    rows = _transform(spec, ctx, raw)
    outcome = apply_checks(rows, spec.checks, pipeline=ctx.pipeline, task=ctx.task_id)
    tally.add(outcome, rows.num_rows)
    outcome.raise_for_failures()
    good, bad = _without(outcome.passed, target.exclude), outcome.quarantined
    n_checked_out = 0 if bad is None else bad.num_rows
    reconcile(rows.num_rows, good.num_rows, n_checked_out, pipeline=ctx.pipeline,
              run_id=ctx.run_id, table=target.table)  # fmt: skip
    # rows the source set aside are quarantined in the same load, typed as the transform's
    bad = _with(bad, _retyped(aside, rows.schema))
    n_bad = 0 if bad is None else bad.num_rows
    covers = _covers(strategy, start, ctx)
    if rows.num_rows == 0 and not n_bad:
        table_rows = dest.row_count(target.table) or 0
        return {
            **_stats(spec, ctx, None, raw.num_rows + n_bad - n_checked_out, attempt, covers),
            "table_rows": table_rows,
            "lineage": sync_lineage(
                spec, ctx, dest, raw.schema, _without(rows, target.exclude).schema
            ),
        }
    load_id = load_identity(
        ctx.pipeline, dataset, target.table, covers, data_digest(good) + data_digest(bad)
    )
    kwargs = _fencing(spec, ctx, start, target.mode)
    if "checkpoint" in kwargs:
        column = strategy.column  # type: ignore[union-attr]
        newest = column_max(raw, column)
        if aside is not None and column in aside.column_names:  # handled too: not read again
            newest = later(newest, column_max(aside, column))
        kwargs["checkpoint"] = Checkpoint(ctx.pipeline, dataset, newest)
    if kwargs.get("cursor_column") not in (None, *good.column_names):
        kwargs.pop("cursor_column")  # the transform dropped the cursor column
        kwargs.pop("dedupe_order_by")

    def verify(result: LoadResult) -> None:
        # before commit: the rows the destination staged and quarantined are the rows
        # handed in, and each staged row was loaded or superseded (an older copy of its
        # key in the same extract, or older than the row already stored)
        reconcile(good.num_rows + n_bad, result.rows_in, result.rows_quarantined,
                  pipeline=ctx.pipeline, run_id=ctx.run_id, table=target.table)  # fmt: skip
        reconcile(result.rows_in, result.rows_loaded, result.rows_superseded,
                  pipeline=ctx.pipeline, run_id=ctx.run_id, table=target.table)  # fmt: skip

    with dest.session():  # one connection for the load and the count after it
        result = dest.write(
            good, target.table, mode=target.mode, keys=target.keys, quarantine=bad,
            load_id=load_id, metadata=target.metadata, origin=(ctx.pipeline, dataset),
            verify=verify, **kwargs,
        )  # fmt: skip
        rows = dest.row_count(target.table) or 0
    return {
        **_stats(spec, ctx, result, raw.num_rows + n_bad - n_checked_out, attempt, covers),
        "table_rows": rows,
        "lineage": sync_lineage(
            spec, ctx, dest, raw.schema, good.schema, outcome.records(ctx.run_id, ctx.task_id)
        ),
    }


def streamable(spec: Sync) -> bool:
    """Whether the sync can stream: no transform (it may need every row at once), only
    checks that judge each row alone (not ``unique``, not table-level), and no file
    source read incrementally (files are filtered once read)."""
    files = isinstance(spec.source, FileSourceSpec)
    if files and not isinstance(spec.incremental, FullStrategy):
        return False
    return spec.transform is None and all(
        isinstance(c, RowExpectation) and not isinstance(c, Unique) for c in spec.checks
    )


def _stream_and_load(
    spec: Sync, ctx: Context, dest: AnyDestination, attempt: int, tally: ReportTally
) -> dict[str, Any]:
    """One pass that never holds the whole extract: batches are checked and digested on
    their way into the destination; the load id and quarantine are settled at the end."""
    dataset, strategy, target = spec.source.dataset, spec.incremental, spec.destination
    start = dest.checkpoint(ctx.pipeline, dataset) if isinstance(strategy, CursorStrategy) else None
    extract = _open_extract(spec, ctx, start)
    good, bad = DataDigest(), DataDigest()
    rejected: list[pa.Table] = []
    counts = {"in": 0, "good": 0}
    checks: dict[str, CheckResultRecord] = {}  # per expectation, summed over the batches

    def checked() -> Iterator[pa.RecordBatch]:
        for batch in extract.reader(prefetch=4):
            counts["in"] += batch.num_rows
            passed = batch
            if spec.checks:
                outcome = apply_checks(
                    pa.Table.from_batches([batch]), spec.checks, pipeline=ctx.pipeline,
                    task=ctx.task_id,
                )  # fmt: skip
                tally.add(outcome, batch.num_rows)
                outcome.raise_for_failures()
                _add_checks(checks, outcome.records(ctx.run_id, ctx.task_id))
                if outcome.quarantined is not None and outcome.quarantined.num_rows:
                    rejected.append(outcome.quarantined)
                    bad.update(outcome.quarantined)
                passed = (
                    outcome.passed.combine_chunks().to_batches()[0]
                    if outcome.passed.num_rows
                    else None
                )
            if passed is not None and passed.num_rows:
                passed = _without(passed, target.exclude)
                counts["good"] += passed.num_rows
                good.update(passed)
                yield passed

    covers = _covers(strategy, start, ctx)

    def load_id() -> str:
        return load_identity(
            ctx.pipeline, dataset, target.table, covers, good.hexdigest() + bad.hexdigest()
        )

    def quarantine() -> pa.Table | None:
        checked_out = pa.concat_tables(rejected, promote_options="default") if rejected else None
        aside = _set_aside(extract)  # known once the stream has been read to its end
        counts["aside"] = 0 if aside is None else aside.num_rows
        return _with(checked_out, aside)

    kwargs = _fencing(spec, ctx, start, target.mode)
    if "checkpoint" in kwargs:
        kwargs["checkpoint"] = lambda: Checkpoint(ctx.pipeline, dataset, extract.cursor_max)
    kwargs.pop("dedupe_order_by", None)  # a stream is staged once; duplicate keys fail loudly

    def verify(result: LoadResult) -> None:
        # every row read, and every row the source set aside, was staged or quarantined;
        # the destination may quarantine more of the staged rows (its text screen), never fewer
        n_aside = counts.get("aside", 0)
        reconcile(counts["in"] + n_aside, result.rows_in, result.rows_quarantined,
                  pipeline=ctx.pipeline, run_id=ctx.run_id, table=target.table)  # fmt: skip
        n_bad = counts["in"] - counts["good"] + n_aside
        if result.rows_quarantined < n_bad:
            reconcile(n_bad, 0, result.rows_quarantined, pipeline=ctx.pipeline,
                      run_id=ctx.run_id, table=target.table + "_quarantine")  # fmt: skip

    schema = extract.schema
    for name in target.exclude:
        schema = schema.remove(schema.get_field_index(name))
    reader = pa.RecordBatchReader.from_batches(schema, checked())
    with dest.session():  # one connection for the load and the count after it
        result = dest.write(
            reader, target.table, mode=target.mode, keys=target.keys, quarantine=quarantine,
            load_id=load_id, metadata=target.metadata, origin=(ctx.pipeline, dataset),
            verify=verify, **kwargs,
        )  # fmt: skip
        rows = dest.row_count(target.table) or 0
    return {
        **_stats(spec, ctx, result, counts["in"] + counts.get("aside", 0), attempt, covers),
        "table_rows": rows,
        "lineage": sync_lineage(spec, ctx, dest, extract.schema, schema, list(checks.values())),
    }


def _add_checks(checks: dict[str, CheckResultRecord], batch: list[CheckResultRecord]) -> None:
    """Fold one batch's check results into the stream's: rows and failures add up, an
    expectation failed if it failed on any batch; the sample is the first failing one's."""
    for record in batch:
        seen = checks.get(record.expectation)
        if seen is None:
            checks[record.expectation] = replace(record, details=dict(record.details))
            continue
        seen.total += record.total
        seen.failed += record.failed
        if record.status == "failed" and seen.status != "failed":
            seen.status = "failed"
            seen.details["sample"] = record.details.get("sample", [])
        if "failed_pct" in seen.details:
            seen.details["failed_pct"] = (
                round(100.0 * seen.failed / seen.total, 4) if seen.total else 0.0
            )


def _set_aside(extract: Extract) -> pa.Table | None:
    """The rows the source itself set aside, read once the extract is exhausted: values
    with no faithful type (value policy, ``_hr_reason``) and malformed file lines
    (``_hr_file``, ``_hr_line``, ``_hr_reason``, ``_hr_text``). They go to the same
    quarantine as the checks' rejects."""
    tables = []
    rejects = getattr(extract, "rejects", None)
    if rejects is not None and rejects.count:
        tables.append(rejects.table())
    if getattr(extract, "malformed", None):
        lines = extract.quarantine_table()  # type: ignore[attr-defined]
        # one reason column in the quarantine table, whoever set the row aside; and
        # names no data column has: a column "line" of text beside the line numbers
        # would make the quarantine refuse one or the other (string vs int64)
        tables.append(lines.rename_columns([f"_hr_{c}" for c in lines.column_names]))
    tables = [t for t in tables if t is not None and t.num_rows]
    if not tables:
        return None
    return pa.concat_tables(tables, promote_options="permissive")


def _retyped(aside: pa.Table | None, schema: pa.Schema) -> pa.Table | None:
    """The rows the source set aside before the transform, each column the transform gave
    another type in that type (``schema``: the transformed rows'), so that they and the
    checks' rejects make one quarantine table, today and in later loads.

    When a value has no form in the new type (text ``'A1'`` of a column made an integer),
    nothing is lost: that column is NULL in these rows and ``_hr_source_<column>`` keeps
    their values as text.
    """
    if aside is None:
        return None
    names: list[str] = []
    columns: list[pa.ChunkedArray | pa.Array] = []
    for name, column in zip(aside.column_names, aside.columns, strict=True):
        target = schema.field(name).type if name in schema.names else column.type
        if target == column.type:
            names.append(name)
            columns.append(column)
            continue
        try:
            columns.append(column.cast(target))
            names.append(name)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            text = [None if v is None else str(v) for v in column.to_pylist()]
            columns += [pa.nulls(aside.num_rows, target), pa.array(text, pa.string())]
            names += [name, f"_hr_source_{name}"]
    return pa.table(columns, names=names)


def _with(quarantine: pa.Table | None, aside: pa.Table | None) -> pa.Table | None:
    """Check rejects and source rejects as one quarantine table."""
    if aside is None:
        return quarantine
    if quarantine is None or not quarantine.num_rows:
        return aside
    return pa.concat_tables([quarantine, aside], promote_options="permissive")


def _without(data: Any, columns: tuple[str, ...]) -> Any:
    """``data`` (an Arrow table or batch) without ``columns``."""
    return data.drop_columns(list(columns)) if columns else data


def _covers(strategy: Any, start: Checkpoint | None, ctx: Context) -> Any:
    """What an extract covers, for its load id: the checkpoint it started from, or the interval."""
    if isinstance(strategy, IntervalStrategy):
        return (ctx.data_interval_start.isoformat(), ctx.data_interval_end.isoformat())
    return start.value if start else None


def _fencing(spec: Sync, ctx: Context, start: Checkpoint | None, mode: str) -> dict[str, Any]:
    """The write arguments that make the load exactly-once for the sync's strategy."""
    strategy, dataset = spec.incremental, spec.source.dataset
    kwargs: dict[str, Any] = {}
    if isinstance(strategy, CursorStrategy):
        kwargs["fence"] = start or Checkpoint(ctx.pipeline, dataset, None)
        kwargs["checkpoint"] = None  # set by the caller: the new cursor maximum
        if mode == "merge":
            kwargs["cursor_column"] = strategy.column
            kwargs["dedupe_order_by"] = strategy.column
    if isinstance(strategy, IntervalStrategy) and mode == "replace_partition":
        kwargs["partition"] = Interval(
            strategy.column, ctx.data_interval_start, ctx.data_interval_end
        )
    return kwargs


def _stats(
    spec: Sync, ctx: Context, result: LoadResult | None, extracted: int, attempt: int, covers: Any
) -> dict[str, Any]:
    """The task's result: counts, load id, checkpoint and the datasets (lineage)."""
    dataset, target = spec.source.dataset, spec.destination
    if result is None:
        ctx.log.info("sync %s: nothing new in %s", spec.name, dataset)
    else:
        ctx.log.info(
            "sync %s: %d extracted from %s, %d loaded into %s (%d replaced, %d superseded), "
            "%d quarantined%s",
            spec.name, extracted, dataset, result.rows_loaded, target.table,
            result.rows_replaced, result.rows_superseded, result.rows_quarantined,
            " (already loaded)" if result.already_loaded else "",
        )  # fmt: skip
    ckpt = result.checkpoint.value if result and result.checkpoint else covers
    return {
        "extracted": extracted,
        "loaded": result.rows_loaded if result else 0,
        "replaced": result.rows_replaced if result else 0,
        "quarantined": result.rows_quarantined if result else 0,
        "superseded": result.rows_superseded if result else 0,
        "load_id": result.load_id if result else None,
        "already_loaded": result.already_loaded if result else False,
        "reextracts": attempt,
        "checkpoint": ckpt.isoformat() if hasattr(ckpt, "isoformat") else ckpt,
        "source": dataset,
        "destination": f"{target.connection}.{target.table}",
    }


def _open_extract(spec: Sync, ctx: Context, start: Checkpoint | None) -> Extract:
    """The source's stream of rows for this run (the increment, for a SQL source)."""
    strategy = spec.incremental

    def progress(n: int) -> None:
        ctx.progress(n, None, f"rows extracted from {spec.source.dataset}")

    if isinstance(spec.source, FileSourceSpec):
        file_options = dict(spec.source.options)
        if "connection" in file_options:  # object storage: credentials from a named connection
            file_options["store"] = ObjectStore.from_url(
                ctx.settings.connection(file_options.pop("connection"))
            )
        return FileSource(spec.source.path, **file_options).read(progress=progress)
    options: dict[str, Any] = {"progress": progress}
    if isinstance(strategy, CursorStrategy):
        options["cursor"] = Cursor(
            strategy.column, strategy.initial, strategy.lookback, strategy.primary_key
        )
        options["checkpoint"] = start
    elif isinstance(strategy, IntervalStrategy):
        options["interval"] = Interval(
            strategy.column, ctx.data_interval_start, ctx.data_interval_end
        )
    return _sql_source(spec.source, ctx).read(**options)


def _extract(
    spec: Sync, ctx: Context, start: Checkpoint | None
) -> tuple[pa.Table, pa.Table | None]:
    """The increment as one table (files are read whole, then filtered), and the rows
    the source set aside while reading it."""
    extract = _open_extract(spec, ctx, start)
    table = extract.to_table()
    aside = _set_aside(extract)
    if isinstance(spec.source, FileSourceSpec):
        return _filter_files(table, spec.incremental, start, ctx), aside
    return table, aside


def _sql_source(spec: SqlSourceSpec, ctx: Context) -> SqlSource:
    conn = source_connection(spec, ctx)
    return SqlSource.from_url(
        conn, ctx.settings, table=spec.table, query=spec.query, schema=spec.schema,
        types=spec.types or None,
    )  # fmt: skip


def _filter_files(
    table: pa.Table, strategy: Any, start: Checkpoint | None, ctx: Context
) -> pa.Table:
    """Files are read whole; keep the rows of the increment (cursor or interval)."""
    import pyarrow.compute as pc

    if isinstance(strategy, CursorStrategy) and start is not None and start.value is not None:
        cursor = Cursor(strategy.column, strategy.initial, strategy.lookback, strategy.primary_key)
        bound, inclusive = cursor.lower_bound(start)
        compare = pc.greater_equal if inclusive else pc.greater
        return table.filter(compare(table.column(strategy.column), pa.scalar(bound)))
    if isinstance(strategy, IntervalStrategy):
        col = table.column(strategy.column)
        lo, hi = ctx.data_interval_start, ctx.data_interval_end
        if pa.types.is_timestamp(col.type) and col.type.tz is None:
            lo, hi = lo.replace(tzinfo=None), hi.replace(tzinfo=None)
        return table.filter(pc.and_(pc.greater_equal(col, lo), pc.less(col, hi)))
    return table


def _transform(spec: Sync, ctx: Context, raw: pa.Table) -> pa.Table:
    """Apply the declared transform (function of Polars/Arrow/pandas rows, or DuckDB SQL)."""
    fn = spec.transform
    if fn is None:
        return raw
    if isinstance(fn, str):
        import duckdb

        con = duckdb.connect()
        try:
            con.register("rows", raw)
            return con.sql(fn).to_arrow_table()
        finally:
            con.close()
    params = list(inspect.signature(fn).parameters.values())
    wants_ctx = bool(params) and params[0].name in ("ctx", "context")
    data_param = params[1] if wants_ctx and len(params) > 1 else (params[0] if params else None)
    data = _as_kind(raw, _kind_of(data_param))
    out = fn(ctx, data) if wants_ctx else fn(data)
    table = as_arrow(out, f"the transform of sync {spec.name!r}")
    if isinstance(table, pa.RecordBatchReader):
        table = table.read_all()
    if not isinstance(table, pa.Table):  # pragma: no cover - as_arrow returns one of the two
        raise ConnectorError(f"sync {spec.name!r}: transform returned {type(out).__name__}")
    return table


def _kind_of(param: inspect.Parameter | None) -> str:
    annotation = "" if param is None else str(param.annotation)
    if "pa.Table" in annotation or "pyarrow" in annotation:
        return "arrow"
    if "pd." in annotation or "pandas" in annotation:
        return "pandas"
    return "polars"


def _as_kind(table: pa.Table, kind: str) -> Any:
    if kind == "arrow":
        return table
    if kind == "pandas":
        return table.to_pandas()
    pl = require(
        "polars",
        "polars",
        "a sync transform taking a Polars DataFrame (annotate its rows pa.Table for Arrow)",
    )
    return pl.from_arrow(table)
