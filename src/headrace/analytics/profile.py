"""Column profiles in two streaming passes over a table.

Pass one computes, for every column at once, non-null count, distinct count
(HyperLogLog unless asked to be exact), min, max, mean, standard deviation,
approximate quartiles and candidate frequent values (``approx_top_k``). Pass two
counts the candidates exactly and fills equal-width histograms. Both passes are
aggregates with small, bounded state, so DuckDB streams the data through them:
memory stays well under the size of the data, whatever the row count.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import duckdb

from headrace.analytics.sql import quote_ident, type_kind
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
        quartiles: approximate 25th, 50th and 75th percentiles (numeric, temporal).
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
            f"Column {name!r} is not in the profile of {self.table!r}."
            + did_you_mean(name, [c.name for c in self.columns])
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
    con = analyzer.connection

    # Pass 1: every column's statistics in one scan; aliases are generated.
    exprs = ["count(*)"]
    slots: list[tuple[int, str]] = []
    for i, (name, ctype) in enumerate(types.items()):
        col, kind = quote_ident(name), type_kind(ctype)
        keyed = col if kind != "other" else f"CAST({col} AS VARCHAR)"
        wanted = [("count", f"count({col})")]
        if exact_distinct is not True:
            wanted.append(("distinct", f"approx_count_distinct({keyed})"))
        if kind != "other":
            wanted += [("min", f"min({col})"), ("max", f"max({col})")]
        if kind == "numeric":
            as_double = f"CAST({col} AS DOUBLE)"
            wanted += [("mean", f"avg({as_double})"), ("stddev", f"stddev_samp({as_double})")]
        if kind in ("numeric", "temporal"):
            target = f"CAST({col} AS DOUBLE)" if kind == "numeric" else col
            wanted += [("quartiles", f"approx_quantile({target}, [0.25, 0.5, 0.75])")]
        if top and kind in ("boolean", "string", "numeric", "temporal"):
            # More candidates than shown, counted exactly in pass 2, so the ones
            # shown are the true most frequent unless the data is nearly uniform.
            wanted += [("top", f"approx_top_k({col}, {int(top) * 4})")]
        for stat, expr in wanted:
            exprs.append(expr)
            slots.append((i, stat))
    first = _fetch_one(
        con,
        f"SELECT {', '.join(f'{e} AS a{j}' for j, e in enumerate(exprs))} FROM {rel.sql}",
        [],
        rel.display,
    )
    rows = int(first[0])
    stats: list[dict[str, Any]] = [{} for _ in types]
    for (i, stat), value in zip(slots, first[1:], strict=True):
        stats[i][stat] = value

    # Pass 2: exact counts of the candidate top values, histograms, exact distinct counts.
    exact = exact_distinct if exact_distinct is not None else rows <= EXACT_DISTINCT_ROWS
    exprs, slots = [], []
    params: list[Any] = []
    for i, (name, ctype) in enumerate(types.items()):
        col, kind, s = quote_ident(name), type_kind(ctype), stats[i]
        if exact:
            keyed = col if kind != "other" else f"CAST({col} AS VARCHAR)"
            exprs.append(f"count(DISTINCT {keyed})")
            slots.append((i, "distinct"))
        candidates = [v for v in (s.get("top") or []) if v is not None]
        if candidates:
            # Candidates are bound as a typed list; the type name comes from the catalog.
            exprs.append(f"histogram({col}) FILTER (WHERE list_contains(?::{ctype}[], {col}))")
            params.append(candidates)
            slots.append((i, "top_counts"))
        if kind in ("numeric", "temporal") and s.get("min") is not None:
            lo, hi = _as_number(s["min"], kind), _as_number(s["max"], kind)
            width = (hi - lo) / bins if hi > lo else 0.0
            s["_bins"] = (lo, width, bins if width else 1)
            value = _numeric_expr(col, kind)
            index = (
                f"least(CAST(floor(({value} - ?) / ?) AS INTEGER), {bins - 1})" if width else "0"
            )
            exprs.append(f"histogram({index}) FILTER (WHERE {col} IS NOT NULL)")
            params += [lo, width] if width else []
            slots.append((i, "histogram"))
    if exprs:
        second = _fetch_one(
            con,
            f"SELECT {', '.join(f'{e} AS a{j}' for j, e in enumerate(exprs))} FROM {rel.sql}",
            params,
            rel.display,
        )
        for (i, stat), value in zip(slots, second, strict=True):
            stats[i][stat] = value if stat == "distinct" else value or {}

    columns = []
    for i, (name, ctype) in enumerate(types.items()):
        s, kind = stats[i], type_kind(ctype)
        count = int(s["count"])
        counts: dict[Any, int] = s.get("top_counts", {})
        top_values = sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))[:top]
        if count > top:
            # A value seen once is not "frequent": listing arbitrary unique ones would mislead.
            top_values = [(v, c) for v, c in top_values if c > 1]
        columns.append(
            ColumnProfile(
                name=name, type=ctype, kind=kind, count=count, nulls=rows - count,
                null_share=(rows - count) / rows if rows else 0.0,
                # HyperLogLog may overshoot on small columns; never report more than there are.
                distinct=min(int(s["distinct"]), count), distinct_exact=exact,
                min=s.get("min"), max=s.get("max"), mean=s.get("mean"), stddev=s.get("stddev"),
                quartiles=s.get("quartiles"), top_values=[(k, int(v)) for k, v in top_values],
                histogram=_histogram(s, kind) if "histogram" in s else None,
            )
        )  # fmt: skip
    return Profile(table=rel.display, rows=rows, columns=columns)


def _fetch_one(
    con: duckdb.DuckDBPyConnection, sql: str, params: list[Any], table: str
) -> tuple[Any, ...]:
    try:
        return con.sql(sql, params=params or None).fetchall()[0]
    except duckdb.Error as exc:
        raise AnalyticsError(f"Profiling {table!r} failed: {exc}") from exc


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


def _histogram(stats: dict[str, Any], kind: str) -> Histogram:
    lo, width, nbins = stats["_bins"]
    raw: dict[int, int] = stats["histogram"]
    counts = [int(raw.get(b, 0)) for b in range(nbins)]
    edges_num = [lo + b * width for b in range(nbins + 1)]
    if kind == "temporal":
        stamps = [dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=e) for e in edges_num]
        edges: Sequence[Any] = stamps
        if isinstance(stats["min"], dt.time):
            edges = [s.time() for s in stamps]
        elif not isinstance(stats["min"], dt.datetime):  # DATE columns
            edges = [s.date() for s in stamps]
    else:
        edges = edges_num
    return Histogram(edges=list(edges), counts=counts)
