"""The brief's data-processing queue, in Python on headrace's BullMQ-compatible queue.

Job types on the ``data-processing`` queue:

* ``process-csv``   stream a CSV, clean each row (lower-case email, ISO ``created_at``,
  full name, digits-only phone), collect per-row errors with their row numbers,
  write the output CSV, report progress; returns counts and the first 10 errors.
* ``aggregate-data`` rows per email domain (Polars, streaming), written as CSV.
* ``validate-data``  required columns and invalid emails, without writing anything.
* ``daily-etl``      a repeatable job, every day at 02:00 (cron ``0 2 * * *``).

Run it:
    python examples/csv_queue.py demo --rows 1000     # worker + producer, prints results
    python examples/csv_queue.py worker               # just the worker (Ctrl-C stops it)
    python examples/csv_queue.py enqueue in.csv out.csv

Node BullMQ producers can feed this worker: same queue name, same Redis, prefix ``bull``.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import re
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from headrace.config import Settings
from headrace.errors import TerminalError, did_you_mean
from headrace.queue import (
    Backoff,
    Job,
    JobOptions,
    Keep,
    Queue,
    QueueConnection,
    QueueEvents,
    RateLimit,
    Worker,
)

QUEUE = "data-processing"
REQUIRED_COLUMNS = ("first_name", "last_name", "email", "phone", "created_at")
PROGRESS_EVERY = 500  # rows between progress updates: one Redis call per row is too many

DEFAULTS = JobOptions(
    attempts=3,
    backoff=Backoff.exponential(2000),
    remove_on_complete=Keep(age_s=86_400, count=1000),  # keep for 24 hours, at most 1000
    remove_on_fail=Keep(age_s=604_800),  # keep failures for 7 days
)


class UnknownJobType(TerminalError):
    """A job whose ``type`` no handler knows; retrying cannot help."""


def _iso(value: str) -> str:
    """``created_at`` as ISO 8601 UTC with milliseconds, like JavaScript's toISOString()."""
    parsed = datetime.fromisoformat(value.strip())
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def transform_row(row: dict[str, str]) -> dict[str, str]:
    """Clean one row; ``ValueError`` says what is wrong with it."""
    email = (row.get("email") or "").strip().lower()
    if "@" not in email:
        raise ValueError("Invalid email")
    try:
        created_at = _iso(row.get("created_at") or "")
    except ValueError:
        raise ValueError(f"Invalid created_at {row.get('created_at')!r}") from None
    return {
        **row,
        "email": email,
        "created_at": created_at,
        "full_name": f"{row.get('first_name', '')} {row.get('last_name', '')}".strip(),
        "phone": re.sub(r"\D", "", row.get("phone") or ""),
    }


async def process_csv(job: Job) -> dict[str, Any]:
    """Stream ``inputFile`` through :func:`transform_row` into ``outputFile``."""
    input_file = Path(job.data["inputFile"])
    output_file = Path(job.data["outputFile"])
    processed = 0
    errors: list[dict[str, Any]] = []
    error_count = 0
    with input_file.open(newline="") as src, output_file.open("w", newline="") as dst:
        reader = csv.DictReader(src)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise TerminalError(f"{input_file}: missing column(s) {', '.join(missing)}")
        writer = csv.DictWriter(dst, fieldnames=[*(reader.fieldnames or []), "full_name"])
        writer.writeheader()
        for row_number, row in enumerate(reader, start=1):
            try:
                writer.writerow(transform_row(row))
                processed += 1
            except ValueError as exc:
                error_count += 1
                if len(errors) < 10:
                    # line = row + 1: the header is line 1
                    errors.append(
                        {"row": row_number, "line": row_number + 1, "error": str(exc), "data": row}
                    )
            if row_number % PROGRESS_EVERY == 0:
                await job.update_progress({"rows": row_number})
    await job.update_progress({"rows": processed + error_count, "done": True})
    return {
        "processedCount": processed,
        "errorCount": error_count,
        "errors": errors,
        "outputFile": str(output_file),
    }


async def aggregate_data(job: Job) -> dict[str, Any]:
    """Rows per email domain of ``inputFile``, written to ``outputFile``."""
    domains = (
        pl.scan_csv(job.data["inputFile"], infer_schema=False)
        .with_columns(
            pl.col("email")
            .str.strip_chars()
            .str.to_lowercase()
            .str.split("@")
            .list.get(1, null_on_oob=True)
            .alias("domain")
        )
        .group_by("domain")
        .agg(pl.len().alias("rows"))
        .sort("rows", descending=True)
        .collect()
    )
    domains.write_csv(job.data["outputFile"])
    return {"groups": domains.height, "outputFile": job.data["outputFile"]}


async def validate_data(job: Job) -> dict[str, Any]:
    """Check columns and emails of ``inputFile`` without changing anything."""
    frame = pl.scan_csv(job.data["inputFile"], infer_schema=False)
    columns = frame.collect_schema().names()
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if "email" in columns:
        stats = frame.select(
            pl.len().alias("rows"),
            (~pl.col("email").fill_null("").str.contains("@", literal=True)).sum().alias("invalid"),
        ).collect()
        rows, invalid = int(stats["rows"][0]), int(stats["invalid"][0])
    else:
        rows, invalid = frame.select(pl.len()).collect().item(), None
    return {
        "valid": not missing and not invalid,
        "rows": rows,
        "invalidEmails": invalid,
        "missingColumns": missing,
    }


