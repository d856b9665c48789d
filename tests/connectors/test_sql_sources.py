"""SQL sources against real PostgreSQL, MariaDB and SQLite: one contract, three backends."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest
from connector_helpers import BASE, HOSTILE_COLUMN, HOSTILE_TABLE, customer_rows, source_for

from headrace.config import Settings
from headrace.connectors import Checkpoint, Cursor, Interval, SqlSource
from headrace.errors import ConfigError, ConnectorError


def test_reads_whole_table_in_bounded_batches(sql_source_url):
    backend, url, _ = sql_source_url
    src = source_for(backend, url, table="customers", batch_rows=16)
    extract = src.read()
    sizes = [b.num_rows for b in extract]
    assert sum(sizes) == 50 and extract.rows == 50
    # memory is bounded by the batch size: no batch holds more than asked for
    assert max(sizes) <= 16 and len(sizes) >= 4


def test_chosen_columns_only(sql_source_url):
    backend, url, _ = sql_source_url
    table = source_for(backend, url, table="customers", columns=["id", "note"]).read().to_table()
    assert table.column_names == ["id", "note"]
    # the SQL-looking value is data, read back unchanged
    assert "'; DROP TABLE customers; --" in table.column("note").to_pylist()


def test_cursor_mode_reads_past_checkpoint_and_reports_max(sql_source_url):
    backend, url, _ = sql_source_url
    src = source_for(backend, url, table="customers")
    types = {"updated_at": pa.timestamp("us")} if backend == "sqlite" else {}
    src = source_for(backend, url, table="customers", types=types)
    cursor = Cursor("updated_at")
    first = src.read(cursor=cursor)
    assert first.to_table().num_rows == 50
    assert first.cursor_max == BASE + dt.timedelta(minutes=50)
    ckpt = Checkpoint("p", "customers", BASE + dt.timedelta(minutes=40))
    again = src.read(cursor=cursor, checkpoint=ckpt).to_table()
    assert sorted(again.column("id").to_pylist()) == list(range(41, 51))


def test_cursor_lookback_rereads_late_window(sql_source_url):
    backend, url, insert = sql_source_url
    types = {"updated_at": pa.timestamp("us")} if backend == "sqlite" else {}
    src = source_for(backend, url, table="customers", types=types)
    cursor = Cursor("updated_at", lookback=dt.timedelta(minutes=5), primary_key=("id",))
    ckpt = Checkpoint("p", "customers", BASE + dt.timedelta(minutes=50))
    # a row committed late, stamped 3 minutes before the checkpoint
    insert([(99, "late", BASE + dt.timedelta(minutes=47), "late")])
    ids = sorted(src.read(cursor=cursor, checkpoint=ckpt).to_table().column("id").to_pylist())
    assert 99 in ids and ids == [45, 46, 47, 48, 49, 50, 99]


def test_interval_mode_is_half_open(sql_source_url):
    backend, url, _ = sql_source_url
    types = {"updated_at": pa.timestamp("us")} if backend == "sqlite" else {}
    src = source_for(backend, url, table="customers", types=types)
    interval = Interval(
        "updated_at", BASE + dt.timedelta(minutes=10), BASE + dt.timedelta(minutes=20)
    )
    ids = sorted(src.read(interval=interval).to_table().column("id").to_pylist())
    assert ids == list(range(10, 20))


def test_hostile_identifiers_and_values_cannot_inject(sql_source_url):
    backend, url, _ = sql_source_url
    src = source_for(backend, url, table=HOSTILE_TABLE, columns=[HOSTILE_COLUMN])
    assert src.read().to_table().to_pylist() == [{HOSTILE_COLUMN: "v'1"}]
    # a cursor value that is an injection attempt is bound, so it only filters
    hostile = Checkpoint("p", "x", "x' OR '1'='1")
    rows = (
        source_for(backend, url, table="customers")
        .read(cursor=Cursor("note"), checkpoint=hostile)
        .to_table()
    )
    assert rows.num_rows == len([r for r in customer_rows() if r[3] > "x' OR '1'='1"])
    # and the table it names is still there
    assert source_for(backend, url, table="customers").read().to_table().num_rows == 50


def test_query_with_bound_params(sql_source_url):
    backend, url, _ = sql_source_url
    placeholder = {"postgresql": "$1", "mysql": "%s", "sqlite": "?"}[backend]
    table = source_for(backend, url, table="customers").table
    from headrace.connectors import quote_ident

    dialect = "mysql" if backend == "mysql" else "postgresql"
    query = f"SELECT id, name FROM {quote_ident(table, dialect)} WHERE id <= {placeholder}"
    if backend == "postgresql":
        base, schema = url.split("?schema=")
        query = query.replace("FROM ", f'FROM "{schema}".')
    src = source_for(backend, url, query=query, params=[5])
    assert sorted(src.read().to_table().column("id").to_pylist()) == [1, 2, 3, 4, 5]
    # a cursor on top of a parameterised query continues the placeholders
    more = src.read(cursor=Cursor("id"), checkpoint=Checkpoint("p", "q", 3)).to_table()
    assert sorted(more.column("id").to_pylist()) == [4, 5]


def test_named_connection_and_masked_errors():
    settings = Settings.from_env(
        environ={"HEADRACE_CONN_CRM": "postgresql://bob:s3cret@127.0.0.1:1/nodb"}
    )
    src = SqlSource.from_url("crm", settings, table="customers")
    with pytest.raises(ConnectorError) as err:
        list(src.read())
    assert "s3cret" not in str(err.value) and "***" in str(err.value)
    with pytest.raises(ConfigError, match="HEADRACE_CONN_CRN.*Did you mean 'crm'"):
        SqlSource.from_url("crn", settings, table="customers")
    with pytest.raises(ConfigError, match="Did you mean 'postgres"):
        SqlSource("postgre://u@h/db", table="t")


def test_sqlite_mixed_types_need_override(tmp_path):
    import sqlite3

    path = tmp_path / "m.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (id integer, zip)")
    conn.executemany("INSERT INTO t VALUES (?, ?)", [(i, i) for i in range(10)] + [(10, "0501A")])
    conn.commit()
    conn.close()
    with pytest.raises(ConnectorError, match="'zip'.*types="):
        list(SqlSource(f"sqlite:///{path}", table="t", batch_rows=4).read())
    table = SqlSource(f"sqlite:///{path}", table="t", types={"zip": pa.string()}).read().to_table()
    assert table.column("zip").to_pylist()[-2:] == ["9", "0501A"]


def test_sqlite_types_follow_the_first_batch_and_a_later_misfit_is_named(tmp_path):
    """Read through the standard library: the rules of the module docstring, row named."""
    import sqlite3

    path = tmp_path / "t.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (id INTEGER, n, r REAL, t TEXT, b BLOB, day DATE)")
    rows = [
        (1, 1, 0.1, "a", b"\x00", None),
        (2, 2.5, 2, 3, "x", None),
        (3, None, None, None, None, None),
    ]
    conn.executemany("INSERT INTO t VALUES (?, ?, ?, ?, ?, ?)", rows)
    conn.execute("CREATE TABLE late (id INTEGER, note TEXT)")
    conn.executemany("INSERT INTO late VALUES (?, ?)", [(1, "a"), (2, "b"), (3, b"\xff")])
    conn.commit()
    conn.close()
    table = SqlSource(f"sqlite:///{path}", table="t").read().to_table()
    assert [str(t) for t in table.schema.types] == [
        "int64",
        "double",
        "double",
        "string",
        "binary",
        "int64",
    ]
    assert table.to_pylist()[1] == {"id": 2, "n": 2.5, "r": 2.0, "t": "3", "b": b"x", "day": None}
    empty = SqlSource(f"sqlite:///{path}", query="SELECT * FROM t WHERE id < 0").read()
    assert [str(t) for t in empty.schema.types] == ["int64"] * 6
    assert empty.to_table().num_rows == 0
    # a blob that is not UTF-8 after a first batch of text: refused with its column and row
    with pytest.raises(
        ConnectorError,
        match=r"table 'late', column 'note', row 2, connection sqlite:///.*: the column is "
        r"string .* this row holds BLOB b'\\xff'.*types=",
    ) as info:
        SqlSource(f"sqlite:///{path}", table="late", batch_rows=2).read().to_table()
    assert (info.value.table, info.value.column, info.value.row) == ("late", "note", 2)
    assert SqlSource(f"sqlite:///{path}", table="late").read().to_table()["note"].to_pylist() == [
        b"a",
        b"b",
        b"\xff",
    ]
    # a real after a first batch of integers is refused (pyarrow alone would truncate it)
    with pytest.raises(
        ConnectorError, match=r"column 'n', row 1, .*: the column is int64 .* holds REAL 2\.5"
    ):
        SqlSource(f"sqlite:///{path}", table="t", batch_rows=1).read().to_table()
    # text that is not UTF-8: named, and read as bytes with a binary override
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO late VALUES (4, CAST(x'ff' AS TEXT))")
    conn.commit()
    conn.close()
    with pytest.raises(ConnectorError, match=r"column 'note'.*types=\{'note': pa.binary\(\)\}"):
        SqlSource(f"sqlite:///{path}", table="late").read().to_table()
    raw = (
        SqlSource(f"sqlite:///{path}", table="late", types={"note": pa.binary()}).read().to_table()
    )
    assert raw["note"].to_pylist() == [b"a", b"b", b"\xff", b"\xff"]


def test_text_override_reads_any_column_as_text(sql_source_url):
    backend, url, _ = sql_source_url
    cursor = Cursor("id")  # a cursor makes MySQL read through the parameterised path too
    for kwargs in ({}, {"cursor": cursor, "checkpoint": Checkpoint("p", "s", 45)}):
        src = source_for(backend, url, table="customers", types={"id": pa.string()})
        table = src.read(**kwargs).to_table()
        assert table.schema.field("id").type == pa.string()
        assert "50" in table.column("id").to_pylist()


def test_postgres_refusing_connection_names_the_server_without_password(pg_url):
    """A server that is not there is a ConnectionFailedError with the password masked."""
    from headrace.connectors import ConnectionFailedError

    with pytest.raises(ConnectionFailedError, match="Cannot connect to PostgreSQL") as err:
        SqlSource("postgresql://bob:s3cret@127.0.0.1:1/nowhere", table="t").read()
    assert "s3cret" not in str(err.value) and "127.0.0.1:1" in str(err.value)


def test_postgres_filter_path_does_not_import_pandas(pg_url):
    """pyarrow imports pandas (~0.5 s) for Python-built arrays; the filter path builds none."""
    import subprocess
    import sys

    code = (
        "import sys, datetime as dt\n"
        "from headrace.connectors import SqlSource, Cursor, Checkpoint\n"
        f"src = SqlSource({pg_url!r}, query='SELECT now()::timestamp AS at')\n"
        "cp = Checkpoint('p', 's', dt.datetime(2000, 1, 1))\n"
        "assert src.read(cursor=Cursor('at'), checkpoint=cp).to_table().num_rows == 1\n"
        "print('pandas' in sys.modules, 'polars' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "False"]
