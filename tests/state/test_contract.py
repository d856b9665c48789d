"""The StateStore contract, run against SQLite and PostgreSQL alike."""

from __future__ import annotations

import multiprocessing
import threading
import time
from datetime import UTC, datetime, timedelta, timezone

import pytest

from headrace.errors import StateError
from headrace.state import (
    SCHEMA_VERSION,
    CheckResultRecord,
    RunState,
    SqlStateStore,
    StateStore,
    TaskState,
    new_run_id,
    open_store,
)

DAY = datetime(2024, 3, 1, tzinfo=UTC)


def make_run(store: SqlStateStore, pipeline: str = "etl", day: datetime = DAY, **kw: object):
    return store.create_run(pipeline, day, day, day + timedelta(days=1), **kw)  # type: ignore[arg-type]


# ---------------------------------------------------------------- opening and schema


def test_store_meets_the_protocol_and_is_at_the_latest_version(store: SqlStateStore) -> None:
    assert isinstance(store, StateStore)
    assert store.schema_version() == SCHEMA_VERSION


def test_reopening_an_existing_store_keeps_its_data(store_target: tuple[str, str | None]) -> None:
    url, schema = store_target
    with open_store(url, schema=schema) as first:
        run, _ = make_run(first)
        first.ensure_task_instances(run.run_id, [("extract", -1)])
    with open_store(url, schema=schema) as again:
        assert again.schema_version() == SCHEMA_VERSION
        assert again.get_run(run.run_id) == run
        assert [ti.task_id for ti in again.get_task_instances(run.run_id)] == ["extract"]


# ---------------------------------------------------------------- runs


def test_create_run_is_idempotent_on_pipeline_and_logical_date(store: SqlStateStore) -> None:
    run, created = make_run(store, params={"limit": 10})
    again, created_again = make_run(store, params={"limit": 99})
    assert created and not created_again
    assert again == run
    assert again.params == {"limit": 10}  # the first trigger's params stay
    assert run.state is RunState.QUEUED and run.trigger == "manual"
    other, created_other = make_run(store, day=DAY + timedelta(days=1))
    assert created_other and other.run_id != run.run_id
    assert len(store.list_runs()) == 2


def test_run_ids_are_short_unique_and_sort_by_creation(store: SqlStateStore) -> None:
    ids = [make_run(store, day=DAY + timedelta(days=i))[0].run_id for i in range(5)]
    assert len(set(ids)) == 5
    assert all(len(i) == 18 and i.isalnum() and i.islower() for i in ids)
    # The first 10 characters are the creation millisecond; the rest is random.
    assert all(a[:10] <= b[:10] for a, b in zip(ids, ids[1:], strict=False))
    stamped = [new_run_id(now_ns=t * 1_000_000) for t in (1, 2, 1_000, 10**12, 2**49)]
    assert sorted(stamped) == stamped


def test_times_round_trip_as_aware_utc(store: SqlStateStore) -> None:
    ist = timezone(timedelta(hours=5, minutes=30))
    logical = datetime(2024, 7, 1, 0, 30, 15, 123456, tzinfo=ist)
    run, _ = store.create_run("tz", logical, logical, logical + timedelta(hours=1))
    started = datetime(2024, 7, 2, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=-7)))
    store.update_run(run.run_id, started_at=started, heartbeat_at=started)
    got = store.get_run(run.run_id)
    assert got.logical_date == logical and got.logical_date.tzinfo is UTC
    assert got.logical_date.isoformat() == "2024-06-30T19:00:15.123456+00:00"
    assert got.started_at == started and got.started_at.tzinfo is UTC
    assert got.created_at is not None and got.created_at.tzinfo is UTC
    assert store.find_run("tz", logical.astimezone(UTC)) == got  # found by the same instant
    store.ensure_task_instances(run.run_id, [("t", -1)])
    store.update_task_instance(run.run_id, "t", next_try_at=started)
    assert store.get_task_instances(run.run_id)[0].next_try_at == started


def test_naive_datetimes_are_refused_with_a_clear_error(store: SqlStateStore) -> None:
    with pytest.raises(StateError, match="Naive datetime 2024-01-01T00:00:00"):
        store.create_run("naive", datetime(2024, 1, 1), DAY, DAY)
    run, _ = make_run(store)
    with pytest.raises(
        StateError, match=f"^run {run.run_id}: update run: .*timezone-aware"
    ) as info:
        store.update_run(run.run_id, started_at=datetime(2024, 1, 1))
    assert info.value.run_id == run.run_id


