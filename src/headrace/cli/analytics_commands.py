"""``headrace query`` and ``headrace profile``: DuckDB analytics from the command line.

Both open the pipeline warehouse (``.headrace/warehouse.duckdb``) read-only when it
exists, so they are safe to run next to a pipeline; files given on the command line
become temporary views named after the file (``--file NAME=PATH`` names one).
"""

from __future__ import annotations

import csv
import functools
import json
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from headrace.analytics import Analyzer
from headrace.analytics.loaders import default_table_name, format_for_path
from headrace.analytics.report import format_value, sparkline, write_html
from headrace.cli.typer_app import app, console, err_console
from headrace.config import Settings
from headrace.errors import AnalyticsError

T = TypeVar("T")
WAREHOUSE_FILE = "warehouse.duckdb"
_NATIVE = ("csv", "parquet", "json")  # formats DuckDB reads itself, so they can be views


def find_warehouse(target: str | None, settings: Settings) -> Path | None:
    """The warehouse file to open, or ``None`` for an in-memory database.

    Args:
        target: ``--warehouse``: a ``.duckdb`` file, a pipeline project folder or its
            ``.headrace`` folder, a ``duckdb:///`` URL or the name of a connection
            holding one; ``None`` for the current project's warehouse if any.
        settings: the settings of the current directory.

    Returns:
        The file, or ``None`` when no target was given and no warehouse exists yet.
    """
    if target is None:
        default = settings.home / WAREHOUSE_FILE
        return default if default.exists() else None
    path = Path(target)
    if path.is_file():
        return path
    if "://" in target or (not path.exists() and settings.has_connection(target)):
        return _warehouse_of_connection(target, settings)
    if path.is_dir():
        candidates = [path / WAREHOUSE_FILE, Settings.from_env(cwd=path).home / WAREHOUSE_FILE]
        for candidate in candidates:
            if candidate.is_file():
                return candidate
        looked = ", ".join(str(c) for c in candidates)
        raise AnalyticsError(
            f"No warehouse in folder {target!r}: looked for {looked}. Has the pipeline run yet?"
        )
    raise AnalyticsError(
        f"Warehouse {target!r} not found: give a .duckdb file or a pipeline project folder."
    )


def _warehouse_of_connection(target: str, settings: Settings) -> Path:
    """The file of a ``duckdb:///`` URL or of a named connection holding one."""
    from headrace.connectors.naming import resolve

    conn = resolve(target, settings)
    if conn.backend != "duckdb" or conn.path == ":memory:":
        raise AnalyticsError(
            f"--warehouse {conn.masked!r} is a {conn.backend} connection; "
            "headrace query and profile read DuckDB warehouses (duckdb:///path.duckdb)."
        )
    found = Path(conn.path)
    if not found.is_file():
        raise AnalyticsError(
            f"Warehouse file {conn.path!r} of {target!r} not found. Has the pipeline run yet?"
        )
    return found


def parse_file_option(value: str) -> tuple[str | None, Path]:
    """Split a ``--file`` value into the view name asked for (or ``None``) and the path.

    ``NAME=PATH`` names the view; a value that is an existing file is a plain path even
    with ``=`` in it (Hive-style ``year=2024/part.parquet``), and so is one whose part
    before ``=`` holds a path separator.

    Args:
        value: what followed ``--file``.

    Returns:
        ``(name, path)``; ``name`` is ``None`` when the view takes the file's name.
    """
    name, eq, rest = value.partition("=")
    if not eq or not name or not rest or Path(value).exists() or "/" in name or "\\" in name:
        return None, Path(value)
    return name, Path(rest)


def _free_name(analyzer: Analyzer, wanted: str) -> str:
    """``wanted``, or ``wanted_file``, ``wanted_file2``... whichever no table has yet."""
    taken = {r.name for r in analyzer.relations() if r.schema == "main"}
    name, n = wanted, 1
    while name in taken:
        name = f"{wanted}_file" + (str(n) if n > 1 else "")
        n += 1
    return name


def _lake_of(target: str | None, settings: Settings) -> Any:
    """The Delta/Iceberg destination ``--warehouse`` names (URL or connection), else None."""
    from headrace.connectors.destinations import open_lake
    from headrace.connectors.naming import resolve

    if target is None or ("://" not in target and not settings.has_connection(target)):
        return None
    url = target if "://" in target else settings.connection(target)
    if resolve(url).backend not in ("delta", "iceberg"):
        return None
    return open_lake(url)


