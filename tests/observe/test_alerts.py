"""Alerts delivered to a real local SMTP server and a real local HTTP server."""

from __future__ import annotations

import base64
import email
import email.policy
from datetime import UTC, datetime, timedelta

import pytest

from headrace.errors import ConfigError
from headrace.observe.alerts import (
    Alert,
    Alerter,
    AlertError,
    AlertKind,
    EmailChannel,
    WebhookChannel,
    alerter_from_env,
    redact,
)

FAILURE = Alert(
    kind=AlertKind.FAILURE,
    pipeline="customer_etl",
    run_id="r_01",
    logical_date=datetime(2024, 1, 2, 2, tzinfo=UTC),
    task_id="load",
    attempt=4,
    error="ConnectorError: could not connect to postgresql://etl:hunter2@db:5432/wh (password=hunter2)",
)


def test_email_alert_names_pipeline_run_task_error_and_hides_secrets(smtp_server):
    port, inbox = smtp_server
    channel = EmailChannel.from_url(
        f"smtp://127.0.0.1:{port}?from=headrace@example.com&to=data-alerts@example.com,oncall@example.com"
    )
    assert Alerter([channel]).notify(FAILURE) == []
    assert len(inbox.messages) == 1
    msg = inbox.messages[0]
    assert msg["to"] == ["data-alerts@example.com", "oncall@example.com"]
    parsed = email.message_from_string(msg["data"], policy=email.policy.default)
    assert (
        parsed["Subject"].strip()
        == "[headrace] customer_etl.load failed (run r_01, 2024-01-02T02:00:00+00:00)"
    )
    body = parsed.get_content()
    for needle in (
        "Pipeline: customer_etl",
        "Run: r_01",
        "Task: load",
        "Attempt: 4",
        "ConnectorError",
    ):
        assert needle in body
    assert "hunter2" not in msg["data"]
    assert "postgresql://etl:***@db:5432/wh" in body


def test_webhook_alert_is_slack_compatible_json(webhook_server):
    channel = WebhookChannel(webhook_server.url + "/services/T000/B000/SECRET")
    Alerter([channel]).notify(FAILURE)
    (body,) = webhook_server.bodies
    assert webhook_server.paths == ["/services/T000/B000/SECRET"]
    assert body["text"].startswith("[headrace] customer_etl.load failed")
    assert body["blocks"][0]["type"] == "section"
    assert body["headrace"] == {
        "kind": "failure",
        "pipeline": "customer_etl",
        "run_id": "r_01",
        "task_id": "load",
        "logical_date": "2024-01-02T02:00:00+00:00",
        "error": body["headrace"]["error"],
    }
    assert "hunter2" not in str(body)


def test_webhook_retries_5xx_then_delivers(webhook_server):
    webhook_server.fail_next = [503]
    channel = WebhookChannel(webhook_server.url, retries=1)
    assert Alerter([channel]).notify(FAILURE) == []
    assert len(webhook_server.bodies) == 1


def test_webhook_posts_json_with_basic_auth_from_the_url(webhook_server):
    # The standard library posts it (the core has no HTTP client): user:password@host
    # in the URL is HTTP basic authentication, as HTTP clients read it.
    host = webhook_server.url.removeprefix("http://")
    channel = WebhookChannel(f"http://hook:pa%20ss@{host}/in", retries=0)
    assert Alerter([channel]).notify(FAILURE) == []
    (headers,) = webhook_server.headers
    assert headers["Content-Type"] == "application/json"
    assert headers["Authorization"] == "Basic " + base64.b64encode(b"hook:pa ss").decode()
    assert (
        webhook_server.paths == ["/in"] and webhook_server.bodies[0]["headrace"]["run_id"] == "r_01"
    )


def test_webhook_redirect_is_an_answer_not_followed(webhook_server):
    webhook_server.fail_next = [302]
    channel = WebhookChannel(webhook_server.url + "/secret-token-path", retries=2)
    (error,) = Alerter([channel]).notify(FAILURE)
    assert "HTTP 302" in str(error) and "secret-token-path" not in str(error)
    assert len(webhook_server.headers) == 1 and webhook_server.bodies == []  # not re-sent


