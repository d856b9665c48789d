"""The store under several processes: concurrent writers, kill -9 mid-write, fork."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from datetime import UTC, datetime, timedelta

from headrace.state import SqlStateStore, TaskState, open_store

DAY = datetime(2024, 3, 1, tzinfo=UTC)
FAN = 40


def _writer(url: str, schema: str | None, run_id: str, index: int, rounds: int, out) -> None:
    try:
        with open_store(url, schema=schema) as store:
            for attempt in range(1, rounds + 1):
                store.update_task_instance(
                    run_id, "w", index, attempt=attempt, state=TaskState.RUNNING
                )
                store.append_log(run_id, "w", index, attempt, f"{index}:{attempt}")
        out.put("ok")
    except BaseException as exc:
        out.put(repr(exc))


def test_concurrent_writer_processes_lose_nothing(store_target: tuple[str, str | None]) -> None:
    url, schema = store_target
    with open_store(url, schema=schema) as store:
        run, _ = store.create_run("multi", DAY, DAY, DAY + timedelta(days=1))
        store.ensure_task_instances(run.run_id, [("w", i) for i in range(4)])
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    procs = [
        ctx.Process(target=_writer, args=(url, schema, run.run_id, i, 60, out)) for i in range(4)
    ]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    assert results == ["ok"] * 4
    with open_store(url, schema=schema) as store:
        assert [ti.attempt for ti in store.get_task_instances(run.run_id)] == [60] * 4
        logs = store.get_logs(run.run_id)
        assert len(logs) == 240
        for i in range(4):  # each writer's lines stay in its own order
            mine = [log.text for log in logs if log.map_index == i]
            assert mine == [f"{i}:{a}" for a in range(1, 61)]


def _batch_writer(url: str, schema: str | None, run_id: str) -> None:
    store = open_store(url, schema=schema)
    attempt = 0
    while True:  # until killed
        attempt += 1
        store.update_task_instances(
            [
                (run_id, "fan", i, {"attempt": attempt, "state": TaskState.RUNNING})
                for i in range(FAN)
            ]
        )


def test_kill_9_during_batches_leaves_whole_batches_only(
    store_target: tuple[str, str | None],
) -> None:
    url, schema = store_target
    with open_store(url, schema=schema) as store:
        run, _ = store.create_run("crash", DAY, DAY, DAY + timedelta(days=1))
        store.ensure_task_instances(run.run_id, [("fan", i) for i in range(FAN)])
    ctx = multiprocessing.get_context("fork")
    proc = ctx.Process(target=_batch_writer, args=(url, schema, run.run_id))
    proc.start()
    with open_store(url, schema=schema) as store:
        deadline = time.monotonic() + 60
        # Let it commit a few batches, then kill it while it is (very likely) mid-write.
        while store.get_task_instance(run.run_id, "fan", 0).attempt < 5:
            assert time.monotonic() < deadline, "the writer never committed"
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)  # type: ignore[arg-type]
        proc.join(timeout=30)
        assert proc.exitcode == -signal.SIGKILL
    with open_store(url, schema=schema) as store:  # reopen: recovery of a killed writer
        attempts = {ti.attempt for ti in store.get_task_instances(run.run_id)}
        assert len(attempts) == 1 and attempts.pop() >= 5
        if store.backend == "sqlite":
            with store.engine.connect() as conn:
                assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
        store.update_task_instance(run.run_id, "fan", 0, state=TaskState.FAILED)  # still writable
        assert store.get_task_instance(run.run_id, "fan", 0).state is TaskState.FAILED


def _child_uses_inherited_store(store: SqlStateStore, run_id: str, out) -> None:
    try:
        store.update_task_instance(run_id, "t", attempt=7)
        store.append_log(run_id, "t", -1, 7, "from the child")
        # White-box: the child must have replaced the pool (and SQLite handle) it inherited.
        out.put((id(store.engine.pool), id(store._conn)))
        store.close()
        out.put("ok")
    except BaseException as exc:
        out.put(repr(exc))


def test_a_forked_child_gets_its_own_connection(store: SqlStateStore) -> None:
    run, _ = store.create_run("fork", DAY, DAY, DAY + timedelta(days=1))
    store.ensure_task_instances(run.run_id, [("t", -1)])
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    proc = ctx.Process(target=_child_uses_inherited_store, args=(store, run.run_id, out))
    inherited = (id(store.engine.pool), id(store._conn))
    proc.start()
    in_child = out.get(timeout=60)
    assert out.get(timeout=60) == "ok"
    proc.join(timeout=30)
    assert in_child[0] != inherited[0]
    if store.backend == "sqlite":
        assert in_child[1] != inherited[1]
    # The parent's connection survived the child's use and close.
    assert store.get_task_instance(run.run_id, "t").attempt == 7
    assert [log.text for log in store.get_logs(run.run_id)] == ["from the child"]
    store.update_task_instance(run.run_id, "t", attempt=8)
    assert store.get_task_instance(run.run_id, "t").attempt == 8
