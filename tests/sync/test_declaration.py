"""The declarative sync as users write it: transforms of each kind, file sources, a task in
a pipeline with a downstream task, a one-task pipeline, replays and definition errors."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

from headrace import (
    Context,
    cursor,
    destination,
    file_source,
    full,
    interval,
    pipeline,
    sql_source,
    sync,
    task,
)
from headrace.config import Settings
from headrace.connectors import open_destination
from headrace.engine import Runner
from headrace.errors import DefinitionError
from headrace.quality import matches_regex, not_null
from headrace.state import open_store


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    (tmp_path / "landing").mkdir()
    (tmp_path / "landing" / "a.csv").write_text(
        "id,email,updated_at\n1,A@x.io,2024-01-01 00:00:00\n2,bad,2024-01-01 00:01:00\n"
    )
    (tmp_path / "landing" / "b.csv").write_text(
        "id,email,updated_at\n3,c@x.io,2024-01-01 00:02:00\n"
    )
    return Settings.from_env(
        tmp_path,
        environ={"HEADRACE_HOME": str(tmp_path / ".headrace"),
                 "HEADRACE_CONN_WAREHOUSE": f"duckdb:///{tmp_path / 'wh.duckdb'}"},
    )  # fmt: skip


def run(settings: Settings, p: object) -> object:
    settings.home.mkdir(parents=True, exist_ok=True)
    with open_store(settings.state_url) as store:
        result = Runner(store, executor="inprocess", settings=settings).run(p)  # type: ignore[arg-type]
    assert result.state == "success", [t.error for t in result.tasks]
    return result


def emails(settings: Settings, table: str) -> list[tuple]:
    dest = open_destination("warehouse", settings)
    data = dest.query(f"SELECT id, email FROM {dest.q(table)} ORDER BY id")
    return list(zip(data.column("id").to_pylist(), data.column("email").to_pylist(), strict=True))


CHECKS = [not_null("id"), matches_regex("email", r"@", severity="quarantine", reason="no @")]


def lower_polars(df: pl.DataFrame) -> pl.DataFrame:
    return df.with_columns(pl.col("email").str.to_lowercase())


def lower_arrow(ctx: Context, table: pa.Table) -> pa.Table:
    assert ctx.task_id == "users"
    import pyarrow.compute as pc

    return table.set_column(1, "email", pc.utf8_lower(table.column("email")))


def lower_pandas(df: pd.DataFrame) -> pd.DataFrame:
    return df.assign(email=df["email"].str.lower())


@pytest.mark.parametrize(
    "transform",
    [
        lower_polars,
        lower_arrow,
        lower_pandas,
        "SELECT id, lower(email) AS email, updated_at FROM rows",
    ],
    ids=["polars", "arrow+ctx", "pandas", "duckdb-sql"],
)
def test_transform_kinds_with_files_and_quarantine(settings: Settings, transform: object) -> None:
    users = sync(
        "users",
        source=file_source(str(settings.home.parent / "landing" / "*.csv")),
        transform=transform,  # type: ignore[arg-type]
        checks=CHECKS,
        destination=destination("warehouse", table="users", mode="merge", keys="id"),
    )
    result = run(settings, users.pipeline(name="users_once"))
    stats = result.result_of("users")  # type: ignore[attr-defined]
    assert (stats["extracted"], stats["loaded"], stats["quarantined"]) == (3, 2, 1)
    assert stats["source"].startswith("files:") and stats["destination"] == "warehouse.users"
    assert emails(settings, "users") == [(1, "a@x.io"), (3, "c@x.io")]
    assert emails(settings, "users_quarantine") == [(2, "bad")]
    # the same files again: the same content and range, so the same load: a no-op
    again = run(settings, users.pipeline(name="users_once")).result_of("users")  # type: ignore[attr-defined]
    assert again["already_loaded"] and again["load_id"] == stats["load_id"]
    assert emails(settings, "users_quarantine") == [(2, "bad")]


def test_a_sync_is_a_task_of_any_pipeline(settings: Settings, tmp_path: Path) -> None:
    users = sync(
        "users",
        source=file_source(
            str(tmp_path / "landing" / "*.csv"), types={"updated_at": pa.timestamp("us")}
        ),
        incremental=cursor("updated_at"),
        checks=CHECKS,  # row-level only and no transform: the streamed path
        destination=destination("warehouse", table="users", mode="append"),
    )

    @task
    def report(stats: dict) -> str:
        return f"{stats['loaded']} loaded, {stats['quarantined']} quarantined"

    @pipeline
    def nightly() -> None:
        report(users())

    assert run(settings, nightly).result_of("report") == "2 loaded, 1 quarantined"  # type: ignore[attr-defined]
    (tmp_path / "landing" / "c.csv").write_text(
        "id,email,updated_at\n4,d@x.io,2024-01-02 00:00:00\n"
    )
    second = run(settings, nightly).result_of("users")  # type: ignore[attr-defined]
    assert (second["extracted"], second["loaded"]) == (1, 1)  # past the checkpoint only
    assert [i for i, _ in emails(settings, "users")] == [1, 3, 4]


def test_definition_mistakes_are_named() -> None:
    src = sql_source("crm", table="customers")
    with pytest.raises(DefinitionError, match="lookback"):
        sync("c", source=src, incremental=cursor("u", lookback=dt.timedelta(minutes=1), primary_key="id"),
             destination=destination("warehouse", table="c", mode="append"))  # fmt: skip
    with pytest.raises(DefinitionError, match="append"):
        sync("c", source=src, incremental=interval("day"),
             destination=destination("warehouse", table="c", mode="append"))  # fmt: skip
    with pytest.raises(DefinitionError, match=r"table 'c': mode='merge' needs keys") as info:
        destination("warehouse", table="c", mode="merge")
    assert info.value.table == "c"
    with pytest.raises(DefinitionError, match=r"table 'c', column 'id': unknown keys \['dock'\]"):
        destination("warehouse", table="c", columns={"id": {"dock": "x"}})
    with pytest.raises(DefinitionError, match="exactly one"):
        sql_source("crm")
    assert "secret" not in sql_source("postgresql://u:secret@h/db", table="t").dataset
    one = sync("c", source=src, incremental=full(), destination=destination("warehouse", table="c"))
    assert one.pipeline(schedule="@daily").tasks["c"].task_id == "c"
    # defined at the .pipeline() call, in this module: where workers import it again
    daily, line = one.pipeline(name="c_daily"), sys._getframe().f_lineno
    assert (daily.name, daily.file, daily.line, daily.module) == (
        "c_daily",
        __file__,
        line,
        __name__,
    )


def test_destination_mode_is_checked_when_declared() -> None:
    from headrace.connectors import WriteMode
    from headrace.sync.sync_spec import WRITE_MODES

    assert tuple(WriteMode) == WRITE_MODES
    assert destination("warehouse", table="t", mode=WriteMode.MERGE, keys="id").mode == "merge"
    with pytest.raises(
        DefinitionError, match=r"table 't': unknown mode 'upsert'; use one of append, replace"
    ) as info:
        destination("warehouse", table="t", mode="upsert")
    assert info.value.table == "t"
