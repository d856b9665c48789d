"""What a sync knows about lineage: its input and output datasets, their schemas, and
which input columns each output column comes from.

The result is plain JSON (it travels in the task's result from wherever the task ran):
``{"inputs": [dataset], "outputs": [dataset]}`` where a dataset is ``{namespace, name,
fields: [{name, type, description?}], doc?, columns?}`` and an output's ``columns`` maps
each column to the input fields it is derived from, with the transformation kind.

Column lineage comes from, first to last: the destination's declared ``columns={...:
{"from": [...]}}``; a SQL transform's parse (sqlglot's lineage over the relation
``rows``); the column of the same name in the source (``IDENTITY`` without a transform,
``TRANSFORMATION`` with a Python one, which cannot be looked into).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pyarrow as pa

from headrace.connectors.destinations import AnyDestination, DuckDBDestination
from headrace.connectors.naming import ConnectionURL
from headrace.observe.datasets import DatasetName, connection_dataset, file_dataset, table_dataset
from headrace.pipeline import Context
from headrace.sync.sync_spec import FileSourceSpec, SqlSourceSpec

if TYPE_CHECKING:
    from headrace.sync.declaration import Sync


def source_connection(source: SqlSourceSpec, ctx: Context) -> str:
    """The source's connection name or URL; a callable connection is called once per
    attempt (it may have side effects, like the demo CRM's), the answer kept on ``ctx``."""
    if isinstance(source.connection, str):
        return source.connection
    found = ctx.__dict__.get("_hr_source_connection")
    if found is None:
        found = ctx.__dict__["_hr_source_connection"] = source.connection(ctx)
    return found


def source_name(spec: Sync, ctx: Context) -> DatasetName:
    """The sync's source dataset."""
    source = spec.source
    if isinstance(source, FileSourceSpec):
        return file_dataset(source.path)
    return connection_dataset(
        source_connection(source, ctx), source.table or "query", ctx.settings, source.schema
    )


def destination_name(spec: Sync, dest: AnyDestination) -> DatasetName:
    """The sync's destination table as a dataset."""
    table = spec.destination.table
    if isinstance(dest, DuckDBDestination):
        return table_dataset(
            ConnectionURL("duckdb", f"duckdb:///{dest.path}", {}), table, dest.schema
        )
    url = getattr(dest, "conn_url", None)
    if url is None:  # lakehouse, file and Snowflake destinations: named by their masked location
        kind, _, location = (dest.where or type(dest).__name__).partition(" ")
        return DatasetName(location if "://" in location else f"{kind}://{location}", table)
    return table_dataset(url, table, getattr(dest, "schema", None))


def sync_lineage(
    spec: Sync,
    ctx: Context,
    dest: AnyDestination,
    source_schema: pa.Schema | None,
    output_schema: pa.Schema | None,
    checks: list[Any] | None = None,
) -> dict[str, Any]:
    """The sync's lineage as JSON (see the module doc); never raises for a lineage gap.

    Args:
        checks: the check results (``CheckResultRecord``) of the rows loaded, if known.
    """
    source = source_name(spec, ctx)
    output = destination_name(spec, dest)
    declared = spec.destination.columns
    inputs = [{**source.to_dict(), "fields": _fields(source_schema, {})}]
    out: dict[str, Any] = {**output.to_dict(), "fields": _fields(output_schema, declared)}
    if spec.destination.doc:
        out["doc"] = spec.destination.doc
    source_columns = set(source_schema.names) if source_schema is not None else set()
    out["columns"] = column_lineage(spec, source, source_columns, output_schema)
    if checks:
        out["checks"] = [
            {
                "expectation": c.expectation,
                "column": c.column,
                "severity": c.severity,
                "status": c.status,
                "failed": c.failed,
                "total": c.total,
            }
            for c in checks
        ]
    return {"inputs": inputs, "outputs": [out]}


def column_lineage(
    spec: Sync, source: DatasetName, source_columns: set[str], output_schema: pa.Schema | None
) -> dict[str, dict[str, Any]]:
    """Output column -> ``{"inputs": [{namespace, name, field}], "type", "subtype"}``."""
    if output_schema is None:
        return {}
    parsed = (
        sql_column_sources(spec.transform, source_columns)
        if isinstance(spec.transform, str)
        else {}
    )
    found: dict[str, dict[str, Any]] = {}
    for column in output_schema.names:
        declared = spec.destination.columns.get(column, {}).get("from")
        if declared:
            sources, kind, subtype = list(declared), "TRANSFORMATION", "TRANSFORMATION"
        elif column in parsed:
            sources = parsed[column]
            kind = "DIRECT"
            subtype = "IDENTITY" if sources == [column] else "TRANSFORMATION"
        elif column in source_columns:
            sources = [column]
            kind, subtype = "DIRECT", "IDENTITY" if spec.transform is None else "TRANSFORMATION"
        else:
            continue
        found[column] = {
            "inputs": [
                {**source.to_dict(), "field": name} for name in sources if name in source_columns
            ],
            "type": kind,
            "subtype": subtype,
        }
        if not found[column]["inputs"]:
            del found[column]
    return found


def sql_column_sources(sql: str, source_columns: set[str]) -> dict[str, list[str]]:
    """For a DuckDB SQL transform over ``rows``: output column -> the ``rows`` columns it
    reads (sqlglot's lineage); {} when sqlglot is missing or cannot parse the SQL."""
    try:
        import sqlglot
        from sqlglot.lineage import lineage
    except ImportError:
        return {}
    try:
        tree = sqlglot.parse_one(sql, read="duckdb")
        schema = {"rows": {c: "TEXT" for c in source_columns}}
        names = [s.alias_or_name for s in tree.selects]  # type: ignore[attr-defined]
        if "*" in names:
            names = [n for n in names if n != "*"] + sorted(source_columns)
        result: dict[str, list[str]] = {}
        for name in names:
            node = lineage(name, tree, schema=schema, dialect="duckdb")
            leaves = sorted(
                {leaf.name.split(".")[-1] for leaf in node.walk() if not leaf.downstream}
            )
            result[name] = [leaf for leaf in leaves if leaf in source_columns]
        return result
    except Exception:  # noqa: BLE001 - lineage is best effort: a parse gap must not fail the load
        return {}


def _fields(schema: pa.Schema | None, declared: dict[str, dict[str, Any]]) -> list[dict[str, str]]:
    if schema is None:
        return []
    fields = []
    for f in schema:
        entry = {"name": f.name, "type": str(f.type)}
        doc = declared.get(f.name, {}).get("doc")
        if doc:
            entry["description"] = doc
        fields.append(entry)
    return fields
