"""Every refused write, escape and bad argument, through a real server (stdio and HTTP).

Each refusal is checked twice: the tool answers with an error, and the warehouse /
the file system is unchanged afterwards.
"""

from __future__ import annotations

from typing import Any

import duckdb
import psycopg
import pytest
from mcp_support import World, in_session

DUCK_ATTACKS = {
    "insert": "INSERT INTO orders (order_id) VALUES (99)",
    "drop": "DROP TABLE orders",
    "delete_in_cte": "WITH gone AS (DELETE FROM orders RETURNING *) SELECT * FROM gone",
    "copy_to": "COPY orders TO '/tmp/hr_mcp_stolen.csv'",
    "copy_select": "COPY (SELECT * FROM orders) TO '/tmp/hr_mcp_stolen.csv'",
    "attach": "ATTACH '/tmp/hr_mcp_other.duckdb' AS other",
    "read_file": "SELECT * FROM read_csv('/etc/passwd')",
    "read_text": "SELECT * FROM read_text('/etc/hostname')",
    "multiple": "SELECT 1; DROP TABLE orders",
    "create_as": "CREATE TABLE stolen AS SELECT * FROM orders",
    "pragma": "PRAGMA enable_external_access",
    "set": "SET enable_external_access = true",
    "install": "INSTALL httpfs",
    "update": "UPDATE orders SET amount = 0",
}
PG_ATTACKS = {
    "insert": "INSERT INTO orders (order_id) VALUES (99)",
    "drop": "DROP TABLE orders",
    "pg_read_file": "SELECT pg_read_file('/etc/passwd')",
    "pg_ls_dir": "SELECT * FROM pg_ls_dir('/')",
    "copy_to": "COPY orders TO '/tmp/hr_mcp_stolen_pg.csv'",
    "copy_program": "COPY orders TO PROGRAM 'touch /tmp/hr_mcp_pwned'",
    "multiple": "SELECT 1; DROP TABLE orders",
    "commit_then_drop": "COMMIT; DROP TABLE orders",
    "delete_in_cte": "WITH gone AS (DELETE FROM orders RETURNING *) SELECT * FROM gone",
    "select_into": "SELECT * INTO stolen FROM orders",
    "set_config": "SELECT set_config('default_transaction_read_only', 'off', false)",
    "dblink": "SELECT * FROM dblink('dbname=test', 'DROP TABLE orders') AS t(x text)",
    "sleep": "SELECT pg_sleep(60)",
}
ESCAPES = [
    "../outside.txt",
    "/etc/passwd",
    "exports/../../x",
    "exports/escape/secret.txt",
    "exports/escape.txt",
    "staging/../../../etc/hostname",
]
BAD_ARGUMENTS = [
    ("query", {"sql": "SELECT 1", "limit": 0}),
    ("query", {"sql": "SELECT 1", "limit": 100000}),
    ("query", {"sql": "SELECT 1", "connection": "duckdb:///tmp/other.duckdb"}),
    ("query", {"sql": "SELECT 1", "connection": "secretdb"}),  # not a warehouse backend it can read
    ("query", {"sql": "SELECT 1", "connection": "nosuch"}),
    ("query", {"sql": ""}),
    ("get_run", {"run_id": "x' OR '1'='1"}),
    ("task_logs", {"run_id": "abc", "task": "publish", "tail": -5}),
    ("list_runs", {"since": "yesterday-ish"}),
    ("list_runs", {"state": "failed; DROP"}),
    ("profile_table", {"table": "orders\x00"}),
    ("preview_file", {"path": "a" * 2000}),
]


@pytest.fixture(scope="session")
def refusals(connect: Any, world: World) -> dict[str, Any]:
    """Every attack made in one client session per transport."""

    async def scenario(client: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, sql in DUCK_ATTACKS.items():
            out[f"duck:{name}"] = await client.call_tool("query", {"sql": sql})
        for name, sql in PG_ATTACKS.items():
            out[f"pg:{name}"] = await client.call_tool("query", {"sql": sql, "connection": "pgwh"})
        for path in ESCAPES:
            out[f"preview:{path}"] = await client.call_tool("preview_file", {"path": path})
            out[f"list:{path}"] = await client.call_tool("list_files", {"path": path})
        for i, (tool, args) in enumerate(BAD_ARGUMENTS):
            out[f"arg:{i}"] = await client.call_tool(tool, args)
        for uri in (
            "headrace://pipelines/..%2F..%2Fetc%2Fpasswd/source",
            "headrace://pipelines/../../etc/passwd/source",
        ):
            try:
                out[f"resource:{uri}"] = await client.read_resource(uri)
            except Exception as exc:  # the client raises a resource error instead of returning it
                out[f"resource:{uri}"] = exc
        return out

    return in_session(connect(), scenario)


def message(result: Any) -> str:
    return "\n".join(c.text for c in result.content if hasattr(c, "text"))


@pytest.mark.parametrize("name", sorted(DUCK_ATTACKS))
def test_duckdb_write_refused(refusals: dict[str, Any], world: World, name: str) -> None:
    result = refusals[f"duck:{name}"]
    assert result.is_error, message(result)
    assert "refused" in message(result) or "not allowed" in message(result)
    with duckdb.connect(str(world.home / "warehouse.duckdb"), read_only=True) as con:
        tables = {
            r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()
        }
        assert "stolen" not in tables and "orders" in tables
        amounts = con.execute("SELECT count(*), min(amount) FROM orders").fetchall()[0]
    assert amounts[0] == 6 and amounts[1] == 10.5


@pytest.mark.parametrize("name", sorted(PG_ATTACKS))
def test_postgres_write_refused(refusals: dict[str, Any], world: World, name: str) -> None:
    result = refusals[f"pg:{name}"]
    assert result.is_error, message(result)
    assert "root:" not in message(result)  # nothing of /etc/passwd came back
    with psycopg.connect(world.pg_url) as conn:
        tables = {
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                (world.pg_schema,),
            )
        }
        count = conn.execute(f'SELECT count(*) FROM "{world.pg_schema}".orders').fetchall()[0][0]
    assert "orders" in tables and "stolen" not in tables and count == 3


@pytest.mark.parametrize("path", ESCAPES)
def test_path_escape_refused(refusals: dict[str, Any], path: str) -> None:
    for kind in ("preview", "list"):
        result = refusals[f"{kind}:{path}"]
        assert result.is_error, message(result)
        assert "refused" in message(result)
        assert (
            "outside the home" not in message(result).split("refused:")[0]
        )  # no file content leaked
        assert "root:x" not in message(result)


@pytest.mark.parametrize("index", range(len(BAD_ARGUMENTS)))
def test_bad_arguments_refused(refusals: dict[str, Any], index: int) -> None:
    result = refusals[f"arg:{index}"]
    assert result.is_error, (BAD_ARGUMENTS[index], message(result))


def test_resource_name_cannot_escape(refusals: dict[str, Any]) -> None:
    answers = [v for k, v in refusals.items() if k.startswith("resource:")]
    assert len(answers) == 2
    for answer in answers:
        assert isinstance(answer, Exception), answer  # only pipelines of the folder, by name
        assert "root:x" not in str(answer)
