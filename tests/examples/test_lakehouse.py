"""examples/lakehouse.py: customer sync into Iceberg on a local S3 emulator, a Spark aggregate
into Delta, and ``headrace query`` over both (with Iceberg time travel)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("pyspark")
pytest.importorskip("moto")
pytestmark = pytest.mark.spark

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "lakehouse.py"


def test_lakehouse_example_loads_aggregates_and_queries(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADRACE_")}
    env.update(HEADRACE_HOME=str(tmp_path / ".headrace"), HEADRACE_SPARK_MASTER="local[1]")
    done = subprocess.run([sys.executable, str(EXAMPLE)], capture_output=True, text=True,
                          timeout=600, env=env, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    load = ast.literal_eval(next(line for line in lines if line.startswith("load: "))[6:])
    assert load["extracted"] == load["loaded"] + load["quarantined"] > 0
    assert load["destination"] == "iceberg.customers"
    start, end = (
        lines.index("email_domain,customers"),
        lines.index("customers_now,at_first_snapshot"),
    )
    counted = [int(line.rsplit(",", 1)[1]) for line in lines[start + 1 : end]]
    assert 0 < sum(counted) <= load["loaded"] and counted == sorted(counted, reverse=True)
    now, first = lines[end + 1].split(",")
    assert int(now) == int(first) == load["table_rows"]
    assert (tmp_path / ".headrace" / "lake" / "customers_by_domain" / "_delta_log").is_dir()
