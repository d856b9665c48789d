"""aggregate, group_by and percentiles against values worked out by hand from the sample rows."""

from __future__ import annotations

import statistics

import pytest

from headrace.analytics import Analyzer
from headrace.errors import AnalyticsError

from .conftest import BIG, HOSTILE_COLUMN, ROWS

AMOUNTS = [
    float(r["amount"]) for r in ROWS if isinstance(r["amount"], float)
]  # 10.5, 2.25, 100.0, 7.25, 0.0


def test_aggregate_all_metrics(analyzer: Analyzer, sales: str) -> None:
    summary = analyzer.aggregate(sales)
    assert summary.rows == 6
    amount = summary["amount"]
    assert amount["count"] == 5 and amount["nulls"] == 1 and amount["distinct"] == 5
    assert amount["min"] == 0.0 and amount["max"] == 100.0
    assert amount["sum"] == pytest.approx(sum(AMOUNTS))
    assert amount["mean"] == pytest.approx(statistics.mean(AMOUNTS))
    assert amount["median"] == pytest.approx(statistics.median(AMOUNTS))
    assert amount["stddev"] == pytest.approx(statistics.stdev(AMOUNTS))
    # Text gets the metrics that apply to text, not sum or mean.
    assert summary["name"] == {
        "count": 5,
        "nulls": 1,
        "distinct": 5,
        "min": "O'Brien",
        "max": "😀 emoji",
    }
    assert summary[HOSTILE_COLUMN]["distinct"] == 3


def test_aggregate_sums_past_bigint_without_overflow(analyzer: Analyzer, sales: str) -> None:
    qty = analyzer.aggregate(sales, ["qty"], ["sum", "max"])["qty"]
    assert qty == {"sum": BIG + 1 + 3 + 2 + 5, "max": BIG}


def test_aggregate_rejects_unknown_metric_and_column(analyzer: Analyzer, sales: str) -> None:
    with pytest.raises(AnalyticsError, match="Did you mean 'median'"):
        analyzer.aggregate(sales, ["amount"], ["medain"])
    with pytest.raises(AnalyticsError, match="Did you mean 'amount'"):
        analyzer.aggregate(sales, ["amout"])
    with pytest.raises(AnalyticsError, match="Did you mean 'amount'"):
        analyzer.aggregate(sales, ["amount"])["amout"]


def test_group_by_brief_usage_count_sum_avg(analyzer: Analyzer, sales: str) -> None:
    result = analyzer.group_by(sales, "category", ["count", "sum", "avg"], on="amount")
    assert result.columns == ["category", "count", "sum_amount", "avg_amount"]
    rows = result.rows()
    # Largest count first; ties broken by the group key, nulls last.
    assert [r[0] for r in rows] == ["toys", "food", "tools", None]
    toys = rows[0]
    assert toys[1] == 3 and toys[2] == pytest.approx(17.75) and toys[3] == pytest.approx(17.75 / 2)


def test_group_by_any_metric_on_any_column(analyzer: Analyzer, sales: str) -> None:
    result = analyzer.group_by(
        sales,
        ["category"],
        {"qty": ["max", "distinct"], "amount": ["p50", "min"], "name": ["count"]},
    )
    assert result.columns == [
        "category",
        "max_qty",
        "distinct_qty",
        "p50_amount",
        "min_amount",
        "count_name",
    ]
    by_cat = {r["category"]: r for r in result.dicts()}
    assert by_cat["tools"]["max_qty"] == BIG
    assert by_cat["toys"]["p50_amount"] == pytest.approx(statistics.median([10.5, 7.25]))
    # No count metric: the first metric orders the rows, largest first.
    assert result.rows()[0][0] == "tools"


def test_group_by_order_limit_and_hostile_group_column(analyzer: Analyzer, sales: str) -> None:
    result = analyzer.group_by(sales, HOSTILE_COLUMN, ["count"], order_by=HOSTILE_COLUMN, limit=2)
    assert result.rows() == [("", 1), ("--", 1)]
    asc = analyzer.group_by(sales, "category", ["count"], order_by="count", descending=False)
    assert asc.rows()[0][1] == 1


