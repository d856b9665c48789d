"""Safe SQL text for DuckDB: quoted identifiers and quoted literals.

Values go into queries as bound parameters wherever DuckDB accepts one. Two places
do not: identifiers (table and column names) and the body of a ``CREATE VIEW``,
which DuckDB stores as text and so cannot hold a parameter. Those go through the
quoting functions here, which double the quote character so any name or path,
including ``drop table x; --`` or ``a "b"``, stays one token. Identifiers are quoted by
:func:`headrace.connectors.naming.quote_ident`, the one quoting of every connector.
"""

from __future__ import annotations

from collections.abc import Sequence

from headrace.connectors.naming import quote_ident

# DuckDB type names, grouped by what a profile or an aggregate can do with them.
_INTEGER_TYPES = {
    "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT",
    "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT",
}  # fmt: skip
_FLOAT_TYPES = {"FLOAT", "DOUBLE", "REAL"}
_TEMPORAL_PREFIXES = ("DATE", "TIMESTAMP", "TIME")

__all__ = ["quote_ident", "quote_qualified", "quote_literal", "type_kind", "is_integer_type"]


def quote_qualified(parts: Sequence[str]) -> str:
    """Quote a dotted name part by part: ``("raw", "a.b")`` becomes ``"raw"."a.b"``."""
    return ".".join(quote_ident(p) for p in parts)


def quote_literal(value: str) -> str:
    """Quote a string as a SQL literal, for the few places that take no parameter.

    DuckDB string literals treat only the single quote as special (backslashes are
    ordinary characters), so doubling it is a complete escape.
    """
    if "\x00" in value:
        raise ValueError("a SQL string literal cannot contain a NUL character")
    return "'" + value.replace("'", "''") + "'"


def type_kind(duckdb_type: str) -> str:
    """Classify a DuckDB type name: ``numeric``, ``temporal``, ``boolean``, ``string`` or ``other``."""
    t = duckdb_type.upper()
    if t in _INTEGER_TYPES or t in _FLOAT_TYPES or t.startswith("DECIMAL"):
        return "numeric"
    if t.startswith(_TEMPORAL_PREFIXES) and t != "TIME WITH TIME ZONE":
        return "temporal"
    if t == "BOOLEAN":
        return "boolean"
    if t in ("VARCHAR", "UUID") or t.startswith("ENUM"):
        return "string"
    return "other"


def is_integer_type(duckdb_type: str) -> bool:
    """True for DuckDB's integer types (signed and unsigned)."""
    return duckdb_type.upper() in _INTEGER_TYPES
