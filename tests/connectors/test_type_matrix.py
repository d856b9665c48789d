"""The type matrix: every source type arrives as itself, in Arrow and in each destination.

One table per source holds every type; each test reads it with ``SqlSource``, stages it
as Parquet the way the engine does, merges it into the destination and compares:
the Arrow type, the destination column type (both against ``type_matrix.json``) and
every value read back. Values with no faithful form (±infinity, zero dates, NaN in
numeric) are quarantined in the same load, with reasons naming the column.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pymysql
import pytest

from headrace.connectors import DuckDBDestination, PostgresDestination, SqlSource
from headrace.connectors.fidelity import Fidelity, UnrepresentableValueError, ValuePolicy
from headrace.engine.staging import read_table, write_table

GOLDEN = json.loads((Path(__file__).parent / "type_matrix.json").read_text())
D = decimal.Decimal
UUID = uuid.UUID("9cdd1bf1-bb7e-4113-a2e3-1cdae3f4fe4d")
UTC = dt.UTC

# column -> (PostgreSQL type, value of the good row, the value read back if it differs)
PG_COLUMNS: dict[str, tuple[str, Any]] = {
    "i2": ("smallint", 32767),
    "i4": ("integer", -2147483648),
    "i8": ("bigint", 9223372036854775807),
    "n_10_2": ("numeric(10,2)", D("12345678.90")),
    "n_any": ("numeric", D("1234.5678")),
    "n_38_10": ("numeric(38,10)", D("1234567890123456789012345678.0123456789")),
    "f4": ("real", 1.5),
    "f8": ("double precision", float("inf")),
    "money": ("money", D("1234.56")),
    "txt": ("text", "héllo ünïcode"),
    "vc": ("varchar(10)", "abc"),
    "ch": ("char(4)", "ab  "),
    "bin": ("bytea", b"\x00\xff\x10"),
    "flag": ("boolean", True),
    "day": ("date", dt.date(2024, 2, 29)),
    "tod": ("time", dt.time(23, 59, 59, 999999)),
    "todtz": ("timetz", "12:34:56.123456+05:30"),
    "ts": ("timestamp", dt.datetime(2024, 1, 2, 3, 4, 5, 123456)),
    "tstz": ("timestamptz", dt.datetime(2024, 1, 2, 1, 4, 5, 123456, tzinfo=UTC)),
    "span": ("interval", pa.MonthDayNano([14, 3, 14_706_789_000_000])),
    "uid": ("uuid", UUID),
    "js": ("json", '{"a": 1}'),
    "jsb": ("jsonb", '{"b": 2}'),
    "ints": ("integer[]", [1, 2]),  # NULL elements: see test_empty_and_odd_data.py
    "texts": ("text[]", ["a", "b"]),
    "mood": ("{schema}.mood", "happy"),
    "pos": ("{schema}.posint", 5),
    "ip": ("inet", "192.168.0.1/24"),
    "net": ("cidr", "10.0.0.0/8"),
}
PG_INSERT = {"todtz": "12:34:56.123456+05:30", "tstz": "2024-01-02 03:04:05.123456+02"}
PG_BAD = [  # (column, value, reason fragment): each row is quarantined
    ("ts", "infinity", "timestamp 'infinity'"),
    ("tstz", "-infinity", "timestamp '-infinity'"),
    ("day", "infinity", "date 'infinity'"),
    ("n_any", "NaN", "numeric value 'nan' has no decimal form"),
    ("n_any", "1.00000000001", "does not fit decimal128(38, 10)"),
]


def _pg_matrix(url: str, schema: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE TYPE \"{schema}\".mood AS ENUM ('sad', 'happy')")
        conn.execute(f'CREATE DOMAIN "{schema}".posint AS integer CHECK (VALUE > 0)')
        cols = ", ".join(f"{c} {t.format(schema=schema)}" for c, (t, _) in PG_COLUMNS.items())
        conn.execute(f'CREATE TABLE "{schema}".matrix (id int PRIMARY KEY, {cols})')
        values = [PG_INSERT.get(c, v) for c, (_, v) in PG_COLUMNS.items()]
        values[list(PG_COLUMNS).index("span")] = dt.timedelta(
            days=3, seconds=14706, microseconds=789000
        )
        holes = ", ".join(["%s"] * (len(PG_COLUMNS) + 1))
        conn.execute(f'INSERT INTO "{schema}".matrix VALUES ({holes})', [1, *values])
        # interval: '1 year 2 mons' cannot be bound from a timedelta
        conn.execute(f"UPDATE \"{schema}\".matrix SET span = span + interval '1 year 2 mons'")
        conn.execute(f'INSERT INTO "{schema}".matrix (id) VALUES (2)')  # all NULL
        for i, (column, value, _) in enumerate(PG_BAD, 3):
            conn.execute(
                f'INSERT INTO "{schema}".matrix (id, {column}) VALUES (%s, %s)', (i, value)
            )


def _normal(value: Any, golden_arrow: str) -> Any:
    """A value read back from a destination, in the form the source holds it."""
    if value is None:
        return None
    if golden_arrow == "extension<arrow.uuid>":
        return (
            value
            if isinstance(value, uuid.UUID)
            else uuid.UUID(bytes=value)
            if isinstance(value, bytes)
            else uuid.UUID(value)
        )
    if golden_arrow.startswith("decimal") and isinstance(value, str):
        return D(value)  # PostgreSQL's numeric, as the driver returns it: text
    if golden_arrow == "uint64" and isinstance(value, str):
        return int(value)
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(UTC)
    return value


def _check(
    dest: Any, table: str, golden: dict[str, dict[str, str]], expected: dict[str, Any], dialect: str
) -> None:
    # column types created in the destination
    created = dest._columns(dest._connect(), table)
    assert {c: created[c] for c in golden} == {c: g[dialect] for c, g in golden.items()}
    got = dest.query(f"SELECT * FROM {dest.q(table)} WHERE id = 1").to_pylist()
    assert len(got) == 1
    for column, want in expected.items():
        value = _normal(got[0][column], golden[column]["arrow"])
        if column == "todtz" and dialect == "postgresql":  # timetz as text, PostgreSQL's form
            assert value == "12:34:56.123456+05:30"
        elif isinstance(want, float) and math.isnan(want):
            assert math.isnan(value)
        else:
            assert value == want, column
    nulls = dest.query(f"SELECT * FROM {dest.q(table)} WHERE id = 2").to_pylist()[0]
    assert all(v is None for c, v in nulls.items() if c != "id")


def _load(src: SqlSource, dest: Any, table: str, tmp_path: Path) -> tuple[Any, pa.Schema]:
    """Read the source through staging Parquet and merge it, as the engine runs a task."""
    extract = src.read()
    whole = extract.to_table()
    # Parquet has no month-day-nano interval (pyarrow refuses it): intervals skip staging
    spans = [f.name for f in whole.schema if pa.types.is_interval(f.type)]
    staged = tmp_path / f"{table}.parquet"
    write_table(whole.drop_columns(spans), "arrow", staged)
    data = read_table(staged, "arrow")
    for name in spans:
        data = data.append_column(whole.schema.field(name), whole.column(name))
    result = dest.write(data, table, mode="merge", keys=["id"], quarantine=extract.rejects.table())
    return result, data.schema


def test_postgres_type_matrix(destination, pg_schema, tmp_path):
    """Defects: numeric(10,2) arrived as opaque text (VARCHAR/text in the warehouse);
    uuid as opaque bytes; ±infinity as year 290279 BC; NaN numeric unnoticed."""
    url, schema = pg_schema
    _pg_matrix(url, schema)
    golden = GOLDEN["postgresql"]
    src = SqlSource(url, table="matrix", schema=schema)
    result, arrow_schema = _load(src, destination, "loaded", tmp_path)
    assert {c: str(arrow_schema.field(c).type) for c in golden} == {
        c: g["arrow"] for c, g in golden.items()
    }
    assert (result.rows_loaded, result.rows_quarantined) == (2, len(PG_BAD))
    expected = {c: v for c, (_, v) in PG_COLUMNS.items()}
    _check(destination, "loaded", golden, expected, destination.dialect)
    # sums work: decimals are numbers in the warehouse, exact to the cent
    total = (
        destination.query(f"SELECT sum(n_10_2) AS s FROM {destination.q('loaded')}")
        .column(0)[0]
        .as_py()
    )
    assert D(str(total)) == D("12345678.90")
    reasons = destination.query(
        f"SELECT id, _hr_reason FROM {destination.q('loaded_quarantine')} ORDER BY id"
    ).to_pylist()
    assert [r["id"] for r in reasons] == list(range(3, 3 + len(PG_BAD)))
    for row, (column, _, fragment) in zip(reasons, PG_BAD, strict=True):
        assert f"column {column!r}" in row["_hr_reason"] and fragment in row["_hr_reason"]


def test_postgres_value_policies_null_and_fail(pg_schema, tmp_path):
    url, schema = pg_schema
    _pg_matrix(url, schema)
    nulled = SqlSource(
        url, table="matrix", schema=schema, fidelity=Fidelity(values=ValuePolicy.NULL)
    )
    extract = nulled.read()
    table = extract.to_table()
    assert table.num_rows == 2 + len(PG_BAD) and extract.rejects.nulled == len(PG_BAD)
    assert table.filter(pa.compute.equal(table["id"], 3))["ts"].to_pylist() == [None]
    failing = SqlSource(url, table="matrix", schema=schema, fidelity=Fidelity(values="fail"))
    with pytest.raises(UnrepresentableValueError) as err:
        failing.read().to_table()
    assert err.value.column == "ts" and err.value.row == 2 and "'infinity'" in str(err.value)


def test_postgres_query_is_described_like_a_table(pg_schema):
    """A query (with its own bound parameter) gets numeric(p,s), money and uuid right too."""
    url, schema = pg_schema
    _pg_matrix(url, schema)
    src = SqlSource(
        url,
        query=f'SELECT id, n_10_2, money, uid, ip FROM "{schema}".matrix WHERE id = $1',
        params=[1],
    )
    table = src.read().to_table()
    assert [str(t) for t in table.schema.types] == [
        "int32",
        "decimal128(10, 2)",
        "decimal128(19, 2)",
        "extension<arrow.uuid>",
        "string",
    ]
    assert table.to_pylist()[0] == {
        "id": 1,
        "n_10_2": D("12345678.90"),
        "money": D("1234.56"),
        "uid": UUID,
        "ip": "192.168.0.1/24",
    }


MYSQL_COLUMNS: dict[str, tuple[str, Any]] = {
    "dec": ("decimal(10,2)", D("12345678.90")),
    "dec_wide": ("decimal(38,10)", D("1234567890123456789012345678.0123456789")),
    "ubig": ("bigint unsigned", 18446744073709551615),
    "tiny": ("tinyint(1)", 1),
    "bits": ("bit(5)", b"\x15"),
    "yr": ("year", 2024),
    "day": ("date", dt.date(2024, 2, 29)),
    "at": ("datetime(6)", dt.datetime(2024, 1, 2, 3, 4, 5, 123456)),
    "stamp": ("timestamp(6) NULL", dt.datetime(2024, 1, 2, 3, 4, 5, 123456)),
    "js": ("json", '{"a": 1}'),
    "kind": ("enum('a','b')", "b"),
    "tags": ("set('x','y')", "x,y"),
    "blb": ("blob", b"\x00\xff"),
    "txt": ("text", "héllo"),
    "dbl": ("double", 2.5),
    "tod": ("time(6)", dt.time(12, 34, 56, 500000)),
}
MYSQL_BAD = [
    ("day", "0000-00-00", "zero date '0000-00-00'"),
    ("at", "2024-02-00 00:00:00", "zero date '2024-02-00"),
    ("stamp", "0000-00-00 00:00:00", "zero date '0000-00-00"),
]


@pytest.fixture
def mysql_matrix(mysql_url):
    table = f"m_{uuid.uuid4().hex[:8]}"
    conn = pymysql.connect(
        host="127.0.0.1", user="root", database=mysql_url.rsplit("/", 1)[1], autocommit=True
    )
    with conn.cursor() as cur:
        cur.execute("SET SESSION sql_mode = ''")  # zero dates are what old MySQL data holds
        cols = ", ".join(f"`{c}` {t}" for c, (t, _) in MYSQL_COLUMNS.items())
        cur.execute(f"CREATE TABLE `{table}` (id int PRIMARY KEY, {cols})")
        values = [v for _, v in MYSQL_COLUMNS.values()]
        values[list(MYSQL_COLUMNS).index("tod")] = "12:34:56.5"
        cur.execute(
            f"INSERT INTO `{table}` VALUES ({', '.join(['%s'] * (len(values) + 1))})", [1, *values]
        )
        cur.execute(f"INSERT INTO `{table}` (id) VALUES (2)")
        for i, (column, value, _) in enumerate(MYSQL_BAD, 3):
            cur.execute(f"INSERT INTO `{table}` (id, `{column}`) VALUES (%s, %s)", (i, value))
    try:
        yield mysql_url, table
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS `{table}`")
        conn.close()


@pytest.mark.parametrize("path", ["connectorx", "pymysql"])
def test_mysql_type_matrix(
    destination: DuckDBDestination | PostgresDestination,
    mysql_matrix: tuple[str, str],
    tmp_path: Path,
    path: str,
) -> None:
    """Defects: decimal(10,2) arrived as decimal(38,10); a zero date aborted the read."""
    url, table = mysql_matrix
    golden = GOLDEN["mysql"]
    # a bound parameter sends the read through PyMySQL; both paths deliver the same
    kwargs: dict[str, Any] = (
        {"query": f"SELECT * FROM `{table}` WHERE id > %s", "params": [0]}
        if path == "pymysql"
        else {"table": table}
    )
    result, arrow_schema = _load(SqlSource(url, **kwargs), destination, "loaded", tmp_path)
    assert {c: str(arrow_schema.field(c).type) for c in golden} == {
        c: g["arrow"] for c, g in golden.items()
    }
    assert (result.rows_loaded, result.rows_quarantined) == (2, len(MYSQL_BAD))
    _check(
        destination,
        "loaded",
        golden,
        {c: v for c, (_, v) in MYSQL_COLUMNS.items()},
        destination.dialect,
    )
    reasons = destination.query(
        f"SELECT id, _hr_reason FROM {destination.q('loaded_quarantine')} ORDER BY id"
    ).to_pylist()
    for row, (column, _, fragment) in zip(reasons, MYSQL_BAD, strict=True):
        assert f"column {column!r}" in row["_hr_reason"] and fragment in row["_hr_reason"]


def test_sqlite_declared_types_and_affinity(destination, tmp_path):
    """Declared types give the column's type; a value of another affinity needs types=."""
    path = tmp_path / "src.db"
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE matrix (id INTEGER PRIMARY KEY, n INTEGER, r REAL, t TEXT, b BLOB, d NUMERIC, mixed INTEGER)"
    )
    conn.execute("INSERT INTO matrix VALUES (1, 42, 1.5, 'héllo', x'00ff', 12.5, 7)")
    conn.execute("INSERT INTO matrix VALUES (2, NULL, NULL, NULL, NULL, NULL, 'not a number')")
    conn.commit()
    conn.close()
    golden = GOLDEN["sqlite"]
    src = SqlSource(f"sqlite:///{path}", table="matrix", columns=["id", "n", "r", "t", "b", "d"])
    result, arrow_schema = _load(src, destination, "loaded", tmp_path)
    assert {c: str(arrow_schema.field(c).type) for c in golden} == {
        c: g["arrow"] for c, g in golden.items()
    }
    assert result.rows_loaded == 2
    _check(
        destination,
        "loaded",
        golden,
        {"n": 42, "r": 1.5, "t": "héllo", "b": b"\x00\xff", "d": 12.5},
        destination.dialect,
    )
    # the text value in an INTEGER column: refused, naming the column, unless read as text
    with pytest.raises(Exception, match="mixed"):
        SqlSource(f"sqlite:///{path}", table="matrix", batch_rows=1).read().to_table()
    as_text = (
        SqlSource(f"sqlite:///{path}", table="matrix", types={"mixed": pa.string()})
        .read()
        .to_table()
    )
    assert as_text["mixed"].to_pylist() == ["7", "not a number"]


