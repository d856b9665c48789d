"""Control-flow signals a task may raise: not errors, so they live outside the error tree.

A task raising :class:`Reschedule` has not failed: it asks to be run again later
without holding a worker slot meanwhile, the way a reschedule-mode sensor waits. The
engine marks it ``up_for_reschedule`` and runs it again after the task's
``reschedule_delay``; the attempt does not count against its retries.
"""

from __future__ import annotations


class Reschedule(Exception):  # noqa: N818 - a signal, not an error: no "Error" suffix
    """Run this task again later; the attempt does not count as a try.

    Subclasses may also derive from a headrace error (``SensorNotReady`` does), so code
    that only knows that error still sees a transient condition.
    """
