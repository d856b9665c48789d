"""Apply expectations to an in-memory table in one vectorised Polars pass.

All row-level expectations become boolean columns of one ``select`` (Polars runs
the expressions in parallel over the Arrow buffers, no Python per row); table-level
expectations become one aggregate ``select``; both run in one ``collect_all``.
Then counts, samples, the rows that pass and the rows quarantined are taken from
the boolean masks, and rows in = passed + quarantined is verified.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import polars as pl
import pyarrow as pa

from headrace.quality.check_results import (
    SAMPLE_ROWS,
    CheckOutcome,
    ExpectationResult,
    row_result,
    sample_rows,
    table_result,
)
from headrace.quality.expectations import Expectation, RowExpectation, Severity, TableExpectation
from headrace.quality.quality_errors import ExpectationDefinitionError, ReconciliationError

EXPECTATION_COLUMN = "_hr_expectation"
REASON_COLUMN = "_hr_reason"
_SEPARATOR = "; "


def _where(pipeline: str | None, task: str | None) -> dict[str, str | None]:
    """The location fields of the errors raised here."""
    return {"pipeline": pipeline or None, "task": task or None}


def check_names(checks: Sequence[Expectation], where: dict[str, str | None]) -> None:
    """Expectation names must be unique on one table: they key the stored results."""
    seen: set[str] = set()
    for check in checks:
        if not isinstance(check, Expectation):
            raise ExpectationDefinitionError(
                f"{check!r} is not an expectation; build checks with not_null(), "
                f"unique(), matches_regex(), … from headrace.quality.",
                **where,
            )
        if check.name in seen:
            raise ExpectationDefinitionError(
                f"two expectations are named {check.name!r}; give one of them name=… "
                f"so their results can be told apart.",
                **where,
            )
        seen.add(check.name)


def _as_arrow(table: Any, where: dict[str, str | None]) -> pa.Table:
    if isinstance(table, pa.Table):
        return table
    if isinstance(table, pl.DataFrame):
        return table.to_arrow()
    if isinstance(table, pa.RecordBatch):
        return pa.Table.from_batches([table])
    if type(table).__module__.startswith("pandas"):  # pandas at the edge, not imported here
        return pa.Table.from_pandas(table, preserve_index=False)
    raise ExpectationDefinitionError(
        f"checks run on a pyarrow Table, Polars or pandas DataFrame, got {type(table).__name__}.",
        **where,
    )


def _frame(arrow: pa.Table, checks: Sequence[Expectation]) -> pl.DataFrame:
    """The columns the checks read, as a Polars frame.

    Converting only those columns matters: Arrow strings become Polars string views
    by copying, which for a wide table costs more than the checks themselves.
    """
    wanted: dict[str, None] = {}
    for check in checks:
        wanted.update(dict.fromkeys(c for c in check.used_columns() if c in arrow.column_names))
    if not wanted and arrow.num_columns:
        wanted[arrow.column_names[0]] = None  # keeps the frame's height for constant checks
    frame = pl.from_arrow(arrow.select(list(wanted)), rechunk=False)
    assert isinstance(frame, pl.DataFrame)
    return frame


def _compile(
    checks: Sequence[Expectation], schema: pa.Schema, where: dict[str, str | None]
) -> tuple[list[pl.Expr], list[pl.Expr], list[int]]:
    """Mask expressions, aggregate expressions, and how many aggregates each table check has."""
    masks: list[pl.Expr] = []
    aggs: list[pl.Expr] = []
    widths: list[int] = []
    try:
        for i, check in enumerate(checks):
            if isinstance(check, RowExpectation):
                masks.append(check.failing(schema).fill_null(False).alias(f"_hr_m{i}"))
            elif isinstance(check, TableExpectation):
                exprs = check.aggregates(schema)
                aggs.extend(e.alias(f"_hr_a{len(aggs) + j}") for j, e in enumerate(exprs))
                widths.append(len(exprs))
    except ExpectationDefinitionError as exc:
        raise exc.located(**where) from None  # the same error, located: nothing is lost
    return masks, aggs, widths


def _evaluate(
    frame: pl.DataFrame,
    masks: list[pl.Expr],
    aggs: list[pl.Expr],
    checks: Sequence[Expectation],
    where: dict[str, str | None],
) -> tuple[pl.DataFrame, pl.DataFrame]:
    lazy = frame.lazy()
    try:
        if masks and aggs:
            mask_frame, agg_frame = pl.collect_all([lazy.select(masks), lazy.select(aggs)])
        else:  # one plan is cheaper to run than two when one of them is empty
            mask_frame = frame.select(masks) if masks else pl.DataFrame()
            agg_frame = frame.select(aggs) if aggs else pl.DataFrame()
    except pl.exceptions.PolarsError:
        # Find which expectation cannot run on this table, to name it.
        schema = frame.to_arrow().schema
        for check in checks:
            if isinstance(check, RowExpectation):
                try:
                    frame.head(0).select(check.failing(schema))
                except pl.exceptions.PolarsError as exc:
                    raise ExpectationDefinitionError(
                        f"{check.where()} cannot run on this table "
                        f"(columns: {', '.join(frame.columns)}): {' '.join(str(exc).split())[:400]}",
                        **where,
                    ) from exc
        raise
    return mask_frame, agg_frame


def _judged_counts(
    frame: pl.DataFrame,
    checks: Sequence[Expectation],
    schema: pa.Schema,
    where: dict[str, str | None],
) -> dict[int, int]:
    """How many rows each row-level check with ``mostly`` judges (by position in ``checks``)."""
    wanted = {
        i: c for i, c in enumerate(checks) if isinstance(c, RowExpectation) and c.mostly is not None
    }
    if not wanted:
        return {}
    try:
        exprs = [c.judged(schema).sum().alias(f"_hr_j{i}") for i, c in wanted.items()]
    except ExpectationDefinitionError as exc:
        raise exc.located(**where) from None  # the same error, located: nothing is lost
    row = frame.select(exprs).row(0)
    return {i: int(v or 0) for i, v in zip(wanted, row, strict=True)}


def apply_checks(
    table: pa.Table | pl.DataFrame | Any,
    checks: Sequence[Expectation],
    *,
    pipeline: str | None = None,
    task: str | None = None,
) -> CheckOutcome:
    """Check a table against expectations in one pass; split passing and quarantined rows.

    Args:
        table: the task's output: a pyarrow Table (Polars and pandas DataFrames and
            Arrow record batches are converted first).
        checks: expectations built with not_null(), unique(), matches_regex(), …
        pipeline: pipeline id, for messages.
        task: task id, for messages and stored records.

    Returns:
        A :class:`CheckOutcome`: ``results`` per expectation, ``passed`` (original
        columns and order), ``quarantined`` (with ``_hr_expectation``/``_hr_reason``).
        Call ``raise_for_failures()`` to stop on ``fail`` severities.

    Example:
        >>> outcome = apply_checks(table, [not_null("id"), unique("id")], pipeline="p", task="t")
        >>> outcome.raise_for_failures()
    """
    where = _where(pipeline, task)
    check_names(checks, where)
    arrow = _as_arrow(table, where)
    n_rows = arrow.num_rows
    schema = arrow.schema
    frame = _frame(arrow, checks)
    masks, aggs, widths = _compile(checks, schema, where)
    mask_frame, agg_frame = _evaluate(frame, masks, aggs, checks, where)
    if masks and mask_frame.height != n_rows:
        raise ExpectationDefinitionError(
            f"a row-level expectation gave {mask_frame.height} values for {n_rows} rows; "
            f"a sql_expression must refer to at least one column.",
            **where,
        )
    counts = mask_frame.sum().row(0) if masks else ()
    agg_values = agg_frame.row(0) if aggs else ()
    judged = _judged_counts(frame, checks, schema, where)

    results: list[ExpectationResult] = []
    quarantine_masks: list[tuple[str, RowExpectation]] = []
    mask_at = agg_at = 0
    width_at = 0
    for i, check in enumerate(checks):
        if isinstance(check, RowExpectation):
            failed = int(counts[mask_at] or 0)
            mask_at += 1
            sample: list[dict] = []
            if failed:
                positions = (
                    mask_frame.get_column(f"_hr_m{i}").arg_true().head(SAMPLE_ROWS).to_list()
                )
                sample = sample_rows(arrow, positions)
                if check.severity is Severity.QUARANTINE:
                    quarantine_masks.append((f"_hr_m{i}", check))
            results.append(row_result(check, n_rows, failed, judged.get(i, n_rows), sample))
        else:
            assert isinstance(check, TableExpectation)
            width = widths[width_at]
            width_at += 1
            values = list(agg_values[agg_at : agg_at + width])
            agg_at += width
            results.append(table_result(check, values, n_rows, schema, where))

    passed, quarantined = _split(arrow, mask_frame, quarantine_masks)
    n_quarantined = 0 if quarantined is None else quarantined.num_rows
    if passed.num_rows + n_quarantined != n_rows:
        raise ReconciliationError(
            f"{n_rows} rows checked but {passed.num_rows} passed + {n_quarantined} "
            f"quarantined = {passed.num_rows + n_quarantined}; rows would be lost. "
            f"This is a bug in headrace.quality, please report it.",
            extracted=n_rows,
            loaded=passed.num_rows,
            quarantined=n_quarantined,
            pipeline=pipeline,
            task=task,
        )
    return CheckOutcome(
        results=results,
        pipeline=pipeline,
        task=task,
        passed=passed,
        quarantined=quarantined,
        rows_in=n_rows,
    )


def _split(
    arrow: pa.Table, mask_frame: pl.DataFrame, quarantine_masks: list[tuple[str, RowExpectation]]
) -> tuple[pa.Table, pa.Table | None]:
    """Rows that go on, and rows set aside once each with all their reasons."""
    if not quarantine_masks:
        return arrow, None
    columns = [pl.col(c) for c, _ in quarantine_masks]
    flagged = mask_frame.select(pl.any_horizontal(columns).alias("q")).get_column("q")
    keep = (~flagged).to_arrow()
    passed = arrow.filter(keep)
    labels = mask_frame.filter(flagged).select(
        pl.concat_str(
            [pl.when(pl.col(c)).then(pl.lit(check.name)) for c, check in quarantine_masks],
            separator=_SEPARATOR,
            ignore_nulls=True,
        ).alias(EXPECTATION_COLUMN),
        pl.concat_str(
            [pl.when(pl.col(c)).then(pl.lit(check.row_reason())) for c, check in quarantine_masks],
            separator=_SEPARATOR,
            ignore_nulls=True,
        ).alias(REASON_COLUMN),
    )
    quarantined = arrow.filter(flagged.to_arrow())
    quarantined = quarantined.append_column(
        EXPECTATION_COLUMN, labels.get_column(EXPECTATION_COLUMN).to_arrow().cast(pa.string())
    ).append_column(REASON_COLUMN, labels.get_column(REASON_COLUMN).to_arrow().cast(pa.string()))
    return passed, quarantined