def test_streamed_extract_quarantines_its_rejects_in_the_same_load(destination, pg_schema):
    """A source's rejects reach ``<table>_quarantine`` in the load that writes the extract:
    rows read = rows loaded + rows quarantined."""
    url, schema = pg_schema
    _pg_matrix(url, schema)
    extract = SqlSource(url, table="matrix", schema=schema).read()
    result = destination.write(extract, "streamed", mode="append")
    assert (result.rows_loaded, result.rows_quarantined) == (2, len(PG_BAD))
    assert extract.rows == result.rows_loaded + result.rows_quarantined
    quarantined = (
        destination.query(
            f"SELECT count(*) AS n FROM {destination.q('streamed_quarantine')} "
            "WHERE _hr_reason IS NOT NULL"
        )
        .column(0)[0]
        .as_py()
    )
    assert quarantined == len(PG_BAD)


def test_postgres_unconstrained_numeric_exact_as_text_and_repeated_names(pg_schema):
    """The documented way out for numeric wider than decimal128(38, 10): read its text;
    a query repeating a column name still reads (as the driver gives it)."""
    url, schema = pg_schema
    _pg_matrix(url, schema)
    src = SqlSource(url, table="matrix", schema=schema, types={"n_any": pa.string()})
    table = src.read().to_table()
    assert table.schema.field("n_any").type == pa.string()
    assert "1.00000000001" in table["n_any"].to_pylist()
    twice = SqlSource(url, query=f'SELECT id, id, n_10_2 FROM "{schema}".matrix WHERE id = 1')
    assert twice.read().to_table().num_rows == 1
