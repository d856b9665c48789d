"""The write tools: off by default, then trigger / resume / retry with an atomic claim.

Each test has a world of its own (a fresh home, store and warehouses), and drives a
real ``headrace mcp --allow-write`` subprocess.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
import duckdb
from mcp_support import (
    World,
    headrace_command,
    in_session,
    server_env,
    start_http,
    stdio_client,
    stop,
)


def text(result: Any) -> str:
    return "\n".join(c.text for c in result.content if hasattr(c, "text"))


def refusal(said: str) -> bool:
    """The loser's message: the run was running, or was taken between its read and its claim."""
    return "already running" in said or "just taken by another" in said


def data(result: Any) -> Any:
    assert not result.is_error, text(result)
    return json.loads(text(result))


def test_write_tools_trigger_resume_retry(write_world: World) -> None:
    async def scenario(client: Any) -> dict[str, Any]:
        names = {t.name for t in (await client.list_tools()).tools}
        return {
            "names": names,
            "trigger": await client.call_tool(
                "trigger_run", {"pipeline": "shop", "params": {"target": "pgwh"}}
            ),
            "bad_param": await client.call_tool(
                "trigger_run", {"pipeline": "shop", "params": {"nope": 1}}
            ),
            "unknown_pipeline": await client.call_tool("trigger_run", {"pipeline": "shopp"}),
            "resume": await client.call_tool("resume_run", {"run_id": write_world.failed_run}),
            "resume_again": await client.call_tool(
                "resume_run", {"run_id": write_world.failed_run}
            ),
            "retry": await client.call_tool(
                "retry_task", {"run_id": write_world.duck_run, "task": "publish"}
            ),
            "retry_unknown": await client.call_tool(
                "retry_task", {"run_id": write_world.duck_run, "task": "publsh"}
            ),
        }

    out = in_session(stdio_client(write_world, "--allow-write"), scenario)
    assert {"trigger_run", "resume_run", "retry_task"} <= out["names"]
    triggered = data(out["trigger"])
    assert triggered["state"] == "success" and triggered["executed"] is True
    with write_world.store() as store:
        run = store.get_run(triggered["run_id"])
        assert run.params == {"target": "pgwh"} and run.trigger == "manual"
        assert store.count_runs(pipeline="shop") == 4
    assert out["bad_param"].is_error and "nope" in text(out["bad_param"])
    assert out["unknown_pipeline"].is_error and "shop" in text(out["unknown_pipeline"])

    resumed = data(out["resume"])
    assert (resumed["run_id"], resumed["state"], resumed["executed"]) == (
        write_world.failed_run,
        "success",
        True,
    )
    assert data(out["resume_again"])["executed"] is False  # a successful run is not run again
    with write_world.store() as store:
        tis = {ti.task_id: ti for ti in store.get_task_instances(write_world.failed_run)}
        assert {k: ti.attempt for k, ti in tis.items()} == {"orders": 1, "load": 1, "publish": 2}

    retried = data(out["retry"])
    assert retried["state"] == "success"
    with write_world.store() as store:
        tis = {ti.task_id: ti for ti in store.get_task_instances(write_world.duck_run)}
        assert {k: ti.attempt for k, ti in tis.items()} == {"orders": 1, "load": 1, "publish": 2}
    assert out["retry_unknown"].is_error and "publish" in text(out["retry_unknown"])


def test_two_concurrent_resumes_run_the_tasks_once(write_world: World) -> None:
    """Two clients (over HTTP) resume the same failed run at once: one runs it, the other is refused."""
    server = start_http(write_world, "--allow-write")
    try:
        results: list[Any] = []

        async def resume(client: Any) -> None:
            async with client:
                results.append(
                    await client.call_tool("resume_run", {"run_id": write_world.failed_run})
                )

        async def both() -> None:
            async with anyio.create_task_group() as group:
                group.start_soon(resume, server.client())
                group.start_soon(resume, server.client())

        anyio.run(both)
    finally:
        stop(server.process)
    ok = [r for r in results if not r.is_error]
    refused = [r for r in results if r.is_error]
    executed = [data(r) for r in ok if data(r)["executed"]]
    assert len(executed) == 1, [text(r) for r in results]
    for r in refused + [r for r in ok if not data(r)["executed"]]:
        assert r.is_error and refusal(text(r)) or not data(r)["executed"]
    with write_world.store() as store:
        publish = {ti.task_id: ti for ti in store.get_task_instances(write_world.failed_run)}[
            "publish"
        ]
        assert publish.attempt == 2  # the failed first attempt and exactly one resume
    with duckdb.connect(str(write_world.home / "warehouse.duckdb"), read_only=True) as con:
        loads = con.execute("SELECT count(*) FROM _hr_loads").fetchall()[0][0]
    assert loads == 2  # the two original loads into DuckDB; the resume did not load again


def test_mcp_resume_racing_cli_resume_runs_the_tasks_once(write_world: World) -> None:
    """`headrace resume` and the resume_run tool on the same run at once: one runs it, the other is refused."""
    (write_world.home / "publish_sleeps").write_text("on")  # both overlap whichever starts first
    outcome: dict[str, Any] = {}

    async def by_mcp() -> None:
        async def call(client: Any) -> Any:
            return await client.call_tool("resume_run", {"run_id": write_world.failed_run})

        async with stdio_client(write_world, "--allow-write") as client:
            outcome["mcp"] = await call(client)

    async def by_cli() -> None:
        outcome["cli"] = await anyio.run_process(
            [*headrace_command(), "resume", write_world.failed_run, "--executor", "inprocess"],
            env=server_env(write_world),
            cwd=str(write_world.home),
            check=False,
        )

    async def both() -> None:
        async with anyio.create_task_group() as group:
            group.start_soon(by_mcp)
            group.start_soon(by_cli)

    anyio.run(both)
    cli_said = " ".join(outcome["cli"].stderr.decode().split())  # rich wraps lines
    mcp = outcome["mcp"]
    # each side ran the run, was refused, or (started late) found it already finished
    cli_refused = outcome["cli"].returncode != 0
    assert not cli_refused or refusal(cli_said), cli_said
    assert not mcp.is_error or refusal(text(mcp)), text(mcp)
    assert not (cli_refused and mcp.is_error)
    with write_world.store() as store:
        assert str(store.get_run(write_world.failed_run).state) == "success"
        publish = {ti.task_id: ti for ti in store.get_task_instances(write_world.failed_run)}[
            "publish"
        ]
        assert publish.attempt == 2
