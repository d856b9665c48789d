"""Reading Variables from inside a task: ``ctx.var(name)`` asks the run's state store."""

from __future__ import annotations

import functools
from collections.abc import Callable

from headrace.state import open_store
from headrace.state.base import StateStore

__all__ = ["variable_reader"]


@functools.lru_cache(maxsize=4)
def _store(state_url: str) -> StateStore:
    # One store per process and URL: tasks of many runs read through it (a worker is long-lived).
    return open_store(state_url)


def variable_reader(state_url: str) -> Callable[[str], str] | None:
    """A function returning a variable's value (KeyError when unset), or None without a store.

    Args:
        state_url: the state store of the run; the store is opened on the first read.
    """
    if not state_url:
        return None

    def read(name: str) -> str:
        record = _store(state_url).get_variable(name)
        if record is None:
            raise KeyError(name)
        return record.value

    return read
