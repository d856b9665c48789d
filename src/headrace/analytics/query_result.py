"""The result of one analytics query, held as Arrow and converted on request."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from headrace.extras import require

if TYPE_CHECKING:  # the conversions import these lazily; pandas is optional
    import pandas
    import polars


class Result:
    """Rows a query returned, run once and kept as an Arrow table.

    Arrow is headrace's in-memory format: Polars reads it without a copy, pandas
    and Python rows are made from it on demand.

    Args:
        table: the rows.

    Example:
        >>> from headrace.analytics import Analyzer
        >>> with Analyzer() as a:
        ...     a.query("SELECT ? AS answer", [42]).rows()
        [(42,)]
    """

    def __init__(self, table: pa.Table) -> None:
        self._table = table

    @property
    def columns(self) -> list[str]:
        """Column names, in order."""
        return list(self._table.column_names)

    @property
    def schema(self) -> pa.Schema:
        """The Arrow schema of the rows."""
        return self._table.schema

    def __len__(self) -> int:
        return self._table.num_rows

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(self.rows())

    def __repr__(self) -> str:
        return f"Result({len(self)} rows, columns={self.columns})"

    def arrow(self) -> pa.Table:
        """The rows as a ``pyarrow.Table`` (no copy)."""
        return self._table

    def polars(self) -> polars.DataFrame:
        """The rows as a Polars DataFrame (zero-copy where the types allow; the ``polars`` extra)."""
        pl = require("polars", "polars", "Result.polars()")
        frame = pl.from_arrow(self._table)
        assert isinstance(frame, pl.DataFrame)
        return frame

    def pandas(self) -> pandas.DataFrame:
        """The rows as a pandas DataFrame (needs the ``pandas`` extra)."""
        require("pandas", "pandas", "Result.pandas()")
        return self._table.to_pandas()

    def dicts(self) -> list[dict[str, Any]]:
        """The rows as a list of ``{column: value}`` dicts."""
        return self._table.to_pylist()

    def rows(self) -> list[tuple[Any, ...]]:
        """The rows as a list of tuples, in column order."""
        columns = [col.to_pylist() for col in self._table.columns]
        return list(zip(*columns, strict=True)) if columns else []

    def scalar(self) -> Any:
        """The first column of the first row, or ``None`` when there are no rows."""
        if self._table.num_rows == 0 or self._table.num_columns == 0:
            return None
        return self._table.column(0)[0].as_py()
