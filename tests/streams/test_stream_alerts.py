"""A failing stream consumer sends the alerts a failing pipeline task sends (a real
webhook receiver on 127.0.0.1), through ``headrace stream`` and the supervisor."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import duckdb
import pytest
from stream_brokers import REDIS_URL, Broker, _free_port, event

from headrace.config import AlertSettings, Settings
from headrace.observe.alerts import alerter_from_settings
from headrace.pipeline.policy import Retry
from headrace.streams import redis_stream, stream_sync
from headrace.streams.stream_loader import StreamLoader
from headrace.streams.supervisor import StreamSupervisor
from headrace.sync import destination

ROOT = Path(__file__).resolve().parents[2]


class Webhook:
    """An HTTP server collecting the JSON bodies POSTed to it."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server hook name)
                outer.bodies.append(
                    json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                )
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def texts(self) -> list[str]:
        return [body["text"] for body in self.bodies]


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    server = Webhook()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


def _key(broker: Broker) -> str:
    return broker.source.split("'")[1]


def test_headrace_stream_alerts_on_a_destination_error_after_its_retries(
    tmp_path: Path, redis_broker: Broker, webhook: Webhook
) -> None:
    key, db = _key(redis_broker), tmp_path / "wh.duckdb"
    # the table exists with a column no event fills (a value of another type would be
    # quarantined, not fail the load: the table is the contract the events must fit)
    with duckdb.connect(str(db)) as conn:
        conn.execute("CREATE TABLE ev (id BIGINT, owner VARCHAR NOT NULL)")
    redis_broker.produce([event(i) for i in range(100)])
    (tmp_path / "s.py").write_text(
        "from headrace.sync import destination\nfrom headrace.streams import redis_stream, "
        f"stream_sync\nev = stream_sync('ev', source=redis_stream({key!r}, url={REDIS_URL!r}),\n"
        f"    destination=destination('duckdb:///{db}', table='ev'), retries=1)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADRACE_")}
    env.update(HEADRACE_HOME=str(tmp_path / "home"), HEADRACE_ALERT_WEBHOOK_URL=webhook.url,
               HEADRACE_ALERT_ON_RETRY="1", COLUMNS="300",
               PYTHONPATH=os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]))  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", "from headrace.cli import main; main()", "stream", f"{tmp_path / 's.py'}:ev"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "stream ev failed" in done.stderr
    retry, failure = webhook.texts()  # one retry (retries=1, on_retry on), then the failure
    assert "[headrace] ev is being retried" in retry
    assert "[headrace] ev failed" in failure
    assert "table 'ev'" in failure and 'ev."owner"' in failure  # the destination's error
    assert f"headrace stream {tmp_path / 's.py'}:ev" in failure  # how to restart
    with duckdb.connect(str(db)) as conn:  # nothing half-loaded, no position moved
        assert conn.execute("SELECT count(*) FROM ev").fetchone() == (0,)


def test_a_broker_down_past_the_retries_sends_the_failure_alert(
    tmp_path: Path, webhook: Webhook
) -> None:
    down = f"redis://127.0.0.1:{_free_port()}/0"  # nothing listens there
    spec = stream_sync("clicks", source=redis_stream("hrtest:down", url=down),
                       destination=destination(f"duckdb:///{tmp_path / 'wh.duckdb'}", table="clicks"),
                       retries=Retry(attempts=3, delay=timedelta(0)))  # fmt: skip
    settings = Settings.load(cwd=tmp_path, environ={"HEADRACE_HOME": str(tmp_path / "home")})
    alerter = alerter_from_settings(AlertSettings(webhook_url=webhook.url))  # failures only
    supervisor = StreamSupervisor(
        StreamLoader(spec, settings), [alerter], target="clicks.py:clicks"
    )
    with pytest.raises(Exception, match="(?i)connect"):
        supervisor.run()
    assert supervisor.attempt == 3
    (failure,) = webhook.texts()  # retries are not alerted unless on_retry is on
    assert "[headrace] clicks failed" in failure and "ConnectionError" in failure
    assert "redis:hrtest:down/headrace" in failure  # which stream
    assert "headrace stream clicks.py:clicks" in failure
