"""What a test does when a service it needs (PostgreSQL, MariaDB, Redis, NATS ...) is down.

Outside CI the test is skipped; with ``CI=true`` it fails, so CI can never go green by
skipping. Used by the fixtures of ``tests/conftest.py``, the stream brokers and the
examples' tests (``from live_services import service_missing``: ``tests`` is on the
import path, as the folder of the root ``conftest.py``).
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def service_missing(name: str, why: object) -> NoReturn:
    """Fail the test in CI, skip it elsewhere: ``name`` is not reachable because of ``why``."""
    message = f"{name} is not reachable: {why}"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)
