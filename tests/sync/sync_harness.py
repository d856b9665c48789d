"""The exactly-once tests' world: a changing SQLite source, the CLI, and the warehouse check.

The expectation is computed from the source alone (never from what headrace reports):
every valid source row (qty >= 0) is in the warehouse exactly once with its current
values, and no invalid row is outside the quarantine.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from headrace.config import Settings
from headrace.connectors import open_destination
from headrace.state import open_store

PIPELINES = Path(__file__).with_name("pipelines") / "items_sync.py"
HEADRACE = str(Path(sys.executable).with_name("headrace"))
T0 = dt.datetime(2024, 1, 1)


@dataclass
class Source:
    """The ``items`` table: ids, qty (negative = invalid), day and a strictly rising updated_at."""

    path: Path
    clock: int = 0
    next_id: int = 1
    rng: random.Random = field(default_factory=lambda: random.Random(0))

    def __post_init__(self) -> None:
        with sqlite3.connect(self.path) as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, qty INTEGER, "
                "day TEXT, updated_at TEXT)"
            )

    def _stamp(self) -> str:
        self.clock += 1
        return (T0 + dt.timedelta(minutes=self.clock)).isoformat(sep=" ")

    def insert(self, n: int, invalid: float = 0.1, days: int = 3) -> None:
        """Add ``n`` rows, a share of them invalid, spread over the first ``days`` days."""
        rows = []
        for _ in range(n):
            qty = -1 if self.rng.random() < invalid else self.rng.randint(0, 1000)
            day = (T0 + dt.timedelta(days=self.rng.randrange(days), hours=5)).isoformat(sep=" ")
            rows.append((self.next_id, qty, day, self._stamp()))
            self.next_id += 1
        with sqlite3.connect(self.path) as conn:
            conn.executemany("INSERT INTO items VALUES (?, ?, ?, ?)", rows)

    def update(self, n: int) -> None:
        """Give ``n`` valid rows a new qty (still valid) and a new updated_at."""
        with sqlite3.connect(self.path) as conn:
            ids = [i for (i,) in conn.execute("SELECT id FROM items WHERE qty >= 0")]
            chosen = self.rng.sample(ids, min(n, len(ids)))
            conn.executemany(
                "UPDATE items SET qty = ?, updated_at = ? WHERE id = ?",
                [(self.rng.randint(0, 1000), self._stamp(), i) for i in chosen],
            )

    def change(self) -> None:
        """What happens in the source between two runs."""
        self.update(self.rng.randint(3, 15))
        self.insert(self.rng.randint(2, 10))

    def rows(self, where: str = "1 = 1") -> dict[int, tuple[int, str]]:
        with sqlite3.connect(self.path) as conn:
            return {
                i: (q, u) for i, q, u in conn.execute(
                    f"SELECT id, qty, updated_at FROM items WHERE {where}"
                )
            }  # fmt: skip


@dataclass
class World:
    """A headrace home with connections ``items`` (the source) and ``warehouse``."""

    home: Path
    warehouse: str
    source: Source

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HEADRACE_")}
        env.update(
            HEADRACE_HOME=str(self.home),
            HEADRACE_CONN_ITEMS=f"sqlite:///{self.source.path}",
            HEADRACE_CONN_WAREHOUSE=self.warehouse,
            COLUMNS="150",
            **extra,
        )
        return env

    def cli(self, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        """``headrace <args>`` as a user types it, waiting for it."""
        return subprocess.run(
            [HEADRACE, *args], env=self.env(**extra), cwd=self.home,
            capture_output=True, text=True, timeout=240,
        )  # fmt: skip

    def start(self, *args: str, **extra: str) -> subprocess.Popen[str]:
        """``headrace <args>`` in the background (its own process group, for kill -9)."""
        return subprocess.Popen(
            [HEADRACE, *args], env=self.env(**extra), cwd=self.home, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip

    def run(self, name: str = "items", **extra: str) -> subprocess.CompletedProcess[str]:
        return self.cli("run", f"{PIPELINES}:{name}", "--executor", "inprocess", **extra)

    def newest_run(self, pipeline: str = "items") -> str:
        settings = Settings.from_env(self.home, environ={"HEADRACE_HOME": str(self.home)})
        with open_store(settings.state_url) as store:
            return store.list_runs(pipeline, limit=1)[0].run_id

    def table(self, name: str) -> list[tuple]:
        dest = open_destination(self.warehouse)
        try:
            data = dest.query(f"SELECT id, qty, updated_at FROM {dest.q(name)}")
        except Exception:
            return []
        return list(
            zip(*(data.column(c).to_pylist() for c in ("id", "qty", "updated_at")), strict=True)
        )


def kill_group(proc: subprocess.Popen[str]) -> None:
    """kill -9 the process and everything it started."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


@dataclass
class Verdict:
    duplicates: int
    missing: list[int]
    stale: list[int]
    invalid: list[int]

    @property
    def ok(self) -> bool:
        return not (self.duplicates or self.missing or self.stale or self.invalid)


def compare(world: World, table: str = "items", where: str = "1 = 1") -> Verdict:
    """The warehouse table against the source: duplicates, missing, stale, invalid rows."""
    source = world.source.rows(where)
    valid = {i: v for i, v in source.items() if v[0] >= 0}
    stored = world.table(table)
    ids = [r[0] for r in stored]
    by_id = {r[0]: (r[1], r[2].isoformat(sep=" ") if r[2] else None) for r in stored}
    return Verdict(
        duplicates=len(ids) - len(set(ids)),
        missing=sorted(set(valid) - set(by_id)),
        stale=sorted(i for i in set(valid) & set(by_id) if by_id[i] != valid[i]),
        invalid=sorted(i for i in by_id if i not in valid),
    )


def wait_for(path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear")
        time.sleep(0.05)
