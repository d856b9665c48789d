"""``headrace run`` sends failure alerts to the configured webhook, like the scheduler does."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from headrace.cli import run_app

FAILING = textwrap.dedent("""
    from headrace import pipeline, task

    @task
    def boom() -> int:
        raise RuntimeError("the source table is gone")

    @pipeline
    def fragile():
        boom()
""")


def test_a_failed_cli_run_alerts_the_webhook(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, webhook_server, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HEADRACE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HEADRACE_ALERT_WEBHOOK_URL", webhook_server.url + "/hook")
    (tmp_path / "fragile.py").write_text(FAILING)

    code = run_app(["run", "fragile.py", "--executor", "inprocess"])

    assert code == 1
    assert webhook_server.paths == ["/hook"]
    text = str(webhook_server.bodies[0])
    assert "fragile" in text and "boom" in text and "the source table is gone" in text
