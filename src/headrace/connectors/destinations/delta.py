"""Delta Lake tables (the ``deltalake`` package) as a sync destination: ``delta:///path``.

Each table is a folder ``<path>/<table>``. A load is one Delta commit carrying, in its
commit metadata, the load id, the load's counts and the table's checkpoint map, and
an application transaction (``txn`` action: app id ``headrace/<pipeline>/<source>``,
version = commits of that source so far). Commits run with ``max_commit_retries=0``:
when another writer committed first, deltalake fails the commit instead of rebasing
it, and the write re-reads the table and re-checks its fence (see ``lakebase``).

Example:
    >>> dest = open_destination("delta:///srv/lake")
    >>> dest.write(rows, "customers", mode="merge", keys=["customer_id"])
    >>> dest.read("customers", version=0)  # time travel
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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
from headrace.connectors.naming import quote_ident
from headrace.connectors.objectstore import ObjectStore
from headrace.extras import require


def _lib() -> Any:
    return require("lakehouse", "deltalake", "Delta Lake destination")


class DeltaDestination(LakeDestination):
    """Delta tables under one folder (or object-store prefix).

    Args:
        root: the folder (``/srv/lake``) or URI (``s3://bucket/lake``) holding the tables.
        storage_options: passed to deltalake (object-store credentials, endpoint).
        masked: the URL shown in messages.
    """

    def __init__(
        self, root: str, storage_options: dict[str, str] | None = None, masked: str = ""
    ) -> None:
        self.root = root.rstrip("/")
        self.storage_options = storage_options or None
        self.where = f"delta {masked or root}"
        self.dl = _lib()

    @classmethod
    def from_url(cls, url: str) -> DeltaDestination:
        """``delta:///abs/path``, or ``delta+s3://key:secret@bucket/prefix?endpoint_url=...``
        (see :class:`~headrace.connectors.objectstore.ObjectStore`)."""
        if url.split("://", 1)[0].lower() == "delta+s3":
            store = ObjectStore.from_url(url)
            return cls(store.root, store.delta_options(), masked=store.masked)
        root = url.split("://", 1)[1].split("?", 1)[0]
        if root.startswith("//"):
            root = root[1:]
        return cls(root, None, masked=mask_url(url))

    def _uri(self, table: str) -> str:
        return f"{self.root}/{table}"

    def tables(self) -> list[str]:
        """Sub-folders holding a ``_delta_log``."""
        if self.root.startswith("s3://"):
            fs = ObjectStore(self.root, **_store_fields(self.storage_options)).filesystem()
            path = self.root.removeprefix("s3://")
            if not fs.exists(path):
                return []
            fs.invalidate_cache()
            found = [p.rsplit("/", 1)[-1] for p in fs.ls(path) if fs.exists(f"{p}/_delta_log")]
            return sorted(found)
        root = Path(self.root)
        if not root.is_dir():
            return []
        return sorted(p.name for p in root.iterdir() if (p / "_delta_log").is_dir())

    def _open(self, table: str, version: Any = None) -> Any:
        return self.dl.DeltaTable(
            self._uri(table), version=version, storage_options=self.storage_options
        )

    def _state(self, table: str) -> TableState:
        if table not in self.tables():
            return TableState(None)
        handle = self._open(table)
        checkpoints: dict[str, list[Any]] = {}
        for meta in self._history(table, handle):
            if KEY_CHECKPOINTS in meta:
                checkpoints = json.loads(meta[KEY_CHECKPOINTS])
                break
        columns = [f.name for f in handle.schema().fields]
        return TableState(handle, checkpoints, columns)

    def _history(self, table: str, handle: Any = None) -> Iterator[dict[str, str]]:
        """The headrace keys of each commit's ``commitInfo``, newest first.

        Reads the commit files ``_delta_log/<version>.json`` one by one from the newest
        (deltalake's ``history()`` lists the log, which some S3-compatible servers
        answer in a way that makes it loop); stops at a file log cleanup removed.
        """
        handle = handle if handle is not None else self._open(table)
        fs, log = self._log_fs(table)
        for version in range(handle.version(), -1, -1):
            try:
                with fs.open(f"{log}/{version:020d}.json", "rb") as f:
                    lines = f.read().decode().splitlines()
            except FileNotFoundError:
                return
            for line in lines:
                action = json.loads(line) if line.strip() else {}
                if "commitInfo" in action:
                    info = action["commitInfo"]
                    yield {k: v for k, v in info.items() if k.startswith("headrace.")}
                    break
            else:
                yield {}

    def _log_fs(self, table: str) -> tuple[Any, str]:
        """A filesystem holding the table's ``_delta_log`` and the log's path on it."""
        if self.root.startswith("s3://"):
            fs = ObjectStore(self.root, **_store_fields(self.storage_options)).filesystem()
            return fs, f"{self._uri(table).removeprefix('s3://')}/_delta_log"
        import fsspec

        return fsspec.filesystem("file"), f"{self._uri(table)}/_delta_log"

    def read(self, table: str, version: Any = None) -> pa.Table:
        """The rows of ``table`` at ``version`` (a number or a timestamp), or the latest."""
        handle = self._open(table)
        if version is not None:
            handle.load_as_version(version)
        return handle.to_pyarrow_table()

    def _arrow_schema(self, table: str) -> pa.Schema:
        return self._open(table).to_pyarrow_dataset().schema

    def _relation(self, table: str) -> Any:
        return self._open(table).to_pyarrow_dataset()

    def _keys_stored(self, state: TableState, columns: list[str], incoming: pa.Table) -> pa.Table:
        import pyarrow.compute as pc
        import pyarrow.dataset as ds

        dataset = state.handle.to_pyarrow_dataset()
        if incoming.num_columns != 1 or not incoming.num_rows:
            return dataset.to_table(columns=columns)
        # one key: its incoming range skips the row groups outside it (Parquet statistics)
        key, bounds = incoming.column_names[0], pc.min_max(incoming.column(0))
        lo, hi = bounds["min"], bounds["max"]
        if not lo.is_valid:
            return dataset.to_table(columns=columns)
        return dataset.to_table(
            columns=columns, filter=(ds.field(key) >= lo) & (ds.field(key) <= hi)
        )

    def _may_hold_newer(self, state: TableState, cursor: str, incoming: pa.ChunkedArray) -> bool:
        """From the files' statistics (the ``max`` of each add action): exact for numbers
        and dates; a timestamp's may be cut to milliseconds, so it is given 1 ms more."""
        import pyarrow.compute as pc

        smallest = pc.min(incoming)
        if not smallest.is_valid:
            return False  # no incoming cursor value: no row is dropped whatever is stored
        kind = incoming.type
        if not (pa.types.is_integer(kind) or pa.types.is_temporal(kind)):
            return True  # (text statistics may be truncated)
        actions = pa.table(state.handle.get_add_actions(flatten=True))
        column = f"max.{cursor}"
        if not actions.num_rows:
            return False
        if column not in actions.column_names or actions.column(column).null_count:
            return True  # a file without statistics for the column
        try:
            newest = pc.max(actions.column(column)).cast(kind, safe=False)
            if pa.types.is_timestamp(kind):
                newest = pc.add(newest, pa.scalar(dt.timedelta(milliseconds=1)))
            return bool(pc.greater(newest, smallest).as_py())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return True

    def _count_where(self, state: TableState, interval: Interval) -> int:
        import pyarrow.dataset as ds

        dataset = state.handle.to_pyarrow_dataset()
        col = dataset.schema.field(interval.column).type
        naive = pa.types.is_timestamp(col) and col.tz is None
        lo, hi = partition_bounds(interval, naive)
        expr = (ds.field(interval.column) >= lo) & (ds.field(interval.column) < hi)
        return int(dataset.count_rows(filter=expr))

    def _append_quarantine(self, table: str, data: pa.Table, properties: dict[str, str]) -> None:
        self.dl.write_deltalake(
            self._uri(table), data, mode="append", schema_mode="merge",
            storage_options=self.storage_options,
            commit_properties=self.dl.CommitProperties(custom_metadata=properties),
        )  # fmt: skip

    def _drop_quarantine(self, table: str, load_ids: list[str], properties: dict[str, str]) -> None:
        listed = ", ".join("'" + i.replace("'", "''") + "'" for i in load_ids)
        self._open(table).delete(
            f"{_col(META_LOAD_ID)} IN ({listed})",
            commit_properties=self.dl.CommitProperties(custom_metadata=properties),
        )

    def _commit(self, state: TableState, load: LakeLoad) -> None:
        dl = self.dl
        txns = [
            dl.Transaction(f"headrace/{key.replace(chr(31), '/')}", _txn_version(state, key))
            for key in json.loads(load.properties[KEY_CHECKPOINTS])
        ]
        props = dl.CommitProperties(
            custom_metadata=load.properties, max_commit_retries=0, app_transactions=txns or None
        )
        target = state.handle if state.handle is not None else self._uri(load.table)
        try:
            if load.mode is WriteMode.MERGE and state.handle is not None:
                new_columns = not set(load.data.column_names) <= set(state.columns)
                self._merge(state.handle, load, props, new_columns)
            elif load.mode is WriteMode.REPLACE:
                dl.write_deltalake(
                    target, load.data, mode="overwrite", schema_mode="overwrite",
                    storage_options=self.storage_options, commit_properties=props,
                )  # fmt: skip
            elif load.mode is WriteMode.REPLACE_PARTITION and state.handle is not None:
                dl.write_deltalake(
                    target, load.data, mode="overwrite", schema_mode="merge",
                    predicate=_predicate(load.partition, load.data),
                    storage_options=self.storage_options, commit_properties=props,
                )  # fmt: skip
            else:  # append; or the first load of a merge / replace_partition creates the table
                dl.write_deltalake(
                    target, load.data, mode="append", schema_mode="merge",
                    storage_options=self.storage_options, commit_properties=props,
                )  # fmt: skip
        except Exception as exc:
            if _is_conflict(exc):
                raise CommitConflict(str(exc)) from exc
            raise

    def _merge(self, handle: Any, load: LakeLoad, props: Any, new_columns: bool) -> None:
        """Upsert: matched keys take the incoming row, new keys are inserted (one commit);
        ``new_columns``: the data brings columns the table lacks (schema evolution)."""
        match = " AND ".join(f"t.{_col(k)} = s.{_col(k)}" for k in load.keys)
        (
            handle.merge(
                load.data,
                match,
                source_alias="s",
                target_alias="t",
                merge_schema=new_columns,
                commit_properties=props,
            )  # fmt: skip
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .execute()
        )


def _col(name: str) -> str:
    """A column in a deltalake (DataFusion) SQL predicate."""
    return quote_ident(name, "postgresql")


def _predicate(partition: Interval | None, data: pa.Table) -> str:
    """The replace_partition predicate, with literal bounds (deltalake takes no parameters)."""
    assert partition is not None  # checked in write (write_arguments)
    col = data.schema.field(partition.column).type
    naive = pa.types.is_timestamp(col) and col.tz is None
    lo, hi = partition_bounds(partition, naive)

    def literal(v: Any) -> str:
        if isinstance(v, int | float):
            return repr(v)
        text = v.isoformat() if hasattr(v, "isoformat") else str(v)
        return "'" + text.replace("'", "''") + "'"

    c = _col(partition.column)
    if pa.types.is_timestamp(col):  # the column's own Arrow type: DataFusion compares no mix
        unit = {"s": "Second", "ms": "Millisecond", "us": "Microsecond", "ns": "Nanosecond"}
        zone = f'Some("{col.tz}")' if col.tz else "None"
        kind = f"'Timestamp({unit[col.unit]}, {zone})'"
        return (
            f"{c} >= arrow_cast({literal(lo)}, {kind}) AND {c} < arrow_cast({literal(hi)}, {kind})"
        )
    return f"{c} >= {literal(lo)} AND {c} < {literal(hi)}"


def _txn_version(state: TableState, key: str) -> int:
    """The next application transaction version of one source in this table."""
    if state.handle is None:
        return 1
    app = f"headrace/{key.replace(chr(31), '/')}"
    current = state.handle.transaction_version(app)
    return (current or 0) + 1


def _is_conflict(exc: Exception) -> bool:
    name = type(exc).__name__
    text = str(exc).lower()
    return name == "CommitFailedError" or "already exists" in text or "conflict" in text


def _store_fields(options: dict[str, str] | None) -> dict[str, Any]:
    """The :class:`ObjectStore` fields behind deltalake's storage options."""
    options = options or {}
    return {
        "key": options.get("AWS_ACCESS_KEY_ID"),
        "secret": options.get("AWS_SECRET_ACCESS_KEY"),
        "endpoint_url": options.get("AWS_ENDPOINT_URL"),
        "region": options.get("AWS_REGION", "us-east-1"),
    }
