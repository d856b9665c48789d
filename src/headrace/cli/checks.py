"""``headrace checks RUN_ID``: the data-quality results of a run, as a table."""

from __future__ import annotations

import json

import typer
from rich.markup import escape
from rich.table import Table

from headrace.cli.app import app, console
from headrace.config import Settings
from headrace.state.base import CheckResultRecord

_STATUS_STYLE = {"passed": "green", "failed": "red"}
_SEVERITY_STYLE = {"fail": "red", "warn": "yellow", "quarantine": "magenta"}


def _percent(record: CheckResultRecord) -> str:
    pct = (record.details or {}).get("failed_pct")
    if pct is None:
        return "-" if record.total == record.failed else f"{100.0 * record.failed / max(record.total, 1):.2f}%"
    return f"{pct:.2f}%"


def results_table(records: list[CheckResultRecord], run_id: str) -> Table:
    """The Rich table of a run's check results."""
    table = Table(title=f"checks of run {run_id}", title_justify="left")
    for name, justify in (("task", "left"), ("expectation", "left"), ("column", "left"),
                          ("severity", "left"), ("status", "left"), ("failed/total", "right"),
                          ("%", "right")):
        table.add_column(name, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for r in records:
        status = _STATUS_STYLE.get(r.status, "")
        severity = _SEVERITY_STYLE.get(r.severity, "")
        table.add_row(
            escape(r.task_id), escape(r.expectation), escape(r.column or ""),
            f"[{severity}]{r.severity}[/]" if severity else r.severity,
            f"[{status}]{r.status}[/]" if status else r.status,
            f"{r.failed}/{r.total}", _percent(r),
        )
    return table


@app.command("checks")
def checks(
    run_id: str = typer.Argument(..., help="The run whose check results to show."),
    task: str | None = typer.Option(None, "--task", "-t", help="Only this task's results."),
    samples: bool = typer.Option(False, "--samples", "-s", help="Show sample failing rows."),
    failed_only: bool = typer.Option(False, "--failed", help="Only failed expectations."),
) -> None:
    """Show the data-quality results of a run: expectation, column, severity, status, counts."""
    from headrace.state import open_store

    settings = Settings.from_env()
    store = open_store(settings.state_url)
    try:
        records = store.get_check_results(run_id, task)
    finally:
        store.close()
    if failed_only:
        records = [r for r in records if r.status != "passed"]
    if not records:
        scope = f" for task {task!r}" if task else ""
        console.print(f"run {run_id}: no check results{scope}.")
        return
    console.print(results_table(records, run_id))
    failed = [r for r in records if r.status != "passed"]
    console.print(f"{len(records) - len(failed)} passed, {len(failed)} failed "
                  f"({sum(1 for r in failed if r.severity == 'fail')} with severity fail).")
    if samples:
        for r in failed:
            details = r.details or {}
            rows = details.get("sample") or []
            console.print(f"\n[bold]{escape(r.task_id)} / {escape(r.expectation)}[/]: "
                          f"{escape(str(details.get('reason', '')))}",
                          highlight=False)
            if "observed" in details:
                console.print(f"  observed: {json.dumps(details['observed'], ensure_ascii=False)}",
                              highlight=False, markup=False)
            for row in rows:
                console.print("  " + json.dumps(row, ensure_ascii=False), highlight=False, markup=False)
