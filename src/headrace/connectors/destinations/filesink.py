"""Files as a destination: Parquet, CSV, NDJSON, Avro, ORC or Arrow IPC in a folder or ``s3://``
prefix, optionally partitioned by columns, committed atomically by a manifest.

URL: ``files:///srv/out?format=parquet&partition_by=state`` or
``files+s3://key:secret@bucket/prefix?format=csv&endpoint_url=...``. Each table is a
folder::

    <root>/<table>/state=CA/part-<load id>-00000.parquet      data files (Hive-style folders)
    <root>/<table>/_manifests/0000000003.json                 the commit: files, checkpoint

A load writes its data files under names made from its load id, then commits by
creating the next manifest with an exclusive create (``open(..., "xb")``, a conditional
put on S3): the manifest lists every file of the table's new version and carries the
checkpoint map and the load ledger. Readers take the newest manifest and read only the
files it lists, so they never see half a load; files of a load that died before its
manifest are listed nowhere. A replayed load id commits nothing (the ledger), and two
writers racing for the same manifest number cannot both win: the loser re-reads and
re-checks its fence (see ``lakebase``). Quarantined rows go to ``<table>_quarantine``
as with the table formats, written unpartitioned whatever ``partition_by`` says (set-aside
rows may lack the partition columns: a malformed line has only file, line, reason and
text); each ledger entry keeps its quarantine provenance (origin,
fence), so the rows of a load that can never commit are dropped from the listing (see
``lake_quarantine``). Modes: append and replace (merge and
replace_partition need a table format: Delta Lake or Iceberg). Needs the ``lakehouse``
extra (fsspec, s3fs); Avro files the ``avro`` extra.
"""

from __future__ import annotations

import io
import json
import os
import posixpath
import tempfile
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qsl

import pyarrow as pa

from headrace.config import mask_url
from headrace.connectors.destinations.destination_base import WriteMode
from headrace.connectors.destinations.lake_metadata import (
    KEY_CHECKPOINTS,
    KEY_DROPPED,
    KEY_FENCE,
    KEY_LOAD,
    KEY_LOAD_ID,
    KEY_ORIGIN,
)
from headrace.connectors.destinations.lakebase import (
    CONFLICT_RETRIES,
    CommitConflict,
    LakeDestination,
    LakeLoad,
    TableState,
)
from headrace.connectors.incremental import Interval
from headrace.connectors.objectstore import ObjectStore
from headrace.errors import ConnectorError, did_you_mean
from headrace.extras import require

FORMATS = {"parquet": "parquet", "csv": "csv", "ndjson": "ndjson", "json": "ndjson",
           "avro": "avro", "orc": "orc", "arrow": "arrow"}  # fmt: skip
MANIFESTS = "_manifests"
LEDGER_KEPT = 1000  # load ids a manifest remembers (replays older than that reload)
#: What a quarantine commit records beside its load id, for ``lake_quarantine.drop_orphans``.
PROVENANCE = (KEY_ORIGIN, KEY_FENCE, KEY_DROPPED)


