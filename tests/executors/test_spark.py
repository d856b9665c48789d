"""Spark tasks in a pipeline: a Spark task between plain tasks, results passed as Parquet.

PySpark runs in local mode on the machine's Java. The Spark session is one per process,
so the module's runs share it (created by the first run from its ``[spark]`` settings).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest

from headrace import Context, pipeline, task
from headrace.config import Settings
from headrace.engine import Runner
from headrace.state import open_store

pytest.importorskip("pyspark")
from pyspark.sql import DataFrame as SparkDataFrame  # noqa: E402

pytestmark = pytest.mark.spark


@task
def customers() -> pa.Table:
    return pa.table({"state": ["CA", "NY", "CA", "TX", "CA"], "spend": [10, 20, 30, 40, 50]})


@task
def by_state(ctx: Context, rows: SparkDataFrame) -> SparkDataFrame:
    """A Spark task: gets the upstream's Parquet as a Spark DataFrame, returns one."""
    from pyspark.sql import functions as F

    assert rows.sparkSession.sparkContext.master == ctx.settings.spark.master
    return rows.groupBy("state").agg(F.sum("spend").alias("spend"), F.count("*").alias("n"))


@task
def report(totals: pl.LazyFrame) -> dict:
    """A plain task reading the Spark task's Parquet lazily."""
    got = totals.sort("state").collect()
    return {row["state"]: [row["spend"], row["n"]] for row in got.to_dicts()}


@pipeline
def spark_etl() -> None:
    report(by_state(customers()))  # type: ignore[call-overload]  # staged: read as LazyFrame


@pytest.fixture(scope="module", autouse=True)
def stop_spark() -> Iterator[None]:
    """The module's Spark session (made by the first run) stops with the module: no JVM
    stays behind in the test process."""
    yield
    from pyspark.sql import SparkSession

    session = SparkSession.getActiveSession()
    if session is not None:
        session.stop()


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    home = tmp_path_factory.mktemp("spark")
    (home / "headrace.toml").write_text(
        '[spark]\nmaster = "local[1]"\n[spark.conf]\n"spark.sql.shuffle.partitions" = "2"\n'
        '"spark.ui.enabled" = "false"\n'
    )
    return Settings.from_env(home, environ={"HEADRACE_HOME": str(home / ".headrace")})


def test_a_spark_task_between_plain_tasks(settings: Settings) -> None:
    settings.home.mkdir(parents=True, exist_ok=True)
    with open_store(settings.state_url) as store:
        result = Runner(store, executor="inprocess", settings=settings).run(spark_etl)
        assert result.state == "success", [t.error for t in result.tasks]
        assert result.result_of("report") == {"CA": [90, 3], "NY": [20, 1], "TX": [40, 1]}
        staged = {t.task_id: t for t in result.tasks}
    # Spark's executors wrote the aggregate as a Parquet folder (part files), in staging
    folders = list(Path(settings.home / "staging").rglob("by_state.parquet"))
    assert len(folders) == 1 and folders[0].is_dir(), folders
    assert list(folders[0].glob("part-*.parquet"))
    assert staged["by_state"].state == "success"

    from pyspark.sql import SparkSession

    session = SparkSession.getActiveSession()
    assert session is not None
    assert session.conf.get("spark.sql.shuffle.partitions") == "2"  # [spark.conf] applied