def test_json_round_trips(store: SqlStateStore) -> None:
    params: dict[str, object] = {
        "s": "ünïcødé ✓",
        "n": [1, 2.5, None, True],
        "nested": {"a": {"b": []}},
        "z": None,
    }
    run, _ = make_run(store, params=params)
    assert store.get_run(run.run_id).params == params
    store.ensure_task_instances(run.run_id, [("a", -1), ("b", -1), ("c", -1)])
    store.update_task_instances(
        [
            (
                run.run_id,
                "a",
                -1,
                {"result_kind": "json", "result_json": {"rows": [1, 2], "k": "v"}},
            ),
            (run.run_id, "b", -1, {"result_kind": "json", "result_json": [1, "two", 3.0]}),
            (run.run_id, "c", -1, {"result_kind": "json", "result_json": 42}),
        ]
    )
    results = {ti.task_id: ti.result_json for ti in store.get_task_instances(run.run_id)}
    assert results == {"a": {"rows": [1, 2], "k": "v"}, "b": [1, "two", 3.0], "c": 42}


def test_non_json_values_raise_state_error_naming_the_task(store: SqlStateStore) -> None:
    run, _ = make_run(store)
    store.ensure_task_instances(run.run_id, [("a", -1)])
    with pytest.raises(StateError, match=f"^task 'a', run {run.run_id}: update task: ") as info:
        store.update_task_instance(run.run_id, "a", result_json={"x": object()})
    assert (info.value.task, info.value.run_id) == ("a", run.run_id)


def test_unknown_run_id_suggests_the_closest(store: SqlStateStore) -> None:
    run, _ = make_run(store)
    typo = run.run_id[:-1] + ("x" if run.run_id[-1] != "x" else "y")
    for call in (
        lambda: store.get_run(typo),
        lambda: store.update_run(typo, state=RunState.RUNNING),
        lambda: store.get_task_instances(typo),
        lambda: store.ensure_task_instances(typo, [("a", -1)]),
        lambda: store.append_log(typo, "a", -1, 1, "x"),
        lambda: store.get_logs(typo),
        lambda: store.get_check_results(typo),
    ):
        with pytest.raises(StateError) as info:
            call()
        assert f"Unknown run id {typo!r}" in str(info.value)
        assert f"Did you mean {run.run_id!r}?" in str(info.value)
        assert info.value.run_id == typo  # a field: callers need not parse the message


def test_find_run(store: SqlStateStore) -> None:
    run, _ = make_run(store)
    assert store.find_run("etl", DAY) == run
    assert store.find_run("etl", DAY + timedelta(seconds=1)) is None
    assert store.find_run("other", DAY) is None


def test_list_runs_filters_and_orders_newest_logical_date_first(store: SqlStateStore) -> None:
    for i in (2, 0, 1):
        make_run(store, "a", DAY + timedelta(days=i))
    b, _ = make_run(store, "b", DAY + timedelta(days=5))
    store.update_run(b.run_id, state=RunState.FAILED)
    assert [r.logical_date.day for r in store.list_runs(pipeline="a")] == [3, 2, 1]
    assert [r.pipeline for r in store.list_runs()] == ["b", "a", "a", "a"]
    assert [r.run_id for r in store.list_runs(states=[RunState.FAILED])] == [b.run_id]
    assert len(store.list_runs(states=[RunState.QUEUED, RunState.RUNNING])) == 3
    assert store.list_runs(pipeline="a", states=[RunState.FAILED]) == []
    assert [r.logical_date.day for r in store.list_runs(pipeline="a", limit=2)] == [3, 2]
    assert store.list_pipelines() == ["a", "b"]
    with pytest.raises(StateError, match="Invalid state 'faild' for the runs filter.*'failed'"):
        store.list_runs(states=["faild"])  # type: ignore[list-item]


def test_runs_filter_by_trigger_and_count(store: SqlStateStore) -> None:
    for i, trigger in enumerate(["scheduled", "manual", "scheduled", "backfill"]):
        make_run(store, "p", DAY + timedelta(days=i), trigger=trigger)
    make_run(store, "q", DAY, trigger="scheduled")
    scheduled = store.list_runs("p", trigger="scheduled")
    assert [r.logical_date.day for r in scheduled] == [3, 1]
    assert all(r.trigger == "scheduled" for r in scheduled)
    assert store.count_runs() == 5
    assert store.count_runs("p") == 4
    assert store.count_runs(trigger="scheduled") == 3
    assert store.count_runs("p", states=[RunState.QUEUED], trigger="backfill") == 1
    assert store.count_runs("p", states=[RunState.RUNNING]) == 0


