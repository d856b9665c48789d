"""Kill the loading process for real (SIGKILL) at each point of a load, rerun, and check
the destination: no duplicate, no missing row, quarantine and checkpoint consistent."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
from crash_loader import FAKESNOW_DB, load

from headrace.connectors import open_destination
from headrace.connectors.crashpoints import ENV, POINTS
from headrace.connectors.destinations import SqlDestination

LOADER = Path(__file__).with_name("crash_loader.py")
T0 = dt.datetime(2024, 1, 1)


def seed(path: Path, ids: range, minute: int) -> None:
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE IF NOT EXISTS items (id integer primary key, qty integer, updated_at text)"
    )
    conn.executemany(
        "INSERT OR REPLACE INTO items VALUES (?, ?, ?)",
        [
            (
                i,
                -1 if i % 10 == 0 else i,
                (T0 + dt.timedelta(minutes=minute, seconds=i)).isoformat(sep=" "),
            )
            for i in ids
        ],
    )
    conn.commit()
    conn.close()


def run_loader(
    src: Path, url: str, schema: str | None, crash: str, **extra: str
) -> subprocess.CompletedProcess:
    """The load in a child process that kills itself at ``crash``."""
    env = {**os.environ, ENV: crash, **extra}
    args = [sys.executable, str(LOADER), str(src), url] + ([schema] if schema else [])
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)


def state(url: str, schema: str | None) -> tuple[list[int], set[int], object]:
    dest = open_destination(url)
    if schema:
        assert isinstance(dest, SqlDestination)
        dest.schema = schema
    try:
        ids = dest.query(f"SELECT id FROM {dest.q('items')} ORDER BY id").column("id").to_pylist()
        quarantined = set(
            dest.query(f"SELECT id FROM {dest.q('items_quarantine')}").column("id").to_pylist()
        )
    except Exception:
        ids, quarantined = [], set()
    ckpt = dest.checkpoint("crash", "items")
    return ids, quarantined, ckpt.value if ckpt else None


def crash_and_recover(
    tmp_path: Path, url: str, schema: str | None, point: str,
    inside: Callable[[], AbstractContextManager[object]] = contextlib.nullcontext,
    **child_env: str,
) -> None:  # fmt: skip
    """Load, then kill a second load at ``point``, check, rerun and check again.

    ``inside``: what this process runs its own loads and checks in (fakesnow's patch);
    ``child_env``: what the killed child needs to reach the same destination.
    """
    src = tmp_path / "src.db"
    seed(src, range(1, 41), minute=0)
    with inside():
        load(str(src), url, schema)
    # new rows and updates arrive; the next load dies at `point`
    seed(src, range(35, 61), minute=5)
    crashed = run_loader(src, url, schema, point, **child_env)
    assert crashed.returncode == -signal.SIGKILL, (point, crashed.stdout, crashed.stderr)
    with inside():
        ids, quarantined, ckpt = state(url, schema)
    committed = point == "after_commit"
    expected_good = [i for i in range(1, 61 if committed else 41) if i % 10]
    assert ids == expected_good, point  # old state or new state, never half
    # rows re-read inside the lookback window are quarantined again, under the new load id
    assert quarantined == ({10, 20, 30, 40, 50, 60} if committed else {10, 20, 30, 40})
    with inside():
        assert "loaded=" in load(str(src), url, schema)  # the rerun, after the crash
        ids, quarantined, ckpt = state(url, schema)
    assert ids == [i for i in range(1, 61) if i % 10]  # no duplicate, no missing row
    assert len(ids) == len(set(ids))
    assert quarantined == {10, 20, 30, 40, 50, 60}
    assert ckpt == T0 + dt.timedelta(minutes=5, seconds=60)


@pytest.mark.parametrize("point", POINTS)
def test_duckdb_crash_at_every_point(tmp_path: Path, point: str) -> None:
    crash_and_recover(tmp_path, f"duckdb:///{tmp_path / 'w.duckdb'}", None, point)


@pytest.mark.parametrize("point", ["after_apply", "after_commit"])
def test_postgres_crash(tmp_path: Path, pg_schema: tuple[str, str], point: str) -> None:
    url, schema = pg_schema
    crash_and_recover(tmp_path, url, schema, point)


@pytest.mark.parametrize("point", ["after_stage", "before_commit", "after_commit"])
def test_snowflake_crash(tmp_path: Path, point: str) -> None:
    """Snowflake under fakesnow (what the emulator cannot prove: the destination's docstring)."""
    fakesnow = pytest.importorskip("fakesnow")
    db = tmp_path / "snow"
    db.mkdir()
    url = "snowflake://etl:pw@acme/analytics/crm?warehouse=LOAD"
    crash_and_recover(
        tmp_path,
        url,
        None,
        point,
        lambda: fakesnow.patch(db_path=str(db)),
        **{FAKESNOW_DB: str(db)},
    )
