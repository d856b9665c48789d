"""A test whose service is down is skipped on a laptop and fails in CI (``live_services``).

Runs pytest as CI runs it, on tests of the three kinds of fixture that need Redis (the
root conftest's, the stream brokers', the clickstream example's), with Redis pointed at a
port nothing listens on.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NEED_REDIS = [
    "tests/engine/test_settings_in_tasks.py::test_pipeline_sensor_on_a_remote_worker",
    "tests/streams/test_stream_sync.py::test_merge_keeps_the_latest_event_per_key",
    "tests/examples/test_clickstream.py",
]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pytest_without_redis(ci: str | None) -> tuple[dict[str, int], str]:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["HEADRACE_TEST_REDIS"] = f"redis://127.0.0.1:{_closed_port()}/0"
    if ci is not None:
        env["CI"] = ci
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rA", *NEED_REDIS],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    last = done.stdout.strip().splitlines()[-1]
    counts = {word: int(n) for n, word in re.findall(r"(\d+) (\w+)", last)}
    return counts, done.stdout


@pytest.mark.parametrize(("ci", "outcome"), [(None, "skipped"), ("true", "errors")])
def test_a_missing_service_skips_outside_ci_and_fails_in_ci(ci: str | None, outcome: str) -> None:
    counts, out = _pytest_without_redis(ci)
    assert counts == {outcome: len(NEED_REDIS)}, out
    assert out.count("Redis is not reachable") >= len(NEED_REDIS), out
