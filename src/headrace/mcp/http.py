"""Serving the MCP server over streamable HTTP: loopback by default, bearer token otherwise.

A host that is not a loopback address is refused unless a token is configured; with a
token, every request needs ``Authorization: Bearer <token>`` (compared in constant
time) or gets 401. The SDK's DNS-rebinding protection stays on for loopback hosts.
"""

from __future__ import annotations

import hmac
import ipaddress
from typing import Any

from mcp.server.mcpserver import MCPServer

from headrace.errors import ConfigError

LOOPBACK_NAMES = {"localhost", "localhost.localdomain"}


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and addresses in 127.0.0.0/8 or ``::1``."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Refuse to listen beyond loopback without a token.

    Raises:
        ConfigError: ``host`` is not loopback and no token is set.
    """
    if not is_loopback(host) and not token:
        raise ConfigError(
            f"--host {host}: serving MCP beyond this machine needs authentication; set "
            "HEADRACE_MCP_TOKEN (or --token-file) and give clients 'Authorization: Bearer <token>'"
        )
    if token is not None and len(token) < 16:
        raise ConfigError("the MCP token must be at least 16 characters long")


class BearerAuth:
    """ASGI middleware: HTTP requests must carry ``Authorization: Bearer <token>``."""

    def __init__(self, app: Any, token: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            given = dict(scope.get("headers") or []).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"www-authenticate", b"Bearer"),
                        ],
                    }
                )
                await send(
                    {
                        "type": "http.response.body",
                        "body": b'{"error": "missing or wrong bearer token"}',
                    }
                )
                return
        await self.app(scope, receive, send)


def http_app(server: MCPServer, host: str, token: str | None) -> Any:
    """The ASGI app serving ``server`` at ``/mcp``, behind :class:`BearerAuth` when a token is set."""
    check_bind(host, token)
    app: Any = server.streamable_http_app(host=host)
    return BearerAuth(app, token) if token else app


def serve_http(server: MCPServer, host: str, port: int, token: str | None) -> None:
    """Serve until interrupted (uvicorn)."""
    import uvicorn

    uvicorn.run(http_app(server, host, token), host=host, port=port, log_level="warning")
