"""OpenLineage events through the engine: a real HTTP receiver validates each against the
spec's JSON schema; the reference pipeline's sync names its datasets and column lineage;
a receiver that is down costs one warning and never the run."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from headrace.config import LineageSettings, Settings
from headrace.engine import Runner
from headrace.engine.loader import load_pipelines
from headrace.pipeline import pipeline, task
from headrace.state import open_store

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((Path(__file__).parent / "openlineage_schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker())


class Receiver:
    """A Marquez-like endpoint: POST /api/v1/lineage, each body validated, 201 or 400;
    connections kept alive (HTTP/1.1), each counted in ``connections``."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.invalid: list[str] = []
        self.connections = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                outer.connections += 1

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                errors = [e.message for e in VALIDATOR.iter_errors(body)]
                ok = self.path == "/api/v1/lineage" and not errors
                if ok:
                    outer.events.append(body)
                else:
                    outer.invalid.append(f"{self.path}: {errors}")
                self.send_response(201 if ok else 400)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def run_with(settings: Settings, pipe: Any) -> Any:
    with (
        open_store(settings.state_url) as store,
        Runner(store, "inprocess", settings=settings) as runner,
    ):
        result = runner.run(pipe)
    return result  # Runner.__exit__ flushed the events


@task
def first() -> int:
    return 1


@task(retries=0)
def second(x: int) -> int:
    raise ValueError(f"bad input {x}")


@pipeline(owner="team-a", tags=["demo"])
def flaky_pair() -> None:
    """Two tasks; the second fails."""
    second(first())


def test_reference_pipeline_events_are_valid_and_name_datasets(
    tmp_path: Path, receiver: Receiver
) -> None:
    settings = Settings(
        home=tmp_path,
        state_url=f"sqlite:///{tmp_path / 'state.db'}",
        lineage=LineageSettings(url=receiver.url, namespace="acme"),
    )
    etl = load_pipelines(ROOT / "examples" / "customer_etl.py")["customer_etl"]
    result = run_with(settings, etl)
    assert result.state == "success"
    assert receiver.invalid == []
    kinds = [(e["job"]["name"], e["eventType"]) for e in receiver.events]
    assert kinds == [
        ("customer_etl", "START"),
        ("customer_etl.customers", "START"),
        ("customer_etl.customers", "COMPLETE"),
        ("customer_etl", "COMPLETE"),
    ]
    complete = receiver.events[2]
    run_start = receiver.events[0]
    assert complete["run"]["facets"]["parent"]["run"]["runId"] == run_start["run"]["runId"]
    assert complete["job"]["namespace"] == "acme"
    (source,) = complete["inputs"]
    (target,) = complete["outputs"]
    assert (
        source["namespace"] == f"sqlite://{tmp_path / 'demo_crm.db'}"
        and source["name"] == "customers"
    )
    assert target["namespace"] == f"duckdb://{tmp_path / 'warehouse.duckdb'}"
    assert target["name"] == "warehouse.main.customers"
    fields = {f["name"]: f["type"] for f in target["facets"]["schema"]["fields"]}
    assert {"customer_id", "email", "full_name", "email_domain"} <= set(
        fields
    ) and "email_rank" not in fields
    lineage = target["facets"]["columnLineage"]["fields"]
    assert [i["field"] for i in lineage["email"]["inputFields"]] == ["email"]
    assert lineage["email"]["inputFields"][0]["name"] == "customers"
    assert sorted(i["field"] for i in lineage["full_name"]["inputFields"]) == [
        "first_name",
        "last_name",
    ]
    loaded = result.result_of("customers")["loaded"]
    assert target["outputFacets"]["outputStatistics"]["rowCount"] == loaded > 0
    assertions = target["facets"]["dataQualityAssertions"]["assertions"]
    assert {"assertion": "not_null(customer_id)", "column": "customer_id", "success": True} in [
        {k: a[k] for k in ("assertion", "column", "success")} for a in assertions
    ]
    assert any(not a["success"] for a in assertions)  # the demo data has quarantined rows


