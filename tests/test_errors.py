"""The error tree: every error keeps what it is about as fields, builds its message from
them, and pickles with them (errors cross process boundaries)."""

from __future__ import annotations

import importlib
import pickle
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest

from headrace.errors import (
    ConnectorError,
    DefinitionError,
    EngineError,
    HeadraceError,
    cause_line,
    describe,
)

#: Every module that defines a headrace error (grep "^class .*Error" src).
MODULES = [
    "headrace.errors",
    "headrace.quality.quality_errors",
    "headrace.tasks.sensors",
    "headrace.tasks.sql_statement",
    "headrace.tasks.shell",
    "headrace.tasks.dbt",
    "headrace.engine.staging",
    "headrace.engine.runner",
    "headrace.observe.alerts",
    "headrace.pipeline.params",
    "headrace.pipeline.intervals",
    "headrace.pipeline.context",
    "headrace.queue.worker",
    "headrace.queue.job",
    "headrace.connectors.naming",
    "headrace.connectors.incremental",
    "headrace.connectors.fidelity",
    "headrace.state.store_base",
    "headrace.state.connect",
    "headrace.extras",
    "headrace.mcp.sqlguard",
    "headrace.mcp.file_tools",
    "headrace.analytics.analyzer",
]

LOCATION: dict[str, Any] = {
    "pipeline": "etl",
    "task": "load",
    "run_id": "r1",
    "table": "orders",
    "column": "qty",
    "row": 7,
    "connection": "postgresql://u:***@db/x",
    "path": "flows.py:12",
}


def _subclasses(cls: type[Any]) -> Iterator[type[Any]]:
    subs: list[type[Any]] = cls.__subclasses__()
    for sub in subs:
        yield sub
        yield from _subclasses(sub)


def _classes() -> list[type[HeadraceError]]:
    for name in MODULES:
        importlib.import_module(name)
    found = {c for c in _subclasses(HeadraceError) if c.__module__.startswith("headrace.")}
    return sorted({HeadraceError, *found}, key=lambda c: (c.__module__, c.__qualname__))


def _cls(path: str) -> Any:
    module, name = path.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)


