"""Spark sessions for tasks, configured from ``Settings.spark``, and Spark results staged as Parquet.

A task uses Spark by asking for the session or by taking a Spark DataFrame::

    from pyspark.sql import DataFrame as SparkDataFrame

    @task
    def totals(customers: SparkDataFrame) -> SparkDataFrame:       # read by Spark from Parquet
        return customers.groupBy("state").count()                  # staged by Spark as Parquet

    @task
    def report(totals: pl.LazyFrame) -> int: ...                   # scans the Parquet lazily

A parameter annotated ``SparkDataFrame`` (or ``pyspark.sql.DataFrame``) receives the upstream's staged Parquet
read by Spark (whatever the upstream returned), in the session made from the run's
settings (:func:`spark_session`, which a task can also call itself); a task returning a Spark DataFrame has
it written by Spark (``df.write.parquet``) into the staging folder. Neither direction
collects rows to the driver. The session is Spark's one per process: ``local[*]`` by
default, a ``spark://`` master, or Spark Connect (``sc://host:15002``), with
``[spark.conf]`` options.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

from headrace.config import Settings, SparkSettings
from headrace.extras import require


def spark_session(settings: Settings | SparkSettings) -> Any:
    """The process's Spark session, created from the settings' ``[spark]`` section if needed.

    Args:
        settings: headrace settings (or their ``spark`` section).

    Returns:
        A ``pyspark.sql.SparkSession``.

    Example:
        >>> spark = spark_session(ctx.settings)
        >>> spark.range(3).count()
        3
    """
    require("spark", "pyspark", "Spark tasks")
    from pyspark.sql import SparkSession

    conf = settings.spark if isinstance(settings, Settings) else settings
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    builder = SparkSession.builder.appName("headrace")
    if conf.master.startswith("sc://"):
        builder = builder.remote(conf.master)
    else:
        builder = builder.master(conf.master)
    for key, value in conf.conf.items():
        builder = builder.config(key, str(value))
    return builder.getOrCreate()


def is_spark_frame(value: Any) -> bool:
    """Whether ``value`` is a Spark DataFrame (classic or Spark Connect), without importing Spark."""
    if "pyspark" not in sys.modules:
        return False
    from pyspark.sql import DataFrame

    if isinstance(value, DataFrame):
        return True
    connect = sys.modules.get("pyspark.sql.connect.dataframe")
    return connect is not None and isinstance(value, connect.DataFrame)


def write_spark(frame: Any, path: Path) -> int:
    """Write a Spark DataFrame as a Parquet folder at ``path`` (atomically); return its rows.

    Spark's executors write the files; the row count comes from the Parquet footers.
    """
    import pyarrow.dataset as ds

    tmp = path.with_name(f".{path.name}.{os.getpid()}.spark")
    shutil.rmtree(tmp, ignore_errors=True)
    frame.write.mode("overwrite").option("compression", "zstd").parquet(str(tmp))
    if path.exists():
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    os.replace(tmp, path)
    return int(ds.dataset(str(path), format="parquet").count_rows())


def read_spark(path: str | Path) -> Any:
    """A staged Parquet file or folder as a Spark DataFrame of the active session."""
    from pyspark.sql import SparkSession

    spark = SparkSession.getActiveSession() or SparkSession.builder.getOrCreate()
    return spark.read.parquet(str(path))