def test_a_failing_task_sends_fail_with_the_error(tmp_path: Path, receiver: Receiver) -> None:
    settings = Settings(
        home=tmp_path,
        state_url=f"sqlite:///{tmp_path / 'state.db'}",
        lineage=LineageSettings(url=receiver.url),
    )
    result = run_with(settings, flaky_pair)
    assert result.state == "failed"
    assert receiver.invalid == []
    by_job = {(e["job"]["name"], e["eventType"]): e for e in receiver.events}
    failed = by_job[("flaky_pair.second", "FAIL")]
    assert "ValueError: bad input 1" in failed["run"]["facets"]["errorMessage"]["message"]
    assert ("flaky_pair.first", "COMPLETE") in by_job
    run_fail = by_job[("flaky_pair", "FAIL")]
    assert run_fail["job"]["facets"]["ownership"]["owners"] == [{"name": "team-a"}]
    assert "second" in run_fail["run"]["facets"]["errorMessage"]["message"]


def test_receiver_down_the_run_succeeds_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    down = Receiver()
    url = down.url
    down.close()  # nothing listens on that port any more
    settings = Settings(
        home=tmp_path,
        state_url=f"sqlite:///{tmp_path / 'state.db'}",
        lineage=LineageSettings(url=url, timeout=1.0),
    )
    with caplog.at_level(logging.WARNING, logger="headrace.lineage"):
        result = run_with(settings, flaky_pair)
        result2 = run_with(replace(settings), first_only)
    assert result.state == "failed" and result2.state == "success"  # the run's own outcome
    warnings = [r for r in caplog.records if "dropped" in r.getMessage()]
    # one for the outage: the two Runners share the process's sender; not one per event
    assert len(warnings) == 1


@pipeline
def first_only() -> None:
    first()


def test_file_transport_writes_one_event_a_line(tmp_path: Path) -> None:
    out = tmp_path / "events.jsonl"
    settings = Settings(
        home=tmp_path,
        state_url=f"sqlite:///{tmp_path / 'state.db'}",
        lineage=LineageSettings(transport="file", file=str(out)),
    )
    assert run_with(settings, first_only).state == "success"
    events = [json.loads(line) for line in out.read_text().splitlines()]
    assert [e["eventType"] for e in events] == ["START", "START", "COMPLETE", "COMPLETE"]
    for e in events:
        VALIDATOR.validate(e)


def test_openlineage_environment_is_read_at_the_edge(tmp_path: Path) -> None:
    config = tmp_path / "openlineage.yml"
    config.write_text(
        "transport:\n  type: http\n  url: http://marquez:5000\n  auth:\n    type: api_key\n    apiKey: s3cret\n"
    )
    settings = Settings.load(
        tmp_path, {"OPENLINEAGE_CONFIG": str(config), "OPENLINEAGE_NAMESPACE": "prod"}
    )
    assert (settings.lineage.kind, settings.lineage.url, settings.lineage.namespace) == (
        "http",
        "http://marquez:5000",
        "prod",
    )
    assert settings.lineage.api_key == "s3cret" and "s3cret" not in repr(settings)
    assert Settings.load(tmp_path, {"OPENLINEAGE_URL": "http://ol:5000"}).lineage.kind == "http"
    assert (
        Settings.load(
            tmp_path, {"OPENLINEAGE_URL": "http://ol:5000", "OPENLINEAGE_DISABLED": "true"}
        ).lineage.kind
        is None
    )
    assert Settings.from_json(settings.to_json()).lineage == settings.lineage


