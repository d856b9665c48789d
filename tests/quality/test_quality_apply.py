"""apply_checks: severities, quarantine accounting, stored records, declaration errors."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pyarrow as pa
import pytest

from headrace.errors import DefinitionError, QualityError, TerminalError
from headrace.quality import (
    EXPECTATION_COLUMN,
    REASON_COLUMN,
    Expectation,
    ExpectationDefinitionError,
    ExpectationsFailed,
    apply_checks,
    between,
    freshness,
    matches_regex,
    not_null,
    relationships,
    row_count_between,
    schema_is,
    sql_expression,
    stat_between,
    unique,
)
from headrace.state.store_base import CheckResultRecord

EMAIL = r"^[^\s@]+@[^\s@]+\.[^\s@]+$"


@pytest.fixture
def customers() -> pa.Table:
    return pa.table(
        {
            "customer_id": pa.array([1, 2, 3, 3, None, 6], pa.int64()),
            "email": ["a@x.io", "not-an-email", "c@x.io", "d@x.io", None, "bad mail@x.io"],
            "phone": ["0123456789", "12", "0123456789", "0123456789", "0123456789", "555"],
            "created_at": pa.array(
                [dt.datetime(2021, 1, 1, tzinfo=dt.UTC)] * 5
                + [dt.datetime(2019, 5, 1, tzinfo=dt.UTC)],
                pa.timestamp("us", tz="UTC"),
            ),
        }
    )


def test_quarantine_keeps_each_row_once_with_all_reasons(customers: pa.Table) -> None:
    outcome = apply_checks(
        customers,
        [
            matches_regex("email", EMAIL, severity="quarantine", reason="invalid email"),
            matches_regex("phone", r"^[0-9]{10}$", severity="quarantine", name="ten_digit_phone"),
            between("created_at", min="2020-01-01", severity="warn"),
        ],
        pipeline="crm",
        task="clean",
    )
    q = outcome.quarantined
    assert q is not None
    # rows 1 (email + phone) and 5 (email + phone) fail twice, appear once
    assert q.column("customer_id").to_pylist() == [2, 6]
    assert q.column(EXPECTATION_COLUMN).to_pylist() == ["matches_regex(email); ten_digit_phone"] * 2
    assert (
        q.column(REASON_COLUMN).to_pylist()
        == ["invalid email; phone does not match ^[0-9]{10}$"] * 2
    )
    assert q.schema.names == [*customers.schema.names, EXPECTATION_COLUMN, REASON_COLUMN]
    # the rest go on, same columns, same order; warn rows stay
    assert outcome.passed.schema == customers.schema
    assert outcome.passed.column("customer_id").to_pylist() == [1, 3, 3, None]
    assert outcome.rows_in == outcome.passed.num_rows + outcome.rows_quarantined == 6
    assert outcome.result("matches_regex(email)").failed == 2
    assert outcome.result("ten_digit_phone").failed == 2
    outcome.raise_for_failures()  # quarantine and warn never raise


def test_fail_severity_raises_a_clear_summary(customers: pa.Table) -> None:
    outcome = apply_checks(
        customers,
        [not_null("customer_id"), unique("customer_id"), not_null("email", severity="warn")],
        pipeline="crm",
        task="validate",
    )
    with pytest.raises(ExpectationsFailed) as info:
        outcome.raise_for_failures()
    message = str(info.value)
    assert isinstance(info.value, QualityError) and isinstance(info.value, TerminalError)
    assert "pipeline 'crm', task 'validate'" in message
    assert "not_null(customer_id) on column 'customer_id': 1 of 6 rows (16.67%) failed" in message
    assert "unique(customer_id) on column 'customer_id': 2 of 6 rows (33.33%) failed" in message
    assert '"_hr_row": 2' in message and '"_hr_row": 3' in message  # sample rows named by position
    assert "not_null(email)" not in message  # warn is recorded, not raised
    assert [r.name for r in info.value.failures] == ["not_null(customer_id)", "unique(customer_id)"]
    assert [r.name for r in outcome.warnings] == ["not_null(email)"]


def test_results_and_records(customers: pa.Table) -> None:
    outcome = apply_checks(
        customers,
        [unique("customer_id"), row_count_between(min=10, severity="warn"), not_null("phone")],
        pipeline="crm",
        task="validate",
    )
    records = outcome.records("run-1")
    assert all(isinstance(r, CheckResultRecord) for r in records)
    by_name = {r.expectation: r for r in records}
    dup = by_name["unique(customer_id)"]
    assert (
        dup.run_id,
        dup.task_id,
        dup.severity,
        dup.status,
        dup.total,
        dup.failed,
        dup.column,
    ) == ("run-1", "validate", "fail", "failed", 6, 2, "customer_id")
    assert dup.details["failed_pct"] == pytest.approx(33.3333)
    assert [row["_hr_row"] for row in dup.details["sample"]] == [2, 3]
    assert dup.details["sample"][0]["created_at"] == "2021-01-01T00:00:00+00:00"  # JSON-safe
    count = by_name["row_count_between"]
    assert (count.status, count.total, count.failed, count.details["observed"]) == (
        "failed",
        1,
        1,
        6,
    )
    assert by_name["not_null(phone)"].status == "passed"
    assert by_name["not_null(phone)"].details["sample"] == []


def test_sample_holds_at_most_five_rows() -> None:
    table = pa.table({"id": [None] * 12})
    outcome = apply_checks(table.cast(pa.schema([("id", pa.int64())])), [not_null("id")])
    result = outcome.results[0]
    assert result.failed == 12
    assert [row["_hr_row"] for row in result.sample] == [0, 1, 2, 3, 4]


def test_polars_input_and_other_columns_untouched() -> None:
    frame = pl.DataFrame({"id": [1, 2, 2], "payload": [[1], [2, 3], []]})
    outcome = apply_checks(frame, [unique("id", severity="quarantine")])
    assert outcome.passed.column("id").to_pylist() == [1]
    assert outcome.quarantined is not None
    assert outcome.quarantined.column("payload").to_pylist() == [[2, 3], []]


def test_table_level_checks_cannot_quarantine() -> None:
    for build in (
        lambda: row_count_between(1, severity="quarantine"),
        lambda: stat_between("x", "mean", min=0, severity="quarantine"),
        lambda: freshness("ts", "1d", severity="quarantine"),
        lambda: schema_is({"x": "integer"}, severity="quarantine"),
    ):
        with pytest.raises(DefinitionError, match="no failing rows to quarantine"):
            build()


def test_declaration_errors_are_clear() -> None:
    with pytest.raises(ExpectationDefinitionError, match="Did you mean 'warn'"):
        not_null("id", severity="warm")
    with pytest.raises(ExpectationDefinitionError, match="look-around"):
        matches_regex("email", r"(?<=@)x")
    with pytest.raises(ExpectationDefinitionError, match="give min, max or both"):
        between("n")
    with pytest.raises(ExpectationDefinitionError, match="Did you mean 'median'"):
        stat_between("n", "medain", min=1)
    with pytest.raises(ExpectationDefinitionError, match="cannot parse SQL expression"):
        sql_expression("amount >>>= 0")


def test_errors_at_apply_name_pipeline_task_and_suggest_columns(customers: pa.Table) -> None:
    with pytest.raises(ExpectationDefinitionError) as info:
        apply_checks(customers, [not_null("emial")], pipeline="crm", task="clean")
    assert "pipeline 'crm', task 'clean'" in str(info.value)
    assert "no column 'emial'" in str(info.value) and "Did you mean 'email'" in str(info.value)
    with pytest.raises(
        ExpectationDefinitionError, match="two expectations are named 'not_null\\(email\\)'"
    ):
        apply_checks(customers, [not_null("email"), not_null("email", severity="warn")])
    with pytest.raises(ExpectationDefinitionError, match="bound 'soon' is not an ISO date"):
        apply_checks(customers, [between("created_at", max="soon")])
    with pytest.raises(ExpectationDefinitionError, match="give a number"):
        apply_checks(customers, [between("customer_id", min="10")])
    with pytest.raises(ExpectationDefinitionError, match="sql_expression\\(nope > 1\\)"):
        apply_checks(customers, [sql_expression("nope > 1")], pipeline="crm", task="clean")


def test_many_rows_one_pass_counts_match_polars() -> None:
    """A larger table: counts agree with a hand-written Polars select."""
    n = 200_000
    ids = pl.int_range(0, n, eager=True) % 150_000
    frame = pl.DataFrame(
        {"id": ids, "email": pl.Series([f"u{i}@x.io" if i % 97 else "bad" for i in range(n)])}
    )
    outcome = apply_checks(
        frame, [unique("id"), matches_regex("email", EMAIL, severity="quarantine")]
    )
    expected_dups = frame.select(pl.col("id").is_duplicated().sum()).item()
    assert outcome.result("unique(id)").failed == expected_dups == 100_000
    bad = sum(1 for i in range(n) if i % 97 == 0)
    assert outcome.rows_quarantined == bad
    assert outcome.passed.num_rows == n - bad


def test_no_checks_pass_everything_without_copy(customers: pa.Table) -> None:
    outcome = apply_checks(customers, [])
    assert outcome.results == [] and outcome.passed is customers and outcome.quarantined is None
    outcome.raise_for_failures()


def test_pandas_input_nan_is_null() -> None:
    import pandas as pd

    frame = pd.DataFrame({"score": [1.0, float("nan"), 3.0], "name": ["a", None, "c"]})
    outcome = apply_checks(frame, [not_null("score"), not_null("name", severity="quarantine")])
    assert outcome.result("not_null(score)").failed == 1
    assert outcome.passed.column("name").to_pylist() == ["a", "c"]
    with pytest.raises(ExpectationDefinitionError, match="got list"):
        apply_checks([1, 2], [not_null("x")])


def test_order_is_kept_through_unique_and_relationships_on_many_rows() -> None:
    """DuckDB reorders rows in windows and joins: passed and quarantined rows keep the
    table's order all the same, and each failing row carries all its reasons."""
    n = 60_000
    ids = [i % 45_000 for i in range(n)]  # 15,000 ids appear twice
    table = pa.table({"id": pa.array(ids, pa.int64()), "pos": pa.array(range(n), pa.int64())})
    known = pa.table({"id": pa.array(range(0, 45_000, 3), pa.int64())})
    outcome = apply_checks(
        table,
        [
            unique("id", severity="quarantine"),
            relationships("id", known, severity="quarantine", name="fk"),
        ],
    )
    dup = [i < 15_000 or i >= 45_000 for i in range(n)]
    orphan = [ids[i] % 3 != 0 for i in range(n)]
    bad = [i for i in range(n) if dup[i] or orphan[i]]
    set_bad = set(bad)
    assert outcome.passed.column("pos").to_pylist() == [i for i in range(n) if i not in set_bad]
    q = outcome.quarantined
    assert q is not None and q.column("pos").to_pylist() == bad
    expected = [
        "; ".join(name for name, hit in (("unique(id)", dup[i]), ("fk", orphan[i])) if hit)
        for i in bad
    ]
    assert q.column(EXPECTATION_COLUMN).to_pylist() == expected
    assert [r["_hr_row"] for r in outcome.result("fk").sample] == [1, 2, 4, 5, 7]