def open_analyzer(
    warehouse: str | None,
    files: list[tuple[str | None, Path]],
    *,
    avoid_clashes: bool = False,
    sql: str = "",
) -> tuple[Analyzer, list[str]]:
    """An analyzer on the warehouse (read-only) with ``files`` loaded; also the names they got.

    CSV, Parquet and JSON become views (nothing is copied); Avro, ORC and Arrow, which
    DuckDB cannot read itself, become temporary tables.

    Args:
        warehouse: ``--warehouse``, see :func:`find_warehouse`.
        files: ``(name or None, path)`` pairs from :func:`parse_file_option`.
        avoid_clashes: give a file whose name a warehouse table has a free name instead
            of failing (for ``profile``, where the name is only a title).
        sql: the query to run: on a lakehouse warehouse (``delta:///...``,
            ``iceberg+sqlite:///...``) each ``"table@version"`` it names is made readable
            at that version (time travel); every table is readable by name.
    """
    settings = Settings.from_env()
    lake = _lake_of(warehouse, settings)
    if lake is not None:
        analyzer = Analyzer()
        lake.register(analyzer.connection, sql)
    else:
        found = find_warehouse(warehouse, settings)
        analyzer = Analyzer(found, read_only=True) if found is not None else Analyzer()
    names: list[str] = []
    try:
        for wanted, path in files:
            name = wanted or default_table_name(path)
            taken = {r.name for r in analyzer.relations() if r.schema == "main"}
            if name in taken:
                if not avoid_clashes:
                    holder = (
                        "an earlier --file already made a view"
                        if name in names
                        else f"{analyzer.location} already has a table or view"
                    )
                    raise AnalyticsError(
                        f"--file {str(path)!r} would become view {name!r}, but {holder} {name!r}. "
                        f"Name the file's view yourself: --file {name}_file={path} "
                        f"(then query {name}_file)."
                    )
                name = _free_name(analyzer, name)
            if format_for_path(path) in _NATIVE:
                names.append(analyzer.load(path, name, view=True))
            else:
                load: Callable[[], str] = functools.partial(analyzer.load, path, name)
                names.append(with_progress(analyzer, f"loading {path.name}", load))
    except BaseException:
        analyzer.close()
        raise
    return analyzer, names