def test_group_by_errors(analyzer: Analyzer, sales: str) -> None:
    with pytest.raises(AnalyticsError, match="needs a value column"):
        analyzer.group_by(sales, "category", ["sum"])
    with pytest.raises(
        AnalyticsError, match="column 'name': metric 'sum' does not apply to a column of type"
    ) as info:
        analyzer.group_by(sales, "category", ["sum"], on="name")
    assert (info.value.table, info.value.column) == (sales, "name")
    with pytest.raises(AnalyticsError, match="Did you mean 'sum_amount'"):
        analyzer.group_by(sales, "category", ["sum"], on="amount", order_by="sum_amout")
    with pytest.raises(AnalyticsError, match="Unknown metric 'average'"):
        analyzer.group_by(sales, "category", ["average"], on="amount")


def test_percentiles_exact_and_approximate(analyzer: Analyzer, sales: str) -> None:
    got = analyzer.percentiles(sales, "amount", [0, 25, 50, 99.5, 100])
    assert list(got) == ["p0", "p25", "p50", "p99.5", "p100"]
    assert got["p0"] == 0.0 and got["p100"] == 100.0
    assert got["p50"] == pytest.approx(7.25)
    assert got["p25"] == pytest.approx(statistics.quantiles(AMOUNTS, n=4, method="inclusive")[0])
    approx = analyzer.percentiles(sales, "amount", [50], approximate=True)
    assert approx["p50"] == pytest.approx(7.25, rel=0.2)


def test_percentiles_on_large_data_match_numpy(analyzer: Analyzer) -> None:
    import numpy as np

    analyzer.query(
        "CREATE TABLE big AS SELECT (hash(i) % 100000)::DOUBLE / 7 AS v FROM range(200000) t(i)"
    )
    values = analyzer.query("SELECT v FROM big").arrow().column("v").to_numpy()
    got = analyzer.percentiles("big", "v", [1, 50, 90, 99])
    for p, v in got.items():
        assert v == pytest.approx(np.percentile(values, float(p[1:])), rel=1e-9)


def test_percentiles_errors_and_empty_table(analyzer: Analyzer, sales: str) -> None:
    with pytest.raises(AnalyticsError, match="outside 0..100"):
        analyzer.percentiles(sales, "amount", [101])
    with pytest.raises(AnalyticsError, match="numeric or date/time"):
        analyzer.percentiles(sales, "name", [50])
    analyzer.query("CREATE TABLE empty (v DOUBLE)")
    assert analyzer.percentiles("empty", "v", [50, 90]) == {"p50": None, "p90": None}
    assert analyzer.aggregate("empty")["v"]["sum"] is None


def test_decimal_medians_keep_their_precision(analyzer: Analyzer) -> None:
    analyzer.query(
        "CREATE TABLE d AS SELECT * FROM (VALUES (1.2::DECIMAL(4,1)), (1.3::DECIMAL(4,1))) t(v)"
    )
    assert analyzer.aggregate("d", ["v"], ["median"])["v"]["median"] == pytest.approx(1.25)
    assert analyzer.percentiles("d", "v", [50])["p50"] == pytest.approx(1.25)


def test_group_by_shares_quantiles_and_avoids_alias_clashes(analyzer: Analyzer) -> None:
    analyzer.query(
        'CREATE TABLE t AS SELECT i % 2 AS "__hr_m1", i::DOUBLE AS v, (i * 2)::DECIMAL(9,1) AS d '
        "FROM range(101) r(i)"
    )
    result = analyzer.group_by(
        "t", "__hr_m1", {"v": ["median", "p50", "p95", "count"], "d": ["p25"]}, order_by="__hr_m1"
    )
    assert result.columns == ["__hr_m1", "median_v", "p50_v", "p95_v", "count_v", "p25_d"]
    even = {"v": [float(i) for i in range(0, 101, 2)]}["v"]
    first = result.dicts()[0]
    assert first["__hr_m1"] == 0 and first["count_v"] == 51
    assert first["median_v"] == first["p50_v"] == statistics.median(even)
    assert first["p95_v"] == pytest.approx(95.0)
    assert first["p25_d"] == pytest.approx(50.0)
