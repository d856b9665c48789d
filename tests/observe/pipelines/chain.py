"""Two pipelines chained through PostgreSQL: files -> pg ``people`` -> DuckDB ``people_clean``.

Connections: ``pg`` (PostgreSQL with ``?schema=``) and ``warehouse`` (DuckDB); the landed
CSV sits beside this file.
"""

from __future__ import annotations

import os

from headrace import destination, file_source, full, sql_source, sync
from headrace.quality import matches_regex

LANDING = os.path.join(os.path.dirname(os.path.abspath(__file__)), "people.csv")

raw = sync(
    "raw_people",
    source=file_source(LANDING),
    incremental=full(),
    destination=destination("pg", table="people", mode="replace", doc="People as landed"),
)
ingest = raw.pipeline(name="ingest", owner="landing-team", tags=["raw"])

clean = sync(
    "clean_people",
    source=sql_source("pg", table="people"),
    incremental=full(),
    transform="SELECT id, upper(name) AS name, name || ' <' || email || '>' AS contact FROM rows",
    checks=[matches_regex("contact", r".+@.+", severity="quarantine", reason="bad email")],
    destination=destination(
        "warehouse",
        table="people_clean",
        mode="replace",
        doc="People with a contact line",
        columns={"contact": "Name and e-mail"},
    ),
)
publish = clean.pipeline(name="publish", owner="analytics", schedule="0 6 * * *", tags=["mart"])
