"""The table of ``headrace`` commands and the root help, without importing anything.

``headrace --help`` is answered from here (see :func:`headrace.cli.main`) before Typer,
Rich or any of headrace's parts is imported; :class:`headrace.cli.typer_app.LazyGroup` uses
the same table to import a command's module only when that command runs. A new
command module adds its commands here (a test checks each entry against its command).
"""

from __future__ import annotations

HELP = "Data pipelines: define, run, schedule, check, queue and analyse."

#: command -> (module that defines it, one-line help shown by ``headrace --help``).
COMMANDS: dict[str, tuple[str, str]] = {
    "run": (
        "headrace.cli.run_commands",
        "Run a pipeline now, showing its tasks live; exit code 1 if the run failed.",
    ),
    "resume": (
        "headrace.cli.run_commands",
        "Finish a failed, interrupted or dead run: only tasks that did not succeed run again.",
    ),
    "list": (
        "headrace.cli.run_commands",
        "List the pipelines in a file or folder: name, schedule, tasks, tags.",
    ),
    "cleanup": (
        "headrace.cli.run_commands",
        "Remove staged files of finished runs older than --older-than; failed runs are kept unless asked.",
    ),
    "runs": ("headrace.cli.inspect_commands", "List runs, newest logical date first."),
    "show": (
        "headrace.cli.inspect_commands",
        "Show one run: its header, its tasks (state, attempts, durations, rows, errors) and checks.",
    ),
    "logs": (
        "headrace.cli.inspect_commands",
        "Print the logs captured for a run, per task and attempt, in the order they were written.",
    ),
    "pools": (
        "headrace.cli.inspect_commands",
        "Show the configured pools: size, slots taken now and the tasks holding them.",
    ),
    "checks": (
        "headrace.cli.checks_commands",
        "Show the data-quality results of a run: expectation, column, severity, status, counts.",
    ),
    "scheduler": (
        "headrace.cli.schedule_commands",
        "Trigger runs of scheduled pipelines as their intervals become due, until stopped.",
    ),
    "backfill": (
        "headrace.cli.schedule_commands",
        "Run PIPELINE once per interval from --start to --end, oldest first; resumable.",
    ),
    "query": (
        "headrace.cli.analytics_commands",
        "Run SQL over the warehouse and files; print a table, CSV or JSON.",
    ),
    "profile": (
        "headrace.cli.analytics_commands",
        "Profile every column of a file or table: type, nulls, distinct, min/max, top values, histogram.",
    ),
    "worker": (
        "headrace.cli.queue_commands",
        "Process jobs of QUEUE until SIGTERM/SIGINT; running jobs finish first.",
    ),
    "queue": ("headrace.cli.queue_commands", "Inspect and feed BullMQ-compatible job queues."),
    "lineage": (
        "headrace.cli.lineage_commands",
        "Show which pipelines and datasets feed DATASET (upstream) and which it feeds (downstream).",
    ),
    "docs": (
        "headrace.cli.lineage_commands",
        "Build the catalog (like dbt docs): pipelines, datasets with columns, docs, checks, freshness, lineage.",
    ),
    "stream": (
        "headrace.cli.stream_commands",
        "Consume a stream into its table exactly once until SIGTERM/Ctrl-C (finishes the batch).",
    ),
    "mcp": (
        "headrace.cli.mcp_commands",
        "Serve pipelines, runs, logs, checks, lineage and read-only warehouse queries to AI assistants (MCP).",
    ),
    "vars": (
        "headrace.cli.vars_commands",
        "Variables tasks read with ctx.var(name): get, set, list, delete.",
    ),
    "web": (
        "headrace.cli.web_commands",
        "Serve runs, tasks, logs and checks in a browser, with actions (trigger, resume, retry, backfill), /api and /metrics.",
    ),
}

#: The root options, as Typer shows them.
OPTIONS = (
    ("--debug", "Show full tracebacks on errors."),
    ("--install-completion", "Install completion for the current shell."),
    (
        "--show-completion",
        "Show completion for the current shell, to copy it or customize the installation.",
    ),
    ("--help", "Show this message and exit."),
)


def root_help() -> str:
    """The text of ``headrace --help``: usage, options and every command with its help."""
    lines = ["Usage: headrace [OPTIONS] COMMAND [ARGS]...", "", f"  {HELP}", "", "Options:"]
    width = max(len(name) for name, _ in OPTIONS)
    lines += [f"  {name:<{width}}  {text}" for name, text in OPTIONS]
    lines += ["", "Commands:"]
    width = max(len(name) for name in COMMANDS)
    lines += [f"  {name:<{width}}  {short}" for name, (_, short) in COMMANDS.items()]
    lines += [
        "",
        "Exit codes: 0 success, 1 run failed, 2 usage, 3 not found, 4 configuration, 5 service unreachable.",
    ]
    return "\n".join(lines) + "\n"
