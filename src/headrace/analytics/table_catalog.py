"""The catalog: which tables and views exist, and finding one by name."""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from headrace.analytics.sql_quoting import quote_qualified
from headrace.errors import AnalyticsError, did_you_mean

TableRef = str | tuple[str, str] | tuple[str, str, str]


@dataclass(frozen=True)
class Relation:
    """A table or view found in the catalog.

    Args:
        database: DuckDB database (catalog) name, ``temp`` for temporary objects.
        schema: schema name.
        name: table or view name.
        kind: ``table`` or ``view``.
    """

    database: str
    schema: str
    name: str
    kind: str

    @property
    def sql(self) -> str:
        """The fully qualified, quoted name to put in SQL."""
        return quote_qualified((self.database, self.schema, self.name))

    @property
    def display(self) -> str:
        """The name as users write it: bare in ``main``, ``schema.name`` elsewhere."""
        return self.name if self.schema == "main" else f"{self.schema}.{self.name}"


def list_relations(con: duckdb.DuckDBPyConnection) -> list[Relation]:
    """Every user table and view visible to ``con``, sorted by database, schema, name."""
    rows = con.sql(
        "SELECT database_name, schema_name, table_name, 'table' FROM duckdb_tables() "
        "UNION ALL "
        "SELECT database_name, schema_name, view_name, 'view' FROM duckdb_views() WHERE NOT internal "
        "ORDER BY 1, 2, 3"
    ).fetchall()
    return [Relation(*row) for row in rows]


def find_relation(con: duckdb.DuckDBPyConnection, table: TableRef, location: str) -> Relation:
    """Find a table or view by name; an unknown name raises with the closest one.

    Args:
        con: the connection whose catalog is searched.
        table: a name (``"sales"``; ``"raw.sales"`` when no table is literally called
            that), or a ``(schema, name)`` / ``(database, schema, name)`` tuple.
        location: the database, for the error message.

    Returns:
        The catalog entry, whose :attr:`Relation.sql` is safe to put in SQL.
    """
    relations = list_relations(con)
    current_db = con.sql("SELECT current_database()").fetchall()[0][0]
    if isinstance(table, tuple):
        wanted: list[tuple[str, ...]] = [tuple(table)]
    else:
        parts = table.split(".")
        wanted = [(table,)]
        # A dotted name is tried whole first: hostile or odd names may contain dots.
        wanted += [(".".join(parts[:i]), ".".join(parts[i:])) for i in range(1, len(parts))]
        if len(parts) >= 3:
            wanted += [(parts[0], parts[1], ".".join(parts[2:]))]
    for want in wanted:
        found = [r for r in relations if _matches(r, want)]
        # Temporary objects shadow stored ones, as in DuckDB's own lookup.
        found.sort(
            key=lambda r: (r.database != "temp", r.database != current_db, r.schema != "main")
        )
        if found:
            return found[0]
    shown = ".".join(table) if isinstance(table, tuple) else table
    known = [r.display for r in relations]
    listing = ", ".join(repr(k) for k in known[:10]) or "none"
    raise AnalyticsError(
        f"unknown table in {location}." + did_you_mean(shown, known) + f" Known tables: {listing}.",
        table=shown,
    )


def _matches(rel: Relation, want: tuple[str, ...]) -> bool:
    if len(want) == 1:
        return rel.name == want[0]
    if len(want) == 2:
        return (rel.schema, rel.name) == want
    return (rel.database, rel.schema, rel.name) == want
