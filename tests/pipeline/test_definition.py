"""The definition API: tasks, wiring, mapping, defaults, context detection, misuse errors."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime, timedelta

import pytest

from headrace import Context, Pipeline, Retry, Task, pipeline, task
from headrace.errors import DefinitionError


@task
def extract() -> list[int]:
    return [1, 2, 3]


@task(retries=Retry(attempts=4), tags=["heavy"])
def transform(rows: list[int], factor: int = 2) -> list[int]:
    return [r * factor for r in rows]


@task
def load(rows: list[int]) -> int:
    return len(rows)


@task
def notify() -> None: ...


@task
def audit() -> None: ...


@task
def square(x: int) -> int:
    return x * x


def test_calls_wire_data_dependencies_and_shift_orders_the_rest() -> None:
    @pipeline(defaults={"retries": 2, "timeout": 60, "owner": "data-team"}, tags=["etl"])
    def etl():
        rows = transform(extract(), factor=3)
        load(rows) >> [notify(), audit()]

    assert isinstance(etl, Pipeline)
    assert etl.name == "etl"
    assert etl.order == ["extract", "transform", "load", "notify", "audit"]
    assert etl.upstream == {
        "extract": (),
        "transform": ("extract",),
        "load": ("transform",),
        "notify": ("load",),
        "audit": ("load",),
    }
    assert etl.downstream["load"] == ("notify", "audit")
    # the task's own policy wins; the pipeline defaults fill the rest
    assert etl.tasks["transform"].retries.attempts == 4
    assert etl.tasks["extract"].retries.attempts == 3
    assert etl.tasks["extract"].timeout == timedelta(seconds=60)
    assert etl.tasks["load"].owner == "data-team"
    assert etl.tasks["transform"].tags == ["heavy"]
    assert etl.tasks["transform"].kwargs == {"factor": 3}
    assert etl.tasks["extract"].trigger_rule == "all_success"
    assert etl.tags == ["etl"]


def test_a_list_on_the_left_of_shift_fans_in() -> None:
    @pipeline
    def fan_in():
        [notify(), audit()] >> extract()

    assert fan_in.upstream["extract"] == ("notify", "audit")


def test_mapping_over_a_list_and_over_an_upstream_result() -> None:
    @pipeline
    def mapped():
        load(square.map(x=extract()))
        square.map(x=[1, 2])

    node = mapped.tasks["square"]
    assert node.is_mapped and node.map_param == "x"
    assert node.upstream_ids == ("extract",)
    assert mapped.tasks["square__2"].map_source == [1, 2]
    assert mapped.upstream["load"] == ("square",)


@pytest.mark.parametrize(
    "body, message",
    [
        (lambda: square.map(y=[1]), "has no parameter 'y' to map over"),
        (lambda: transform.map(rows=[1], factor=[2]), "takes exactly one parameter=list"),
        (lambda: square.map(x=5), "needs a list or an upstream task result"),
        # wrong on purpose: what mypy rejects must fail at definition time too
        (lambda: transform(), "called with wrong arguments"),  # type: ignore[call-overload]
        (lambda: extract() >> notify, "did you forget the parentheses"),  # type: ignore[operator]
        (lambda: extract()[0], "only known when the pipeline runs"),
    ],
)
def test_misuse_inside_a_pipeline_is_a_definition_error(body, message: str) -> None:
    with pytest.raises(DefinitionError, match=message):
        pipeline(body, name="bad")


def test_a_task_outside_a_pipeline_is_a_plain_function() -> None:
    assert transform([1, 2], factor=5) == [5, 10]
    assert inspect.signature(transform) == inspect.signature(transform.fn)
    assert transform.__name__ == "transform"
    assert isinstance(transform, Task)


def test_the_context_parameter_is_found_by_annotation_or_name() -> None:
    @task
    def by_annotation(rows: list[int], run: Context) -> None: ...

    @task
    def by_name(ctx, rows: list[int]) -> None: ...

    @task
    def without(rows: list[int]) -> None: ...

    assert by_annotation.context_param == "run"
    assert by_name.context_param == "ctx" and by_name.context_position == 0
    assert without.context_param is None
    assert list(by_name.signature.parameters) == ["rows"]  # callers never pass it


def test_pipeline_settings_are_validated() -> None:
    def body() -> None:
        extract()

    with pytest.raises(DefinitionError, match="unknown timezone 'Mars/Base'"):
        pipeline(timezone="Mars/Base")(body)
    with pytest.raises(DefinitionError, match="max_active_runs must be an integer >= 1"):
        pipeline(max_active_runs=0)(body)
    with pytest.raises(DefinitionError, match="has no tasks"):
        pipeline(lambda: None)
    with pytest.raises(DefinitionError, match="is before start_date"):
        pipeline(start_date=datetime(2024, 2, 1), end_date=datetime(2024, 1, 1))(body)

    p = pipeline(start_date=datetime(2024, 1, 1), timezone="Europe/Paris", schedule="@daily")(body)
    assert p.start_date.utcoffset() == timedelta(hours=1)  # naive dates are in the pipeline zone
    assert p.timetable.infer_manual_interval(datetime(2024, 6, 1, 12, tzinfo=UTC))[0] == datetime(
        2024, 5, 31, 22, tzinfo=UTC
    )


def test_unknown_task_lookup_suggests_the_closest() -> None:
    p = pipeline(lambda: load(transform(extract())), name="p")
    with pytest.raises(DefinitionError, match="Did you mean 'transform'"):
        p.task("transfrom")


def test_override_makes_an_independent_copy() -> None:
    eu = extract.override(task_id="extract_eu", timeout=30)
    assert (eu.task_id, eu.timeout) == ("extract_eu", timedelta(seconds=30))
    assert extract.task_id == "extract" and extract.timeout is None


def test_async_functions_are_refused() -> None:
    async def fetch() -> None: ...

    with pytest.raises(DefinitionError, match="is async"):
        task(fetch)
