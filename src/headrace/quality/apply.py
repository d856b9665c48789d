"""Apply expectations to an in-memory table: one DuckDB query over the Arrow buffers.

The table is registered (zero-copy) on a cursor of the process's in-memory DuckDB
database (:mod:`.memory_engine`) with one more column, each row's position. Every
expectation is compiled by the same :class:`~.check_compiler.CheckCompiler` as
``check_table``'s: row-level ones to a boolean column computed once per row, from which
one aggregate query takes the failing counts, the first failing positions (samples),
the rows ``mostly`` judges, the aggregates of table-level expectations and, for
``quarantine`` expectations, the positions of the rows to set aside with the
expectations they fail. DuckDB reorders rows through window functions (``unique``) and
joins (``relationships``), so rows are put back in order by their position; the
passed and quarantined tables are cut from the original Arrow table, and rows in =
passed + quarantined is verified.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from headrace.quality.check_compiler import KEY_COLUMN, CheckCompiler
from headrace.quality.check_results import (
    SAMPLE_ROWS,
    CheckOutcome,
    ExpectationResult,
    row_result,
    sample_rows,
    table_result,
)
from headrace.quality.dialects import DUCKDB
from headrace.quality.expectations import (
    Expectation,
    Relationships,
    RowExpectation,
    Severity,
    TableExpectation,
)
from headrace.quality.memory_engine import memory_cursor
from headrace.quality.quality_errors import ExpectationDefinitionError, ReconciliationError

EXPECTATION_COLUMN = "_hr_expectation"
REASON_COLUMN = "_hr_reason"
_SEPARATOR = "; "
_INPUT = "_hr_input"
#: quarantine expectations per BIGINT of flags (a row's flags say which it fails)
_FLAG_BITS = 62


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


def as_checked_table(table: Any, where: dict[str, str | None]) -> pa.Table:
    """The rows to check as a pyarrow Table; Polars and pandas frames are converted here, at
    the edge, without importing either (neither is a core dependency)."""
    if isinstance(table, pa.Table):
        return table
    if isinstance(table, pa.RecordBatch):
        return pa.Table.from_batches([table])
    module = type(table).__module__.split(".")[0]
    if module == "polars" and hasattr(table, "to_arrow"):
        converted = table.to_arrow()
        assert isinstance(converted, pa.Table)
        return converted
    if module == "pandas":
        return pa.Table.from_pandas(table, preserve_index=False)
    if hasattr(table, "__arrow_c_stream__"):  # a DuckDB relation, an Arrow reader, …
        return pa.table(table)
    raise ExpectationDefinitionError(
        f"checks run on a pyarrow Table, Polars or pandas DataFrame, got {type(table).__name__}.",
        **where,
    )


def _position_column(arrow: pa.Table) -> str:
    name = "_hr_position"
    while name in arrow.column_names:
        name += "_"
    return name


def _read_columns(arrow: pa.Table, checks: Sequence[Expectation]) -> pa.Table:
    """The columns the checks read: DuckDB then never binds the others (a decimal256 of 50
    digits, which it cannot read, may sit beside the checked columns)."""
    wanted: set[str] = set()
    for check in checks:
        used = check.used_columns()
        if used is None:
            return arrow
        wanted.update(name.lower() for name in used)  # DuckDB's names ignore case
    return arrow.select([n for n in arrow.column_names if n.lower() in wanted])


def _positions(n_rows: int) -> pa.Array:
    """0 … n-1 as int64, without NumPy (not a core dependency): ~3 ms per million rows."""
    return pc.indices_nonzero(pa.nulls(n_rows, pa.bool_()).fill_null(True)).cast(pa.int64())


@dataclass
class _Plan:
    """The one aggregate query, and where each expectation's values land in its row."""

    select: list[str] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)
    masks: list[str] = field(default_factory=list)  # "(predicate) AS _hr_mI", computed once
    mask_params: list[Any] = field(default_factory=list)
    failed: dict[int, int] = field(default_factory=dict)  # check -> its count's slot
    judged: dict[int, int] = field(default_factory=dict)
    aggregates: dict[int, tuple[int, int]] = field(default_factory=dict)
    quarantine: list[int] = field(default_factory=list)  # checks of severity quarantine
    flags_at: int = -1  # the slot of the quarantined rows' list, if any

    def slot(self, sql: str, params: Sequence[Any] = ()) -> int:
        self.select.append(sql)
        self.params.extend(params)
        return len(self.select) - 1


def _mask(i: int) -> str:
    return f'"_hr_m{i}"'


