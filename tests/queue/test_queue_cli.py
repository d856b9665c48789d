"""``headrace queue ...`` commands and handler loading of ``headrace worker``."""

from __future__ import annotations

import pytest

from headrace.cli import run_app
from headrace.cli.queue_commands import load_handler
from headrace.errors import ConfigError
from headrace.queue import QueueConnection


def test_add_counts_jobs_repeatables(
    conn: QueueConnection, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    where = ["--redis-url", conn.url, "--prefix", conn.prefix]
    assert (
        run_app(
            [
                "queue",
                "add",
                "cliq",
                "process-csv",
                "--data",
                '{"f": 1}',
                "--job-id",
                "csv-1",
                *where,
            ]
        )
        == 0
    )
    assert capsys.readouterr().out.strip() == "csv-1"
    assert run_app(["queue", "add", "cliq", "later", "--delay-ms", "60000", *where]) == 0
    capsys.readouterr()

    assert run_app(["queue", "counts", "cliq", *where]) == 0
    rows = {line.split("│")[1].strip(): line.split("│")[2].strip()
            for line in capsys.readouterr().out.splitlines() if line.count("│") == 3}  # fmt: skip
    assert rows["waiting"] == "1" and rows["delayed"] == "1" and rows["failed"] == "0"

    assert run_app(["queue", "jobs", "cliq", "--state", "waiting", *where]) == 0
    assert "csv-1" in capsys.readouterr().out

    assert run_app(["queue", "add", "cliq", "x", "--data", "{bad", *where]) == 2  # usage
    assert "--data is not valid JSON at line 1 column 2" in capsys.readouterr().err
    assert run_app(["queue", "jobs", "cliq", "--state", "complete", *where]) == 1
    assert "Did you mean 'completed'" in capsys.readouterr().err


def test_load_handler_names_what_is_wrong() -> None:
    assert load_handler("queue_handlers:quick").__name__ == "quick"
    with pytest.raises(ConfigError, match="expected 'package.module:function'"):
        load_handler("queue_handlers")
    with pytest.raises(ConfigError, match="cannot import module 'no_such_mod'"):
        load_handler("no_such_mod:f")
    with pytest.raises(ConfigError, match="Did you mean 'quick'"):
        load_handler("queue_handlers:quik")
