"""Run parameters: defaults declared on the pipeline, values given per run.

A value given as a string (``--param limit=10`` on the command line) is converted to
the type of the parameter's default; a value that does not convert is a clear error.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from headrace.errors import TerminalError, did_you_mean

_TRUE = {"1", "true", "yes", "y", "on"}
_FALSE = {"0", "false", "no", "n", "off"}


class ParamError(TerminalError):
    """A run parameter is unknown or has a value of the wrong type.

    Args:
        param: the parameter's name.
        value: the value given.
        problem: what is wrong with it and what to do.
        location: pipeline, run_id as for :class:`~headrace.errors.HeadraceError`.
    """

    def __init__(self, param: str, value: Any, problem: str, **location: Any) -> None:
        self.param, self.value, self.problem = param, value, problem
        super().__init__(f"parameter {param!r} {problem}", **location)


def coerce_param(pipeline: str, name: str, default: Any, value: Any) -> Any:
    """``value`` converted to the type of ``default`` when it is a string.

    Args:
        pipeline: pipeline name, for the message.
        name: parameter name.
        default: the declared default (its type is the parameter's type; None = any).
        value: the given value.
    """
    if default is None or not isinstance(value, str) or isinstance(default, str):
        return value
    kind = type(default).__name__
    try:
        if isinstance(default, bool):
            low = value.strip().lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
            raise ValueError("expected true/false, yes/no or 1/0")
        if isinstance(default, int):
            return int(value)
        if isinstance(default, float):
            return float(value)
        if isinstance(default, datetime):
            return datetime.fromisoformat(value)
        if isinstance(default, date):
            return date.fromisoformat(value)
        if isinstance(default, list | dict):
            parsed = json.loads(value)
            if not isinstance(parsed, type(default)):
                raise ValueError(f"expected a JSON {kind}")
            return parsed
    except (ValueError, json.JSONDecodeError) as exc:
        raise ParamError(
            name,
            value,
            f"expects a {kind} (default {default!r}), got {value!r}: {exc}",
            pipeline=pipeline,
        ) from exc
    return value


def resolve_params(
    pipeline: str, defaults: Mapping[str, Any], given: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The defaults overlaid with the given values, each converted to its declared type."""
    resolved = dict(defaults)
    for name, value in (given or {}).items():
        if name not in defaults:
            raise ParamError(
                name,
                value,
                f"is not declared; declared: {', '.join(defaults) or 'none'}."
                + did_you_mean(name, defaults),
                pipeline=pipeline,
            )
        resolved[name] = coerce_param(pipeline, name, defaults[name], value)
    return resolved
