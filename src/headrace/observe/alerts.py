"""Alerts on task failure, on retry (opt-in) and on SLA miss, by email and webhook.

An :class:`Alert` names the pipeline, run, logical date, task and error. Channels
deliver it: :class:`EmailChannel` over SMTP (:mod:`smtplib`) and
:class:`WebhookChannel` as Slack-compatible JSON (``{"text": ..., "blocks": [...]}``),
which Slack, Mattermost, Rocket.Chat and most chat tools accept. An
:class:`Alerter` decides which kinds are sent and fans out to every channel.

Secrets never reach a message: every text goes through the process-wide
:class:`headrace.masking.Masker` (known secret values, URL passwords,
``password=``/``token=`` pairs). Sample rows of failed expectations (which may hold
personal data such as e-mail addresses) are left out unless ``sample_rows`` is set
(``HEADRACE_ALERT_SAMPLE_ROWS=1``).
A channel that cannot deliver never breaks the run that raised the alert: the
failure is logged (without the webhook URL, which is itself a secret) and returned.

Example:
    >>> alerter = Alerter([WebhookChannel("https://hooks.slack.com/services/T/B/X")])
    >>> alerter.wants(AlertKind.RETRY)
    False
"""

from __future__ import annotations

import json
import logging
import re
import smtplib
import ssl
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from email.message import EmailMessage
from enum import StrEnum
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from headrace.config import AlertSettings, alert_settings_from_env, mask_url
from headrace.errors import ConfigError, HeadraceError
from headrace.masking import MASKER

__all__ = [
    "Alert",
    "AlertChannel",
    "AlertError",
    "AlertKind",
    "Alerter",
    "EmailChannel",
    "WebhookChannel",
    "alerter_from_env",
    "alerter_from_settings",
    "redact",
]

log = logging.getLogger(__name__)

#: A sample line of a failed expectation in an error text (headrace.quality.check_results).
_SAMPLE_LINE = re.compile(r"(?m)^(?P<indent>[ \t]*)sample: .*$")
_MAX_ERROR_CHARS = 2000  # a traceback tail is enough; chat tools truncate anyway


def redact(text: str) -> str:
    """Hide passwords in URLs and ``key=value`` secrets in ``text``.

    Example:
        >>> redact("connect postgresql://etl:hunter2@db/x failed; token=abc")
        'connect postgresql://etl:***@db/x failed; token=***'
    """
    return MASKER.mask(text)


def hide_samples(text: str) -> str:
    """Replace the sample rows of failed expectations in an error text with a note."""
    return _SAMPLE_LINE.sub(
        lambda m: f"{m['indent']}sample rows hidden (HEADRACE_ALERT_SAMPLE_ROWS=1 includes them)",
        text,
    )


class AlertError(HeadraceError):
    """An alert channel could not deliver an alert.

    Args:
        channel: the channel (``"email"``, ``"webhook"``).
        target: where it was sent (the SMTP server or webhook host).
        problem: what went wrong and what to check.
        location: pipeline, task, run_id of the alert as for :class:`HeadraceError`.
    """

    def __init__(self, channel: str, target: str, problem: str, **location: Any) -> None:
        self.channel, self.target, self.problem = channel, target, problem
        super().__init__(f"{channel} alert not delivered to {target}: {problem}", **location)


class AlertKind(StrEnum):
    FAILURE = "failure"
    RETRY = "retry"
    SLA_MISS = "sla_miss"


_TITLES = {
    AlertKind.FAILURE: "failed",
    AlertKind.RETRY: "is being retried",
    AlertKind.SLA_MISS: "missed its SLA",
}


