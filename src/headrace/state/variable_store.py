"""Variables in the state store: named values that tasks read with ``ctx.var(name)``.

Airflow's ``Variable``: set once (``headrace vars set source_db_conn postgresql://...``),
read by every run. A variable is secret when set with ``--secret`` or when its name
looks like one (``password``, ``secret``, ``token``, ``api_key``, ... as Airflow's
sensitive-name rule); a secret value is shown as ``***`` everywhere unless revealed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from headrace.errors import StateError, did_you_mean
from headrace.state.schema import utcnow, variables

__all__ = ["MASK", "VariableRecord", "VariablesMixin", "looks_secret"]

MASK = "***"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,249}$")
_SENSITIVE = re.compile(
    r"(?i)(password|passwd|secret|token|api[_-]?key|apikey|access[_-]?key|private[_-]?key|credential)"
)


def looks_secret(name: str) -> bool:
    """Whether a variable's name marks it secret on its own (``db_password``, ``slack_token``)."""
    return _SENSITIVE.search(name) is not None


@dataclass(frozen=True)
class VariableRecord:
    """One variable as stored.

    Attributes:
        name, value: the variable.
        secret: whether its value is masked when shown.
        description: what it is for.
        updated_at: when it was last set.
    """

    name: str
    value: str
    secret: bool
    description: str | None
    updated_at: datetime

    def shown(self, reveal: bool = False) -> str:
        """The value as it may be displayed: ``***`` for a secret unless ``reveal``."""
        return self.value if reveal or not self.secret else MASK


class VariablesMixin:
    """The variable methods of :class:`headrace.state.sql_store.SqlStateStore`."""

    backend: str
    _where: str
    _tx: Callable[..., AbstractContextManager[Connection]]
    _read: Callable[[str], AbstractContextManager[Connection]]

    def set_variable(
        self, name: str, value: str, *, secret: bool | None = None, description: str | None = None
    ) -> VariableRecord:
        """Create or replace variable ``name``.

        Args:
            name: letters, digits, ``_ . -``; at most 250 characters.
            value: the value (text; JSON if tasks read it with ``deserialize_json``).
            secret: mask it when shown; None: secret if the name looks like one, or if it
                was secret before.
            description: what it is for (kept when None and the variable exists).
        """
        if not _NAME.match(name or ""):
            raise StateError(
                f"variable name {name!r} may only hold letters, digits, '_', '.', '-' (max 250)"
            )
        if not isinstance(value, str):
            raise StateError(
                f"variable {name!r}: the value must be text, got {type(value).__name__}"
            )
        old = self.get_variable(name)
        if secret is None:
            secret = looks_secret(name) or (old is not None and old.secret)
        if description is None and old is not None:
            description = old.description
        row: dict[str, Any] = {
            "name": name,
            "value": value,
            "secret": bool(secret),
            "description": description,
            "updated_at": utcnow(),
        }
        insert_fn = postgresql.insert if self.backend == "postgresql" else sqlite.insert
        stmt = insert_fn(variables).values(row)
        stmt = stmt.on_conflict_do_update(
            index_elements=["name"], set_={k: stmt.excluded[k] for k in row if k != "name"}
        )
        with self._tx(f"set variable {name!r}", atomic=False) as conn:
            conn.execute(stmt)
        return VariableRecord(**row)

    def get_variable(self, name: str) -> VariableRecord | None:
        """Variable ``name``, or None when it is not set."""
        with self._read(f"read variable {name!r}") as conn:
            row = conn.execute(select(variables).where(variables.c.name == name)).first()
        return VariableRecord(**row._mapping) if row is not None else None

    def require_variable(self, name: str) -> VariableRecord:
        """Variable ``name``; a StateError suggesting the closest name when it is not set."""
        found = self.get_variable(name)
        if found is None:
            names = [v.name for v in self.list_variables()]
            raise StateError(
                f"variable {name!r} is not set in {self._where}; set it with `headrace vars set {name} VALUE`."
                + did_you_mean(name, names)
            )
        return found

    def list_variables(self) -> list[VariableRecord]:
        """Every variable, by name."""
        with self._read("list variables") as conn:
            rows = conn.execute(select(variables).order_by(variables.c.name)).all()
        return [VariableRecord(**r._mapping) for r in rows]

    def delete_variable(self, name: str) -> bool:
        """Delete variable ``name``; False when it was not set."""
        with self._tx(f"delete variable {name!r}", atomic=False) as conn:
            return conn.execute(delete(variables).where(variables.c.name == name)).rowcount > 0
