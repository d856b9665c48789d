"""``headrace vars`` and ``ctx.var``: Variables in the state store, secrets masked unless revealed."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from headrace.cli import run_app
from headrace.state import open_store

PIPELINE = textwrap.dedent("""
    from headrace import Context, pipeline, task

    @task
    def read(ctx: Context) -> dict:
        return {
            "conn": ctx.var("source_db_conn"),
            "limits": ctx.var("limits", deserialize_json=True),
            "missing": ctx.var("nope", default="fallback"),
        }

    @task
    def strict(ctx: Context) -> str:
        return ctx.var("not_set_anywhere")

    @pipeline
    def uses_vars():
        read()

    @pipeline
    def needs_missing():
        strict()
""")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HEADRACE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HEADRACE_STATE_URL", f"sqlite:///{tmp_path / 'home' / 'state.db'}")
    monkeypatch.setenv("COLUMNS", "200")
    (tmp_path / "flows.py").write_text(PIPELINE)
    return tmp_path


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    code = run_app(list(argv))
    out, err = capsys.readouterr()
    return code, out + err


def test_secret_values_are_masked_in_get_and_list_unless_revealed(home: Path, capsys) -> None:
    assert (
        cli(capsys, "vars", "set", "source_db_conn", "postgresql://etl:hunter2@db/crm", "--secret")[
            0
        ]
        == 0
    )
    assert cli(capsys, "vars", "set", "slack_token", "xoxb-123")[0] == 0  # secret by its name
    assert cli(capsys, "vars", "set", "region", "eu-west-1", "-d", "where we run")[0] == 0

    code, out = cli(capsys, "vars", "list")
    assert code == 0
    assert "hunter2" not in out and "xoxb-123" not in out
    # each secret's row shows *** (other tests may have registered more secrets in this
    # process, so *** elsewhere in the output is not counted)
    lines = {line.split()[0]: line for line in out.splitlines() if line.split()}
    assert "***" in lines["source_db_conn"] and "***" in lines["slack_token"]
    assert "eu-west-1" in out and "where we run" in out
    assert cli(capsys, "vars", "get", "source_db_conn")[1].strip() == "***"
    assert cli(capsys, "vars", "get", "slack_token", "--reveal")[1].strip() == "xoxb-123"
    rows = [json.loads(line) for line in cli(capsys, "vars", "list", "--json")[1].splitlines()]
    assert {r["name"]: r["value"] for r in rows} == {
        "region": "eu-west-1",
        "slack_token": "***",
        "source_db_conn": "***",
    }
    revealed = [
        json.loads(line)
        for line in cli(capsys, "vars", "list", "--json", "--reveal")[1].splitlines()
    ]
    assert "postgresql://etl:hunter2@db/crm" in {r["value"] for r in revealed}


def test_get_and_delete_of_an_unknown_name_suggest_the_closest(home: Path, capsys) -> None:
    cli(capsys, "vars", "set", "region", "eu")
    code, out = cli(capsys, "vars", "get", "regoin")
    assert code == 1 and "variable 'regoin' is not set" in out and "Did you mean 'region'?" in out
    assert cli(capsys, "vars", "delete", "region")[0] == 0
    code, out = cli(capsys, "vars", "delete", "region")
    assert code == 1 and "not set" in out


@pytest.mark.parametrize("executor", ["inprocess", "process"])
def test_tasks_read_variables_through_the_run(home: Path, capsys, executor: str) -> None:
    cli(capsys, "vars", "set", "source_db_conn", "sqlite:///crm.db", "--secret")
    cli(capsys, "vars", "set", "limits", '{"rows": 10}')

    code, out = cli(
        capsys, "run", "flows.py:uses_vars", "--date", "2024-01-02", "--executor", executor
    )

    assert code == 0, out
    with open_store(f"sqlite:///{home / 'home' / 'state.db'}") as store:
        run = store.list_runs("uses_vars")[0]
        ti = next(t for t in store.get_task_instances(run.run_id) if t.task_id == "read")
    assert ti.result_json == {
        "conn": "sqlite:///crm.db",
        "limits": {"rows": 10},
        "missing": "fallback",
    }


def test_an_unset_variable_without_default_fails_the_task_once_naming_it(
    home: Path, capsys
) -> None:
    code, out = cli(
        capsys, "run", "flows.py:needs_missing", "--date", "2024-01-02", "--executor", "inprocess"
    )
    assert code == 1
    with open_store(f"sqlite:///{home / 'home' / 'state.db'}") as store:
        run = store.list_runs("needs_missing")[0]
        ti = next(t for t in store.get_task_instances(run.run_id) if t.task_id == "strict")
    assert ti.error_kind == "UnknownVariable" and ti.attempt == 1
    assert "variable 'not_set_anywhere' is not set" in (ti.error or "")


LEAKY = textwrap.dedent("""
    from headrace import Context, pipeline, task

    @task
    def leaky(ctx: Context) -> None:
        url = ctx.var("source_db_conn")
        ctx.log.info("connecting to %s", url)
        print("also printed:", url)
        raise RuntimeError(f"cannot reach {url}")

    @pipeline
    def leaks():
        leaky()
""")


@pytest.mark.parametrize("executor", ["inprocess", "process"])
def test_a_secret_value_a_task_read_is_masked_in_its_logs_and_error(
    home: Path, capsys, executor: str
) -> None:
    (home / "leaks.py").write_text(LEAKY)
    secret = "postgresql://etl:hunter2@db.internal/crm"
    cli(capsys, "vars", "set", "source_db_conn", secret, "--secret")

    code, out = cli(capsys, "run", "leaks.py", "--date", "2024-01-02", "--executor", executor)

    assert code == 1 and secret not in out
    with open_store(f"sqlite:///{home / 'home' / 'state.db'}") as store:
        run = store.list_runs("leaks")[0]
        ti = store.get_task_instances(run.run_id)[0]
        logs = "\n".join(r.text for r in store.get_logs(run.run_id))
    assert ti.error == "RuntimeError: cannot reach ***"
    assert secret not in logs and "connecting to ***" in logs and "also printed: ***" in logs
