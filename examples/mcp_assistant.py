"""What an AI assistant sees through ``headrace mcp``: the questions of a morning after a failure.

What it does, in order:
1. runs ``examples/hello_pipeline.py`` into a state store in FOLDER (as ``headrace run``
   would), and writes a small table into the embedded DuckDB warehouse;
2. starts ``headrace mcp --pipelines examples/`` as a subprocess, exactly as a desktop
   assistant does, and talks to it over stdio with the official MCP Python client;
3. asks what an assistant would: the tools on offer, the pipelines (schedule, owner,
   next run), the last runs, one run's tasks and attempts, a task's log tail, a
   read-only SQL query — and shows that a write through ``query`` is refused.

Run it:  python examples/mcp_assistant.py [FOLDER]
(FOLDER defaults to a temporary directory.) To register the server with an assistant,
see "MCP server for assistants" in the README.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import duckdb
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from headrace.config import Settings
from headrace.engine import Runner, load_pipelines
from headrace.state import open_store

HERE = Path(__file__).resolve().parent


def prepare(folder: Path) -> tuple[dict[str, str], str]:
    """Run the hello pipeline and fill a warehouse table; returns the server's environment and the run id."""
    env = {
        "HEADRACE_HOME": str(folder / ".headrace"),
        "HEADRACE_CONN_WAREHOUSE": f"duckdb:///{folder}/warehouse.duckdb",
    }
    settings = Settings.from_env(cwd=folder, environ=env)
    with open_store(settings.state_url) as store:
        hello = load_pipelines(HERE / "hello_pipeline.py")["hello"]
        result = Runner(store, executor="inprocess", settings=settings).run(
            hello, datetime(2024, 1, 1, tzinfo=UTC)
        )
    print(f"ran pipeline hello: run {result.run_id} {result.state}")
    with duckdb.connect(str(folder / "warehouse.duckdb")) as con:
        con.execute(
            "CREATE OR REPLACE TABLE greetings AS SELECT * FROM (VALUES ('hello', 5), ('bonjour', 7)) t(word, length)"
        )
    return env, result.run_id


def headrace_command() -> list[str]:
    script = Path(sys.executable).parent / "headrace"
    return (
        [str(script)]
        if script.exists()
        else [sys.executable, "-c", "from headrace.cli import main; main()"]
    )


def first_text(result: Any) -> str:
    return "\n".join(c.text for c in result.content if hasattr(c, "text"))


async def ask(env: dict[str, str], run_id: str, folder: Path) -> None:
    command = headrace_command()
    server = StdioServerParameters(
        command=command[0],
        args=[*command[1:], "mcp", "--pipelines", str(HERE / "hello_pipeline.py")],
        env={**{k: v for k, v in os.environ.items() if not k.startswith("HEADRACE_")}, **env},
        cwd=str(folder),
    )
    async with Client(server, read_timeout_seconds=60) as client:
        tools = sorted(t.name for t in (await client.list_tools()).tools)
        print(f"tools: {', '.join(tools)}")
        pipelines = json.loads(first_text(await client.call_tool("list_pipelines", {})))[
            "pipelines"
        ]
        for p in pipelines:
            print(
                f"pipeline {p['name']}: schedule {p['schedule']}, owner {p['owner']}, next run {p['next_run']}"
            )
        runs = json.loads(first_text(await client.call_tool("list_runs", {"limit": 5})))["runs"]
        print(f"runs: {', '.join(r['run_id'] + ' ' + r['state'] for r in runs)}")
        detail = json.loads(first_text(await client.call_tool("get_run", {"run_id": run_id})))
        for task in detail["tasks"]:
            if task["map_index"] < 0:
                print(f"  {task['task_id']}: {task['state']}, attempts {task['attempt']}")
        logs = first_text(
            await client.call_tool(
                "task_logs", {"run_id": run_id, "task": "fetch_greetings", "tail": 3}
            )
        )
        print(
            "log tail of fetch_greetings:\n"
            + "\n".join("  " + line[:120] for line in logs.splitlines())
        )
        answer = await client.call_tool(
            "query", {"sql": "SELECT word, length FROM greetings ORDER BY length"}
        )
        print("query:\n" + "\n".join("  " + line for line in first_text(answer).splitlines()))
        refused = await client.call_tool("query", {"sql": "DROP TABLE greetings"})
        print(f"DROP TABLE through query: refused={refused.is_error}: {first_text(refused)}")


def main(folder: Path) -> None:
    env, run_id = prepare(folder)
    anyio.run(ask, env, run_id, folder)
    print("server stopped")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        tmp = Path(tempfile.mkdtemp(prefix="headrace-mcp-"))
        try:
            main(tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