@dataclass(frozen=True)
class Alert:
    """What happened, to which pipeline, run and task.

    Args:
        kind: failure, retry or sla_miss.
        pipeline: pipeline name.
        run_id: the run's id (None only when no run exists yet).
        logical_date: the run's logical date.
        task_id: the task concerned, if any.
        error: the error text (redacted before it is sent).
        attempt: attempt number for failures and retries.
        sla: the SLA that was missed.
        detail: one more line for the reader (e.g. what to do).
    """

    kind: AlertKind
    pipeline: str
    run_id: str | None = None
    logical_date: datetime | None = None
    task_id: str | None = None
    error: str | None = None
    attempt: int | None = None
    sla: timedelta | None = None
    detail: str | None = None
    sample_rows: bool = False

    @property
    def subject(self) -> str:
        """One line: ``[headrace] customer_etl.load failed (run r1, 2024-01-01)``."""
        what = f"{self.pipeline}.{self.task_id}" if self.task_id else self.pipeline
        where = ", ".join(
            part
            for part in (
                f"run {self.run_id}" if self.run_id else "",
                self.logical_date.isoformat() if self.logical_date else "",
            )
            if part
        )
        return redact(f"[headrace] {what} {_TITLES[self.kind]}" + (f" ({where})" if where else ""))

    def fields(self) -> list[tuple[str, str]]:
        """The labelled facts of the alert, redacted, in display order."""
        rows: list[tuple[str, Any]] = [
            ("Pipeline", self.pipeline),
            ("Run", self.run_id),
            ("Logical date", self.logical_date.isoformat() if self.logical_date else None),
            ("Task", self.task_id),
            ("Attempt", self.attempt),
            ("SLA", str(self.sla) if self.sla is not None else None),
        ]
        return [(label, redact(str(value))) for label, value in rows if value is not None]

    @property
    def error_text(self) -> str | None:
        if not self.error:
            return None
        text = redact(self.error if self.sample_rows else hide_samples(self.error))
        if len(text) > _MAX_ERROR_CHARS:
            text = "…" + text[-_MAX_ERROR_CHARS:]
        return text

    @property
    def text(self) -> str:
        """The plain-text body: subject, facts, error, detail."""
        lines = [self.subject, ""]
        lines += [f"{label}: {value}" for label, value in self.fields()]
        if self.error_text:
            lines += ["", "Error:", self.error_text]
        if self.detail:
            lines += ["", redact(self.detail)]
        return "\n".join(lines)


class AlertChannel(Protocol):
    """Somewhere alerts go. ``send`` raises :class:`AlertError` when it cannot deliver."""

    name: str

    def send(self, alert: Alert) -> None: ...


@dataclass
class EmailChannel:
    """Send alerts as plain-text email over SMTP.

    Args:
        host: SMTP server.
        port: SMTP port (25, 587 with starttls, 465 with use_ssl).
        sender: From address.
        recipients: To addresses.
        username: login user, if the server needs one.
        password: login password (never shown).
        starttls: upgrade the connection with STARTTLS before login.
        use_ssl: connect over TLS from the start (port 465).
        timeout: seconds for connect and each command.
    """

    host: str
    port: int
    sender: str
    recipients: Sequence[str]
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    starttls: bool = False
    use_ssl: bool = False
    timeout: float = 10.0
    name: str = "email"

    @classmethod
    def from_url(cls, url: str, recipients: Sequence[str] | None = None) -> EmailChannel:
        """Build from ``smtp://user:pass@host:587?from=a@x&to=b@y,c@z&starttls=1``.

        ``smtps://`` connects over TLS. ``recipients`` overrides ``to=``.
        """
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ConfigError(
                f"Invalid SMTP URL {mask_url(url)!r}: expected smtp://[user:password@]host[:port]?from=...&to=..."
            )
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        to = list(recipients) if recipients else [a for a in query.get("to", "").split(",") if a]
        sender = query.get("from", "")
        if not to or not sender:
            raise ConfigError(
                f"SMTP URL {mask_url(url)!r} needs from= and to= (comma-separated) query values."
            )
        use_ssl = parts.scheme == "smtps"
        return cls(
            host=parts.hostname,
            port=parts.port or (465 if use_ssl else 25),
            sender=sender,
            recipients=to,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            starttls=query.get("starttls", "").lower() in ("1", "true", "yes"),
            use_ssl=use_ssl,
        )

    def message(self, alert: Alert) -> EmailMessage:
        """The email for ``alert``."""
        msg = EmailMessage()
        msg["Subject"] = alert.subject
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.recipients)
        msg["X-Headrace-Alert"] = alert.kind.value
        msg.set_content(alert.text)
        return msg

    def send(self, alert: Alert) -> None:
        """Deliver ``alert``; AlertError naming the server on failure."""
        try:
            smtp: smtplib.SMTP
            if self.use_ssl:
                smtp = smtplib.SMTP_SSL(
                    self.host, self.port, timeout=self.timeout, context=ssl.create_default_context()
                )
            else:
                smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            with smtp:
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self.username:
                    smtp.login(self.username, self.password or "")
                smtp.send_message(self.message(alert))
        except (OSError, smtplib.SMTPException) as exc:
            raise AlertError(
                "email",
                f"SMTP {self.host}:{self.port}",
                f"{redact(str(exc))}. Check the SMTP settings (HEADRACE_ALERT_SMTP_URL).",
                pipeline=alert.pipeline,
                task=alert.task_id,
                run_id=alert.run_id,
            ) from exc


