"""Benchmark: profile + group-by on 10,000,000 sales rows — headrace vs Polars vs pandas.

The workload, the same for every tool, on one Parquet file generated here (numpy,
seeded, written one million rows at a time):

* profile: for every column null count, distinct count, min and max; for numeric
  columns mean, standard deviation and quartiles plus a 20-bin histogram; the five
  most frequent values of the text columns;
* group by ``category``: row count, sum, mean, median and 95th percentile of ``amount``.

Each run is a fresh subprocess that reads the file itself (reading is part of the
work users wait for); the tools take turns for ``--repeat`` rounds and each one's
best time counts, with the highest peak RSS (VmHWM) of its runs. headrace runs from the project's interpreter (``Analyzer.profile`` and
``Analyzer.group_by`` over a view of the file); Polars (lazy, streaming engine) and
pandas (``read_parquet`` then column methods) run from an isolated venv under
``bench/.envs/analytics``. Differences, all of them extra work for headrace: its
profile also lists frequent values of few-valued numeric columns and draws a histogram
of the date column. Distinct counts are HyperLogLog estimates in headrace and Polars
(``approx_n_unique``); pandas has only exact ``nunique``. Quartiles come from a
reservoir sample in headrace's profile, exact in the others; the group-by
percentiles are exact everywhere. The tools must agree on the group-by results, null
counts, every column's min, max, mean and standard deviation, the frequent text values
with their counts and the 20-bin histograms of ``order_id``, ``user_id`` and ``amount``,
or the benchmark stops (see ``agree``). headrace's DuckDB uses every core, as Polars
does; pandas uses one. Besides wall-clock seconds the JSON line gives each best run's
CPU seconds (all threads), which the other load on a shared machine disturbs less.

Run:  .venv/bin/python bench/analytics.py [--rows 10000000] [--repeat 3] [--skip-pandas]
Last line: one JSON object with headrace_s, polars_over_headrace, pandas_over_headrace,
headrace_peak_rss_mb (and the data's in-memory size, data_uncompressed_mb, and *_cpu_s).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from rich.console import Console
from rich.progress import Progress

HERE = Path(__file__).resolve().parent
ENV = HERE / ".envs" / "analytics"
DATA = HERE / ".data"
ANCHOR_PACKAGES = ["polars", "pandas", "pyarrow", "numpy"]
SEED = 20241107
CHUNK = 1_000_000
CATEGORIES = [f"category_{i:02d}" for i in range(20)]
REGIONS = ["north", "south", "east", "west", "centre", "islands", "overseas", "online"]
STATUSES = ["paid", "shipped", "refunded", "cancelled"]
err = Console(stderr=True)


# --------------------------------------------------------------------------- data


def generate(path: Path, rows: int) -> int:
    """Write the sales table (seeded) as Parquet; returns its in-memory Arrow size in bytes."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(SEED)
    weights = 1 / np.arange(1, len(CATEGORIES) + 1)  # Zipf-like: a few big categories
    weights /= weights.sum()
    start = np.datetime64("2024-01-01T00:00:00", "us").astype(np.int64)
    year_us = 366 * 24 * 3600 * 1_000_000
    nbytes = 0
    tmp = path.with_suffix(".tmp")
    writer = None
    with Progress(console=err, transient=True) as bar:
        task = bar.add_task(f"generating {rows:,} rows", total=rows)
        for offset in range(0, rows, CHUNK):
            n = min(CHUNK, rows - offset)
            amount = np.round(rng.lognormal(3.5, 0.9, n), 2)
            status = np.array(STATUSES, dtype=object)[rng.integers(0, len(STATUSES), n)]
            table = pa.table(
                {
                    "order_id": pa.array(np.arange(offset + 1, offset + n + 1, dtype=np.int64)),
                    "user_id": pa.array(rng.integers(1, 1_000_001, n, dtype=np.int64)),
                    "created_at": pa.array(start + rng.integers(0, year_us, n), pa.timestamp("us")),
                    "category": pa.array(
                        np.array(CATEGORIES, dtype=object)[
                            rng.choice(len(CATEGORIES), n, p=weights)
                        ]
                    ),
                    "region": pa.array(
                        np.array(REGIONS, dtype=object)[rng.integers(0, len(REGIONS), n)]
                    ),
                    "amount": pa.array(amount, mask=rng.random(n) < 0.01),
                    "quantity": pa.array(rng.integers(1, 11, n, dtype=np.int32)),
                    "status": pa.array(status, mask=rng.random(n) < 0.005, type=pa.string()),
                }
            )
            nbytes += table.nbytes
            if writer is None:
                writer = pq.ParquetWriter(tmp, table.schema, compression="zstd")
            writer.write_table(table, row_group_size=CHUNK)
            bar.advance(task, n)
    assert writer is not None
    writer.close()
    tmp.rename(path)
    return nbytes


