"""Streaming syncs the way they run: a drain task in a pipeline (engine), the
``headrace stream`` command (SIGTERM, metrics), merge, Avro/raw decoding, resharding."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import duckdb
import pytest
from stream_brokers import REDIS_URL, Broker, _free_port, event

from headrace.config import Settings
from headrace.engine import Runner
from headrace.pipeline import pipeline
from headrace.state import open_store
from headrace.streams import kinesis_stream, redis_stream, stream_sync
from headrace.streams.stream_loader import StreamLoader
from headrace.sync import destination

ROOT = Path(__file__).resolve().parents[2]


def _settings(tmp_path: Path) -> Settings:
    return Settings.load(cwd=tmp_path, environ={"HEADRACE_HOME": str(tmp_path / "home")})


def _query(db: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as conn:
        return conn.execute(sql).fetchall()


def _key(broker: Broker) -> str:
    return broker.source.split("'")[1]


def test_a_stream_pipeline_is_defined_where_pipeline_is_called() -> None:
    """Workers import the pipeline again from the file and module of the .pipeline() call."""
    spec = stream_sync("clicks", source=redis_stream("k", url=REDIS_URL),
                       destination=destination("warehouse", table="clicks"))  # fmt: skip
    hourly, line = spec.pipeline(schedule="@hourly"), sys._getframe().f_lineno
    assert (hourly.name, hourly.file, hourly.line, hourly.module) == (
        "clicks", __file__, line, __name__,
    )  # fmt: skip
    assert list(hourly.tasks) == ["clicks"]


def test_drain_task_in_a_scheduled_pipeline_loads_only_new_events(
    tmp_path: Path, redis_broker: Broker
) -> None:
    db = tmp_path / "wh.duckdb"
    clicks = stream_sync("clicks", source=redis_stream(_key(redis_broker), url=REDIS_URL),
                         destination=destination(f"duckdb:///{db}", table="clicks"),
                         max_events=300, max_wait=0.2)  # fmt: skip

    @pipeline
    def hourly():
        clicks()

    settings = _settings(tmp_path)
    redis_broker.produce([event(i) for i in range(1000)])
    with open_store(settings.state_url) as store:
        first = Runner(store, settings=settings, executor="inprocess").run(hourly)
        redis_broker.produce([event(i) for i in range(1000, 1500)])
        second = Runner(store, settings=settings, executor="inprocess").run(hourly)
    assert first.state == "success" and second.state == "success"
    assert first.result_of("clicks")["loaded"] == 1000
    assert second.result_of("clicks")["loaded"] == 500
    assert _query(db, "SELECT count(*), count(DISTINCT id) FROM clicks") == [(1500, 1500)]


def test_merge_keeps_the_latest_event_per_key(tmp_path: Path, redis_broker: Broker) -> None:
    db = tmp_path / "wh.duckdb"
    spec = stream_sync("users", source=redis_stream(_key(redis_broker), url=REDIS_URL),
                       destination=destination(f"duckdb:///{db}", table="users", mode="merge",
                                               keys="user"),
                       max_events=70, max_wait=0.2)  # fmt: skip
    # 500 updates of 10 users, spread over several batches; the last per user must win
    redis_broker.produce([json.dumps({"user": f"u{i % 10}", "version": i}).encode()
                          for i in range(500)])  # fmt: skip
    stats = StreamLoader(spec, _settings(tmp_path)).run(drain=True)
    assert stats.batches >= 7
    rows = _query(db, "SELECT user, version FROM users ORDER BY user")
    assert rows == [(f"u{u}", 490 + u) for u in range(10)]


def test_avro_and_raw_events_with_a_bad_one_quarantined(
    tmp_path: Path, redis_broker: Broker
) -> None:
    fastavro = pytest.importorskip("fastavro")
    schema = {
        "type": "record",
        "name": "Click",
        "fields": [{"name": "id", "type": "long"}, {"name": "page", "type": "string"}],
    }
    payloads = []
    for i in range(50):
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, fastavro.parse_schema(schema), {"id": i, "page": f"/{i}"})
        payloads.append(buf.getvalue())
    payloads.insert(20, b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff")  # not a record
    redis_broker.produce(payloads)
    db = tmp_path / "wh.duckdb"
    key = _key(redis_broker)
    avro = stream_sync("avro", source=redis_stream(key, url=REDIS_URL, group="a"),
                       destination=destination(f"duckdb:///{db}", table="clicks"),
                       decode="avro", schema=schema, max_wait=0.2)  # fmt: skip
    raw = stream_sync("raw", source=redis_stream(key, url=REDIS_URL, group="r"),
                      destination=destination(f"duckdb:///{db}", table="blobs"),
                      decode="raw", max_wait=0.2)  # fmt: skip
    StreamLoader(avro, _settings(tmp_path)).run(drain=True)
    StreamLoader(raw, _settings(tmp_path)).run(drain=True)
    assert _query(db, "SELECT count(*), sum(id), min(page) FROM clicks") == [(50, 1225, "/0")]
    ((reason, payload),) = _query(db, "SELECT _hr_reason, _hr_payload FROM clicks_quarantine")
    assert "decode" in reason and payload == payloads[20]
    assert _query(db, "SELECT count(*) FROM blobs") == [(51,)]


def test_json_values_of_another_type_are_quarantined_not_blocking_the_stream(
    tmp_path: Path, redis_broker: Broker
) -> None:
    """A field whose type differs between events: the odd events are quarantined with
    the column, the types and their position; the rest load, the run succeeds. The type
    comes from the batch when the table is new, from the table once it exists."""
    import redis

    db = tmp_path / "wh.duckdb"
    key = _key(redis_broker)
    clicks = stream_sync("clicks", source=redis_stream(key, url=REDIS_URL),
                         destination=destination(f"duckdb:///{db}", table="clicks"),
                         max_events=1000, max_wait=0.2)  # fmt: skip

    @pipeline
    def hourly():
        clicks()

    def ids() -> list[str]:
        client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
        try:
            return [str(entry) for entry, _ in client.xrange(key)]  # type: ignore[union-attr]
        finally:
            client.close()

    settings = _settings(tmp_path)
    first: list[dict[str, object]] = [{"id": i, "a": i} for i in range(20)]
    first[7]["a"] = "x"
    redis_broker.produce([json.dumps(e).encode() for e in first])
    # the table now says BIGINT: a batch whose strings outnumber its numbers still fits it
    second = [{"id": 100, "a": "y"}, {"id": 101, "a": 5}, {"id": 102, "a": "z"}]
    third = [{"id": 200, "a": "w"}]  # clean JSON, but not the table's type
    with open_store(settings.state_url) as store:
        runs = [Runner(store, settings=settings, executor="inprocess").run(hourly)]
        for batch in (second, third):
            redis_broker.produce([json.dumps(e).encode() for e in batch])
            runs.append(Runner(store, settings=settings, executor="inprocess").run(hourly))
    assert [run.state for run in runs] == ["success"] * 3
    counts = [(r.result_of("clicks")["loaded"], r.result_of("clicks")["quarantined"]) for r in runs]
    assert counts == [(19, 1), (1, 2), (0, 1)]
    assert _query(db, "SELECT typeof(a) FROM clicks LIMIT 1") == [("BIGINT",)]
    assert _query(db, "SELECT count(*), sum(a) FROM clicks") == [(20, sum(range(20)) - 7 + 5)]
    entry = ids()
    bad = _query(db, "SELECT _hr_position, _hr_reason, _hr_payload FROM clicks_quarantine "
                     "ORDER BY _hr_loaded_at, _hr_position")  # fmt: skip
    assert bad == [
        (entry[7], "column 'a': expected int64, got string 'x'", json.dumps(first[7]).encode()),
        (entry[20], "column 'a': expected int64, got string 'y'", json.dumps(second[0]).encode()),
        (entry[22], "column 'a': expected int64, got string 'z'", json.dumps(second[2]).encode()),
        (entry[23], "column 'a': expected int64, got string 'w'", json.dumps(third[0]).encode()),
    ]


def test_json_values_that_do_not_fit_the_declared_schema_are_quarantined(
    tmp_path: Path, redis_broker: Broker
) -> None:
    """With a declared schema nothing is converted: "7" is no int64, 1.5 is not cut to 1,
    true is no number; those events are quarantined, the others load."""
    import pyarrow as pa

    db = tmp_path / "wh.duckdb"
    schema = pa.schema([("id", pa.int64()), ("a", pa.int64())])
    spec = stream_sync("typed", source=redis_stream(_key(redis_broker), url=REDIS_URL),
                       destination=destination(f"duckdb:///{db}", table="typed"),
                       schema=schema, max_wait=0.2)  # fmt: skip
    values: list[object] = [1, "x", 1.5, "7", True, None, 2]
    redis_broker.produce([json.dumps({"id": i, "a": v}).encode() for i, v in enumerate(values)])
    stats = StreamLoader(spec, _settings(tmp_path)).run(drain=True)
    assert (stats.loaded, stats.quarantined) == (3, 4)
    assert _query(db, "SELECT id, a FROM typed ORDER BY id") == [(0, 1), (5, None), (6, 2)]
    reasons = _query(db, "SELECT _hr_reason FROM typed_quarantine ORDER BY _hr_position")
    assert [r for (r,) in reasons] == [
        "column 'a': expected int64, got string 'x'",
        "column 'a': expected int64, got float 1.5",
        "column 'a': expected int64, got string '7'",
        "column 'a': expected int64, got boolean true",
    ]


def test_sigterm_finishes_the_batch_commits_acks_and_serves_metrics(
    tmp_path: Path, redis_broker: Broker
) -> None:
    """Metrics through the shared ``[metrics]`` settings: Prometheus on ``port``, StatsD."""
    redis = pytest.importorskip("redis")
    pytest.importorskip("prometheus_client")
    key, db, port = _key(redis_broker), tmp_path / "wh.duckdb", _free_port()
    agent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # a StatsD agent stand-in
    agent.bind(("127.0.0.1", 0))
    agent.settimeout(0.5)
    redis_broker.produce([event(i) for i in range(3000)])
    (tmp_path / "s.py").write_text(
        "from headrace.sync import destination\nfrom headrace.streams import redis_stream, "
        f"stream_sync\nev = stream_sync('ev', source=redis_stream({key!r}, url={REDIS_URL!r}),\n"
        f"    destination=destination('duckdb:///{db}', table='ev'), max_events=500)\n"
    )
    env = {
        **os.environ,
        "HEADRACE_HOME": str(tmp_path / "home"),
        "COLUMNS": "300",
        "HEADRACE_METRICS_PORT": str(port),
        "HEADRACE_METRICS_TAGS": "env:test",
        "HEADRACE_STATSD_URL": f"udp://127.0.0.1:{agent.getsockname()[1]}",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", "from headrace.cli import main; main()", "stream",
         f"{tmp_path / 's.py'}:ev"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    body = ""
    deadline = time.monotonic() + 60
    loaded = re.compile(r'headrace_stream_events_total\{outcome="loaded"[^}]*\} 3000\.0')
    while not loaded.search(body):
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            errors = proc.stderr.read() if proc.stderr else b""
            pytest.fail(f"no metrics of 3000 loaded events: {body[-500:]} {errors!r}")
        time.sleep(0.3)
        try:
            body = (
                urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2)
                .read()
                .decode()
            )
        except OSError:
            continue
    assert "headrace_stream_lag" in body and "headrace_stream_commit_seconds" in body
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err.decode()
    assert "3,000 loaded" in err.decode()
    client = redis.Redis.from_url(REDIS_URL)
    assert client.xpending(key, "headrace")["pending"] == 0  # every batch acked after commit
    assert _query(db, "SELECT count(DISTINCT id), count(*) FROM ev") == [(3000, 3000)]
    lines = []
    with contextlib.suppress(TimeoutError):
        while True:
            lines += agent.recv(65535).decode().splitlines()
    agent.close()
    loaded_lines = [
        x for x in lines if x.startswith("headrace.stream.events:") and "outcome:loaded" in x
    ]
    assert sum(int(x.split(":")[1].split("|")[0]) for x in loaded_lines) == 3000
    assert all("env:test" in x and "sync:ev" in x for x in loaded_lines)
    assert any(x.startswith("headrace.stream.commit:") and "|ms|" in x for x in lines)
    assert any(x.startswith("headrace.stream.lag:") and "|g|" in x for x in lines)


def test_kinesis_resharding_keeps_every_event_once(tmp_path: Path, kinesis_broker: Broker) -> None:
    boto3 = pytest.importorskip("boto3")
    endpoint = kinesis_broker.source.split("endpoint_url=")[1].strip("')")
    name = _key(kinesis_broker)
    client = boto3.client("kinesis", region_name="us-east-1", endpoint_url=endpoint)
    kinesis_broker.produce([event(i) for i in range(600)])
    db = tmp_path / "wh.duckdb"
    spec = stream_sync("k", source=kinesis_stream(name, endpoint_url=endpoint),
                       destination=destination(f"duckdb:///{db}", table="ev"),
                       max_events=200, max_wait=0.2)  # fmt: skip
    StreamLoader(spec, _settings(tmp_path)).run(drain=True)
    shard = client.list_shards(StreamName=name)["Shards"][0]
    lo, hi = (int(shard["HashKeyRange"][k]) for k in ("StartingHashKey", "EndingHashKey"))
    client.split_shard(StreamName=name, ShardToSplit=shard["ShardId"],
                       NewStartingHashKey=str((lo + hi) // 2))  # fmt: skip
    kinesis_broker.produce([event(i) for i in range(600, 1200)])
    StreamLoader(spec, _settings(tmp_path)).run(drain=True)
    assert _query(db, "SELECT count(*), count(DISTINCT id) FROM ev") == [(1200, 1200)]
    shards = client.list_shards(StreamName=name)["Shards"]
    assert len(shards) == 4  # two shards, one of them split: its two children were read too
