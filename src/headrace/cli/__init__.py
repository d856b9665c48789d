"""The ``headrace`` command.

``headrace`` and ``headrace --help`` are answered from the command table
(:mod:`headrace.cli.commands`) without importing Typer or any part of headrace; a
command's module is imported only when it runs (see :mod:`headrace.cli.typer_app`).
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["app", "main", "run_app"]


def main() -> None:
    """The console script: exit with the command's exit code."""
    if sys.argv[1:] in ([], ["--help"], ["-h"]):
        from headrace.cli.commands import root_help

        sys.stdout.write(root_help())
        sys.exit(0)
    from headrace.cli.typer_app import run_app

    sys.exit(run_app())


def __getattr__(name: str) -> Any:
    """``app`` and ``run_app``, imported on first use (they import Typer)."""
    if name in ("app", "run_app"):
        import importlib

        module = importlib.import_module("headrace.cli.typer_app")
        # As before commands were lazy: ``headrace.cli.typer_app`` is the Typer application.
        globals()["app"], globals()["run_app"] = module.app, module.run_app
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
