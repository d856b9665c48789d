"""The ``headrace`` command."""

from __future__ import annotations

import sys

from headrace.cli import analytics, checks, inspect, mcp, queue, runs, schedule, web  # noqa: F401  (register commands)
from headrace.cli.app import app, run_app

__all__ = ["app", "main"]


def main() -> None:
    sys.exit(run_app())
