"""Per-call cost of the run-state store's hot path, against what users would write instead.

The engine persists about three state changes per task, and targets 0.25 ms per task
in process, so each change must cost well under 0.08 ms on the default SQLite store.
Compared, on the same SQLite file settings where it matters:

* ``headrace``: ``update_task_instance`` / ``update_task_instances`` / ``create_run``.
* ``sqlite3 floor``: the stdlib driver with the same statements, WAL and
  ``synchronous=NORMAL``; what no Python layer can beat.
* ``SQLAlchemy ORM (Airflow style)``: a mapped TaskInstance loaded with
  ``session.get``, changed and committed per state change, SQLite defaults
  (rollback journal, ``synchronous=FULL``), as Airflow's state store does it.
* ``SQLAlchemy ORM, WAL``: the same with headrace's WAL + ``synchronous=NORMAL``,
  so the ratio shows the library cost alone.
* ``SQLAlchemy Core, engine.begin() per call``: hand-written Core, SQLite defaults.

Run:  .venv/bin/python bench/state_store.py [--n 3000] [--postgres URL]
The last line is one JSON object with every figure (ms per call) and the ratios.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.console import Console
from sqlalchemy import Integer, String, create_engine, event, text
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from headrace.state import TaskState, open_store

DAY = datetime(2024, 1, 1, tzinfo=UTC)
console = Console()


def best_ms(fn: Callable[[int], None], n: int, repeats: int = 3) -> float:
    """Best-of-``repeats`` milliseconds per call of ``fn`` run ``n`` times."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn(n)
        best = min(best, (time.perf_counter() - start) / n * 1000)
    return best


def bench_headrace(url: str, n: int, schema: str | None = None) -> dict[str, float]:
    store = open_store(url, schema=schema)
    run, _ = store.create_run("bench", DAY, DAY, DAY + timedelta(days=1))
    store.ensure_task_instances(run.run_id, [("t", -1)] + [("m", i) for i in range(100)])

    def single(k: int) -> None:
        for i in range(k):
            store.update_task_instance(run.run_id, "t", state=TaskState.RUNNING, attempt=i)

    def batch(k: int) -> None:
        now = datetime.now(UTC)
        for start in range(0, k, 100):
            store.update_task_instances(
                [
                    (run.run_id, "m", i, {"state": TaskState.SUCCESS, "ended_at": now})
                    for i in range(min(100, k - start))
                ]
            )

    day_counter = iter(range(10**9))

    def create(k: int) -> None:
        for _ in range(k):
            day = DAY + timedelta(days=next(day_counter) + 1)
            store.create_run("bench", day, day, day)

    out = {
        "update_task_instance_ms": best_ms(single, n),
        "update_task_instances_ms_per_row": best_ms(batch, n),
        "create_run_ms": best_ms(create, max(n // 5, 100)),
    }
    if schema is not None:  # leave the benchmark database as it was
        quoted = store.engine.dialect.identifier_preparer.quote_identifier(schema)
        with store.engine.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {quoted} CASCADE")
    store.close()
    return out


def bench_sqlite3_floor(path: Path, n: int) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(
        "CREATE TABLE ti (run_id TEXT, task_id TEXT, map_index INT, state TEXT, attempt INT,"
        " PRIMARY KEY (run_id, task_id, map_index))"
    )
    conn.execute("INSERT INTO ti VALUES ('r', 't', -1, 'queued', 0)")
    sql = "UPDATE ti SET state = ?, attempt = ? WHERE run_id = ? AND task_id = ? AND map_index = ?"

    def single(k: int) -> None:
        for i in range(k):
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(sql, ("running", i, "r", "t", -1))
            conn.execute("COMMIT")

    ms = best_ms(single, n)
    conn.close()
    return ms


class _Base(DeclarativeBase):
    pass


class _TaskInstance(_Base):
    __tablename__ = "ti"
    run_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    task_id: Mapped[str] = mapped_column(String(250), primary_key=True)
    map_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    state: Mapped[str] = mapped_column(String(32))
    attempt: Mapped[int] = mapped_column(Integer)


def bench_orm(path: Path, n: int, tuned: bool = False) -> float:
    engine = create_engine(f"sqlite:///{path}")
    if tuned:  # the same WAL + synchronous=NORMAL as headrace, to isolate the library cost

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            dbapi_conn.execute("PRAGMA journal_mode=WAL")
            dbapi_conn.execute("PRAGMA synchronous=NORMAL")

    _Base.metadata.create_all(engine)
    with Session(engine) as session:
        session.add(_TaskInstance(run_id="r", task_id="t", map_index=-1, state="queued", attempt=0))
        session.commit()

    def single(k: int) -> None:
        for i in range(k):
            with Session(engine) as session:
                ti = session.get(_TaskInstance, ("r", "t", -1))
                assert ti is not None
                ti.state, ti.attempt = "running", i
                session.commit()

    ms = best_ms(single, n)
    engine.dispose()
    return ms


def bench_core_naive(path: Path, n: int) -> float:
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(
            text(
                "CREATE TABLE ti (run_id TEXT, task_id TEXT, map_index INT, state TEXT,"
                " attempt INT, PRIMARY KEY (run_id, task_id, map_index))"
            )
        )
        conn.execute(text("INSERT INTO ti VALUES ('r', 't', -1, 'queued', 0)"))
    stmt = text(
        "UPDATE ti SET state = :s, attempt = :a WHERE run_id = :r AND task_id = :t AND map_index = :m"
    )

    def single(k: int) -> None:
        for i in range(k):
            with engine.begin() as conn:
                conn.execute(stmt, {"s": "running", "a": i, "r": "r", "t": "t", "m": -1})

    ms = best_ms(single, n)
    engine.dispose()
    return ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000, help="calls per measurement")
    parser.add_argument("--postgres", help="also measure headrace on this PostgreSQL URL")
    args = parser.parse_args()
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        with console.status("headrace store on SQLite ..."):
            for key, value in bench_headrace(f"sqlite:///{folder / 'hr.db'}", args.n).items():
                figures[f"headrace_sqlite_{key}"] = value
        with console.status("sqlite3 floor ..."):
            figures["sqlite3_floor_update_ms"] = bench_sqlite3_floor(folder / "floor.db", args.n)
        with console.status("SQLAlchemy ORM (Airflow style) ..."):
            figures["orm_update_ms"] = bench_orm(folder / "orm.db", args.n)
            figures["orm_wal_update_ms"] = bench_orm(folder / "orm_wal.db", args.n, tuned=True)
        with console.status("SQLAlchemy Core, engine.begin() per call ..."):
            figures["core_naive_update_ms"] = bench_core_naive(folder / "core.db", args.n)
    if args.postgres:
        with console.status("headrace store on PostgreSQL ..."):
            schema = f"bench_{int(time.time())}"
            for key, value in bench_headrace(args.postgres, max(args.n // 3, 300), schema).items():
                figures[f"headrace_postgres_{key}"] = value
    single = figures["headrace_sqlite_update_task_instance_ms"]
    figures["orm_over_headrace"] = figures["orm_update_ms"] / single
    figures["orm_wal_over_headrace"] = figures["orm_wal_update_ms"] / single
    figures["core_naive_over_headrace"] = figures["core_naive_update_ms"] / single
    figures["headrace_over_sqlite3_floor"] = single / figures["sqlite3_floor_update_ms"]
    figures["headrace_sqlite_ms_per_task_3_updates"] = 3 * single
    for key, value in figures.items():
        console.print(f"{key:48s} {value:10.4f}")
    print(json.dumps({k: round(v, 4) for k, v in figures.items()}))


if __name__ == "__main__":
    main()
