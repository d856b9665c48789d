"""The headrace MCP server: tools, resources and a prompt over one :class:`McpContext`.

Read tools are always there; trigger / resume / retry only with ``allow_write``.
Arguments are typed and bounded (pydantic validates them before a tool runs); a
headrace error becomes the tool's error text, masked; anything unexpected is
reported without its text (it could hold anything).

Example:
    >>> server = build_server(McpContext(settings, open_store(settings.state_url)))
    >>> server.run("stdio")
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, TypeVar

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

import headrace
from headrace.errors import HeadraceError
from headrace.mcp import file_tools, read_tools, warehouse_tools, write_tools
from headrace.mcp.mcp_context import McpContext
from headrace.mcp.prompts import explain_failed_run
from headrace.mcp.sqlguard import text_table

T = TypeVar("T")

RunId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_.:-]+$",
        description="Run id or a unique prefix.",
    ),
]
TaskName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=200,
        pattern=r"^[^\x00-\x1f]+$",
        description="Task id; name[3] for an element of a mapped task.",
    ),
]
PipelineName = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f]+$")]
ConnectionName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_]+$",
        description="A configured connection name (HEADRACE_CONN_<NAME>); 'warehouse' is the embedded DuckDB by default.",
    ),
]
TableName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=200,
        pattern=r"^[^\x00-\x1f]+$",
        description="Table name, optionally schema.table.",
    ),
]
HomePath = Annotated[str, Field(max_length=1000, description="Path relative to the headrace home.")]
Limit = Annotated[int, Field(ge=1, le=1000, description="Most rows returned.")]
Wait = Annotated[
    float,
    Field(ge=0, le=600, description="Seconds to wait for the run before answering 'running'."),
]

INSTRUCTIONS = (
    "headrace runs data pipelines. Use list_pipelines and list_runs to find runs, get_run for a "
    "run's tasks and errors, task_logs for a task's output, run_checks / quarantined_rows for data "
    "quality, lineage and profile_table for tables, query for read-only SQL on a warehouse, and "
    "list_files / preview_file for staged and exported files under the headrace home."
)


async def _call(ctx: McpContext, fn: Callable[..., T], *args: Any) -> T:
    """Run a blocking tool body in a worker thread; headrace errors become masked tool errors."""
    try:
        return await anyio.to_thread.run_sync(functools.partial(fn, *args))
    except HeadraceError as exc:
        raise ToolError(ctx.mask(str(exc))) from exc


def _table_answer(ctx: McpContext, result: Any, what: str) -> str:
    """A query result as a compact masked text table with a one-line header."""
    text, shown = text_table(result.columns, result.rows, max_bytes=ctx.max_bytes)
    more = (
        " (more rows exist: raise limit or narrow the query)"
        if result.truncated or shown < len(result.rows)
        else ""
    )
    return ctx.mask(f"{what}: {shown} row(s) in {result.seconds} s{more}\n{text}")


def build_server(ctx: McpContext) -> MCPServer:
    """The MCP server with headrace's tools, resources and prompt, reading ``ctx``.

    Args:
        ctx: settings, store and limits; ``ctx.allow_write`` adds the write tools.
    """
    server = MCPServer(
        "headrace", version=headrace.__version__, instructions=INSTRUCTIONS, log_level="WARNING"
    )
    _read_tools(server, ctx)
    _warehouse_tools(server, ctx)
    _file_tools(server, ctx)
    if ctx.allow_write:
        _write_tools(server, ctx)
    _resources(server, ctx)
    return server


def _read_tools(server: MCPServer, ctx: McpContext) -> None:
    @server.tool()
    async def list_pipelines() -> dict[str, Any]:
        """Pipelines of the pipelines folder and of the state store: schedule, owner, tags, next run, last run."""
        return await _call(ctx, read_tools.list_pipelines, ctx)

    @server.tool()
    async def list_runs(
        pipeline: PipelineName | None = None,
        state: Annotated[
            str | None,
            Field(
                max_length=100,
                pattern=r"^[a-z_, ]*$",
                description="States, comma-separated: queued, running, success, failed.",
            ),
        ] = None,
        since: Annotated[
            datetime | None,
            Field(description="Only runs with a logical date at or after this (ISO 8601)."),
        ] = None,
        limit: Limit = 20,
    ) -> dict[str, Any]:
        """Runs, newest logical date first, filtered by pipeline, state and logical date."""
        return await _call(
            ctx, read_tools.list_runs, ctx, pipeline, state, since, min(limit, ctx.max_rows)
        )

    @server.tool()
    async def get_run(run_id: RunId) -> dict[str, Any]:
        """A run with its tasks: state, attempts, durations, errors; and its failed checks."""
        return await _call(ctx, read_tools.run_detail, ctx, run_id)

    @server.tool()
    async def task_logs(
        run_id: RunId,
        task: TaskName,
        tail: Annotated[int, Field(ge=1, le=5000, description="Last N lines.")] = 100,
        attempt: Annotated[int | None, Field(ge=0, le=1000)] = None,
    ) -> str:
        """The last lines of a task's captured logs (secrets masked)."""
        return await _call(ctx, read_tools.task_logs, ctx, run_id, task, tail, attempt)

    @server.tool()
    async def run_checks(run_id: RunId, task: TaskName | None = None) -> dict[str, Any]:
        """Data-quality check results of a run: expectation, column, severity, failed/total, samples."""
        return await _call(ctx, read_tools.run_checks, ctx, run_id, task)

    @server.tool()
    async def quarantined_rows(
        run_id: RunId,
        table: TableName | None = None,
        connection: ConnectionName = "warehouse",
        limit: Annotated[int, Field(ge=1, le=200)] = 20,
    ) -> dict[str, Any]:
        """Rows a run quarantined, with their _hr_reason: from <table>_quarantine in the warehouse
        when table is given (rows of the run's loads), else from the run's staged quarantine files."""

        def body() -> dict[str, Any]:
            run = read_tools.resolve_run(ctx, run_id)
            if table is None:
                return read_tools.staged_quarantine(ctx, run, limit)
            conn = warehouse_tools.warehouse_connection(ctx.settings, connection)
            load_ids = [
                str(ti.result_json["load_id"])
                for ti in ctx.store.get_task_instances(run.run_id)
                if isinstance(ti.result_json, dict) and ti.result_json.get("load_id")
            ]
            result = warehouse_tools.quarantined_rows(
                conn, table, run.run_id, load_ids, limit, ctx.query_timeout
            )
            text = _table_answer(ctx, result, f"{table}_quarantine rows of run {run.run_id}")
            return {
                "run_id": run.run_id,
                "source": f"{table}_quarantine on {connection}",
                "table": text,
            }

        return await _call(ctx, body)


