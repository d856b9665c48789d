"""Exactly-once under kill -9: each broker, a real ``headrace stream`` killed and restarted.

A producer writes N events with ids and one poisoned (undecodable) event; the consumer
is killed at random moments and, every other restart, at a named point of the load
(``HEADRACE_CRASHPOINT``: after the commit but before the broker's ack, before the
commit, after applying rows) — at least 10 kills — then drained. The table must hold
every id exactly once, and the poisoned event sits in the quarantine with its position.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from stream_brokers import Broker, event

ROOT = Path(__file__).resolve().parents[2]
POISON = b"\x00{not json"
CRASHPOINTS = ("after_commit", "before_commit", "after_apply")


def _pipeline_file(tmp_path: Path, broker: Broker, db: Path, batch: int) -> Path:
    path = tmp_path / "events.py"
    path.write_text(
        "from headrace.sync import destination\n"
        "from headrace.streams import kinesis_stream, nats_stream, redis_stream, stream_sync\n"
        f"events = stream_sync('events', source={broker.source},\n"
        f"    destination=destination('duckdb:///{db}', table='events'),\n"
        f"    max_events={batch}, max_wait=0.3)\n"
    )
    return path


def _env(tmp_path: Path, broker: Broker, crashpoint: str | None = None) -> dict[str, str]:
    env = {**os.environ, **broker.env, "HEADRACE_HOME": str(tmp_path / "home")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    env.pop("HEADRACE_CRASHPOINT", None)
    if crashpoint:
        env["HEADRACE_CRASHPOINT"] = crashpoint
    return env


def _headrace(*args: str) -> list[str]:
    return [sys.executable, "-c", "from headrace.cli import main; main()", *args]


def _loaded(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with duckdb.connect(str(db), read_only=True) as conn:
            return conn.execute("SELECT count(*) FROM events").fetchall()[0][0]
    except duckdb.Error:  # no table yet, or the consumer holds the file
        return -1


def crash_and_check(tmp_path: Path, broker: Broker, n: int, kills: int, batch: int) -> None:
    """Produce, kill the consumer ``kills`` times, drain, and check exactly once."""
    rng = random.Random(n * 31 + kills)
    payloads = [event(i) for i in range(n)]
    payloads.insert(n // 3, POISON)
    half = len(payloads) // 2
    broker.produce(payloads[:half])  # the rest arrives while the consumer is being killed
    db = tmp_path / "wh.duckdb"
    target = f"{_pipeline_file(tmp_path, broker, db, batch)}:events"
    killed = 0
    for attempt in range(kills):
        point = CRASHPOINTS[attempt // 2 % 3] if attempt % 2 == 0 else None
        if attempt == kills // 2:
            broker.produce(payloads[half:])
        proc = subprocess.Popen(_headrace("stream", target), env=_env(tmp_path, broker, point),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
        try:
            # a crashpoint kills at the first load; with nothing left to load it idles
            proc.wait(timeout=rng.uniform(0.8, 3.0) if point is None else 12)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        err = proc.stderr.read().decode() if proc.stderr else ""
        assert proc.returncode == -signal.SIGKILL, f"consumer exited {proc.returncode}: {err}"
        killed += 1
    assert killed >= kills
    done = subprocess.run(_headrace("stream", target, "--drain"), env=_env(tmp_path, broker),
                          capture_output=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    with duckdb.connect(str(db), read_only=True) as conn:
        [(total, distinct, lo, hi)] = conn.execute(
            "SELECT count(*), count(DISTINCT id), min(id), max(id) FROM events"
        ).fetchall()
        bad = conn.execute("SELECT _hr_payload, _hr_reason, _hr_position FROM events_quarantine"
                           ).fetchall()  # fmt: skip
        ledger = conn.execute("SELECT count(*) FROM _hr_loads").fetchall()[0][0]
    assert (total, distinct, lo, hi) == (n, n, 0, n - 1), "lost or duplicated events"
    assert len(bad) == 1 and bad[0][0] == POISON and "decode" in bad[0][1] and bad[0][2]
    assert ledger >= 2  # the load really happened in several batches across the crashes


@pytest.mark.slow  # ~30 s per broker: 6 CLI starts (the 100k version below kills 12 times)
@pytest.mark.timeout(600)
def test_kill_9_exactly_once(tmp_path: Path, broker: Broker) -> None:
    crash_and_check(tmp_path, broker, n=2_000, kills=5, batch=250)


@pytest.mark.streams_full
@pytest.mark.timeout(900)
def test_kill_9_exactly_once_100k(tmp_path: Path, broker: Broker) -> None:
    crash_and_check(tmp_path, broker, n=100_000, kills=12, batch=5_000)