class FileDestination(LakeDestination):
    """Tables of files under one folder or object-store prefix.

    Args:
        root: a local folder or ``s3://bucket/prefix``.
        format: parquet, csv, ndjson, avro, orc or arrow.
        partition_by: columns whose values name sub-folders (``state=CA/``) of each
            table (not of its ``_quarantine`` table, whose rows may lack them).
        store: credentials of an ``s3://`` root.
        masked: the URL shown in messages.
    """

    def __init__(
        self, root: str, format: str = "parquet", partition_by: tuple[str, ...] = (),
        store: ObjectStore | None = None, masked: str = "",
    ) -> None:  # fmt: skip
        if format not in FORMATS:
            raise ConnectorError(
                f"Unknown file format {format!r} for {masked or root}."
                + did_you_mean(format, FORMATS)
            )
        self.format = FORMATS[format]
        self.partition_by = tuple(partition_by)
        self.where = f"files {masked or root}"
        if root.startswith("s3://"):
            self.store = store or ObjectStore(root)
            self.fs = self.store.filesystem()
            self.root = root.removeprefix("s3://").rstrip("/")
        else:
            fsspec = require("lakehouse", "fsspec", "file destination")
            self.fs = fsspec.filesystem("file")
            self.root = root.rstrip("/")

    @classmethod
    def from_url(cls, url: str) -> FileDestination:
        """``files:///path?format=...&partition_by=a,b`` or ``files+s3://...``."""
        scheme, rest = url.split("://", 1)
        options = dict(parse_qsl(rest.partition("?")[2]))
        fmt = options.get("format", "parquet")
        parts = tuple(p for p in options.get("partition_by", "").split(",") if p)
        if scheme.lower() == "files+s3":
            store = ObjectStore.from_url(url)
            return cls(store.root, fmt, parts, store, store.masked)
        root = rest.partition("?")[0]
        return cls(root[1:] if root.startswith("//") else root, fmt, parts, None, mask_url(url))

    # -- reading ---------------------------------------------------------------------

    def tables(self) -> list[str]:
        """Sub-folders holding a manifest."""
        if not self.fs.exists(self.root):
            return []
        self.fs.invalidate_cache()
        names = [p.rstrip("/").rsplit("/", 1)[-1] for p in self.fs.ls(self.root, detail=False)]
        return sorted(n for n in names if self._latest(n)[0] >= 0)

    def _latest(self, table: str) -> tuple[int, dict[str, Any] | None]:
        """The newest manifest's number and content ((-1, None): no commit yet)."""
        folder = f"{self.root}/{table}/{MANIFESTS}"
        self.fs.invalidate_cache(folder)
        try:
            names = self.fs.ls(folder, detail=False)
        except FileNotFoundError:
            return -1, None
        numbers = sorted(int(n.rsplit("/", 1)[-1][:-5]) for n in names if n.endswith(".json"))
        if not numbers:
            return -1, None
        with self.fs.open(f"{folder}/{numbers[-1]:010d}.json", "rb") as f:
            return numbers[-1], json.load(f)

    def _state(self, table: str) -> TableState:
        seq, manifest = self._latest(table)
        if manifest is None:
            return TableState(None)
        manifest["seq"] = seq
        return TableState(manifest, manifest["checkpoints"], manifest["columns"])

    def _history(self, table: str) -> Iterator[dict[str, str]]:
        """The ledger of the newest manifest, newest first: ``[load id, load, provenance]``
        entries (manifests written before quarantine provenance have no third item)."""
        _, manifest = self._latest(table)
        for entry in reversed((manifest or {}).get("loads", [])):
            meta = {KEY_LOAD: entry[1], **(entry[2] if len(entry) > 2 else {})}
            if entry[0] is not None:  # None: a commit that only dropped orphaned rows
                meta[KEY_LOAD_ID] = entry[0]
            yield meta

    def files(self, table: str) -> list[str]:
        """The data files of the table's current version (paths on its filesystem)."""
        _, manifest = self._latest(table)
        base = f"{self.root}/{table}"
        return [f"{base}/{name}" for name in (manifest or {}).get("files", [])]

    def read(self, table: str, version: Any = None) -> pa.Table:
        """The rows of ``table`` as its newest manifest (or manifest ``version``) lists them."""
        if version is not None:
            with self.fs.open(f"{self.root}/{table}/{MANIFESTS}/{int(version):010d}.json") as f:
                listed = json.load(f)["files"]
            paths = [f"{self.root}/{table}/{name}" for name in listed]
        else:
            paths = self.files(table)
        schema = self._schema(table, version)
        parts = [_conform(self._read_file(p, schema), schema) for p in paths]
        return pa.concat_tables(parts, promote_options="default") if parts else schema.empty_table()

    def _schema(self, table: str, version: Any = None) -> pa.Schema:
        """The table's Arrow schema as its manifest records it (text formats keep no types)."""
        if version is None:
            manifest = self._latest(table)[1] or {}
        else:
            with self.fs.open(f"{self.root}/{table}/{MANIFESTS}/{int(version):010d}.json") as f:
                manifest = json.load(f)
        return _schema_from_text(manifest.get("schema"))

    def _read_file(self, path: str, schema: pa.Schema) -> pa.Table:
        with self.fs.open(path, "rb") as f:
            raw = f.read()
        if self.format == "parquet":
            import pyarrow.parquet as pq

            return pq.read_table(io.BytesIO(raw))
        if self.format == "csv":
            import pyarrow.csv as pcsv

            types = pcsv.ConvertOptions(column_types={f.name: f.type for f in schema})
            return pcsv.read_csv(io.BytesIO(raw), convert_options=types)
        if self.format == "ndjson":
            import pyarrow.json as pjson

            parse = pjson.ParseOptions(explicit_schema=schema)
            return pjson.read_json(io.BytesIO(raw), parse_options=parse)
        if self.format == "orc":
            import pyarrow.orc as orc

            return orc.read_table(io.BytesIO(raw))
        if self.format == "arrow":
            return pa.ipc.open_file(io.BytesIO(raw)).read_all()
        fastavro = require("avro", "fastavro", "Avro file destination")
        return pa.Table.from_pylist(list(fastavro.reader(io.BytesIO(raw))))

    def _keys_stored(self, state: TableState, columns: list[str], incoming: pa.Table) -> pa.Table:
        raise ConnectorError(
            "merge needs a table format (Delta Lake or Iceberg).", connection=self.where
        )

    def _count_where(self, state: TableState, interval: Interval) -> int:
        raise ConnectorError(
            "replace_partition needs a table format (Delta Lake or Iceberg).",
            connection=self.where,
        )

    # -- writing ---------------------------------------------------------------------

    def write(self, data: Any, table: str, **kwargs: Any) -> Any:
        """As :meth:`LakeDestination.write`; modes append and replace."""
        mode = WriteMode.parse(kwargs.get("mode", WriteMode.APPEND))
        if mode in (WriteMode.MERGE, WriteMode.REPLACE_PARTITION):
            raise ConnectorError(
                f"{mode.value} needs a table format; load files "
                "with append or replace, or use a Delta Lake / Iceberg destination.",
                table=table,
                connection=self.where,
            )
        return super().write(data, table, **kwargs)

    def _append_quarantine(self, table: str, data: pa.Table, properties: dict[str, str]) -> None:
        """Append to the quarantine table ``table``, never partitioned: its rows may lack
        the partition columns (a malformed line, a row set aside before a transform added
        them) or hold them with the very value that was refused, and one flat folder
        stays one table for any reader, whatever columns each load's rows have."""
        load = LakeLoad(table, WriteMode.APPEND, [], None, data, properties[KEY_LOAD_ID],
                        None, {**properties, KEY_LOAD: "{}", KEY_CHECKPOINTS: "{}"}, 0, 0, 0)  # type: ignore[arg-type]  # fmt: skip
        self._until_committed(table, lambda state: self._commit_files(state, load, ()))

    def _drop_quarantine(self, table: str, load_ids: list[str], properties: dict[str, str]) -> None:
        """Commit a manifest of the quarantine table ``table`` that no longer lists the files
        of ``load_ids`` (the files stay on disk, readable by time travel, like replaced ones)."""
        dropped = set(load_ids)

        def drop(state: TableState) -> None:
            manifest = {k: v for k, v in (state.handle or {}).items() if k != "seq"}
            files = manifest.get("files", [])
            manifest["files"] = [name for name in files if self._load_of(name) not in dropped]
            entry = [None, "{}", _provenance(properties)]
            manifest["loads"] = [*manifest.get("loads", []), entry][-LEDGER_KEPT:]
            manifest["load_id"] = None
            self._put_manifest(state, table, manifest)

        self._until_committed(table, drop)

    def _until_committed(self, table: str, commit: Callable[[TableState], None]) -> None:
        """``commit(state)`` on the table's latest state, again while another commit wins."""
        for _ in range(CONFLICT_RETRIES):
            try:
                commit(self._state(table))
                return
            except CommitConflict:
                continue
        raise ConnectorError(
            f"Loading failed: {CONFLICT_RETRIES} commits in a row lost to concurrent "
            "writers; try again later.",
            table=table,
            connection=self.where,
        )

    def _commit(self, state: TableState, load: LakeLoad) -> None:
        self._commit_files(state, load, self.partition_by)

    def _commit_files(
        self, state: TableState, load: LakeLoad, partition_by: tuple[str, ...]
    ) -> None:
        """Write the load's files (in Hive folders of ``partition_by``) and commit the
        manifest that lists them; :class:`CommitConflict` if another writer came first."""
        written = self._write_files(load, partition_by)
        old = state.handle or {}
        files = written if load.mode is WriteMode.REPLACE else old.get("files", []) + written
        columns = list(dict.fromkeys([*state.columns, *load.data.column_names]))
        schema = load.data.schema
        if old.get("schema") and load.mode is not WriteMode.REPLACE:
            previous = _schema_from_text(old["schema"])
            schema = pa.unify_schemas([previous, schema], promote_options="permissive")
        entry = [load.load_id, load.properties[KEY_LOAD], _provenance(load.properties)]
        manifest = {
            "format": self.format, "files": files, "columns": columns,
            "loads": [*old.get("loads", []), entry][-LEDGER_KEPT:],
            "checkpoints": json.loads(load.properties[KEY_CHECKPOINTS]),
            "load_id": load.load_id, "schema": _schema_to_text(schema),
        }  # fmt: skip
        try:
            self._put_manifest(state, load.table, manifest)
        except CommitConflict:
            for name in written:  # listed by no manifest: remove them now
                self.fs.rm(f"{self.root}/{load.table}/{name}")
            raise

    def _put_manifest(self, state: TableState, table: str, manifest: dict[str, Any]) -> None:
        """Create the manifest after the one ``state`` read; :class:`CommitConflict` if
        another writer created it first."""
        seq = (state.handle or {}).get("seq", -1) + 1
        path = f"{self.root}/{table}/{MANIFESTS}/{seq:010d}.json"
        self.fs.makedirs(posixpath.dirname(path), exist_ok=True)
        try:
            self._create_once(path, json.dumps(manifest).encode())
        except FileExistsError as exc:
            raise CommitConflict(f"manifest {seq} exists") from exc

    def _create_once(self, path: str, content: bytes) -> None:
        """Create ``path`` holding ``content``, whole, unless it exists (FileExistsError).

        An object store's exclusive create is a conditional put: the object appears whole
        or not at all. On a local disk ``open(..., "xb")`` creates the file empty and then
        fills it, so a reader in between would see an empty manifest: there the content
        goes to a temporary file first, and a hard link (atomic, refused when the name
        exists) gives it its name.
        """
        from fsspec.implementations.local import LocalFileSystem

        if not isinstance(self.fs, LocalFileSystem):
            with self.fs.open(path, "xb") as f:  # exclusive: one writer wins each number
                f.write(content)
            return
        local = self.fs._strip_protocol(path)
        folder, name = os.path.split(local)
        fd, temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(content)
                f.flush()
                os.fsync(f.fileno())
            os.link(temporary, local)  # exclusive: one writer wins each number
        finally:
            os.unlink(temporary)

    def _load_of(self, name: str) -> str:
        """The load id in a data file's name (``<folders>/part-<load id>-00000.<ext>``)."""
        stem = name.rsplit("/", 1)[-1].removeprefix("part-").removesuffix(f".{self.format}")
        return stem.rpartition("-")[0]

    def _write_files(self, load: LakeLoad, partition_by: tuple[str, ...]) -> list[str]:
        """Write the load's data files (one per partition); their paths under the table."""
        groups = _partitions(load.data, partition_by, load.table, self.where)
        names = []
        for n, (folder, rows) in enumerate(groups):
            name = f"{folder}part-{load.load_id}-{n:05d}.{self.format}"
            path = f"{self.root}/{load.table}/{name}"
            self.fs.makedirs(posixpath.dirname(path), exist_ok=True)
            with self.fs.open(path, "wb") as f:
                f.write(_encode(rows, self.format))
            names.append(name)
        return names


