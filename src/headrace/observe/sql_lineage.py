"""Lineage of SQL statements (SQL tasks): the tables a statement reads and writes, and
which source columns each written column comes from, parsed with sqlglot.

``INSERT INTO t [(cols)] SELECT ...``, ``CREATE TABLE t AS SELECT ...``, ``UPDATE``,
``DELETE`` and ``MERGE`` write ``t``; every other table named reads. Column lineage is
sqlglot's ``lineage`` of each selected column, traced to the base tables' columns.
The result has the shape of a sync's ``lineage`` (``{"inputs": [...], "outputs": [...]}``).
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from headrace.config import Settings
from headrace.connectors.naming import ConnectionURL, resolve
from headrace.observe.datasets import DatasetName, table_dataset

log = logging.getLogger("headrace.lineage")

_DIALECTS = {"postgresql": "postgres", "mysql": "mysql", "sqlite": "sqlite", "duckdb": "duckdb"}


def sql_lineage(
    conn: str, statements: tuple[str, ...], settings: Settings
) -> dict[str, Any] | None:
    """The lineage of ``statements`` run on connection ``conn``; None when sqlglot is
    missing or nothing could be parsed (lineage is best effort, never an error)."""
    try:
        url = resolve(conn, settings)
    except Exception:  # noqa: BLE001 - an unknown connection fails the task itself, not here
        return None
    return _parsed(url.backend, url.url, tuple(sorted(url.options.items())), statements)


@functools.lru_cache(maxsize=256)
def _parsed(
    backend: str, url: str, options: tuple[tuple[str, str], ...], statements: tuple[str, ...]
) -> dict[str, Any] | None:
    try:
        import sqlglot
        from sqlglot import exp
    except ImportError:
        return None
    conn = ConnectionURL(backend, url, dict(options))
    dialect = _DIALECTS.get(backend)
    inputs: dict[str, DatasetName] = {}
    outputs: dict[str, dict[str, Any]] = {}
    for sql in statements:
        try:
            tree = sqlglot.parse_one(sql.replace("\\:", ":"), read=dialect)
        except Exception as exc:  # noqa: BLE001 - not parseable: no lineage for it
            log.debug("no lineage for %r: %s", sql[:80], exc)
            continue
        target = _target(tree, exp)
        written = _name(conn, target) if target is not None else None
        for table in tree.find_all(exp.Table):
            if target is not None and table is target:
                continue
            ds = _name(conn, table)
            if written is None or ds != written:
                inputs[ds.uri] = ds
        if written is not None:
            entry = outputs.setdefault(written.uri, {**written.to_dict(), "columns": {}})
            entry["columns"].update(_columns(tree, target, conn, dialect, exp))
    if not inputs and not outputs:
        return None
    return {"inputs": [d.to_dict() for d in inputs.values()], "outputs": list(outputs.values())}


def _target(tree: Any, exp: Any) -> Any:
    """The table a statement writes, or None for a plain query."""
    if isinstance(tree, exp.Insert | exp.Create | exp.Update | exp.Delete | exp.Merge):
        found = tree.this
        if isinstance(found, exp.Schema):
            found = found.this
        return found if isinstance(found, exp.Table) else None
    return None


def _name(conn: ConnectionURL, table: Any) -> DatasetName:
    parts = [p for p in (table.catalog, table.db, table.name) if p]
    qualified = ".".join(parts[-2:])
    return table_dataset(conn, qualified)


def _columns(
    tree: Any, target: Any, conn: ConnectionURL, dialect: str | None, exp: Any
) -> dict[str, Any]:
    """Written column -> its source fields, for INSERT ... SELECT and CREATE TABLE AS."""
    from sqlglot.lineage import lineage

    select = tree.expression if isinstance(tree, exp.Insert | exp.Create) else None
    if not isinstance(select, exp.Query):
        return {}
    names = [s.alias_or_name for s in select.selects]
    schema = tree.this if isinstance(tree.this, exp.Schema) else None
    written = (
        [c.name for c in schema.expressions] if schema is not None and schema.expressions else names
    )
    if "*" in names or len(written) != len(names):
        return {}
    # name every selected expression after the column it fills, so each can be traced
    aliased = select.copy()
    aliased.set(
        "expressions",
        [
            exp.alias_(e.unalias() if isinstance(e, exp.Alias) else e, out)
            for e, out in zip(aliased.selects, written, strict=True)
        ],
    )
    plain = {
        out
        for out, e in zip(written, aliased.selects, strict=True)
        if isinstance(e.unalias(), exp.Column)
    }
    found: dict[str, Any] = {}
    for out in written:
        try:
            node = lineage(out, aliased, schema={}, dialect=dialect)
        except Exception:  # noqa: BLE001 - one column sqlglot cannot trace: skip it
            continue
        fields = []
        for leaf in node.walk():
            if leaf.downstream or not isinstance(
                leaf.expression, exp.Table | exp.Column | exp.Alias
            ):
                continue
            source = (
                leaf.expression
                if isinstance(leaf.expression, exp.Table)
                else leaf.expression.find(exp.Table)
            )
            if source is None:
                continue
            ds = _name(conn, source)
            fields.append({**ds.to_dict(), "field": leaf.name.split(".")[-1]})
        if fields:
            found[out] = {
                "inputs": fields,
                "type": "DIRECT",
                "subtype": "IDENTITY" if out in plain and len(fields) == 1 else "TRANSFORMATION",
            }
    return found