def _warehouse_tools(server: MCPServer, ctx: McpContext) -> None:
    @server.tool()
    async def query(
        sql: Annotated[
            str, Field(min_length=1, max_length=20_000, description="One read-only SELECT.")
        ],
        connection: ConnectionName = "warehouse",
        limit: Limit = 100,
    ) -> str:
        """Run one read-only SELECT on a named DuckDB or PostgreSQL warehouse; a compact text table.

        Writes, COPY, ATTACH, file-reading functions and several statements are refused.
        """

        def body() -> str:
            conn = warehouse_tools.warehouse_connection(ctx.settings, connection)
            result = warehouse_tools.run_read_only(
                conn, sql, limit=min(limit, ctx.max_rows), timeout_seconds=ctx.query_timeout
            )
            return _table_answer(ctx, result, f"query on {connection}")

        return await _call(ctx, body)

    @server.tool()
    async def lineage(table: TableName, connection: ConnectionName | None = None) -> dict[str, Any]:
        """What feeds a table and what it feeds: upstream and downstream datasets and jobs
        (pipeline.task) from the lineage every load records (as `headrace lineage` shows), with
        the loads into it from the destination's _hr_loads ledger (pipeline, source, rows, when).
        `table` is a dataset's name, last parts or URI; `connection` picks that connection's table."""
        answer = await _call(ctx, read_tools.lineage, ctx, table, connection)
        return ctx.masked_json(answer)

    @server.tool()
    async def profile_table(
        table: TableName,
        connection: ConnectionName = "warehouse",
        top: Annotated[int, Field(ge=0, le=20)] = 5,
    ) -> dict[str, Any]:
        """The analytics profile of a warehouse table: per column type, nulls, distinct, min/max, top values."""

        def body() -> dict[str, Any]:
            conn = warehouse_tools.warehouse_connection(ctx.settings, connection)
            return warehouse_tools.profile(conn, table, top, ctx.query_timeout)

        profile = ctx.masked_json(await _call(ctx, body))
        if len(json.dumps(profile, default=str)) > ctx.max_bytes:  # many wide columns
            profile["columns"] = [
                {k: c[k] for k in ("name", "type", "nulls", "distinct", "min", "max")}
                for c in profile["columns"]
            ]
            profile["note"] = f"per-column details dropped to stay under {ctx.max_bytes} bytes"
        return profile


