"""``headrace web`` serves the store over HTTP with uvicorn."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

CLI = [sys.executable, "-c", "from headrace.cli import main; main()"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(url: str, server: subprocess.Popen, seconds: float = 60.0) -> httpx.Response:
    deadline = time.monotonic() + seconds
    while True:
        try:
            return httpx.get(url, timeout=5)
        except httpx.TransportError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_headrace_web_serves_the_configured_store(demo, tmp_path: Path) -> None:
    port = _free_port()
    env = {
        **os.environ,
        "HEADRACE_STATE_URL": demo.settings.state_url,
        "HEADRACE_HOME": str(tmp_path),
    }
    server = subprocess.Popen(
        [*CLI, "web", "--port", str(port)], env=env, cwd=tmp_path,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        health = _wait_for(f"http://127.0.0.1:{port}/api/health", server)
        runs = httpx.get(f"http://127.0.0.1:{port}/api/runs", timeout=5).json()
        page = httpx.get(f"http://127.0.0.1:{port}/", timeout=5).text
    finally:
        server.terminate()
        output = server.communicate(timeout=30)[0].decode(errors="replace")
    assert health.json()["status"] == "ok", output
    assert runs["total"] == 2
    assert demo.good_run in page
    assert f"headrace web on http://127.0.0.1:{port}/" in output


def test_headrace_web_rejects_a_missing_pipelines_folder(tmp_path: Path) -> None:
    done = subprocess.run(
        [*CLI, "web", "--pipelines", str(tmp_path / "nope")], cwd=tmp_path,
        capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "300"},
    )  # fmt: skip
    assert done.returncode == 2  # usage: a bad option value
    assert f"--pipelines {tmp_path / 'nope'}: not a folder" in done.stderr


def test_headrace_web_refuses_a_public_address_without_authentication(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADRACE_WEB_")}
    done = subprocess.run(
        [*CLI, "web", "--host", "0.0.0.0", "--port", str(_free_port())], cwd=tmp_path,
        capture_output=True, text=True, timeout=60, env={**env, "COLUMNS": "300"},
    )  # fmt: skip
    assert done.returncode == 4  # a configuration error (the CLI's exit codes)
    assert "--host 0.0.0.0 accepts connections from other machines" in done.stderr
    assert "HEADRACE_WEB_TOKEN" in done.stderr


def test_headrace_web_on_a_public_address_with_a_token_needs_it(demo, tmp_path: Path) -> None:
    port = _free_port()
    token = "t0ken-for-the-test-0123456789"
    env = {
        **os.environ,
        "HEADRACE_STATE_URL": demo.settings.state_url,
        "HEADRACE_HOME": str(tmp_path),
        "HEADRACE_WEB_TOKEN": token,
    }
    server = subprocess.Popen(
        [*CLI, "web", "--host", "0.0.0.0", "--port", str(port)], env=env, cwd=tmp_path,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        _wait_for(f"http://127.0.0.1:{port}/api/health", server)
        anonymous = httpx.get(f"http://127.0.0.1:{port}/api/runs", timeout=5)
        with_token = httpx.get(
            f"http://127.0.0.1:{port}/api/runs",
            timeout=5,
            headers={"Authorization": f"Bearer {token}"},
        )
    finally:
        server.terminate()
        output = server.communicate(timeout=30)[0].decode(errors="replace")
    assert anonymous.status_code == 401, output
    assert with_token.status_code == 200 and with_token.json()["total"] == 2
    assert "actions need login" in output