#: Classes with their own arguments: (build it, the fields it must keep).
SPECIAL: dict[str, tuple[Callable[[Any], HeadraceError], dict[str, Any]]] = {
    "headrace.errors.UnavailableError": (
        lambda c: c("is unreachable", service="redis://h:6379", pipeline="etl"),
        {"service": "redis://h:6379", "pipeline": "etl", "detail": "is unreachable"},
    ),
    "headrace.errors.QueueError": (
        lambda c: c("is full", queue="emails", pipeline="etl"),
        {"queue": "emails", "pipeline": "etl", "detail": "is full"},
    ),
    "headrace.state.store_base.StoreUnavailableError": (
        lambda c: c("locked", service="sqlite:///s.db"),
        {"service": "sqlite:///s.db"},
    ),
    "headrace.executors.distributed.SettingsMismatch": (
        lambda c: c(["connection wh points elsewhere on the worker"], pipeline="etl", task="load"),
        {
            "differences": ["connection wh points elsewhere on the worker"],
            "pipeline": "etl",
            "task": "load",
        },
    ),
    "headrace.connectors.incremental.CheckpointMoved": (
        lambda c: c("etl", "orders_src", 1, 5, table="orders", connection="DuckDB /w.duckdb"),
        {"pipeline": "etl", "source": "orders_src", "expected": 1, "found": 5, "table": "orders"},
    ),
    "headrace.tasks.sensors.SensorNotReady": (
        lambda c: c(
            "file x", timedelta(seconds=5), timedelta(minutes=1), timedelta(seconds=10), task="wait"
        ),
        {"awaiting": "file x", "waited": timedelta(seconds=5), "task": "wait"},
    ),
    "headrace.tasks.sensors.SensorTimeout": (
        lambda c: c(
            "file x",
            timedelta(minutes=1),
            4,
            "2024-01-02",
            pipeline="etl",
            task="wait",
            run_id="r1",
        ),
        {
            "awaiting": "file x",
            "pokes": 4,
            "logical_date": "2024-01-02",
            "pipeline": "etl",
            "run_id": "r1",
        },
    ),
    "headrace.tasks.sensors.UpstreamRunFailed": (
        lambda c: c("upstream", "r0", "2024-01-02", pipeline="etl", task="wait"),
        {"upstream": "upstream", "upstream_run_id": "r0", "pipeline": "etl", "task": "wait"},
    ),
    "headrace.extras.MissingExtraError": (
        lambda c: c("mysql", "connectorx", "MySQL source"),
        {"extra": "mysql", "module": "connectorx"},
    ),
    "headrace.mcp.file_tools.PathRefusedError": (
        lambda c: c("../etc/passwd", "outside the home"),
        {"path": "../etc/passwd", "reason": "outside the home"},
    ),
    "headrace.tasks.dbt.DbtNotInstalled": (
        lambda c: c("dbt", pipeline="etl", task="models"),
        {"executable": "dbt", "task": "models"},
    ),
    "headrace.tasks.dbt.DbtTestsFailed": (
        lambda c: c("2 failed", ["a", "b"], pipeline="etl", task="t"),
        {"failed": ["a", "b"], "task": "t"},
    ),
    "headrace.pipeline.intervals.InvalidScheduleError": (
        lambda c: c("bad cron", schedule="* *", pipeline="etl"),
        {"schedule": "* *", "pipeline": "etl"},
    ),
    "headrace.quality.quality_errors.ExpectationDefinitionError": (
        lambda c: c("bad", expectation="qty_positive", column="qty", pipeline="etl"),
        {"expectation": "qty_positive", "column": "qty", "pipeline": "etl"},
    ),
    "headrace.quality.quality_errors.ExpectationsFailed": (
        lambda c: c("1 failed", [], pipeline="etl", task="t"),
        {"failures": [], "pipeline": "etl", "task": "t"},
    ),
    "headrace.quality.quality_errors.ReconciliationError": (
        lambda c: c("lost", 10, 8, 1, pipeline="etl", run_id="r1", table="orders"),
        {"extracted": 10, "loaded": 8, "quarantined": 1, "table": "orders", "run_id": "r1"},
    ),
    "headrace.pipeline.context.UnknownVariable": (
        lambda c: c("etl", "load", "api_key"),
        {"pipeline": "etl", "task": "load", "name": "api_key"},
    ),
    "headrace.pipeline.params.ParamError": (
        lambda c: c("n", "three", "expects a int", pipeline="etl"),
        {"param": "n", "value": "three", "pipeline": "etl"},
    ),
    "headrace.engine.runner.RunInterrupted": (
        lambda c: c("r1", "SIGTERM"),
        {"run_id": "r1", "reason": "SIGTERM"},
    ),
    "headrace.engine.runner.RunClaimedError": (
        lambda c: c("r1", "etl"),
        {"run_id": "r1", "pipeline": "etl"},
    ),
    "headrace.connectors.fidelity.UnrepresentableValueError": (
        lambda c: c("PostgreSQL table orders", "qty", 3, "NaN"),
        {"column": "qty", "row": 3, "reason": "NaN"},
    ),
    "headrace.connectors.naming.ConnectionFailedError": (
        lambda c: c("PostgreSQL postgresql://u:***@h/db", "refused", table="orders"),
        {"target": "PostgreSQL postgresql://u:***@h/db", "reason": "refused", "table": "orders"},
    ),
    "headrace.mcp.sqlguard.UnsafeQueryError": (
        lambda c: c("DROP TABLE x", "a DROP statement"),
        {"sql": "DROP TABLE x", "reason": "a DROP statement"},
    ),
    "headrace.tasks.shell.CommandError": (
        lambda c: c("exited with 2", exit_code=2, output_tail="boom", pipeline="etl", run_id="r1"),
        {"exit_code": 2, "output_tail": "boom", "run_id": "r1"},
    ),
    "headrace.tasks.sql_statement.SqlTaskError": (
        lambda c: c(
            "SQL task 'q'", "'pg' (postgresql://u:***@h/db)", "failed: UndefinedTable: x", task="q"
        ),
        {
            "connection": "'pg' (postgresql://u:***@h/db)",
            "problem": "failed: UndefinedTable: x",
            "task": "q",
        },
    ),
    "headrace.tasks.sql_statement.SqlTaskConnectionError": (
        lambda c: c("SQL task 'q'", "'pg' (postgresql://u:***@h/db)", "could not connect: refused"),
        {"connection": "'pg' (postgresql://u:***@h/db)", "what": "SQL task 'q'"},
    ),
    "headrace.queue.worker.WorkerCrashedError": (
        lambda c: c("emails", "17", "send"),
        {"queue": "emails", "job_id": "17", "job_name": "send"},
    ),
    "headrace.queue.job.JobNotFoundError": (
        lambda c: c("emails", "17"),
        {"queue": "emails", "job_id": "17"},
    ),
    "headrace.queue.job.JobFailedError": (
        lambda c: c("emails", "17", "boom"),
        {"queue": "emails", "job_id": "17", "reason": "boom"},
    ),
    "headrace.state.connect.NotJSONError": (
        lambda c: c("set", "Object of type set is not JSON serializable"),
        {"value_type": "set"},
    ),
    "headrace.observe.alerts.AlertError": (
        lambda c: c(
            "webhook", "hooks.example", "HTTP 500", pipeline="etl", task="load", run_id="r1"
        ),
        {
            "channel": "webhook",
            "target": "hooks.example",
            "pipeline": "etl",
            "task": "load",
            "run_id": "r1",
        },
    ),
}