def _plan(checks: Sequence[Expectation], compiler: CheckCompiler, position: str) -> _Plan:
    """Compile the expectations; a definition error is raised as is (the caller locates it)."""
    plan = _Plan()
    pos = DUCKDB.quote(position)
    for i, check in enumerate(checks):
        if isinstance(check, RowExpectation):
            predicate, values = compiler.failing(check)
            plan.masks.append(f"COALESCE({predicate}, FALSE) AS {_mask(i)}")
            plan.mask_params.extend(values)
            plan.failed[i] = plan.slot(f"COUNT(*) FILTER (WHERE {_mask(i)})")
            plan.slot(f"min({pos}, {SAMPLE_ROWS}) FILTER (WHERE {_mask(i)})")
            judged = compiler.judged(check) if check.mostly is not None else None
            if judged is not None:
                plan.judged[i] = plan.slot(f"COUNT(*) FILTER (WHERE {judged})")
            if check.severity is Severity.QUARANTINE:
                plan.quarantine.append(i)
        elif isinstance(check, TableExpectation):
            aggregates = compiler.aggregates(check)
            plan.aggregates[i] = (len(plan.select), len(aggregates))
            plan.select.extend(aggregates)
    if plan.quarantine:
        # Each row's quarantine expectations as bits of BIGINT flags, for the rows with any.
        chunks = [
            plan.quarantine[k : k + _FLAG_BITS] for k in range(0, len(plan.quarantine), _FLAG_BITS)
        ]
        flags = [
            " | ".join(f"(CAST({_mask(i)} AS BIGINT) << {bit})" for bit, i in enumerate(chunk))
            for chunk in chunks
        ]
        fields = ", ".join(f"'f{k}': {sql}" for k, sql in enumerate(flags))
        anyone = " OR ".join(_mask(i) for i in plan.quarantine)
        plan.flags_at = plan.slot(f"list({{'p': {pos}, {fields}}}) FILTER (WHERE {anyone})")
    return plan


def _query(plan: _Plan, source: str) -> str:
    masks = f", {', '.join(plan.masks)}" if plan.masks else ""
    return f"SELECT {', '.join(plan.select)} FROM (SELECT *{masks} FROM {source}) AS _hr_t"


def _diagnose(
    con: duckdb.DuckDBPyConnection,
    checks: Sequence[Expectation],
    compiler: CheckCompiler,
    source: str,
    columns: list[str],
    error: duckdb.Error,
    where: dict[str, str | None],
) -> ExpectationDefinitionError:
    """The expectation that cannot run on this table (its query alone fails), named."""
    for check in checks:
        if not isinstance(check, RowExpectation):
            continue
        predicate, values = compiler.failing(check)
        try:
            con.execute(
                f"SELECT COUNT(*) FILTER (WHERE {predicate}) FROM {source}", values
            ).fetchall()
        except duckdb.Error as exc:
            return ExpectationDefinitionError(
                f"{check.where()} cannot run on this table "
                f"(columns: {', '.join(columns)}): {' '.join(str(exc).split())[:400]}",
                **where,
                **check.about(),
            )
    return ExpectationDefinitionError(
        f"the expectations cannot run on this table: {' '.join(str(error).split())[:400]}",
        **where,
    )


def _run(
    arrow: pa.Table, checks: Sequence[Expectation], where: dict[str, str | None]
) -> tuple[tuple[Any, ...], _Plan]:
    """The one aggregate row of the expectations over ``arrow``, and the plan that reads it."""
    position = _position_column(arrow)
    key_tables = {
        c.name: f"_hr_keys{i}" for i, c in enumerate(checks) if isinstance(c, Relationships)
    }
    compiler = CheckCompiler(DUCKDB, arrow.schema, key_tables, DUCKDB.quote(_INPUT))
    try:
        plan = _plan(checks, compiler, position)
    except ExpectationDefinitionError as exc:
        raise exc.located(**where) from None  # the same error, located: nothing is lost
    if not plan.select:  # only row counts and schemas: nothing to compute
        return (), plan
    source = compiler.source(DUCKDB.quote(_INPUT))
    views = {
        _INPUT: _read_columns(arrow, checks).append_column(position, _positions(arrow.num_rows))
    }
    for check in checks:
        if isinstance(check, Relationships):
            views[key_tables[check.name]] = pa.table({KEY_COLUMN: check.keys()})
    with memory_cursor() as con:
        registered: list[str] = []
        try:
            for name, view in views.items():
                try:
                    con.register(name, view)
                except duckdb.Error as exc:
                    raise ExpectationDefinitionError(
                        f"the checked columns cannot be read by DuckDB "
                        f"({', '.join(f'{f.name}: {f.type}' for f in view.schema)}): "
                        f"{' '.join(str(exc).split())[:400]}",
                        **where,
                    ) from exc
                registered.append(name)
            try:
                # As Arrow: the quarantined rows' list stays columnar (no Python object per row).
                params = plan.mask_params + plan.params
                result: pa.Table = con.sql(_query(plan, source), params=params).to_arrow_table()
            except duckdb.Error as exc:
                error = _diagnose(con, checks, compiler, source, arrow.column_names, exc, where)
                raise error from exc
        finally:
            for name in registered:  # the cursor's close would drop them too; say it here
                con.unregister(name)
    row = tuple(
        column if at == plan.flags_at else column[0].as_py()
        for at, column in enumerate(result.columns)
    )
    return row, plan


