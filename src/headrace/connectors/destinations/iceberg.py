"""Apache Iceberg tables (``pyiceberg``, SQL catalog) as a sync destination.

URL: ``iceberg+sqlite:///catalog.db?warehouse=/path`` or
``iceberg+postgresql://user@host/db?warehouse=s3://bucket/wh&namespace=sales`` (other
query options starting with ``s3.`` go to the catalog: ``s3.endpoint``...). Tables live
in one namespace (``namespace=``, default ``headrace``).

A load is one Iceberg metadata commit: its snapshot(s) carry the load id and counts in
the snapshot summary, and the table's checkpoint map is set as a table property in the
same commit. Tables are created with ``commit.retry.num-retries=0``, so a concurrent
commit fails ours instead of being rebased, and the write re-reads the table and
re-checks its fence (see ``lakebase``). Time travel: :meth:`IcebergDestination.read`
with a snapshot id.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl

import pyarrow as pa

from headrace.config import mask_url
from headrace.connectors.destinations.destination_base import META_LOAD_ID, WriteMode
from headrace.connectors.destinations.lake_metadata import KEY_CHECKPOINTS
from headrace.connectors.destinations.lakebase import (
    CommitConflict,
    LakeDestination,
    LakeLoad,
    TableState,
    partition_bounds,
)
from headrace.connectors.incremental import Interval
from headrace.extras import require

NO_RETRY = {"commit.retry.num-retries": "0"}


class IcebergDestination(LakeDestination):
    """Iceberg tables of one namespace of a SQL catalog.

    Args:
        catalog_uri: the SQLAlchemy URL of the catalog database.
        warehouse: where table files go (folder or ``s3://`` URI).
        namespace: the namespace holding the tables.
        properties: further catalog properties (``s3.endpoint``, keys).
        masked: the URL shown in messages.
    """

    def __init__(
        self, catalog_uri: str, warehouse: str, namespace: str = "headrace",
        properties: dict[str, str] | None = None, masked: str = "",
    ) -> None:  # fmt: skip
        require("lakehouse", "pyiceberg", "Iceberg destination")
        sql = require("lakehouse", "pyiceberg.catalog.sql", "Iceberg SQL catalog")
        if "://" not in warehouse:
            warehouse = f"file://{warehouse}"
        self.namespace = namespace
        self.where = f"iceberg {masked or catalog_uri}"
        self.catalog = sql.SqlCatalog(
            "headrace", uri=catalog_uri, warehouse=warehouse, **(properties or {})
        )
        self.catalog.create_namespace_if_not_exists(namespace)

    @classmethod
    def from_url(cls, url: str, masked: str = "") -> IcebergDestination:
        """Parse ``iceberg+<database URL>?warehouse=...&namespace=...``."""
        scheme, rest = url.split("://", 1)
        base, _, query = rest.partition("?")
        options = dict(parse_qsl(query, keep_blank_values=True))
        db = scheme.split("+", 1)[1].lower()
        if db in ("postgresql", "postgres"):
            db = "postgresql+psycopg"
        warehouse = options.pop("warehouse", None)
        if not warehouse:
            from headrace.errors import ConfigError

            raise ConfigError(
                f"{masked or url}: an Iceberg URL needs ?warehouse=<folder or s3:// URI>"
            )
        namespace = options.pop("namespace", "headrace")
        masked = re.sub(r"(s3\.secret-access-key=)[^&]*", r"\1***", masked or mask_url(url))
        props = {k: v for k, v in options.items() if k.startswith(("s3.", "py-io"))}
        return cls(f"{db}://{base}", warehouse, namespace, props, masked)

    def _ident(self, table: str) -> str:
        return f"{self.namespace}.{table}"

    def tables(self) -> list[str]:
        """The tables of the namespace."""
        return sorted(ident[-1] for ident in self.catalog.list_tables(self.namespace))

    def _load(self, table: str) -> Any:
        return self.catalog.load_table(self._ident(table))

    def _state(self, table: str) -> TableState:
        from pyiceberg.exceptions import NoSuchTableError

        try:
            handle = self._load(table)
        except NoSuchTableError:
            return TableState(None)
        checkpoints = json.loads(handle.properties.get(KEY_CHECKPOINTS, "{}"))
        columns = [f.name for f in handle.schema().fields]
        return TableState(handle, checkpoints, columns)

    def _history(self, table: str) -> Iterator[dict[str, str]]:
        handle = self._load(table)
        for snap in sorted(handle.snapshots(), key=lambda s: s.timestamp_ms, reverse=True):
            extra = snap.summary.additional_properties if snap.summary else {}
            yield {k: v for k, v in extra.items() if k.startswith("headrace.")}

    def read(self, table: str, version: Any = None) -> pa.Table:
        """The rows of ``table`` at snapshot id ``version``, or the latest."""
        return self._load(table).scan(snapshot_id=version).to_arrow()

    def _arrow_schema(self, table: str) -> pa.Schema:
        return self._load(table).schema().as_arrow()

    def snapshots(self, table: str) -> list[int]:
        """The snapshot ids of ``table``, oldest first (for time travel)."""
        snaps = sorted(self._load(table).snapshots(), key=lambda s: s.timestamp_ms)
        return [s.snapshot_id for s in snaps]

    def _keys_stored(self, state: TableState, columns: list[str], incoming: pa.Table) -> pa.Table:
        return state.handle.scan(selected_fields=tuple(columns)).to_arrow()

    def _count_where(self, state: TableState, interval: Interval) -> int:
        return state.handle.scan(row_filter=self._filter(state, interval)).to_arrow().num_rows

    def _filter(self, state: TableState, interval: Interval) -> Any:
        from pyiceberg.types import TimestampType

        ex: Any = require("lakehouse", "pyiceberg.expressions")  # its classes confuse mypy

        field = state.handle.schema().find_field(interval.column)
        lo, hi = partition_bounds(interval, isinstance(field.field_type, TimestampType))
        lo, hi = (v.isoformat() if hasattr(v, "isoformat") else v for v in (lo, hi))
        return ex.And(ex.GreaterThanOrEqual(interval.column, lo), ex.LessThan(interval.column, hi))

    def _append_quarantine(self, table: str, data: pa.Table, properties: dict[str, str]) -> None:
        data = _iceberg_types(data)
        if table not in self.tables():
            self.catalog.create_table_if_not_exists(self._ident(table), data.schema)
        handle = self._load(table)
        with handle.transaction() as txn:
            txn.update_schema().union_by_name(data.schema).commit()
            txn.append(data, snapshot_properties=properties)

    def _drop_quarantine(self, table: str, load_ids: list[str], properties: dict[str, str]) -> None:
        ex: Any = require("lakehouse", "pyiceberg.expressions")
        with self._load(table).transaction() as txn:
            txn.delete(ex.In(META_LOAD_ID, load_ids), snapshot_properties=properties)

    def _commit(self, state: TableState, load: LakeLoad) -> None:
        from pyiceberg.exceptions import CommitFailedException, TableAlreadyExistsError

        data = _iceberg_types(load.data)
        try:
            if state.handle is None:  # the table and its first snapshot in one commit
                txn = self.catalog.create_table_transaction(
                    self._ident(load.table), data.schema, properties=NO_RETRY
                )
                txn.append(data, snapshot_properties=load.properties)
                txn.set_properties({KEY_CHECKPOINTS: load.properties[KEY_CHECKPOINTS]})
                txn.commit_transaction()
                return
            new_columns = [n for n in data.schema.names if n not in state.columns]
            if new_columns:  # schema evolution: its own commit, then start over
                with state.handle.update_schema() as update:
                    update.union_by_name(data.schema)
                raise CommitConflict("columns added; write on the new schema")
            self._apply(state, load, data)
        except (CommitFailedException, TableAlreadyExistsError) as exc:
            raise CommitConflict(str(exc)) from exc

    def _apply(self, state: TableState, load: LakeLoad, data: pa.Table) -> None:
        """The load's data change and the checkpoint property, in one transaction."""
        props = load.properties
        data = _conform(data, state.handle.schema().as_arrow())
        with state.handle.transaction() as txn:
            if load.mode is WriteMode.MERGE and load.rows_replaced:
                # delete the stored rows of the incoming keys and add the incoming rows, in
                # one overwrite (pyiceberg's upsert fails on a table whose schema evolved)
                txn.overwrite(
                    data, overwrite_filter=_keys_filter(data, load.keys), snapshot_properties=props
                )
            elif load.mode is WriteMode.REPLACE and state.handle.current_snapshot() is not None:
                txn.overwrite(data, snapshot_properties=props)
            elif load.mode is WriteMode.REPLACE_PARTITION:
                assert load.partition is not None
                txn.overwrite(
                    data, overwrite_filter=self._filter(state, load.partition),
                    snapshot_properties=props,
                )  # fmt: skip
            else:  # append; a merge that replaces no stored key, or a replace of an empty
                # table, only inserts
                txn.append(data, snapshot_properties=props)
            txn.set_properties({KEY_CHECKPOINTS: props[KEY_CHECKPOINTS], **NO_RETRY})


def _keys_filter(data: pa.Table, keys: list[str]) -> Any:
    """The Iceberg row filter matching the key values of ``data``."""
    ex: Any = require("lakehouse", "pyiceberg.expressions")  # its classes confuse mypy
    if len(keys) == 1:
        values = [v for v in data.column(keys[0]).unique().to_pylist() if v is not None]
        return ex.In(keys[0], values)
    rows = {tuple(r[k] for k in keys) for r in data.select(keys).to_pylist()}
    terms = [
        functools.reduce(ex.And, [ex.EqualTo(k, v) for k, v in zip(keys, row, strict=True)])
        for row in rows
        if None not in row
    ]
    return functools.reduce(ex.Or, terms)


def _conform(data: pa.Table, schema: pa.Schema) -> pa.Table:
    """``data`` in the table's column order, NULL for the table's columns it lacks."""
    columns = [
        data.column(f.name) if f.name in data.column_names else pa.nulls(data.num_rows, f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(columns, names=schema.names)


def _iceberg_types(data: pa.Table) -> pa.Table:
    """Timestamps at microseconds (Iceberg's precision); other types as they are."""
    fields = []
    for f in data.schema:
        t = f.type
        if pa.types.is_timestamp(t) and t.unit == "ns":
            t = pa.timestamp("us", tz=t.tz)
        fields.append(pa.field(f.name, t, f.nullable))
    schema = pa.schema(fields)
    return data if schema.equals(data.schema) else data.cast(schema, safe=False)
