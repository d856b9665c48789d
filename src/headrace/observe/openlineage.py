"""OpenLineage events for runs and tasks, shaped by the official client's classes.

A pipeline run is an OpenLineage run of job ``<pipeline>``; each task instance is a run
of job ``<pipeline>.<task>`` whose ``parent`` facet points at the pipeline run. Run ids
are UUIDs derived from headrace's ids (stable: a resumed run keeps its OpenLineage id).

Events: START when the run or task starts, RUNNING when a task is tried again, then
COMPLETE, FAIL (with the ``errorMessage`` facet) or ABORT (an interrupted run). A sync
task's COMPLETE carries its input and output datasets (named by
:mod:`headrace.observe.datasets`) with ``schema``, ``documentation``, ``columnLineage``,
``outputStatistics`` (rows loaded) and ``dataQualityAssertions`` (its checks) facets.

The transport (HTTP, file, console) comes from :class:`~headrace.config.LineageSettings`
read at the edge; the client's own environment lookup is not used below the edge
(``OPENLINEAGE_URL`` and friends are read by :mod:`headrace.config`). Events are sent
by a :class:`~headrace.observe.background.BackgroundSender`: never on the run's path.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from headrace.config import LineageSettings
from headrace.extras import require
from headrace.observe.background import BackgroundSender
from headrace.observe.lineage_http import KeepAliveHttpTransport

log = logging.getLogger("headrace.lineage")

PRODUCER = "https://github.com/headrace/headrace"
_ID_SPACE = uuid.UUID("6f1c7a3e-2b1d-4c55-9a57-6b0e3a2f9d10")


@functools.lru_cache(maxsize=4096)
def run_uuid(*parts: object) -> str:
    """A stable OpenLineage run id (UUID) for a headrace run or task instance (the ids of
    recent runs kept: each is asked for by every event of its run)."""
    return _uuid5("/".join(str(p) for p in parts))


def _uuid5(name: str) -> str:
    """``str(uuid.uuid5(_ID_SPACE, name))`` without the ``UUID`` object (a third of the time)."""
    digest = bytearray(
        hashlib.sha1(_ID_SPACE.bytes + name.encode(), usedforsecurity=False).digest()
    )
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    x = digest[:16].hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


@dataclass
class LineageNote:
    """What the engine hands over for one event (cheap to make: the event is built later).

    Args:
        state: START, RUNNING, COMPLETE, FAIL or ABORT.
        run_id, pipeline: the headrace run.
        task_id, map_index: the task instance, or None for the run itself.
        nominal: the run's data interval.
        error: the error of a FAIL/ABORT.
        result: a sync task's result (its ``lineage`` key names the datasets).
        checks: the task's check results (``CheckResultRecord``).
        job: pipeline/task metadata: doc, owner, tags, sql.
    """

    state: str
    run_id: str
    pipeline: str
    task_id: str | None = None
    map_index: int = -1
    nominal: tuple[datetime, datetime] | None = None
    error: str | None = None
    result: Any = None
    checks: list[Any] = field(default_factory=list)
    job: dict[str, Any] = field(default_factory=dict)
    when: datetime = field(default_factory=lambda: datetime.now(UTC))


def make_transport(settings: LineageSettings) -> Any:
    """The OpenLineage client transport the settings describe (HTTP: :class:`KeepAliveHttpTransport`)."""
    require("lineage", "openlineage.client", "OpenLineage events")
    kind = settings.kind
    if kind == "http":
        return KeepAliveHttpTransport(
            str(settings.url), settings.endpoint, settings.timeout, settings.api_key
        )
    if kind == "file":
        from openlineage.client.transport.file import FileConfig, FileTransport

        return FileTransport(FileConfig(log_file_path=str(settings.file), append=True))
    from openlineage.client.transport.console import ConsoleConfig, ConsoleTransport

    return ConsoleTransport(ConsoleConfig())


class OpenLineageEmitter:
    """Turns :class:`LineageNote` s into OpenLineage events and sends them off the hot path.

    Args:
        settings: the ``[lineage]`` section (transport, namespace, queue size).
        transport: an OpenLineage transport (default: from the settings); it is handed
            each event as a JSON-ready dict (the client's transports serialise dicts).
    """

    def __init__(self, settings: LineageSettings, transport: Any = None) -> None:
        self.settings = settings
        self.namespace = settings.namespace
        self.transport = transport if transport is not None else make_transport(settings)
        self.sender = BackgroundSender(self._send, "openlineage", settings.queue_size, log)
        self._facets: dict[Any, Any] = {}

    def note(self, note: LineageNote) -> None:
        """Queue one event (returns at once)."""
        self.sender.put(note)

    def flush(self, timeout: float = 5.0) -> bool:
        return self.sender.flush(timeout)

    def close(self) -> None:
        self.sender.close()

    def _send(self, note: LineageNote) -> None:
        post = getattr(self.transport, "post", None)
        if post is not None:  # ours: takes the JSON body, built from fragments encoded once
            post(event_json(note, self.namespace, self._facets))
        else:
            self.transport.emit(build_event(note, self.namespace, self._facets))


def build_event(
    note: LineageNote, namespace: str, cache: dict[Any, Any] | None = None
) -> dict[str, Any]:
    """The OpenLineage ``RunEvent`` of ``note``, as the JSON-ready dict the client's
    ``Serde.to_dict`` makes of it.

    The job's facets are made by the client's facet classes and serialised by its
    ``Serde`` once a process (they change only with the pipeline's definition); the
    run's steady facets (nominal time, parent, engine, once a run) and a sync's dataset
    facets are dicts of the same shape, each with its class's ``_producer`` and
    ``_schemaURL``; an event is a small dict around them (~20 µs instead of ~450 µs to
    build the client's attrs event and serialise it whole; tests compare both and
    validate against the spec's JSON schema).

    Args:
        cache: the run facets of recent runs, kept here by the caller between events.
    """
    task = note.task_id is not None
    inputs, outputs = datasets(note) if task and note.state == "COMPLETE" else ([], [])
    return {
        "eventTime": note.when.astimezone(UTC).isoformat(),
        "eventType": note.state,
        "inputs": inputs,
        "job": _job(namespace, *_job_key(note)),
        "outputs": outputs,
        "producer": PRODUCER,
        "run": {"facets": run_facets(note, namespace, cache), "runId": _note_run_uuid(note)},
        "schemaURL": _event_schema(),
    }


def event_json(note: LineageNote, namespace: str, cache: dict[Any, Any] | None = None) -> bytes:
    """:func:`build_event`'s event as compact JSON, put together from parts encoded once:
    the job once a definition, the run's steady facets once a run; only the time, the
    datasets of a sync and an error are encoded per event (a handful of µs instead of
    encoding the whole event each time; tests check both give the same document)."""
    task = note.task_id is not None
    if task and note.state == "COMPLETE" and note.result is not None:
        inputs, outputs = datasets(note)
        ins, outs = _dumps(inputs), _dumps(outputs)
    else:
        ins = outs = "[]"
    facets = _steady_json(note, namespace, {} if cache is None else cache)
    if note.error and note.state in ("FAIL", "ABORT"):
        error = _dumps(_error_facet(note.error))
        facets = (
            f'{facets[:-1]},"errorMessage":{error}}}'
            if facets != "{}"
            else f'{{"errorMessage":{error}}}'
        )
    return (
        f'{{"eventTime":"{note.when.astimezone(UTC).isoformat()}","eventType":{_constant(note.state)},'
        f'"inputs":{ins},"job":{_job_json(namespace, *_job_key(note))},"outputs":{outs},'
        f'"producer":{_constant(PRODUCER)},"run":{{"facets":{facets},'
        f'"runId":"{_note_run_uuid(note)}"}},"schemaURL":{_constant(_event_schema())}}}'
    ).encode()


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


@functools.lru_cache(maxsize=16)
def _constant(text: str) -> str:
    """A string every event has (producer, schema URL, event type) as JSON, encoded once."""
    return _dumps(text)


def _note_run_uuid(note: LineageNote) -> str:
    if note.task_id is None:
        return run_uuid(note.run_id)
    return run_uuid(note.run_id, note.task_id, note.map_index)


def _job_key(note: LineageNote) -> tuple[str, bool, Any, Any, tuple[Any, ...], Any]:
    """The arguments of :func:`_job` after the namespace."""
    meta = note.job
    tags = meta.get("tags")
    task = note.task_id is not None
    return (
        f"{note.pipeline}.{note.task_id}" if task else note.pipeline,
        task,
        meta.get("doc"),
        meta.get("owner"),
        tuple(tags) if tags else (),
        meta.get("sql"),
    )


def _plain(obj: Any) -> Any:
    """A client object (event part, facet) as the JSON-ready dict its ``Serde`` makes."""
    from openlineage.client.serde import Serde

    return Serde.to_dict(obj)


@functools.lru_cache(maxsize=1)
def _event_schema() -> str:
    """The ``schemaURL`` of a ``RunEvent`` in the installed client's spec version."""
    from openlineage.client.event_v2 import RunEvent

    return str(RunEvent._get_schema())


@functools.lru_cache(maxsize=1024)
def _job_json(
    namespace: str, name: str, task: bool, doc: Any, owner: Any, tags: tuple[Any, ...], sql: Any
) -> str:
    """:func:`_job` as compact JSON, encoded once per job definition."""
    return _dumps(_job(namespace, name, task, doc, owner, tags, sql))


@functools.lru_cache(maxsize=1024)
def _job(
    namespace: str, name: str, task: bool, doc: Any, owner: Any, tags: tuple[Any, ...], sql: Any
) -> dict[str, Any]:
    """The ``job`` of an event: built and serialised once per job definition (a changed
    doc or owner is a new key). Shared: never changed by its users."""
    from openlineage.client.event_v2 import Job

    meta = {"doc": doc, "owner": owner, "tags": tags, "sql": sql}
    return dict(_plain(Job(namespace=namespace, name=name, facets=job_facets(meta, task))))


def run_facets(
    note: LineageNote, namespace: str, cache: dict[Any, Any] | None = None
) -> dict[str, Any]:
    """nominalTime, parent (tasks), errorMessage (failures), processing_engine, as dicts."""
    steady = _steady(note, namespace, {} if cache is None else cache)[0]
    if not (note.error and note.state in ("FAIL", "ABORT")):
        return steady
    return {**steady, "errorMessage": _error_facet(note.error)}


def _steady(note: LineageNote, namespace: str, cache: dict[Any, Any]) -> tuple[dict[str, Any], str]:
    """The steady run facets of the note's run (or of its tasks) and their JSON, made the
    first time a run (or its first task) sends an event and kept in ``cache``."""
    key = (namespace, note.run_id, note.task_id is not None)
    steady = cache.get(key)
    if steady is None:
        if len(cache) > 1000:  # a long-lived runner: keep the facets of recent runs only
            cache.clear()
        facets = _steady_run_facets(note, namespace)
        steady = cache[key] = (facets, _dumps(facets))
    return steady


def _steady_json(note: LineageNote, namespace: str, cache: dict[Any, Any]) -> str:
    """The JSON of :func:`_steady`'s facets, filled into a template made once a pipeline
    (the run's values only are formatted for a new run: no dicts, no encoding)."""
    key = (namespace, note.run_id, note.task_id is not None, "json")
    text: str | None = cache.get(key)
    if text is None:
        if len(cache) > 1000:
            cache.clear()
        parts = _steady_template(
            namespace, note.pipeline, note.task_id is not None, note.nominal is not None
        )
        if parts is None:  # a name holding a hole's marker: encoded whole
            text = _steady(note, namespace, cache)[1]
        else:
            values = {
                _PARENT_HOLE: run_uuid(note.run_id),
                _END_HOLE: note.nominal[1].astimezone(UTC).isoformat() if note.nominal else "",
                _START_HOLE: note.nominal[0].astimezone(UTC).isoformat() if note.nominal else "",
            }
            text = "".join(values.get(p, p) for p in parts)
        cache[key] = text
    return text


#: Stand-ins for a run's own values in :func:`_steady_template` (NUL: not in any name).
_START_HOLE, _END_HOLE, _PARENT_HOLE = "\x00start\x00", "\x00end\x00", "\x00parent\x00"


@functools.lru_cache(maxsize=256)
def _steady_template(
    namespace: str, pipeline: str, task: bool, nominal: bool
) -> tuple[str, ...] | None:
    """The steady facets' JSON cut at its holes, each hole a part of its own (the values
    that go there need no escaping: a UUID, ISO times); None when a name holds a marker."""
    holes = (_START_HOLE, _END_HOLE, _PARENT_HOLE)
    if any(h in namespace or h in pipeline for h in holes):
        return None
    marker_note = LineageNote("START", "", pipeline, "task" if task else None)
    facets = _steady_run_facets(
        marker_note, namespace, (_START_HOLE, _END_HOLE) if nominal else None, _PARENT_HOLE
    )
    encoded = {_dumps(h)[1:-1]: h for h in holes}  # as the marker appears in the JSON
    pieces = re.split(f"({'|'.join(re.escape(e) for e in encoded)})", _dumps(facets))
    return tuple(encoded.get(piece, piece) for piece in pieces)


def _error_facet(message: str) -> dict[str, Any]:
    from openlineage.client.facet_v2 import error_message_run

    return _plain(
        error_message_run.ErrorMessageRunFacet(message=message, programmingLanguage="PYTHON")
    )


def _steady_run_facets(
    note: LineageNote,
    namespace: str,
    nominal: tuple[str, str] | None = None,
    parent_id: str | None = None,
) -> dict[str, Any]:
    """The run facets every event of a run (or of its tasks) shares, as dicts: each the
    client facet's ``_producer`` and ``_schemaURL`` (read once a process) and its fields.
    ``nominal`` (start, end) and ``parent_id`` stand for the note's own when given."""
    facets: dict[str, Any] = {"processing_engine": _engine_facet()}
    if nominal is None and note.nominal is not None:
        nominal = (
            note.nominal[0].astimezone(UTC).isoformat(),
            note.nominal[1].astimezone(UTC).isoformat(),
        )
    if nominal is not None:
        facets["nominalTime"] = {
            **_facet_head("nominal_time_run", "NominalTimeRunFacet"),
            "nominalEndTime": nominal[1],
            "nominalStartTime": nominal[0],
        }
    if note.task_id is not None:
        facets["parent"] = {
            **_facet_head("parent_run", "ParentRunFacet"),
            "job": {"facets": {}, "name": note.pipeline, "namespace": namespace},
            "run": {"facets": {}, "runId": parent_id or run_uuid(note.run_id)},
        }
    return facets


def _facet_head(module: str, name: str) -> dict[str, str]:
    """``_producer`` and ``_schemaURL`` of a facet class of the installed client, as the
    class sets them (the client's producer, its spec version's schema)."""
    from openlineage.client.generated import base

    return {"_producer": base.PRODUCER, "_schemaURL": _facet_schema(module, name)}


@functools.lru_cache(maxsize=16)
def _facet_schema(module: str, name: str) -> str:
    from openlineage.client import facet_v2

    return str(getattr(getattr(facet_v2, module), name)._get_schema())


@functools.lru_cache(maxsize=1)
def _engine_facet() -> dict[str, Any]:
    """processing_engine: headrace's and the client's versions (once a process)."""
    from openlineage.client.facet_v2 import processing_engine_run

    return _plain(
        processing_engine_run.ProcessingEngineRunFacet(
            version=_version("headrace"),
            name="headrace",
            openlineageAdapterVersion=_version("openlineage-python"),
        )
    )


def job_facets(meta: dict[str, Any], task: bool) -> dict[str, Any]:
    """jobType, documentation, ownership, tags and sql of the pipeline or task."""
    from openlineage.client.facet_v2 import (
        documentation_job,
        job_type_job,
        ownership_job,
        sql_job,
        tags_job,
    )

    facets: dict[str, Any] = {
        "jobType": job_type_job.JobTypeJobFacet(
            processingType="BATCH", integration="HEADRACE", jobType="TASK" if task else "DAG"
        ),
    }
    if meta.get("doc"):
        facets["documentation"] = documentation_job.DocumentationJobFacet(
            description=str(meta["doc"])
        )
    if meta.get("owner"):
        facets["ownership"] = ownership_job.OwnershipJobFacet(
            owners=[ownership_job.Owner(name=str(meta["owner"]))]
        )
    if meta.get("tags"):
        facets["tags"] = tags_job.TagsJobFacet(
            tags=[
                tags_job.TagsJobFacetFields(key=str(t), value="true", source="HEADRACE")
                for t in meta["tags"]
            ]
        )
    if meta.get("sql"):
        facets["sql"] = sql_job.SQLJobFacet(query=str(meta["sql"]))
    return facets


def datasets(note: LineageNote) -> tuple[list[Any], list[Any]]:
    """The input and output datasets of a finished sync task, with their facets, as the
    dicts the client's ``Serde`` makes of its dataset and facet classes (each facet's
    ``_producer`` and ``_schemaURL`` read from its class; None values left out)."""
    lineage = note.result.get("lineage") if isinstance(note.result, dict) else None
    if not lineage:
        return [], []
    inputs = [
        {
            "facets": _dataset_facets(d),
            "inputFacets": {},
            "name": d["name"],
            "namespace": d["namespace"],
        }
        for d in lineage["inputs"]
    ]
    outputs = []
    for d in lineage["outputs"]:
        facets = _dataset_facets(d)
        if d.get("columns"):
            facets["columnLineage"] = _column_lineage(d["columns"])
        assertions = _assertions(d.get("checks") or note.checks)
        if assertions is not None:
            facets["dataQualityAssertions"] = assertions
        statistics = {
            **_facet_head("output_statistics_output_dataset", "OutputStatisticsOutputDatasetFacet"),
            "rowCount": int(note.result.get("loaded") or 0),
        }
        outputs.append(
            {
                "facets": facets,
                "name": d["name"],
                "namespace": d["namespace"],
                "outputFacets": {"outputStatistics": statistics},
            }
        )
    return inputs, outputs


def _present(**values: Any) -> dict[str, Any]:
    """``values`` without the None ones (as the client's ``Serde`` leaves them out)."""
    return {k: v for k, v in values.items() if v is not None}


def _dataset_facets(d: dict[str, Any]) -> dict[str, Any]:
    facets: dict[str, Any] = {}
    if d.get("fields"):
        facets["schema"] = {
            **_facet_head("schema_dataset", "SchemaDatasetFacet"),
            "fields": [
                _present(
                    fields=[], name=f["name"], type=f.get("type"), description=f.get("description")
                )
                for f in d["fields"]
            ],
        }
    if d.get("doc"):
        facets["documentation"] = {
            **_facet_head("documentation_dataset", "DocumentationDatasetFacet"),
            "description": d["doc"],
        }
    return facets


def _column_lineage(columns: dict[str, Any]) -> dict[str, Any]:
    return {
        **_facet_head("column_lineage_dataset", "ColumnLineageDatasetFacet"),
        "dataset": [],
        "fields": {
            column: {
                "inputFields": [
                    {
                        "field": i["field"],
                        "name": i["name"],
                        "namespace": i["namespace"],
                        "transformations": [
                            _present(type=about["type"], subtype=about.get("subtype"))
                        ],
                    }
                    for i in about["inputs"]
                ]
            }
            for column, about in columns.items()
        },
    }


def _assertions(checks: list[Any]) -> dict[str, Any] | None:
    if not checks:
        return None
    rows = [c if isinstance(c, dict) else vars(c) for c in checks]
    return {
        **_facet_head("data_quality_assertions_dataset", "DataQualityAssertionsDatasetFacet"),
        "assertions": [
            _present(
                actual=str(c["failed"]),
                assertion=c["expectation"],
                column=c["column"],
                expected="0",
                params={},
                severity=c["severity"],
                success=c["status"] == "passed",
            )
            for c in rows
        ],
    }


@functools.lru_cache(maxsize=4)
def _version(distribution: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:  # a source checkout without an install
        return "unknown"
