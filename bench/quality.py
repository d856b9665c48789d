"""Benchmark: five expectations on 2,000,000 customers — headrace vs GX, pandera, Polars.

The five expectations of the customer ETL (issue 4): customer_id not null and
unique, email matches ``^[^\\s@]+@[^\\s@]+\\.[^\\s@]+$``, email not null, created_at ≥
2020-01-01. The table is generated here (numpy + Polars, seeded) with realistic
defects: null and duplicated ids, null and malformed emails, nulls and dates before
2020. Each tool runs in its own subprocess on the same Parquet file; only the check
is timed (best of several), never the load. Great Expectations 1.x (pandas),
pandera (polars backend) and Polars run from an isolated venv under
``bench/.envs/quality``; headrace runs from the project's interpreter. All tools
must report the same failure counts, or the benchmark stops.

Run:  .venv/bin/python bench/quality.py [--rows 2000000]
Last line: one JSON object with headrace_s, gx_over_headrace, pandera_over_headrace,
polars_floor_over_headrace (each X's time divided by headrace's).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ENV = HERE / ".envs" / "quality"
DATA = HERE / ".data"
ANCHOR_PACKAGES = ["great_expectations>=1.0,<2", "pandera[polars]", "polars", "pyarrow"]
EMAIL_RE = r"^[^\s@]+@[^\s@]+\.[^\s@]+$"
COUNT_KEYS = [
    "customer_id_not_null",
    "customer_id_unique",
    "email_regex",
    "email_not_null",
    "created_at_min",
]
SEED = 20240604


# --------------------------------------------------------------------------- data


def generate(path: Path, rows: int) -> None:
    """Write the customers table with realistic defects (seeded) as Parquet."""
    import numpy as np
    import polars as pl

    rng = np.random.default_rng(SEED)
    first = np.array(
        [
            "anna",
            "ben",
            "chloé",
            "dmitri",
            "eva",
            "fatima",
            "günter",
            "hiro",
            "ines",
            "jamal",
            "kofi",
            "lena",
            "marco",
            "nora",
            "omar",
            "priya",
        ]
    )
    last = np.array(
        [
            "smith",
            "müller",
            "garcía",
            "kowalski",
            "nguyen",
            "okafor",
            "rossi",
            "dubois",
            "tanaka",
            "silva",
            "ivanova",
            "cohen",
            "murphy",
            "larsen",
        ]
    )
    domains = np.array(["example.com", "mail.org", "corp.co.uk", "posteo.de", "uni.edu"])
    ids = rng.permutation(np.arange(1, rows + 1, dtype=np.int64))
    frame = pl.DataFrame(
        {
            "customer_id": ids,
            "first_name": first[rng.integers(0, len(first), rows)],
            "last_name": last[rng.integers(0, len(last), rows)],
            "n": rng.integers(0, 10_000, rows),
            "domain": domains[rng.integers(0, len(domains), rows)],
            "phone": rng.integers(2_000_000_000, 9_999_999_999, rows).astype(str),
            "zip_code": rng.integers(0, 99_999, rows),
            "created_s": rng.integers(
                1_577_836_800, 1_767_225_600, rows
            ),  # 2020-01-01 .. 2026-01-01
            "u_id": rng.random(rows),
            "u_email": rng.random(rows),
            "u_ts": rng.random(rows),
            "dup_of": ids[rng.integers(0, rows, rows)],
        }
    )
    email = pl.concat_str(
        [
            pl.col("first_name"),
            pl.lit("."),
            pl.col("last_name"),
            pl.col("n").cast(pl.String),
            pl.lit("@"),
            pl.col("domain"),
        ]
    )
    u_e = pl.col("u_email")
    out = frame.select(
        # 0.1% null ids, 0.4% ids copied from another row (duplicates)
        pl.when(pl.col("u_id") < 0.001)
        .then(None)
        .when(pl.col("u_id") < 0.005)
        .then(pl.col("dup_of"))
        .otherwise(pl.col("customer_id"))
        .alias("customer_id"),
        pl.col("first_name").str.to_titlecase(),
        pl.col("last_name").str.to_titlecase(),
        # 1% null emails; 2.5% malformed in four ways
        pl.when(u_e < 0.010)
        .then(None)
        .when(u_e < 0.017)
        .then(email.str.replace("@", ".at."))
        .when(u_e < 0.024)
        .then(email.str.replace(".", " ", literal=True))
        .when(u_e < 0.030)
        .then(email.str.replace(r"\.[a-z]+$", ""))
        .when(u_e < 0.035)
        .then(pl.concat_str([email, pl.lit("@@")]))
        .otherwise(email)
        .alias("email"),
        pl.col("phone"),
        pl.col("zip_code").cast(pl.String).str.zfill(5).alias("zip_code"),
        # 0.5% null timestamps; 1% before 2020 (legacy imports, epoch zero)
        pl.when(pl.col("u_ts") < 0.005)
        .then(None)
        .when(pl.col("u_ts") < 0.010)
        .then(pl.lit(0, pl.Int64))
        .when(pl.col("u_ts") < 0.015)
        .then(pl.col("created_s") - 200_000_000)
        .otherwise(pl.col("created_s"))
        .mul(1_000_000)
        .cast(pl.Datetime("us"))
        .alias("created_at"),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    out.write_parquet(path, compression="zstd")


# --------------------------------------------------------------------------- runners
# Each runner loads the file (untimed), runs the five checks ``repeats`` times and
# returns (best seconds, failure counts). Anchor runners import nothing of headrace.


def run_headrace(path: Path, repeats: int) -> tuple[float, dict[str, int]]:
    import pyarrow.parquet as pq

    from headrace.quality import apply_checks, between, matches_regex, not_null, unique

    table = pq.read_table(path)
    checks = [
        not_null("customer_id"),
        unique("customer_id"),
        matches_regex("email", EMAIL_RE),
        not_null("email"),
        between("created_at", min="2020-01-01"),
    ]
    best, outcome = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        outcome = apply_checks(table, checks, pipeline="bench", task="customers")
        best = min(best, time.perf_counter() - start)
    assert outcome is not None
    counts = dict(zip(COUNT_KEYS, (r.failed for r in outcome.results), strict=True))
    # Informational: the same checks with the transform's rules as quarantine, which
    # also splits the 2M rows into passed and quarantined tables.
    quarantine = [
        checks[0],
        checks[1],
        matches_regex("email", EMAIL_RE, severity="quarantine"),
        checks[3],
        between("created_at", min="2020-01-01", severity="quarantine"),
    ]
    split_best = float("inf")
    for _ in range(max(1, repeats // 2)):
        start = time.perf_counter()
        split = apply_checks(table, quarantine, pipeline="bench", task="customers")
        split_best = min(split_best, time.perf_counter() - start)
    assert split.passed.num_rows + split.rows_quarantined == table.num_rows
    counts["_quarantine_split_s"] = split_best  # type: ignore[assignment]
    counts["_quarantined_rows"] = split.rows_quarantined
    return best, counts


def run_polars(path: Path, repeats: int) -> tuple[float, dict[str, int]]:
    import datetime as dt

    import polars as pl

    df = pl.read_parquet(path)
    cid, email = pl.col("customer_id"), pl.col("email")
    exprs = [
        cid.is_null().sum(),
        (cid.is_duplicated() & cid.is_not_null()).sum(),
        (email.is_not_null() & ~email.str.contains(EMAIL_RE)).sum(),
        email.is_null().sum(),
        (pl.col("created_at") < dt.datetime(2020, 1, 1)).sum(),
    ]
    best, row = float("inf"), ()
    for _ in range(repeats):
        start = time.perf_counter()
        row = df.select([e.alias(k) for e, k in zip(exprs, COUNT_KEYS, strict=True)]).row(0)
        best = min(best, time.perf_counter() - start)
    return best, {k: int(v) for k, v in zip(COUNT_KEYS, row, strict=True)}


def run_pandera(path: Path, repeats: int) -> tuple[float, dict[str, int]]:
    import datetime as dt

    import pandera.polars as pa
    import polars as pl

    df = pl.read_parquet(path)
    # pandera's unique=True counts repeated nulls as duplicates; SQL, dbt, GX and
    # headrace ignore nulls, so the same rule is written as a custom check.
    unique_ignoring_nulls = pa.Check(
        lambda data: data.lazyframe.select(
            ~(pl.col(data.key).is_duplicated() & pl.col(data.key).is_not_null())
        ),
        name="unique",
    )
    schema = pa.DataFrameSchema(
        {
            "customer_id": pa.Column(pl.Int64, nullable=False, checks=unique_ignoring_nulls),
            "email": pa.Column(pl.String, nullable=False, checks=pa.Check.str_matches(EMAIL_RE)),
            "created_at": pa.Column(
                pl.Datetime, nullable=True, checks=pa.Check.ge(dt.datetime(2020, 1, 1))
            ),
        }
    )
    names = {
        ("customer_id", "not_nullable"): "customer_id_not_null",
        ("customer_id", "unique"): "customer_id_unique",
        ("email", "not_nullable"): "email_not_null",
    }
    best, counts = float("inf"), {}
    for _ in range(repeats):
        start = time.perf_counter()
        try:
            schema.validate(df, lazy=True)
            cases = pl.DataFrame(
                {"column": [], "check": []}, schema={"column": pl.String, "check": pl.String}
            )
        except pa.errors.SchemaErrors as exc:
            cases = exc.failure_cases
        grouped = cases.group_by("column", "check").len().rows()
        best = min(best, time.perf_counter() - start)
        counts = {k: 0 for k in COUNT_KEYS}
        for column, check, n in grouped:
            key = names.get((column, check)) or (
                "email_regex" if column == "email" else "created_at_min"
            )
            counts[key] = int(n)
    return best, counts


def run_gx(path: Path, repeats: int) -> tuple[float, dict[str, int]]:
    import datetime as dt
    import logging
    import os

    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    logging.disable(logging.WARNING)
    import great_expectations as gx
    import great_expectations.expectations as gxe
    import pandas as pd

    df = pd.read_parquet(path)
    context = gx.get_context(mode="ephemeral")
    batch_definition = (
        context.data_sources.add_pandas("bench")
        .add_dataframe_asset("customers")
        .add_batch_definition_whole_dataframe("all")
    )
    suite = context.suites.add(gx.ExpectationSuite(name="customers"))
    for expectation in [
        gxe.ExpectColumnValuesToNotBeNull(column="customer_id"),
        gxe.ExpectColumnValuesToBeUnique(column="customer_id"),
        gxe.ExpectColumnValuesToMatchRegex(column="email", regex=EMAIL_RE),
        gxe.ExpectColumnValuesToNotBeNull(column="email"),
        gxe.ExpectColumnValuesToBeBetween(column="created_at", min_value=dt.datetime(2020, 1, 1)),
    ]:
        suite.add_expectation(expectation)
    best, counts = float("inf"), {}
    for _ in range(repeats):
        start = time.perf_counter()
        result = batch_definition.get_batch(batch_parameters={"dataframe": df}).validate(suite)
        best = min(best, time.perf_counter() - start)
        counts = {
            k: int(r.result["unexpected_count"])
            for k, r in zip(COUNT_KEYS, result.results, strict=True)
        }
    return best, counts


RUNNERS = {"headrace": run_headrace, "polars": run_polars, "pandera": run_pandera, "gx": run_gx}


# --------------------------------------------------------------------------- driver


def ensure_env() -> Path:
    """The isolated venv of the anchor tools, created on first use."""
    python = ENV / "bin" / "python"
    if python.exists():
        return python
    from rich.console import Console

    with Console(stderr=True).status(
        f"creating {ENV} and installing {', '.join(ANCHOR_PACKAGES)}…"
    ):
        subprocess.run([sys.executable, "-m", "venv", str(ENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *ANCHOR_PACKAGES], check=True)
    return python


def run_tool(python: Path, tool: str, path: Path, repeats: int) -> dict:
    done = subprocess.run(
        [str(python), __file__, "--runner", tool, "--data", str(path), "--repeats", str(repeats)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"{tool} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--runner", choices=sorted(RUNNERS))
    parser.add_argument("--data", type=Path)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--gx-repeats", type=int, default=2)
    args = parser.parse_args()
    if args.runner:  # inside a subprocess: run one tool, print one JSON line
        seconds, counts = RUNNERS[args.runner](args.data, args.repeats)
        print(json.dumps({"tool": args.runner, "seconds": seconds, "counts": counts}))
        return

    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    console = Console(width=max(Console().width, 130))  # the table has nine columns
    path = DATA / f"quality_customers_{args.rows}_{SEED}.parquet"
    anchor_python = ensure_env()
    plan = [
        ("headrace", Path(sys.executable), args.repeats),
        ("polars", anchor_python, args.repeats),
        ("pandera", anchor_python, args.repeats),
        ("gx", anchor_python, args.gx_repeats),
    ]
    results: dict[str, dict] = {}
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("generating data", total=len(plan) + 1)
        if not path.exists():
            generate(path, args.rows)
        progress.advance(task)
        for tool, python, repeats in plan:
            progress.update(task, description=f"running {tool} (best of {repeats})")
            results[tool] = run_tool(python, tool, path, repeats)
            progress.advance(task)

    extra = {
        k: results["headrace"]["counts"].pop(k)
        for k in ("_quarantine_split_s", "_quarantined_rows")
    }
    reference = results["headrace"]["counts"]
    table = Table(title=f"five expectations on {args.rows:,} customers (best run, seconds)")
    table.add_column("tool")
    table.add_column("seconds", justify="right")
    table.add_column("÷ headrace", justify="right")
    for key in COUNT_KEYS:
        table.add_column(key, justify="right")
    headrace_s = results["headrace"]["seconds"]
    for tool, res in results.items():
        table.add_row(
            tool,
            f"{res['seconds']:.3f}",
            f"{res['seconds'] / headrace_s:.2f}",
            *(str(res["counts"][k]) for k in COUNT_KEYS),
        )
    console.print(table)
    console.print(
        f"headrace with email and created_at as quarantine rules: {extra['_quarantine_split_s']:.3f} s "
        f"including the split into passed / {extra['_quarantined_rows']:,} quarantined rows"
    )
    for tool, res in results.items():
        if res["counts"] != reference:
            raise SystemExit(f"{tool} counts {res['counts']} differ from headrace {reference}")
    if not all(reference.values()):
        raise SystemExit(f"the generated defects should fail every expectation: {reference}")
    print(
        json.dumps(
            {
                "headrace_s": round(headrace_s, 4),
                "gx_over_headrace": round(results["gx"]["seconds"] / headrace_s, 2),
                "pandera_over_headrace": round(results["pandera"]["seconds"] / headrace_s, 2),
                "polars_floor_over_headrace": round(results["polars"]["seconds"] / headrace_s, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