def _provenance(properties: dict[str, str]) -> dict[str, str]:
    """The quarantine provenance among a commit's properties (origin, fence, dropped ids)."""
    return {key: properties[key] for key in PROVENANCE if key in properties}


def _schema_to_text(schema: pa.Schema) -> str:
    """An Arrow schema as text for the manifest (IPC bytes, base64)."""
    import base64

    return base64.b64encode(schema.remove_metadata().serialize().to_pybytes()).decode()


def _schema_from_text(text: str | None) -> pa.Schema:
    import base64

    if not text:
        return pa.schema([])
    return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(text)))


def _conform(rows: pa.Table, schema: pa.Schema) -> pa.Table:
    """``rows`` with the recorded schema's types (NULL for columns added by later loads)."""
    columns = [
        rows.column(f.name).cast(f.type) if f.name in rows.column_names
        else pa.nulls(rows.num_rows, f.type)
        for f in schema
    ]  # fmt: skip
    return pa.Table.from_arrays(columns, schema=schema) if len(schema) else rows


def _partitions(
    data: pa.Table, columns: tuple[str, ...], table: str, connection: str
) -> list[tuple[str, pa.Table]]:
    """``(hive folder prefix, rows)`` per distinct value of the partition columns (a column
    missing from ``table``'s data is an error naming it)."""
    if not columns:
        return [("", data)]
    import pyarrow.compute as pc

    missing = [c for c in columns if c not in data.column_names]
    if missing:
        raise ConnectorError(
            "partition_by names a column that is not in the data.",
            table=table,
            column=missing[0],
            connection=connection,
        )
    keys = data.select(list(columns)).group_by(list(columns)).aggregate([]).to_pylist()
    out = []
    for key in keys:
        mask = None
        for column, value in key.items():
            col = data.column(column)
            test = pc.is_null(col) if value is None else pc.equal(col, pa.scalar(value, col.type))
            mask = test if mask is None else pc.and_(mask, test)
        folder = "".join(f"{c}={'__null__' if v is None else v}/" for c, v in key.items())
        out.append((folder, data.filter(mask)))
    return out


