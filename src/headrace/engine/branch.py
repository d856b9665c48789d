"""Branching: what a branch task returned, checked against the tasks it may choose.

A branch task (``@task.branch``) returns the id(s) of the direct downstream tasks to
follow. The attempt turns that into the stored result, a list of full task ids; the
driver skips the direct downstream tasks that are not in it.
"""

from __future__ import annotations

from typing import Any

from headrace.errors import DefinitionError, did_you_mean
from headrace.pipeline import Pipeline


def chosen_ids(pipeline: Pipeline, task_id: str, value: Any) -> list[str]:
    """The full ids of the downstream tasks a branch task chose.

    Args:
        pipeline: the pipeline of the branch task.
        task_id: the branch task.
        value: what it returned: a task id, a list of them, or None (follow none).
            Inside a task group the id may be given without the group prefix.

    Returns:
        Full task ids, each a direct downstream task of ``task_id``, without repeats; a
        chosen task brings every other call of it (``small__2``) the branch decides.

    Raises:
        DefinitionError: a returned id is not a direct downstream task (closest suggested),
            or the value is not a string, a list of strings or None.
    """
    if value is None:
        return []
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple | set | frozenset) or not all(
        isinstance(i, str) for i in items
    ):
        raise DefinitionError(
            f"a branch task must return a task id, a list of task ids or None, got {type(value).__name__} "
            f"{value!r}",
            pipeline=pipeline.name,
            task=task_id,
        )
    downstream = pipeline.downstream[task_id]
    group = pipeline.tasks[task_id].group
    chosen: list[str] = []
    for name in items:
        if name in downstream:
            chosen.append(name)
        elif group is not None and f"{group}.{name}" in downstream:
            chosen.append(f"{group}.{name}")
        else:
            raise DefinitionError(
                f"the branch returned {name!r}, which is not one of its direct downstream tasks "
                f"({', '.join(downstream)}); return one of those or link it with {task_id} >> {name}."
                + did_you_mean(name, downstream),
                pipeline=pipeline.name,
                task=task_id,
            )
    # Choosing a task chooses every call of it the branch decides (``small`` and ``small__2``).
    return list(
        dict.fromkeys(
            other
            for tid in chosen
            for other in pipeline.instances[tid]
            if other == tid or other in downstream
        )
    )
