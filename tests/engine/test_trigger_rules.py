"""Every trigger rule end to end: a run where it fires and one where it does not."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from headrace import pipeline, task
from headrace.engine import Runner
from headrace.errors import TerminalError
from headrace.pipeline import Pipeline
from headrace.state import open_store
from headrace.state.store_base import TaskState

DAY = datetime(2024, 6, 1, tzinfo=UTC)
ORDER: list[str] = []


@task
def ok() -> str:
    ORDER.append("ok")
    return "ok"


@task
def bad() -> None:
    ORDER.append("bad")
    raise TerminalError("broken on purpose")


@task.branch
def skip_it() -> None:
    return None  # follows no path: its downstream task is skipped


@task
def skipped() -> str:
    return "never runs"


@task
def target() -> str:
    ORDER.append("target")
    return "fired"


def _pipeline(rule: str, upstream: str) -> Pipeline:
    """``upstream`` letters: o = succeeds, f = fails, s = is skipped (by a branch)."""
    makers = {"o": ok, "f": bad, "s": skipped}

    @pipeline(name=f"{rule}_{upstream}")
    def flow():
        ups = []
        for i, kind in enumerate(upstream):
            ref = makers[kind].override(task_id=f"{kind}{i}")()
            if kind == "s":
                skip_it.override(task_id=f"branch{i}")() >> ref
            ups.append(ref)
        ups >> target.override(trigger_rule=rule)()

    return flow


CASES = [
    # rule, upstream outcomes, state of the task with that rule
    ("all_success", "oo", TaskState.SUCCESS),
    ("all_success", "of", TaskState.UPSTREAM_FAILED),
    ("all_success", "os", TaskState.SKIPPED),
    ("all_done", "ofs", TaskState.SUCCESS),
    ("all_done", "ff", TaskState.SUCCESS),
    ("one_failed", "of", TaskState.SUCCESS),
    ("one_failed", "oo", TaskState.SKIPPED),
    ("one_success", "fo", TaskState.SUCCESS),
    ("one_success", "ff", TaskState.UPSTREAM_FAILED),
    ("one_success", "sf", TaskState.SKIPPED),  # failed only when every upstream failed
    ("one_success", "ss", TaskState.SKIPPED),
    ("none_failed", "os", TaskState.SUCCESS),
    ("none_failed", "of", TaskState.UPSTREAM_FAILED),
    ("all_failed", "ff", TaskState.SUCCESS),
    ("all_failed", "fo", TaskState.SKIPPED),
]


@pytest.mark.parametrize("rule, upstream, expected", CASES, ids=[f"{r}-{u}" for r, u, _ in CASES])
def test_rule_in_a_real_run(store, settings, rule: str, upstream: str, expected: TaskState) -> None:
    ORDER.clear()
    result = Runner(store, executor="inprocess", settings=settings).run(
        _pipeline(rule, upstream), DAY
    )

    target_ti = result.task("target")
    assert target_ti.state == expected
    assert ("target" in ORDER) == (expected == TaskState.SUCCESS)
    if expected == TaskState.SUCCESS:
        assert result.result_of("target") == "fired"


def test_every_rule_is_covered() -> None:
    from headrace.pipeline import TRIGGER_RULES

    fired = {rule for rule, _, state in CASES if state == TaskState.SUCCESS}
    held = {rule for rule, _, state in CASES if state != TaskState.SUCCESS} | {"all_done"}
    assert fired == held == set(TRIGGER_RULES)


@task
def first() -> str:
    ORDER.append("first")
    return "first"


@task
def late(value: str) -> str:
    ORDER.append("late")
    return value


@task(trigger_rule="one_failed")
def alert() -> str:
    ORDER.append("alert")
    return "alerted"


@task(trigger_rule="one_success")
def announce() -> str:
    ORDER.append("announce")
    return "announced"


@pipeline
def eager():
    failing = bad()
    slow = late(late.override(task_id="middle")(first()))
    [failing, slow] >> alert()
    [failing, first.override(task_id="quick")(), slow] >> announce()


def test_one_failed_and_one_success_start_before_the_other_upstream_tasks_end(
    store, settings
) -> None:
    ORDER.clear()
    result = Runner(store, executor="inprocess", settings=settings).run(eager, DAY)

    assert result.task("alert").state == TaskState.SUCCESS
    assert result.task("announce").state == TaskState.SUCCESS
    # late is two steps after first; alert and announce did not wait for it.
    last = len(ORDER) - 1 - ORDER[::-1].index("late")  # middle runs the same function first
    assert ORDER.index("alert") < last and ORDER.index("announce") < last
    assert ORDER.count("alert") == ORDER.count("announce") == 1  # fired once, not again at the end


def test_rules_on_postgresql(pg_schema, settings) -> None:
    url, schema = pg_schema
    with open_store(url, schema=schema) as pg_store:
        runner = Runner(pg_store, executor="inprocess", settings=settings)
        assert (
            runner.run(_pipeline("one_failed", "of"), DAY).task("target").state == TaskState.SUCCESS
        )
        assert (
            runner.run(_pipeline("none_failed", "of"), DAY).task("target").state
            == TaskState.UPSTREAM_FAILED
        )