def test_unreachable_webhook_is_an_alert_error_naming_the_host():
    channel = WebhookChannel("http://127.0.0.1:1/secret-token-path", retries=0, timeout=2)
    with pytest.raises(AlertError, match=r"127\.0\.0\.1:1: URLError") as err:
        channel.send(FAILURE)
    assert "secret-token-path" not in str(err.value)


def test_undeliverable_alert_is_returned_not_raised_and_hides_url(webhook_server, smtp_server):
    webhook_server.fail_next = [404]
    port, inbox = smtp_server
    hook = WebhookChannel(webhook_server.url + "/secret-token-path", retries=0)
    mail = EmailChannel("127.0.0.1", port, "a@example.com", ["b@example.com"])
    errors = Alerter([hook, mail]).notify(FAILURE)
    assert len(errors) == 1 and isinstance(errors[0], AlertError)
    assert "HTTP 404" in str(errors[0]) and "secret-token-path" not in str(errors[0])
    assert len(inbox.messages) == 1  # the other channel still delivered


def test_smtp_down_is_an_alert_error_naming_the_server():
    channel = EmailChannel("127.0.0.1", 1, "a@example.com", ["b@example.com"], timeout=2)
    with pytest.raises(AlertError, match=r"127\.0\.0\.1:1"):
        channel.send(FAILURE)


def test_retry_alerts_are_opt_in_and_sla_alerts_name_the_sla(webhook_server):
    retry = Alert(
        AlertKind.RETRY, "customer_etl", "r_01", task_id="extract", attempt=1, error="timeout"
    )
    sla = Alert(
        AlertKind.SLA_MISS,
        "customer_etl",
        "r_02",
        logical_date=datetime(2024, 1, 3, 2, tzinfo=UTC),
        sla=timedelta(hours=3),
    )
    off = Alerter([WebhookChannel(webhook_server.url)])
    off.notify(retry)
    assert webhook_server.bodies == []
    on = Alerter([WebhookChannel(webhook_server.url)], on_retry=True)
    on.notify(retry)
    on.notify(sla)
    assert [b["headrace"]["kind"] for b in webhook_server.bodies] == ["retry", "sla_miss"]
    assert "missed its SLA" in webhook_server.bodies[1]["text"]
    assert "SLA: 3:00:00" in webhook_server.bodies[1]["text"]


def test_alerter_from_env_and_bad_urls():
    alerter = alerter_from_env(
        {
            "HEADRACE_ALERT_WEBHOOK_URL": "http://127.0.0.1:9/x",
            "HEADRACE_ALERT_SMTP_URL": "smtp://u:p%40ss@mail.example.com:587?from=a@x.com&starttls=1",
            "HEADRACE_ALERT_EMAIL_TO": "ops@x.com, data@x.com",
            "HEADRACE_ALERT_ON_RETRY": "yes",
            "HEADRACE_ALERT_ON_SLA_MISS": "0",
        }
    )
    mail = alerter.channels[1]
    assert isinstance(mail, EmailChannel)
    assert (mail.host, mail.port, mail.password, mail.starttls) == (
        "mail.example.com",
        587,
        "p@ss",
        True,
    )
    assert mail.recipients == ["ops@x.com", "data@x.com"]
    assert alerter.on_retry and alerter.on_failure and not alerter.on_sla_miss
    assert "p@ss" not in repr(mail)
    with pytest.raises(ConfigError, match=r"smtp://u:\*\*\*@h"):
        EmailChannel.from_url("smtp://u:secret@h")


def test_redact():
    assert redact("api_key=abc123 and TOKEN: xyz") == "api_key=*** and TOKEN: ***"
    assert redact("mysql://root:pw@127.0.0.1/db") == "mysql://root:***@127.0.0.1/db"
