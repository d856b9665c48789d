"""SLA misses kept by the state store: idempotent record, listing, unknown runs, both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from headrace.errors import StateError
from headrace.scheduler import SlaLedger
from headrace.state import SlaMissRecord, open_store

DAY = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def any_store(request, tmp_path):
    if request.param == "sqlite":
        with open_store(f"sqlite:///{tmp_path / 'state.db'}") as store:
            yield store
    else:
        url, schema = request.getfixturevalue("pg_schema")
        with open_store(url, schema=schema) as store:
            yield store


def _miss(run_id: str, task_id: str, day: int, pipeline: str = "etl") -> SlaMissRecord:
    logical = DAY + timedelta(days=day)
    return SlaMissRecord(
        pipeline=pipeline,
        run_id=run_id,
        task_id=task_id,
        logical_date=logical,
        deadline=logical + timedelta(days=1, hours=3),
        sla=timedelta(hours=3),
        detected_at=logical + timedelta(days=2),
    )


def test_record_once_and_list_newest_deadline_first(any_store) -> None:
    runs = [
        any_store.create_run(p, DAY + timedelta(days=d), DAY, DAY)[0].run_id
        for p, d in (("etl", 0), ("etl", 1), ("other", 1))
    ]
    assert any_store.record_sla_miss(_miss(runs[0], "load", 0))
    assert not any_store.record_sla_miss(
        _miss(runs[0], "load", 0)
    )  # a second scheduler finds it recorded
    assert any_store.record_sla_miss(_miss(runs[1], "load", 1))
    assert any_store.record_sla_miss(_miss(runs[2], "report", 1, pipeline="other"))

    assert [(m.run_id, m.task_id) for m in any_store.list_sla_misses("etl")] == [
        (runs[1], "load"),
        (runs[0], "load"),
    ]
    (stored,) = any_store.list_sla_misses(run_ids=[runs[2]])
    assert stored == _miss(
        runs[2], "report", 1, pipeline="other"
    )  # aware UTC times, timedelta back
    assert any_store.list_sla_misses(run_ids=[]) == []
    assert SlaLedger.for_store(any_store).known(runs) == {
        (runs[0], "load"),
        (runs[1], "load"),
        (runs[2], "report"),
    }


def test_a_miss_of_an_unknown_run_is_refused(any_store) -> None:
    run, _ = any_store.create_run("etl", DAY, DAY, DAY)
    with pytest.raises(StateError, match="Unknown run id .*Did you mean"):
        typo = run.run_id[:-1] + ("x" if run.run_id[-1] != "x" else "y")
        any_store.record_sla_miss(_miss(typo, "load", 0))