def _build(cls: type[HeadraceError]) -> tuple[HeadraceError, dict[str, Any]]:
    key = f"{cls.__module__}.{cls.__qualname__}"
    if key in SPECIAL:
        make, fields = SPECIAL[key]
        return make(cls), fields
    assert cls is HeadraceError or "__init__" not in cls.__dict__, (
        f"{key} takes its own arguments: add it to SPECIAL"
    )
    return cls("cannot be read", **LOCATION), {**LOCATION, "detail": "cannot be read"}


@pytest.mark.parametrize("cls", _classes(), ids=lambda c: c.__qualname__)
def test_each_error_keeps_its_fields_and_pickles_with_them(cls: type[HeadraceError]) -> None:
    exc, fields = _build(cls)
    for name, value in fields.items():
        assert getattr(exc, name) == value, name
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is cls
    assert str(back) == str(exc)
    assert back.args == exc.args
    for name, value in fields.items():
        assert getattr(back, name) == value, name


def test_special_table_names_only_existing_classes() -> None:
    for key in SPECIAL:
        assert issubclass(_cls(key), HeadraceError), key


def test_the_message_is_built_from_the_fields() -> None:
    exc = ConnectorError("cannot be read as int64", **LOCATION)
    assert str(exc) == (
        "flows.py:12: pipeline 'etl', task 'load', run r1, table 'orders', column 'qty', row 7, "
        "connection postgresql://u:***@db/x: cannot be read as int64"
    )
    assert exc.fields() == LOCATION
    assert str(ConnectorError("plain")) == "plain"
    assert (
        str(DefinitionError("syntax error: bad", path="flows.py:3"))
        == "flows.py:3: syntax error: bad"
    )


def test_subclass_fields_are_named_in_the_message() -> None:
    from headrace.errors import UnavailableError
    from headrace.pipeline.params import ParamError

    assert (
        str(UnavailableError("is unreachable", service="redis://h:6379"))
        == "redis://h:6379: is unreachable"
    )
    from headrace.state.store_base import StoreUnavailableError

    locked = StoreUnavailableError(
        "update run 'r1' failed: OperationalError: database is locked", service="sqlite:///s.db"
    )
    assert (
        str(locked)
        == "state store sqlite:///s.db: update run 'r1' failed: OperationalError: database is locked"
    )
    from headrace.queue.job import JobNotFoundError

    missing = JobNotFoundError("emails", "17")
    assert str(missing).startswith("queue 'emails': no job with id '17' ")
    assert (missing.queue, missing.job_id) == ("emails", "17")
    err = ParamError("n", "three", "expects a int", pipeline="etl")
    assert str(err) == "pipeline 'etl': parameter 'n' expects a int"


def test_describe_adds_the_wrapped_error() -> None:
    try:
        try:
            int("x")
        except ValueError as exc:
            raise ConnectorError("Loading failed", table="orders") from exc
    except ConnectorError as exc:
        caught = exc
    assert cause_line(caught) == "ValueError: invalid literal for int() with base 10: 'x'"
    assert describe(caught) == (
        "ConnectorError: table 'orders': Loading failed\n"
        "caused by: ValueError: invalid literal for int() with base 10: 'x'"
    )
    assert cause_line(ConnectorError("alone")) is None
    assert describe(ConnectorError("alone")) == "ConnectorError: alone"