def with_progress(analyzer: Analyzer, description: str, work: Callable[[], T]) -> T:
    """Run ``work`` in a thread; past half a second, show DuckDB's progress as a Rich bar on stderr."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = work()
        except BaseException as exc:  # re-raised in the caller's thread
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(0.5)
    if thread.is_alive() and err_console.is_terminal:
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=err_console, transient=True) as bar:
            task = bar.add_task(description, total=100)
            while thread.is_alive():
                done = analyzer.progress()
                if done is not None:
                    bar.update(task, completed=done)
                time.sleep(0.1)
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _head(
    analyzer: Analyzer, sql: str, params: list[str] | None, limit: int
) -> tuple[list[str], list[tuple[Any, ...]], int]:
    """Column names, the first ``limit`` rows, and the total row count of a query."""
    shown: list[tuple[Any, ...]] = []
    total = 0
    with analyzer.reader(sql, params) as batches:
        names = list(batches.schema.names)
        for batch in batches:
            total += batch.num_rows
            if len(shown) < limit:
                part = batch.slice(0, limit - len(shown))
                shown += zip(*(c.to_pylist() for c in part.columns), strict=True)
    return names, shown, total


def _json_default(value: Any) -> Any:
    return str(value)


#: ``--warehouse`` of ``query`` and ``profile``.
WarehouseOption = Annotated[
    str | None,
    typer.Option(
        "--warehouse",
        "-w",
        help="Warehouse: .duckdb file, pipeline folder, duckdb:/// URL, a lakehouse URL "
        '(delta:///path, iceberg+sqlite:///catalog.db?warehouse=path; "table@3" reads '
        "version 3) or a connection name.",
    ),
]


@app.command("query")
def query_command(
    sql: Annotated[str, typer.Argument(help="SQL to run; use ? placeholders with --param.")],
    file: Annotated[
        list[str] | None,
        typer.Option(
            "--file",
            "-f",
            help="File to query as a view named after it, or NAME=PATH to name the view (repeatable).",
        ),
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param", "-p", help="Value for the next ? placeholder, as text (repeatable)."
        ),
    ] = None,
    output: Annotated[str, typer.Option("--format", help="Output: table, csv or json.")] = "table",
    warehouse: WarehouseOption = None,
    max_rows: Annotated[
        int, typer.Option("--max-rows", help="Rows shown in table format (csv/json print all).")
    ] = 100,
) -> None:
    """Run SQL over the warehouse and files; print a table, CSV or JSON."""
    if output not in ("table", "csv", "json"):
        raise AnalyticsError(f"Unknown --format {output!r}: use table, csv or json.")
    params = list(param or []) or None
    analyzer, _ = open_analyzer(warehouse, [parse_file_option(f) for f in file or []], sql=sql)
    with analyzer:
        if output == "table":
            # Only the rows shown are kept; the rest are counted as they stream past.
            columns, shown, total = with_progress(
                analyzer, "query", lambda: _head(analyzer, sql, params, max_rows)
            )
            table = Table(show_lines=False, header_style="bold")
            for name in columns:
                table.add_column(Text(name), overflow="fold")
            for row in shown:
                table.add_row(*(Text(format_value(v, 60)) for v in row))
            console.print(table)
            more = total - len(shown)
            err_console.print(
                f"{total:,} {'row' if total == 1 else 'rows'}"
                + (f" ({more:,} not shown; use --max-rows or --format csv)" if more > 0 else "")
            )
            return
        # Machine formats stream batch by batch, so a large result is never held whole.
        batches = analyzer.stream(sql, params)
        first = True
        if output == "csv":
            writer = csv.writer(sys.stdout, lineterminator="\n")
            for batch in batches:
                if first:
                    writer.writerow(batch.schema.names)
                    first = False
                columns = [c.to_pylist() for c in batch.columns]
                writer.writerows(zip(*columns, strict=True))
            return
        sys.stdout.write("[")
        for batch in batches:
            for row in batch.to_pylist():
                sys.stdout.write(
                    ("\n" if first else ",\n")
                    + json.dumps(row, default=_json_default, ensure_ascii=False)
                )
                first = False
        sys.stdout.write("\n]\n")


@app.command("profile")
def profile_command(
    target: Annotated[
        str,
        typer.Argument(help="Data file (CSV, Parquet, JSON, Avro, ORC, Arrow) or warehouse table."),
    ],
    html: Annotated[
        Path | None, typer.Option("--html", help="Also write a self-contained HTML report here.")
    ] = None,
    output: Annotated[str, typer.Option("--format", help="Output: table or json.")] = "table",
    warehouse: WarehouseOption = None,
    top: Annotated[int, typer.Option("--top", help="Most frequent values shown per column.")] = 5,
    bins: Annotated[int, typer.Option("--bins", help="Histogram bins.")] = 20,
) -> None:
    """Profile every column of a file or table: type, nulls, distinct, min/max, top values, histogram."""
    if output not in ("table", "json"):
        raise AnalyticsError(f"Unknown --format {output!r}: use table or json.")
    path = Path(target)
    files: list[tuple[str | None, Path]] = [(None, path)] if path.is_file() else []
    # A file named like a warehouse table is profiled under a free name, not refused.
    analyzer, names = open_analyzer(warehouse, files, avoid_clashes=True)
    with analyzer:
        name = names[0] if names else target
        profile = with_progress(
            analyzer, f"profiling {name}", lambda: analyzer.profile(name, top=top, bins=bins)
        )
    if output == "json":
        sys.stdout.write(json.dumps(profile.to_dict(), ensure_ascii=False, indent=2) + "\n")
    else:
        table = Table(
            title=Text(f"{profile.table}: {profile.rows:,} rows"),
            header_style="bold",
            title_justify="left",
        )
        for heading in ("column", "type", "nulls", "distinct", "min", "max"):
            table.add_column(heading, overflow="fold")
        # The histogram keeps one character per bin, never wrapped; top values may be cut.
        table.add_column(
            "histogram / top values",
            no_wrap=True,
            overflow="ellipsis",
            min_width=min(bins, 24),
            max_width=max(bins, 30),
        )
        for col in profile.columns:
            if col.histogram is not None:
                shape = sparkline(col.histogram.counts)
            else:
                total = col.count or 1
                shape = " · ".join(
                    f"{format_value(v, 16)} {c / total:.0%}" for v, c in col.top_values
                )
            table.add_row(
                Text(col.name), Text(col.type), f"{col.null_share:.1%}",
                f"{col.distinct:,}" + ("" if col.distinct_exact else "~"),
                Text(format_value(col.min, 20)), Text(format_value(col.max, 20)), Text(shape),
            )  # fmt: skip
        console.print(table)
    if html is not None:
        written = write_html(profile, html)
        err_console.print(Text(f"HTML report written to {written}"))