@dataclass
class WebhookChannel:
    """POST alerts as Slack-compatible JSON.

    Args:
        url: the webhook URL (treated as a secret: only its host is ever shown).
        timeout: seconds per request.
        retries: extra attempts on connection errors and 5xx/429 answers.
        headers: extra HTTP headers (e.g. an Authorization header).
    """

    url: str = field(repr=False)
    timeout: float = 10.0
    retries: int = 2
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    name: str = "webhook"

    @property
    def host(self) -> str:
        return urlsplit(self.url).netloc.rsplit("@", 1)[-1] or "?"

    def payload(self, alert: Alert) -> dict[str, Any]:
        """The JSON body: ``text`` for any Slack-compatible tool, ``blocks`` for Slack's layout."""
        fields = [
            {"type": "mrkdwn", "text": f"*{label}:*\n{value}"} for label, value in alert.fields()
        ]
        blocks: list[dict[str, Any]] = [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*{alert.subject}*"}},
            {"type": "section", "fields": fields[:10]},  # Slack allows 10 fields per section
        ]
        if alert.error_text:
            blocks.append(
                {"type": "section", "text": {"type": "mrkdwn", "text": f"```{alert.error_text}```"}}
            )
        return {
            "text": alert.text,
            "blocks": blocks,
            "headrace": {
                "kind": alert.kind.value,
                "pipeline": alert.pipeline,
                "run_id": alert.run_id,
                "task_id": alert.task_id,
                "logical_date": alert.logical_date.isoformat() if alert.logical_date else None,
                "error": alert.error_text,
            },
        }

    def send(self, alert: Alert) -> None:
        """Deliver ``alert``; AlertError naming the host (never the full URL) on failure."""
        body = json.dumps(self.payload(alert)).encode()
        headers = {"Content-Type": "application/json", **self.headers}
        problem = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(min(0.5 * 2 ** (attempt - 1), 5.0))
            status, text, problem = _post(self.url, body, headers, self.timeout)
            if problem:
                problem = redact(problem).replace(self.url, self.host)
                continue
            if status < 300:
                return
            problem = f"HTTP {status} {text[:200]!r}"
            if status != 429 and status < 500:
                break  # a 4xx other than rate limiting will not pass by retrying
        raise AlertError(
            "webhook",
            self.host,
            f"{problem}. Check the webhook URL (HEADRACE_ALERT_WEBHOOK_URL).",
            pipeline=alert.pipeline,
            task=alert.task_id,
            run_id=alert.run_id,
        )


