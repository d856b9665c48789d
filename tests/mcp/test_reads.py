"""The read tools, resources and prompt, over stdio and streamable HTTP, checked against the store."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import psycopg
import pytest
from mcp_support import PIPELINES, SECRET, World, headrace_command, in_session, server_env

WRITE_TOOLS = {"trigger_run", "resume_run", "retry_task"}


def text(result: Any) -> str:
    return "\n".join(c.text for c in result.content if hasattr(c, "text"))


def data(result: Any) -> Any:
    assert not result.is_error, text(result)
    return json.loads(text(result))


@pytest.fixture(scope="session")
def answers(connect: Any, world: World) -> dict[str, Any]:
    """Every read call the tests check, made in one client session per transport."""
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    calls: dict[str, tuple[str, dict[str, Any]]] = {
        "pipelines": ("list_pipelines", {}),
        "runs": ("list_runs", {"pipeline": "shop", "limit": 50}),
        "runs_failed": ("list_runs", {"state": "failed"}),
        "runs_future": ("list_runs", {"since": future}),
        "runs_bad_state": ("list_runs", {"state": "faild"}),
        "runs_unknown_pipeline": ("list_runs", {"pipeline": "shopp"}),
        "run_failed": ("get_run", {"run_id": world.failed_run}),
        "run_prefix": ("get_run", {"run_id": world.duck_run[:14]}),
        "run_unknown": ("get_run", {"run_id": "zzzzzzzzzzzzzzzzzz"}),
        "logs": ("task_logs", {"run_id": world.failed_run, "task": "publish", "tail": 500}),
        "logs_tail": ("task_logs", {"run_id": world.failed_run, "task": "publish", "tail": 2}),
        "logs_unknown_task": ("task_logs", {"run_id": world.failed_run, "task": "publsh"}),
        "checks": ("run_checks", {"run_id": world.duck_run}),
        "quarantine_staged": ("quarantined_rows", {"run_id": world.duck_run}),
        "quarantine_duck": ("quarantined_rows", {"run_id": world.duck_run, "table": "orders"}),
        "quarantine_pg": (
            "quarantined_rows",
            {"run_id": world.pg_run, "table": "orders", "connection": "pgwh"},
        ),
        "lineage_duck": ("lineage", {"table": "orders"}),
        "lineage_pg": ("lineage", {"table": "orders", "connection": "pgwh"}),
        "lineage_signups": ("lineage", {"table": "signups"}),
        "lineage_signups_lake": ("lineage", {"table": "signups", "connection": "lake"}),
        "lineage_domains": ("lineage", {"table": "main.signup_domains"}),
        "lineage_unknown": ("lineage", {"table": "nosuch"}),
        "profile_duck": ("profile_table", {"table": "orders"}),
        "profile_pg": ("profile_table", {"table": "orders", "connection": "pgwh"}),
        "query_duck": (
            "query",
            {"sql": "SELECT order_id, email FROM orders ORDER BY order_id, _hr_load_id"},
        ),
        "query_pg": (
            "query",
            {"sql": "SELECT count(*) AS n, sum(amount) AS total FROM orders", "connection": "pgwh"},
        ),
        "query_limit": ("query", {"sql": "SELECT * FROM range(5000) t(i)", "limit": 3}),
        "query_wide": ("query", {"sql": "SELECT repeat('x', 100000) AS wide"}),
        "query_secret": ("query", {"sql": f"SELECT 'postgresql://u:{SECRET}@h/db' AS url"}),
        "files": ("list_files", {}),
        "preview_csv": ("preview_file", {"path": "exports/report.csv"}),
        "preview_parquet": (
            "preview_file",
            {"path": f"staging/shop/{world.duck_run}/orders.quarantine.parquet"},
        ),
        "unknown_tool": ("trigger_run", {"pipeline": "shop"}),
        "resume_without_write": ("resume_run", {"run_id": world.failed_run}),
    }

    async def scenario(client: Any) -> dict[str, Any]:
        out: dict[str, Any] = {"tools": {t.name: t for t in (await client.list_tools()).tools}}
        for key, (tool, args) in calls.items():
            out[key] = await client.call_tool(tool, args)
        out["resources"] = await client.list_resource_templates()
        out["doc"] = await client.read_resource("headrace://pipelines/shop/doc")
        out["source"] = await client.read_resource("headrace://pipelines/shop/source")
        out["index"] = await client.read_resource("headrace://pipelines")
        out["prompt"] = await client.get_prompt("explain_run_failure", {"run_id": world.failed_run})
        return out

    return in_session(connect(), scenario)


def test_tools_listed_without_write_tools(answers: dict[str, Any]) -> None:
    names = set(answers["tools"])
    assert {
        "list_pipelines",
        "list_runs",
        "get_run",
        "task_logs",
        "run_checks",
        "quarantined_rows",
        "lineage",
        "profile_table",
        "query",
        "list_files",
        "preview_file",
    } <= names
    assert not names & WRITE_TOOLS
    assert answers["unknown_tool"].is_error
    assert answers["resume_without_write"].is_error and "resume_run" in text(
        answers["resume_without_write"]
    )
    schema = answers["tools"]["query"].input_schema
    assert schema["properties"]["limit"]["maximum"] == 1000


def test_list_pipelines(answers: dict[str, Any], world: World) -> None:
    shop = {p["name"]: p for p in data(answers["pipelines"])["pipelines"]}["shop"]
    with world.store() as store:
        assert shop["runs"] == store.count_runs(pipeline="shop") == 3
        assert shop["last_run"]["run_id"] == store.list_runs(pipeline="shop", limit=1)[0].run_id
    assert (shop["schedule"], shop["owner"], shop["tags"]) == (
        "@daily",
        "shop-team",
        ["shop", "test"],
    )
    assert shop["tasks"] == ["orders", "load", "publish"]
    assert datetime.fromisoformat(shop["next_run"]) > datetime(2024, 1, 1, tzinfo=UTC)


def test_list_runs_filters(answers: dict[str, Any], world: World) -> None:
    with world.store() as store:
        expected = [r.run_id for r in store.list_runs(pipeline="shop", limit=50)]
    assert [r["run_id"] for r in data(answers["runs"])["runs"]] == expected
    failed = data(answers["runs_failed"])["runs"]  # still failed: resume_run was not offered
    assert [r["run_id"] for r in failed] == [world.failed_run]
    assert failed[0]["error"] == "task(s) did not succeed: publish"
    assert data(answers["runs_future"])["runs"] == []
    assert answers["runs_bad_state"].is_error and "failed" in text(answers["runs_bad_state"])
    assert answers["runs_unknown_pipeline"].is_error and "shop" in text(
        answers["runs_unknown_pipeline"]
    )


def test_get_run_tasks_attempts_errors(answers: dict[str, Any], world: World) -> None:
    detail = data(answers["run_failed"])
    with world.store() as store:
        tis = {ti.task_id: ti for ti in store.get_task_instances(world.failed_run)}
    tasks = {t["task_id"]: t for t in detail["tasks"]}
    assert {k: (t["state"], t["attempt"]) for k, t in tasks.items()} == {
        k: (str(ti.state), ti.attempt) for k, ti in tis.items()
    }
    assert tasks["publish"]["state"] == "failed"
    assert "cannot reach the report server with password ***" in tasks["publish"]["error"]
    # masked when written (headrace.masking), and again in the answer
    assert SECRET not in (tis["publish"].error or "") and SECRET not in str(detail)
    assert tasks["orders"]["duration_seconds"] is not None
    assert len(detail["checks"]["failed"]) == 2
    assert data(answers["run_prefix"])["run"]["run_id"] == world.duck_run
    assert answers["run_unknown"].is_error


def test_task_logs_tail_and_masking(answers: dict[str, Any], world: World) -> None:
    full = text(answers["logs"])
    assert "publishing with password ***" in full
    with world.store() as store:
        stored = "\n".join(log.text for log in store.get_logs(world.failed_run, "publish"))
    assert SECRET not in stored and SECRET not in full  # masked when written and when served
    total = len(stored.splitlines())
    tail = text(answers["logs_tail"]).splitlines()
    assert tail[0] == f"2 of {total} lines of publish in run {world.failed_run}"
    assert tail[-1].endswith(stored.splitlines()[-1].replace(SECRET, "***"))
    assert answers["logs_unknown_task"].is_error and "publish" in text(answers["logs_unknown_task"])


def test_checks_and_quarantine(answers: dict[str, Any], world: World) -> None:
    checks = data(answers["checks"])["checks"]
    with world.store() as store:
        stored = store.get_check_results(world.duck_run)
    assert sorted((c["expectation"], c["failed"], c["total"]) for c in checks) == sorted(
        (c.expectation, c.failed, c.total) for c in stored
    )
    staged = data(answers["quarantine_staged"])["tasks"]["orders"]
    assert (
        staged["rows"] == 2
        and "email is missing" in staged["table"]
        and "email is not valid" in staged["table"]
    )
    duck = data(answers["quarantine_duck"])["table"]
    assert duck.count(f"{world.duck_run}:load") == 2 and "email is missing" in duck
    assert world.failed_run not in duck  # only this run's loads
    pg = data(answers["quarantine_pg"])["table"]
    assert pg.count(f"{world.pg_run}:load") == 2 and "email is not valid" in pg


def test_lineage_from_the_loads_ledger(answers: dict[str, Any], world: World) -> None:
    duck = data(answers["lineage_duck"])
    with duckdb.connect(str(world.home / "warehouse.duckdb"), read_only=True) as con:
        loads = con.execute(
            "SELECT count(*) FROM _hr_loads WHERE table_name = 'orders'"
        ).fetchall()[0][0]
    assert [(f["pipeline"], f["source"], f["loads"]) for f in duck["loads"]] == [
        ("shop", "demo.orders", loads)
    ]
    assert duck["dataset"] is None  # the shop's hand-written load records no lineage
    pg = data(answers["lineage_pg"])
    assert [(f["pipeline"], f["loads"], f["rows_loaded"]) for f in pg["loads"]] == [("shop", 1, 3)]
    unknown = data(answers["lineage_unknown"])
    assert (unknown["dataset"], unknown["loads"]) == (None, [])


def test_lineage_from_the_recorded_graph_as_the_cli_shows_it(
    answers: dict[str, Any], world: World
) -> None:
    """The tool reads the state store's lineage table: the same graph as `headrace lineage`."""
    cli = subprocess.run(
        [*headrace_command(), "lineage", "signups", "--json"],
        env=server_env(world),
        cwd=world.home,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cli.returncode == 0, cli.stderr
    shown = json.loads(cli.stdout)
    got = data(answers["lineage_signups"])
    lake = f"duckdb://{world.home / 'lake.duckdb'}"
    assert got["dataset"]["uri"] == shown["dataset"]["uri"] == f"{lake}/lake.main.signups"
    assert (got["upstream"], got["downstream"]) == (shown["upstream"], shown["downstream"])
    assert [j["name"] for j in got["upstream"]["jobs"]] == ["signups.load_signups"]
    csv = str(PIPELINES / "signups.csv")
    assert {d["name"] for d in got["upstream"]["datasets"]} == {csv, "lake.main.signups"}
    assert [j["name"] for j in got["downstream"]["jobs"]] == ["signups.count_domains"]
    assert "lake.main.signup_domains" in {d["name"] for d in got["downstream"]["datasets"]}
    assert got["dataset"]["last_rows"] == 3  # the good rows of the last load; one was quarantined
    assert got["loads"] == []  # not the warehouse's table: its ledger is not read
    in_lake = data(answers["lineage_signups_lake"])  # the lake's own table: its ledger too
    assert in_lake["upstream"] == got["upstream"]
    assert [(f["pipeline"], f["rows_loaded"], f["rows_quarantined"]) for f in in_lake["loads"]] == [
        ("signups", 3, 1)
    ]
    domains = data(answers["lineage_domains"])
    assert [j["name"] for j in domains["upstream"]["jobs"]] == [
        "signups.count_domains",
        "signups.load_signups",
    ]
    assert domains["downstream"]["jobs"] == []


def test_profile(answers: dict[str, Any], world: World) -> None:
    duck = data(answers["profile_duck"])
    with duckdb.connect(str(world.home / "warehouse.duckdb"), read_only=True) as con:
        rows, emails = con.execute("SELECT count(*), count(DISTINCT email) FROM orders").fetchall()[
            0
        ]
    assert duck["rows"] == rows
    email = {c["name"]: c for c in duck["columns"]}["email"]
    assert email["distinct"] == emails
    pg = data(answers["profile_pg"])
    assert pg["rows"] == 3 and pg["sample"] is None
    assert {c["name"]: c for c in pg["columns"]}["amount"]["max"] == 50.0


def test_query_answers(answers: dict[str, Any], world: World) -> None:
    duck = text(answers["query_duck"]).splitlines()
    with duckdb.connect(str(world.home / "warehouse.duckdb"), read_only=True) as con:
        expected = con.execute(
            "SELECT order_id, email FROM orders ORDER BY order_id, _hr_load_id"
        ).fetchall()
    assert duck[1] == "order_id | email"
    assert duck[2:] == [f"{a} | {b}" for a, b in expected]
    pg = text(answers["query_pg"]).splitlines()
    with psycopg.connect(world.pg_url) as conn:
        n, total = conn.execute(
            f'SELECT count(*), sum(amount) FROM "{world.pg_schema}".orders'
        ).fetchall()[0]
    assert pg[2] == f"{n} | {total}"


def test_outputs_bounded_and_masked(answers: dict[str, Any]) -> None:
    limited = text(answers["query_limit"])
    assert "3 row(s)" in limited and "more rows exist" in limited
    assert len(limited.splitlines()) == 5  # header line, column names, 3 rows
    wide = text(answers["query_wide"])
    assert len(wide) < 300 and wide.endswith("…")
    assert SECRET not in text(answers["query_secret"]) and "u:***@h" in text(
        answers["query_secret"]
    )
    for key, value in answers.items():
        if hasattr(value, "content"):
            assert SECRET not in text(value), key


def test_files_listing_and_preview(answers: dict[str, Any], world: World) -> None:
    listed = data(answers["files"])
    paths = {e["path"]: e for e in listed["entries"]}
    assert (
        paths["exports/report.csv"]["bytes"]
        == (world.home / "exports" / "report.csv").stat().st_size
    )
    assert f"staging/shop/{world.duck_run}/orders.parquet" in paths
    assert paths["exports/escape"]["type"] == "symlink"
    assert not any(p.startswith("exports/escape/") for p in paths)  # a symlink is never followed
    csv = text(answers["preview_csv"]).splitlines()
    assert csv[1:] == ["region | total", "north | 10", "south | 20"]
    parquet = text(answers["preview_parquet"])
    assert "email is missing" in parquet and "_hr_reason" in parquet


def test_resources_and_prompt(answers: dict[str, Any], world: World) -> None:
    templates = {t.uri_template for t in answers["resources"].resource_templates}
    assert {"headrace://pipelines/{name}/doc", "headrace://pipelines/{name}/source"} <= templates
    doc = answers["doc"].contents[0].text
    assert "Loads the shop's orders" in doc and "**publish** (after: load)" in doc
    source = answers["source"].contents[0].text
    original = (PIPELINES / "shop.py").read_text()
    assert source.splitlines()[:30] == original.splitlines()[:30]
    # `password = <anything>` is masked even in code: a password written into a file never leaves
    assert "password = ***" in source and "password = urlsplit" in original
    assert json.loads(answers["index"].contents[0].text)["pipelines"][0]["name"] == "shop"
    prompt = answers["prompt"].messages[0].content.text
    assert world.failed_run in prompt and "publish: failed after 1 attempt(s)" in prompt
    assert "password ***" in prompt and SECRET not in prompt
    assert "not_null(email)" in prompt
