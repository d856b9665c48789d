"""reconcile: rows extracted = rows loaded + rows quarantined."""

from __future__ import annotations

import polars as pl
import pyarrow as pa
import pytest

from headrace.errors import QualityError, TerminalError
from headrace.quality import (
    Reconciliation,
    ReconciliationError,
    apply_checks,
    matches_regex,
    reconcile,
)


def test_counts_that_add_up() -> None:
    assert reconcile(1000, 990, 10) == Reconciliation(1000, 990, 10)
    assert reconcile(5, 5) == Reconciliation(5, 5, 0)
    assert reconcile(0, 0, None) == Reconciliation(0, 0, 0)


def test_missing_rows_fail_with_all_counts() -> None:
    with pytest.raises(ReconciliationError) as info:
        reconcile(1000, 980, 10, pipeline="customer_etl", run_id="r1", table="warehouse.customers")
    error = info.value
    assert isinstance(error, QualityError) and isinstance(error, TerminalError)
    assert (error.extracted, error.loaded, error.quarantined) == (1000, 980, 10)
    message = str(error)
    assert "pipeline 'customer_etl', run r1, table 'warehouse.customers'" in message
    assert (error.pipeline, error.run_id, error.table) == (
        "customer_etl",
        "r1",
        "warehouse.customers",
    )
    assert "extracted 1000 != loaded 980 + quarantined 10 = 990 (10 rows missing)" in message


def test_duplicated_rows_fail() -> None:
    with pytest.raises(ReconciliationError, match="5 rows more than extracted"):
        reconcile(100, 105, 0)


def test_tables_are_counted() -> None:
    table = pa.table({"email": ["a@b.c", "bad", "c@d.e"]})
    outcome = apply_checks(table, [matches_regex("email", "@", severity="quarantine")])
    assert reconcile(table, outcome.passed, outcome.quarantined) == Reconciliation(3, 2, 1)
    with pytest.raises(ReconciliationError):
        reconcile(table, pl.DataFrame({"email": ["a@b.c"]}), outcome.quarantined)
    with pytest.raises(ValueError, match="negative"):
        reconcile(-1, 0, 0)