def test_sql_task_names_its_tables_and_columns(
    tmp_path: Path, receiver: Receiver, pg_schema
) -> None:
    from headrace.tasks.sql_statement import sql_task

    url, schema = pg_schema
    pg = f"{url}?schema={schema}"
    setup = sql_task(
        [
            "CREATE TABLE orders (id int, customer_id int, amount numeric)",
            "CREATE TABLE customers (id int, name text)",
            "INSERT INTO orders VALUES (1, 1, 10), (2, 1, 5), (3, 2, 7)",
            "INSERT INTO customers VALUES (1, 'ann'), (2, 'bob')",
            "CREATE TABLE totals (customer text, total numeric)",
        ],
        conn="pg",
        task_id="setup",
    )
    rollup = sql_task(
        "INSERT INTO totals (customer, total) SELECT c.name, sum(o.amount) FROM orders o "
        "JOIN customers c ON c.id = o.customer_id GROUP BY c.name",
        conn="pg",
        task_id="rollup",
    )

    @pipeline(name="sql_rollup")
    def sql_rollup() -> None:
        setup() >> rollup()

    settings = Settings(
        home=tmp_path,
        state_url=f"sqlite:///{tmp_path / 'state.db'}",
        connections={"pg": pg},
        lineage=LineageSettings(url=receiver.url),
    )
    assert run_with(settings, sql_rollup).state == "success"
    assert receiver.invalid == []
    (complete,) = [
        e
        for e in receiver.events
        if e["job"]["name"] == "sql_rollup.rollup" and e["eventType"] == "COMPLETE"
    ]
    db = url.rsplit("/", 1)[1]
    assert {(d["namespace"], d["name"]) for d in complete["inputs"]} == {
        ("postgres://127.0.0.1:5432", f"{db}.{schema}.orders"),
        ("postgres://127.0.0.1:5432", f"{db}.{schema}.customers"),
    }
    (out,) = complete["outputs"]
    assert out["name"] == f"{db}.{schema}.totals"
    fields = out["facets"]["columnLineage"]["fields"]
    assert [(i["name"].rsplit(".", 1)[1], i["field"]) for i in fields["total"]["inputFields"]] == [
        ("orders", "amount")
    ]
    assert [
        (i["name"].rsplit(".", 1)[1], i["field"]) for i in fields["customer"]["inputFields"]
    ] == [("customers", "name")]
    assert "INSERT INTO totals" in complete["job"]["facets"]["sql"]["query"]
    assert out["outputFacets"]["outputStatistics"]["rowCount"] == 2


FLAKY: dict[str, bool] = {}


@task(retries=0)
def fails_once() -> int:
    if not FLAKY.get("done"):
        FLAKY["done"] = True
        raise ValueError("first run fails")
    return 2


@task
def interrupted() -> int:
    raise KeyboardInterrupt


@pipeline
def resumable() -> None:
    fails_once()


@pipeline
def stopped() -> None:
    interrupted()


def test_resume_sends_running_and_an_interrupt_sends_abort(
    tmp_path: Path, receiver: Receiver
) -> None:
    from headrace.engine.runner import RunInterrupted

    settings = Settings(
        home=tmp_path,
        state_url=f"sqlite:///{tmp_path / 'state.db'}",
        lineage=LineageSettings(url=receiver.url),
    )
    FLAKY.clear()
    with (
        open_store(settings.state_url) as store,
        Runner(store, "inprocess", settings=settings) as runner,
    ):
        first = runner.run(resumable)
        assert first.state == "failed"
        resumed = runner.resume(first.run_id, resumable)
        assert resumed.state == "success", resumed.task("fails_once").error
        with pytest.raises(RunInterrupted):
            runner.run(stopped)
    assert receiver.invalid == []
    runs = [
        (e["job"]["name"], e["eventType"], e["run"]["runId"])
        for e in receiver.events
        if "." not in e["job"]["name"]
    ]
    resumable_runs = [(kind, rid) for name, kind, rid in runs if name == "resumable"]
    assert [k for k, _ in resumable_runs] == ["START", "FAIL", "RUNNING", "COMPLETE"]
    assert len({rid for _, rid in resumable_runs}) == 1  # one OpenLineage run, resumed
    stopped_events = [e for e in receiver.events if e["job"]["name"] == "stopped"]
    assert [e["eventType"] for e in stopped_events] == ["START", "ABORT"]
    assert "interrupted" in stopped_events[1]["run"]["facets"]["errorMessage"]["message"]
    tasks = [e["eventType"] for e in receiver.events if e["job"]["name"] == "resumable.fails_once"]
    assert tasks == [
        "START",
        "FAIL",
        "RUNNING",
        "COMPLETE",
    ]  # the task tried again in the same OL run


