"""Connection URLs, named connections and identifier quoting."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from headrace.config import Settings
from headrace.connectors import ConnectionURL, open_destination, quote_ident, resolve
from headrace.connectors.naming import default_warehouse
from headrace.errors import ConfigError, ConnectorError


def test_parse_backends_options_and_masking() -> None:
    pg = ConnectionURL.parse("postgres://bob:pa%40ss@db:5433/crm?schema=sales&sslmode=disable")
    assert pg.backend == "postgresql" and pg.options == {"schema": "sales"}
    assert (
        pg.url == "postgresql://bob:pa%40ss@db:5433/crm?sslmode=disable"
    )  # headrace options removed
    assert pg.masked == "postgresql://bob:***@db:5433/crm?sslmode=disable"
    assert ConnectionURL.parse("mariadb://root@h/db").backend == "mysql"
    assert ConnectionURL.parse("sqlite:///rel/crm.db").path == "rel/crm.db"
    assert ConnectionURL.parse("duckdb:////abs/w.duckdb").path == "/abs/w.duckdb"
    assert ConnectionURL.parse("duckdb:///:memory:").path == ":memory:"
    with pytest.raises(ConfigError, match="no scheme"):
        ConnectionURL.parse("just-a-name")


def test_resolve_named_connections(tmp_path: Path) -> None:
    settings = Settings.from_env(
        cwd=tmp_path, environ={"HEADRACE_CONN_WAREHOUSE": f"duckdb:///{tmp_path}/w.duckdb"}
    )
    assert resolve("warehouse", settings).backend == "duckdb"
    with pytest.raises(ConfigError, match="HEADRACE_CONN_WAREHOUS.*Did you mean 'warehouse'"):
        resolve("warehous", settings)
    assert default_warehouse(settings) == f"duckdb:///{tmp_path / '.headrace' / 'warehouse.duckdb'}"
    with pytest.raises(
        ConnectorError,
        match="destinations are duckdb, postgresql, delta, iceberg, files and snowflake",
    ):
        open_destination("sqlite:///x.db")


@pytest.mark.parametrize(
    "name", ["plain", "Mixed Case", 'a"b', "x'); DROP TABLE t; --", "ünï`cödé", "a.b"]
)
def test_quote_ident_makes_any_name_one_identifier(name: str) -> None:
    con = duckdb.connect()
    con.execute(
        f"CREATE TABLE {quote_ident(name, 'duckdb')} ({quote_ident(name, 'duckdb')} INTEGER)"
    )
    assert con.execute(
        "SELECT table_name, column_name FROM information_schema.columns"
    ).fetchall() == [(name, name)]
    assert quote_ident("a`b", "mysql") == "`a``b`"
    with pytest.raises(ConnectorError, match="NUL"):
        quote_ident("a\x00b")
