"""The ``headrace`` Typer application and its error handling.

Each part adds its commands from its own module in this package (``runs.py``,
``analytics.py``, ``checks.py``, ``schedule.py``, ``queue.py``) so no two parts edit
the same file.
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.markup import escape

from headrace.errors import HeadraceError

app = typer.Typer(
    name="headrace",
    help="Data pipelines: define, run, schedule, check, queue and analyse.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True)

_state = {"debug": False}


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
) -> None:
    _state["debug"] = debug


def debug_enabled() -> bool:
    return _state["debug"]


def run_app(argv: list[str] | None = None) -> int:
    """Run the CLI; a :class:`HeadraceError` becomes one red line and exit code 1."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        # Without standalone mode click returns a command's typer.Exit code instead of raising it.
        code = app(args=argv, standalone_mode=False)
    except HeadraceError as exc:
        if debug:
            raise
        # escape: messages hold brackets ("pip install 'headrace[mysql]'") that are not markup
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, markup=True)
        return 1
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        err_console.print("aborted")
        return 130
    except Exception as exc:  # click usage errors and the like
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            return exc.exit_code
        if debug:
            raise
        err_console.print(
            f"[bold red]error:[/] {type(exc).__name__}: {exc} (run with --debug for the traceback)"
        )
        return 1
    return code if isinstance(code, int) else 0
