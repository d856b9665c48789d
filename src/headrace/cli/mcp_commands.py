"""``headrace mcp``: the Model Context Protocol server over stdio or streamable HTTP."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from headrace.cli.typer_app import app, check_executor, err_console
from headrace.config import Settings
from headrace.errors import ConfigError
from headrace.extras import require

#: Environment variable holding the bearer token of the HTTP transport.
TOKEN_ENV = "HEADRACE_MCP_TOKEN"


def _token(token_file: Path | None) -> str | None:
    if token_file is not None:
        try:
            return token_file.read_text().strip() or None
        except OSError as exc:
            raise ConfigError(f"--token-file {token_file}: cannot be read: {exc.strerror}") from exc
    return os.environ.get(TOKEN_ENV) or None


@app.command("mcp")
def mcp_command(
    pipelines: Annotated[
        Path | None,
        typer.Option(
            "--pipelines", help="Pipeline file or folder: listing, docs, source, trigger."
        ),
    ] = None,
    http: Annotated[
        bool, typer.Option("--http", help="Serve streamable HTTP at /mcp instead of stdio.")
    ] = False,
    host: Annotated[
        str, typer.Option("--host", help="HTTP interface; beyond loopback a token is required.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="HTTP port.")] = 8765,
    token_file: Annotated[
        Path | None,
        typer.Option(
            "--token-file", help=f"File holding the HTTP bearer token (default: ${TOKEN_ENV})."
        ),
    ] = None,
    allow_write: Annotated[
        bool,
        typer.Option("--allow-write", help="Add the trigger_run, resume_run and retry_task tools."),
    ] = False,
    executor: Annotated[
        str, typer.Option("--executor", help="Executor of runs the write tools start.")
    ] = "process",
    max_rows: Annotated[
        int, typer.Option("--max-rows", min=1, max=10_000, help="Most rows a tool returns.")
    ] = 200,
    max_bytes: Annotated[
        int,
        typer.Option("--max-bytes", min=1024, max=10_000_000, help="Most bytes a tool returns."),
    ] = 64_000,
    query_timeout: Annotated[
        float, typer.Option("--query-timeout", min=0.1, max=3600, help="Seconds a query may run.")
    ] = 10.0,
) -> None:
    """Serve pipelines, runs, logs, checks, lineage and read-only warehouse queries to AI assistants (MCP).

    Example: headrace mcp --pipelines pipelines/            (stdio, for a desktop assistant)
             HEADRACE_MCP_TOKEN=... headrace mcp --http --port 8765
    """
    # the SDK and sqlglot come with the mcp extra; the web extra's models come with it too
    require("mcp", "mcp.server.mcpserver", "headrace mcp")
    require("mcp", "sqlglot", "headrace mcp (read-only SQL check)")
    require("web", "fastapi", "headrace mcp (the web API's models)")
    from headrace.mcp.http import check_bind, serve_http
    from headrace.mcp.mcp_context import McpContext
    from headrace.mcp.server import build_server
    from headrace.state import open_store

    check_executor(executor)
    if pipelines is not None and not pipelines.exists():
        raise ConfigError(f"--pipelines {pipelines}: no such file or folder")
    token = _token(token_file) if http else None
    if http:
        check_bind(host, token)
    settings = Settings.from_env()
    with open_store(settings.state_url) as store:
        ctx = McpContext(
            settings,
            store,
            pipelines=pipelines.resolve() if pipelines else None,
            allow_write=allow_write,
            executor=executor,
            max_rows=max_rows,
            max_bytes=max_bytes,
            query_timeout=query_timeout,
            extra_secrets=[token] if token else [],
        )
        server = build_server(ctx)
        if http:
            err_console.print(
                f"headrace mcp on http://{host}:{port}/mcp (Ctrl+C stops it)", highlight=False
            )
            serve_http(server, host, port, token)
        else:
            server.run("stdio")