@dataclass
class Alerter:
    """Which alerts to send, and where.

    Args:
        channels: where alerts go; each alert goes to all of them.
        on_failure: send when a task fails for good (after its last retry).
        on_retry: send when a task fails and will be retried (opt-in; can be noisy).
        on_sla_miss: send when a run misses its SLA.
        sample_rows: include sample rows of failed expectations in the error text
            (opt-in: they may hold personal data).
    """

    channels: Sequence[AlertChannel] = ()
    on_failure: bool = True
    on_retry: bool = False
    on_sla_miss: bool = True
    sample_rows: bool = False

    def wants(self, kind: AlertKind) -> bool:
        """Whether alerts of ``kind`` are sent."""
        return {
            AlertKind.FAILURE: self.on_failure,
            AlertKind.RETRY: self.on_retry,
            AlertKind.SLA_MISS: self.on_sla_miss,
        }[kind]

    def notify(self, alert: Alert) -> list[AlertError]:
        """Send ``alert`` on every channel if its kind is wanted.

        Returns:
            The errors of channels that could not deliver (also logged); empty when
            all delivered or the kind is switched off. Never raises: an alert must not
            fail the run it reports on.
        """
        if not self.wants(alert.kind):
            return []
        alert = self.prepare(alert)
        errors: list[AlertError] = []
        for channel in self.channels:
            try:
                channel.send(alert)
            except AlertError as exc:
                log.warning("%s", exc)
                errors.append(exc)
            except Exception as exc:  # a third-party channel must not break the caller either
                err = AlertError(
                    channel.name,
                    type(channel).__name__,
                    f"{type(exc).__name__}: {redact(str(exc))}",
                    pipeline=alert.pipeline,
                    task=alert.task_id,
                    run_id=alert.run_id,
                )
                log.warning("%s", err)
                errors.append(err)
        return errors

    def prepare(self, alert: Alert) -> Alert:
        """The alert as the channels get it: sample rows included only when opted in."""
        return replace(alert, sample_rows=self.sample_rows)

    def with_channels(self, channels: Iterable[AlertChannel]) -> Alerter:
        return replace(self, channels=list(channels))


def alerter_from_settings(alerts: AlertSettings) -> Alerter:
    """Build the alerter from the ``alerts`` section of the settings read at the edge.

    Example:
        >>> alerter_from_settings(AlertSettings(on_retry=True)).on_retry
        True
    """
    channels: list[AlertChannel] = []
    if alerts.webhook_url:
        channels.append(WebhookChannel(alerts.webhook_url))
    if alerts.smtp_url:
        channels.append(
            EmailChannel.from_url(alerts.smtp_url, recipients=list(alerts.recipients) or None)
        )
    return Alerter(
        channels=channels,
        on_failure=alerts.on_failure,
        on_retry=alerts.on_retry,
        on_sla_miss=alerts.on_sla_miss,
        sample_rows=alerts.sample_rows,
    )


def alerter_from_env(environ: Mapping[str, str]) -> Alerter:
    """Build the alerter from environment variables only (see :mod:`headrace.config`).

    Kept for callers at the edge; prefer ``alerter_from_settings(settings.alerts)``.
    Variables: ``HEADRACE_ALERT_WEBHOOK_URL``, ``HEADRACE_ALERT_SMTP_URL``
    (see :meth:`EmailChannel.from_url`), ``HEADRACE_ALERT_EMAIL_TO`` (comma-separated,
    overrides ``to=``), ``HEADRACE_ALERT_ON_RETRY`` (default off),
    ``HEADRACE_ALERT_ON_FAILURE`` and ``HEADRACE_ALERT_ON_SLA_MISS`` (default on),
    ``HEADRACE_ALERT_SAMPLE_ROWS`` (default off).

    Example:
        >>> alerter_from_env({"HEADRACE_ALERT_ON_RETRY": "1"}).on_retry
        True
    """
    return alerter_from_settings(alert_settings_from_env(environ))


def _post(
    url: str, body: bytes, headers: Mapping[str, str], timeout: float
) -> tuple[int, str, str]:
    """POST ``body`` to ``url`` with the standard library (the core install has no HTTP client).

    A redirect is an answer, not a detour: the POST is never re-sent elsewhere.

    Returns:
        The status and the response text, or (0, "", the problem) when nothing was answered.
    """
    # Imported here: the engine imports this module in every task process, and
    # urllib.request is only needed when a webhook is actually sent.
    import http.client
    import urllib.error
    import urllib.request

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    headers = dict(headers)
    parts = urlsplit(url)
    if parts.username is not None:  # user:password@host is HTTP basic authentication
        import base64

        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        headers.setdefault("Authorization", "Basic " + base64.b64encode(pair).decode())
        url = parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]).geturl()
    opener = urllib.request.build_opener(NoRedirect)
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with opener.open(request, timeout=timeout) as response:
            return response.status, response.read(4096).decode("utf-8", "replace"), ""
    except urllib.error.HTTPError as exc:  # an answer with a status of 300 or more
        with exc:
            return exc.code, exc.read(4096).decode("utf-8", "replace"), ""
    except (OSError, http.client.HTTPException, ValueError) as exc:  # URLError is an OSError
        return 0, "", f"{type(exc).__name__}: {exc}"
