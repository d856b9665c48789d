"""``headrace web``: serve the web UI, its JSON API and ``/metrics`` with uvicorn."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from headrace.cli.app import app, console
from headrace.config import Settings, mask_url
from headrace.errors import ConfigError
from headrace.extras import require


@app.command("web")
def web_command(
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="TCP port.")] = 8321,
    pipelines: Annotated[
        Path | None,
        typer.Option("--pipelines", help="Folder of pipeline files to list beside those with runs."),
    ] = None,
    refresh: Annotated[
        int, typer.Option("--refresh", min=0, help="Seconds between reloads of pages with unfinished runs (0: off).")
    ] = 5,
) -> None:
    """Serve the runs, tasks, logs and checks of the state store in a browser, plus /api and /metrics.

    Example: headrace web --port 8321 --pipelines pipelines/
    """
    require("web", "uvicorn", "headrace web")
    import uvicorn

    from headrace.web.app import create_app

    if pipelines is not None and not pipelines.is_dir():
        raise ConfigError(f"--pipelines {pipelines}: not a folder; give the folder holding your pipeline files.")
    settings = Settings.from_env()
    web = create_app(settings, pipelines_dir=pipelines, refresh_seconds=refresh)
    console.print(
        f"headrace web on [bold]http://{host}:{port}/[/] (state store {mask_url(settings.state_url)}); "
        "API at /api, metrics at /metrics. Ctrl+C stops it.",
        highlight=False,
    )
    uvicorn.run(web, host=host, port=port, log_level="warning")
