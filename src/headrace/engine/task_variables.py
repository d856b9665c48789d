"""Reading Variables from inside a task: ``ctx.var(name)`` asks the run's state store.

A secret variable's value, once a task has read it, is replaced by ``***`` in the lines
the attempt logs, its progress messages and its error text (:class:`SecretMask`), as
Airflow masks secret Variables in task logs.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from headrace.state import open_store
from headrace.state.store_base import StateStore
from headrace.state.variable_store import MASK

__all__ = ["SecretMask", "variable_reader"]

#: Values shorter than this are not masked: replacing "1" or "no" everywhere would garble logs.
MIN_MASKED = 4


class SecretMask:
    """The secret values one attempt has read; calling it hides them in a text."""

    def __init__(self) -> None:
        self.values: list[str] = []

    def add(self, value: str) -> None:
        """Hide ``value`` from now on (values shorter than MIN_MASKED characters are left)."""
        if len(value) >= MIN_MASKED and value not in self.values:
            self.values.append(value)
            self.values.sort(
                key=len, reverse=True
            )  # a longer secret containing a shorter one first

    def __call__(self, text: str) -> str:
        for value in self.values:
            text = text.replace(value, MASK)
        return text


@functools.lru_cache(maxsize=4)
def _store(state_url: str) -> StateStore:
    # One store per process and URL: tasks of many runs read through it (a worker is long-lived).
    return open_store(state_url)


def variable_reader(state_url: str, mask: SecretMask | None = None) -> Callable[[str], str] | None:
    """A function returning a variable's value (KeyError when unset), or None without a store.

    Args:
        state_url: the state store of the run; the store is opened on the first read.
        mask: receives the values of secret variables read, to hide them in logs.
    """
    if not state_url:
        return None

    def read(name: str) -> str:
        record = _store(state_url).get_variable(name)
        if record is None:
            raise KeyError(name)
        if record.secret and mask is not None:
            mask.add(record.value)
        return record.value

    return read
