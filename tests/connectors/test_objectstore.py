"""Object storage: a sync reads CSV objects from S3 and merges them into a Delta table on S3,
with the credentials of named connections, against a local S3 emulator (moto's server,
started here on a free loopback port: no cloud).
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from headrace import destination, file_source, full, sync
from headrace.config import Settings
from headrace.connectors import open_destination as _open_destination
from headrace.connectors.objectstore import ObjectStore
from headrace.engine import Runner
from headrace.state import open_store

boto3 = pytest.importorskip("boto3")
moto_server = pytest.importorskip("moto.server")


def open_destination(url: str, settings: Any = None) -> Any:
    """The destination of ``url`` (a lake/file destination: its own API, beyond SqlDestination)."""
    return _open_destination(url, settings)


KEY, SECRET = "AKIDHEADRACE", "s3cr3t-never-shown"
BUCKET = "headrace-test"


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    client = boto3.client("s3", endpoint_url=url, aws_access_key_id=KEY,
                          aws_secret_access_key=SECRET, region_name="us-east-1")  # fmt: skip
    client.create_bucket(Bucket=BUCKET)
    yield url
    server.stop()


def put(endpoint: str, key: str, body: str) -> None:
    client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=KEY,
                          aws_secret_access_key=SECRET, region_name="us-east-1")  # fmt: skip
    client.put_object(Bucket=BUCKET, Key=key, Body=body.encode())


def settings_for(tmp_path: Path, endpoint: str, prefix: str) -> Settings:
    creds = f"{KEY}:{SECRET}@{BUCKET}"
    return Settings.from_env(
        tmp_path,
        environ={
            "HEADRACE_HOME": str(tmp_path / ".headrace"),
            "HEADRACE_CONN_LANDING": f"s3://{creds}/{prefix}/landing?endpoint_url={endpoint}",
            "HEADRACE_CONN_LAKE": f"delta+s3://{creds}/{prefix}/lake?endpoint_url={endpoint}",
        },
    )


def run(settings: Settings, p: object) -> object:
    settings.home.mkdir(parents=True, exist_ok=True)
    with open_store(settings.state_url) as store:
        return Runner(store, executor="inprocess", settings=settings).run(p)  # type: ignore[arg-type]


ORDERS = sync(
    "orders",
    source=file_source("orders/*.csv", connection="landing"),
    incremental=full(),
    destination=destination("lake", table="orders", mode="merge", keys="id"),
)


def test_sync_from_s3_objects_into_a_delta_table_on_s3(endpoint: str, tmp_path: Path) -> None:
    settings = settings_for(tmp_path, endpoint, "merge")
    put(endpoint, "merge/landing/orders/a.csv", "id,amount\n1,10\n2,20\n")
    put(endpoint, "merge/landing/orders/b.csv", "id,amount\n3,30\n")
    put(endpoint, "merge/landing/other.csv", "id,amount\n99,990\n")  # outside the glob
    first = run(settings, ORDERS.pipeline(name="orders"))
    assert first.run.state == "success", [t.error for t in first.tasks]  # type: ignore[attr-defined]
    put(endpoint, "merge/landing/orders/b.csv", "id,amount\n3,33\n4,40\n")
    second = run(settings, ORDERS.pipeline(name="orders"))
    assert second.run.state == "success", [t.error for t in second.tasks]  # type: ignore[attr-defined]

    lake = open_destination("lake", settings)
    got = lake.query(f"SELECT id, amount FROM {lake.q('orders')} ORDER BY id").to_pylist()
    assert got == [{"id": 1, "amount": 10}, {"id": 2, "amount": 20}, {"id": 3, "amount": 33},
                   {"id": 4, "amount": 40}]  # fmt: skip
    # the table's files are in the bucket, not on local disk
    store = ObjectStore.from_url(settings.connection("lake"))
    assert store.filesystem().exists(f"{BUCKET}/merge/lake/orders/_delta_log")
    assert not (tmp_path / "merge").exists()
    # the secret is nowhere in what the run recorded or shows
    recorded = json.dumps([t.__dict__ for t in second.tasks], default=str)  # type: ignore[attr-defined]
    assert SECRET not in recorded and SECRET not in repr(store) and SECRET not in lake.where
    assert "***" in store.masked


def test_a_missing_object_fails_naming_the_path_without_the_secret(
    endpoint: str, tmp_path: Path
) -> None:
    settings = settings_for(tmp_path, endpoint, "missing")
    result = run(settings, ORDERS.pipeline(name="orders"))
    assert result.run.state == "failed"  # type: ignore[attr-defined]
    error = " ".join(str(t.error) for t in result.tasks)  # type: ignore[attr-defined]
    assert f"s3://{BUCKET}/missing/landing/orders/*.csv" in error
    assert SECRET not in error and "***" in error


def test_file_destination_on_s3_commits_by_manifest(endpoint: str) -> None:
    import pyarrow as pa

    url = (f"files+s3://{KEY}:{SECRET}@{BUCKET}/files/out?format=parquet&partition_by=state"
           f"&endpoint_url={endpoint}")  # fmt: skip
    dest = open_destination(url)
    rows = pa.table({"id": [1, 2, 3], "state": ["CA", "NY", "CA"]})
    dest.write(rows, "t", load_id="one")
    assert dest.write(rows, "t", load_id="one").already_loaded  # a rerun adds no object
    store = ObjectStore.from_url(url)
    keys = store.filesystem().find(f"{BUCKET}/files/out/t")
    assert sorted(k.rsplit("/", 2)[-2] for k in keys) == ["_manifests", "state=CA", "state=NY"]
    assert sorted(dest.read("t").column("id").to_pylist()) == [1, 2, 3]
    assert SECRET not in dest.where
