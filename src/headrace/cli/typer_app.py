"""The ``headrace`` Typer application: lazy command loading, consoles, exit codes.

Each part adds its commands from its own module in this package (``run_commands.py``,
``analytics_commands.py``, ``checks_commands.py``, ``schedule_commands.py``,
``queue_commands.py``, ...) so no two parts edit the same file. A module is imported
only when one of its commands runs (or its own ``--help`` is asked for): :data:`COMMANDS`
maps each command to its module and the one-line help ``headrace --help`` shows, so the
command starts without importing SQLAlchemy, DuckDB, pyarrow or Redis. A module not listed there still works when
imported by :mod:`headrace.cli` (eagerly).

Exit codes (the same for every command):

====  ==========================================================================
0     success
1     the run (or the work asked for) failed; any other error
2     usage: unknown command or option, bad option value (--param, --date, ...)
3     not found: unknown run id (or prefix), task, or pipeline in the state store
4     configuration: missing connection, bad headrace.toml, bad pipeline file
5     service unreachable: state store, Redis, a database (the URL is named)
====  ==========================================================================

An error prints one ``error:`` line, and a ``caused by:`` line naming the driver, IO or
parse error it wraps; ``--debug`` prints the whole traceback, causes included, first
(the exit code stays the documented one).

Output is printed verbatim: user text (``[pools]``, ``@daily``, ``[word]``) is never
read as Rich markup, secrets are masked (:mod:`headrace.masking`), and output
to a pipe or file is never wrapped at 80 columns.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any, TextIO

import typer
from typer import _click as click  # typer 0.29 vendors click: its exceptions live here
from typer.core import TyperCommand, TyperGroup

from headrace.errors import (
    ConfigError,
    DefinitionError,
    HeadraceError,
    NotFoundError,
    UnavailableError,
    UsageError,
    cause_line,
    did_you_mean,
)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_CONFIG = 4
EXIT_UNAVAILABLE = 5
#: Console width when output goes to a pipe or file (no wrapping for grep, CI logs, scripts).
PIPE_WIDTH = 10_000

from headrace.cli.commands import COMMANDS, HELP  # noqa: E402  (the table of lazy commands)


class LazyGroup(TyperGroup):
    """The root command: imports a command's module only when that command is used."""

    listing = False  # True while the root help is rendered: stubs instead of imports

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(dict.fromkeys([*COMMANDS, *self.commands]))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        if cmd_name not in COMMANDS:
            return None
        module, short = COMMANDS[cmd_name]
        if self.listing or ctx.resilient_parsing:  # help listing, shell completion
            return TyperCommand(cmd_name, help=short, callback=None)
        importlib.import_module(module)
        command = _build(cmd_name)
        if command is None:  # pragma: no cover - a COMMANDS entry without its command
            raise RuntimeError(
                f"command {cmd_name!r} is listed in headrace.cli.commands but not defined in {module}"
            )
        self.commands[cmd_name] = command
        return command

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        LazyGroup.listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            LazyGroup.listing = False


def _build(name: str) -> click.Command | None:
    """The click command of a Typer command or sub-app registered on :data:`app`."""
    for info in app.registered_commands:
        callback = info.callback
        if (info.name or (callback.__name__.replace("_", "-") if callback else None)) == name:
            return typer.main.get_command_from_info(
                info,
                pretty_exceptions_short=app.pretty_exceptions_short,
                rich_markup_mode=app.rich_markup_mode,
            )
    for group in app.registered_groups:
        if group.name == name:
            return typer.main.get_group_from_info(
                group,
                pretty_exceptions_short=app.pretty_exceptions_short,
                rich_markup_mode=app.rich_markup_mode,
                suggest_commands=True,
            )
    return None


app = typer.Typer(
    name="headrace",
    help=HELP,
    cls=LazyGroup,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
    # Help text is printed as written: "[pools]" in a docstring must survive.
    rich_markup_mode=None,
)

_state = {"debug": False}


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
) -> None:
    _state["debug"] = debug


def debug_enabled() -> bool:
    return _state["debug"]


class MaskedStream:
    """A text stream that masks secrets on the way to stdout/stderr (looked up at write time)."""

    def __init__(self, stderr: bool = False) -> None:
        self.stderr = stderr

    @property
    def stream(self) -> TextIO:
        return sys.stderr if self.stderr else sys.stdout

    def write(self, text: str) -> int:
        from headrace.masking import MASKER

        return self.stream.write(MASKER.mask(text))

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        isatty = getattr(self.stream, "isatty", None)
        return bool(isatty and isatty())

    def fileno(self) -> int:
        return self.stream.fileno()

    @property
    def encoding(self) -> str:
        return getattr(self.stream, "encoding", None) or "utf-8"


def make_console(stderr: bool = False, **options: Any) -> Any:
    """A Rich console for one command: masked, no auto-highlighting, unwrapped when piped.

    Markup stays on for the code's own ``[bold]...[/]``; user text passed to it must
    go through ``rich.markup.escape`` or a ``rich.text.Text``.

    Args:
        stderr: write to stderr instead of stdout.
        options: more :class:`rich.console.Console` options.

    Returns:
        A :class:`rich.console.Console`.
    """
    from rich.console import Console

    file = MaskedStream(stderr)
    if not file.isatty() and "COLUMNS" not in os.environ:
        options.setdefault("width", PIPE_WIDTH)
    options.setdefault("highlight", False)
    return Console(file=file, **options)  # type: ignore[arg-type]


