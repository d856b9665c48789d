"""What every tool of the MCP server reads: settings, the store, limits, and the masking of secrets."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from headrace.config import Settings, mask_url
from headrace.masking import MASKER
from headrace.state.store_base import StateStore

_SECRET_PAIR = re.compile(
    r"(?i)(?P<key>\b(?:password|passwd|pwd|secret|token|api[_-]?key)\b\s*[=:]\s*)(?P<value>[^\s&;,'\"]+)"
)


def known_secrets(settings: Settings, extra: Iterable[str] = ()) -> list[str]:
    """Passwords of the configured connections and state store, plus ``extra`` values.

    Returns:
        Each secret in plain and URL-decoded form, longest first, at least 4 characters.
    """
    found: set[str] = set()
    for url in [settings.state_url, *settings.connections.values()]:
        try:
            password = urlsplit(url).password
        except ValueError:
            password = None
        if password:
            found.update({password, unquote(password), quote(password, safe="")})
    found.update(s for s in extra if s)
    return sorted((s for s in found if len(s) >= 4), key=len, reverse=True)


def mask_secrets(text: str, secrets: Iterable[str]) -> str:
    """``text`` with URL passwords, ``password=...`` pairs and known secret values hidden.

    The one masking function of the MCP server: the server's own known values (its
    settings' passwords, its HTTP token) and then the process-wide masker
    (:mod:`headrace.masking`: every secret registered at the edge, Variables marked secret).

    Example:
        >>> mask_secrets("postgresql://u:hunter2@h/db says hunter2", ["hunter2"])
        'postgresql://u:***@h/db says ***'
    """
    text = mask_url(text)
    for secret in secrets:
        text = text.replace(secret, "***")
    return MASKER.mask(_SECRET_PAIR.sub(lambda m: f"{m['key']}***", text))


@dataclass
class McpContext:
    """Everything the tools need, built once by ``headrace mcp`` and passed in.

    Args:
        settings: the configuration read at the edge.
        store: the run-state store.
        pipelines: a pipeline file or a folder of them (listing, docs, trigger).
        allow_write: register trigger / resume / retry.
        executor: executor of runs started by the write tools.
        max_rows: most rows a tool returns.
        max_bytes: most bytes of text a tool returns.
        query_timeout: seconds a query may run.
        wait_seconds: how long a write tool waits for its run before answering "running".
        extra_secrets: values to mask besides connection passwords (e.g. the HTTP token).
    """

    settings: Settings
    store: StateStore
    pipelines: Path | None = None
    allow_write: bool = False
    executor: str = "process"
    max_rows: int = 200
    max_bytes: int = 64_000
    query_timeout: float = 10.0
    wait_seconds: float = 60.0
    extra_secrets: list[str] = field(default_factory=list)
    _secrets: list[str] | None = field(default=None, init=False, repr=False)

    @property
    def home(self) -> Path:
        return Path(self.settings.home).resolve()

    def mask(self, text: str | None) -> str:
        """``text`` with every known secret masked ('' for None)."""
        if not text:
            return ""
        if self._secrets is None:
            self._secrets = known_secrets(self.settings, self.extra_secrets)
        return mask_secrets(text, self._secrets)

    def masked_json(self, value: Any) -> Any:
        """``value`` (JSON-able) with every string masked, element by element."""
        if isinstance(value, str):
            return self.mask(value)
        if isinstance(value, dict):
            return {str(k): self.masked_json(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.masked_json(v) for v in value]
        if value is None or isinstance(value, bool | int | float):
            return value
        return self.mask(str(value))

    def bounded(self, text: str, limit: int | None = None) -> str:
        """Masked ``text`` cut to ``max_bytes`` (or ``limit``) bytes, saying where it was cut."""
        text = self.mask(text)
        cap = min(limit or self.max_bytes, self.max_bytes)
        data = text.encode()
        if len(data) <= cap:
            return text
        return data[:cap].decode(errors="ignore") + f"\n… cut at {cap} bytes of {len(data)}"
