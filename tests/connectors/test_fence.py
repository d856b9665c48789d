"""Fenced loads and the newer-row guard of merge, on each destination backend."""

from __future__ import annotations

import datetime as dt
import threading

import pyarrow as pa
import pytest

from headrace.connectors import Checkpoint, DuckDBDestination, PostgresDestination
from headrace.connectors.incremental import CheckpointMoved, data_digest, load_identity

Dest = DuckDBDestination | PostgresDestination
T = dt.datetime(2024, 1, 1)


def rows(ids: list[int], minute: int, qty: int) -> pa.Table:
    return pa.table({
        "id": ids,
        "qty": [qty] * len(ids),
        "updated_at": [T + dt.timedelta(minutes=minute)] * len(ids),
    })  # fmt: skip


def stored(dest: Dest) -> dict[int, int]:
    data = dest.query(f"SELECT id, qty FROM {dest.q('items')}")
    return dict(zip(data.column("id").to_pylist(), data.column("qty").to_pylist(), strict=True))


def merge(dest: Dest, data: pa.Table, fence: Checkpoint | None, **kw: object) -> object:
    last = max(data.column("updated_at").to_pylist())
    return dest.write(
        data, "items", mode="merge", keys=["id"], fence=fence,
        checkpoint=Checkpoint("p", "src", last), **kw,  # type: ignore[arg-type]
    )  # fmt: skip


def test_a_load_fenced_on_an_old_checkpoint_applies_nothing(destination: Dest) -> None:
    none = Checkpoint("p", "src", None)
    merge(destination, rows([1, 2, 3], 1, 10), none)  # first load: no checkpoint stored
    start = destination.checkpoint("p", "src")
    assert start is not None
    merge(destination, rows([2, 3], 5, 20), start)  # a newer run loads
    with pytest.raises(CheckpointMoved) as caught:  # an older extract, fenced on the first
        merge(destination, rows([1, 2, 3, 4], 2, 99), start)
    assert (caught.value.pipeline, caught.value.source) == ("p", "src")
    assert caught.value.expected == start.value and caught.value.found == T + dt.timedelta(
        minutes=5
    )
    assert stored(destination) == {1: 10, 2: 20, 3: 20}  # nothing of the stale load
    with pytest.raises(CheckpointMoved):  # "no checkpoint yet" is a fence value too
        merge(destination, rows([9], 9, 1), none)


def test_merge_never_replaces_a_newer_stored_row(destination: Dest) -> None:
    merge(destination, rows([1, 2], 5, 50), None, cursor_column="updated_at")
    result = merge(
        destination, pa.concat_tables([rows([1], 2, 20), rows([2, 3], 7, 70)]), None,
        cursor_column="updated_at",
    )  # fmt: skip
    assert stored(destination) == {1: 50, 2: 70, 3: 70}  # id 1's older row did not win
    assert (result.rows_in, result.rows_loaded, result.rows_superseded) == (3, 2, 1)  # type: ignore[attr-defined]


def test_content_identity_replays_are_no_ops_and_changes_apply(destination: Dest) -> None:
    data = rows([1, 2], 1, 10)
    load_id = load_identity("p", "src", "items", None, data_digest(data))
    first = merge(destination, data, None, load_id=load_id)
    replay = merge(destination, rows([1, 2], 1, 10), None,
                   load_id=load_identity("p", "src", "items", None, data_digest(rows([1, 2], 1, 10))))  # fmt: skip
    assert replay.already_loaded and replay.load_id == first.load_id  # type: ignore[attr-defined]
    changed = rows([1, 2], 1, 11)
    again = merge(destination, changed, None,
                  load_id=load_identity("p", "src", "items", None, data_digest(changed)))  # fmt: skip
    assert not again.already_loaded and stored(destination) == {1: 11, 2: 11}  # type: ignore[attr-defined]


def test_two_loads_fenced_on_one_checkpoint_commit_once(destination: Dest) -> None:
    """Two writers that started from the same checkpoint: exactly one commits."""
    merge(destination, rows([1], 1, 1), Checkpoint("p", "src", None))
    start = destination.checkpoint("p", "src")
    outcomes: list[str] = []

    def load(minute: int) -> None:
        dest = _same(destination)
        try:
            merge(dest, rows([1, 2], minute, minute), start)
            outcomes.append("committed")
        except CheckpointMoved:
            outcomes.append("moved")
        except Exception as exc:  # DuckDB: a write-write conflict of the two transactions
            outcomes.append("conflict" if "onflict" in str(exc) else repr(exc))

    threads = [threading.Thread(target=load, args=(m,)) for m in (3, 4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("committed") == 1, outcomes
    assert set(outcomes) <= {"committed", "moved", "conflict"}, outcomes


def _same(dest: Dest) -> Dest:
    """Another destination object on the same database (its own connection)."""
    if isinstance(dest, DuckDBDestination):
        return DuckDBDestination(dest.path)
    return PostgresDestination(dest.conn_url, schema=dest.schema)
