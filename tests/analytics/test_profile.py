"""Column profiles: statistics, exact top values, histograms, approximate distinct counts."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from headrace.analytics import Analyzer

from .conftest import BIG, HOSTILE_COLUMN


def test_profile_of_the_sample(analyzer: Analyzer, sales: str) -> None:
    profile = analyzer.profile(sales)
    assert profile.rows == 6 and [c.name for c in profile.columns][:3] == [
        "id",
        "category",
        "amount",
    ]
    category = profile["category"]
    assert (
        category.kind == "string"
        and category.nulls == 1
        and category.null_share == pytest.approx(1 / 6)
    )
    assert category.distinct == 3 and category.distinct_exact
    # Five values fit in top=5, so the singletons are listed too, ties by value.
    assert category.top_values == [("toys", 3), ("food", 1), ("tools", 1)]
    # With fewer slots than values, a value seen once is not "frequent".
    assert analyzer.profile(sales, top=2)["category"].top_values == [("toys", 3)]
    amount = profile["amount"]
    assert (amount.min, amount.max, amount.count) == (0.0, 100.0, 5)
    assert amount.mean == pytest.approx(24.0)
    assert amount.histogram is not None and sum(amount.histogram.counts) == 5
    # 20 bins of width 5: 0 and 2.25 | 7.25 | 10.5 | ... | 100 (last bin closed).
    assert amount.histogram.counts[:3] == [2, 1, 1] and amount.histogram.counts[-1] == 1
    assert amount.histogram.edges[0] == 0.0 and amount.histogram.edges[-1] == pytest.approx(100.0)
    assert profile["qty"].max == BIG
    assert profile[HOSTILE_COLUMN].top_values == [("x'y", 3), ("", 1), ("--", 1)]


def test_top_values_are_exact_counts_most_frequent_first(analyzer: Analyzer) -> None:
    # 2000 rows: value k appears k*10 times for k in 1..19, the rest are unique.
    analyzer.query(
        "CREATE TABLE t AS SELECT k AS v FROM range(1, 20) a(k), range(0, 1000) b(j) WHERE j < k * 10 "
        "UNION ALL SELECT 1000 + i FROM range(100) c(i)"
    )
    top = analyzer.profile("t", top=3)["v"].top_values
    assert top == [(19, 190), (18, 180), (17, 170)]


def test_histogram_edges_and_counts_for_dates_and_timestamps(analyzer: Analyzer) -> None:
    analyzer.query(
        "CREATE TABLE t AS SELECT DATE '2024-01-01' + i::INT AS day, "
        "TIMESTAMPTZ '2024-01-01 00:00:00+00' + to_hours(i) AS at FROM range(100) r(i)"
    )
    profile = analyzer.profile("t", bins=10)
    day = profile["day"]
    assert day.kind == "temporal" and day.histogram is not None
    assert day.histogram.counts == [10] * 9 + [10]
    assert day.histogram.edges[0] == dt.date(2024, 1, 1) and day.histogram.edges[-1] == dt.date(
        2024, 4, 9
    )
    at = profile["at"].histogram
    assert (
        at is not None
        and sum(at.counts) == 100
        and at.edges[0] == dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    )


def test_single_value_all_null_and_empty_columns(analyzer: Analyzer) -> None:
    analyzer.query(
        "CREATE TABLE t AS SELECT 5 AS same, NULL::DOUBLE AS nothing, 'ü' AS u FROM range(10)"
    )
    profile = analyzer.profile("t")
    same = profile["same"]
    assert same.histogram is not None and same.histogram.counts == [10] and same.distinct == 1
    nothing = profile["nothing"]
    assert nothing.null_share == 1.0 and nothing.histogram is None and nothing.min is None
    assert profile["u"].top_values == [("ü", 10)]
    analyzer.query("CREATE TABLE e (x INTEGER, s VARCHAR)")
    empty = analyzer.profile("e")
    assert empty.rows == 0 and empty["x"].null_share == 0.0 and empty["x"].histogram is None


def test_approximate_distinct_on_many_rows(analyzer: Analyzer) -> None:
    analyzer.query("CREATE TABLE t AS SELECT i AS id, i % 1000 AS k FROM range(1200000) r(i)")
    profile = analyzer.profile("t")  # past the exact threshold: HyperLogLog
    assert not profile["id"].distinct_exact
    assert profile["id"].distinct == pytest.approx(1_200_000, rel=0.05)
    assert profile["k"].distinct == pytest.approx(1000, rel=0.05)
    exact = analyzer.profile("t", exact_distinct=True, top=0)
    assert exact["id"].distinct == 1_200_000 and exact["id"].distinct_exact


def test_nested_and_blob_columns_are_profiled_without_failing(analyzer: Analyzer) -> None:
    analyzer.query(
        "CREATE TABLE t AS SELECT [i, i] AS pair, {'a': i} AS rec, 'x'::BLOB AS b, "
        "INTERVAL (i) DAY AS span FROM range(5) r(i)"
    )
    profile = analyzer.profile("t")
    assert [c.kind for c in profile.columns] == ["other", "other", "other", "other"]
    assert profile["pair"].distinct == 5 and profile["b"].distinct == 1


def test_profile_to_dict_is_json(analyzer: Analyzer, sales: str) -> None:
    analyzer.query("CREATE TABLE d AS SELECT DATE '2024-01-01' AS day, 1.5::DECIMAL(5,2) AS price")
    text = json.dumps(analyzer.profile("d").to_dict())
    assert '"2024-01-01"' in text and "1.5" in text
    assert json.loads(json.dumps(analyzer.profile(sales).to_dict()))["rows"] == 6


def test_small_integer_ranges_get_one_bin_per_value(analyzer: Analyzer) -> None:
    analyzer.query("CREATE TABLE t AS SELECT 1 + i % 10 AS stars FROM range(1000) r(i)")
    hist = analyzer.profile("t", bins=20)["stars"].histogram
    assert hist is not None and hist.counts == [100] * 10 and hist.edges[0] == 1.0


def test_few_valued_columns_get_exact_distinct_counts_on_large_tables(analyzer: Analyzer) -> None:
    analyzer.query("CREATE TABLE t AS SELECT i AS id, i % 1234 AS k FROM range(1100000) r(i)")
    profile = analyzer.profile("t", top=1)
    assert profile["k"].distinct == 1234 and profile["k"].distinct_exact
    assert not profile["id"].distinct_exact


def test_histogram_bins_are_closed_below_and_the_last_one_above(analyzer: Analyzer) -> None:
    # Values on the edges: 0 | 2.5 | 5 | 7.5 | 10 with 4 bins of width 2.5 over [0, 10].
    analyzer.query(
        "CREATE TABLE t AS SELECT * FROM (VALUES (0.0), (2.5), (2.4999), (5.0), (7.5), (10.0), (NULL)) v(x)"
    )
    hist = analyzer.profile("t", bins=4)["x"].histogram
    assert hist is not None and hist.edges == [0.0, 2.5, 5.0, 7.5, 10.0]
    assert hist.counts == [2, 1, 1, 2]


def test_narrow_integer_ranges_count_every_value_from_the_histogram(analyzer: Analyzer) -> None:
    # Huge numbers in a narrow range: exact keys (no float rounding) and exact distinct.
    analyzer.query(
        f"CREATE TABLE t AS SELECT {BIG} - (i % 3) AS big, (i % 4)::TINYINT AS small "
        "FROM range(1300000) r(i)"
    )
    profile = analyzer.profile("t", top=2)
    small = profile["small"]
    assert small.distinct == 4 and small.distinct_exact
    assert small.top_values == [(0, 325000), (1, 325000)]
    assert small.histogram is not None and small.histogram.counts == [325000] * 4
    big = profile["big"]
    assert big.distinct == 3 and big.distinct_exact
    # Ties list the smaller text first.
    assert big.top_values == [(BIG, 433334), (BIG - 2, 433333)]


def test_parquet_profile_scans_every_column_once(
    analyzer: Analyzer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ranges come from Parquet statistics, one scan computes every statistic and
    histogram, and only the text columns are read again (for their value counts)."""
    import headrace.analytics.profile as profile_module

    path = tmp_path / "t.parquet"
    analyzer.query(
        "COPY (SELECT i AS id, (i * 7919) % 100003 / 10.0 AS amount, "
        "['a', 'b', 'c'][1 + i % 3] AS tag FROM range(50000) r(i)) TO ? (FORMAT parquet)",
        [str(path)],
    )
    analyzer.load_parquet(path, "t", view=True)
    queries: list[str] = []
    real = profile_module._fetch_one

    def recording(con: Any, sql: str, params: list[Any], table: str) -> tuple[Any, ...]:
        queries.append(sql)
        return real(con, sql, params, table)

    monkeypatch.setattr(profile_module, "_fetch_one", recording)
    profile = analyzer.profile("t")
    assert len(queries) == 3
    ranges, main, counts = queries
    assert "histogram" not in ranges and "avg" not in ranges
    # The histograms are bounded (histogram(x, bounds)) and share the main scan.
    assert main.count("?::DOUBLE[])") == 2 and "stddev_samp" in main
    assert '"tag"' in counts and '"id"' not in counts and '"amount"' not in counts
    assert profile["tag"].top_values == [("a", 16667), ("b", 16667), ("c", 16666)]
    assert sum(profile["amount"].histogram.counts) == 50000  # type: ignore[union-attr]
