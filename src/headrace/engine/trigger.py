"""Trigger rules: whether a task runs, given the final states of its upstream tasks.

The engine asks once every upstream task has finished, except for ``one_failed`` and
``one_success``: it asks those as soon as one upstream task failed (succeeded), with
the other upstream states as they are then. The answer is ``run``, ``upstream_failed``
or ``skip``; a branch task marks the paths it did not choose SKIPPED and the rules
below let that skip flow downstream.
"""

from __future__ import annotations

from collections.abc import Sequence

from headrace.pipeline.policy import TriggerRule
from headrace.state.store_base import TaskState

RUN, UPSTREAM_FAILED, SKIP = "run", "upstream_failed", "skip"
_FAILED = (TaskState.FAILED, TaskState.UPSTREAM_FAILED)


def decide(rule: TriggerRule | str, upstream: Sequence[TaskState]) -> str:
    """Apply ``rule`` to the finished upstream states.

    Args:
        rule: a :class:`~headrace.pipeline.TriggerRule` (or its name).
        upstream: final states of the upstream tasks (empty for a root task).

    Returns:
        ``run``, ``upstream_failed`` or ``skip``.
    """
    if not upstream:
        return RUN
    failed = sum(s in _FAILED for s in upstream)
    success = sum(s == TaskState.SUCCESS for s in upstream)
    if rule == TriggerRule.ALL_SUCCESS:
        return RUN if success == len(upstream) else UPSTREAM_FAILED if failed else SKIP
    if rule == TriggerRule.ALL_DONE:
        return RUN
    if rule == TriggerRule.ALL_FAILED:
        return RUN if failed == len(upstream) else SKIP
    if rule == TriggerRule.ONE_SUCCESS:
        return RUN if success else UPSTREAM_FAILED if failed == len(upstream) else SKIP
    if rule == TriggerRule.ONE_FAILED:
        return RUN if failed else SKIP
    if rule == TriggerRule.NONE_FAILED:
        return UPSTREAM_FAILED if failed else RUN
    raise ValueError(f"unknown trigger rule {rule!r}")  # validated at definition time
