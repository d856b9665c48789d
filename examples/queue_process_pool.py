"""CPU-heavy queue jobs in a process pool, reporting progress back to the worker.

A ``fingerprint`` job hashes every row of a CSV file (SHA-256 of the row, then of
all row hashes), which is CPU-bound: a worker with ``processes=2`` runs the handler
in two processes, so two files are hashed at once and the worker's event loop
stays free. The handler gets a picklable ``JobInfo`` and reports progress with
``info.update_progress(...)``; the worker stores it in Redis and emits its
``progress`` event before the job completes, as for in-process handlers.

Run it:
    python examples/queue_process_pool.py --files 3 --rows 20000
Prints the progress events, then one JSON line with each file's result.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from headrace.config import Settings
from headrace.queue import JobInfo, Queue, QueueConnection, QueueEvents, Worker

QUEUE = "fingerprints"
PROGRESS_EVERY = 5_000  # rows between progress reports


def fingerprint(info: JobInfo) -> dict[str, Any]:
    """Hash each row of ``info.data['file']``; runs in a pool process.

    Returns:
        rows hashed, the file's digest (SHA-256 over the row digests) and the pid.
    """
    path = Path(info.data["file"])
    total = int(info.data["rows"])
    digest = hashlib.sha256()
    rows = 0
    with path.open(newline="") as fh:
        for row in csv.reader(fh):
            row_hash = hashlib.sha256("\x1f".join(row).encode()).digest()
            for _ in range(20):  # key stretching: makes the job CPU-bound on purpose
                row_hash = hashlib.sha256(row_hash).digest()
            digest.update(row_hash)
            rows += 1
            if rows % PROGRESS_EVERY == 0:
                info.update_progress({"rows": rows, "percent": round(100 * rows / total)})
    info.update_progress({"rows": rows, "percent": 100})
    return {"file": path.name, "rows": rows, "sha256": digest.hexdigest(), "pid": os.getpid()}


def write_files(workdir: Path, files: int, rows: int) -> list[Path]:
    """``files`` CSVs of ``rows`` rows each."""
    paths = []
    for n in range(files):
        path = workdir / f"part-{n}.csv"
        with path.open("w", newline="") as fh:
            out = csv.writer(fh)
            for i in range(rows):
                out.writerow([n, i, f"user{i}@example.com", i * 7 % 1000])
        paths.append(path)
    return paths


async def demo(connection: QueueConnection, workdir: Path, files: int, rows: int) -> list[Any]:
    """Worker (2 processes) and producer in one program; the results, in file order."""
    paths = write_files(workdir, files, rows)
    worker = Worker(QUEUE, fingerprint, connection=connection, concurrency=2, processes=2)
    worker.on("progress", lambda job, p: print(f"job {job.id} ({job.data['file']}) progress: {p}"))
    async with Queue(QUEUE, connection) as queue, QueueEvents(QUEUE, connection) as events:
        async with worker:
            jobs = [await queue.add("fingerprint", {"file": str(p), "rows": rows}) for p in paths]
            results = [await events.wait_for(job.id, timeout_s=300) for job in jobs]
        for job in jobs:  # the last progress is stored before the job completed
            assert (await queue.job(job.id)).progress["percent"] == 100
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=3)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--redis-url", default=None)
    parser.add_argument("--prefix", default=None)
    args = parser.parse_args(argv)
    env = QueueConnection.from_settings(Settings.load())
    connection = QueueConnection(url=args.redis_url or env.url, prefix=args.prefix or env.prefix)
    with tempfile.TemporaryDirectory(prefix="fingerprints_") as workdir:
        results = asyncio.run(demo(connection, Path(workdir), args.files, args.rows))
    print(json.dumps({"main_pid": os.getpid(), "results": results}))


if __name__ == "__main__":
    main()
