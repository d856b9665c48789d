"""Run-context values for built-in tasks, and ``{{ name }}`` templates with safe quoting.

The same values serve three uses: placeholders in shell commands (each value
shell-quoted), bind parameters of SQL tasks (``:ds``), and ``--vars`` of dbt.
Templates deliberately understand only ``{{ name }}`` and ``{{ params.name }}``:
no expressions, so a template cannot run code and every substitution is quotable.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from headrace.errors import DefinitionError, did_you_mean
from headrace.pipeline import Context
from headrace.pipeline.macros import MACRO_NAMES

__all__ = ["CONTEXT_NAMES", "context_values", "placeholders", "render"]

_PLACEHOLDER = re.compile(
    r"\{\{\s*(?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?)\s*\}\}"
)

#: names a template or SQL statement may use, besides ``params.<name>``
CONTEXT_NAMES = (
    *MACRO_NAMES,
    "run_id",
    "pipeline",
    "task_id",
    "map_index",
    "attempt",
)


def context_values(ctx: Context) -> dict[str, Any]:
    """The run's values by name; datetimes stay datetimes (callers format them).

    Args:
        ctx: the task's run context.

    Returns:
        The macros of :mod:`headrace.pipeline.macros` (``ds``, ``ts``, ``prev_ds``, ``next_ds``,
        ``data_interval_start``, ``prev_data_interval_start``, ... with Airflow's meanings),
        ``run_id``, ``pipeline``, ``task_id``, ``map_index``, ``attempt`` and ``params`` (a dict).
    """
    return {
        **{name: getattr(ctx, name) for name in MACRO_NAMES},
        "run_id": ctx.run_id,
        "pipeline": ctx.pipeline,
        "task_id": ctx.task_id,
        "map_index": ctx.map_index,
        "attempt": ctx.attempt,
        "params": dict(ctx.params),
    }


def placeholders(template: str, *, task: str) -> list[str]:
    """The names used by ``template``; an unknown context name is a DefinitionError.

    Args:
        template: text with ``{{ name }}`` placeholders.
        task: the task's id, kept on the error as its ``task`` field.
    """
    names = [m["name"] for m in _PLACEHOLDER.finditer(template)]
    for name in names:
        if not name.startswith("params.") and name not in CONTEXT_NAMES:
            raise DefinitionError(
                f"unknown placeholder {{{{ {name} }}}}; known: {', '.join(CONTEXT_NAMES)}, "
                "params.<name>." + did_you_mean(name, CONTEXT_NAMES),
                task=task,
            )
    leftover = _PLACEHOLDER.sub("", template)
    if "{{" in leftover or "}}" in leftover:
        raise DefinitionError(
            f"template {template!r} has '{{{{' or '}}}}' that is not a "
            "{{ name }} placeholder (expressions and filters are not supported)",
            task=task,
        )
    return names


def _text(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def render(
    template: str,
    values: Mapping[str, Any],
    *,
    task: str,
    quote: Callable[[str], str] = shlex.quote,
) -> str:
    """Replace each ``{{ name }}`` with its value passed through ``quote``.

    Args:
        template: the text; checked with :func:`placeholders`.
        values: from :func:`context_values`.
        task: the task's id, kept on an error as its ``task`` field.
        quote: applied to every substituted value (``shlex.quote`` for shells, so a
            value can never become shell syntax; a date such as ``2024-01-02`` needs
            no quotes and stays usable inside globs like ``customers_{{ ds }}*``).

    Example:
        >>> render("rm -rf /tmp/c_{{ ds }}* {{ params.x }}", {"ds": "2024-01-02", "params": {"x": "a; b"}}, task="t")
        "rm -rf /tmp/c_2024-01-02* 'a; b'"
    """
    placeholders(template, task=task)
    params = values.get("params", {})

    def substitute(match: re.Match[str]) -> str:
        name = match["name"]
        if name.startswith("params."):
            key = name.split(".", 1)[1]
            if key not in params:
                raise DefinitionError(
                    f"placeholder {{{{ {name} }}}} names no pipeline param; "
                    f"known params: {', '.join(params) or 'none'}." + did_you_mean(key, params),
                    task=task,
                )
            return quote(_text(params[key]))
        return quote(_text(values[name]))

    return _PLACEHOLDER.sub(substitute, template)