def test_more_quarantine_checks_than_bits_of_one_flag_word() -> None:
    """70 quarantine expectations (the flags span two BIGINTs): reasons stay in check order."""
    table = pa.table({"x": pa.array([0, 5, 69, 100], pa.int64())})
    checks: list[Expectation] = [
        sql_expression(f"x <> {k}", severity="quarantine", name=f"not_{k}") for k in range(70)
    ]
    checks.append(between("x", max=68, severity="quarantine", name="at_most_68"))
    outcome = apply_checks(table, checks)
    q = outcome.quarantined
    assert q is not None
    assert q.column("x").to_pylist() == [0, 5, 69, 100]
    assert q.column(EXPECTATION_COLUMN).to_pylist() == [
        "not_0",
        "not_5",
        "not_69; at_most_68",
        "at_most_68",
    ]
    assert outcome.passed.num_rows == 0


def test_checks_in_threads_at_once_give_each_its_own_answer() -> None:
    """apply_checks runs from a thread executor: concurrent calls share one in-memory
    database, each on its own cursor and views."""
    from collections import Counter
    from concurrent.futures import ThreadPoolExecutor

    def check(k: int) -> tuple[int, int, int]:
        table = pa.table({"id": pa.array([i % (1000 + k) for i in range(5000)], pa.int64())})
        outcome = apply_checks(
            table, [unique("id", severity="quarantine"), between("id", max=k, severity="warn")]
        )
        return k, outcome.rows_quarantined, outcome.result("between(id)").failed

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(check, range(40)))
    for k, quarantined, above in answers:
        width = 1000 + k
        rows = [i % width for i in range(5000)]
        counts = Counter(rows)
        assert quarantined == sum(1 for v in rows if counts[v] > 1)
        assert above == sum(1 for v in rows if v > k)


