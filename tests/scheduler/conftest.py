"""Fixtures for scheduler tests: a SQLite store, settings, a fake clock, a webhook receiver."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from headrace.engine import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2024, 1, 4, 12, tzinfo=UTC))


class Webhook:
    def __init__(self) -> None:
        self.bodies: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server hook name)
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.bodies.append(json.loads(raw))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def kinds(self) -> list[str]:
        return [b["headrace"]["kind"] for b in self.bodies]


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    try:
        yield hook
    finally:
        hook.httpd.shutdown()
        hook.httpd.server_close()
