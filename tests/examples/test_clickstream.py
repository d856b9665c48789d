"""examples/clickstream.py: Redis stream -> DuckDB exactly once -> one-minute windows."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from live_services import service_missing

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "clickstream.py"
REDIS_URL = os.environ.get("HEADRACE_TEST_REDIS", "redis://127.0.0.1:6379/0")


@pytest.fixture
def stream_key() -> Iterator[str]:
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except Exception as exc:
        service_missing("Redis", exc)
    key = f"hrtest:clickstream:{uuid.uuid4().hex[:10]}"
    yield key
    client.delete(key)


def test_clickstream_loads_once_and_aggregates(tmp_path: Path, stream_key: str) -> None:
    env = {**os.environ, "HEADRACE_HOME": str(tmp_path / "home"), "CLICKSTREAM_KEY": stream_key,
           "HEADRACE_REDIS_URL": REDIS_URL, "CLICKSTREAM_EVENTS": "3000"}  # fmt: skip
    env.pop("HEADRACE_STATE_URL", None)
    done = subprocess.run([sys.executable, str(EXAMPLE)], capture_output=True, text=True,
                          timeout=180, env=env, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert ": success" in done.stdout
    # the same events again through the long-lived command: nothing is loaded twice
    again = subprocess.run(
        [sys.executable, "-c", "from headrace.cli import main; main()", "stream",
         f"{EXAMPLE}:clicks", "--drain"],
        capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    with duckdb.connect(str(tmp_path / "home" / "warehouse.duckdb"), read_only=True) as conn:
        [(total, distinct)] = conn.execute("SELECT count(*), count(DISTINCT click_id) FROM clicks"
                                       ).fetchall()  # fmt: skip
        bad = conn.execute("SELECT _hr_payload, _hr_reason FROM clicks_quarantine").fetchall()
        [(summed, windows)] = conn.execute(
            "SELECT sum(clicks), count(DISTINCT window_start) FROM clicks_per_minute"
        ).fetchall()
        typed = conn.execute("SELECT typeof(event_time) FROM clicks LIMIT 1").fetchall()[0][0]
    assert (total, distinct) == (3000, 3000)
    assert bad == [(b"{truncated", bad[0][1])] and "decode" in bad[0][1]
    assert summed == 3000 and windows == 25  # 3000 clicks, one every 0.5 s: 25 minutes
    assert typed.startswith("TIMESTAMP")
