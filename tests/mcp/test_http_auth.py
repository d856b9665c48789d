"""The HTTP transport: bearer token required, loopback by default, a public host refused without a token."""

from __future__ import annotations

import subprocess
from typing import Any

import httpx
import pytest
from mcp_support import HttpServer, World, headrace_command, in_session, server_env

from headrace.errors import ConfigError
from headrace.mcp.http import check_bind

INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"},
    },
}
HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@pytest.mark.parametrize(
    "authorization", [None, "Bearer wrong-token-wrong-token", "Basic abc", "Bearer"]
)
def test_request_without_the_token_is_401(
    http_server: HttpServer, authorization: str | None
) -> None:
    headers = dict(HEADERS)
    if authorization is not None:
        headers["Authorization"] = authorization
    response = httpx.post(http_server.url, json=INIT, headers=headers, timeout=10)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


def test_request_with_the_token_is_served(http_server: HttpServer) -> None:
    headers = {**HEADERS, "Authorization": f"Bearer {http_server.token}"}
    response = httpx.post(http_server.url, json=INIT, headers=headers, timeout=10)
    assert response.status_code == 200


def test_sdk_client_with_a_wrong_token_cannot_connect(http_server: HttpServer) -> None:
    async def scenario(client: Any) -> Any:
        return await client.list_tools()

    with pytest.raises(Exception):  # noqa: B017 - the SDK raises its transport's error
        in_session(http_server.client(token="not-the-token-at-all"), scenario)


def test_public_host_without_token_refused(world: World) -> None:
    env = server_env(world)
    env.pop("HEADRACE_MCP_TOKEN", None)
    done = subprocess.run(
        [*headrace_command(), "mcp", "--http", "--host", "0.0.0.0", "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 4  # a configuration error (the CLI exit codes)
    assert "needs authentication" in done.stderr


@pytest.mark.parametrize(
    "host, allowed",
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.0.2.10", False),
        ("example.org", False),
    ],
)
def test_which_hosts_need_a_token(host: str, allowed: bool) -> None:
    if allowed:
        check_bind(host, None)
    else:
        with pytest.raises(ConfigError, match="needs authentication"):
            check_bind(host, None)
    check_bind(host, "a-token-long-enough-for-this")  # with a token any host may listen


def test_short_token_refused(world: World, tmp_path: Any) -> None:
    token = tmp_path / "token"
    token.write_text("short")
    done = subprocess.run(
        [
            *headrace_command(),
            "mcp",
            "--http",
            "--host",
            "0.0.0.0",
            "--port",
            "0",
            "--token-file",
            str(token),
        ],
        env=server_env(world),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 4 and "at least 16" in done.stderr
