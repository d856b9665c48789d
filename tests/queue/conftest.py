"""Fixtures of the queue tests: a connection under the test's own key prefix."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from headrace.queue import QueueConnection

NODE_DIR = Path(__file__).parent / "node"


@pytest.fixture
def conn(redis_prefix: tuple[str, str]) -> QueueConnection:
    """A QueueConnection whose keys all live under the test's prefix (deleted after)."""
    url, prefix = redis_prefix
    return QueueConnection(url=url, prefix=prefix)


@pytest.fixture(scope="session")
def node_bullmq() -> Path:
    """The folder with Node BullMQ installed (``npm ci`` on first use)."""
    node = shutil.which("node")
    npm = shutil.which("npm")
    if node is None or npm is None:
        pytest.fail("node and npm are required for the BullMQ interop tests (Node 20+)")
    if not (NODE_DIR / "node_modules" / "bullmq").exists():
        command = "ci" if (NODE_DIR / "package-lock.json").exists() else "install"
        subprocess.run(
            [npm, command, "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True, timeout=300
        )
    return NODE_DIR
