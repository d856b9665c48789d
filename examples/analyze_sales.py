"""The brief's DataAnalyzer usage on headrace: load sales, aggregate, group by category, export.

It generates a small sample of sales orders as Parquet (seeded, so every run prints the
same figures), then:

* loads it into an in-memory DuckDB,
* summarises it (rows, unique users, first and last order, mean/median/total/stddev amount),
* groups by category with count, sum and average amount (largest count first),
* computes amount percentiles and a filtered query with a bound parameter,
* profiles every column and writes a self-contained HTML report,
* exports to Parquet (zstd), CSV with header, and Parquet partitioned by category,
  and checks every export holds every row.

Run it:
    python examples/analyze_sales.py [OUTPUT_FOLDER] [--rows N]

The same data from the command line:
    headrace profile OUTPUT_FOLDER/sales.parquet --html report.html
    headrace query "SELECT category, sum(amount) FROM sales GROUP BY 1" --file OUTPUT_FOLDER/sales.parquet
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from headrace.analytics import Analyzer
from headrace.analytics.report import write_html

CATEGORIES = ["électronique", "books", "toys", "garden", "food"]
WEIGHTS = [0.1, 0.3, 0.25, 0.15, 0.2]
REGIONS = ["north", "south", "east", "west"]


def make_sales(path: Path, rows: int, seed: int = 7) -> Path:
    """Write ``rows`` seeded sample orders to ``path`` as Parquet."""
    rng = random.Random(seed)
    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    users = max(rows // 6, 1)
    table = pa.table(
        {
            "order_id": pa.array(range(1, rows + 1), pa.int64()),
            "user_id": pa.array([rng.randint(1, users) for _ in range(rows)], pa.int64()),
            "created_at": pa.array(
                [start + dt.timedelta(minutes=rng.randint(0, 365 * 24 * 60)) for _ in range(rows)],
                pa.timestamp("us", tz="UTC"),
            ),
            "category": pa.array(rng.choices(CATEGORIES, WEIGHTS, k=rows)),
            # Log-normal amounts: many small orders, a few large ones; some refunds are missing.
            "amount": pa.array(
                [
                    None if rng.random() < 0.01 else round(rng.lognormvariate(3.5, 0.8), 2)
                    for _ in range(rows)
                ],
                pa.float64(),
            ),
            "quantity": pa.array([rng.randint(1, 5) for _ in range(rows)], pa.int32()),
            "region": pa.array([rng.choice(REGIONS) for _ in range(rows)]),
        }
    )
    pq.write_table(table, path, compression="zstd")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "folder", nargs="?", type=Path, help="where to write the sample and the outputs"
    )
    parser.add_argument("--rows", type=int, default=5000, help="sample orders to generate")
    args = parser.parse_args()
    folder: Path = args.folder or Path(tempfile.mkdtemp(prefix="headrace-sales-"))
    folder.mkdir(parents=True, exist_ok=True)
    source = make_sales(folder / "sales.parquet", args.rows)
    print(f"sample: {source} ({args.rows} orders)")

    with Analyzer() as analyzer:
        analyzer.load_parquet(source, "sales")

        # analyzer.aggregate('sales') in the brief, with the columns named instead of hard-coded.
        stats = analyzer.aggregate("sales", ["user_id", "created_at", "amount"])
        amount = stats["amount"]
        print(f"rows: {stats.rows}")
        print(f"unique users: {stats['user_id']['distinct']}")
        print(f"earliest order: {stats['created_at']['min']:%Y-%m-%d %H:%M}")
        print(f"latest order: {stats['created_at']['max']:%Y-%m-%d %H:%M}")
        print(f"orders without amount: {amount['nulls']}")
        print(
            f"amount: total {amount['sum']:.2f}, mean {amount['mean']:.2f}, "
            f"median {amount['median']:.2f}, stddev {amount['stddev']:.2f}"
        )

        # analyzer.groupBy('sales', 'category', ['count', 'sum', 'avg']) in the brief.
        by_category = analyzer.group_by("sales", "category", ["count", "sum", "avg"], on="amount")
        print("by category (largest count first):")
        for category, count, total, mean in by_category.rows():
            print(f"  {category}: count={count} sum={total:.2f} avg={mean:.2f}")

        pcts = analyzer.percentiles("sales", "amount", [50, 90, 95, 99])
        print("amount percentiles: " + ", ".join(f"{k}={v:.2f}" for k, v in pcts.items()))

        # Values are bound, never pasted into the SQL text.
        big = analyzer.query(
            "SELECT count(*) FROM sales WHERE amount > ? AND region = ?", [pcts["p95"], "north"]
        ).scalar()
        print(f"orders above p95 in the north: {big}")

        profile = analyzer.profile("sales")
        report = write_html(profile, folder / "sales_profile.html")
        print(f"profile: {len(profile.columns)} columns, report {report}")
        for column in profile.columns:
            print(
                f"  {column.name}: {column.type}, {column.null_share:.1%} null, {column.distinct} distinct"
            )

        exports = [
            analyzer.export("sales", folder / "out" / "sales.parquet", overwrite=True),
            analyzer.export("sales", folder / "out" / "sales.csv", overwrite=True),
            analyzer.export(
                "sales", folder / "out" / "by_category", partition_by=["category"], overwrite=True
            ),
        ]
        for info in exports:
            # Read each export back: nothing may be lost on the way out.
            if info.format == "csv":
                back = analyzer.query("SELECT count(*) FROM read_csv(?)", [str(info.path)]).scalar()
            else:
                pattern = f"{info.path}/**/*.parquet" if info.path.is_dir() else str(info.path)
                back = analyzer.query("SELECT count(*) FROM read_parquet(?)", [pattern]).scalar()
            assert back == stats.rows, f"{info.path}: {back} rows read back, {stats.rows} exported"
            print(
                f"exported {info.rows} rows to {info.path.name} ({info.format}, {info.codec}, {len(info.files)} files)"
            )


if __name__ == "__main__":
    main()