def dataset(rows: int) -> tuple[Path, int]:
    """The data file for ``rows`` rows (generated once) and its in-memory size in bytes."""
    DATA.mkdir(parents=True, exist_ok=True)
    path = DATA / f"analytics_{rows}.parquet"
    meta = path.with_suffix(".json")
    if not (path.exists() and meta.exists()):
        nbytes = generate(path, rows)
        meta.write_text(json.dumps({"rows": rows, "arrow_bytes": nbytes}))
    return path, int(json.loads(meta.read_text())["arrow_bytes"])


# --------------------------------------------------------------------------- workloads

# Each child prints one JSON line: seconds (best run), peak_rss_mb, and results to cross-check.
# Peak RSS is VmHWM of the child's own address space: getrusage's ru_maxrss would carry
# over the parent's size at fork time.
_FOOTER = """
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0]
rss = int(hwm.split()[1]) / 1024
print(json.dumps({"seconds": best, "cpu_seconds": cpu, "peak_rss_mb": rss, "groups": groups, "nulls": nulls,
                  "stats": stats_out, "top": top_out, "hist": hist_out}))
"""
# Values to cross-check, made comparable across tools: dates as ISO text, numbers as floats.
_NORM = """
def norm(v):
    if v is None:
        return None
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return v if isinstance(v, str) else float(v)
"""
# The columns whose histograms all three tools bin the same way (20 equal-width bins;
# headrace gives the narrow-ranged ``quantity`` one bin per value, and bins the dates).
HIST_COLUMNS = ("order_id", "user_id", "amount")

HEADRACE = (
    """
import json, os, sys, time
from headrace.analytics import Analyzer
path, repeat = sys.argv[1], int(sys.argv[2])
best = float("inf")
with Analyzer(threads=os.cpu_count(), memory_limit="1GB") as a:
    a.load_parquet(path, "sales", view=True)
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        profile = a.profile("sales", top=5, bins=20)
        result = a.group_by("sales", "category", ["count", "sum", "avg", "median", "p95"], on="amount")
        elapsed = time.perf_counter() - t0
        if elapsed < best:
            best, cpu = elapsed, time.process_time() - c0
groups = {r[0]: [r[1], round(float(r[2]), 2), round(r[3], 6), round(r[4], 6), round(r[5], 6)] for r in result.rows()}
nulls = {c.name: c.nulls for c in profile.columns}
stats_out = {c.name: {"min": norm(c.min), "max": norm(c.max), "mean": norm(c.mean), "std": norm(c.stddev)}
             for c in profile.columns}
top_out = {c.name: [[v, n] for v, n in c.top_values] for c in profile.columns if c.kind == "string"}
hist_out = {c.name: c.histogram.counts for c in profile.columns if c.name in HIST_COLUMNS}
"""
    + _FOOTER
)

POLARS = (
    """
import json, sys, time
import polars as pl
path, repeat = sys.argv[1], int(sys.argv[2])
best = float("inf")
for _ in range(repeat):
    t0, c0 = time.perf_counter(), time.process_time()
    lf = pl.scan_parquet(path)
    schema = lf.collect_schema()
    numeric = [n for n, t in schema.items() if t.is_numeric()]
    text = [n for n, t in schema.items() if t == pl.String]
    exprs = []
    for n in schema:
        c = pl.col(n)
        exprs += [c.null_count().alias(n + ":nulls"), c.approx_n_unique().alias(n + ":distinct"),
                  c.min().alias(n + ":min"), c.max().alias(n + ":max")]
    for n in numeric:
        c = pl.col(n)
        exprs += [c.mean().alias(n + ":mean"), c.std().alias(n + ":std")]
        exprs += [c.quantile(q).alias(f"{n}:q{q}") for q in (0.25, 0.5, 0.75)]
    stats = lf.select(exprs).collect(engine="streaming").row(0, named=True)
    frames = []
    for n in text:
        frames.append(lf.group_by(n).agg(pl.len()).sort("len", descending=True).head(5))
    for n in numeric:
        lo, hi = stats[n + ":min"], stats[n + ":max"]
        width = (hi - lo) / 20 or 1
        bin_ = ((pl.col(n).cast(pl.Float64) - lo) / width).floor().clip(0, 19).alias("bin")
        frames.append(lf.select(bin_).drop_nulls().group_by("bin").agg(pl.len()))
    tops_and_histograms = pl.collect_all(frames, engine="streaming")
    result = (lf.group_by("category").agg(pl.len().alias("count"), pl.col("amount").sum(), pl.col("amount").mean().alias("avg"),
              pl.col("amount").median().alias("p50"), pl.col("amount").quantile(0.95, interpolation="linear").alias("p95"))
              .sort(["count", "category"], descending=[True, False]).collect(engine="streaming"))
    elapsed = time.perf_counter() - t0
    if elapsed < best:
        best, cpu = elapsed, time.process_time() - c0
groups = {r[0]: [r[1], round(float(r[2]), 2), round(r[3], 6), round(r[4], 6), round(r[5], 6)] for r in result.rows()}
nulls = {n: stats[n + ":nulls"] for n in schema}
stats_out = {n: {"min": norm(stats[n + ":min"]), "max": norm(stats[n + ":max"]),
                 "mean": norm(stats.get(n + ":mean")), "std": norm(stats.get(n + ":std"))} for n in schema}
top_out = {n: [list(r) for r in f.rows()] for n, f in zip(text, tops_and_histograms)}
hist_out = {}
for n, f in zip(numeric, tops_and_histograms[len(text):]):
    if n in HIST_COLUMNS:
        counts = [0] * 20
        for b, k in f.rows():
            counts[int(b)] = k
        hist_out[n] = counts
"""
    + _FOOTER
)

