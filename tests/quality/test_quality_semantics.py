"""Expectation semantics that must hold in memory (apply_checks: DuckDB over Arrow) and in DuckDB (check_table)
alike, as in Great Expectations: dictionary columns, booleans, exact sums, reversed
ranges, ``mostly`` and regex classes on non-ASCII text (issue 21)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from headrace.quality import (
    ExpectationDefinitionError,
    accepted_values,
    apply_checks,
    between,
    check_table,
    matches_regex,
    not_null,
    row_count_between,
    stat_between,
    unique,
)
from headrace.quality.check_results import ExpectationResult

ENGINES = ("memory", "duckdb")
ALL_ENGINES = (*ENGINES, "postgresql")


@pytest.fixture(scope="module")
def duck() -> Iterator[duckdb.DuckDBPyConnection]:
    con = duckdb.connect()
    yield con
    con.close()


@pytest.fixture(scope="module")
def pg_semantics_schema(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """(url, schema) of a schema of its own on PostgreSQL, dropped afterwards."""
    import psycopg

    url = request.getfixturevalue("pg_url")
    schema = f"semantics_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield url, schema
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def run(
    engine: str,
    table: pa.Table,
    checks: list[Any],
    duck: duckdb.DuckDBPyConnection,
    request: pytest.FixtureRequest | None = None,
) -> dict[str, ExpectationResult]:
    """Results by name: apply_checks in memory, or DuckDB / PostgreSQL over the same rows."""
    if engine == "memory":
        outcome = apply_checks(table, checks, pipeline="semantics", task="t")
        return {r.name: r for r in outcome.results}
    name = f"t_{uuid.uuid4().hex[:8]}"
    if engine == "postgresql":
        from headrace.connectors import PostgresDestination

        assert request is not None
        url, schema = request.getfixturevalue("pg_semantics_schema")
        PostgresDestination(url, schema=schema).write(table, name, mode="replace")
        return {r.name: r for r in check_table(url, f"{schema}.{name}", checks).results}
    duck.register("_input", table)
    duck.execute(f'CREATE TABLE "{name}" AS SELECT * FROM _input')
    duck.unregister("_input")
    try:
        return {r.name: r for r in check_table(duck, name, checks).results}
    finally:
        duck.execute(f'DROP TABLE "{name}"')


@pytest.mark.parametrize("engine", ENGINES)
def test_checks_on_a_dictionary_column(engine: str, duck: duckdb.DuckDBPyConnection) -> None:
    country = pa.array(["DE", "FR", "xx", None, "DE", "Deutschland"]).dictionary_encode()
    table = pa.table({"country": country})
    got = run(
        engine,
        table,
        [
            matches_regex("country", r"^[A-Z]{2}$"),
            accepted_values("country", ["DE", "FR"]),
            between("country", min="A", max="Z"),
            not_null("country"),
            unique("country"),
        ],
        duck,
    )
    assert got["matches_regex(country)"].failed == 2
    assert got["accepted_values(country)"].failed == 2
    assert got["between(country)"].failed == 1  # "xx" sorts after "Z"
    assert got["not_null(country)"].failed == 1
    assert got["unique(country)"].failed == 2


@pytest.mark.parametrize("engine", ALL_ENGINES)
def test_accepted_values_on_booleans_reads_text_as_booleans(
    engine: str, duck: duckdb.DuckDBPyConnection, request: pytest.FixtureRequest
) -> None:
    table = pa.table({"flag": pa.array([True, False, False, None], pa.bool_())})
    got = run(
        engine,
        table,
        [
            accepted_values("flag", ["false"], name="text_false"),
            accepted_values("flag", ["TRUE"], name="text_true"),
            accepted_values("flag", [False], name="bool_false"),
            accepted_values("flag", [0, 1], name="zero_one"),
        ],
        duck,
        request,
    )
    assert got["text_false"].failed == 1  # True fails, both False pass
    assert got["text_true"].failed == 2
    assert got["bool_false"].failed == 1
    assert got["zero_one"].failed == 0


def test_accepted_values_on_booleans_refuses_other_values() -> None:
    table = pa.table({"flag": pa.array([True], pa.bool_())})
    with pytest.raises(
        ExpectationDefinitionError, match=r"accepted_values\(flag\).*'maybe'.*true, false"
    ):
        apply_checks(table, [accepted_values("flag", ["maybe"])])


@pytest.mark.parametrize("engine", ALL_ENGINES)
def test_sum_of_int64_is_exact_beyond_int64(
    engine: str, duck: duckdb.DuckDBPyConnection, request: pytest.FixtureRequest
) -> None:
    big = 2**62
    table = pa.table({"n": pa.array([big, big, 5, None], pa.int64())})
    got = run(engine, table, [stat_between("n", "sum", min=2**63, max=2**63 + 5)], duck, request)
    result = got["stat_between(sum(n))"]
    assert int(result.observed) == 2**63 + 5
    assert result.passed


@pytest.mark.parametrize(
    ("make", "check_name"),
    [
        (lambda: between("amount", min=10, max=0), "between(amount)"),
        (lambda: between("amount", min=5, max=5, strict_max=True), "between(amount)"),
        (lambda: stat_between("amount", "mean", min=3.5, max=1), "stat_between(mean(amount))"),
    ],
)
def test_a_reversed_range_is_a_declaration_error(make: Any, check_name: str) -> None:
    with pytest.raises(ExpectationDefinitionError, match="amount") as info:
        make()
    assert info.value.expectation == check_name
    assert info.value.column == "amount"
    assert "empty" in str(info.value)


def test_a_reversed_range_of_dates_is_found_when_the_column_type_is_known() -> None:
    table = pa.table({"day": pa.array([None], pa.date32())})
    with pytest.raises(ExpectationDefinitionError, match="day") as info:
        apply_checks(table, [between("day", min="2024-02-01", max="2024-01-01T00:00:00")])
    assert info.value.column == "day"
    with pytest.raises(ExpectationDefinitionError, match="row_count_between"):
        row_count_between(min=5, max=1)


@pytest.mark.parametrize("engine", ALL_ENGINES)
def test_mostly_passes_when_enough_rows_pass(
    engine: str, duck: duckdb.DuckDBPyConnection, request: pytest.FixtureRequest
) -> None:
    # 20 rows: 2 null emails, 3 malformed (of the 18 present: 15/18 = 0.833 pass)
    emails = ["a@b.co"] * 15 + ["bad", "also bad", "nope"] + [None, None]
    table = pa.table({"email": pa.array(emails, pa.string())})
    got = run(
        engine,
        table,
        [
            not_null("email", mostly=0.9, name="nn_90"),  # 18/20 = 0.9: passes
            not_null("email", mostly=0.95, name="nn_95"),  # fails
            matches_regex("email", "@", mostly=0.8, name="re_80"),  # 15/18 present rows: passes
            matches_regex("email", "@", mostly=0.85, name="re_85"),  # fails
            matches_regex("email", "@", name="re_all"),
        ],
        duck,
        request,
    )
    assert [got[n].passed for n in ("nn_90", "nn_95", "re_80", "re_85", "re_all")] == [
        True,
        False,
        True,
        False,
        False,
    ]
    assert got["re_80"].failed == 3 and got["nn_90"].failed == 2  # counts are unchanged
    assert "mostly" in got["re_85"].reason


def test_mostly_still_quarantines_the_failing_rows() -> None:
    table = pa.table({"email": pa.array(["a@b.co"] * 9 + ["bad"], pa.string())})
    outcome = apply_checks(table, [matches_regex("email", "@", severity="quarantine", mostly=0.9)])
    assert outcome.results[0].passed
    assert outcome.quarantined is not None and outcome.quarantined.num_rows == 1
    assert outcome.passed.num_rows == 9


def test_mostly_must_be_a_fraction() -> None:
    with pytest.raises(ExpectationDefinitionError, match=r"mostly.*between 0 and 1"):
        not_null("x", mostly=95)


MARK = "cafe\u0301"  # e + combining acute: a word character in Rust, not in a C.UTF-8 locale
TEXTS = [
    "a\xa0b@c.de",
    "１２３４５",
    "café",
    "日本語",
    "plain",
    "12345",
    "a b",
    "x_y",
    "\u2003",
    MARK,
    None,
]


@pytest.mark.parametrize(
    ("pattern", "failing"),
    [
        (r"\s", ["１２３４５", "café", "日本語", "plain", "12345", "x_y", MARK]),
        (r"^\S+$", ["a\xa0b@c.de", "a b", "\u2003"]),
        (r"^\d+$", ["a\xa0b@c.de", "café", "日本語", "plain", "a b", "x_y", "\u2003", MARK]),
        (r"^\D+$", ["１２３４５", "12345"]),
        (r"^\w+$", ["a\xa0b@c.de", "a b", "\u2003"]),
        (
            r"^\W+$",
            ["a\xa0b@c.de", "１２３４５", "café", "日本語", "plain", "12345", "a b", "x_y", MARK],
        ),
        (r"^[^\s@]+@[^\s@]+\.[^\s@]+$", [t for t in TEXTS if t is not None]),
        (r"^[\w.]+$", ["a\xa0b@c.de", "a b", "\u2003"]),
        (r"^[\d]{5}$", ["a\xa0b@c.de", "café", "日本語", "plain", "a b", "x_y", "\u2003", MARK]),
        (r"^\\d$", [t for t in TEXTS if t is not None]),  # an escaped backslash, then "d"
    ],
)
@pytest.mark.parametrize("engine", ALL_ENGINES)
def test_regex_classes_are_unicode_in_every_engine(
    engine: str,
    pattern: str,
    failing: list[str],
    duck: duckdb.DuckDBPyConnection,
    request: pytest.FixtureRequest,
) -> None:
    table = pa.table({"s": pa.array(TEXTS, pa.string())})
    got = run(engine, table, [matches_regex("s", pattern, severity="quarantine")], duck, request)
    result = got["matches_regex(s)"]
    assert result.failed == len(failing), (engine, pattern, result.sample)
    if engine == "memory":
        quarantined = apply_checks(
            table, [matches_regex("s", pattern, severity="quarantine")]
        ).quarantined
        got_rows = [] if quarantined is None else quarantined.column("s").to_pylist()
        assert sorted(got_rows) == sorted(failing)