def __getattr__(name: str) -> Any:
    """``console`` and ``err_console`` for command modules, made on first use (PEP 562):
    building a Rich console imports Rich, which ``headrace --help`` does not need."""
    if name in ("console", "err_console"):
        made = make_console(stderr=name == "err_console")
        globals()[name] = made
        return made
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def exit_code(exc: BaseException) -> int:
    """The documented exit code of an error (see the module docstring)."""
    if isinstance(exc, NotFoundError):
        return EXIT_NOT_FOUND
    if isinstance(exc, UsageError) or type(exc).__name__ == "ParamError":  # a bad --param value
        return EXIT_USAGE
    if isinstance(exc, ConfigError | DefinitionError):
        return EXIT_CONFIG
    if isinstance(exc, UnavailableError):
        return EXIT_UNAVAILABLE
    return EXIT_FAILED


def print_error(message: str) -> None:
    """One red ``error:`` line on stderr, the message verbatim (masked)."""
    from rich.text import Text

    err = make_console(stderr=True)
    err.print(Text("error: ", style="bold red") + Text(message), soft_wrap=True)


def print_failure(exc: BaseException, debug: bool) -> None:
    """Show an error that ended a command: the traceback with its causes under ``--debug``,
    then the ``error:`` line and, for an error that wraps another, a ``caused by:`` line."""
    if debug:
        import traceback

        MaskedStream(stderr=True).write("".join(traceback.format_exception(exc)))
    if isinstance(exc, HeadraceError):
        print_error(str(exc))
    else:
        hint = "" if debug else " (run with --debug for the traceback)"
        print_error(f"{type(exc).__name__}: {exc}{hint}")
    cause = cause_line(exc)
    if cause is not None and not debug:
        from rich.text import Text

        make_console(stderr=True).print(Text(f"caused by: {cause}"), soft_wrap=True)


def _plain_list(args: list[str]) -> Any:
    """``headrace list [PATH] [--json] [--no-cache]`` without building the Typer command.

    Building a command makes Typer import pydantic (a tenth of a second); ``list`` is
    the command scripts and editors call most. Anything else (``--help``, another
    option, a second path) goes through Typer as usual.

    Returns:
        A callable running the command, or None when the arguments are not that plain.
    """
    if args[:1] != ["list"]:
        return None
    options = {"as_json": False, "no_cache": False}
    paths: list[str] = []
    for arg in args[1:]:
        if arg in ("--json", "--no-cache"):
            options["as_json" if arg == "--json" else "no_cache"] = True
        elif arg.startswith("-") or paths:
            return None
        else:
            paths.append(arg)

    def run() -> None:
        from pathlib import Path

        from headrace.cli.run_commands import list_command

        list_command(path=Path(paths[0]) if paths else Path("."), **options)

    return run


def run_app(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code (see the module docstring for their meaning)."""
    from headrace.masking import register_environ

    register_environ(os.environ)
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    try:
        if os.environ.get("HEADRACE_LOG_FORMAT"):
            from headrace.observe.logs import configure_logging

            configure_logging(os.environ["HEADRACE_LOG_FORMAT"])
        fast = _plain_list(args)
        if fast is not None:
            code = fast()
        else:
            # Without standalone mode click returns a command's typer.Exit code instead of raising it.
            code = app(args=args, prog_name="headrace", standalone_mode=False)
    except HeadraceError as exc:
        print_failure(exc, debug)
        return exit_code(exc)
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        print_error("aborted")
        return 130
    except click.ClickException as exc:  # usage errors: exit code 2
        exc.show()
        return exc.exit_code
    except Exception as exc:
        print_failure(exc, debug)
        return EXIT_FAILED
    return code if isinstance(code, int) else EXIT_OK


def check_executor(executor: str, choices: tuple[str, ...] | None = None) -> None:
    """Refuse an ``--executor`` that is not one of ``choices`` (default: every executor a
    Runner builds by name), suggesting the closest one (exit code 2)."""
    if choices is None:
        from headrace.engine.runner import EXECUTORS

        choices = tuple(EXECUTORS)
    if executor not in choices:
        raise UsageError(
            f"--executor {executor!r}: choose one of {', '.join(choices)}."
            + did_you_mean(executor, choices)
        )


def load_settings() -> Any:
    """The :class:`headrace.config.Settings` of this command, read once; their secrets
    (connection and state store passwords) are registered for masking."""
    from headrace.config import Settings
    from headrace.masking import register_settings

    settings = Settings.from_env()
    register_settings(settings)
    return settings


def print_json(value: Any) -> None:
    """Print one JSON document on stdout (secrets masked; dates as ISO strings)."""
    import json

    from headrace.masking import MASKER

    text = json.dumps(MASKER.mask_value(value), default=_json_default, ensure_ascii=False)
    sys.stdout.write(text + "\n")


def _json_default(value: Any) -> Any:
    from datetime import date, datetime, timedelta
    from enum import Enum
    from pathlib import PurePath

    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, PurePath):
        return str(value)
    return str(value)
