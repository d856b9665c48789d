"""Secrets masked where text is written: the one place that knows what a secret looks like.

A :class:`Masker` hides three kinds of secret in any text:

* known secret values (connection passwords from :class:`headrace.config.Settings`,
  configured tokens, Variables marked secret), in plain and URL-encoded form, as whole
  tokens (not inside a longer run of letters and digits);
* the password of any URL (``postgresql://etl:***@db/x``);
* ``password=...``/``token: ...`` style pairs.

The state store masks logs, errors and results with it before it writes them, alerts
mask their text with it, the CLI masks everything it prints and the web UI everything
it serves. Values reach the process-wide masker (:data:`MASKER`) through
:func:`register_secret` (the hook for extra secrets, e.g. Variables marked secret),
:func:`register_settings` (called where Settings are read: the CLI, the Runner) and
:func:`register_environ`.

Example:
    >>> masker = Masker(["hunter2"])
    >>> masker.mask("connect postgresql://etl:hunter2@db/x failed: bad password hunter2")
    'connect postgresql://etl:***@db/x failed: bad password ***'
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any, Protocol
from urllib.parse import quote, unquote, urlsplit

__all__ = [
    "MASK",
    "MASKER",
    "Masker",
    "mask",
    "mask_value",
    "register_environ",
    "register_secret",
    "register_settings",
    "url_password",
]

#: What a secret becomes.
MASK = "***"
#: Shorter known values are masked only inside URLs and key=value pairs: masking every
#: "ab" in every log line would destroy the logs and protect nothing.
MIN_LENGTH = 4
_URL_PASSWORD = re.compile(
    r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)(?P<pw>[^@\s]*)(?P<tail>@)"
)
_SECRET_PAIR = re.compile(
    r"(?i)(?P<key>\b(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key)\b\s*[=:]\s*)"
    r"(?P<value>[^\s&;,'\"]+)"
)
#: Environment variables whose values are secrets (read at the edge by register_environ).
_SECRET_NAME = re.compile(r"(?i)^HEADRACE_.*(PASSWORD|TOKEN|SECRET|API_KEY|WEBHOOK_URL)$")


class _HasConnections(Protocol):
    @property
    def state_url(self) -> str: ...

    @property
    def connections(self) -> Mapping[str, str]: ...


def url_password(url: str) -> str | None:
    """The (decoded) password of a URL, or None.

    Example:
        >>> url_password("postgresql://etl:p%40ss@db/x")
        'p@ss'
    """
    try:
        password = urlsplit(url).password
    except ValueError:
        return None
    return unquote(password) if password else None


class Masker:
    """Replaces known secret values, URL passwords and ``key=value`` secrets with ``***``.

    Thread-safe; adding values rebuilds one compiled pattern.

    Args:
        values: secret values known from the start.
    """

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self.add(*values)

    def add(self, *values: str | None) -> None:
        """Know more secret values (empty and very short ones are ignored, see MIN_LENGTH)."""
        fresh = {v for v in values if isinstance(v, str) and len(v) >= MIN_LENGTH} - self._values
        if not fresh:
            return
        with self._lock:
            self._values |= fresh
            forms = {form for v in self._values for form in (v, quote(v, safe=""), quote(v))}
            # Longest first, so a secret that contains another is masked whole. Only whole
            # tokens: a password "postgres" hides "u:postgres@h" and "pw postgres", not
            # the word "postgresql" (a short secret must not blank out ordinary words).
            alternatives = sorted(forms, key=len, reverse=True)
            self._pattern = re.compile(
                r"(?<![A-Za-z0-9])(?:"
                + "|".join(re.escape(f) for f in alternatives)
                + r")(?![A-Za-z0-9])"
            )

    @property
    def values(self) -> frozenset[str]:
        """The known secret values."""
        return frozenset(self._values)

    def mask(self, text: str) -> str:
        """``text`` with every secret replaced by ``***``."""
        if not text:
            return text
        pattern = self._pattern
        if pattern is not None:
            text = pattern.sub(MASK, text)
        if "://" in text:
            text = _URL_PASSWORD.sub(lambda m: f"{m['head']}{MASK}{m['tail']}", text)
        return _SECRET_PAIR.sub(lambda m: f"{m['key']}{MASK}", text)

    def mask_value(self, value: Any) -> Any:
        """A JSON-like value (str, list, dict, scalars) with its strings masked."""
        if isinstance(value, str):
            return self.mask(value)
        if isinstance(value, dict):
            return {
                self.mask(k) if isinstance(k, str) else k: self.mask_value(v)
                for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return type(value)(self.mask_value(v) for v in value)
        return value


#: The process-wide masker the state store, alerts, the CLI and the web use.
MASKER = Masker()


def mask(text: str) -> str:
    """Mask ``text`` with the process-wide masker."""
    return MASKER.mask(text)


def mask_value(value: Any) -> Any:
    """Mask the strings of a JSON-like value with the process-wide masker."""
    return MASKER.mask_value(value)


def register_secret(*values: str | None) -> None:
    """Add secret values to the process-wide masker (e.g. a Variable marked secret).

    Example:
        >>> register_secret("s3cr3t-token")
        >>> mask("token is s3cr3t-token")
        'token is ***'
    """
    MASKER.add(*values)


def register_settings(settings: _HasConnections) -> None:
    """Add the passwords of the state store URL and every connection URL."""
    urls = [settings.state_url, *settings.connections.values()]
    MASKER.add(*(url_password(url) for url in urls if url))


def register_environ(environ: Mapping[str, str]) -> None:
    """Add configured tokens: ``HEADRACE_*`` variables named like secrets, and URL passwords.

    Read at the edge (CLI, web, worker), like every other setting.
    """
    for key, value in environ.items():
        if not key.startswith("HEADRACE_") or not value:
            continue
        if _SECRET_NAME.match(key):
            MASKER.add(value)
        if "://" in value:
            MASKER.add(url_password(value))
