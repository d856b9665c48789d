"""Secrets are masked when written: a planted password never reaches the state store,
staged files, alerts or any CLI output, whatever the task does with it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import headrace

#: The tree under test first on the path of the subprocesses.
SRC = str(Path(headrace.__file__).resolve().parents[1])

PASSWORD = "Pl4nted-S3cret-xq"  # noqa: S105 - planted on purpose
TOKEN = "tok-Zz9-planted-web-token"  # noqa: S105

PIPELINE = textwrap.dedent("""
    import os
    from urllib.parse import urlsplit
    import pyarrow as pa
    from headrace import Context, pipeline, task
    from headrace.quality import not_null

    @task
    def extract(ctx: Context) -> dict:
        url = ctx.connection("warehouse")
        password = urlsplit(url).password
        ctx.log.info("connecting to %s", url)
        ctx.log.warning("bare password %s and token %s", password, os.environ["HEADRACE_WEB_TOKEN"])
        print("printed", url, "and", password)
        return {"url": url, "password": password}

    @task(checks=[not_null("email", severity="warn")])
    def rows(ctx: Context) -> pa.Table:
        # Table data is data: staged as the task returned it (never rewritten by the masker).
        return pa.table({"id": [1, 2], "email": [None, "a@b.c"]})

    @task
    def load(ctx: Context, found: dict, table: pa.Table) -> None:
        raise RuntimeError(f"cannot load with {found['url']} (password {found['password']})")

    @pipeline
    def leaky():
        load(extract(), rows())
""")


def run_cli(cwd: Path, env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    """The real command in a fresh process, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-c", "from headrace.cli import main; main()", *argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("HEADRACE_")}
    environ.update(
        HEADRACE_HOME=str(tmp_path / "home"),
        HEADRACE_CONN_WAREHOUSE=f"postgresql://etl:{PASSWORD}@127.0.0.1:5432/test",
        HEADRACE_WEB_TOKEN=TOKEN,
        COLUMNS="300",
        PYTHONPATH=os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")]),
    )
    (tmp_path / "leaky.py").write_text(PIPELINE)
    return environ


def _files_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()]


def test_planted_password_is_in_no_store_file_or_output(
    tmp_path: Path, env: dict[str, str]
) -> None:
    outputs = []
    run = run_cli(tmp_path, env, "run", "leaky.py", "--date", "2024-01-02")
    outputs.append(run.stdout + run.stderr)
    assert run.returncode == 1, outputs[-1]  # the load task raised: the run failed
    from headrace.state import open_store

    with open_store(f"sqlite:///{tmp_path / 'home' / 'state.db'}") as store:
        (record,) = store.list_runs()
        run_id = record.run_id
        tasks = {t.task_id: t for t in store.get_task_instances(run_id)}
        logs = "\n".join(log.text for log in store.get_logs(run_id))
    # The masking kept the information a reader needs.
    assert "connecting to postgresql://etl:***@127.0.0.1:5432/test" in logs
    assert "bare password *** and token ***" in logs
    assert "printed postgresql://etl:***@127.0.0.1" in logs
    assert tasks["extract"].result_json == {
        "url": "postgresql://etl:***@127.0.0.1:5432/test",
        "password": "***",
    }
    assert "cannot load with postgresql://etl:***@" in (tasks["load"].error or "")
    for argv in (
        ["runs"],
        ["show", run_id],
        ["show", run_id, "--verbose"],
        ["logs", run_id],
        ["logs", run_id, "extract"],
        ["checks", run_id, "--samples"],
    ):
        done = run_cli(tmp_path, env, *argv)
        outputs.append(done.stdout + done.stderr)
        assert done.returncode == 0, (argv, outputs[-1])
    assert "***" in outputs[4]  # logs show the masked lines
    for text in outputs:
        assert PASSWORD not in text and TOKEN not in text, text
    stored = _files_under(tmp_path / "home")
    assert any(p.name == "state.db" for p in stored)
    for path in stored:
        data = path.read_bytes()
        assert PASSWORD.encode() not in data, path
        assert TOKEN.encode() not in data, path


def test_alert_texts_mask_known_values_and_hide_sample_rows() -> None:
    from headrace.masking import register_secret
    from headrace.observe.alerts import Alert, Alerter, AlertKind

    register_secret("alert-only-s3cret")
    error = (
        "QualityError: 1 expectation failed in task t\n  not_null(email): 1 of 2 rows\n"
        '    sample: {"email": null, "name": "jane@example.com"}\n'
        "password was alert-only-s3cret"
    )
    alert = Alert(AlertKind.FAILURE, "p", "r1", error=error)
    sent = Alerter([]).prepare(alert)
    assert "alert-only-s3cret" not in sent.text
    assert "jane@example.com" not in sent.text
    assert "sample rows hidden" in sent.text
    shown = Alerter([], sample_rows=True).prepare(alert)
    assert "jane@example.com" in shown.text
    assert "alert-only-s3cret" not in shown.text
    assert json.dumps({"text": shown.text})  # stays a plain string


def test_known_values_are_masked_as_whole_tokens_only() -> None:
    from headrace.masking import Masker

    masker = Masker(["postgres", "p@ss w0rd!"])
    assert masker.mask("postgresql://u:postgres@h/x uses postgres; postgresql stays") == (
        "postgresql://u:***@h/x uses ***; postgresql stays"
    )
    assert masker.mask("pw=p%40ss%20w0rd%21 and p@ss w0rd!") == "pw=*** and ***"
