"""A real SMTP server (aiosmtpd) and a real HTTP webhook receiver on 127.0.0.1; two pipelines
chained through PostgreSQL whose loads recorded their lineage."""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from headrace.config import Settings
from headrace.engine import Runner
from headrace.engine.loader import load_pipelines
from headrace.state import open_store

CHAIN = Path(__file__).parent / "pipelines" / "chain.py"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[dict] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd hook name)
        self.messages.append(
            {
                "from": envelope.mail_from,
                "to": list(envelope.rcpt_tos),
                "data": envelope.content.decode("utf-8", "replace"),
            }
        )
        return "250 OK"


@pytest.fixture
def smtp_server() -> Iterator[tuple[int, _Inbox]]:
    """(port, inbox) of a running SMTP server; inbox.messages fills as mail arrives."""
    inbox = _Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=_free_port())
    controller.start()
    try:
        yield controller.port, inbox
    finally:
        controller.stop()


class WebhookServer:
    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.paths: list[str] = []
        self.fail_next: list[int] = []  # status codes to answer before succeeding
        self.headers: list[dict[str, str]] = []  # of every request
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server hook name)
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length)
                status = outer.fail_next.pop(0) if outer.fail_next else 200
                outer.headers.append(dict(self.headers))
                if status == 200:
                    outer.bodies.append(json.loads(raw))
                    outer.paths.append(self.path)
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", "/elsewhere")
                self.end_headers()
                self.wfile.write(b"ok" if status == 200 else b"nope")

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def webhook_server() -> Iterator[WebhookServer]:
    server = WebhookServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def chained(
    tmp_path: Path, pg_schema: tuple[str, str]
) -> Iterator[tuple[Settings, dict[str, str]]]:
    """tests/observe/pipelines/chain.py run once each: (settings, environment for the CLI)."""
    url, schema = pg_schema
    pg = f"{url}?schema={schema}"
    settings = Settings(
        home=tmp_path,
        state_url=f"sqlite:///{tmp_path / 'state.db'}",
        connections={"pg": pg, "warehouse": f"duckdb:///{tmp_path / 'wh.duckdb'}"},
    )
    found = load_pipelines(CHAIN)
    with (
        open_store(settings.state_url) as store,
        Runner(store, "inprocess", settings=settings) as runner,
    ):
        assert runner.run(found["ingest"]).state == "success"
        published = runner.run(found["publish"])
        assert published.state == "success", published.task("clean_people").error
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADRACE_")}
    env.update(
        HEADRACE_HOME=str(tmp_path),
        HEADRACE_STATE_URL=settings.state_url,
        HEADRACE_CONN_PG=pg,
        HEADRACE_CONN_WAREHOUSE=settings.connections["warehouse"],
    )
    yield settings, env