def _encode(rows: pa.Table, fmt: str) -> bytes:
    """The bytes of one data file of ``rows`` in ``fmt``."""
    sink = io.BytesIO()
    if fmt == "parquet":
        import pyarrow.parquet as pq

        pq.write_table(rows, sink, compression="zstd")
    elif fmt == "csv":
        import pyarrow.csv as pcsv

        pcsv.write_csv(rows, sink)
    elif fmt == "ndjson":
        for record in rows.to_pylist():
            sink.write(json.dumps(record, default=str).encode() + b"\n")
    elif fmt == "orc":
        import pyarrow.orc as orc

        orc.write_table(rows, sink)
    elif fmt == "arrow":
        with pa.ipc.new_file(sink, rows.schema) as writer:
            writer.write_table(rows)
    else:
        fastavro = require("avro", "fastavro", "Avro file destination")
        schema = fastavro.parse_schema(_avro_schema(rows.schema))
        fastavro.writer(sink, schema, rows.to_pylist())
    return sink.getvalue()


def _avro_schema(schema: pa.Schema) -> dict[str, Any]:
    """An Avro record schema for flat Arrow columns (every field nullable)."""

    def avro_type(t: pa.DataType) -> Any:
        if pa.types.is_boolean(t):
            return "boolean"
        if pa.types.is_integer(t):
            return "long"
        if pa.types.is_floating(t):
            return "double"
        if pa.types.is_timestamp(t):
            return {"type": "long", "logicalType": "timestamp-micros"}
        if pa.types.is_date(t):
            return {"type": "int", "logicalType": "date"}
        if pa.types.is_binary(t):
            return "bytes"
        return "string"

    fields = [{"name": f.name, "type": ["null", avro_type(f.type)]} for f in schema]
    return {"type": "record", "name": "row", "fields": fields}
