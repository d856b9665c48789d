"""Aggregates, group-bys and percentiles, each compiled to one quoted, bound query."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import duckdb

from headrace.analytics.query_result import Result
from headrace.analytics.sql_quoting import quote_ident, type_kind
from headrace.errors import AnalyticsError, did_you_mean

if TYPE_CHECKING:
    from headrace.analytics.analyzer import Analyzer, TableRef

# Metric name -> (SQL template over the quoted column {c}, kinds of column it applies to).
_ALL = ("numeric", "temporal", "boolean", "string", "other")
_ORDERED = ("numeric", "temporal", "boolean", "string")
_METRICS: dict[str, tuple[str, tuple[str, ...]]] = {
    "count": ("count({c})", _ALL),
    "nulls": ("count(*) - count({c})", _ALL),
    "distinct": ("count(DISTINCT {c})", _ALL),
    "min": ("min({c})", _ORDERED),
    "max": ("max({c})", _ORDERED),
    "sum": ("sum({c})", ("numeric",)),
    "avg": ("avg({c})", ("numeric",)),
    "mean": ("avg({c})", ("numeric",)),
    "median": ("median({c})", ("numeric", "temporal")),
    "stddev": ("stddev_samp({c})", ("numeric",)),
    "var": ("var_samp({c})", ("numeric",)),
}
DEFAULT_AGGREGATES = ("count", "nulls", "distinct", "min", "max", "mean", "median", "stddev", "sum")
_PERCENTILE = re.compile(r"^p(\d{1,2}(?:\.\d+)?|100)$")


@dataclass
class Summary:
    """What :meth:`Analyzer.aggregate` returns.

    Args:
        table: the table summarised.
        rows: number of rows.
        columns: column name to ``{metric: value}``.
    """

    table: str
    rows: int
    columns: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __getitem__(self, column: str) -> dict[str, Any]:
        try:
            return self.columns[column]
        except KeyError:
            raise AnalyticsError(
                "not in the summary." + did_you_mean(column, self.columns),
                table=self.table,
                column=column,
            ) from None

    def to_dict(self) -> dict[str, Any]:
        """A plain dict: ``{"table", "rows", "columns"}``."""
        return {"table": self.table, "rows": self.rows, "columns": self.columns}


def _check_metric(name: str) -> None:
    if name not in _METRICS and not _PERCENTILE.match(name):
        known = [*_METRICS, "p50", "p95", "p99"]
        raise AnalyticsError(
            f"Unknown metric {name!r}."
            + did_you_mean(name, known)
            + f" Known: {', '.join(known)}, or pNN for a percentile."
        )


def _metric_sql(metric: str, column_sql: str, kind: str) -> str:
    m = _PERCENTILE.match(metric)
    if kind == "numeric" and (m or metric == "median"):
        # DuckDB keeps a DECIMAL's scale in quantiles, which rounds the interpolated
        # value (median of 749.2 and 749.3 would be 749.2); DOUBLE keeps it.
        column_sql = f"CAST({column_sql} AS DOUBLE)"
    if m:
        # The fraction comes from a validated number, so it is a literal, not user text.
        return f"quantile_cont({column_sql}, {float(m.group(1)) / 100!r})"
    return _METRICS[metric][0].format(c=column_sql)


def _fraction(metric: str) -> float | None:
    """The quantile a metric asks for (``median`` is 0.5, ``p95`` 0.95), or ``None``."""
    if metric == "median":
        return 0.5
    m = _PERCENTILE.match(metric)
    return float(m.group(1)) / 100 if m else None


def _applies(metric: str, kind: str) -> bool:
    if _PERCENTILE.match(metric):
        return kind in ("numeric", "temporal")
    return kind in _METRICS[metric][1]


def _run(analyzer: Analyzer, sql: str, params: list[Any] | None, what: str) -> Any:
    try:
        return analyzer.connection.sql(sql, params=params)
    except duckdb.Error as exc:
        raise AnalyticsError(f"{what} failed: {exc}") from exc


def aggregate(
    analyzer: Analyzer,
    table: TableRef,
    columns: Sequence[str] | None,
    metrics: Sequence[str] | None,
) -> Summary:
    """Compute ``metrics`` of ``columns`` in one pass; see :meth:`Analyzer.aggregate`."""
    rel = analyzer.resolve(table)
    types = (
        analyzer.check_columns(table, list(columns))
        if columns is not None
        else analyzer.columns(table)
    )
    wanted = list(metrics) if metrics is not None else list(DEFAULT_AGGREGATES)
    for metric in wanted:
        _check_metric(metric)
    exprs = ["count(*)"]
    slots: list[tuple[str, str]] = []
    for column, ctype in types.items():
        kind = type_kind(ctype)
        for metric in wanted:
            if _applies(metric, kind):
                exprs.append(_metric_sql(metric, quote_ident(column), kind))
                slots.append((column, metric))
    # Aliases are generated (a0, a1...) so no user text is needed as an alias.
    select = ", ".join(f"{e} AS a{i}" for i, e in enumerate(exprs))
    row = _run(
        analyzer, f"SELECT {select} FROM {rel.sql}", None, f"Aggregating {rel.display!r}"
    ).fetchall()[0]
    summary = Summary(table=rel.display, rows=int(row[0]), columns={c: {} for c in types})
    for (column, metric), value in zip(slots, row[1:], strict=True):
        summary.columns[column][metric] = value
    return summary


def _parse_group_metrics(
    metrics: Sequence[str] | Mapping[str, Sequence[str]], on: Sequence[str]
) -> list[tuple[str, str | None]]:
    """(metric, column or None for count(*)) pairs, in the order given."""
    pairs: list[tuple[str, str | None]] = []
    if isinstance(metrics, Mapping):
        for column, names in metrics.items():
            if isinstance(names, str):
                names = [names]
            for name in names:
                _check_metric(name)
                pairs.append((name, None if column == "*" else column))
        return pairs
    if isinstance(metrics, str):
        metrics = [metrics]
    for name in metrics:
        _check_metric(name)
        if name == "count":
            pairs.append(("count", None))
            continue
        if not on:
            raise AnalyticsError(
                f"Metric {name!r} needs a value column: pass on='amount' or metrics={{'amount': [{name!r}]}}."
            )
        pairs.extend((name, column) for column in on)
    return pairs


def group_by(
    analyzer: Analyzer,
    table: TableRef,
    by: str | Sequence[str],
    metrics: Sequence[str] | Mapping[str, Sequence[str]],
    *,
    on: str | Sequence[str] | None,
    order_by: str | None,
    descending: bool | None,
    limit: int | None,
) -> Result:
    """Group and compute metrics; see :meth:`Analyzer.group_by`."""
    rel = analyzer.resolve(table)
    keys = [by] if isinstance(by, str) else list(by)
    values = [on] if isinstance(on, str) else list(on or [])
    pairs = _parse_group_metrics(metrics, values)
    if not keys:
        raise AnalyticsError("group_by needs at least one grouping column.", table=rel.display)
    if not pairs:
        raise AnalyticsError(
            "group_by needs at least one metric, such as 'count'.", table=rel.display
        )
    types = analyzer.check_columns(table, [*keys, *[c for _, c in pairs if c is not None]])
    # Aggregates get generated aliases in an inner query; a prefix no key starts with.
    prefix = "__hr_"
    while any(k.startswith(prefix) for k in keys):
        prefix += "_"
    inner = [quote_ident(k) for k in keys]
    outer: list[str | tuple[str, float, str]] = [quote_ident(k) for k in keys]
    quantiles: dict[str, list[float]] = {}  # column -> fractions, computed in one call
    outputs = list(keys)
    metric_outputs: list[str] = []
    for metric, column in pairs:
        if column is None:
            if metric != "count":
                raise AnalyticsError(
                    f"Metric {metric!r} needs a column; only 'count' works on '*'."
                )
            expr, out = "count(*)", "count"
        else:
            kind = type_kind(types[column])
            if not _applies(metric, kind):
                raise AnalyticsError(
                    f"metric {metric!r} does not apply to a column of type {types[column]}; "
                    "use count, distinct, min or max.",
                    table=rel.display,
                    column=column,
                )
            expr, out = _metric_sql(metric, quote_ident(column), kind), f"{metric}_{column}"
        if out in outputs:
            raise AnalyticsError(
                f"group_by would return two columns named {out!r}; "
                "rename the grouping column or drop the repeated metric.",
                table=rel.display,
            )
        fraction = _fraction(metric)
        if column is not None and fraction is not None:
            # All quantiles of a column share one state (one copy of its values).
            quantiles.setdefault(column, []).append(fraction)
            outer.append((column, fraction, out))
        else:
            alias = f"{prefix}m{len(inner)}"
            inner.append(f"{expr} AS {quote_ident(alias)}")
            outer.append(f"{quote_ident(alias)} AS {quote_ident(out)}")
        outputs.append(out)
        metric_outputs.append(out)
    q_alias: dict[str, str] = {}
    for n, (column, fractions) in enumerate(quantiles.items()):
        q_alias[column] = quote_ident(f"{prefix}q{n}")
        target = quote_ident(column)
        if type_kind(types[column]) == "numeric":
            target = f"CAST({target} AS DOUBLE)"  # see _metric_sql: keeps decimals' precision
        listed = ", ".join(repr(f) for f in fractions)
        inner.append(f"quantile_cont({target}, [{listed}]) AS {q_alias[column]}")
    select = [
        item
        if isinstance(item, str)
        else f"{q_alias[item[0]]}[{quantiles[item[0]].index(item[1]) + 1}] AS {quote_ident(item[2])}"
        for item in outer
    ]
    if order_by is None:
        order_by = "count" if "count" in metric_outputs else metric_outputs[0]
    elif order_by not in outputs:
        raise AnalyticsError(
            f"cannot order group_by by {order_by!r}: not an output column."
            + did_you_mean(order_by, outputs)
            + f" Outputs: {', '.join(outputs)}.",
            table=rel.display,
        )
    if descending is None:
        descending = order_by in metric_outputs
    # Ties break on the group keys so the order is the same on every run.
    order = [f"{quote_ident(order_by)} {'DESC' if descending else 'ASC'} NULLS LAST"]
    order += [f"{quote_ident(k)} ASC NULLS LAST" for k in keys if k != order_by]
    group = ", ".join(quote_ident(k) for k in keys)
    sql = (
        f"SELECT {', '.join(select)} FROM "
        f"(SELECT {', '.join(inner)} FROM {rel.sql} GROUP BY {group}) "
        f"ORDER BY {', '.join(order)}"
    )
    params: list[Any] | None = None
    if limit is not None:
        if limit < 0:
            raise AnalyticsError(f"limit must be 0 or more, got {limit}.")
        sql += " LIMIT ?"
        params = [int(limit)]
    arrow = _run(
        analyzer, sql, params, f"Grouping {rel.display!r} by {', '.join(keys)}"
    ).to_arrow_table()
    return Result(arrow)


def percentiles(
    analyzer: Analyzer, table: TableRef, column: str, points: Sequence[float], *, approximate: bool
) -> dict[str, Any]:
    """Percentiles of one column; see :meth:`Analyzer.percentiles`."""
    rel = analyzer.resolve(table)
    ctype = analyzer.check_columns(table, [column])[column]
    if type_kind(ctype) not in ("numeric", "temporal"):
        raise AnalyticsError(
            f"percentiles need a numeric or date/time column; this one is {ctype}.",
            table=rel.display,
            column=column,
        )
    points = list(points)
    if not points:
        raise AnalyticsError("percentiles needs at least one value between 0 and 100.")
    for p in points:
        if not 0 <= p <= 100:
            raise AnalyticsError(
                f"percentile {p!r} is outside 0..100.", table=rel.display, column=column
            )
    fractions = [float(p) / 100 for p in points]
    func = "approx_quantile" if approximate else "quantile_cont"
    # DECIMAL and HUGEINT go through DOUBLE: DuckDB's quantiles interpolate in floating point.
    col = quote_ident(column)
    if type_kind(ctype) == "numeric" and not approximate:
        col = f"CAST({col} AS DOUBLE)"
    list_type = "FLOAT[]" if approximate else "DOUBLE[]"
    sql = f"SELECT {func}({col}, ?::{list_type}) FROM {rel.sql}"
    values = _run(
        analyzer, sql, [fractions], f"Percentiles of {column!r} in {rel.display!r}"
    ).fetchall()[0][0]
    if values is None:
        values = [None] * len(points)
    return {f"p{p:g}": v for p, v in zip(points, values, strict=True)}
