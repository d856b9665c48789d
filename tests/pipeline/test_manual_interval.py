"""A manual run with a date, through the Runner: headrace's meaning and Airflow's."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from headrace import pipeline, task
from headrace.engine import Runner
from headrace.errors import DefinitionError


@task
def noop() -> int:
    return 1


@pipeline(schedule="0 2 * * *", timezone="Europe/Berlin", manual_interval="ending")
def airflow_like() -> None:
    noop()


@pipeline(schedule="0 2 * * *", timezone="Europe/Berlin")
def headrace_default() -> None:
    noop()


DATE = datetime(2024, 5, 5, 13, 30, tzinfo=UTC)


def test_ending_covers_the_interval_that_ends_before_the_date(store, settings) -> None:
    result = Runner(store, executor="inprocess", settings=settings).run(airflow_like, DATE)
    assert result.run.logical_date == DATE
    assert (result.run.data_interval_start, result.run.data_interval_end) == (
        datetime(2024, 5, 4, 0, tzinfo=UTC),
        datetime(2024, 5, 5, 0, tzinfo=UTC),
    )


def test_the_default_covers_the_interval_that_contains_the_date(store, settings) -> None:
    result = Runner(store, executor="inprocess", settings=settings).run(headrace_default, DATE)
    assert (result.run.data_interval_start, result.run.data_interval_end) == (
        datetime(2024, 5, 5, 0, tzinfo=UTC),
        datetime(2024, 5, 6, 0, tzinfo=UTC),
    )


def test_an_unknown_choice_is_a_definition_error() -> None:
    with pytest.raises(DefinitionError, match=r"manual_interval 'end'.*Did you mean 'ending'"):
        pipeline(schedule="@daily", manual_interval="end")(lambda: None)
