"""Benchmark: 2,000,000 customers into Delta Lake and Iceberg on local disk, full load and 1% merge.

headrace (``open_destination("delta:///...")`` / ``"iceberg+sqlite:///..."``: a fenced
write whose checkpoint rides in the table's commit, the merge de-duplicated and kept
from replacing newer stored rows) against the same done with the libraries by hand:
deltalake ``write_deltalake`` + ``DeltaTable.merge``, pyiceberg ``create_table`` +
``append`` + ``upsert``. Each measurement: the median of ``--rounds`` rounds, headrace
and the hand-written calls alternating (the machine is shared: a busy neighbour slows
both sides alike), each into a fresh table; the merge is 1% of the keys with a newer ``updated_at``, applied to a
freshly loaded table (the load not timed). Spark with delta-spark in local mode is the
third anchor when ``delta`` (delta-spark) and its jars are installed; otherwise its
ratios are printed as null with the reason.

Ratios: ``handwritten_over_headrace_*`` = hand-written time / headrace time (1.0 =
the same; below 0.91 headrace is more than 10% slower), ``spark_over_headrace_*``
likewise.

Run:  PYTHONPATH=src .venv/bin/python bench/lakehouse.py [--rows 2000000] [--rounds 7]
Last line: one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa

from headrace.connectors import open_destination
from headrace.connectors.incremental import Checkpoint

T0 = dt.datetime(2024, 1, 1)


def customers(rows: int, seed: int = 0) -> pa.Table:
    """A customers table like the reference pipeline's (synthetic, ``rows`` rows)."""
    rng = np.random.default_rng(seed)
    ids = np.arange(1, rows + 1, dtype=np.int64)
    first = np.array(["Ann", "Bob", "Cid", "Dee", "Eve", "Fay", "Gus", "Hal"])
    states = np.array(["CA", "NY", "TX", "WA", "FL", "IL", "OR", "MA"])
    minutes = rng.integers(0, 500_000, rows)
    return pa.table({
        "customer_id": ids,
        "first_name": first[rng.integers(0, len(first), rows)],
        "last_name": pa.array([f"Name{i % 9973}" for i in range(rows)]),
        "email": pa.array([f"user{i}@example.com" for i in range(rows)]),
        "phone": pa.array([f"555{i % 10_000_000:07d}" for i in range(rows)]),
        "zip": pa.array([f"{i % 100_000:05d}" for i in range(rows)]),
        "state": states[rng.integers(0, len(states), rows)],
        "updated_at": pa.array(np.datetime64(T0, "us") + minutes.astype("timedelta64[m]"), pa.timestamp("us")),
    })  # fmt: skip


def changes(full: pa.Table, share: float = 0.01) -> pa.Table:
    """``share`` of the rows with a new state and a later ``updated_at``."""
    n = int(full.num_rows * share)
    picked = full.take(np.linspace(0, full.num_rows - 1, n).astype(np.int64))
    later = pa.array([T0 + dt.timedelta(days=400)] * n, pa.timestamp("us"))
    picked = picked.set_column(picked.schema.get_field_index("updated_at"), "updated_at", later)
    return picked.set_column(picked.schema.get_field_index("state"), "state", pa.array(["ZZ"] * n))