def test_a_streamed_sync_sends_the_checks_of_all_its_batches(
    tmp_path: Path, receiver: Receiver
) -> None:
    """No transform and row checks only: the sync streams batch by batch (two files, two
    batches); the dataQualityAssertions facet sums what every batch's checks found."""
    from headrace import destination, file_source, sync
    from headrace.quality import matches_regex, not_null
    from headrace.sync.execute import streamable

    (tmp_path / "people_1.csv").write_text("id,email\n1,a@x.org\n2,nope\n3,c@x.org\n")
    (tmp_path / "people_2.csv").write_text(
        "id,email\n4,d@x.org\n5,nope\n6,\n7,g@x.org\n"
    )  # "" is text
    people = sync(
        "people",
        source=file_source(str(tmp_path / "people_*.csv")),
        checks=[
            not_null("email", severity="quarantine"),
            matches_regex("email", r".+@.+", severity="quarantine", reason="bad email"),
        ],
        destination=destination("warehouse", table="people"),
    )
    assert streamable(people)
    settings = Settings(
        home=tmp_path,
        state_url=f"sqlite:///{tmp_path / 'state.db'}",
        lineage=LineageSettings(url=receiver.url),
    )
    result = run_with(settings, people.pipeline(name="streamed"))
    assert result.state == "success" and result.result_of("people")["quarantined"] == 3
    assert receiver.invalid == []
    (complete,) = [
        e
        for e in receiver.events
        if (e["job"]["name"], e["eventType"]) == ("streamed.people", "COMPLETE")
    ]
    assertions = complete["outputs"][0]["facets"]["dataQualityAssertions"]["assertions"]
    got = {a["assertion"]: (a["success"], a["actual"]) for a in assertions}
    assert got == {"not_null(email)": (True, "0"), "matches_regex(email)": (False, "3")}  # 1 + 2


