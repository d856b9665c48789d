"""Notebooks and unit tests: one call runs a pipeline, one call builds a Context,
one retry vocabulary, and full signatures in help()."""

from __future__ import annotations

import inspect
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest

import headrace
from headrace import Context, Retry, pipeline, run_pipeline, task
from headrace.errors import DefinitionError

SRC = str(Path(headrace.__file__).resolve().parents[1])


@task
def numbers(ctx: Context) -> pa.Table:
    ctx.log.info("making %d rows", ctx.params["n"])
    return pa.table({"x": list(range(ctx.params["n"]))})


@task
def square(x: int) -> int:
    return x * x


@task
def total(table: pa.Table, squares: list[int]) -> dict:
    return {"rows": table.num_rows, "sum_of_squares": sum(squares)}


@pipeline(params={"n": 3})
def demo():
    total(numbers(), square.map(x=[1, 2, 3]))


def test_run_pipeline_returns_the_task_results(tmp_path: Path) -> None:
    outcome = run_pipeline(demo, params={"n": 4}, home=tmp_path)
    assert outcome.ok, outcome.errors
    assert outcome.results["total"] == {"rows": 4, "sum_of_squares": 14}
    assert outcome.results["square"] == [1, 4, 9]
    assert outcome.results["numbers"].column("x").to_pylist() == [0, 1, 2, 3]
    assert "making 4 rows" in outcome.log_text("numbers")
    assert (tmp_path / "state.db").exists()


def test_run_pipeline_reports_a_failure_without_raising() -> None:
    @task
    def boom() -> None:
        raise ValueError("broken on purpose")

    @pipeline
    def failing():
        boom()

    outcome = run_pipeline(failing)
    assert not outcome.ok and "broken on purpose" in outcome.errors["boom"]


def test_run_pipeline_from_main_of_a_script(tmp_path: Path) -> None:
    script = tmp_path / "script.py"
    script.write_text(
        textwrap.dedent("""
        from headrace import pipeline, run_pipeline, task

        @task
        def hello(name: str) -> str:
            return f"Hello, {name}!"

        @pipeline
        def greet():
            hello("Ada")

        if __name__ == "__main__":
            print(run_pipeline(greet).results["hello"])
    """)
    )
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": SRC, "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "Hello, Ada!"


def test_context_for_test_has_defaults() -> None:
    ctx = Context.for_test(
        datetime(2024, 1, 2), params={"n": 2}, connections={"CRM": "sqlite:///crm.db"}
    )
    assert (ctx.ds, ctx.prev_ds) == ("2024-01-02", "2024-01-01")
    assert ctx.logical_date.tzinfo == UTC and ctx.connection("crm") == "sqlite:///crm.db"
    assert numbers(ctx).num_rows == 2  # a task called directly in a unit test
    today = Context.for_test()
    assert today.data_interval_end == today.logical_date and today.attempt == 1


def test_one_retry_vocabulary() -> None:
    @task(retries=3)
    def by_retries() -> None: ...

    @task(attempts=4)
    def by_attempts() -> None: ...

    @task(retries=Retry(attempts=4))
    def by_retry() -> None: ...

    assert by_retries.retries == by_attempts.retries == by_retry.retries == Retry(attempts=4)
    assert Retry(attempts=4).retries == 3
    with pytest.raises(DefinitionError, match="give one: attempts counts every try"):

        @task(retries=2, attempts=3)
        def both() -> None: ...


def test_help_shows_the_full_signatures() -> None:
    task_options = inspect.signature(task.__call__).parameters
    for name in (
        "task_id",
        "retries",
        "attempts",
        "timeout",
        "sla",
        "pool",
        "trigger_rule",
        "checks",
    ):
        assert name in task_options
    assert not any(p.kind == p.VAR_KEYWORD for p in task_options.values())
    pipeline_options = inspect.signature(pipeline).parameters
    for name in ("schedule", "start_date", "catchup", "max_active_runs", "params", "defaults"):
        assert name in pipeline_options
    assert not any(p.kind == p.VAR_KEYWORD for p in pipeline_options.values())