def test_update_run_sets_fields_and_rejects_unknown_ones(store: SqlStateStore) -> None:
    run, _ = make_run(store)
    now = datetime.now(UTC)
    store.update_run(
        run.run_id,
        state=RunState.FAILED,
        started_at=now,
        ended_at=now + timedelta(seconds=3),
        pid=4242,
        hostname="box",
        error="boom\nline 2",
    )
    got = store.get_run(run.run_id)
    assert (got.state, got.pid, got.hostname, got.error) == (
        RunState.FAILED,
        4242,
        "box",
        "boom\nline 2",
    )
    assert got.ended_at == now + timedelta(seconds=3)
    with pytest.raises(StateError, match="Did you mean 'state'"):
        store.update_run(run.run_id, stat="running")
    with pytest.raises(StateError, match="Invalid state 'runing'.*Did you mean 'running'"):
        store.update_run(run.run_id, state="runing")
    with pytest.raises(StateError, match="Cannot set field 'pipeline'"):
        store.update_run(run.run_id, pipeline="renamed")
    assert store.get_run(run.run_id).state is RunState.FAILED


# ---------------------------------------------------------------- task instances


def test_ensure_task_instances_creates_missing_ones_only(store: SqlStateStore) -> None:
    run, _ = make_run(store)
    first = store.ensure_task_instances(run.run_id, [("extract", -1), ("load", -1)])
    assert [(t.task_id, t.map_index, t.state, t.attempt) for t in first] == [
        ("extract", -1, TaskState.QUEUED, 0),
        ("load", -1, TaskState.QUEUED, 0),
    ]
    store.update_task_instance(run.run_id, "extract", state=TaskState.SUCCESS, attempt=1)
    keys = [("extract", -1), ("load", -1)] + [("fan", i) for i in range(3)]
    second = store.ensure_task_instances(run.run_id, keys)
    assert [(t.task_id, t.map_index) for t in second] == [
        ("extract", -1),
        ("fan", 0),
        ("fan", 1),
        ("fan", 2),
        ("load", -1),
    ]
    assert second[0].state is TaskState.SUCCESS and second[0].attempt == 1  # kept
    assert store.ensure_task_instances(run.run_id, []) == store.get_task_instances(run.run_id)


def test_update_task_instance_every_field(store: SqlStateStore) -> None:
    run, _ = make_run(store)
    store.ensure_task_instances(run.run_id, [("t", 2)])
    now = datetime.now(UTC)
    fields = {
        "state": TaskState.UP_FOR_RETRY,
        "attempt": 2,
        "started_at": now,
        "ended_at": now + timedelta(milliseconds=5),
        "next_try_at": now + timedelta(seconds=30),
        "error": "ValueError: bad\n  at line 3",
        "error_kind": "ValueError",
        "result_kind": "table",
        "result_json": None,
        "result_path": "/staging/run/t.parquet",
        "rows": 2_000_000_000_000,
        "pid": 77,
        "hostname": "worker-1",
    }
    store.update_task_instance(run.run_id, "t", 2, **fields)
    (got,) = store.get_task_instances(run.run_id)
    assert {k: getattr(got, k) for k in fields} == fields
    assert store.get_task_instance(run.run_id, "t", 2) == got


def test_unknown_task_instance_names_run_and_suggests(store: SqlStateStore) -> None:
    run, _ = make_run(store)
    store.ensure_task_instances(run.run_id, [("extract", -1), ("fan", 0)])
    with pytest.raises(
        StateError, match=r"has no task instance 'extrac'.*Did you mean 'extract'"
    ) as info:
        store.update_task_instance(run.run_id, "extrac", state="running")
    assert (info.value.run_id, info.value.task) == (run.run_id, "extrac")
    with pytest.raises(StateError, match=r"'fan' map index 5"):
        store.get_task_instance(run.run_id, "fan", 5)
    with pytest.raises(StateError, match="Did you mean 'state'"):
        store.update_task_instance(run.run_id, "extract", sate="running")


def test_update_task_instances_batches_mixed_fields_atomically(store: SqlStateStore) -> None:
    run, _ = make_run(store)
    keys = [("m", i) for i in range(50)]
    store.ensure_task_instances(run.run_id, keys)
    now = datetime.now(UTC)
    updates = [
        (run.run_id, "m", i, {"state": TaskState.RUNNING, "started_at": now}) for i in range(40)
    ]
    updates += [(run.run_id, "m", i, {"state": TaskState.SKIPPED}) for i in range(40, 50)]
    updates += [(run.run_id, "m", 0, {"attempt": 1})]
    store.update_task_instances(updates)
    got = {t.map_index: t for t in store.get_task_instances(run.run_id)}
    assert all(got[i].state is TaskState.RUNNING and got[i].started_at == now for i in range(40))
    assert all(got[i].state is TaskState.SKIPPED for i in range(40, 50))
    assert got[0].attempt == 1
    # One unknown key: nothing of the batch is applied.
    with pytest.raises(StateError, match="has no task instance 'm' map index 99"):
        store.update_task_instances(
            [
                (run.run_id, "m", 1, {"state": TaskState.FAILED}),
                (run.run_id, "m", 99, {"state": "failed"}),
            ]
        )
    assert store.get_task_instance(run.run_id, "m", 1).state is TaskState.RUNNING
    store.update_task_instances([])  # no-op


