"""Identifier quoting and connection URLs shared by every source and destination.

Values never go into SQL text: they are bound parameters. Identifiers (table, schema,
column names) cannot be bound, so they are quoted here, with embedded quote
characters doubled, which makes any name — however hostile — a single identifier.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from headrace.config import Settings, mask_url
from headrace.errors import ConfigError, ConnectorError, TransientError, did_you_mean

#: URL schemes headrace understands, and the backend each one names.
SCHEMES: dict[str, str] = {
    "postgresql": "postgresql",
    "postgres": "postgresql",
    "postgresql+psycopg": "postgresql",
    "postgresql+psycopg2": "postgresql",
    "mysql": "mysql",
    "mariadb": "mysql",
    "mysql+pymysql": "mysql",
    "sqlite": "sqlite",
    "duckdb": "duckdb",
    "s3": "s3",
    "snowflake": "snowflake",
    "files": "files",
    "files+s3": "files",
    "delta": "delta",
    "delta+s3": "delta",
    "iceberg+sqlite": "iceberg",
    "iceberg+postgresql": "iceberg",
    "iceberg+postgres": "iceberg",
}


def quote_ident(name: str, dialect: str = "postgresql") -> str:
    """Quote one identifier for ``dialect`` (``postgresql``, ``duckdb``, ``sqlite``, ``mysql``).

    Args:
        name: the raw name, any characters.
        dialect: the SQL dialect; MySQL uses backticks, the others double quotes.

    Returns:
        The quoted identifier, safe to place in SQL text.
    """
    if not isinstance(name, str) or not name:
        raise ConnectorError(f"Identifier must be a non-empty string, got {name!r}.")
    if "\x00" in name:
        raise ConnectorError(f"Identifier {name!r} contains a NUL character; rename it.")
    if dialect == "mysql":
        return "`" + name.replace("`", "``") + "`"
    return '"' + name.replace('"', '""') + '"'


def qualified(table: str, schema: str | None, dialect: str = "postgresql") -> str:
    """``"schema"."table"`` (or just ``"table"``), each part quoted."""
    if schema:
        return f"{quote_ident(schema, dialect)}.{quote_ident(table, dialect)}"
    return quote_ident(table, dialect)


@dataclass(frozen=True)
class ConnectionURL:
    """A parsed connection URL: which backend, the URL to hand the driver, and options.

    Args:
        backend: ``postgresql``, ``mysql``, ``sqlite`` or ``duckdb``.
        url: the URL as the driver wants it (headrace-only query options removed).
        options: headrace-only options taken from the query string (``schema``,
            ``memory_limit``, ``preserve_order``, ``vacuum_after``, ``compression`` for DuckDB).
    """

    backend: str
    url: str
    options: dict[str, str]

    @property
    def masked(self) -> str:
        """The URL with its password hidden: the only form used in messages."""
        return mask_url(self.url)

    @property
    def path(self) -> str:
        """The file path of a ``sqlite:///`` or ``duckdb:///`` URL (``:memory:`` stays)."""
        parts = urlsplit(self.url)
        raw = self.url.split("://", 1)[1]
        if raw.startswith("/"):
            raw = raw[1:]  # sqlite:///rel.db -> rel.db ; sqlite:////abs.db -> /abs.db
        path = raw.split("?", 1)[0] if parts.query else raw
        return path or ":memory:"

    @classmethod
    def parse(cls, url: str) -> ConnectionURL:
        """Parse ``url``; an unknown scheme is a :class:`ConfigError` suggesting the closest."""
        if "://" not in url:
            raise ConfigError(
                f"Connection URL {mask_url(url)!r} has no scheme; expected one of "
                f"{', '.join(sorted(set(SCHEMES)))} (e.g. postgresql://user@host/db)."
            )
        scheme = url.split("://", 1)[0].lower()
        backend = SCHEMES.get(scheme)
        if backend is None:
            raise ConfigError(
                f"Unknown connection scheme {scheme!r} in {mask_url(url)!r}."
                + did_you_mean(scheme, SCHEMES)
            )
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        options: dict[str, str] = {
            k: query.pop(k)
            for k in ("schema", "memory_limit", "preserve_order", "vacuum_after", "compression")
            if k in query
        }
        clean_scheme = {"postgresql": "postgresql", "mysql": "mysql"}.get(backend, scheme)
        driver_url = urlunsplit(
            (clean_scheme, parts.netloc, parts.path, urlencode(query), parts.fragment)
        )
        if backend in ("sqlite", "duckdb"):
            driver_url = url.split("?", 1)[0] if options else url
        return cls(backend=backend, url=driver_url, options=options)


def resolve(url_or_name: str, settings: Settings | None = None) -> ConnectionURL:
    """Turn a connection name (``crm``) or a URL into a :class:`ConnectionURL`.

    Args:
        url_or_name: a URL with a scheme, or a connection name known to ``settings``.
        settings: where named connections live; needed only for names.
    """
    if "://" in url_or_name:
        return ConnectionURL.parse(url_or_name)
    if settings is None:
        raise ConfigError(
            f"{url_or_name!r} is not a URL and no settings were given to look the name up."
        )
    return ConnectionURL.parse(settings.connection(url_or_name))


def default_warehouse(settings: Settings) -> str:
    """The embedded DuckDB warehouse URL: ``duckdb:///<home>/warehouse.duckdb``."""
    return f"duckdb:///{Path(settings.home) / 'warehouse.duckdb'}"


class ConnectionFailedError(ConnectorError, TransientError):
    """A database could not be reached; a retry may help.

    Args:
        target: what was connected to, its password masked (``"PostgreSQL postgresql://u:***@h/db"``).
        reason: the driver's message (masked) and what to do.
        action: ``"connect to"`` or ``"open"`` (a database file).
        location: pipeline, task, table as for :class:`~headrace.errors.HeadraceError`.
    """

    def __init__(
        self, target: str, reason: str, *, action: str = "connect to", **location: Any
    ) -> None:
        self.target, self.reason = target, reason
        super().__init__(f"Cannot {action} {target}: {reason}", **location)


def driver_message(exc: BaseException, conn: ConnectionURL) -> str:
    """The driver's message with the connection's password masked out."""
    from urllib.parse import unquote, urlsplit

    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    password = urlsplit(conn.url).password
    if password:
        text = text.replace(password, "***").replace(unquote(password), "***")
    return text.replace(conn.url, conn.masked)
