"""``headrace web``: serve the web UI, its JSON API and ``/metrics`` with uvicorn."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from headrace.cli.typer_app import app, check_executor, console, load_settings
from headrace.config import mask_url
from headrace.errors import ConfigError, UsageError
from headrace.extras import require

EXECUTORS = ("process", "inprocess")


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine (127.0.0.0/8, ::1, localhost)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


@app.command("web")
def web_command(
    host: Annotated[
        str,
        typer.Option(
            "--host",
            help="Interface to listen on; a non-loopback one needs HEADRACE_WEB_TOKEN or HEADRACE_WEB_USERS.",
        ),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="TCP port.")] = 8321,
    pipelines: Annotated[
        Path | None,
        typer.Option("--pipelines", help="Folder of pipeline files to list, trigger and backfill."),
    ] = None,
    refresh: Annotated[
        int,
        typer.Option(
            "--refresh",
            min=0,
            help="Seconds between reloads of pages with unfinished runs (0: off).",
        ),
    ] = 5,
    executor: Annotated[
        str,
        typer.Option(
            "--executor",
            help="Executor of runs started from the web: process (default) or inprocess.",
        ),
    ] = "process",
) -> None:
    """Serve runs, tasks, logs and checks in a browser, with actions (trigger, resume, retry, backfill), /api and /metrics.

    Actions need authentication: HEADRACE_WEB_TOKEN (a shared token, also the API's bearer
    token) and/or HEADRACE_WEB_USERS (NAME:HASH,... with hashes from
    `python -m headrace.web.auth PASSWORD`).

    Example: HEADRACE_WEB_TOKEN=$(openssl rand -hex 24) headrace web --port 8321 --pipelines pipelines/
    """
    require("web", "uvicorn", "headrace web")
    import uvicorn

    from headrace.web.application import create_app
    from headrace.web.auth import WebAuth

    if pipelines is not None and not pipelines.is_dir():
        raise UsageError(
            f"--pipelines {pipelines}: not a folder; give the folder holding your pipeline files."
        )
    check_executor(executor, EXECUTORS)
    auth = WebAuth.from_env(os.environ)  # read at this edge
    if not is_loopback(host) and not auth.configured:
        raise ConfigError(
            f"--host {host} accepts connections from other machines, and no authentication is configured: "
            "anyone reaching the port would read every run, log and sample row. Set HEADRACE_WEB_TOKEN "
            "(e.g. `export HEADRACE_WEB_TOKEN=$(openssl rand -hex 24)`) or HEADRACE_WEB_USERS, or bind 127.0.0.1."
        )
    settings = load_settings()
    web = create_app(
        settings, pipelines_dir=pipelines, refresh_seconds=refresh, auth=auth, executor=executor
    )
    mode = (
        "actions need login"
        if auth.configured
        else "read-only (no HEADRACE_WEB_TOKEN / HEADRACE_WEB_USERS)"
    )
    console.print(
        f"headrace web on [bold]http://{escape(host)}:{port}/[/] (state store {escape(mask_url(settings.state_url))}); "
        f"{escape(mode)}; API at /api, metrics at /metrics. Ctrl+C stops it.",
        highlight=False,
    )
    uvicorn.run(web, host=host, port=port, log_level="warning")
