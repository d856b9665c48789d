"""Apply expectations to an in-memory table: one DuckDB query over the Arrow buffers.

The table is registered (zero-copy) on a cursor of the process's in-memory DuckDB
database (:mod:`.memory_engine`) with one more column, each row's position. Every
expectation is compiled by the same :class:`~.check_compiler.CheckCompiler` as
``check_table``'s, and the compiled plan is kept per (expectations, schema): a stream
checks the same schema batch after batch. Row-level expectations become one boolean
flag each, and one query returns the position and flags of the rows with any flag set
(clean rows never leave DuckDB): failing counts, samples (the first failing positions)
and the rows to quarantine, with the expectations each fails, are read from those rows
in Python for a small table and with Arrow compute for a large one. Only ``mostly``
(the rows it judges) and table-level statistics need a second, aggregate query. The
passed and quarantined tables are cut from the original Arrow table in row order, and
rows in = passed + quarantined is verified.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from headrace.quality.check_compiler import BASE, KEY_COLUMN, CheckCompiler
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
from headrace.quality.values import frame_to_arrow

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
    converted = frame_to_arrow(table)
    if converted is not None:
        return converted
    if hasattr(table, "__arrow_c_stream__"):  # a DuckDB relation, an Arrow reader, …
        return pa.table(table)
    raise ExpectationDefinitionError(
        f"checks run on a pyarrow Table, Polars or pandas DataFrame, got {type(table).__name__}.",
        **where,
    )


def _position_column(schema: pa.Schema) -> str:
    name = "_hr_position"
    while name in schema.names:
        name += "_"
    return name


def _positions(n_rows: int) -> pa.Array:
    """0 … n-1 as int64, without NumPy (not a core dependency): ~3 ms per million rows."""
    return pc.indices_nonzero(pa.nulls(n_rows, pa.bool_()).fill_null(True)).cast(pa.int64())


@dataclass(frozen=True)
class _Plan:
    """The compiled expectations of one table schema: what DuckDB runs and how to read it.

    ``flagged_sql`` projects each row's position and one flag per row-level expectation
    and keeps the rows with any flag set: every count, sample and quarantined row is
    read from those rows alone, so a clean table returns none and a dirty one returns
    its failing rows, never an aggregate state per expectation. ``totals_sql`` holds what
    only an aggregate gives (``mostly``'s judged rows, table-level statistics); most
    tables need none.
    """

    position: str
    columns: tuple[str, ...] | None  # the columns DuckDB must read (None: all)
    row_checks: tuple[int, ...]  # the row-level expectations, in flag column order
    flagged_sql: str | None
    flagged_params: tuple[Any, ...]
    totals_sql: str | None  # no parameters: judged rows and statistics bind no values
    judged: dict[int, int]  # check -> its judged count's slot in the totals row
    aggregates: dict[int, tuple[int, int]]  # check -> (first slot, number of slots)
    quarantine: tuple[int, ...]  # checks of severity quarantine, in declaration order

    @property
    def needs_engine(self) -> bool:
        return self.flagged_sql is not None or self.totals_sql is not None


def _flag(i: int) -> str:
    return f'"_hr_m{i}"'


def _read_columns(arrow_schema: pa.Schema, checks: Sequence[Expectation]) -> tuple[str, ...] | None:
    """The columns the checks read: DuckDB then never binds the others (a decimal256 of 50
    digits, which it cannot read, may sit beside the checked columns)."""
    wanted: set[str] = set()
    for check in checks:
        used = check.used_columns()
        if used is None:
            return None
        wanted.update(name.lower() for name in used)  # DuckDB's names ignore case
    return tuple(n for n in arrow_schema.names if n.lower() in wanted)


def _compile(checks: Sequence[Expectation], schema: pa.Schema, key_tables: dict[str, str]) -> _Plan:
    """Compile the expectations; a definition error is raised as is (the caller locates it)."""
    position = _position_column(schema)
    compiler = CheckCompiler(DUCKDB, schema, key_tables, DUCKDB.quote(_INPUT))
    flags: list[str] = []
    flag_params: list[Any] = []
    row_checks: list[int] = []
    totals: list[str] = []
    judged: dict[int, int] = {}
    aggregates: dict[int, tuple[int, int]] = {}
    quarantine: list[int] = []
    for i, check in enumerate(checks):
        if isinstance(check, RowExpectation):
            predicate, values = compiler.failing(check)
            # A null predicate (``x IN (…)`` over a list holding null) is a passing row.
            flags.append(f"COALESCE({predicate}, FALSE) AS {_flag(i)}")
            flag_params.extend(values)
            row_checks.append(i)
            judged_sql = compiler.judged(check) if check.mostly is not None else None
            if judged_sql is not None:
                judged[i] = len(totals)
                totals.append(f"COUNT(*) FILTER (WHERE {judged_sql})")
            if check.severity is Severity.QUARANTINE:
                quarantine.append(i)
        elif isinstance(check, TableExpectation):
            parts = compiler.aggregates(check)
            aggregates[i] = (len(totals), len(parts))
            totals.extend(parts)
    source = compiler.source(DUCKDB.quote(_INPUT))
    flagged_sql = None
    if flags:
        pos = DUCKDB.quote(position)
        anyone = " OR ".join(_flag(i) for i in row_checks)
        flagged_sql = (
            f"SELECT * FROM (SELECT {BASE}.{pos}, {', '.join(flags)} FROM {source}) AS _hr_f "
            f"WHERE {anyone}"
        )
    totals_sql = f"SELECT {', '.join(totals)} FROM {source}" if totals else None
    return _Plan(
        position=position,
        columns=_read_columns(schema, checks),
        row_checks=tuple(row_checks),
        flagged_sql=flagged_sql,
        flagged_params=tuple(flag_params),
        totals_sql=totals_sql,
        judged=judged,
        aggregates=aggregates,
        quarantine=tuple(quarantine),
    )


_PLANS: dict[tuple[tuple[str, ...], pa.Schema], _Plan] = {}
_PLANS_KEPT = 256  # a pipeline checks a few schemas, batch after batch


def _plan(checks: Sequence[Expectation], schema: pa.Schema, key_tables: dict[str, str]) -> _Plan:
    """The compiled plan, cached per (expectations, schema): a stream checks the same schema
    batch after batch.

    The key is each expectation's repr, not the expectation: equal is not the same here
    (``1 == 1.0 == True``, and an aware datetime equals its instant in any zone, but each
    binds its own value). A ``relationships`` holding rows is compiled every time.
    """
    if any(isinstance(c, Relationships) and not isinstance(c.to_table, str) for c in checks):
        return _compile(checks, schema, key_tables)
    key = (tuple(repr(c) for c in checks), schema)
    plan = _PLANS.get(key)
    if plan is None:
        plan = _compile(checks, schema, key_tables)
        if len(_PLANS) >= _PLANS_KEPT:
            _PLANS.clear()  # dict operations are atomic: other threads see old or new
        _PLANS[key] = plan
    return plan


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


#: Up to this many rows the flagged rows come back as Python tuples and are read in Python:
#: cheaper than DuckDB's Arrow result (~1 ms of binding) and Arrow compute calls for the
#: few rows a small table can flag.
_FETCH_ROWS_MAX = 10_000


@dataclass
class _Flags:
    """What the flagged rows say: per row-level expectation its failing count and first
    failing positions; the rows to quarantine (ascending) and which expectations each fails."""

    failed: dict[int, int]
    first: dict[int, list[int]]
    set_aside: pa.Array  # int64 positions, ascending
    which: pa.Array  # per set-aside row, its index in ``combos``
    combos: list[tuple[int, ...]]  # indices into the plan's ``quarantine``


def _flags_from_rows(rows: list[tuple[Any, ...]], plan: _Plan) -> _Flags:
    """The flags of a few rows ``(position, flag, …)``, read in Python."""
    rows.sort()  # by position: DuckDB may return rows out of order (joins)
    failed: dict[int, int] = {}
    first: dict[int, list[int]] = {}
    for k, i in enumerate(plan.row_checks, start=1):
        hits = [row[0] for row in rows if row[k]]
        failed[i] = len(hits)
        first[i] = hits[:SAMPLE_ROWS]
    at = [plan.row_checks.index(i) + 1 for i in plan.quarantine]
    combos: dict[tuple[int, ...], int] = {}
    set_aside: list[int] = []
    which: list[int] = []
    for row in rows:
        combo = tuple(q for q, k in enumerate(at) if row[k])
        if combo:
            set_aside.append(row[0])
            which.append(combos.setdefault(combo, len(combos)))
    return _Flags(
        failed, first, pa.array(set_aside, pa.int64()), pa.array(which, pa.int32()), list(combos)
    )


def _flags_from_arrow(table: pa.Table, plan: _Plan) -> _Flags:
    """The flags of many rows (position, then one boolean column per row-level expectation)."""
    if table.num_rows > 1:
        table = table.take(pc.sort_indices(table.column(0)))  # DuckDB may reorder rows
    positions = table.column(0)
    failed: dict[int, int] = {}
    first: dict[int, list[int]] = {}
    for k, i in enumerate(plan.row_checks, start=1):
        failed[i] = pc.sum(table.column(k)).as_py() or 0
        at = pc.indices_nonzero(table.column(k))[:SAMPLE_ROWS]
        first[i] = positions.take(at).to_pylist()
    none = _Flags(failed, first, pa.array([], pa.int64()), pa.array([], pa.int32()), [])
    if not plan.quarantine:
        return none
    flags = [table.column(plan.row_checks.index(i) + 1) for i in plan.quarantine]
    anyone = flags[0]
    for column in flags[1:]:
        anyone = pc.or_(anyone, column)
    if not pc.any(anyone).as_py():
        return none
    # Each row's quarantine expectations as bits of int64 words: bit b of word K is
    # quarantine[K * 62 + b]. Few distinct words: each is labelled once, then looked up.
    words: list[pa.ChunkedArray] = []
    for k in range(0, len(flags), _FLAG_BITS):
        chunk = [pc.cast(c.filter(anyone), pa.int64()) for c in flags[k : k + _FLAG_BITS]]
        bits = chunk[0]
        for b, column in enumerate(chunk[1:], start=1):
            bits = pc.bit_wise_or(bits, pc.shift_left(column, b))
        words.append(bits)
    distinct: list[tuple[int, ...]]
    if len(words) == 1:
        values = pc.unique(words[0])
        which = pc.index_in(words[0], value_set=values)
        distinct = [(v,) for v in values.to_pylist()]
    else:  # more than 62 quarantine expectations on one table
        listed = list(zip(*(w.to_pylist() for w in words), strict=True))
        distinct = list(dict.fromkeys(listed))
        index = {combo: n for n, combo in enumerate(distinct)}
        which = pa.array([index[c] for c in listed], pa.int32())
    combos = [
        tuple(
            k * _FLAG_BITS + b
            for k, bits in enumerate(word)
            for b in range(_FLAG_BITS)
            if bits >> b & 1
        )
        for word in distinct
    ]
    set_aside = positions.filter(anyone).combine_chunks()
    return _Flags(failed, first, set_aside, pc.cast(which, pa.int32()), combos)


def _flagged(con: duckdb.DuckDBPyConnection, plan: _Plan, n_rows: int) -> _Flags:
    """Run the flagged rows' query and read it (as tuples for a small table, else Arrow)."""
    assert plan.flagged_sql is not None
    params = list(plan.flagged_params)
    if n_rows > _FETCH_ROWS_MAX:
        return _flags_from_arrow(con.sql(plan.flagged_sql, params=params).to_arrow_table(), plan)
    return _flags_from_rows(con.execute(plan.flagged_sql, params).fetchall(), plan)


def _run(
    arrow: pa.Table, checks: Sequence[Expectation], where: dict[str, str | None]
) -> tuple[_Flags | None, tuple[Any, ...], _Plan]:
    """What the flagged rows say, and the totals row of the expectations."""
    key_tables = {
        c.name: f"_hr_keys{i}" for i, c in enumerate(checks) if isinstance(c, Relationships)
    }
    try:
        plan = _plan(checks, arrow.schema, key_tables)
    except ExpectationDefinitionError as exc:
        raise exc.located(**where) from None  # the same error, located: nothing is lost
    if not plan.needs_engine:  # only row counts and schemas: nothing to compute
        return None, (), plan
    read = arrow if plan.columns is None else arrow.select(list(plan.columns))
    views = {_INPUT: read.append_column(plan.position, _positions(arrow.num_rows))}
    for check in checks:
        if isinstance(check, Relationships):
            views[key_tables[check.name]] = pa.table({KEY_COLUMN: check.keys()})
    flagged: _Flags | None = None
    totals: tuple[Any, ...] = ()
    # The views go when the cursor closes (unregistering each first costs ~0.15 ms a call).
    with memory_cursor(arrow.num_rows) as con:
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
        try:
            if plan.flagged_sql is not None:
                flagged = _flagged(con, plan, arrow.num_rows)
            if plan.totals_sql is not None:
                # fetchall: an aggregate without GROUP BY has one row, and the result ends
                (totals,) = con.execute(plan.totals_sql).fetchall()
        except duckdb.Error as exc:
            compiler = CheckCompiler(DUCKDB, arrow.schema, key_tables, DUCKDB.quote(_INPUT))
            source = compiler.source(DUCKDB.quote(_INPUT))
            error = _diagnose(con, checks, compiler, source, arrow.column_names, exc, where)
            raise error from exc
    return flagged, totals, plan


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
    flagged: _Flags | None = None
    totals: tuple[Any, ...] = ()
    plan: _Plan | None = None
    if checks:
        flagged, totals, plan = _run(arrow, checks, where)
    samples = sample_rows(arrow, flagged.first) if flagged is not None else {}

    results: list[ExpectationResult] = []
    for i, check in enumerate(checks):
        if isinstance(check, RowExpectation):
            assert plan is not None
            failed = flagged.failed.get(i, 0) if flagged is not None else 0
            judged = int(totals[plan.judged[i]] or 0) if i in plan.judged else n_rows
            results.append(row_result(check, n_rows, failed, judged, samples.get(i, [])))
        else:
            assert isinstance(check, TableExpectation) and plan is not None
            values: list[Any] = []
            if i in plan.aggregates:
                start, width = plan.aggregates[i]
                values = list(totals[start : start + width])
            results.append(table_result(check, values, n_rows, schema, where))

    quarantine = [] if plan is None else [checks[i] for i in plan.quarantine]
    passed, quarantined = _split(
        arrow, flagged, [c for c in quarantine if isinstance(c, RowExpectation)]
    )
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


def _mask_at(positions: pa.Array, n_rows: int) -> pa.Array:
    """True at ``positions`` (distinct), false elsewhere."""
    # scatter (pyarrow 21+): ~3 ms per million rows, a fifth of is_in over every position
    trues = pa.nulls(len(positions), pa.bool_()).fill_null(True)
    return pc.scatter(trues, positions, max_index=n_rows - 1).fill_null(False)


def _split(
    arrow: pa.Table, flagged: _Flags | None, quarantine: Sequence[RowExpectation]
) -> tuple[pa.Table, pa.Table | None]:
    """Rows that go on, and rows set aside once each with all their reasons (in row order).

    Args:
        quarantine: the expectations of severity quarantine, in declaration order.
    """
    if flagged is None or len(flagged.set_aside) == 0:
        return arrow, None
    names: list[str] = []
    reasons: list[str] = []
    for combo in flagged.combos:
        failed = [quarantine[q] for q in combo]
        names.append(_SEPARATOR.join(c.name for c in failed))
        reasons.append(_SEPARATOR.join(c.row_reason() for c in failed))
    mask = _mask_at(flagged.set_aside, arrow.num_rows)
    quarantined = (
        arrow.filter(mask)  # in row order, as ``set_aside`` (take lacks some types)
        .append_column(EXPECTATION_COLUMN, pa.array(names, pa.string()).take(flagged.which))
        .append_column(REASON_COLUMN, pa.array(reasons, pa.string()).take(flagged.which))
    )
    return arrow.filter(pc.invert(mask)), quarantined