def test_trigger_rules_are_an_enum_that_takes_strings() -> None:
    from headrace.pipeline import TriggerRule, task
    from headrace.pipeline.policy import check_trigger_rule

    assert check_trigger_rule("all_done", "task 'x'") is TriggerRule.ALL_DONE
    assert check_trigger_rule(TriggerRule.ONE_FAILED, "task 'x'") is TriggerRule.ONE_FAILED

    @task(trigger_rule="none_failed")
    def cleanup() -> None:
        pass

    assert cleanup.trigger_rule is TriggerRule.NONE_FAILED
    assert cleanup.trigger_rule == "none_failed"
    with pytest.raises(
        DefinitionError,
        match=r"unknown trigger_rule 'all_don'; known: all_success, all_done.*"
        r"Did you mean 'all_done'\?",
    ) as info:

        @task(trigger_rule="all_don")
        def typo() -> None:
            pass

    assert info.value.task == "typo"


def test_sensor_mode_is_an_enum_that_takes_strings() -> None:
    from headrace.tasks import SensorMode, sensor_task

    slot_free = sensor_task(
        lambda ctx: True, task_id="wait", mode="reschedule", poke_interval=5, timeout=60
    )
    assert slot_free.reschedule_delay == timedelta(seconds=5)
    held = sensor_task(lambda ctx: True, task_id="wait2", mode=SensorMode.POKE)
    assert held.reschedule_delay is None
    with pytest.raises(
        DefinitionError, match=r"unknown mode 'pok'; known: poke, reschedule. Did you mean 'poke'\?"
    ):
        sensor_task(lambda ctx: True, task_id="wait3", mode="pok")


def test_executor_names_are_an_enum_that_takes_strings(tmp_path: Any) -> None:
    from headrace.config import Settings
    from headrace.engine import ExecutorName, Runner
    from headrace.state import open_store

    settings = Settings.load(cwd=tmp_path, environ={"HEADRACE_HOME": str(tmp_path)})
    with open_store(f"sqlite:///{tmp_path / 'state.db'}") as store:
        assert (
            Runner(store, executor="inprocess", settings=settings).executor
            is ExecutorName.INPROCESS
        )
        assert Runner(store, executor=ExecutorName.PROCESS, settings=settings).executor == "process"
        with pytest.raises(
            EngineError,
            match=r"unknown executor 'inproces'; choose one of process, inprocess, "
            r"distributed. Did you mean 'inprocess'\?",
        ):
            Runner(store, executor="inproces", settings=settings)


def test_a_quality_definition_error_is_located_by_fields() -> None:
    import pyarrow as pa

    from headrace.quality import apply_checks, not_null
    from headrace.quality.quality_errors import ExpectationDefinitionError

    with pytest.raises(ExpectationDefinitionError) as info:
        apply_checks(pa.table({"id": [1]}), [not_null("idd")], pipeline="etl", task="load")
    assert (info.value.pipeline, info.value.task, info.value.column) == ("etl", "load", "idd")
    assert str(info.value).startswith("pipeline 'etl', task 'load': ")


def test_a_task_policy_error_is_located_by_fields() -> None:
    from headrace.pipeline import task

    late: dict[str, Any] = {"timeout": "soon"}  # wrong types on purpose
    nobody: dict[str, Any] = {"email": [3]}
    with pytest.raises(
        DefinitionError, match=r"test_errors.py:\d+: task 'slow': timeout must be a timedelta"
    ) as info:

        @task(**late)
        def slow() -> None:
            pass

    assert info.value.task == "slow"
    assert info.value.path is not None and "test_errors.py" in info.value.path
    with pytest.raises(DefinitionError, match=r"task 'noisy': email must be a string") as bad:

        @task(**nobody)
        def noisy() -> None:
            pass

    assert bad.value.task == "noisy"


def test_a_bad_bound_names_its_expectation_and_column_as_fields() -> None:
    import pyarrow as pa

    from headrace.quality import apply_checks, between
    from headrace.quality.quality_errors import ExpectationDefinitionError

    with pytest.raises(ExpectationDefinitionError, match=r"give a number") as info:
        apply_checks(pa.table({"qty": [1]}), [between("qty", min="one")], pipeline="etl")
    assert (info.value.column, info.value.pipeline) == ("qty", "etl")
    assert info.value.expectation is not None
