"""Benchmark: read a clean CSV file of 1,000,000 rows with headrace's FileSource.

The file (id, name, amount, created_at, note; every tenth note quoted with a comma
inside) is generated once under ``bench/.data``. Timed: ``FileSource(path).read()``
consumed to the end (types inferred, every line checked and accounted), best of
``--repeat`` runs, against the floors users would pick instead: ``pyarrow.csv.read_csv``
and DuckDB's ``read_csv`` to Arrow, on the same file.

Run:  .venv/bin/python bench/csv_read.py [--rows 1000000] [--repeat 5] [--multiline]
Last line: one JSON object with each reader's best wall and CPU seconds and the CPU
ratios (the path is generated, so the SQL literal is ours, not user input).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.csv as pcsv

from headrace.connectors import FileSource

DATA = Path(__file__).resolve().parent / ".data"


def generate(path: Path, rows: int, multiline: bool = False) -> None:
    """A clean CSV file of ``rows`` rows, written in blocks.

    Args:
        path: where to write it.
        rows: data lines.
        multiline: every 1,000th note is a quoted value over two lines.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf8", newline="") as fh:
        fh.write("id,name,amount,created_at,note\n")
        step = 100_000
        for start in range(0, rows, step):
            fh.write(
                "".join(
                    f"{i},name {i % 977},{i % 10007 / 100:.2f},"
                    f"2024-01-{1 + i % 28:02d} {i % 24:02d}:{i % 60:02d}:00,"
                    + (
                        f'"note {i}\nsecond line"'
                        if multiline and i % 1000 == 7
                        else (f'"note, {i}"' if i % 10 == 0 else f"note {i}")
                    )
                    + "\n"
                    for i in range(start, min(rows, start + step))
                )
            )


def best(fn: Callable[[], None], repeat: int) -> tuple[float, float]:
    """Best wall time and best CPU time of ``repeat`` calls of ``fn``.

    CPU time is the steadier figure on a shared machine (every reader here runs on one
    thread), so both are printed.
    """
    walls, cpus = [], []
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    return round(min(walls), 3), round(min(cpus), 3)


def main() -> None:
    """Generate the file if needed, time the three readers, print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--multiline", action="store_true", help="a quoted two-line note every 1,000 rows"
    )
    args = parser.parse_args()
    path = DATA / f"{'multiline' if args.multiline else 'clean'}_{args.rows}.csv"
    if not path.exists():
        generate(path, args.rows, args.multiline)

    def headrace() -> None:
        src = FileSource(path)
        rows = sum(b.num_rows for b in src.read())
        assert rows == args.rows and not src.malformed, (rows, src.malformed[:3])

    def arrow() -> None:
        opts = pcsv.ReadOptions(use_threads=False)
        assert pcsv.read_csv(path, read_options=opts).num_rows == args.rows

    def duck() -> None:
        con = duckdb.connect()
        con.execute("SET threads = 1")
        table: pa.Table = con.sql(f"SELECT * FROM read_csv('{path}')").to_arrow_table()
        assert table.num_rows == args.rows

    figures: dict[str, float] = {"rows": args.rows, "bytes": path.stat().st_size}
    for name, fn in (("headrace", headrace), ("pyarrow", arrow), ("duckdb", duck)):
        figures[f"{name}_s"], figures[f"{name}_cpu_s"] = best(fn, args.repeat)
    for other in ("pyarrow", "duckdb"):
        figures[f"headrace_over_{other}_cpu"] = round(
            figures["headrace_cpu_s"] / figures[f"{other}_cpu_s"], 2
        )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
