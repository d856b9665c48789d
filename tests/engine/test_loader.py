"""Definition mistakes are reported when a pipeline file is loaded, naming file, line and task."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from headrace.engine import load_pipelines, pick_pipeline
from headrace.errors import DefinitionError

HEADER = "from datetime import timedelta\nfrom headrace import pipeline, task, Retry\n"


def write(tmp_path: Path, body: str, name: str = "flow.py") -> Path:
    path = tmp_path / name
    path.write_text(HEADER + textwrap.dedent(body))
    return path


def load_error(path: Path) -> str:
    with pytest.raises(DefinitionError) as info:
        load_pipelines(path)
    return str(info.value)


def test_a_cycle_names_its_tasks_and_lines(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        @task
        def a() -> None: ...
        @task
        def b() -> None: ...
        @pipeline
        def looped():
            x = a()
            y = b()
            x >> y
            y >> x
    """,
    )
    message = load_error(path)
    assert "has a cycle" in message
    assert "a >> b" in message and "b >> a" in message
    assert f"{path}:12" in message and f"{path}:13" in message  # the two >> lines


def test_two_tasks_with_one_id_are_refused(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        @task(task_id="load")
        def load_a() -> None: ...
        @task(task_id="load")
        def load_b() -> None: ...
        @pipeline
        def twice():
            load_a()
            load_b()
    """,
    )
    message = load_error(path)
    assert f"{path}:11" in message
    assert "two different tasks named 'load'" in message


def test_the_same_task_called_twice_gets_a_suffixed_id(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        @task
        def ping() -> None: ...
        @pipeline
        def pings():
            ping() >> ping()
    """,
    )
    assert list(load_pipelines(path)["pings"].tasks) == ["ping", "ping__2"]


def test_bad_policy_values_point_at_their_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        @task(retries=Retry(attempts=0))
        def a() -> None: ...
    """,
    )
    message = load_error(path)
    assert f"{path}:4" in message and "attempts" in message

    path = write(
        tmp_path,
        """
        @task(timeout="2h")
        def a() -> None: ...
    """,
        "timeout.py",
    )
    message = load_error(path)
    assert "task 'a': timeout must be a timedelta" in message


def test_a_bad_schedule_is_reported_at_load(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        @task
        def a() -> None: ...
        @pipeline(schedule="0 25 * * *")
        def nightly():
            a()
    """,
    )
    message = load_error(path)
    assert f"{path}:6" in message and "pipeline 'nightly'" in message and "0 25 * * *" in message


def test_unknown_names_suggest_the_closest(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        @task
        def a() -> None: ...
        @pipeline(defaults={"retires": 3})
        def p():
            a()
    """,
    )
    assert "Did you mean 'retries'?" in load_error(path)

    path = write(
        tmp_path,
        """
        @task(trigger_rule="all_sucess")
        def a() -> None: ...
    """,
        "rule.py",
    )
    assert "Did you mean 'all_success'?" in load_error(path)

    path = write(
        tmp_path,
        """
        @task
        def a() -> None: ...
        @pipeline
        def customer_etl():
            a()
    """,
        "names.py",
    )
    with pytest.raises(DefinitionError, match="Did you mean 'customer_etl'"):
        pick_pipeline(load_pipelines(path), "customer_elt", str(path))


def test_an_import_error_inside_the_file_names_file_and_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        import not_a_module_at_all
    """,
    )
    message = load_error(path)
    assert f"{path}:4" in message
    assert "import error" in message and "not_a_module_at_all" in message


def test_a_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        def broken(:
            pass
    """,
    )
    assert f"{path}:4: syntax error" in load_error(path)


def test_wrong_task_arguments_are_caught_at_load(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        @task
        def add(a: int, b: int) -> int:
            return a + b
        @pipeline
        def sums():
            add(1, 2, 3)
    """,
    )
    message = load_error(path)
    assert f"{path}:9" in message and "task 'add': called with wrong arguments" in message


def test_a_missing_file_suggests_a_neighbour(tmp_path: Path) -> None:
    write(tmp_path, "", "customer_etl.py")
    with pytest.raises(DefinitionError, match="Did you mean 'customer_etl.py'"):
        load_pipelines(tmp_path / "customer_elt.py")


def test_a_file_without_pipelines_says_so(tmp_path: Path) -> None:
    path = write(tmp_path, "x = 1\n")
    assert "defines no pipeline" in load_error(path)
