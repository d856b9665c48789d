"""Branching: a branch task picks its downstream paths; the others are skipped, also on resume."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from headrace import pipeline, task
from headrace.engine import Runner
from headrace.errors import DefinitionError
from headrace.pipeline import Context, task_group
from headrace.state import open_store
from headrace.state.store_base import RunState, TaskState

DAY = datetime(2024, 5, 1, tzinfo=UTC)
CALLS: list[str] = []


@task.branch
def choose(ctx: Context) -> object:
    CALLS.append("choose")
    return ctx.params["path"]


@task
def fast() -> str:
    CALLS.append("fast")
    return "fast"


@task
def thorough(ctx: Context) -> str:
    CALLS.append("thorough")
    if ctx.params["break_thorough"] and "broken-once" not in CALLS:
        CALLS.append("broken-once")
        raise RuntimeError("warehouse not ready")
    return "thorough"


@task
def after_thorough(value: str) -> str:
    return value + "!"


@task(trigger_rule="none_failed")
def join() -> str:
    return "joined"


@task(trigger_rule="all_done")
def audit() -> str:
    return "audited"


def _branchy_pipeline():
    @pipeline(name="branchy", params={"path": "fast", "break_thorough": False})
    def branchy_fn():
        picked = choose()
        slow = thorough()
        picked >> [fast(), slow]
        picked >> audit()
        [fast.override(task_id="fast_again")(), after_thorough(slow)] >> join()

    return branchy_fn


@pytest.fixture(autouse=True)
def _calls() -> None:
    CALLS.clear()


def _run(store, settings, pipe, **params):
    return Runner(store, executor="inprocess", settings=settings).run(pipe, DAY, params=params)


def test_only_the_chosen_path_runs_and_skips_flow_downstream(store, settings) -> None:
    result = _run(store, settings, _branchy_pipeline(), path="fast")

    assert result.state == RunState.SUCCESS
    assert result.task("choose").result_json == ["fast"]
    assert result.task("fast").state == TaskState.SUCCESS
    assert result.task("thorough").state == TaskState.SKIPPED
    assert result.task("after_thorough").state == TaskState.SKIPPED  # all_success after a skip
    assert result.task("audit").state == TaskState.SKIPPED  # not chosen: skipped whatever its rule
    assert result.task("join").state == TaskState.SUCCESS  # none_failed joins the paths again
    assert "thorough" not in CALLS


def test_a_list_follows_several_paths_and_none_follows_none(store, settings) -> None:
    both = _run(store, settings, _branchy_pipeline(), path=["fast", "thorough", "audit"])
    assert {t.task_id: t.state for t in both.tasks if t.task_id != "choose"} == {
        "fast": TaskState.SUCCESS,
        "thorough": TaskState.SUCCESS,
        "after_thorough": TaskState.SUCCESS,
        "audit": TaskState.SUCCESS,
        "fast_again": TaskState.SUCCESS,
        "join": TaskState.SUCCESS,
    }
    none = Runner(store, executor="inprocess", settings=settings).run(
        _branchy_pipeline(), datetime(2024, 5, 2, tzinfo=UTC), params={"path": None}
    )
    assert none.state == RunState.SUCCESS
    assert [t.task_id for t in none.tasks if t.state == TaskState.SKIPPED] == [
        "after_thorough",
        "audit",
        "fast",
        "thorough",
    ]


def test_an_id_that_is_not_a_direct_downstream_fails_the_branch_with_a_suggestion(
    store, settings
) -> None:
    result = _run(store, settings, _branchy_pipeline(), path="thorugh")

    choice = result.task("choose")
    assert choice.state == TaskState.FAILED
    assert choice.error_kind == "DefinitionError" and choice.attempt == 1  # never retried
    assert "'thorugh', which is not one of its direct downstream tasks" in choice.error
    assert "Did you mean 'thorough'?" in choice.error
    # join is downstream, but not directly: it cannot be chosen either.
    again = Runner(store, executor="inprocess", settings=settings).run(
        _branchy_pipeline(), datetime(2024, 5, 3, tzinfo=UTC), params={"path": "join"}
    )
    assert "not one of its direct downstream tasks" in (again.task("choose").error or "")


def test_resume_keeps_the_choice_without_running_the_branch_again(store, settings) -> None:
    runner = Runner(store, executor="inprocess", settings=settings)
    pipe = _branchy_pipeline()
    first = runner.run(pipe, DAY, params={"path": "thorough", "break_thorough": True})
    assert first.state == RunState.FAILED and first.task("fast").state == TaskState.SKIPPED

    resumed = runner.resume(first.run_id, pipe)

    assert resumed.state == RunState.SUCCESS
    assert CALLS.count("choose") == 1  # the stored choice is reused
    assert resumed.task("fast").state == TaskState.SKIPPED
    assert resumed.result_of("after_thorough") == "thorough!"


def test_branch_inside_a_group_may_name_tasks_without_the_group_prefix(store, settings) -> None:
    @pipeline(name="grouped_branch", params={"path": "fast", "break_thorough": False})
    def grouped_branch():
        with task_group("load"):
            choose() >> [fast(), thorough()]

    result = _run(store, settings, grouped_branch, path="fast")
    assert result.task("load.choose").result_json == ["load.fast"]
    assert result.task("load.thorough").state == TaskState.SKIPPED


def test_a_branch_task_needs_downstream_tasks() -> None:
    with pytest.raises(
        DefinitionError, match="branch task 'choose' of pipeline 'lonely' has no downstream"
    ):

        @pipeline(name="lonely")
        def lonely():
            choose()


def test_a_branch_task_cannot_be_mapped() -> None:
    @task.branch
    def pick(x: int) -> str:
        return "fast"

    with pytest.raises(DefinitionError, match="branch task 'pick' cannot be mapped"):

        @pipeline(name="mapped_branch")
        def mapped_branch():
            pick.map(x=[1, 2]) >> fast()


def test_branching_on_postgresql(pg_schema, settings) -> None:
    url, schema = pg_schema
    with open_store(url, schema=schema) as pg_store:
        result = _run(pg_store, settings, _branchy_pipeline(), path="thorough")
        assert result.state == RunState.SUCCESS
        assert pg_store.get_task_instance(result.run_id, "choose").result_json == ["thorough"]
        assert result.task("fast").state == TaskState.SKIPPED
        assert result.result_of("after_thorough") == "thorough!"