def test_task_instances_of_runs_are_separate(store: SqlStateStore) -> None:
    a, _ = make_run(store, "a")
    b, _ = make_run(store, "b")
    store.ensure_task_instances(a.run_id, [("t", -1)])
    store.ensure_task_instances(b.run_id, [("t", -1)])
    store.update_task_instance(a.run_id, "t", state=TaskState.FAILED)
    assert store.get_task_instances(b.run_id)[0].state is TaskState.QUEUED


# ---------------------------------------------------------------- logs and checks


def test_logs_keep_append_order_and_filter_by_task(store: SqlStateStore) -> None:
    run, _ = make_run(store)
    assert store.get_logs(run.run_id) == []
    for i in range(30):
        store.append_log(run.run_id, "a" if i % 3 else "b", -1, 1 + i // 15, f"line {i}")
    texts = [log.text for log in store.get_logs(run.run_id)]
    assert texts == [f"line {i}" for i in range(30)]
    b_logs = store.get_logs(run.run_id, "b")
    assert [log.text for log in b_logs] == [f"line {i}" for i in range(0, 30, 3)]
    assert [log.attempt for log in b_logs] == [1] * 5 + [2] * 5
    assert all(log.created_at is not None and log.created_at.tzinfo is UTC for log in b_logs)


def test_check_results_round_trip_in_order(store: SqlStateStore) -> None:
    run, _ = make_run(store)
    assert store.get_check_results(run.run_id) == []
    results = [
        CheckResultRecord(run.run_id, "clean", "not_null", "fail", "passed", 100, 0, column="id"),
        CheckResultRecord(
            run.run_id,
            "clean",
            "regex",
            "quarantine",
            "failed",
            100,
            3,
            column="email",
            details={"percent": 3.0, "sample": [{"email": "x@"}, {"email": None}]},
        ),
        CheckResultRecord(run.run_id, "load", "row_count", "warn", "passed", 97, 0),
    ]
    store.record_check_results(results)
    got = store.get_check_results(run.run_id)
    assert [(r.task_id, r.expectation, r.status, r.failed, r.column) for r in got] == [
        ("clean", "not_null", "passed", 0, "id"),
        ("clean", "regex", "failed", 3, "email"),
        ("load", "row_count", "passed", 0, None),
    ]
    assert got[1].details == {"percent": 3.0, "sample": [{"email": "x@"}, {"email": None}]}
    assert got[2].details == {} and got[2].created_at is not None
    assert [r.expectation for r in store.get_check_results(run.run_id, "load")] == ["row_count"]
    with pytest.raises(StateError, match="Unknown run id 'nope'"):
        store.record_check_results([CheckResultRecord("nope", "t", "e", "warn", "passed", 1, 0)])


# ---------------------------------------------------------------- concurrency


def _race_worker(url: str, schema: str | None, barrier, out) -> None:
    try:
        barrier.wait(timeout=60)
        store = open_store(url, schema=schema)  # every process migrates the empty store at once
        barrier.wait(timeout=60)
        run, created = store.create_run("race", DAY, DAY, DAY + timedelta(days=1))
        out.put((run.run_id, created))
        store.close()
    except BaseException as exc:  # reported to the test, which fails on it
        out.put(("error", repr(exc)))


def test_processes_racing_on_open_and_create_run_get_one_run(
    store_target: tuple[str, str | None],
) -> None:
    url, schema = store_target
    workers = 6
    ctx = multiprocessing.get_context("fork")
    barrier, out = ctx.Barrier(workers), ctx.Queue()
    procs = [
        ctx.Process(target=_race_worker, args=(url, schema, barrier, out)) for _ in range(workers)
    ]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    assert all(r[0] != "error" for r in results), results
    assert len({run_id for run_id, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    with open_store(url, schema=schema) as store:
        assert store.schema_version() == SCHEMA_VERSION
        assert len(store.list_runs(pipeline="race")) == 1


def test_threads_share_one_store(store: SqlStateStore) -> None:
    run, _ = make_run(store)
    store.ensure_task_instances(run.run_id, [("t", i) for i in range(8)])
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for attempt in range(1, 26):
                store.update_task_instance(run.run_id, "t", i, attempt=attempt)
                store.append_log(run.run_id, "t", i, attempt, f"{i}:{attempt}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert all(ti.attempt == 25 for ti in store.get_task_instances(run.run_id))
    assert len(store.get_logs(run.run_id)) == 200


def test_create_run_loser_of_a_postgres_race_rereads_the_winner(pg_schema: tuple[str, str]) -> None:
    """Deterministic race: the other writer holds the unique key while we insert."""
    import psycopg
    from sqlalchemy import event

    url, schema = pg_schema
    with open_store(url, schema=schema) as store:
        seen: list[str] = []
        event.listen(
            store.engine,
            "handle_error",
            lambda ctx: seen.append(type(ctx.original_exception).__name__),
        )
        other = psycopg.connect(url, options=f"-csearch_path={schema}")
        other.execute(
            "INSERT INTO runs (run_id, pipeline, logical_date, data_interval_start, data_interval_end,"
            " state, params, trigger, created_at) VALUES (%s, %s, %s, %s, %s, 'queued', '{}', 'scheduled', now())",
            ("winner0000000000xx", "race", DAY, DAY, DAY + timedelta(days=1)),
        )  # not committed yet: our INSERT will wait on its unique-index entry
        results: list[tuple[str, bool]] = []

        def ours() -> None:
            run, created = store.create_run("race", DAY, DAY, DAY + timedelta(days=1))
            results.append((run.run_id, created))

        thread = threading.Thread(target=ours)
        thread.start()
        with psycopg.connect(url, autocommit=True) as watcher:
            for _ in range(600):  # until our insert is blocked on the other's row lock
                waiting = watcher.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                    " AND query LIKE 'INSERT INTO runs%%' AND datname = current_database()"
                ).fetchone()
                if waiting and waiting[0]:
                    break
                time.sleep(0.05)
            else:
                raise AssertionError("create_run never blocked on the other writer")
        other.commit()
        other.close()
        thread.join(timeout=30)
        assert results == [("winner0000000000xx", False)]
        assert "UniqueViolation" in seen  # the unique constraint decided, then we re-read


# ---------------------------------------------------------------- retention


def test_delete_runs_removes_finished_runs_with_everything_under_them(store: SqlStateStore) -> None:
    from headrace.state import SlaMissRecord

    done, _ = make_run(store, day=DAY)
    failed, _ = make_run(store, day=DAY + timedelta(days=1))
    running, _ = make_run(store, day=DAY + timedelta(days=2))
    for run in (done, failed, running):
        store.ensure_task_instances(run.run_id, [("a", -1), ("b", 0)])
        store.append_log(run.run_id, "a", -1, 1, "a line")
        store.record_check_results(
            [CheckResultRecord(run.run_id, "a", "not_null", "fail", "passed", 3, 0)]
        )
        store.record_sla_miss(
            SlaMissRecord(
                "etl", run.run_id, "a", run.logical_date, run.logical_date, timedelta(hours=1), DAY
            )
        )
    store.update_run(done.run_id, state=RunState.SUCCESS, ended_at=DAY)
    store.update_run(failed.run_id, state=RunState.FAILED, ended_at=DAY)
    store.update_run(running.run_id, state=RunState.RUNNING)

    # an unfinished run and an unknown id are left alone; the count says what went
    assert store.delete_runs([done.run_id, failed.run_id, running.run_id, "no-such-run"]) == 2
    assert [r.run_id for r in store.list_runs("etl")] == [running.run_id]
    for gone in (done, failed):
        with pytest.raises(StateError):
            store.get_run(gone.run_id)
        assert store.find_run("etl", gone.logical_date) is None
    assert [ti.task_id for ti in store.get_task_instances(running.run_id)] == ["a", "b"]
    assert [log.text for log in store.get_logs(running.run_id)] == ["a line"]
    assert len(store.get_check_results(running.run_id)) == 1
    with store._tx("count children", write=False) as conn:  # nothing orphaned in any table
        from sqlalchemy import func, select

        from headrace.state.schema import check_results, sla_misses, task_instances, task_logs

        for child in (task_instances, task_logs, check_results, sla_misses):
            left = conn.execute(select(child.c.run_id, func.count()).group_by(child.c.run_id)).all()
            assert [run_id for run_id, _ in left] == [running.run_id], child.name
    assert store.delete_runs([]) == 0
    # the date of a deleted run can be run again
    again, created = make_run(store, day=DAY)
    assert created and again.run_id != done.run_id
