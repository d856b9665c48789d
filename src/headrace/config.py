"""One configuration object, read once at the edge (CLI, web, worker, a script) and passed down.

Sources, later ones winning: ``headrace.toml`` in the working directory, then the
environment. Nothing below the edge reads the environment: the engine, executors
(task processes and remote workers included), alerts and the queue get a
:class:`Settings` (or one of its sections) from their caller.

Environment variables::

    HEADRACE_HOME, HEADRACE_STATE_URL
    HEADRACE_CONN_<NAME>=<url>            connections
    HEADRACE_POOL_<NAME>=<n>              pool sizes
    HEADRACE_REDIS_URL, HEADRACE_QUEUE_PREFIX
    HEADRACE_ALERT_WEBHOOK_URL, HEADRACE_ALERT_SMTP_URL, HEADRACE_ALERT_EMAIL_TO,
    HEADRACE_ALERT_ON_FAILURE, HEADRACE_ALERT_ON_RETRY, HEADRACE_ALERT_ON_SLA_MISS
    HEADRACE_LINEAGE_URL, HEADRACE_LINEAGE_NAMESPACE, HEADRACE_LINEAGE_TRANSPORT,
    HEADRACE_LINEAGE_FILE
    OPENLINEAGE_URL, OPENLINEAGE_ENDPOINT, OPENLINEAGE_API_KEY, OPENLINEAGE_NAMESPACE,
    OPENLINEAGE_CONFIG (a YAML file with a ``transport:`` section), OPENLINEAGE_DISABLED:
                                          the OpenLineage client's own variables, read here
    HEADRACE_STATSD_URL (udp://host:port), HEADRACE_METRICS_TAGS (k:v,k:v),
    HEADRACE_METRICS_PORT (Prometheus /metrics of a process without the web UI)
    HEADRACE_SPARK_MASTER

``headrace.toml`` has the same under ``[headrace]`` (home, state_url), ``[connections]``,
``[pools]``, ``[queue]`` (redis_url, prefix), ``[alerts]`` (webhook_url, smtp_url,
recipients, on_failure, on_retry, on_sla_miss), ``[lineage]`` (transport = http|file|console, url, endpoint, api_key, file, namespace,
queue_size, timeout), ``[metrics]`` (statsd, prefix, tags, port) and
``[spark]`` (master, and a ``[spark.conf]`` table).

URLs may hold passwords: :func:`mask_url` is the only way they are shown, and the
``repr``/``str`` of every section masks them.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from headrace.errors import ConfigError, did_you_mean

CONN_PREFIX = "HEADRACE_CONN_"
POOL_PREFIX = "HEADRACE_POOL_"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_QUEUE_PREFIX = "bull"  # BullMQ's own default, so Node producers need no option
DEFAULT_SPARK_MASTER = "local[*]"
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


@dataclass(frozen=True)
class QueueSettings:
    """Where the Redis job queue lives.

    Args:
        redis_url: ``redis://[user:password@]host:port/db``.
        prefix: first part of every Redis key (BullMQ's ``prefix`` option).
    """

    redis_url: str = DEFAULT_REDIS_URL
    prefix: str = DEFAULT_QUEUE_PREFIX

    def __repr__(self) -> str:
        return f"QueueSettings(redis_url={mask_url(self.redis_url)!r}, prefix={self.prefix!r})"


@dataclass(frozen=True)
class AlertSettings:
    """Where failure, retry and SLA-miss alerts go, and which kinds are sent.

    Args:
        webhook_url: POST target of a JSON alert (Slack-compatible), or None.
        smtp_url: ``smtp://user:password@host:port/?from=...``, or None.
        recipients: e-mail addresses (override the SMTP URL's ``to=``).
        on_failure / on_retry / on_sla_miss: which kinds are sent.
        sample_rows: include sample rows of failed checks (may hold personal data) in
            alerts; off unless opted in (``HEADRACE_ALERT_SAMPLE_ROWS=1``).
    """

    webhook_url: str | None = None
    smtp_url: str | None = None
    recipients: tuple[str, ...] = ()
    on_failure: bool = True
    on_retry: bool = False
    on_sla_miss: bool = True
    sample_rows: bool = False

    def __repr__(self) -> str:
        return (
            f"AlertSettings(webhook_url={mask_secret_url(self.webhook_url)!r}, "
            f"smtp_url={mask_secret_url(self.smtp_url)!r}, recipients={self.recipients!r}, "
            f"on_failure={self.on_failure}, on_retry={self.on_retry}, on_sla_miss={self.on_sla_miss}, "
            f"sample_rows={self.sample_rows})"
        )


LINEAGE_TRANSPORTS = ("http", "file", "console")


@dataclass(frozen=True)
class LineageSettings:
    """Where OpenLineage events go, or nowhere (``transport`` None and no ``url``).

    Args:
        url: the HTTP receiver's base URL (Marquez: ``http://host:5000``); implies ``http``.
        namespace: the OpenLineage namespace of headrace's jobs.
        transport: ``http``, ``file`` or ``console`` (default: ``http`` when ``url`` is set).
        endpoint: the HTTP path events are POSTed to.
        api_key: bearer token of the HTTP receiver.
        file: the file events are appended to (``file`` transport), one JSON a line.
        queue_size: events waiting to be sent at most; more are dropped (counted, warned once).
        timeout: seconds one HTTP send may take.
    """

    url: str | None = None
    namespace: str = "headrace"
    transport: str | None = None
    endpoint: str = "api/v1/lineage"
    api_key: str | None = None
    file: str | None = None
    queue_size: int = 1000
    timeout: float = 5.0

    @property
    def kind(self) -> str | None:
        """The transport in use, or None when lineage is off."""
        return self.transport or ("http" if self.url else None)

    def __repr__(self) -> str:
        return (
            f"LineageSettings(transport={self.kind!r}, url={mask_secret_url(self.url)!r}, "
            f"namespace={self.namespace!r}, file={self.file!r}, api_key={'***' if self.api_key else None})"
        )


@dataclass(frozen=True)
class MetricsSettings:
    """Where run and task metrics are pushed (StatsD/DogStatsD), besides Prometheus ``/metrics``.

    Args:
        statsd: ``udp://host:port`` of a StatsD or DogStatsD agent, or None.
        prefix: first part of every metric name.
        tags: DogStatsD tags added to every metric (``("env:prod",)``).
        port: the port a process that serves no web UI (``headrace stream``) serves
            Prometheus ``/metrics`` on (127.0.0.1), or None; the web UI serves its own.
    """

    statsd: str | None = None
    prefix: str = "headrace"
    tags: tuple[str, ...] = ()
    port: int | None = None


@dataclass(frozen=True)
class SparkSettings:
    """How Spark sessions are built for tasks that need one.

    Args:
        master: the Spark master URL (``local[*]``, ``spark://host:7077``, ``yarn``).
        conf: extra ``spark.*`` options.
    """

    master: str = DEFAULT_SPARK_MASTER
    conf: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Settings:
    """Everything headrace is configured with, read once at the edge and handed down.

    Args:
        home: folder for everything embedded (state database, staging, warehouse).
        state_url: SQLAlchemy URL of the run-state store.
        connections: connection name (lower case) to URL.
        pools: pool name (lower case) to the number of its tasks that may run at once,
            across runs (``[pools]`` in headrace.toml, ``HEADRACE_POOL_<NAME>=N``).
        queue: the Redis job queue (distributed executor, ``headrace worker``).
        alerts: alert channels and kinds.
        lineage: OpenLineage transport.
        metrics: StatsD/DogStatsD.
        spark: Spark sessions.

    Example:
        >>> settings = Settings.load()          # once, in the CLI or a script
        >>> runner = Runner(open_store(settings.state_url), settings=settings)
    """

    home: Path
    state_url: str
    connections: Mapping[str, str] = field(default_factory=dict)
    pools: Mapping[str, int] = field(default_factory=dict)
    queue: QueueSettings = field(default_factory=QueueSettings)
    alerts: AlertSettings = field(default_factory=AlertSettings)
    lineage: LineageSettings = field(default_factory=LineageSettings)
    spark: SparkSettings = field(default_factory=SparkSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)

    @classmethod
    def load(
        cls, cwd: str | Path | None = None, environ: Mapping[str, str] | None = None
    ) -> Settings:
        """Read ``headrace.toml`` (if present) and the environment: the edge's one read.

        Args:
            cwd: folder holding ``headrace.toml`` and the default home (default: the working directory).
            environ: the environment (default: ``os.environ``).

        Example:
            >>> Settings.load(environ={"HEADRACE_CONN_CRM": "sqlite:///crm.db"}).connection("crm")
            'sqlite:///crm.db'
        """
        folder = Path(cwd) if cwd is not None else Path.cwd()
        env = os.environ if environ is None else environ
        toml_path = folder / "headrace.toml"
        conf = _read_toml(toml_path)
        section = _table(conf, "headrace", toml_path)
        home = Path(env.get("HEADRACE_HOME") or section.get("home") or ".headrace")
        if not home.is_absolute():
            home = folder / home
        state_url = (
            env.get("HEADRACE_STATE_URL")
            or section.get("state_url")
            or f"sqlite:///{home / 'state.db'}"
        )
        return cls(
            home=home,
            state_url=state_url,
            connections=_connections(conf, env, toml_path),
            pools=_pools(conf, env, toml_path),
            queue=_queue(conf, env, toml_path),
            alerts=_alerts(conf, env, toml_path),
            lineage=_lineage(conf, env, toml_path),
            spark=_spark(conf, env, toml_path),
            metrics=_metrics(conf, env, toml_path),
        )

    #: The former name of :meth:`load`, kept for callers at the edge.
    from_env = load

    def connection(self, name: str) -> str:
        """The URL of connection ``name``; a clear error naming the variable to set."""
        try:
            return self.connections[name.lower()]
        except KeyError:
            raise ConfigError(
                f"unknown connection; set {CONN_PREFIX}{name.upper()}=<url> "
                f"or add it under [connections] in headrace.toml."
                + did_you_mean(name.lower(), self.connections),
                connection=name,
            ) from None

    def has_connection(self, name: str) -> bool:
        return name.lower() in self.connections

    # ------------------------------------------------------------------ handing down

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (secrets included: for task processes and workers only)."""
        return {
            "home": str(self.home),
            "state_url": self.state_url,
            "connections": dict(self.connections),
            "pools": dict(self.pools),
            "queue": {"redis_url": self.queue.redis_url, "prefix": self.queue.prefix},
            "alerts": {
                "webhook_url": self.alerts.webhook_url,
                "smtp_url": self.alerts.smtp_url,
                "recipients": list(self.alerts.recipients),
                "on_failure": self.alerts.on_failure,
                "on_retry": self.alerts.on_retry,
                "on_sla_miss": self.alerts.on_sla_miss,
            },
            "lineage": dataclasses.asdict(self.lineage),
            "spark": {"master": self.spark.master, "conf": dict(self.spark.conf)},
            "metrics": {
                "statsd": self.metrics.statsd,
                "prefix": self.metrics.prefix,
                "tags": list(self.metrics.tags),
                "port": self.metrics.port,
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Settings:
        """The inverse of :meth:`to_dict`."""
        alerts = dict(data.get("alerts") or {})
        alerts["recipients"] = tuple(alerts.get("recipients") or ())
        metrics = dict(data.get("metrics") or {})
        return cls(
            home=Path(data["home"]),
            state_url=data["state_url"],
            connections=dict(data.get("connections") or {}),
            pools={k: int(v) for k, v in (data.get("pools") or {}).items()},
            queue=QueueSettings(**(data.get("queue") or {})),
            alerts=AlertSettings(**alerts),
            lineage=LineageSettings(**(data.get("lineage") or {})),
            spark=SparkSettings(**(data.get("spark") or {})),
            metrics=MetricsSettings(**{**metrics, "tags": tuple(metrics.get("tags") or ())}),
        )

    def to_json(self) -> str:
        """:meth:`to_dict` as a JSON string (handed to a child process)."""
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> Settings:
        """The inverse of :meth:`to_json`; a :class:`ConfigError` when it is not that."""
        try:
            return cls.from_dict(json.loads(text))
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(
                f"handed-down settings are not valid: {type(exc).__name__}: {exc}"
            ) from exc

    def __repr__(self) -> str:
        connections = {name: mask_url(url) for name, url in self.connections.items()}
        return (
            f"Settings(home={str(self.home)!r}, state_url={mask_url(self.state_url)!r}, "
            f"connections={connections!r}, pools={dict(self.pools)!r}, queue={self.queue!r}, "
            f"alerts={self.alerts!r}, lineage={self.lineage!r}, spark={self.spark!r}, metrics={self.metrics!r})"
        )

    __str__ = __repr__


# ---------------------------------------------------------------------- reading


def _read_toml(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", path=str(path)) from exc


def _table(conf: Mapping[str, Any], name: str, path: Path) -> dict[str, Any]:
    value = conf.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"[{name}] must be a table, got {type(value).__name__}", path=str(path))
    return value


def _connections(conf: Mapping[str, Any], env: Mapping[str, str], path: Path) -> dict[str, str]:
    connections: dict[str, str] = {}
    for name, url in _table(conf, "connections", path).items():
        if not isinstance(url, str):
            raise ConfigError(
                f"connection {name!r} must be a URL string, got {type(url).__name__}",
                path=str(path),
            )
        connections[name.lower()] = url
    for key, url in env.items():
        if key.startswith(CONN_PREFIX) and url:
            connections[key[len(CONN_PREFIX) :].lower()] = url
    return connections


def _pools(conf: Mapping[str, Any], env: Mapping[str, str], path: Path) -> dict[str, int]:
    pools: dict[str, int] = {}
    for name, size in _table(conf, "pools", path).items():
        pools[name.lower()] = _pool_size(size, f"{path}: [pools] {name}")
    for key, size in env.items():
        if key.startswith(POOL_PREFIX) and size:
            pools[key[len(POOL_PREFIX) :].lower()] = _pool_size(size, key)
    return pools


def _queue(conf: Mapping[str, Any], env: Mapping[str, str], path: Path) -> QueueSettings:
    table = _table(conf, "queue", path)
    return QueueSettings(
        redis_url=env.get("HEADRACE_REDIS_URL") or table.get("redis_url") or DEFAULT_REDIS_URL,
        prefix=env.get("HEADRACE_QUEUE_PREFIX") or table.get("prefix") or DEFAULT_QUEUE_PREFIX,
    )


def _alerts(conf: Mapping[str, Any], env: Mapping[str, str], path: Path) -> AlertSettings:
    table = _table(conf, "alerts", path)
    raw_to: Any = env.get("HEADRACE_ALERT_EMAIL_TO") or table.get("recipients") or ()
    recipients = raw_to.split(",") if isinstance(raw_to, str) else list(raw_to)

    def flag(name: str, key: str, default: bool) -> bool:
        value = env.get(name)
        if value is None or value == "":
            value = table.get(key, default)
        return _flag(value, f"{name} / [alerts] {key}")

    return AlertSettings(
        webhook_url=env.get("HEADRACE_ALERT_WEBHOOK_URL") or table.get("webhook_url") or None,
        smtp_url=env.get("HEADRACE_ALERT_SMTP_URL") or table.get("smtp_url") or None,
        recipients=tuple(a.strip() for a in recipients if str(a).strip()),
        on_failure=flag("HEADRACE_ALERT_ON_FAILURE", "on_failure", True),
        on_retry=flag("HEADRACE_ALERT_ON_RETRY", "on_retry", False),
        on_sla_miss=flag("HEADRACE_ALERT_ON_SLA_MISS", "on_sla_miss", True),
        sample_rows=flag("HEADRACE_ALERT_SAMPLE_ROWS", "sample_rows", False),
    )


def alert_settings_from_env(environ: Mapping[str, str]) -> AlertSettings:
    """The ``alerts`` section from environment variables alone (no headrace.toml)."""
    return _alerts({}, environ, Path("headrace.toml"))


def _lineage(conf: Mapping[str, Any], env: Mapping[str, str], path: Path) -> LineageSettings:
    """[lineage], then OpenLineage's own variables (OPENLINEAGE_CONFIG first), then ours."""
    table = dict(_table(conf, "lineage", path))
    table.update(_openlineage_env(env))
    ours = {
        "url": "HEADRACE_LINEAGE_URL",
        "namespace": "HEADRACE_LINEAGE_NAMESPACE",
        "transport": "HEADRACE_LINEAGE_TRANSPORT",
        "file": "HEADRACE_LINEAGE_FILE",
    }
    table.update({key: env[name] for key, name in ours.items() if env.get(name)})
    if _flag(env.get("OPENLINEAGE_DISABLED") or False, "OPENLINEAGE_DISABLED"):
        return LineageSettings(namespace=table.get("namespace") or "headrace")
    known = {f.name for f in dataclasses.fields(LineageSettings)}
    unknown = set(table) - known
    if unknown:
        raise ConfigError(
            f"[lineage] has unknown key(s) {sorted(unknown)}; known: {sorted(known)}",
            path=str(path),
        )
    settings = LineageSettings(**{k: v for k, v in table.items() if v not in (None, "")})
    if settings.kind not in (None, *LINEAGE_TRANSPORTS):
        raise ConfigError(
            f"[lineage] transport must be one of {LINEAGE_TRANSPORTS}, got {settings.kind!r}"
        )
    if settings.kind == "file" and not settings.file:
        raise ConfigError("[lineage] transport = 'file' needs file = <path>")
    return settings


def _openlineage_env(env: Mapping[str, str]) -> dict[str, Any]:
    """The OpenLineage client's variables as [lineage] keys: OPENLINEAGE_CONFIG's YAML
    ``transport`` section, then OPENLINEAGE_URL / _ENDPOINT / _API_KEY / _NAMESPACE."""
    found: dict[str, Any] = {}
    config_file = env.get("OPENLINEAGE_CONFIG")
    if config_file:
        from headrace.extras import require

        yaml = require("lineage", "yaml", "OPENLINEAGE_CONFIG (a YAML file)")
        try:
            data = yaml.safe_load(Path(config_file).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"OPENLINEAGE_CONFIG={config_file}: cannot read it: {exc}") from exc
        transport = data.get("transport") or {}
        kind = transport.get("type")
        found["transport"] = kind
        if kind == "http":
            found["url"] = transport.get("url")
            found["endpoint"] = transport.get("endpoint") or "api/v1/lineage"
            auth = transport.get("auth") or {}
            found["api_key"] = auth.get("apiKey") or auth.get("api_key")
            if transport.get("timeout"):
                found["timeout"] = float(transport["timeout"])
        elif kind == "file":
            found["file"] = transport.get("log_file_path")
    names = {
        "url": "OPENLINEAGE_URL",
        "endpoint": "OPENLINEAGE_ENDPOINT",
        "api_key": "OPENLINEAGE_API_KEY",
        "namespace": "OPENLINEAGE_NAMESPACE",
    }
    found.update({key: env[name] for key, name in names.items() if env.get(name)})
    if env.get("OPENLINEAGE_URL") and not env.get("HEADRACE_LINEAGE_TRANSPORT"):
        found["transport"] = "http"
    return {k: v for k, v in found.items() if v not in (None, "")}


def _metrics(conf: Mapping[str, Any], env: Mapping[str, str], path: Path) -> MetricsSettings:
    table = _table(conf, "metrics", path)
    raw_tags: Any = env.get("HEADRACE_METRICS_TAGS") or table.get("tags") or ()
    tags = raw_tags.split(",") if isinstance(raw_tags, str) else list(raw_tags)
    statsd = env.get("HEADRACE_STATSD_URL") or table.get("statsd") or None
    if statsd is not None and not str(statsd).startswith("udp://"):
        raise ConfigError(f"[metrics] statsd must be udp://host:port, got {statsd!r}")
    raw_port = env.get("HEADRACE_METRICS_PORT") or table.get("port") or None
    try:
        port = int(raw_port) if raw_port is not None else None
    except (TypeError, ValueError):
        port = -1
    if port is not None and not 0 < port < 65536:
        raise ConfigError(
            f"[metrics] port / HEADRACE_METRICS_PORT must be a port number (1-65535), got {raw_port!r}"
        )
    return MetricsSettings(
        statsd=statsd,
        prefix=table.get("prefix") or "headrace",
        tags=tuple(str(t).strip() for t in tags if str(t).strip()),
        port=port,
    )


def _spark(conf: Mapping[str, Any], env: Mapping[str, str], path: Path) -> SparkSettings:
    table = _table(conf, "spark", path)
    extra = table.get("conf", {})
    if not isinstance(extra, dict):
        raise ConfigError(
            f"[spark.conf] must be a table, got {type(extra).__name__}", path=str(path)
        )
    return SparkSettings(
        master=env.get("HEADRACE_SPARK_MASTER") or table.get("master") or DEFAULT_SPARK_MASTER,
        conf={str(k): str(v) for k, v in extra.items()},
    )


def _flag(value: object, where: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError(f"{where}: expected true/false (1/0, yes/no, on/off), got {value!r}")


def _pool_size(value: object, where: str) -> int:
    """A pool size: an integer >= 1 (a string of digits from the environment)."""
    try:
        size = int(value) if isinstance(value, int | str) and not isinstance(value, bool) else 0
    except ValueError:
        size = 0
    if size < 1:
        raise ConfigError(f"{where}: a pool size must be an integer >= 1, got {value!r}")
    return size


_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@]*:)(?P<pw>[^@]*)(?P<tail>@)")
_AFTER_HOST = re.compile(r"^(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^/?#]*)(?P<rest>[/?#].*)$")


def mask_url(url: str) -> str:
    """Hide the password of a URL: ``postgresql://u:***@h/db``."""
    return _PASSWORD.sub(lambda m: f"{m['head']}***{m['tail']}", url)


def mask_secret_url(url: str | None) -> str | None:
    """Hide the password and everything after the host (webhook tokens live in the path)."""
    if url is None:
        return None
    masked = mask_url(url)
    match = _AFTER_HOST.match(masked)
    return f"{match['head']}/***" if match and match["rest"] not in ("", "/") else masked
