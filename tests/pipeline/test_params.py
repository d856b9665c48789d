"""Run parameters: defaults, string conversion to the default's type, clear errors."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from headrace.pipeline import ParamError
from headrace.pipeline.params import coerce_param, resolve_params


@pytest.mark.parametrize(
    "default, given, expected",
    [
        (False, "true", True),
        (True, "no", False),
        (10, "42", 42),
        (0.5, "2.5", 2.5),
        (date(2024, 1, 1), "2024-02-03", date(2024, 2, 3)),
        (datetime(2024, 1, 1), "2024-02-03T04:05", datetime(2024, 2, 3, 4, 5)),
        ([], '["a", "b"]', ["a", "b"]),
        ({}, '{"k": 1}', {"k": 1}),
        ("text", "more", "more"),
        (None, "anything", "anything"),
        (3, 7, 7),  # not a string: kept as given
    ],
)
def test_strings_become_the_default_type(default, given, expected) -> None:
    assert coerce_param("p", "x", default, given) == expected


def test_a_value_that_does_not_convert_names_pipeline_parameter_and_type() -> None:
    with pytest.raises(
        ParamError, match=r"pipeline 'etl': parameter 'full_refresh' expects a bool"
    ):
        coerce_param("etl", "full_refresh", False, "maybe")
    with pytest.raises(ParamError, match="expected a JSON list"):
        coerce_param("etl", "ids", [], '{"a": 1}')


def test_unknown_parameters_suggest_the_closest() -> None:
    with pytest.raises(ParamError, match="Did you mean 'full_refresh'"):
        resolve_params("etl", {"full_refresh": False}, {"full_refresh_": "1"})
    assert resolve_params("etl", {"a": 1, "b": "x"}, {"a": "2"}) == {"a": 2, "b": "x"}
