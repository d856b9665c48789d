"""``headrace checks RUN_ID``: the data-quality results of a run, as a table or JSON."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated

import typer

from headrace.cli.typer_app import app, load_settings, make_console, print_json

if TYPE_CHECKING:
    from rich.table import Table

    from headrace.state.store_base import CheckResultRecord

_STATUS_STYLE = {"passed": "green", "failed": "red"}
_SEVERITY_STYLE = {"fail": "red", "warn": "yellow", "quarantine": "magenta"}


def _percent(record: CheckResultRecord) -> str:
    pct = (record.details or {}).get("failed_pct")
    if pct is None:
        return (
            "-"
            if record.total == record.failed
            else f"{100.0 * record.failed / max(record.total, 1):.2f}%"
        )
    return f"{pct:.2f}%"


def results_table(records: list[CheckResultRecord], run_id: str) -> Table:
    """The Rich table of a run's check results."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=Text(f"checks of run {run_id}"), title_justify="left")
    for name, justify in (
        ("task", "left"),
        ("expectation", "left"),
        ("column", "left"),
        ("severity", "left"),
        ("status", "left"),
        ("failed/total", "right"),
        ("%", "right"),
    ):
        table.add_column(name, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for r in records:
        table.add_row(
            Text(r.task_id),
            Text(r.expectation),
            Text(r.column or ""),
            Text(r.severity, style=_SEVERITY_STYLE.get(r.severity, "")),
            Text(r.status, style=_STATUS_STYLE.get(r.status, "")),
            f"{r.failed}/{r.total}",
            _percent(r),
        )
    return table


@app.command("checks")
def checks(
    run_id: Annotated[str, typer.Argument(help="The run whose check results to show.")],
    task: Annotated[
        str | None, typer.Option("--task", "-t", help="Only this task's results.")
    ] = None,
    samples: Annotated[
        bool, typer.Option("--samples", "-s", help="Show sample failing rows.")
    ] = False,
    failed_only: Annotated[
        bool, typer.Option("--failed", help="Only failed expectations.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON document (schema in this help).")
    ] = False,
) -> None:
    """Show the data-quality results of a run: expectation, column, severity, status, counts.

    ``--json``: ``{"run_id": id, "checks": [{"task_id", "map_index", "expectation",
    "column", "severity", "status", "failed", "total", "details", ...}]}`` (details
    holds reason, failed_pct, sample rows). Exit code 3 for an unknown run id.
    """
    from rich.text import Text

    from headrace.state import open_store

    settings = load_settings()
    store = open_store(settings.state_url)
    try:
        resolved = store.resolve_run_id(run_id)
        records = store.get_check_results(resolved, task)
    finally:
        store.close()
    if failed_only:
        records = [r for r in records if r.status != "passed"]
    if as_json:
        print_json({"run_id": resolved, "checks": [asdict(r) for r in records]})
        return
    console = make_console()
    if not records:
        scope = f" for task {task!r}" if task else ""
        console.print(Text(f"run {resolved}: no check results{scope}."))
        return
    console.print(results_table(records, resolved))
    failed = [r for r in records if r.status != "passed"]
    console.print(
        f"{len(records) - len(failed)} passed, {len(failed)} failed "
        f"({sum(1 for r in failed if r.severity == 'fail')} with severity fail)."
    )
    if samples:
        for r in failed:
            details = r.details or {}
            rows = details.get("sample") or []
            console.print(
                Text(f"\n{r.task_id} / {r.expectation}", style="bold")
                + Text(f": {details.get('reason', '')}")
            )
            if "observed" in details:
                console.print(
                    Text(f"  observed: {json.dumps(details['observed'], ensure_ascii=False)}")
                )
            for row in rows:
                console.print(Text("  " + json.dumps(row, ensure_ascii=False)))
