"""Column profiles in one main streaming aggregate pass over a table, plus small ones.

Pass 0 takes the row count and every column's min and max (free over Parquet: DuckDB
reads them from the file's statistics). Pass 1, one scan of every column, computes
non-null count, distinct count (exact up to a million rows, else HyperLogLog), mean,
standard deviation, quartiles (from a reservoir sample) and equal-width histograms
over the pass-0 ranges. Pass 2 reads only the columns that need it: every value of
columns with few distinct values counted exactly (integer columns with a range
narrower than the bins need none: their histogram has one bin per value); text
columns with many values get candidates from ``approx_top_k``, counted exactly in
pass 3. Every pass is an aggregate with small, bounded state, so DuckDB streams the
data through it: memory stays well under the size of the data, whatever the row count.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import duckdb

from headrace.analytics.sql_quoting import is_integer_type, quote_ident, type_kind
from headrace.errors import AnalyticsError

if TYPE_CHECKING:
    from headrace.analytics.analyzer import Analyzer, TableRef


@dataclass
class Histogram:
    """Equal-width bins: ``counts[i]`` values fall in ``[edges[i], edges[i+1])`` (last bin closed)."""

    edges: list[Any]
    counts: list[int]


@dataclass
class ColumnProfile:
    """The profile of one column.

    Args:
        name: column name.
        type: DuckDB type name.
        kind: ``numeric``, ``temporal``, ``boolean``, ``string`` or ``other``.
        count: non-null values.
        nulls: null values.
        null_share: nulls / rows (0 for an empty table).
        distinct: distinct non-null values.
        distinct_exact: ``False`` when ``distinct`` is a HyperLogLog estimate.
        min, max: smallest and largest value (numeric, temporal, boolean, string).
        mean, stddev: numeric columns only.
        quartiles: 25th, 50th and 75th percentiles (numeric, temporal), from a
            reservoir sample of 8,192 values: exact for smaller columns.
        top_values: the most frequent values with their exact counts, most frequent first.
        histogram: numeric and temporal columns.
    """

    name: str
    type: str
    kind: str
    count: int
    nulls: int
    null_share: float
    distinct: int
    distinct_exact: bool
    min: Any = None
    max: Any = None
    mean: float | None = None
    stddev: float | None = None
    quartiles: list[Any] | None = None
    top_values: list[tuple[Any, int]] = field(default_factory=list)
    histogram: Histogram | None = None


@dataclass
class Profile:
    """Profiles of every column of one table.

    Args:
        table: the table or view profiled.
        rows: number of rows.
        columns: one :class:`ColumnProfile` per column, in table order.
    """

    table: str
    rows: int
    columns: list[ColumnProfile]

    def __getitem__(self, name: str) -> ColumnProfile:
        for column in self.columns:
            if column.name == name:
                return column
        from headrace.errors import did_you_mean

        raise AnalyticsError(
            "not in the profile." + did_you_mean(name, [c.name for c in self.columns]),
            table=self.table,
            column=name,
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (dates, decimals and bytes become strings)."""
        return _jsonable(
            {"table": self.table, "rows": self.rows, "columns": [asdict(c) for c in self.columns]}
        )


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float | int | str | bool) or value is None:
        return value
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def _numeric_expr(col: str, kind: str) -> str:
    """The column as a DOUBLE, for binning: temporal values as epoch microseconds."""
    if kind == "temporal":
        # epoch_us reads DATE, every TIMESTAMP precision (TIMESTAMPTZ as UTC) and TIME.
        return f"CAST(epoch_us({col}) AS DOUBLE)"
    return f"CAST({col} AS DOUBLE)"


# Below this many rows, distinct counts are exact: cheap, and HyperLogLog's few
# percent of error would show on small tables.
EXACT_DISTINCT_ROWS = 1_000_000
# Columns with at most this many distinct values (by the pass-one estimate) get their
# frequent values by an exact count of every value; others by approx_top_k.
FEW_VALUES = 10_000


