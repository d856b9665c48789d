"""The ``headrace`` command.

Command modules are imported when their command runs (see :data:`headrace.cli.app.COMMANDS`),
so ``headrace --help`` starts without the heavy libraries.
"""

from __future__ import annotations

import sys

from headrace.cli.app import app, run_app

__all__ = ["app", "main", "run_app"]


def main() -> None:
    sys.exit(run_app())
