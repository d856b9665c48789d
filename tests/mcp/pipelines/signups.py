"""Sign-ups for the MCP server's lineage tool: a CSV synced into the ``lake`` DuckDB
(connection ``lake``), then a SQL task that counts them by e-mail domain. Both record
their lineage in the state store: file -> ``signups`` -> ``signup_domains``."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from headrace import destination, file_source, pipeline, sync
from headrace.quality import matches_regex
from headrace.tasks.sql_statement import sql_task

load_signups = sync(
    "load_signups",
    source=file_source(str(Path(__file__).with_name("signups.csv"))),
    checks=[
        matches_regex(
            "email", r"^[^@\s]+@[^@\s]+$", severity="quarantine", reason="email is not valid"
        )
    ],
    destination=destination("lake", table="signups", mode="replace"),
)

count_domains = sql_task(
    "CREATE OR REPLACE TABLE signup_domains AS "
    "SELECT split_part(email, '@', 2) AS domain, count(*) AS signups FROM signups GROUP BY 1",
    conn="lake",
    task_id="count_domains",
)


@pipeline(start_date=datetime(2024, 1, 1), owner="growth")
def signups():
    """Sign-ups into the lake, counted by domain."""
    load_signups() >> count_domains()
