"""The source contract: anything that yields Arrow record batches with bounded memory."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any, Protocol, runtime_checkable

import pyarrow as pa

from headrace.connectors.fidelity import Rejects
from headrace.connectors.incremental import CursorValue, column_max, later
from headrace.connectors.prefetch import prefetched as _prefetched
from headrace.errors import ConnectorError

DEFAULT_BATCH_ROWS = 65_536

log = logging.getLogger(__name__)


@runtime_checkable
class Source(Protocol):
    """A source of rows: SQL databases and files implement this.

    ``read`` returns an :class:`Extract`; iterating it streams record batches, so
    memory is bounded by the batch size whatever the size of the source.
    """

    def read(self, **options: Any) -> Extract: ...


class Extract:
    """A stream of record batches that counts rows and tracks the cursor's maximum.

    Args:
        schema: the schema every batch has.
        batches: the batch iterator (consumed once).
        cursor_column: when set, the greatest value of this column is tracked.
        description: what is being read, for messages (credentials already masked).
        progress: called with the number of rows read so far after every batch
            (e.g. ``lambda n: ctx.progress(n, None, "rows extracted")``).
        rejects: rows the source set aside (values with no faithful type, see
            ``fidelity``); a destination writing this extract quarantines them in the
            same load. ``rows`` counts them too: rows read = rows yielded + set aside.
    """

    def __init__(
        self,
        schema: pa.Schema,
        batches: Iterator[pa.RecordBatch],
        *,
        cursor_column: str | None = None,
        description: str = "",
        progress: Callable[[int], None] | None = None,
        rejects: Rejects | None = None,
    ) -> None:
        self.schema = schema
        self.rejects = rejects if rejects is not None else Rejects()
        self._batches = batches
        self.cursor_column = cursor_column
        self.description = description
        self.progress = progress
        self.rows = 0
        self.cursor_max: CursorValue = None
        self._consumed = False

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        if self._consumed:
            raise ConnectorError(
                f"The extract of {self.description} was already read once; streams are "
                "read once: call source.read() again, or keep extract.to_table()."
            )
        self._consumed = True
        yielded = 0
        folded = 0  # reject tables whose cursor values are in cursor_max
        for batch in self._batches:
            yielded += batch.num_rows
            self.rows = yielded + self.rejects.count
            if self.cursor_column is not None and batch.num_rows:
                self.cursor_max = later(self.cursor_max, column_max(batch, self.cursor_column))
            folded = self._fold_rejects(folded)
            if self.progress is not None:
                self.progress(self.rows)
            yield batch
        self._fold_rejects(folded)
        self.rows = yielded + self.rejects.count
        if self.rejects.count:
            # never silent: a destination writing this Extract quarantines them; a caller
            # that materialises it must pass them on (quarantine=extract.rejects.table())
            log.warning(
                "%s: %d of %d row(s) set aside by the value policy (extract.rejects): %s",
                self.description,
                self.rejects.count,
                self.rows,
                self.rejects.tables[0].column("_hr_reason")[0],
            )

    def _fold_rejects(self, folded: int) -> int:
        """Take the cursor values of the rows set aside since ``folded`` reject tables into
        ``cursor_max``: a quarantined row is handled like a loaded one, and the next
        increment must not read it (and quarantine it) again. Returns the tables folded.

        (Their cursor value is the source's own, or NULL when it is the bad value.)
        """
        if self.cursor_column is None:
            return folded
        for held in self.rejects.tables[folded:]:
            if held.num_rows and self.cursor_column in held.column_names:
                self.cursor_max = later(self.cursor_max, column_max(held, self.cursor_column))
        return len(self.rejects.tables)

    def reader(self, prefetch: int = 0) -> pa.RecordBatchReader:
        """The stream as a ``pyarrow.RecordBatchReader`` (for DuckDB, ADBC ingest, Polars).

        Args:
            prefetch: read up to this many batches ahead in a background thread, so the
                driver decodes the next batches while the consumer writes this one
                (drivers release the GIL while reading). Memory: ``prefetch`` batches more.
        """
        batches = iter(self) if prefetch <= 0 else _prefetched(iter(self), prefetch)
        return pa.RecordBatchReader.from_batches(self.schema, batches)

    def to_table(self) -> pa.Table:
        """Read everything into one table (memory: the whole result)."""
        return pa.Table.from_batches(list(self), schema=self.schema)