def profile_table(
    analyzer: Analyzer,
    table: TableRef,
    *,
    top: int = 5,
    bins: int = 20,
    exact_distinct: bool | None = None,
) -> Profile:
    """Profile every column of ``table``; see :meth:`Analyzer.profile`."""
    if top < 0 or bins < 1:
        raise AnalyticsError(f"profile needs top >= 0 and bins >= 1, got top={top}, bins={bins}.")
    rel = analyzer.resolve(table)
    types = analyzer.columns(table)
    kinds = [type_kind(t) for t in types.values()]
    cols = [quote_ident(n) for n in types]
    stats: list[dict[str, Any]] = [{} for _ in types]

    # Pass 0: row count and every column's range: the histograms need it before the
    # main pass. Over Parquet, DuckDB answers it from the file's statistics without a
    # scan (only while the query holds nothing but count(*), min and max).
    ranged = [i for i, kind in enumerate(kinds) if kind != "other"]
    pass0 = ["count(*)"] + [f"{f}({cols[i]})" for i in ranged for f in ("min", "max")]
    row = _run_pass(analyzer, rel.sql, pass0, [], rel.display)
    rows = int(row[0])
    for n, i in enumerate(ranged):
        stats[i]["min"], stats[i]["max"] = row[1 + 2 * n], row[2 + 2 * n]
    exact = exact_distinct if exact_distinct is not None else rows <= EXACT_DISTINCT_ROWS

    # Pass 1: every other statistic and the histograms of every column, in one scan.
    pass1: list[tuple[int, str, str]] = []
    params: list[Any] = []
    for i, (col, kind, s, ctype) in enumerate(zip(cols, kinds, stats, types.values(), strict=True)):
        pass1.append((i, "count", f"count({col})"))
        # An integer column whose range is narrower than the bins gets one bin per
        # value: its histogram counts every value, so no distinct count is needed.
        # (Only where doubles hold every value exactly: the bins are computed in DOUBLE.)
        per_value = (
            is_integer_type(ctype)
            and s.get("min") is not None
            and s["max"] - s["min"] < bins
            and -(2**53) < s["min"] <= s["max"] < 2**53
        )
        if not per_value:
            distinct = "count(DISTINCT {})" if exact else "approx_count_distinct({})"
            pass1.append((i, "distinct", distinct.format(_keyed(col, kind))))
        if kind == "numeric":
            pass1 += [(i, "mean", f"avg({col})"), (i, "stddev", f"stddev_samp({col})")]
        if kind in ("numeric", "temporal"):
            # A reservoir sample: bounded memory and several times faster than t-digest.
            target = col if kind == "numeric" else f"epoch_us({col})"
            pass1.append((i, "quartiles", f"reservoir_quantile({target}, [0.25, 0.5, 0.75])"))
            if s.get("min") is not None:
                # histogram() with boundaries keeps one counter per bin (small, fixed
                # state); the one-argument histogram() would be rewritten by DuckDB into
                # a group-by that buffers the whole scan next to the other aggregates.
                expr = f"histogram({_numeric_expr(col, kind)}, ?::DOUBLE[])"
                pass1.append((i, "histogram", expr))
                params.append(_bin_bounds(s, kind, ctype, bins))
    row = _run_pass(analyzer, rel.sql, [e for _, _, e in pass1], params, rel.display)
    for (i, stat, _), value in zip(pass1, row, strict=True):
        stats[i][stat] = value
    for s in stats:
        if "distinct" not in s and "count" in s:
            # One bin per integer value (see above): the bins are the value counts.
            hist = _histogram(s, "numeric").counts
            s["top_counts"] = {s["min"] + b: n for b, n in enumerate(hist) if n}
            s["distinct"], s["all_counted"] = len(s["top_counts"]), True

    # Pass 2, over the columns that need it only: every value of columns with few
    # distinct values (by the pass-one estimate) counted exactly; text columns with many
    # values get candidates from approx_top_k, counted exactly in pass 3.
    pass2: list[tuple[int, str, str]] = []
    for i, (col, kind, s) in enumerate(zip(cols, kinds, stats, strict=True)):
        if top and kind != "other" and s["count"] and not s.get("all_counted"):
            if s["distinct"] <= FEW_VALUES:
                pass2.append((i, "top_counts", f"histogram({col})"))
                s["all_counted"] = True  # every value counted: the distinct count is exact
            elif kind in ("string", "boolean"):
                pass2.append((i, "top", f"approx_top_k({col}, {int(top) * 4})"))
    if pass2:
        row = _run_pass(analyzer, rel.sql, [e for _, _, e in pass2], [], rel.display)
        for (i, stat, _), value in zip(pass2, row, strict=True):
            stats[i][stat] = value or {}

    # Pass 3, only for text columns with many values: exact counts of the candidates.
    pass3: list[tuple[int, str, str]] = []
    params = []
    for i, (col, s, ctype) in enumerate(zip(cols, stats, types.values(), strict=True)):
        candidates = [v for v in s.get("top") or [] if v is not None]
        if candidates:
            # Bound as a typed list; the type name comes from the catalog, not from users.
            pass3.append(
                (
                    i,
                    "top_counts",
                    f"histogram({col}) FILTER (WHERE list_contains(?::{ctype}[], {col}))",
                )
            )
            params.append(candidates)
    if pass3:
        row = _run_pass(analyzer, rel.sql, [e for _, _, e in pass3], params, rel.display)
        for (i, stat, _), value in zip(pass3, row, strict=True):
            stats[i][stat] = value or {}

    columns = [
        _column(name, ctype, kind, s, rows, top, exact)
        for (name, ctype), kind, s in zip(types.items(), kinds, stats, strict=True)
    ]
    return Profile(table=rel.display, rows=rows, columns=columns)


def _keyed(col: str, kind: str) -> str:
    # Nested and binary values are counted through their text form.
    return col if kind != "other" else f"CAST({col} AS VARCHAR)"