def test_sql_expression_is_duckdb_sql() -> None:
    table = pa.table({"email": ["a@b.io", "no-at", None], "amount": [1, -2, 3]})
    outcome = apply_checks(
        table,
        [
            sql_expression("contains(email, '@')", name="has_at"),  # a DuckDB function
            sql_expression("amount >= 0 OR email LIKE '%@%'", name="portable"),
        ],
    )
    assert outcome.result("has_at").failed == 1
    assert outcome.result("portable").failed == 1
    with pytest.raises(ExpectationDefinitionError, match="unknown function or operator 'nope'"):
        sql_expression("nope(amount) > 1")
    with pytest.raises(ExpectationDefinitionError, match="sum\\(\\) is an aggregate"):
        sql_expression("sum(amount) > 1")
    with pytest.raises(ExpectationDefinitionError, match="one boolean expression"):
        sql_expression("amount > 1), (amount < 5")


def test_an_expectation_that_cannot_run_is_named_with_its_fields(customers: pa.Table) -> None:
    with pytest.raises(ExpectationDefinitionError) as info:
        apply_checks(
            customers,
            [not_null("email"), sql_expression("emial LIKE '%@%'", name="has_at")],
            pipeline="crm",
            task="clean",
        )
    error = info.value
    assert (error.pipeline, error.task, error.expectation) == ("crm", "clean", "has_at")
    assert "expectation 'has_at' cannot run on this table" in str(error)
    assert "columns: customer_id, email, phone, created_at" in str(error)


