"""Task groups: prefixed ids, Task.group, and ``group >> task`` / ``task >> group`` edges."""

from __future__ import annotations

import pytest

from headrace import pipeline, task
from headrace.errors import DefinitionError
from headrace.pipeline import task_group


@task
def users() -> int:
    return 1


@task
def orders() -> int:
    return 2


@task
def combine(a: int, b: int) -> int:
    return a + b


@task
def start() -> None:
    return None


@task
def report() -> None:
    return None


def test_tasks_in_a_group_get_prefixed_ids_and_their_group() -> None:
    @pipeline
    def etl():
        with task_group("extract"):
            u, o = users(), orders()
        combine(u, o)

    assert etl.order == ["extract.users", "extract.orders", "combine"]
    assert etl.tasks["extract.users"].group == "extract"
    assert etl.tasks["combine"].group is None
    assert etl.upstream["combine"] == ("extract.users", "extract.orders")
    assert etl.groups == {"extract": ["extract.users", "extract.orders"], None: ["combine"]}


def test_group_edges_go_to_its_roots_and_from_its_leaves() -> None:
    @pipeline
    def etl():
        first = start()
        with task_group("extract") as extract:
            u = users()
            combine(u, orders())  # combine waits for users and orders: the group's only leaf
        first >> extract >> report()

    assert etl.upstream["extract.users"] == ("start",)
    assert etl.upstream["extract.orders"] == ("start",)
    assert set(etl.upstream["extract.combine"]) == {"extract.users", "extract.orders"}
    assert etl.upstream["report"] == ("extract.combine",)


def test_groups_nest_and_the_same_task_in_two_groups_is_two_tasks() -> None:
    @pipeline
    def regions():
        with task_group("eu") as eu:
            users()
        with task_group("us"), task_group("east") as east:
            users()
        eu >> east
        [eu, east] >> report()

    assert regions.order == ["eu.users", "us.east.users", "report"]
    assert regions.tasks["us.east.users"].group == "us.east"
    assert regions.upstream["us.east.users"] == ("eu.users",)
    assert regions.upstream["report"] == ("eu.users", "us.east.users")


def test_group_mistakes_are_definition_errors() -> None:
    with pytest.raises(DefinitionError, match="only works inside a @pipeline"):
        task_group("outside")
    with pytest.raises(DefinitionError, match="may only hold letters"):

        @pipeline
        def dotted():
            with task_group("a.b"):
                users()

    with pytest.raises(DefinitionError, match="has no tasks to link"):

        @pipeline
        def empty():
            with task_group("nothing") as nothing:
                pass
            nothing >> users()

    with pytest.raises(DefinitionError, match="already has a task group 'twice'"):

        @pipeline
        def twice():
            with task_group("twice"):
                users()
            with task_group("twice"):
                orders()


@task_group
def extract() -> None:
    users()
    orders()


@task_group
def counted():
    return combine(users(), orders())


def test_decorated_groups_are_named_after_the_function_and_numbered_on_reuse() -> None:
    @pipeline
    def etl():
        extract() >> report()
        extract()
        total = counted()  # returns what the function returns: here the combine result
        start() << total

    assert etl.order[:2] == ["extract.users", "extract.orders"]
    assert etl.upstream["report"] == ("extract.users", "extract.orders")
    assert "extract__2.users" in etl.tasks and etl.tasks["extract__2.users"].group == "extract__2"
    assert etl.upstream["start"] == ("counted.combine",)
    with pytest.raises(DefinitionError, match="only works inside a @pipeline"):
        extract()
