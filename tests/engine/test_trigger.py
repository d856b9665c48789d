"""Trigger rules: the decision table, and all_done / none_failed inside a real run."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from headrace import pipeline, task
from headrace.engine import Runner
from headrace.engine.trigger import RUN, SKIP, UPSTREAM_FAILED, decide
from headrace.errors import TerminalError
from headrace.state.store_base import RunState, TaskState

S, F, UF, SK = TaskState.SUCCESS, TaskState.FAILED, TaskState.UPSTREAM_FAILED, TaskState.SKIPPED


@pytest.mark.parametrize(
    "rule, upstream, expected",
    [
        ("all_success", [], RUN),
        ("all_success", [S, S], RUN),
        ("all_success", [S, F], UPSTREAM_FAILED),
        ("all_success", [S, UF], UPSTREAM_FAILED),
        ("all_success", [S, SK], SKIP),
        ("all_done", [F, SK, S], RUN),
        ("all_failed", [F, UF], RUN),
        ("all_failed", [F, S], SKIP),
        ("one_success", [F, S], RUN),
        ("one_success", [F, UF], UPSTREAM_FAILED),
        ("one_success", [SK, F], SKIP),
        ("one_failed", [S, F], RUN),
        ("one_failed", [S, S], SKIP),
        ("none_failed", [S, SK], RUN),
        ("none_failed", [S, F], UPSTREAM_FAILED),
    ],
)
def test_decision_table(rule: str, upstream: list[TaskState], expected: str) -> None:
    assert decide(rule, upstream) == expected


@task
def boom() -> None:
    raise TerminalError("nothing to load")


@task(trigger_rule="all_done")
def always_clean_up() -> str:
    return "cleaned"


@task(trigger_rule="one_failed")
def alert() -> str:
    return "alerted"


@task
def report() -> str:
    return "reported"


@pipeline
def with_cleanup():
    failed = boom()
    failed >> always_clean_up()
    failed >> alert()
    failed >> report()


def test_cleanup_and_alert_run_after_a_failure(store, settings) -> None:
    result = Runner(store, executor="inprocess", settings=settings).run(
        with_cleanup, datetime(2024, 1, 1, tzinfo=UTC)
    )

    assert result.state == RunState.FAILED  # boom failed, whatever ran after it
    assert result.result_of("always_clean_up") == "cleaned"
    assert result.result_of("alert") == "alerted"
    assert result.task("report").state == TaskState.UPSTREAM_FAILED
