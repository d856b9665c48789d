"""A sync's check results and quarantined rows in the web UI, from runs of the real engine."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from headrace.config import Settings
from headrace.engine import Runner, load_pipelines
from headrace.state import open_store
from headrace.state.store_base import RunState, StateStore
from headrace.web.application import create_app

SYNCS = Path(__file__).parent / "syncs" / "web_sync.py"
DAY = datetime(2024, 1, 1, tzinfo=UTC)
#: A connection password: registered as a secret by the Runner and the app (masked wherever shown).
SECRET = "Sup3rSecretPw"


@dataclass
class SyncWeb:
    http: TestClient
    store: StateStore
    settings: Settings
    runner: Runner


def _shop(path: Path, bad: int) -> str:
    """``orders``: 20 good rows, ``bad`` rows with a negative qty, one without an email whose note is a secret."""
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE orders (id INTEGER PRIMARY KEY, email TEXT, qty INTEGER, note TEXT)"
        )
        rows: list[tuple[int, str | None, int, str]] = [
            (i, f"u{i}@example.com", i, "ok") for i in range(20)
        ]
        rows += [(100 + i, f"b{i}@example.com", -i - 1, f"bad {i:03d}") for i in range(bad)]
        rows.append((999, None, 5, f"password of crm is {SECRET}"))
        conn.executemany("INSERT INTO orders VALUES (?, ?, ?, ?)", rows)
    return f"sqlite:///{path}"


@pytest.fixture(params=["duckdb", "postgresql"])
def web(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SyncWeb]:
    if request.param == "duckdb":
        warehouse = f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    else:
        url, schema = request.getfixturevalue("pg_schema")
        warehouse = f"{url}?schema={schema}"
    settings = Settings(
        home=tmp_path / "home", state_url=f"sqlite:///{tmp_path / 'state.db'}",
        connections={"shop": _shop(tmp_path / "shop.db", bad=230), "warehouse": warehouse,
                     "crm": f"postgresql://etl:{SECRET}@db.example/crm"},
    )  # fmt: skip
    with open_store(settings.state_url) as store:
        runner = Runner(store, executor="inprocess", settings=settings)
        app = create_app(settings, store=store, refresh_seconds=0)
        with TestClient(app) as http:
            yield SyncWeb(http, store, settings, runner)


def test_a_failing_sync_check_is_on_the_run_page(web: SyncWeb) -> None:
    strict = load_pipelines(SYNCS)["web_strict"]
    run = web.runner.run(strict, DAY)
    assert run.state == RunState.FAILED
    found = web.http.get(f"/api/runs/{run.run_id}/checks").json()
    checks = {c["expectation"]: c for c in found}
    assert len(found) == 2  # once per expectation, though the sync task failed
    email = checks["not_null(email)"]
    assert (email["task_id"], email["severity"], email["status"], email["failed"], email["total"]) == (
        "strict", "fail", "failed", 1, 251,
    )  # fmt: skip
    assert checks["unique(id)"]["status"] == "passed"
    (row,) = email["details"]["sample"]
    assert row["id"] == 999 and row["note"] == "password of crm is ***"  # masked when stored
    html = web.http.get(f"/runs/{run.run_id}").text
    assert 'Checks <span class="muted">(1 failed of 2)</span>' in html
    assert "not_null(email)" in html and SECRET not in html


def test_streamed_sync_checks_count_every_batch(web: SyncWeb) -> None:
    orders = load_pipelines(SYNCS)["web_orders"]
    run = web.runner.run(orders, DAY)
    assert run.state == RunState.SUCCESS
    checks = {c["expectation"]: c for c in web.http.get(f"/api/runs/{run.run_id}/checks").json()}
    qty = checks["between(qty)"]
    assert (qty["severity"], qty["status"], qty["failed"], qty["total"]) == (
        "quarantine",
        "failed",
        230,
        251,
    )
    assert len(qty["details"]["sample"]) == 5
    assert checks["not_null(note)"]["status"] == "passed"


def test_quarantine_page_reads_the_warehouse_quarantine_table(web: SyncWeb) -> None:
    orders = load_pipelines(SYNCS)["web_orders"]
    run = web.runner.run(orders, DAY)
    load_id = run.result_of("orders")["load_id"]
    with sqlite3.connect(str(web.settings.connection("shop")).removeprefix("sqlite:///")) as conn:
        conn.execute("UPDATE orders SET note = ? WHERE id = 100", (f"token={SECRET}",))
    again = web.runner.run(
        orders, datetime(2024, 1, 2, tzinfo=UTC)
    )  # another load in the same table
    assert again.result_of("orders")["load_id"] != load_id

    pages = [
        web.http.get(f"/runs/{run.run_id}/quarantine", params={"page": n}).text for n in (1, 2, 3)
    ]
    assert "230 rows in" in pages[0] and load_id in pages[0]
    shown = [re.findall(r"<td class=\"mono\">(bad \d{3})</td>", page) for page in pages]
    assert [len(rows) for rows in shown] == [100, 100, 30]
    assert sorted(r for rows in shown for r in rows) == [
        f"bad {i:03d}" for i in range(230)
    ]  # each row once
    assert pages[0].count("qty is negative") >= 100  # the reason of each row
    assert "page 1 of 3" in pages[0]

    # The second run's rows: its own load, a secret in a value masked.
    later = web.http.get(f"/runs/{again.run_id}/quarantine", params={"limit": 500}).text
    assert "token=***" in later and SECRET not in later
    assert again.result_of("orders")["load_id"] in later and load_id not in later