def apply_checks(
    table: pa.Table | Any,
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
    arrow = as_checked_table(table, where)
    n_rows = arrow.num_rows
    schema = arrow.schema
    row: tuple[Any, ...] = ()
    plan = _Plan()
    if checks:
        row, plan = _run(arrow, checks, where)

    results: list[ExpectationResult] = []
    for i, check in enumerate(checks):
        if isinstance(check, RowExpectation):
            at = plan.failed[i]
            failed = int(row[at] or 0)
            positions = sorted(row[at + 1] or [])[:SAMPLE_ROWS]
            judged = int(row[plan.judged[i]] or 0) if i in plan.judged else n_rows
            results.append(row_result(check, n_rows, failed, judged, sample_rows(arrow, positions)))
        else:
            assert isinstance(check, TableExpectation)
            start, width = plan.aggregates[i]
            results.append(
                table_result(check, list(row[start : start + width]), n_rows, schema, where)
            )

    flagged = pc.list_flatten(row[plan.flags_at]) if plan.flags_at >= 0 else None
    quarantine = [c for i in plan.quarantine if isinstance(c := checks[i], RowExpectation)]
    passed, quarantined = _split(arrow, flagged, quarantine)
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
    arrow: pa.Table, flagged: pa.ChunkedArray | None, quarantine: Sequence[RowExpectation]
) -> tuple[pa.Table, pa.Table | None]:
    """Rows that go on, and rows set aside once each with all their reasons (in row order).

    Args:
        flagged: structs ``{p: position, f0: bits, …}``, one per row failing a quarantine
            expectation (any order): bit ``b`` of ``fK`` is ``quarantine[K * 62 + b]``.
        quarantine: the expectations of severity quarantine, in declaration order.
    """
    if flagged is None or len(flagged) == 0:
        return arrow, None
    rows = flagged.combine_chunks()
    order = pc.sort_indices(rows.field("p"))
    positions = rows.field("p").take(order)
    flag_columns = [rows.field(f"f{k}").take(order) for k in range(rows.type.num_fields - 1)]
    # Few distinct combinations of failed expectations: label each once, then look up.
    distinct: list[tuple[int, ...]]
    if len(flag_columns) == 1:
        values = pc.unique(flag_columns[0])
        which = pc.index_in(flag_columns[0], value_set=values)
        distinct = [(v,) for v in values.to_pylist()]
    else:  # more than 62 quarantine expectations on one table
        combos = list(zip(*(c.to_pylist() for c in flag_columns), strict=True))
        distinct = list(dict.fromkeys(combos))
        index = {combo: n for n, combo in enumerate(distinct)}
        which = pa.array([index[c] for c in combos], pa.int32())
    names: list[str] = []
    reasons: list[str] = []
    for combo in distinct:
        failed = [
            check
            for k, bits in enumerate(combo)
            for b, check in enumerate(quarantine[k * _FLAG_BITS : (k + 1) * _FLAG_BITS])
            if bits >> b & 1
        ]
        names.append(_SEPARATOR.join(c.name for c in failed))
        reasons.append(_SEPARATOR.join(c.row_reason() for c in failed))
    flagged_mask = pc.is_in(_positions(arrow.num_rows), value_set=positions)
    quarantined = (
        arrow.filter(flagged_mask)  # in row order, as ``positions`` (take lacks some types)
        .append_column(EXPECTATION_COLUMN, pa.array(names, pa.string()).take(which))
        .append_column(REASON_COLUMN, pa.array(reasons, pa.string()).take(which))
    )
    return arrow.filter(pc.invert(flagged_mask)), quarantined
