"""The quarantine table of a lakehouse table: written once per load, and cleared of the
rows of loads that can never commit.

Quarantined rows go to ``<table>_quarantine``, a table of its own (neither format
commits two tables atomically) committed just before the data, each row tagged with
its load id: a retry of the same load (the load id is a digest of its rows) writes
them once (:func:`quarantine_once`). A fenced load also records its source and fence
in the quarantine commit; a load killed between the two commits, whose rerun
re-extracts and re-quarantines the same rows under a new load id, leaves rows that can
never commit, and the next fenced commit of that source deletes them
(:func:`drop_orphans`). Until then they are there with a load id absent from the
table's history; nothing is lost. Unfenced loads (full replace, replace_partition) are
not cleaned up that way.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any, Protocol

import pyarrow as pa

from headrace.connectors.destinations.destination_base import (
    QUARANTINE_SUFFIX,
    LoadResult,
    with_meta,
)
from headrace.connectors.destinations.lake_metadata import (
    KEY_DROPPED,
    KEY_FENCE,
    KEY_LOAD_ID,
    KEY_ORIGIN,
    checkpoint_key,
)
from headrace.connectors.incremental import Checkpoint, encode_value


class QuarantineHost(Protocol):
    """The table operations of a lake destination (``LakeDestination``) the quarantine uses."""

    def tables(self) -> list[str]: ...

    def _history(self, table: str) -> Iterator[dict[str, str]]: ...

    def _recorded(self, table: str, load_id: str) -> LoadResult | None: ...

    def _append_quarantine(
        self, table: str, data: pa.Table, properties: dict[str, str]
    ) -> None: ...

    def _drop_quarantine(
        self, table: str, load_ids: list[str], properties: dict[str, str]
    ) -> None: ...


def quarantine_once(
    dest: QuarantineHost, table: str, rows: pa.Table, load_id: str, loaded_at: dt.datetime,
    fence: Checkpoint | None,
) -> None:  # fmt: skip
    """Append this load's quarantined rows unless an earlier try of it already did.

    A fenced load records its source and fence with the rows, so that a later load
    can tell rows of a load that can never commit (see :func:`drop_orphans`).
    """
    name = table + QUARANTINE_SUFFIX
    if name in dest.tables() and any(m.get(KEY_LOAD_ID) == load_id for m in dest._history(name)):
        return
    rows = with_meta(rows, load_id, loaded_at)
    properties = {KEY_LOAD_ID: load_id}
    if fence is not None:
        properties[KEY_ORIGIN] = checkpoint_key(fence.pipeline, fence.source)
        properties[KEY_FENCE] = json.dumps(list(encode_value(fence.value)))
    dest._append_quarantine(name, rows, properties)


def drop_orphans(
    dest: QuarantineHost, table: str, committed: str, fence: Checkpoint,
    checkpoints: dict[str, Any],
) -> None:  # fmt: skip
    """Delete quarantined rows of loads of this source that can never commit.

    The quarantine is committed before the load (two tables, two commits): a load
    killed between them, or one that lost the race on its fence, leaves rows whose
    load id is not in the table's history — and its rerun quarantines the same rows
    again. After a fenced load commits, a quarantine commit of the same source that
    is newer than the source's last committed one, not itself committed, and fenced
    on a value other than the source's checkpoint now can never commit (its fence
    check fails): its rows are deleted. Run after every fenced commit, so a crash
    right before it leaves the cleanup to the next load.
    """
    name = table + QUARANTINE_SUFFIX
    if name not in dest.tables():
        return
    key = checkpoint_key(fence.pipeline, fence.source)
    entry = checkpoints.get(key)
    current = entry[:2] if entry is not None else list(encode_value(fence.value))
    dropped: set[str] = set()
    orphans: list[str] = []
    for meta in dest._history(name):
        dropped.update(json.loads(meta.get(KEY_DROPPED, "[]")))
        load_id = meta.get(KEY_LOAD_ID)
        if meta.get(KEY_ORIGIN) != key or load_id in (None, committed) or load_id in dropped:
            continue
        if dest._recorded(table, load_id) is not None:
            break  # the source's last committed load: older rows were settled then
        if json.loads(meta[KEY_FENCE]) != current:
            orphans.append(load_id)
    if orphans:
        dest._drop_quarantine(name, orphans, {KEY_DROPPED: json.dumps(orphans)})
