"""The ``headrace`` command."""

from __future__ import annotations

import sys

import typer

from headrace.cli import analytics, checks, inspect, runs, schedule, variables, web  # noqa: F401  (register commands)
from headrace.cli import stream  # noqa: F401,E402  (register the stream command)
from headrace.cli.app import app, run_app
from headrace.extras import MissingExtraError

__all__ = ["app", "main"]

try:
    from headrace.cli import queue  # noqa: F401  (register commands)
except MissingExtraError as exc:  # without the queue extra the commands still exist and say so
    _missing = exc

    def _needs_queue_extra(ctx: typer.Context) -> None:
        raise MissingExtraError(_missing.extra, _missing.module, f"headrace {ctx.info_name}")

    for _name in ("worker", "queue"):
        app.command(
            _name,
            help="Redis job queues: needs the 'queue' extra, which is not installed.",
            context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []},
        )(_needs_queue_extra)


def main() -> None:
    sys.exit(run_app())
