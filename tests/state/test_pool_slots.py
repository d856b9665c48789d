"""Pool slots on both backends: a size cap, idempotent takes, slots of dead drivers given back."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta

from headrace.state import RunState, SqlStateStore, open_store
from headrace.state.liveness import HOSTNAME

DAY = datetime(2024, 1, 1, tzinfo=UTC)


def _running_run(store: SqlStateStore, day: int, pid: int, hostname: str = HOSTNAME) -> str:
    run, _ = store.create_run("etl", DAY + timedelta(days=day), DAY, DAY + timedelta(days=1))
    store.update_run(
        run.run_id,
        state=RunState.RUNNING,
        pid=pid,
        hostname=hostname,
        heartbeat_at=datetime.now(UTC),
    )
    return run.run_id


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_full_pool_refuses_until_a_slot_is_given_back(store: SqlStateStore) -> None:
    import os

    a, b = _running_run(store, 0, os.getpid()), _running_run(store, 1, os.getpid())
    assert store.acquire_pool_slot("db", 1, a, "load")
    assert store.acquire_pool_slot("db", 1, a, "load")  # taking it again: still one slot
    assert not store.acquire_pool_slot("db", 1, b, "load")
    assert store.acquire_pool_slot("other", 1, b, "load")  # pools are independent
    assert [(s.run_id, s.task_id) for s in store.list_pool_slots("db")] == [(a, "load")]

    store.release_pool_slot(a, "load")
    assert store.acquire_pool_slot("db", 1, b, "load", 0)
    assert store.acquire_pool_slot("db", 2, a, "load")  # a bigger size applies at once
    assert store.release_pool_slots(b) == 2


def test_slots_of_dead_or_finished_drivers_are_given_back(store: SqlStateStore) -> None:
    import os

    dead = _running_run(store, 0, _dead_pid())
    finished = _running_run(store, 1, os.getpid())
    far_away = _running_run(store, 2, 1, hostname="another-host")
    alive = _running_run(store, 3, os.getpid())
    for run_id in (dead, finished, far_away):
        assert store.acquire_pool_slot("db", 3, run_id, "load")
    store.update_run(finished, state=RunState.SUCCESS)
    # The dead and the finished driver's slots go back; the other host's driver counts as
    # alive while its heartbeat is fresh, so a pool of 1 is still full.
    assert not store.acquire_pool_slot("db", 1, alive, "load", stale_after=timedelta(minutes=5))
    assert {s.run_id for s in store.list_pool_slots("db")} == {far_away}
    store.update_run(far_away, heartbeat_at=datetime.now(UTC) - timedelta(minutes=10))
    assert store.acquire_pool_slot("db", 1, alive, "load", stale_after=timedelta(minutes=5))
    assert {s.run_id for s in store.list_pool_slots("db")} == {alive}


def test_racing_threads_never_exceed_the_size(store_target: tuple[str, str | None]) -> None:
    import os

    url, schema = store_target
    with open_store(url, schema=schema) as store:
        run_id = _running_run(store, 0, os.getpid())
    won: list[int] = []

    def take(i: int) -> None:
        with open_store(url, schema=schema) as own:  # one store per thread, like separate drivers
            if own.acquire_pool_slot("db", 3, run_id, f"t{i}"):
                won.append(i)

    threads = [threading.Thread(target=take, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 3