async def daily_etl(job: Job) -> dict[str, Any]:
    """The 02:00 run: here it only records when it ran."""
    return {"ranAt": datetime.now(UTC).isoformat(), "scheduledFor": job.data.get("date")}


HANDLERS = {
    "process-csv": process_csv,
    "aggregate-data": aggregate_data,
    "validate-data": validate_data,
    "daily-etl": daily_etl,
}


async def handle(job: Job) -> Any:
    """Dispatch on the job's ``type`` (as the brief's worker does)."""
    kind = job.data.get("type", job.name)
    handler = HANDLERS.get(kind)
    if handler is None:
        raise UnknownJobType(
            f"Job {job.id}: unknown job type {kind!r}." + did_you_mean(kind, HANDLERS)
        )
    return await handler(job)


def make_worker(connection: QueueConnection) -> Worker:
    """The brief's worker: concurrency 5, at most 10 jobs per second."""
    worker = Worker(
        QUEUE, handle, connection=connection, concurrency=5, limiter=RateLimit(10, 1000)
    )
    worker.on("completed", lambda job, result: print(f"Job {job.id} completed"))
    worker.on("failed", lambda job, err: print(f"Job {job.id} failed: {err}"))
    worker.on(
        "progress", lambda job, progress: print(f"Job {job.id} progress: {json.dumps(progress)}")
    )
    return worker


async def enqueue_csv_processing(queue: Queue, input_file: Path, output_file: Path) -> Job:
    data = {"type": "process-csv", "inputFile": str(input_file), "outputFile": str(output_file)}
    return await queue.add("process-csv", data, JobOptions(job_id=f"csv-{time.time_ns()}"))


async def schedule_daily_etl(queue: Queue) -> None:
    await queue.add_repeatable("daily-etl", "daily-etl", {"type": "daily-etl"}, pattern="0 2 * * *")


def write_sample_csv(path: Path, rows: int) -> None:
    """A CSV with an invalid email every 7th row and a bad date every 13th."""
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["id", "first_name", "last_name", "email", "phone", "created_at"])
        for i in range(1, rows + 1):
            email = f"invalid-{i}.example.com" if i % 7 == 0 else f"  User.{i}@Example.COM "
            created = (
                "not a date" if i % 13 == 0 else f"2024-03-{i % 28 + 1:02d}T10:{i % 60:02d}:00"
            )
            out.writerow(
                [i, f"First{i}", f"Last{i}", email, f"(555) {i:03d}-{i % 10000:04d}", created]
            )


async def demo(connection: QueueConnection, workdir: Path, rows: int) -> dict[str, Any]:
    """Worker and producer in one process: enqueue the three job types and wait for them."""
    source = workdir / "customers.csv"
    write_sample_csv(source, rows)
    async with (
        Queue(QUEUE, connection, default_options=DEFAULTS) as queue,
        QueueEvents(QUEUE, connection) as events,
    ):
        await schedule_daily_etl(queue)
        async with make_worker(connection):
            csv_job = await enqueue_csv_processing(queue, source, workdir / "customers_clean.csv")
            check = await queue.add(
                "validate-data", {"type": "validate-data", "inputFile": str(source)}
            )
            agg = await queue.add(
                "aggregate-data",
                {
                    "type": "aggregate-data",
                    "inputFile": str(source),
                    "outputFile": str(workdir / "domains.csv"),
                },
            )
            results = {
                "process-csv": await events.wait_for(csv_job.id, timeout_s=120),
                "validate-data": await events.wait_for(check.id, timeout_s=60),
                "aggregate-data": await events.wait_for(agg.id, timeout_s=60),
            }
        (daily,) = await queue.repeatables()
        results["daily-etl"] = {
            "pattern": daily.pattern,
            "nextRun": datetime.fromtimestamp(daily.next_ms / 1000, UTC).isoformat()
            if daily.next_ms
            else None,
        }
        await queue.remove_repeatable("daily-etl")
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["demo", "worker", "enqueue"])
    parser.add_argument("files", nargs="*", help="enqueue: INPUT.csv OUTPUT.csv")
    parser.add_argument("--rows", type=int, default=1000, help="demo: rows of the generated CSV")
    parser.add_argument(
        "--workdir", type=Path, help="demo: where the CSVs go (default: a temp dir)"
    )
    parser.add_argument("--redis-url", default=None)
    parser.add_argument("--prefix", default=None)
    args = parser.parse_args(argv)
    env = QueueConnection.from_settings(Settings.load())
    connection = QueueConnection(url=args.redis_url or env.url, prefix=args.prefix or env.prefix)
    if args.mode == "worker":
        make_worker(connection).run_sync()
    elif args.mode == "enqueue":
        if len(args.files) != 2:
            parser.error("enqueue needs INPUT.csv OUTPUT.csv")

        async def add() -> str:
            async with Queue(QUEUE, connection, default_options=DEFAULTS) as queue:
                return (
                    await enqueue_csv_processing(queue, Path(args.files[0]), Path(args.files[1]))
                ).id

        print(asyncio.run(add()))
    else:
        workdir = args.workdir or Path(tempfile.mkdtemp(prefix="csv_queue_"))
        workdir.mkdir(parents=True, exist_ok=True)
        print(json.dumps(asyncio.run(demo(connection, workdir, args.rows))))


if __name__ == "__main__":
    main()
