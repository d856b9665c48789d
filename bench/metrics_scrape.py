"""First and warm ``/metrics`` collection over a state store of many runs.

The first scrape of a fresh collector used to read every task instance and check
result into Python (per-run figures); now the database sums finished runs. Fills a
synthetic store like ``bench/web.py`` (10,000 runs × 20 tasks, 2 checks each) once,
then times three cold collections (fresh collector each) and the warm one after each.

Run:  PYTHONPATH=src .venv/bin/python bench/metrics_scrape.py [--runs 10000] [--db path.db]
      (--db reuses a filled SQLite file; --postgres URL fills a throw-away schema instead)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from headrace.observe.metrics import StoreCollector
from headrace.state import open_store

sys.path.insert(0, str(Path(__file__).parent))
from web import fill  # noqa: E402  (the synthetic store of the web benchmark)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--db", type=Path, help="a SQLite file (filled when missing)")
    parser.add_argument(
        "--postgres", help="PostgreSQL URL: a schema of its own is filled, then dropped"
    )
    args = parser.parse_args()
    schema = None
    if args.postgres:
        url, schema = args.postgres, f"bench_metrics_{uuid.uuid4().hex[:8]}"
    else:
        path = args.db or Path(tempfile.mkdtemp()) / "state.db"
        url = f"sqlite:///{path}"
    fresh = schema is not None or not Path(url.removeprefix("sqlite:///")).exists()
    with open_store(url, schema=schema) as store:
        try:
            if fresh:
                print(f"filled {args.runs} runs in {fill(store, args.runs):.1f} s")
            cold, warm = [], []
            for _ in range(3):
                registry = CollectorRegistry()
                registry.register(StoreCollector(store))
                began = time.perf_counter()
                generate_latest(registry)
                cold.append(time.perf_counter() - began)
                began = time.perf_counter()
                generate_latest(registry)
                warm.append(time.perf_counter() - began)
            print(f"{store.backend}: first scrape median {statistics.median(cold):.2f} s "
                  f"({', '.join(f'{c:.2f}' for c in cold)}), warm {statistics.median(warm) * 1000:.0f} ms")  # fmt: skip
        finally:
            if schema is not None:
                from sqlalchemy import text

                with store.engine.begin() as conn:
                    conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


if __name__ == "__main__":
    main()