def _column(
    name: str, ctype: str, kind: str, s: dict[str, Any], rows: int, top: int, exact: bool
) -> ColumnProfile:
    count = int(s["count"])
    counts: dict[Any, int] = s.get("top_counts", {})
    top_values = sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))[:top]
    if count > top:
        # A value seen once is not "frequent": listing arbitrary unique ones would mislead.
        top_values = [(v, c) for v, c in top_values if c > 1]
    # HyperLogLog may overshoot on small columns; never report more than there are.
    distinct = min(int(s["distinct"]), count)
    if s.get("all_counted"):
        distinct, exact = len(counts), True
    quartiles = s.get("quartiles")
    if quartiles is not None and kind == "temporal":
        quartiles = [_from_number(q, s["min"]) for q in quartiles]
    return ColumnProfile(
        name=name, type=ctype, kind=kind, count=count, nulls=rows - count,
        null_share=(rows - count) / rows if rows else 0.0,
        distinct=distinct, distinct_exact=exact,
        min=s.get("min"), max=s.get("max"), mean=s.get("mean"), stddev=s.get("stddev"),
        quartiles=quartiles, top_values=[(k, int(v)) for k, v in top_values],
        histogram=_histogram(s, kind) if "histogram" in s else None,
    )  # fmt: skip


def _run_pass(
    analyzer: Analyzer, source: str, exprs: list[str], params: list[Any], table: str
) -> tuple[Any, ...]:
    """One aggregate query over the table; aliases are generated, never user text."""
    select = ", ".join(f"{e} AS a{j}" for j, e in enumerate(exprs))
    return _fetch_one(analyzer.connection, f"SELECT {select} FROM {source}", params, table)


def _fetch_one(
    con: duckdb.DuckDBPyConnection, sql: str, params: list[Any], table: str
) -> tuple[Any, ...]:
    try:
        return con.sql(sql, params=params or None).fetchall()[0]
    except duckdb.Error as exc:
        raise AnalyticsError(f"profiling failed: {exc}", table=table) from exc


def _as_number(value: Any, kind: str) -> float:
    if kind == "temporal":
        if isinstance(value, dt.datetime):
            if value.tzinfo is not None:
                value = value.astimezone(dt.UTC).replace(tzinfo=None)
            return (value - dt.datetime(1970, 1, 1)) / dt.timedelta(microseconds=1)
        if isinstance(value, dt.date):
            return (
                dt.datetime(value.year, value.month, value.day) - dt.datetime(1970, 1, 1)
            ) / dt.timedelta(microseconds=1)
        if isinstance(value, dt.time):
            return (value.hour * 3600 + value.minute * 60 + value.second) * 1e6 + value.microsecond
    return float(value)


def _bin_bounds(s: dict[str, Any], kind: str, ctype: str, bins: int) -> list[float]:
    """Set up equal-width bins over the column's range; returns DuckDB's bin boundaries.

    Stores ``(lo, width, nbins)`` in ``s["_bins"]``. DuckDB's ``histogram(x, bounds)``
    counts ``x <= bound`` per bin (values past the last bound in one more bin), so each
    boundary is the largest double below the next edge: bins are ``[edge, next edge)``,
    and the maximum lands in the last bin, which is closed.
    """
    lo, hi = _as_number(s["min"], kind), _as_number(s["max"], kind)
    nbins = bins
    if is_integer_type(ctype) and hi - lo < bins:
        nbins = int(hi - lo) + 1  # one bin per integer: no empty bins between
    width = (hi - lo) / nbins if hi > lo else 0.0
    if not width:
        nbins = 1
    s["_bins"] = (lo, width, nbins)
    bounds = [math.nextafter(lo + b * width, -math.inf) for b in range(1, nbins)]
    # Strictly increasing, which DuckDB needs; equal ones only on absurdly narrow ranges.
    return sorted(set(bounds)) if bounds else [math.inf]


def _histogram(stats: dict[str, Any], kind: str) -> Histogram:
    lo, width, nbins = stats["_bins"]
    bounds = [math.nextafter(lo + b * width, -math.inf) for b in range(1, nbins)]
    index: dict[float, int] = {}
    for b, bound in enumerate(bounds):
        index.setdefault(bound, b)
    counts = [0] * nbins
    for bound, count in (stats["histogram"] or {}).items():
        # The bin past the last boundary (its key is +inf) is the last bin.
        counts[index.get(bound, nbins - 1)] += int(count)
    edges_num = [lo + b * width for b in range(nbins + 1)]
    edges: Sequence[Any] = edges_num
    if kind == "temporal":
        edges = [_from_number(e, stats["min"]) for e in edges_num]
    return Histogram(edges=list(edges), counts=counts)


def _from_number(micros: float, like: Any) -> Any:
    """Epoch microseconds back to the type of ``like`` (date, time, naive or aware datetime)."""
    stamp = dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=micros)
    if isinstance(like, dt.datetime):
        return stamp.replace(tzinfo=dt.UTC).astimezone(like.tzinfo) if like.tzinfo else stamp
    if isinstance(like, dt.date):
        return stamp.date()
    if isinstance(like, dt.time):
        return stamp.time()
    return stamp
