"""Fixtures of the MCP server's tests (helpers in mcp_support.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytest.importorskip("mcp")

from mcp import Client  # noqa: E402
from mcp_support import HttpServer, World, drop_world, make_world, start_http, stdio_client, stop  # noqa: E402


@pytest.fixture(scope="session")
def world(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The shared read-only world (tests that write make their own)."""
    home = tmp_path_factory.mktemp("mcp_home")
    made = make_world(home, pg_url)
    # a symlink inside the home pointing outside it: listing shows it, nothing follows it
    outside = tmp_path_factory.mktemp("outside")
    (outside / "secret.txt").write_text("outside the home")
    (home / "exports" / "escape").symlink_to(outside)
    (home / "exports" / "escape.txt").symlink_to(outside / "secret.txt")
    yield made
    drop_world(made)


@pytest.fixture
def write_world(pg_url: str, tmp_path: Path) -> Iterator[World]:
    """A world of its own for tests that trigger, resume or retry runs."""
    made = make_world(tmp_path / "home", pg_url)
    yield made
    drop_world(made)


@pytest.fixture(scope="session")
def http_server(world: World) -> Iterator[HttpServer]:
    server = start_http(world)
    yield server
    stop(server.process)


@pytest.fixture(scope="session", params=["stdio", "http"])
def connect(request: pytest.FixtureRequest, world: World) -> Callable[[], Client]:
    """A factory of clients of the read-only server, over each transport in turn."""
    if request.param == "stdio":
        return lambda: stdio_client(world)
    server: HttpServer = request.getfixturevalue("http_server")
    return server.client