PANDAS = (
    """
import json, sys, time
import numpy as np
import pandas as pd
path, repeat = sys.argv[1], int(sys.argv[2])
best = float("inf")
for _ in range(repeat):
    t0, c0 = time.perf_counter(), time.process_time()
    df = pd.read_parquet(path)
    stats = {}
    for n in df.columns:
        s = df[n]
        stats[n] = {"nulls": int(s.isna().sum()), "distinct": s.nunique(), "min": s.min(), "max": s.max()}
        if pd.api.types.is_numeric_dtype(s):
            stats[n].update(mean=s.mean(), std=s.std(), quartiles=s.quantile([0.25, 0.5, 0.75]).tolist(),
                            histogram=np.histogram(s.dropna(), bins=20)[0])
        elif pd.api.types.is_object_dtype(s) or pd.api.types.is_string_dtype(s):
            stats[n]["top"] = s.value_counts().head(5)
    g = df.groupby("category")["amount"]
    result = pd.DataFrame({"count": df.groupby("category").size(), "sum": g.sum(), "avg": g.mean(),
                           "p50": g.median(), "p95": g.quantile(0.95)})
    result = result.reset_index().sort_values(["count", "category"], ascending=[False, True])
    del df
    elapsed = time.perf_counter() - t0
    if elapsed < best:
        best, cpu = elapsed, time.process_time() - c0
groups = {r[0]: [int(r[1]), round(float(r[2]), 2), round(r[3], 6), round(r[4], 6), round(r[5], 6)]
          for r in result.itertuples(index=False)}
nulls = {n: v["nulls"] for n, v in stats.items()}
stats_out = {n: {k: norm(v.get(k)) for k in ("min", "max", "mean", "std")} for n, v in stats.items()}
top_out = {n: [[k, int(c)] for k, c in v["top"].items()] for n, v in stats.items() if "top" in v}
hist_out = {n: [int(c) for c in v["histogram"]] for n, v in stats.items() if n in HIST_COLUMNS}
"""
    + _FOOTER
)


