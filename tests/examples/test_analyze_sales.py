"""examples/analyze_sales.py runs, and its figures match the same sums computed by Polars."""

from __future__ import annotations

import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "analyze_sales.py"


def test_analyze_sales_example(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), str(tmp_path), "--rows", "3000"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = done.stdout
    sales = pl.read_parquet(tmp_path / "sales.parquet")
    amount = sales["amount"]
    total, mean, median = sales.select(
        pl.col("amount").sum().alias("total"),
        pl.col("amount").mean().alias("mean"),
        pl.col("amount").median().alias("median"),
    ).row(0)

    assert "rows: 3000" in out
    assert f"unique users: {sales['user_id'].n_unique()}" in out
    assert f"orders without amount: {amount.null_count()}" in out
    assert f"amount: total {total:.2f}, mean {mean:.2f}, median {median:.2f}" in out

    # Group by category: count, sum, avg, largest count first, as Polars computes them.
    expected = (
        sales.group_by("category")
        .agg(
            pl.len().alias("count"),
            pl.col("amount").sum().alias("sum"),
            pl.col("amount").mean().alias("avg"),
        )
        .sort(["count", "category"], descending=[True, False])
    )
    printed = re.findall(r"^  (\S+): count=(\d+) sum=([\d.]+) avg=([\d.]+)$", out, re.M)
    assert printed == [
        (r["category"], str(r["count"]), f"{r['sum']:.2f}", f"{r['avg']:.2f}")
        for r in expected.iter_rows(named=True)
    ]
    assert "électronique" in {p[0] for p in printed}

    p95 = float(re.search(r"p95=([\d.]+)", out).group(1))  # type: ignore[union-attr]
    assert p95 == pytest.approx(amount.quantile(0.95, interpolation="linear"), abs=0.01)

    # Every export was read back with all rows; the files are where the example says.
    assert re.findall(r"exported (\d+) rows to (\S+) \((\w+), (\w+), (\d+) files\)", out) == [
        ("3000", "sales.parquet", "parquet", "zstd", "1"),
        ("3000", "sales.csv", "csv", "none", "1"),
        ("3000", "by_category", "parquet", "zstd", "5"),
    ]
    exported = pq.ParquetFile(tmp_path / "out" / "sales.parquet")
    assert exported.metadata.num_rows == 3000
    assert exported.metadata.row_group(0).column(0).compression == "ZSTD"
    assert (
        (tmp_path / "out" / "sales.csv")
        .read_text(encoding="utf-8")
        .startswith("order_id,user_id,created_at")
    )

    report = (tmp_path / "sales_profile.html").read_text(encoding="utf-8")
    HTMLParser().feed(report)
    assert report.count("<svg") >= 7 and "http://" not in report.replace(
        "http://www.w3.org/2000/svg", ""
    )
