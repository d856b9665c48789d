"""examples/airflow_port.py: the reference Airflow DAG, ported, run by the engine against PostgreSQL.

The source ``customers`` table lives in a per-test schema; the warehouse is a second
per-test schema. dbt is the stand-in executable of tests/tasks/fake_dbt (dbt's console
output and its real ``run_results.json``), so the dbt step runs without dbt installed.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope

from headrace.config import Settings
from headrace.engine import Runner, load_pipelines
from headrace.observe.alerts import Alerter, EmailChannel
from headrace.pipeline import Pipeline
from headrace.state import open_store
from headrace.state.store_base import RunState, TaskState

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "airflow_port.py"
FAKE_DBT = ROOT / "tests" / "tasks" / "fake_dbt" / "dbt"
CHAIN = [
    "extract_data",
    "transform_data",
    "validate_data",
    "load_to_warehouse",
    "check_data_quality",
    "run_dbt_tests",
    "cleanup_temp_files",
]
ROWS = [  # customer_id, email, first, last, phone, zip, updated_at
    (1, " Ann@Example.com ", "ann", "lee", "(555) 123-4567", "501", datetime(2024, 1, 1, 9)),
    (2, "bob@example.com", "bob", "ray", "555.222.3333", "02139", datetime(2024, 1, 2, 10)),
    (
        3,
        "ann@example.com",
        "ann",
        "lee",
        "5551234567",
        "501",
        datetime(2024, 1, 2, 11),
    ),  # same e-mail, later
    (
        4,
        "old@example.com",
        "old",
        "row",
        "5550000000",
        "10001",
        datetime(2023, 12, 30, 8),
    ),  # outside the window
    (5, "cy@example.com", "cy", "ng", None, "94110", datetime(2024, 1, 3, 1)),  # a later day
]


class _Inbox:
    """An aiosmtpd handler keeping every message it receives."""

    def __init__(self, messages: list[Envelope]) -> None:
        self.messages = messages

    async def handle_DATA(self, server: object, session: object, envelope: Envelope) -> str:  # noqa: N802
        self.messages.append(envelope)
        return "250 OK"


@pytest.fixture
def port() -> Pipeline:
    return load_pipelines(EXAMPLE)["customer_etl_pipeline"]


@pytest.fixture
def crm(pg_schema: tuple[str, str]) -> Iterator[tuple[str, str, str]]:
    """(database URL, source schema, warehouse schema) with the source customers table filled."""
    url, schema = pg_schema
    warehouse = f"{schema}_dw"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{warehouse}"')
        conn.execute(
            f'CREATE TABLE "{schema}".customers (customer_id int primary key, email text, first_name text, '
            "last_name text, phone text, address text, city text, state text, zip_code text, "
            "created_at timestamp, updated_at timestamp)"
        )
        with conn.cursor() as cur:
            cur.executemany(
                f'INSERT INTO "{schema}".customers VALUES (%s, %s, %s, %s, %s, NULL, %s, %s, %s, %s, %s)',
                [
                    (i, e, f, ln, ph, "Springfield", "IL", z, datetime(2021, 5, 1), u)
                    for i, e, f, ln, ph, z, u in ROWS
                ],
            )
    try:
        yield url, schema, warehouse
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{warehouse}" CASCADE')


@pytest.fixture
def dbt_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    # This interpreter runs the stand-in, whatever python3 is on PATH.
    body = FAKE_DBT.read_text().split("\n", 1)[1]
    (bindir / "dbt").write_text(f"#!{sys.executable}\n{body}")
    (bindir / "dbt").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    project = tmp_path / "dbt"
    shutil.copytree(ROOT / "examples" / "_demo" / "dbt", project)
    (project / "tests.json").write_text(
        json.dumps(
            [
                {
                    "name": "not_null_customers_customer_id",
                    "model": "customers",
                    "column": "customer_id",
                },
                {"name": "unique_customers_email", "model": "customers", "column": "email"},
            ]
        )
    )
    return project


def test_the_port_keeps_every_setting_of_the_reference_dag(port: Pipeline) -> None:
    assert port.order == CHAIN
    assert [port.upstream[t] for t in CHAIN[1:]][:2] == [("extract_data",), ("transform_data",)]
    assert port.schedule == "0 2 * * *" and port.catchup is False and port.max_active_runs == 1
    assert port.start_date is not None and port.start_date.replace(tzinfo=None) == datetime(
        2024, 1, 1
    )
    assert port.description == "ETL pipeline for customer data with validation"
    assert (
        port.doc is not None
        and port.doc.strip().startswith("# Customer ETL Pipeline")
        and port.tags == ["etl", "customers", "production"]
    )
    for tid in CHAIN:
        t = port.task(tid)
        assert (t.retries.attempts, t.retries.delay, t.retries.backoff, t.retries.max_delay) == (
            4,
            timedelta(minutes=5),
            2.0,
            timedelta(hours=1),
        )
        assert (
            t.timeout == timedelta(hours=2)
            and t.sla == timedelta(hours=3)
            and t.owner == "data-team"
        )
        assert t.depends_on_past is False
        assert t.alerts.email == ("data-alerts@company.com",)
        assert t.alerts.email_on_failure is True and t.alerts.email_on_retry is False


def test_the_port_runs_against_postgresql_and_reruns_idempotently(
    port: Pipeline, crm: tuple[str, str, str], dbt_project: Path, tmp_path: Path
) -> None:
    url, schema, warehouse = crm
    settings = Settings(
        home=tmp_path / "home",
        state_url=f"sqlite:///{tmp_path / 'state.db'}",
        connections={"warehouse": f"{url}?schema={warehouse}"},
    )
    scratch = tmp_path / "scratch" / "staging"
    scratch.mkdir(parents=True)
    (scratch / "customers_2024-01-02.parquet").write_bytes(b"left by an old script")
    params = {"dbt_project_dir": str(dbt_project), "tmp_dir": str(tmp_path / "scratch")}
    with open_store(settings.state_url) as store:
        store.set_variable("source_db_conn", f"{url}?options=-csearch_path%3D{schema}", secret=True)
        # In-process: a process pool started by an earlier test would not see the fake dbt on PATH.
        runner = Runner(store, executor="inprocess", settings=settings)

        result = runner.run(
            port, datetime(2024, 1, 2, 2, tzinfo=UTC), params=params, trigger="backfill"
        )

        assert result.state == RunState.SUCCESS, {
            t.task_id: t.error for t in result.tasks if t.error
        }
        assert [t.task_id for t in result.tasks if t.state != TaskState.SUCCESS] == []
        checks = {c.expectation: c.status for c in store.get_check_results(result.run_id)}
        assert checks == {  # the reference's Great Expectations suite, then its dbt tests
            "not_null(customer_id)": "passed",
            "unique(customer_id)": "passed",
            "matches_regex(email)": "passed",
            "not_null(email)": "passed",
            "between(created_at)": "passed",
            "dbt not_null_customers_customer_id": "passed",
            "dbt unique_customers_email": "passed",
        }
        assert not (
            scratch / "customers_2024-01-02.parquet"
        ).exists()  # cleanup_temp_files ran on {{ ds }}

        again = runner.run(port, datetime(2024, 1, 2, 2, tzinfo=UTC), params=params, rerun=True)
        assert again.state == RunState.SUCCESS and again.run_id == result.run_id

    with psycopg.connect(url) as conn:
        rows = conn.execute(
            f'SELECT customer_id, email, phone, zip_code, etl_execution_date FROM "{warehouse}".customers '
            "ORDER BY customer_id"
        ).fetchall()
    # prev_ds..ds = 2024-01-01..2024-01-02: rows 1-3; ann's two rows dedupe to the latest (3).
    assert [(r[0], r[1], r[2], r[3], str(r[4])) for r in rows] == [
        (2, "bob@example.com", "5552223333", "02139", "2024-01-02"),
        (3, "ann@example.com", "5551234567", "00501", "2024-01-02"),
    ]


def test_bad_source_rows_fail_validate_data_once_and_stop_the_chain(
    port: Pipeline, crm: tuple[str, str, str], dbt_project: Path, tmp_path: Path
) -> None:
    url, schema, warehouse = crm
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            f'UPDATE "{schema}".customers SET created_at = %s WHERE customer_id = 2',
            (datetime(2019, 6, 1),),
        )
    settings = Settings(
        home=tmp_path / "home",
        state_url=f"sqlite:///{tmp_path / 'state.db'}",
        connections={"warehouse": f"{url}?schema={warehouse}"},
    )
    inbox: list[Envelope] = []
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port_number = probe.getsockname()[1]
    smtp = Controller(_Inbox(inbox), hostname="127.0.0.1", port=port_number)
    smtp.start()
    try:
        # The global SMTP server (HEADRACE_ALERT_SMTP_URL at the CLI) carries the DAG's own recipients.
        alerter = Alerter(
            [
                EmailChannel(
                    "127.0.0.1",
                    port_number,
                    sender="headrace@company.com",
                    recipients=["oncall@company.com"],
                )
            ]
        )
        with open_store(settings.state_url) as store:
            store.set_variable(
                "source_db_conn", f"{url}?options=-csearch_path%3D{schema}", secret=True
            )
            result = Runner(store, executor="inprocess", settings=settings, alerter=alerter).run(
                port,
                datetime(2024, 1, 2, 2, tzinfo=UTC),
                params={"dbt_project_dir": str(dbt_project)},
            )
            failed = {
                c.expectation
                for c in store.get_check_results(result.run_id)
                if c.status == "failed"
            }
    finally:
        smtp.stop()

    assert result.state == RunState.FAILED
    validate = result.task("validate_data")
    assert validate.state == TaskState.FAILED and validate.attempt == 1  # bad data is not retried
    assert failed == {"between(created_at)"}
    assert {result.task(t).state for t in CHAIN[3:]} == {TaskState.UPSTREAM_FAILED}
    # 'email_on_failure': True with 'email': ['data-alerts@company.com'], besides the global on-call address.
    mailed = {
        tuple(e.rcpt_tos): e.content.decode() if isinstance(e.content, bytes) else str(e.content)
        for e in inbox
    }
    assert set(mailed) == {("data-alerts@company.com",), ("oncall@company.com",)}
    assert "customer_etl_pipeline.validate_data failed" in mailed[("data-alerts@company.com",)]
