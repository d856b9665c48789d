"""The names headrace writes into a lakehouse table's commit metadata.

Delta keeps them in the commit's custom metadata; Iceberg in the table properties and
the snapshot summary (see ``lakebase``).
"""

from __future__ import annotations

#: Keys of the commit metadata / snapshot summary / table properties headrace writes.
KEY_LOAD_ID = "headrace.load_id"
KEY_LOAD = "headrace.load"
KEY_CHECKPOINTS = "headrace.checkpoints"
KEY_ORIGIN = "headrace.origin"  # a quarantine commit's "pipeline\x1fsource"
KEY_FENCE = "headrace.fence"  # ... and the fence its load was checked against
KEY_DROPPED = "headrace.dropped"  # the load ids a quarantine commit deleted (orphans)


def checkpoint_key(pipeline: str, source: str) -> str:
    """The key of (pipeline, source) in a table's checkpoint map."""
    return f"{pipeline}\x1f{source}"
