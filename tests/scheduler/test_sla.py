"""SLA miss detection on stored runs: late, on time, mapped, not scheduled."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from headrace import pipeline, task
from headrace.pipeline import Context
from headrace.scheduler import SlaLedger, find_sla_misses
from headrace.state.store_base import RunState, TaskState


@task(sla=timedelta(hours=1))
def quick(ctx: Context) -> int:
    return 1


@task
def no_sla(x: int) -> int:
    return x


@pipeline(schedule="@daily", start_date=datetime(2024, 1, 1))
def slas():
    no_sla(quick())


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def _run(store, day: int, trigger: str = "scheduled"):
    run, _ = store.create_run(
        "slas", utc(2024, 1, day), utc(2024, 1, day), utc(2024, 1, day + 1), {}, trigger
    )
    store.ensure_task_instances(run.run_id, [("quick", -1), ("no_sla", -1)])
    return run


def test_late_on_time_and_unfinished_tasks(store):
    late, on_time, unfinished = _run(store, 1), _run(store, 2), _run(store, 3)
    store.update_task_instance(
        late.run_id, "quick", state=TaskState.SUCCESS, ended_at=utc(2024, 1, 2, 1, 30)
    )
    store.update_task_instance(
        on_time.run_id, "quick", state=TaskState.SUCCESS, ended_at=utc(2024, 1, 3, 0, 59)
    )
    store.update_run(unfinished.run_id, state=RunState.RUNNING)
    misses = find_sla_misses(slas, store, utc(2024, 1, 4, 2))
    assert sorted((m.run_id, m.task_id) for m in misses) == sorted(
        [(late.run_id, "quick"), (unfinished.run_id, "quick")]
    )
    assert {m.deadline for m in misses} == {utc(2024, 1, 2, 1), utc(2024, 1, 4, 1)}
    # before a deadline nothing is missed yet
    assert [m.run_id for m in find_sla_misses(slas, store, utc(2024, 1, 4, 0, 30))] == [late.run_id]


def test_only_scheduled_runs_count_and_ledger_is_idempotent(store):
    _run(store, 1, trigger="backfill")
    assert find_sla_misses(slas, store, utc(2024, 2, 1)) == []
    run = _run(store, 5)
    (miss,) = find_sla_misses(slas, store, utc(2024, 2, 1))
    ledger = SlaLedger.for_store(store)
    assert ledger.record(miss) is True
    assert ledger.record(miss) is False
    assert ledger.known([run.run_id]) == {(run.run_id, "quick")}
    assert find_sla_misses(slas, store, utc(2024, 2, 1), skip=ledger.known([run.run_id])) == []
    (stored,) = ledger.list()
    assert stored.deadline == utc(2024, 1, 6, 1) and stored.sla == timedelta(hours=1)


def test_ledger_on_postgres(pg_schema):
    from headrace.state import open_store

    url, schema = pg_schema
    with open_store(url, schema=schema) as pg_store:
        run = _run(pg_store, 7)
        (miss,) = find_sla_misses(slas, pg_store, utc(2024, 2, 1))
        ledger = SlaLedger.for_store(pg_store)
        assert ledger.record(miss) and not SlaLedger.for_store(pg_store).record(miss)
        (stored,) = ledger.list("slas")
        assert (stored.run_id, stored.deadline) == (run.run_id, utc(2024, 1, 8, 1))
