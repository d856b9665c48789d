"""The customer sync into an Iceberg table on S3, a Spark aggregate into a Delta table, queried.

1. The reference customer sync (``customer_etl.py``: incremental extract from the demo
   CRM, clean, checks, merge) loads into Iceberg table ``customers`` whose files live in
   an S3 bucket — here a local S3 emulator (moto) this script starts on a loopback port;
   the catalog is SQLite under ``.headrace/``.
2. A Spark task (PySpark in ``local[*]``, from the ``[spark]`` settings) counts the
   customers per e-mail domain; its input and output pass as Parquet, never collected.
3. The counts are loaded into Delta table ``customers_by_domain`` under ``.headrace/lake``.
4. ``headrace query`` reads both tables, and the Iceberg table's first snapshot
   (``"customers@<snapshot id>"``, time travel).

Run it: ``python examples/lakehouse.py`` (needs the lakehouse and spark extras, and
moto for the emulator: ``pip install 'headrace[lakehouse,spark]' 'moto[server]'``).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from customer_etl import customers

from headrace import Context, destination, pipeline, sync, task
from headrace.config import Settings
from headrace.connectors import open_destination
from headrace.engine import Runner
from headrace.state import open_store

if TYPE_CHECKING:  # the annotation names Spark; pyspark is imported only where it runs
    from pyspark.sql import DataFrame as SparkDataFrame

BUCKET = "headrace-lakehouse"
HEADRACE = str(Path(sys.executable).with_name("headrace"))

lake_customers = sync(
    "customers",
    source=customers.source,
    incremental=customers.incremental,
    transform=customers.transform,
    checks=customers.checks,
    destination=destination(
        "iceberg", table="customers", mode="merge", keys="customer_id", exclude=["email_rank"]
    ),
)


@task
def current_customers(ctx: Context, loaded: dict) -> pa.Table:
    """The Iceberg table as it is after the load (read from S3 through the catalog)."""
    return open_destination("iceberg", ctx.settings).read("customers")  # type: ignore[union-attr]


@task
def by_domain(rows: SparkDataFrame) -> SparkDataFrame:
    """Spark: customers per e-mail domain (reads the staged Parquet, writes Parquet)."""
    from pyspark.sql import functions as F

    return rows.groupBy("email_domain").agg(F.count("*").alias("customers"))


@task
def to_delta(ctx: Context, counts: pa.Table) -> int:
    """Replace the Delta table with the counts (the checkpoint-free replace mode)."""
    dest = open_destination("delta", ctx.settings)
    return dest.write(counts, "customers_by_domain", mode="replace").rows_loaded


@pipeline
def lakehouse() -> None:
    to_delta(by_domain(current_customers(lake_customers())))


def start_s3() -> tuple[Any, str]:
    """A local S3 emulator on a free loopback port, with the bucket made."""
    import boto3
    from moto.server import ThreadedMotoServer

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="demo",
                 aws_secret_access_key="demo-secret", region_name="us-east-1",
                 ).create_bucket(Bucket=BUCKET)  # fmt: skip
    return server, endpoint


def main() -> int:
    """Start the emulator, run the pipeline, query both tables with ``headrace query``."""
    server, endpoint = start_s3()
    home = Settings.from_env().home
    home.mkdir(parents=True, exist_ok=True)
    # the emulator keeps its bucket in memory: each run starts with a new catalog too
    (home / "lake_catalog.db").unlink(missing_ok=True)
    env = dict(os.environ)
    env["HEADRACE_CONN_ICEBERG"] = (
        f"iceberg+sqlite:///{home / 'lake_catalog.db'}?warehouse=s3://{BUCKET}/warehouse"
        f"&s3.endpoint={endpoint}&s3.access-key-id=demo&s3.secret-access-key=demo-secret"
        "&s3.region=us-east-1"
    )
    env["HEADRACE_CONN_DELTA"] = f"delta:///{home / 'lake'}"
    env.setdefault("HEADRACE_SPARK_MASTER", "local[1]")
    settings = Settings.from_env(environ=env)
    try:
        with open_store(settings.state_url) as store:
            result = Runner(store, executor="inprocess", settings=settings).run(lakehouse)
        if result.state != "success":
            print("\n".join(f"{t.task_id}: {t.error}" for t in result.tasks if t.error))
            return 1
        print("load:", result.result_of("customers"))
        print("domains written to Delta:", result.result_of("to_delta"))
        first = open_destination("iceberg", settings).snapshots("customers")[0]  # type: ignore[union-attr]
        for sql, conn in (
            ("SELECT email_domain, customers FROM customers_by_domain "
             "ORDER BY customers DESC, email_domain LIMIT 5", "HEADRACE_CONN_DELTA"),
            (f'SELECT (SELECT count(*) FROM customers) AS customers_now, '
             f'(SELECT count(*) FROM "customers@{first}") AS at_first_snapshot', "HEADRACE_CONN_ICEBERG"),
        ):  # fmt: skip
            done = subprocess.run(
                [HEADRACE, "query", sql, "--warehouse", env[conn], "--format", "csv"],
                env=env, capture_output=True, text=True, timeout=300,
            )  # fmt: skip
            print(done.stdout.strip() or done.stderr.strip())
            if done.returncode != 0:
                return done.returncode
        return 0
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