def test_regexes_are_checked_when_declared() -> None:
    with pytest.raises(ExpectationDefinitionError, match="is not valid \\(RE2 syntax"):
        matches_regex("email", r"(\w+")
    with pytest.raises(ExpectationDefinitionError, match="write the class negated"):
        matches_regex("email", r"^[\S@]+$")


def test_relationships_to_a_polars_or_pandas_frame() -> None:
    import pandas as pd

    orders = pa.table({"customer_id": pa.array([1, 2, 7, None], pa.int64())})
    for reference in (pl.DataFrame({"id": [1, 2, 3]}), pd.DataFrame({"id": [1, 2, 3]})):
        check = relationships("customer_id", reference, "id", severity="quarantine")
        outcome = apply_checks(orders, [check])
        assert outcome.rows_quarantined == 1
        assert outcome.passed.column("customer_id").to_pylist() == [1, 2, None]
    with pytest.raises(ExpectationDefinitionError, match="has no column 'idx'"):
        apply_checks(orders, [relationships("customer_id", pa.table({"id": [1]}), "idx")])


def test_only_the_checked_columns_reach_the_engine() -> None:
    """A column DuckDB cannot read (decimal256 of 50 digits) beside the checked ones is
    carried through untouched; an expression's names match columns whatever their case."""
    import decimal

    big = pa.array([decimal.Decimal("1.5"), None, decimal.Decimal("2")], pa.decimal256(50, 2))
    table = pa.table({"id": [1, None, 3], "big": big, "Amount": [1, -1, -3]})
    outcome = apply_checks(
        table,
        [
            not_null("id", severity="quarantine"),
            sql_expression("amount >= 0", severity="quarantine", name="non_negative"),
        ],
    )
    q = outcome.quarantined
    assert q is not None and q.column("big").to_pylist() == [None, decimal.Decimal("2")]
    assert q.column(EXPECTATION_COLUMN).to_pylist() == [
        "not_null(id); non_negative",
        "non_negative",
    ]
    assert outcome.passed.to_pylist() == [{"id": 1, "big": decimal.Decimal("1.5"), "Amount": 1}]


