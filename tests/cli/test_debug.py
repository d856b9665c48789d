"""A failed load through ``headrace run``: the driver error it wraps is shown as a
``caused by:`` line, and ``--debug`` prints the whole traceback with its causes.

Real PostgreSQL: the load breaks a CHECK constraint, so the error comes from the driver.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import psycopg
import pytest

from headrace.cli import run_app

PIPELINE = textwrap.dedent("""
    import pyarrow as pa
    from headrace import pipeline, task
    from headrace.connectors import PostgresDestination

    @task
    def load() -> None:
        PostgresDestination({url!r}, schema={schema!r}).write(pa.table({{"id": [1], "qty": [-1]}}), "orders")

    @pipeline
    def orders():
        load()
""")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pg_schema: tuple[str, str]) -> Path:
    url, schema = pg_schema
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE TABLE "{schema}".orders (id bigint, qty bigint CHECK (qty > 0))')
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HEADRACE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HEADRACE_STATE_URL", f"sqlite:///{tmp_path / 'home' / 'state.db'}")
    monkeypatch.setenv("COLUMNS", "200")
    (tmp_path / "flows.py").write_text(PIPELINE.format(url=url, schema=schema))
    return tmp_path


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = run_app(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_a_failed_load_names_the_driver_error_it_wraps(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(capsys, "run", "flows.py", "--executor", "inprocess")
    assert code == 1
    assert "table 'orders', connection PostgreSQL " in out
    assert ": Loading failed (append): " in out
    assert "load: caused by: ProgrammingError:" in out
    assert "Traceback" not in out + err


def test_debug_prints_the_traceback_with_its_cause(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(capsys, "--debug", "run", "flows.py", "--executor", "inprocess")
    assert code == 1
    assert "--- load: traceback of attempt 1 ---" in err
    assert 'violates check constraint "orders_qty_check"' in err
    assert "The above exception was the direct cause of the following exception" in err
    assert "headrace.errors.ConnectorError: table 'orders', connection PostgreSQL " in err


def test_an_error_of_the_command_shows_its_cause_or_the_traceback(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (home / "broken.py").write_text(
        "from headrace import pipeline\n\n@pipeline\ndef broken(:\n    pass\n"
    )
    code, out, err = cli(capsys, "run", "broken.py")
    assert code == 4
    assert "broken.py:4: syntax error: " in err
    assert "caused by: SyntaxError: " in err
    assert "Traceback" not in err

    code, out, err = cli(capsys, "--debug", "run", "broken.py")
    assert code == 4
    assert "Traceback (most recent call last)" in err
    assert "SyntaxError" in err and "The above exception was the direct cause" in err
