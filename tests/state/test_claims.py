"""claim_run: of many processes that read the same run, exactly one claims it (SQLite and PostgreSQL)."""

from __future__ import annotations

import multiprocessing
from datetime import UTC, datetime

from headrace.state import SqlStateStore, open_store
from headrace.state.store_base import RunState, TaskState

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def _claim(url: str, schema: str | None, run_id: str, start: object, out: object) -> None:
    """In a child process: read the run, wait for the others, claim it."""
    with open_store(url, schema=schema) as store:
        seen = store.get_run(run_id)
        start.wait()  # type: ignore[attr-defined]
        won = store.claim_run(seen, pid=multiprocessing.current_process().pid or 0, hostname="test")
        out.put(won)  # type: ignore[attr-defined]


def _failed_run(store: SqlStateStore) -> str:
    run, _ = store.create_run("p", T0, T0, T0)
    store.ensure_task_instances(run.run_id, [("a", -1), ("b", -1)])
    store.update_task_instance(run.run_id, "a", state=TaskState.SUCCESS, attempt=1)
    store.update_task_instance(run.run_id, "b", state=TaskState.FAILED, attempt=1, error="boom")
    store.update_run(run.run_id, state=RunState.FAILED, heartbeat_at=T0, pid=1, hostname="old")
    return run.run_id


def test_only_one_of_four_processes_claims(
    store: SqlStateStore, store_target: tuple[str, str | None]
) -> None:
    run_id = _failed_run(store)
    ctx = multiprocessing.get_context("fork")
    start, out = ctx.Barrier(4), ctx.Queue()
    procs = [ctx.Process(target=_claim, args=(*store_target, run_id, start, out)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    wins = sorted(out.get(timeout=5) for _ in procs)
    assert wins == [False, False, False, True]
    run = store.get_run(run_id)
    assert run.state == RunState.RUNNING and run.hostname == "test"


def test_claim_refused_once_the_run_changed(store: SqlStateStore) -> None:
    run_id = _failed_run(store)
    seen = store.get_run(run_id)  # heartbeat_at is a whole second: compared, it would never match
    assert store.claim_run(seen, pid=2, hostname="h")
    assert not store.claim_run(seen, pid=3, hostname="h")  # stale: the run is running now
    store.update_run(run_id, state=RunState.FAILED)
    assert not store.claim_run(
        seen, pid=4, hostname="h"
    )  # failed again, but driven by another pid since
    run = store.get_run(run_id)
    assert (run.state, run.pid, run.hostname, run.error) == (RunState.FAILED, 2, "h", None)
    tis = {ti.task_id: ti for ti in store.get_task_instances(run_id)}
    assert tis["b"].state == TaskState.FAILED  # a claim touches the run only
