"""The SQL that reads a table's quarantined rows of some loads from ``<table>_quarantine``.

A quarantine table holds each set-aside row with its reason (``_hr_reason``) and the
load that set it aside (``_hr_load_id``). The web UI pages through one load's rows on
the destination's own connection; the MCP server reads a run's rows through its
read-only guard. Both build the query here (quoted names, bound values) and run it
their way; each masks the values it serves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from headrace.connectors.destinations.destination_base import META_LOAD_ID, QUARANTINE_SUFFIX
from headrace.connectors.naming import quote_ident

#: Shown first, in this order, where a reader picks the columns; the row's own follow.
LEAD_COLUMNS = ("_hr_reason", "_hr_expectation")


def quarantine_table(table: str) -> str:
    """The name of the table that holds ``table``'s quarantined rows."""
    return table + QUARANTINE_SUFFIX


@dataclass(frozen=True)
class QuarantineQuery:
    """Reads of the rows of some loads in one quarantine table.

    Args:
        table: the quarantine table, quoted as the FROM clause names it.
        load_ids: rows of these loads.
        run_id: also rows whose load id starts with this run id (a run's loads).
        dialect: ``duckdb`` or ``postgresql`` (how names are quoted).
        percent_marks: ``%s`` placeholders (psycopg) instead of ``$1``.

    Example:
        >>> q = QuarantineQuery('"orders_quarantine"', ["load-1"])
        >>> sql, params = q.rows(limit=20, offset=40)
    """

    table: str
    load_ids: Sequence[str]
    run_id: str | None = None
    dialect: str = "postgresql"
    percent_marks: bool = False

    def count(self) -> tuple[str, list[Any]]:
        """``SELECT count(*) AS n`` of the rows, and its parameters."""
        where, params = self._where()
        return f"SELECT count(*) AS n FROM {self.table} WHERE {where}", params

    def rows(
        self, columns: Sequence[str] | None = None, limit: int | None = None, offset: int = 0
    ) -> tuple[str, list[Any]]:
        """The rows (``columns`` in that order, else every column), and the parameters.

        Named columns are also the sort order, so pages are stable (identical rows are
        interchangeable); ``limit`` None reads every row (the caller caps them).
        """
        where, params = self._where()
        if columns is None:
            return f"SELECT * FROM {self.table} WHERE {where}", params
        select = ", ".join(quote_ident(c, self.dialect) for c in columns)
        order = ", ".join(str(i + 1) for i in range(len(columns)))
        sql = f"SELECT {select} FROM {self.table} WHERE {where} ORDER BY {order}"
        if limit is not None:
            sql += f" LIMIT {self._mark(len(params) + 1)} OFFSET {self._mark(len(params) + 2)}"
            params += [limit, offset]
        return sql, params

    def _where(self) -> tuple[str, list[Any]]:
        col = quote_ident(META_LOAD_ID, self.dialect)
        ids = list(dict.fromkeys(self.load_ids))
        terms: list[str] = []
        params: list[Any] = []
        if self.run_id is not None:
            terms.append(f"substr({col}, 1, {self._mark(1)}) = {self._mark(2)}")
            params += [len(self.run_id), self.run_id]
        if ids:
            marks = [self._mark(len(params) + 1 + i) for i in range(len(ids))]
            terms.append(f"{col} IN ({', '.join(marks)})")
            params += ids
        return " OR ".join(terms) or "FALSE", params

    def _mark(self, n: int) -> str:
        return "%s" if self.percent_marks else f"${n}"