def anchor_python() -> Path:
    """The isolated venv of the anchor tools, created on first use."""
    python = ENV / "bin" / "python"
    if python.exists():
        return python
    with err.status(f"creating {ENV} and installing {', '.join(ANCHOR_PACKAGES)}…"):
        subprocess.run([sys.executable, "-m", "venv", str(ENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *ANCHOR_PACKAGES], check=True)
    return python


def run(name: str, python: Path | str, code: str, path: Path, round_: int) -> dict:
    """Run one tool's workload once in a fresh subprocess and return its JSON report."""
    with err.status(f"round {round_}: {name} profile + group-by…"):
        done = subprocess.run(
            [
                str(python),
                "-c",
                _NORM + f"HIST_COLUMNS = {HIST_COLUMNS!r}\n" + code,
                str(path),
                "1",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
    if done.returncode != 0:
        raise SystemExit(f"{name} failed:\n{done.stderr[-3000:]}")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    err.print(
        f"round {round_} {name:>9}: {report['seconds']:.2f} s ({report['cpu_seconds']:.2f} s CPU), "
        f"peak RSS {report['peak_rss_mb']:.0f} MB"
    )
    return report


def best(reports: list[dict]) -> dict:
    """The fastest run's report, with the highest peak RSS of all runs."""
    fastest = min(reports, key=lambda r: r["seconds"])
    return {**fastest, "peak_rss_mb": max(r["peak_rss_mb"] for r in reports)}


def _close(a: float | None, b: float | None, rel: float) -> bool:
    if a is None or b is None:
        return a is b
    return abs(a - b) <= rel * max(1.0, abs(b))


def agree(name: str, got: dict, ref: dict, rows: int) -> None:
    """Stop unless ``got`` computed the same results as ``ref``.

    Compared: the group-by (to 1e-6), null counts, every column's min and max, mean
    and standard deviation (to 1e-9), the five most frequent text values with their
    counts, and the 20-bin histograms (a value sitting on a bin edge may fall on
    either side of it in floating point: at most one row in a million may move).
    Quartiles (a reservoir sample in headrace) and distinct counts (HyperLogLog in
    headrace and Polars) are estimates, so not compared.
    """
    if got["nulls"] != ref["nulls"]:
        raise SystemExit(f"{name} null counts differ: {got['nulls']} vs {ref['nulls']}")
    if list(got["groups"]) != list(ref["groups"]):
        raise SystemExit(
            f"{name} group order differs: {list(got['groups'])} vs {list(ref['groups'])}"
        )
    for key, values in ref["groups"].items():
        for a, b in zip(got["groups"][key], values, strict=True):
            if not _close(a, b, 1e-6):
                raise SystemExit(f"{name} group {key!r} differs: {got['groups'][key]} vs {values}")
    for column, want in ref["stats"].items():
        have = got["stats"][column]
        for stat in ("min", "max", "mean", "std"):
            a, b = have[stat], want[stat]
            same = a == b if isinstance(b, str) or b is None else _close(a, b, 1e-9)
            if not same and not (stat in ("mean", "std") and None in (a, b)):
                raise SystemExit(f"{name} {stat} of {column!r} differs: {a!r} vs {b!r}")
    for column, want in ref["top"].items():
        # Polars counts null as a value; a top-values list shows values only.
        have = [v for v in got["top"][column] if v[0] is not None]
        n = min(len(have), len(want))
        if n == 0 or have[:n] != want[:n]:
            raise SystemExit(f"{name} top values of {column!r} differ: {have} vs {want}")
    for column, want in ref["hist"].items():
        have = got["hist"][column]
        moved = sum(abs(a - b) for a, b in zip(have, want, strict=True))
        if len(have) != len(want) or moved > max(2, rows // 1_000_000):
            raise SystemExit(f"{name} histogram of {column!r} differs: {have} vs {want}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="rounds; each tool's best run counts")
    parser.add_argument("--skip-pandas", action="store_true", help="pandas needs several GB of RAM")
    args = parser.parse_args()

    path, arrow_bytes = dataset(args.rows)
    data_mb = arrow_bytes / 2**20
    err.print(
        f"data: {path} ({args.rows:,} rows, {path.stat().st_size / 2**20:.0f} MB on disk, {data_mb:.0f} MB in memory)"
    )
    anchors = anchor_python()
    tools = {"headrace": (sys.executable, HEADRACE), "polars": (anchors, POLARS)}
    if not args.skip_pandas:
        tools["pandas"] = (anchors, PANDAS)
    # Rounds interleave the tools, so a burst of load on this shared machine hits
    # them alike instead of one tool's runs; each tool's best run counts.
    reports: dict[str, list[dict]] = {name: [] for name in tools}
    for round_ in range(1, args.repeat + 1):
        for name, (python, code) in tools.items():
            reports[name].append(run(name, python, code, path, round_))
    results = {name: best(runs) for name, runs in reports.items()}
    headrace = results["headrace"]
    for name in tools:
        agree(name, results[name], headrace, args.rows)
    summary = {"rows": args.rows, "data_uncompressed_mb": round(data_mb)}
    summary["headrace_s"] = round(headrace["seconds"], 3)
    for name in tools:
        if name != "headrace":
            summary[f"{name}_s"] = round(results[name]["seconds"], 3)
            summary[f"{name}_over_headrace"] = round(
                results[name]["seconds"] / headrace["seconds"], 2
            )
    for name in tools:
        summary[f"{name}_peak_rss_mb"] = round(results[name]["peak_rss_mb"])
    # CPU seconds (all threads) of each best run: what the work costs, whatever the
    # other load on the machine did to the wall-clock times.
    for name in tools:
        summary[f"{name}_cpu_s"] = round(results[name]["cpu_seconds"], 2)
    verdict = "below" if headrace["peak_rss_mb"] < data_mb else "ABOVE"
    err.print(
        f"headrace peak memory {headrace['peak_rss_mb']:.0f} MB is {verdict} the data's {data_mb:.0f} MB in memory"
    )
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