def test_events_have_the_shape_the_client_classes_give() -> None:
    """Events are dicts built without the client's attrs classes on the hot path: each
    part equals what the client's classes, serialised by its Serde, make of the same data."""
    from datetime import UTC, datetime

    from openlineage.client.event_v2 import InputDataset, OutputDataset
    from openlineage.client.facet_v2 import column_lineage_dataset as cl
    from openlineage.client.facet_v2 import data_quality_assertions_dataset as dq
    from openlineage.client.facet_v2 import (
        nominal_time_run,
        output_statistics_output_dataset,
        parent_run,
    )
    from openlineage.client.facet_v2 import schema_dataset as sd
    from openlineage.client.serde import Serde

    from headrace.observe.openlineage import LineageNote, build_event, run_uuid

    src = {"namespace": "file", "name": "/in/people.csv"}
    lineage = {
        "inputs": [{**src, "fields": [{"name": "email", "type": "string"}]}],
        "outputs": [
            {
                "namespace": "duckdb:///w.duckdb",
                "name": "w.main.people",
                "fields": [{"name": "email", "type": "string", "description": "their address"}],
                "columns": {
                    "email": {
                        "inputs": [{**src, "field": "email"}],
                        "type": "DIRECT",
                        "subtype": "IDENTITY",
                    }
                },
                "checks": [
                    {
                        "expectation": "not_null(email)",
                        "column": "email",
                        "severity": "quarantine",
                        "status": "failed",
                        "failed": 2,
                        "total": 9,
                    }
                ],
            }
        ],
    }
    start, end = datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 2, tzinfo=UTC)
    event = build_event(
        LineageNote(
            "COMPLETE", "r1", "p", "t", -1, (start, end), result={"loaded": 7, "lineage": lineage}
        ),
        "ns",
    )
    schema = sd.SchemaDatasetFacet(
        fields=[sd.SchemaDatasetFacetFields(name="email", type="string")]
    )
    assert event["inputs"] == [
        Serde.to_dict(
            InputDataset(namespace="file", name="/in/people.csv", facets={"schema": schema})
        )
    ]
    output = OutputDataset(
        namespace="duckdb:///w.duckdb",
        name="w.main.people",
        facets={
            "schema": sd.SchemaDatasetFacet(
                fields=[
                    sd.SchemaDatasetFacetFields(
                        name="email", type="string", description="their address"
                    )
                ]
            ),
            "columnLineage": cl.ColumnLineageDatasetFacet(
                fields={
                    "email": cl.Fields(
                        inputFields=[
                            cl.InputField(
                                namespace="file",
                                name="/in/people.csv",
                                field="email",
                                transformations=[
                                    cl.Transformation(type="DIRECT", subtype="IDENTITY")
                                ],
                            )
                        ]
                    )
                }
            ),
            # the client types this facet as an input facet; the spec allows it on outputs too
            "dataQualityAssertions": dq.DataQualityAssertionsDatasetFacet(
                assertions=[
                    dq.Assertion(  # type: ignore[dict-item]
                        assertion="not_null(email)",
                        success=False,
                        column="email",
                        severity="quarantine",
                        actual="2",
                        expected="0",
                    )
                ]
            ),
        },
        outputFacets={
            "outputStatistics": output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
                rowCount=7
            )
        },
    )
    assert event["outputs"] == [Serde.to_dict(output)]
    facets = event["run"]["facets"]
    assert facets["nominalTime"] == Serde.to_dict(
        nominal_time_run.NominalTimeRunFacet(
            nominalStartTime=start.isoformat(), nominalEndTime=end.isoformat()
        )
    )
    assert facets["parent"] == Serde.to_dict(
        parent_run.ParentRunFacet(
            run=parent_run.Run(runId=run_uuid("r1")), job=parent_run.Job(namespace="ns", name="p")
        )
    )
    VALIDATOR.validate(json.loads(json.dumps(event)))


def test_the_http_body_is_the_event_build_event_makes() -> None:
    """The HTTP transport's body is put together from parts encoded once (job, a run's
    steady facets): for every kind of event it parses to what build_event gives."""
    from datetime import UTC, datetime

    from headrace.observe.openlineage import LineageNote, build_event, event_json

    day = (datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 2, tzinfo=UTC))
    job = {"doc": 'Loads "people"\n(daily)', "owner": "team-a", "tags": ["pii", "daily"]}
    lineage = {
        "inputs": [{"namespace": "file", "name": "/in/people.csv", "fields": []}],
        "outputs": [
            {
                "namespace": "duckdb:///w.duckdb",
                "name": "w.main.people",
                "fields": [{"name": "email", "type": "string"}],
                "columns": {
                    "email": {
                        "inputs": [{"namespace": "file", "name": "/in/people.csv", "field": "e"}],
                        "type": "DIRECT",
                        "subtype": "IDENTITY",
                    }
                },
            }
        ],
    }
    checks = [
        {
            "expectation": "not_null(email)",
            "column": "email",
            "severity": "quarantine",
            "status": "passed",
            "failed": 0,
        }
    ]
    notes = [
        LineageNote("START", "r1", "p", nominal=day, job=job),
        LineageNote("START", "r1", "p", "t", -1, day, job={**job, "sql": "select 1"}),
        LineageNote(
            "COMPLETE",
            "r1",
            "p",
            "t",
            -1,
            day,
            result={"loaded": 3, "lineage": lineage},
            checks=checks,
            job=job,
        ),
        LineageNote("COMPLETE", "r1", "p", "u", -1, day),
        LineageNote("FAIL", "r1", "p", "v", -1, day, error='ValueError: "bad"\n  at line 2'),
        LineageNote("ABORT", "r3", "p", None, -1, None, error="interrupted by SIGTERM"),
        LineageNote("RUNNING", "r2", "p", "t", 3, day),
        LineageNote("START", "r4", "odd\x00end\x00name", "t", -1, day),  # encoded whole
    ]
    cache: dict[object, object] = {}
    for note in notes:
        body = event_json(note, "ns", cache)  # cached parts from the second note on
        expected = build_event(note, "ns")
        assert json.loads(body) == json.loads(json.dumps(expected)), note
        VALIDATOR.validate(json.loads(body))
    assert json.loads(event_json(notes[2], "ns", cache))["outputs"][0]["facets"]["schema"]


