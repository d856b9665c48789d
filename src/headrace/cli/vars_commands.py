"""``headrace vars get/set/list/delete``: Variables in the state store, secrets masked.

Tasks read them with ``ctx.var("name", default=...)`` (Airflow's ``Variable.get``). A
secret value (``--secret``, or a name such as ``db_password``) prints as ``***`` unless
``--reveal`` is given.

Example:
    $ headrace vars set source_db_conn postgresql://etl:pw@db/crm --secret
    $ headrace vars list
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from headrace.cli.typer_app import app, console
from headrace.config import Settings
from headrace.errors import StateError
from headrace.state import open_store

variables_app = typer.Typer(
    help="Variables tasks read with ctx.var(name): get, set, list, delete.", no_args_is_help=True
)
app.add_typer(variables_app, name="vars")

_Reveal = Annotated[bool, typer.Option("--reveal", help="Print secret values instead of ***.")]


@variables_app.command("set")
def set_command(
    name: Annotated[str, typer.Argument(help="Variable name.")],
    value: Annotated[
        str, typer.Argument(help="Its value (text; JSON for ctx.var(name, deserialize_json=True)).")
    ],
    secret: Annotated[
        bool | None,
        typer.Option("--secret/--not-secret", help="Mask the value when shown (default: by name)."),
    ] = None,
    description: Annotated[
        str | None, typer.Option("--description", "-d", help="What it is for.")
    ] = None,
) -> None:
    """Create or replace a variable."""
    with open_store(Settings.from_env().state_url) as store:
        record = store.set_variable(name, value, secret=secret, description=description)
    note = " (secret: shown as ***)" if record.secret else ""
    console.print(f"set variable [bold]{escape(name)}[/]{note}")


@variables_app.command("get")
def get_command(
    name: Annotated[str, typer.Argument(help="Variable name.")],
    reveal: _Reveal = False,
) -> None:
    """Print a variable's value (*** for a secret unless --reveal)."""
    with open_store(Settings.from_env().state_url) as store:
        record = store.require_variable(name)
    typer.echo(record.shown(reveal))


@variables_app.command("list")
def list_command(
    reveal: _Reveal = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per variable.")] = False,
) -> None:
    """List variables: name, value (*** for secrets), secret, description, last set."""
    with open_store(Settings.from_env().state_url) as store:
        records = store.list_variables()
    if as_json:
        for r in records:
            typer.echo(
                json.dumps(
                    {
                        "name": r.name,
                        "value": r.shown(reveal),
                        "secret": r.secret,
                        "description": r.description,
                        "updated_at": r.updated_at.isoformat(),
                    }
                )
            )
        return
    if not records:
        console.print("no variables; set one with [bold]headrace vars set NAME VALUE[/]")
        return
    table = Table(box=box.SIMPLE_HEAD)
    for column in ("name", "value", "secret", "description", "updated"):
        table.add_column(column, overflow="fold")
    for r in records:
        table.add_row(
            escape(r.name),
            escape(r.shown(reveal)),
            "yes" if r.secret else "",
            escape(r.description or ""),
            f"{r.updated_at:%Y-%m-%d %H:%M} UTC",
        )
    console.print(table)


@variables_app.command("delete")
def delete_command(name: Annotated[str, typer.Argument(help="Variable name.")]) -> None:
    """Delete a variable; an error if it is not set."""
    with open_store(Settings.from_env().state_url) as store:
        if not store.delete_variable(name):
            store.require_variable(name)  # raises, suggesting the closest name
            raise StateError(
                f"variable {name!r} was not deleted"
            )  # pragma: no cover - deleted meanwhile
    console.print(f"deleted variable [bold]{escape(name)}[/]")
