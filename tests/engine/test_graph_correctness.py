"""Graph correctness: repeated calls of a task, branch decisions over all its calls, table types, error texts."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

from headrace import pipeline, task
from headrace.cli import run_app
from headrace.engine import Runner
from headrace.pipeline import Context
from headrace.state import open_store
from headrace.state.store_base import RunState, TaskState

DAY = datetime(2024, 5, 1, tzinfo=UTC)


@task.branch
def pick(ctx: Context) -> str:
    return ctx.params["size"]


@task
def big() -> str:
    return "big"


@task
def small() -> str:
    return "small"


@task(trigger_rule="none_failed")
def done() -> str:
    return "done"


@pipeline(name="sizes", params={"size": "big"})
def sizes():
    pick() >> [big(), small()]
    [big(), small()] >> done()  # second calls: big__2 and small__2


def test_a_second_call_gets_a_documented_id_and_the_branch_decides_every_call(
    store, settings
) -> None:
    assert sizes.instances["small"] == ("small", "small__2")
    assert "pick" in sizes.upstream["small__2"]  # it waits for the decision

    runner = Runner(store, executor="inprocess", settings=settings)
    chose_big = runner.run(sizes, DAY, params={"size": "big"})
    states = {t.task_id: t.state for t in chose_big.tasks}
    assert states["small"] == TaskState.SKIPPED and states["small__2"] == TaskState.SKIPPED
    assert states["big"] == TaskState.SUCCESS and states["big__2"] == TaskState.SUCCESS
    assert chose_big.task("pick").result_json == ["big", "big__2"]

    chose_small = runner.run(sizes, datetime(2024, 5, 2, tzinfo=UTC), params={"size": "small"})
    states = {t.task_id: t.state for t in chose_small.tasks}
    assert states["big__2"] == TaskState.SKIPPED and states["small__2"] == TaskState.SUCCESS
    assert states["done"] == TaskState.SUCCESS


def test_override_names_a_second_call_instead() -> None:
    @pipeline(name="named_calls")
    def named_calls():
        pick() >> [big(), small()]
        small.override(task_id="small_again")()

    assert named_calls.instances["small"] == ("small",)
    assert named_calls.upstream["small_again"] == ()  # another task: the branch does not decide it


@task
def polars_rows() -> pl.DataFrame:
    return pl.DataFrame({"id": [1, 2, 3], "name": ["a", "b", "c"]})


@task
def arrow_rows() -> pa.Table:
    return pa.table({"id": [4, 5]})


@task
def wants_arrow(rows: pa.Table) -> dict[str, object]:
    return {"type": type(rows).__name__, "columns": rows.column_names, "rows": rows.num_rows}


@task
def wants_pandas(rows: pd.DataFrame | None) -> str:
    assert rows is not None
    return type(rows).__name__ + str(int(rows["id"].sum()))


@task
def wants_polars(rows: pl.DataFrame) -> str:
    return type(rows).__name__ + str(rows["id"].sum())


@task
def untyped(rows) -> str:
    return type(rows).__name__


@pipeline(name="table_types")
def table_types():
    rows = polars_rows()
    wants_arrow(rows)
    wants_pandas(rows)
    untyped(rows)
    wants_polars(arrow_rows())


@pytest.mark.parametrize("executor", ["inprocess", pytest.param("process", marks=pytest.mark.slow)])
def test_inputs_arrive_as_the_annotated_table_type(store, settings, executor: str) -> None:
    result = Runner(store, executor=executor, settings=settings, concurrency=1).run(
        table_types, DAY
    )

    assert result.state == RunState.SUCCESS, [t.error for t in result.tasks if t.error]
    assert result.result_of("wants_arrow") == {
        "type": "Table",
        "columns": ["id", "name"],
        "rows": 3,
    }
    assert result.result_of("wants_pandas") == "DataFrame6"
    assert result.result_of("wants_polars") == "DataFrame9"
    assert result.result_of("untyped") == "DataFrame"  # as returned: Polars


PIPE = textwrap.dedent("""
    from headrace import pipeline, task

    class Thing:
        pass

    @task
    def not_json() -> object:
        return Thing()

    @pipeline
    def odd():
        not_json()
""")


def test_error_texts_are_stored_whole_and_cut_only_at_a_word_for_display(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HEADRACE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HEADRACE_STATE_URL", f"sqlite:///{tmp_path / 'home' / 'state.db'}")
    monkeypatch.setenv("COLUMNS", "400")
    (tmp_path / "odd.py").write_text(PIPE)

    code = run_app(["run", "odd.py", "--date", "2024-01-02", "--executor", "inprocess"])
    out = capsys.readouterr().out

    assert code == 1
    with open_store(f"sqlite:///{tmp_path / 'home' / 'state.db'}") as store:
        error = store.get_task_instances(store.list_runs("odd")[0].run_id)[0].error or ""
    assert (
        "is not JSON serializable); return a table, or plain str/int/float/bool/list/dict values"
        in error
    )
    message, cause = error.split("\n")  # the message whole, then the error it wraps
    assert message.endswith("(dates as ISO strings)")
    assert cause == "caused by: TypeError: Object of type Thing is not JSON serializable"
    shown = next(line for line in out.splitlines() if "ResultTypeError" in line)
    assert "…" in shown
    cut = shown.split("…")[0].split()[-1]
    assert cut in error.split(), f"cut mid-word: {cut!r}"
