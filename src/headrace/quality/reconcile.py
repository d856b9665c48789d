"""Post-load reconciliation: rows extracted = rows loaded + rows quarantined."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from headrace.quality.quality_errors import ReconciliationError


@dataclass(frozen=True)
class Reconciliation:
    """Counts that added up."""

    extracted: int
    loaded: int
    quarantined: int


def _count(value: Any, what: str) -> int:
    """An int, or the row count of a table-like value (Arrow, Polars, pandas)."""
    if isinstance(value, bool):
        raise TypeError(f"reconcile: {what} must be a row count or a table, got a bool")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"reconcile: {what} is negative ({value})")
        return value
    if value is None:
        return 0
    rows = getattr(value, "num_rows", None)
    if rows is None:
        rows = getattr(value, "height", None)
    if rows is None:
        rows = len(value)
    return int(rows)


def reconcile(
    extracted: Any,
    loaded: Any,
    quarantined: Any = 0,
    *,
    pipeline: str | None = None,
    run_id: str | None = None,
    table: str | None = None,
) -> Reconciliation:
    """Verify that no row was lost or duplicated between extract and load.

    Args:
        extracted: rows that came from the source (a count or a table).
        loaded: rows written to the destination in this run (a count or a table).
        quarantined: rows set aside (a count, a table, or None for none).
        pipeline: named in the error.
        run_id: named in the error.
        table: destination table, named in the error.

    Returns:
        The counts, when ``extracted == loaded + quarantined``.

    Raises:
        ReconciliationError: naming the three counts and the difference.

    Example:
        >>> reconcile(1000, 990, 10)
        Reconciliation(extracted=1000, loaded=990, quarantined=10)
    """
    n_in = _count(extracted, "extracted")
    n_loaded = _count(loaded, "loaded")
    n_quarantined = _count(quarantined, "quarantined")
    if n_in == n_loaded + n_quarantined:
        return Reconciliation(n_in, n_loaded, n_quarantined)
    diff = n_in - n_loaded - n_quarantined
    what = f"{diff} rows missing" if diff > 0 else f"{-diff} rows more than extracted (duplicated?)"
    raise ReconciliationError(
        f"rows do not reconcile: extracted {n_in} != loaded {n_loaded} + quarantined "
        f"{n_quarantined} = {n_loaded + n_quarantined} ({what}). Check the load's merge keys "
        f"and filters; the run is failed so the checkpoint does not move.",
        extracted=n_in,
        loaded=n_loaded,
        quarantined=n_quarantined,
        pipeline=pipeline or None,
        run_id=run_id or None,
        table=table or None,
    )