def test_run_ids_stay_the_uuid5_of_the_headrace_ids() -> None:
    """Ids sent before stay the same (a resumed run, a Marquez that has the earlier events)."""
    import uuid

    from headrace.observe.openlineage import run_uuid

    space = uuid.UUID("6f1c7a3e-2b1d-4c55-9a57-6b0e3a2f9d10")
    assert run_uuid("r1") == str(uuid.uuid5(space, "r1")) == "4a1a43d0-64b3-5610-bff0-1b854c745c32"
    for parts in (("r1", "load", -1), ("manual__2024-01-01", "café", 12), ("",)):
        assert run_uuid(*parts) == str(uuid.uuid5(space, "/".join(map(str, parts))))


EXITS_WITHOUT_CLOSING = """
import sys
from headrace.config import LineageSettings, Settings
from headrace.engine import Runner
from headrace.pipeline import pipeline, task
from headrace.state import open_store


@task
def one() -> int:
    return 1


@pipeline
def quick() -> None:
    one()


home, url = sys.argv[1], sys.argv[2]
settings = Settings(home=home, state_url=f"sqlite:///{home}/state.db", lineage=LineageSettings(url=url))
runner = Runner(open_store(settings.state_url), "inprocess", settings=settings)
assert runner.run(quick).state == "success"
# no runner.close(): the process ends with the last events still queued
"""


def test_a_process_that_exits_without_closing_its_runner_still_sends_its_events(
    tmp_path: Path, receiver: Receiver
) -> None:
    import subprocess
    import sys

    script = tmp_path / "exits.py"
    script.write_text(EXITS_WITHOUT_CLOSING)
    subprocess.run(
        [sys.executable, str(script), str(tmp_path), receiver.url], check=True, timeout=120
    )
    assert receiver.invalid == []
    assert [(e["job"]["name"], e["eventType"]) for e in receiver.events] == [
        ("quick", "START"),
        ("quick.one", "START"),
        ("quick.one", "COMPLETE"),
        ("quick", "COMPLETE"),
    ]


def test_runners_of_one_process_share_one_sender_and_connection(
    tmp_path: Path, receiver: Receiver
) -> None:
    settings = Settings(
        home=tmp_path,
        state_url=f"sqlite:///{tmp_path / 'state.db'}",
        lineage=LineageSettings(url=receiver.url),
    )

    def senders() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name == "headrace-openlineage"]

    before = senders()
    first_run = run_with(settings, first_only)  # each Runner is closed (flushed) after its run
    started = [t for t in senders() if t not in before]
    second_run = run_with(replace(settings), first_only)  # equal settings, a new Runner
    assert [t for t in senders() if t not in before] == started and len(started) == 1
    assert receiver.invalid == []
    runs = [
        (e["run"]["runId"], e["job"]["name"], e["eventType"])
        for e in receiver.events
        if e["job"]["name"] == "first_only"
    ]
    from headrace.observe.openlineage import run_uuid

    assert runs == [
        (run_uuid(r.run.run_id), "first_only", kind)
        for r in (first_run, second_run)
        for kind in ("START", "COMPLETE")
    ]
    assert len([e for e in receiver.events if e["job"]["name"] == "first_only.first"]) == 4
    assert receiver.connections == 1  # one kept-alive connection for both Runners