def timed(run: Callable[[Path], float]) -> float:
    """One run of ``run`` in a fresh folder, removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="hr-lake-bench-"))
    try:
        return run(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def head_to_head(
    rounds: int, ours: Callable[[Path], float], theirs: Callable[[Path], float]
) -> tuple[float, float]:
    """Median times of ``ours`` and ``theirs`` over ``rounds`` alternating runs (the order
    swaps each round, so a noisy neighbour on the machine hits both sides alike)."""
    mine: list[float] = []
    other: list[float] = []
    for i in range(rounds):
        if i % 2:
            other.append(timed(theirs))
            mine.append(timed(ours))
        else:
            mine.append(timed(ours))
            other.append(timed(theirs))
    return statistics.median(mine), statistics.median(other)


def url_of(kind: str, folder: Path) -> str:
    if kind == "delta":
        return f"delta:///{folder / 'lake'}"
    return f"iceberg+sqlite:///{folder / 'cat.db'}?warehouse={folder / 'wh'}"


def headrace_full(kind: str, data: pa.Table) -> Callable[[Path], float]:
    def run(folder: Path) -> float:
        dest = open_destination(url_of(kind, folder))
        start = time.perf_counter()
        dest.write(data, "customers", mode="replace", fence=Checkpoint("bench", "crm", None),
                   checkpoint=Checkpoint("bench", "crm", T0 + dt.timedelta(days=399)))  # fmt: skip
        return time.perf_counter() - start

    return run


def headrace_merge(kind: str, data: pa.Table, delta: pa.Table) -> Callable[[Path], float]:
    def run(folder: Path) -> float:
        dest = open_destination(url_of(kind, folder))
        first = Checkpoint("bench", "crm", T0 + dt.timedelta(days=399))
        dest.write(data, "customers", mode="replace", checkpoint=first)
        start = time.perf_counter()
        dest.write(delta, "customers", mode="merge", keys=["customer_id"], fence=first,
                   checkpoint=Checkpoint("bench", "crm", T0 + dt.timedelta(days=400)),
                   cursor_column="updated_at", dedupe_order_by="updated_at")  # fmt: skip
        return time.perf_counter() - start

    return run


def hand_full(kind: str, data: pa.Table) -> Callable[[Path], float]:
    def run(folder: Path) -> float:
        start = time.perf_counter()
        if kind == "delta":
            from deltalake import write_deltalake

            write_deltalake(str(folder / "lake" / "customers"), data, mode="overwrite")
        else:
            catalog = _catalog(folder)
            catalog.create_table("bench.customers", data.schema).append(data)
        return time.perf_counter() - start

    return run


def hand_merge(kind: str, data: pa.Table, delta: pa.Table) -> Callable[[Path], float]:
    def run(folder: Path) -> float:
        if kind == "delta":
            from deltalake import DeltaTable, write_deltalake

            path = str(folder / "lake" / "customers")
            write_deltalake(path, data, mode="overwrite")
            start = time.perf_counter()
            (
                DeltaTable(path)
                .merge(delta, "t.customer_id = s.customer_id", source_alias="s", target_alias="t")
                .when_matched_update_all()
                .when_not_matched_insert_all()
                .execute()
            )
            return time.perf_counter() - start
        catalog = _catalog(folder)
        table = catalog.create_table("bench.customers", data.schema)
        table.append(data)
        start = time.perf_counter()
        table.upsert(delta, join_cols=["customer_id"])
        return time.perf_counter() - start

    return run


def _catalog(folder: Path) -> object:
    from pyiceberg.catalog.sql import SqlCatalog

    catalog = SqlCatalog("bench", uri=f"sqlite:///{folder / 'cat.db'}",
                         warehouse=f"file://{folder / 'wh'}")  # fmt: skip
    catalog.create_namespace("bench")
    return catalog


def spark_anchor() -> str | None:
    """None when Spark with delta-spark can run here, else why not."""
    why = (
        "delta-spark's wheel holds only Python: Spark fetches the io.delta jars from Maven at "
        "start, and no PyPI package ships them (pyspark and snowpark-connect-deps ship Spark "
        "jars without Delta); this machine reaches PyPI but not Maven"
    )
    try:
        import delta  # noqa: F401  (delta-spark)
        import pyspark  # noqa: F401
    except ImportError as exc:
        return f"{exc.name} not installed; {why}"
    return why


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    data = customers(args.rows)
    delta = changes(data)
    figures: dict[str, object] = {"rows": args.rows, "merged_rows": delta.num_rows}
    for kind in ("delta", "iceberg"):
        for step, ours, theirs in (
            ("full", headrace_full(kind, data), hand_full(kind, data)),
            ("merge", headrace_merge(kind, data, delta), hand_merge(kind, data, delta)),
        ):
            h, w = head_to_head(args.rounds, ours, theirs)
            figures[f"headrace_{kind}_{step}_s"] = round(h, 3)
            figures[f"handwritten_{kind}_{step}_s"] = round(w, 3)
            figures[f"handwritten_over_headrace_{kind}_{step}"] = round(w / h, 3)
            figures[f"spark_over_headrace_{kind}_{step}"] = None
            print(f"{kind} {step}: headrace {h:.2f} s, by hand {w:.2f} s, ratio {w / h:.2f}",
                  flush=True)  # fmt: skip
    figures["spark_skipped"] = spark_anchor()
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
