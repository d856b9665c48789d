"""Helpers of the MCP tests: a populated headrace home for the MCP server's tests, and clients over stdio and HTTP.

The world: a SQLite state store filled by real runs of ``pipelines/shop.py`` through
the Runner — one loading the DuckDB warehouse, one loading a PostgreSQL warehouse
(own schema), one whose ``publish`` task failed — plus the files the runs staged.
The server runs as a real ``headrace mcp`` subprocess; the tests talk to it with the
SDK's own :class:`mcp.Client`.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from headrace.config import Settings
from headrace.engine import Runner, load_pipelines
from headrace.state import open_store

PIPELINES = Path(__file__).parent / "pipelines"
SECRET = "S3cretPassw0rd-mcp"


@dataclass
class World:
    """A headrace home with runs; ``env`` configures a server (or a CLI) to read it."""

    home: Path
    env: dict[str, str]
    pg_url: str
    pg_schema: str
    duck_run: str = ""
    pg_run: str = ""
    failed_run: str = ""
    signups_run: str = ""
    runs: dict[str, Any] = field(default_factory=dict)

    def settings(self) -> Settings:
        return Settings.from_env(cwd=self.home, environ=self.env)

    def store(self) -> Any:
        return open_store(self.settings().state_url)


def make_world(home: Path, pg_url: str) -> World:
    """Create the home, the PostgreSQL schema, and the three runs."""
    import psycopg

    schema = f"mcp_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    env = {
        "HEADRACE_HOME": str(home),
        "HEADRACE_CONN_WAREHOUSE": f"duckdb:///{home}/warehouse.duckdb",
        "HEADRACE_CONN_PGWH": f"{pg_url}?schema={schema}",
        "HEADRACE_CONN_SECRETDB": f"postgresql://reporter:{SECRET}@127.0.0.1:1/reports",
        "HEADRACE_CONN_LAKE": f"duckdb:///{home}/lake.duckdb",
    }
    world = World(home, env, pg_url, schema)
    settings = world.settings()
    shop = load_pipelines(PIPELINES / "shop.py")["shop"]
    with open_store(settings.state_url) as store:
        runner = Runner(store, executor="inprocess", settings=settings)
        world.duck_run = runner.run(shop).run_id
        world.pg_run = runner.run(shop, params={"target": "pgwh"}).run_id
        (home / "publish_fails").write_text("on")
        world.failed_run = runner.run(shop).run_id
        (home / "publish_fails").unlink()
        signups = load_pipelines(PIPELINES / "signups.py")["signups"]
        world.signups_run = runner.run(
            signups
        ).run_id  # records lineage: file -> signups -> signup_domains
    (home / "exports").mkdir()
    (home / "exports" / "report.csv").write_text("region,total\nnorth,10\nsouth,20\n")
    return world


def drop_world(world: World) -> None:
    import psycopg

    with psycopg.connect(world.pg_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{world.pg_schema}" CASCADE')


def headrace_command() -> list[str]:
    """The installed ``headrace`` script beside this Python (or ``python -c`` when absent)."""
    script = Path(sys.executable).parent / "headrace"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from headrace.cli import main; main()"]


def server_env(world: World, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADRACE_")}
    env.update(world.env, **extra)
    return env


def stdio_client(world: World, *args: str) -> Client:
    """A Client that starts ``headrace mcp ARGS`` as a subprocess and talks over its stdio."""
    command = headrace_command()
    params = StdioServerParameters(
        command=command[0],
        args=[*command[1:], "mcp", "--pipelines", str(PIPELINES), "--executor", "inprocess", *args],
        env=server_env(world),
        cwd=str(world.home),
    )
    return Client(params, read_timeout_seconds=60)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class HttpServer:
    """A ``headrace mcp --http`` subprocess on a free loopback port."""

    process: subprocess.Popen[bytes]
    url: str
    token: str

    def client(self, token: str | None = "default") -> Client:
        given = self.token if token == "default" else token
        headers = {"Authorization": f"Bearer {given}"} if given else {}
        http = create_mcp_http_client(headers=headers)
        return Client(streamable_http_client(self.url, http_client=http), read_timeout_seconds=60)


def start_http(world: World, *args: str, token: str | None = None) -> HttpServer:
    """Start the HTTP server with a token file and wait until it listens."""
    token = token or secrets.token_urlsafe(24)
    token_file = world.home.parent / f"token-{uuid.uuid4().hex[:6]}"
    token_file.write_text(token)
    port = free_port()
    process = subprocess.Popen(
        [
            *headrace_command(),
            "mcp",
            "--http",
            "--port",
            str(port),
            "--token-file",
            str(token_file),
            "--pipelines",
            str(PIPELINES),
            "--executor",
            "inprocess",
            *args,
        ],
        env=server_env(world),
        cwd=str(world.home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"headrace mcp --http exited: {process.stderr.read().decode()}")  # type: ignore[union-attr]
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            time.sleep(0.1)
    return HttpServer(process, f"http://127.0.0.1:{port}/mcp", token)


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


Scenario = Callable[[Client], Awaitable[Any]]


def in_session(client: Client, scenario: Scenario) -> Any:
    """Open ``client``, run ``scenario`` with it, close it; returns what the scenario returned."""

    async def main() -> Any:
        async with client:
            return await scenario(client)

    return anyio.run(main)
