"""Settings read once at the edge (CLI, web, tests) and passed down.

Sources, later ones winning: ``headrace.toml`` in the working directory, then the
environment (``HEADRACE_STATE_URL``, ``HEADRACE_HOME``, ``HEADRACE_CONN_<NAME>``).
Connection URLs may hold passwords: :func:`mask_url` is the only way they are shown.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from headrace.errors import ConfigError, did_you_mean

CONN_PREFIX = "HEADRACE_CONN_"
POOL_PREFIX = "HEADRACE_POOL_"


@dataclass(frozen=True)
class Settings:
    """Where headrace keeps its state and which named connections exist.

    Args:
        home: folder for everything embedded (state database, staging, warehouse).
        state_url: SQLAlchemy URL of the run-state store.
        connections: connection name (lower case) to URL.
        pools: pool name (lower case) to the number of its tasks that may run at once,
            across runs (``[pools]`` in headrace.toml, ``HEADRACE_POOL_<NAME>=N``).
    """

    home: Path
    state_url: str
    connections: Mapping[str, str] = field(default_factory=dict)
    pools: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def from_env(
        cls, cwd: str | Path | None = None, environ: Mapping[str, str] | None = None
    ) -> Settings:
        """Read ``headrace.toml`` (if present) and the environment.

        Example:
            >>> Settings.from_env(environ={"HEADRACE_CONN_CRM": "sqlite:///crm.db"}).connection("crm")
            'sqlite:///crm.db'
        """
        cwd = Path(cwd) if cwd is not None else Path.cwd()
        env = os.environ if environ is None else environ
        file_conf: dict = {}
        toml_path = cwd / "headrace.toml"
        if toml_path.exists():
            try:
                file_conf = tomllib.loads(toml_path.read_text())
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"{toml_path}: not valid TOML: {exc}") from exc
        section = file_conf.get("headrace", {})
        home = Path(env.get("HEADRACE_HOME") or section.get("home") or ".headrace")
        if not home.is_absolute():
            home = cwd / home
        state_url = (
            env.get("HEADRACE_STATE_URL")
            or section.get("state_url")
            or f"sqlite:///{home / 'state.db'}"
        )
        connections: dict[str, str] = {}
        for name, url in file_conf.get("connections", {}).items():
            if not isinstance(url, str):
                raise ConfigError(
                    f"{toml_path}: connection {name!r} must be a URL string, got {type(url).__name__}"
                )
            connections[name.lower()] = url
        for key, url in env.items():
            if key.startswith(CONN_PREFIX) and url:
                connections[key[len(CONN_PREFIX) :].lower()] = url
        pools: dict[str, int] = {}
        for name, size in file_conf.get("pools", {}).items():
            pools[name.lower()] = _pool_size(size, f"{toml_path}: [pools] {name}")
        for key, size in env.items():
            if key.startswith(POOL_PREFIX) and size:
                pools[key[len(POOL_PREFIX) :].lower()] = _pool_size(size, key)
        return cls(home=home, state_url=state_url, connections=connections, pools=pools)

    def connection(self, name: str) -> str:
        """The URL of connection ``name``; a clear error naming the variable to set."""
        try:
            return self.connections[name.lower()]
        except KeyError:
            raise ConfigError(
                f"Unknown connection {name!r}: set {CONN_PREFIX}{name.upper()}=<url> "
                f"or add it under [connections] in headrace.toml."
                + did_you_mean(name.lower(), self.connections)
            ) from None

    def has_connection(self, name: str) -> bool:
        return name.lower() in self.connections


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


def mask_url(url: str) -> str:
    """Hide the password of a URL: ``postgresql://u:***@h/db``."""
    return _PASSWORD.sub(lambda m: f"{m['head']}***{m['tail']}", url)
