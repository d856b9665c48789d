"""The one configuration object: every section from headrace.toml and the environment,
secrets masked when shown, handed to child processes as JSON without loss."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from headrace.config import Settings
from headrace.errors import ConfigError
from headrace.observe.alerts import EmailChannel, WebhookChannel, alerter_from_settings
from headrace.queue import QueueConnection

TOML = """
[headrace]
state_url = "postgresql://hr:statepw@db/state"
[connections]
crm = "postgresql://etl:crmpw@db/crm"
[pools]
db = 2
[queue]
redis_url = "redis://:redispw@cache:6379/1"
prefix = "etl"
[alerts]
smtp_url = "smtp://bot:smtppw@mail:587?from=hr@x.org"
webhook_url = "https://hooks.example.com/services/T000/B000/tokenpw"
recipients = ["a@x.org", "b@x.org"]
on_retry = true
[lineage]
url = "http://marquez:5000"
[spark]
master = "spark://spark:7077"
[spark.conf]
"spark.executor.memory" = "2g"
"""


def test_every_section_from_toml_and_environment_wins(tmp_path: Path) -> None:
    (tmp_path / "headrace.toml").write_text(TOML)
    settings = Settings.load(
        cwd=tmp_path,
        environ={
            "HEADRACE_QUEUE_PREFIX": "env-prefix",
            "HEADRACE_ALERT_ON_FAILURE": "0",
            "HEADRACE_POOL_DB": "5",
        },
    )
    assert settings.state_url == "postgresql://hr:statepw@db/state"
    assert settings.connection("CRM") == "postgresql://etl:crmpw@db/crm"
    assert settings.pools == {"db": 5}
    assert (settings.queue.redis_url, settings.queue.prefix) == (
        "redis://:redispw@cache:6379/1",
        "env-prefix",
    )
    assert settings.alerts.recipients == ("a@x.org", "b@x.org")
    assert (settings.alerts.on_failure, settings.alerts.on_retry, settings.alerts.on_sla_miss) == (
        False,
        True,
        True,
    )
    assert settings.lineage.url == "http://marquez:5000"
    assert settings.spark.master == "spark://spark:7077" and settings.spark.conf == {
        "spark.executor.memory": "2g"
    }
    # the sections build what they configure
    assert QueueConnection.from_settings(settings).prefix == "env-prefix"
    alerter = alerter_from_settings(settings.alerts)
    assert [type(c) for c in alerter.channels] == [WebhookChannel, EmailChannel]
    assert alerter.channels[1].recipients == ["a@x.org", "b@x.org"]  # type: ignore[attr-defined]


def test_defaults_without_any_configuration(tmp_path: Path) -> None:
    settings = Settings.load(cwd=tmp_path, environ={})
    assert settings.state_url == f"sqlite:///{tmp_path / '.headrace' / 'state.db'}"
    assert (
        settings.queue.redis_url == "redis://127.0.0.1:6379/0" and settings.queue.prefix == "bull"
    )
    assert settings.spark.master == "local[*]"
    assert alerter_from_settings(settings.alerts).channels == []
    assert Settings.from_env(cwd=tmp_path, environ={}) == settings  # the former name


def test_secrets_are_masked_in_repr_and_str(tmp_path: Path) -> None:
    (tmp_path / "headrace.toml").write_text(TOML)
    settings = Settings.load(cwd=tmp_path, environ={})
    for shown in (repr(settings), str(settings)):
        for secret in ("statepw", "crmpw", "redispw", "smtppw", "tokenpw"):
            assert secret not in shown, secret
    assert "postgresql://etl:***@db/crm" in repr(settings)


def test_json_round_trip_keeps_everything(tmp_path: Path) -> None:
    (tmp_path / "headrace.toml").write_text(TOML)
    settings = Settings.load(cwd=tmp_path, environ={})
    assert Settings.from_json(settings.to_json()) == settings
    with pytest.raises(ConfigError, match="handed-down settings are not valid"):
        Settings.from_json('{"home": "/x"}')


def test_metrics_port_from_toml_environment_wins_and_a_bad_one_is_named(tmp_path: Path) -> None:
    (tmp_path / "headrace.toml").write_text("[metrics]\nport = 9108\n")
    assert Settings.load(cwd=tmp_path, environ={}).metrics.port == 9108
    settings = Settings.load(cwd=tmp_path, environ={"HEADRACE_METRICS_PORT": "9200"})
    assert settings.metrics.port == 9200
    assert Settings.from_json(settings.to_json()).metrics.port == 9200
    with pytest.raises(ConfigError, match="HEADRACE_METRICS_PORT.*'http'"):
        Settings.load(cwd=tmp_path, environ={"HEADRACE_METRICS_PORT": "http"})


def test_bad_flag_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="HEADRACE_ALERT_ON_RETRY"):
        Settings.load(cwd=tmp_path, environ={"HEADRACE_ALERT_ON_RETRY": "maybe"})


# Modules that read configuration: the edges, and the one reader (config.py itself).
EDGE_READERS = {
    "config.py",  # the reader the edges call
    "cli",  # the headrace command
    "scheduler/run_one.py",  # the child process driving one run: an edge
    "connectors/crashpoints.py",  # test-only crash injection switch, not configuration
    "tasks/shell.py",  # a shell task's child inherits the process environment on purpose
    "scheduler/launch.py",  # a driving child inherits the environment; its settings come as JSON
}
SRC = Path(__file__).resolve().parents[1] / "src" / "headrace"


def _reads_environment(tree: ast.AST) -> list[int]:
    lines = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and node.attr in ("environ", "getenv")
            and (isinstance(node.value, ast.Name) and node.value.id == "os")
        ):
            lines.append(node.lineno)
        if (
            isinstance(node, ast.Attribute)
            and node.attr == "load"
            and (isinstance(node.value, ast.Name) and node.value.id == "Settings")
        ):
            lines.append(node.lineno)
        if isinstance(
            node, ast.Call
        ):  # Settings.from_env(), QueueConnection.from_env(...), alerter_from_env(...)
            called = node.func
            name = called.attr if isinstance(called, ast.Attribute) else getattr(called, "id", "")
            if name in ("from_env", "alerter_from_env"):
                lines.append(node.lineno)
    return lines


def test_nothing_below_the_edge_reads_the_environment() -> None:
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        relative = path.relative_to(SRC).as_posix()
        if relative in EDGE_READERS or relative.split("/")[0] in EDGE_READERS:
            continue
        lines = _reads_environment(ast.parse(path.read_text()))
        offenders += [f"{relative}:{line}" for line in lines]
    assert offenders == []