def test_a_checked_column_duckdb_cannot_read_is_named() -> None:
    import decimal

    big = pa.array([decimal.Decimal("1.5"), None], pa.decimal256(50, 2))
    with pytest.raises(ExpectationDefinitionError) as info:
        apply_checks(pa.table({"big": big}), [not_null("big")], pipeline="p", task="t")
    assert (info.value.pipeline, info.value.task) == ("p", "t")
    assert "cannot be read by DuckDB (big: decimal256(50, 2)" in str(info.value)


def test_one_list_of_expectations_on_batches_whose_schema_changes() -> None:
    """A stream checks batch after batch with the same expectations (compiled once per
    schema): a batch with another column type gets that type's rules (NaN is null)."""
    checks = [not_null("x"), between("x", min=1, severity="quarantine"), unique("x")]
    ints = pa.table({"x": pa.array([0, 1, 1, None, 5], pa.int64())})
    floats = pa.table({"x": pa.array([0.5, float("nan"), 2.0, 2.0, None], pa.float64())})
    for batch, nulls, below, dups in [(ints, 1, 1, 2), (floats, 2, 1, 2), (ints, 1, 1, 2)]:
        outcome = apply_checks(batch, checks)
        assert [r.failed for r in outcome.results] == [nulls, below, dups]
        assert outcome.quarantined is not None
        assert outcome.quarantined.column("x").to_pylist()[:1] == [batch.column("x")[0].as_py()]
        assert outcome.passed.num_rows + outcome.rows_quarantined == batch.num_rows


def test_equal_expectations_that_bind_other_values_are_compiled_apart() -> None:
    """``between(min=1) == between(min=True)`` in Python, but a bool bound on an integer
    column is refused: the second is not answered from the first's compiled query."""
    table = pa.table({"x": pa.array([0, 1, 2], pa.int64())})
    assert between("x", min=1) == between("x", min=True)
    assert apply_checks(table, [between("x", min=1)]).results[0].failed == 1
    with pytest.raises(ExpectationDefinitionError, match="bound True is bool"):
        apply_checks(table, [between("x", min=True)])


def test_samples_and_quarantine_agree_on_both_result_paths() -> None:
    """Up to 10,000 rows the failing rows come back as tuples, above as Arrow: the same
    failing rows give the same counts, samples and quarantined rows either way."""

    def outcome_of(n: int) -> tuple[list[int], list[list[int]], list[int]]:
        ids = [i if i % 97 else None for i in range(n)]
        emails = [f"u{i}@x.io" if i % 53 else "bad" for i in range(n)]
        table = pa.table({"id": pa.array(ids, pa.int64()), "email": emails})
        outcome = apply_checks(
            table,
            [not_null("id"), matches_regex("email", EMAIL, severity="quarantine")],
        )
        samples = [[row["_hr_row"] for row in r.sample] for r in outcome.results]
        assert outcome.quarantined is not None
        return (
            [r.failed for r in outcome.results],
            samples,
            outcome.quarantined.column("id").to_pylist()[:3],
        )

    small = outcome_of(9_000)  # tuples
    large = outcome_of(12_000)  # Arrow
    assert small[1] == large[1] == [[0, 97, 194, 291, 388], [0, 53, 106, 159, 212]]
    assert small[2] == large[2] == [None, 53, 106]
    assert small[0] == [93, 170] and large[0] == [124, 227]