def _file_tools(server: MCPServer, ctx: McpContext) -> None:
    @server.tool()
    async def list_files(path: HomePath = ".", limit: Limit = 200) -> dict[str, Any]:
        """Files and folders under the headrace home (staging, exports, warehouse), recursively."""
        entries, cut = await _call(
            ctx, file_tools.list_files, ctx.home, path, min(limit, ctx.max_rows)
        )
        return {"home": str(ctx.home), "entries": entries, "cut": cut}

    @server.tool()
    async def preview_file(path: HomePath, rows: Annotated[int, Field(ge=1, le=200)] = 20) -> str:
        """The first rows of a Parquet/CSV/JSON file (or first bytes of a text file) under the headrace home."""
        kind, text = await _call(ctx, file_tools.preview_file, ctx.home, path, rows, ctx.max_bytes)
        return ctx.bounded(f"{path} ({kind})\n{text}")


def _write_tools(server: MCPServer, ctx: McpContext) -> None:
    @server.tool()
    async def trigger_run(
        pipeline: PipelineName,
        params: Annotated[
            dict[str, str | int | float | bool] | None, Field(description="Run parameters.")
        ] = None,
        logical_date: Annotated[
            datetime | None, Field(description="The run's key; the same date never runs twice.")
        ] = None,
        wait_seconds: Wait = 60,
    ) -> dict[str, Any]:
        """Trigger a run of a pipeline of the pipelines folder (needs --allow-write)."""
        return await _call(
            ctx, write_tools.trigger_run, ctx, pipeline, params or {}, logical_date, wait_seconds
        )

    @server.tool()
    async def resume_run(run_id: RunId, wait_seconds: Wait = 60) -> dict[str, Any]:
        """Finish a failed or dead run: tasks that did not succeed run again (needs --allow-write)."""
        return await _call(ctx, write_tools.resume_run, ctx, run_id, wait_seconds)

    @server.tool()
    async def retry_task(run_id: RunId, task: TaskName, wait_seconds: Wait = 60) -> dict[str, Any]:
        """Run one task of a run again, with the tasks downstream of it (needs --allow-write)."""
        return await _call(ctx, write_tools.retry_task, ctx, run_id, task, wait_seconds)


def _resources(server: MCPServer, ctx: McpContext) -> None:
    @server.resource("headrace://pipelines", mime_type="application/json")
    def pipelines_index() -> str:
        """Names, files and schedules of the pipelines of the pipelines folder."""
        defined, errors = read_tools.defined_pipelines(ctx)
        return json.dumps(
            {
                "pipelines": [
                    {
                        "name": n,
                        "file": p.file,
                        "schedule": p.schedule_text or "manual",
                        "doc": f"headrace://pipelines/{n}/doc",
                        "source": f"headrace://pipelines/{n}/source",
                    }
                    for n, p in sorted(defined.items())
                ],
                "errors": errors,
            }
        )

    @server.resource("headrace://pipelines/{name}/doc", mime_type="text/markdown")
    def pipeline_doc(name: str) -> str:
        """A pipeline's documentation: docstring, schedule, tasks and their docs, params."""
        p = read_tools.find_pipeline(ctx, name)
        lines = [
            f"# {p.name}",
            "",
            (p.doc or "(no docstring)").strip(),
            "",
            f"- file: {p.file}",
            f"- schedule: {p.schedule_text or 'manual'} ({p.timezone})",
            f"- owner: {p.owner or '-'}",
            f"- tags: {', '.join(p.tags) or '-'}",
            f"- params: {json.dumps(p.params, default=str)}",
            "",
            "## Tasks",
        ]
        for tid in p.order:
            ups = ", ".join(p.upstream[tid]) or "none"
            doc = (getattr(p.tasks[tid], "doc", None) or "").strip().splitlines()
            lines.append(f"- **{tid}** (after: {ups})" + (f": {doc[0]}" if doc else ""))
        return ctx.bounded("\n".join(lines))

    @server.resource("headrace://pipelines/{name}/source", mime_type="text/x-python")
    def pipeline_source(name: str) -> str:
        """The source code of the file defining a pipeline (secrets masked)."""
        p = read_tools.find_pipeline(ctx, name)
        with open(p.file, encoding="utf-8", errors="replace") as handle:
            return ctx.bounded(handle.read())

    @server.prompt()
    def explain_run_failure(run_id: RunId) -> str:
        """Explain why a run failed, from its error, the failed tasks' logs and its checks."""
        return explain_failed_run(ctx, run_id)
