"""Benchmark: extract 2,000,000 customers from PostgreSQL and load them into DuckDB.

headrace (ADBC stream -> DuckDB, merge + checkpoint in one transaction; and the same as
a declarative sync, with fencing and content load ids) against what
users would pick otherwise: dlt (sql_table source, merge on customer_id, DuckDB
destination, its fastest backend) and pandas.read_sql + DuckDB; the floor is
PostgreSQL's own COPY BINARY to /dev/null. Full loads: best of 5 rounds, the tools taking
turns within a round, each into a fresh file. Incremental runs: best of 3 rounds, each
after a fresh 1% of the rows changed (medians are printed too). Every measurement runs in its own
subprocess so peak RSS (resource.getrusage) is that measurement's alone. dlt and
pandas run from an isolated venv, bench/.envs/extract_load (created on first use).

Run:  .venv/bin/python bench/extract_load.py [--rows 2000000]
Last line: one JSON object with the figures.

Type variants (``--variant decimal`` / ``--variant timestamptz``): the same COPY floors,
headrace extract and full load on a decimal-heavy (ten ``numeric(p,s)`` columns) or a
timestamptz-heavy (eight ``timestamptz`` columns) table of ``--rows`` rows, best of
``FULL_ROUNDS``; no anchors, no incremental runs.
"""

from __future__ import annotations

import argparse  # noqa: E402
import json  # noqa: E402
import os
import resource  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys
import time  # noqa: E402
from pathlib import Path  # noqa: E402

HERE = Path(__file__).resolve().parent
ENV_DIR = HERE / ".envs" / "extract_load"
DATA = HERE / ".data" / "extract_load"
ADMIN = os.environ.get("HEADRACE_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
DB = "headrace_bench"
URL = ADMIN.rsplit("/", 1)[0] + "/" + DB
TABLE = os.environ.get("BENCH_TABLE", "customers")  # the source table (--variant)
ROUNDS = 3  # incremental runs per tool; the best counts
FULL_ROUNDS = 5  # full-load rounds, the tools taking turns; the best counts
ANCHOR_PACKAGES = [
    "dlt[duckdb]",  # dlt 1.31 has no sql_database extra: its sql_table needs pyarrow
    "pyarrow",
    "sqlalchemy",
    "psycopg[binary]",
    "psycopg2-binary",
    "pandas>=2.2",
    "duckdb",
    "connectorx",
]


class _Console:
    """Rich on stderr when available (the anchors' venv runs children without it)."""

    def __init__(self) -> None:
        try:
            from rich.console import Console

            self._rich = Console(stderr=True)
        except ImportError:
            self._rich = None

    def print(self, text: str) -> None:
        if self._rich is not None:
            self._rich.print(text)
        else:
            print(text, file=sys.stderr)

    def status(self, text: str):  # noqa: ANN201
        return self._rich.status(text)


console = _Console()


# -- setup -----------------------------------------------------------------------------


def ensure_table(rows: int) -> None:
    """Create the customers table (rows of realistic width) if absent or of another size."""
    import psycopg

    with psycopg.connect(ADMIN, autocommit=True) as admin:
        if not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB,)).fetchone():
            admin.execute(f'CREATE DATABASE "{DB}"')
    with psycopg.connect(URL, autocommit=True) as conn:
        have = conn.execute("SELECT to_regclass('customers') IS NOT NULL").fetchone()[0]
        if have and conn.execute("SELECT count(*) FROM customers").fetchone()[0] == rows:
            # earlier runs' updates left dead rows: clear them as autovacuum would over time
            conn.execute("VACUUM ANALYZE customers")
            return
        console.print(f"creating customers with {rows:,} rows in {DB} ...")
        conn.execute("DROP TABLE IF EXISTS customers")
        conn.execute(
            """
            CREATE TABLE customers AS SELECT
              g AS customer_id,
              'user' || g || '@Example' || (g % 7) || '.com' AS email,
              'first' || (g % 5000) AS first_name, 'last' || (g % 9000) AS last_name,
              '(555) ' || lpad((g % 1000)::text, 3, '0') || '-' || lpad((g % 10000)::text, 4, '0') AS phone,
              g || ' Main Street' AS address, 'City' || (g % 500) AS city, 'CA' AS state,
              lpad((g % 99999)::text, 5, '0') AS zip_code,
              timestamp '2020-01-01' + g * interval '13 seconds' AS created_at,
              timestamp '2023-01-01' + g * interval '7 seconds' AS updated_at
            FROM generate_series(1, %s) AS g
            """.replace("%s", str(int(rows)))
        )
        conn.execute("ALTER TABLE customers ADD PRIMARY KEY (customer_id)")
        # the cursor column is indexed, as a user reading it incrementally would have it
        conn.execute("CREATE INDEX ON customers (updated_at)")
        conn.execute("VACUUM ANALYZE customers")


VARIANTS = {
    "decimal": (
        "customers_decimal",
        "g AS customer_id, 'user' || g || '@example.com' AS email, "
        + ", ".join(
            f"CAST((g * {k} % 10000000) / 100.0 AS numeric(12, 2)) AS amount_{k}"
            for k in range(1, 9)
        )
        + ", CAST(g / 7.0 AS numeric(18, 6)) AS rate_a, CAST(g / 13.0 AS numeric(18, 6)) AS rate_b, "
        "timestamp '2023-01-01' + g * interval '7 seconds' AS updated_at",
    ),
    "timestamptz": (
        "customers_tstz",
        "g AS customer_id, 'user' || g || '@example.com' AS email, "
        + ", ".join(
            f"timestamptz '2020-01-01 00:00:00+00' + g * interval '{k} seconds' + "
            f"g * interval '1 microsecond' AS at_{k}"
            for k in range(1, 9)
        )
        + ", timestamp '2023-01-01' + g * interval '7 seconds' AS updated_at",
    ),
}


def ensure_variant(variant: str, rows: int) -> None:
    """Create a type-heavy variant table (``VARIANTS``) if absent or of another size."""
    import psycopg

    table, select = VARIANTS[variant]
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        if not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB,)).fetchone():
            admin.execute(f'CREATE DATABASE "{DB}"')
    with psycopg.connect(URL, autocommit=True) as conn:
        have = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()[0]
        if have and conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == rows:
            return
        console.print(f"creating {table} with {rows:,} rows in {DB} ...")
        conn.execute(f"DROP TABLE IF EXISTS {table}")
        conn.execute(
            f"CREATE TABLE {table} AS SELECT {select} FROM generate_series(1, {int(rows)}) AS g"
        )
        conn.execute(f"ALTER TABLE {table} ADD PRIMARY KEY (customer_id)")
        conn.execute(f"VACUUM ANALYZE {table}")


def measure_variant(variant: str) -> dict:
    """Floors, extract and full load on a variant table, best of ``FULL_ROUNDS``
    (``customers``: the plain table, the same four figures only)."""
    os.environ["BENCH_TABLE"] = VARIANTS[variant][0] if variant in VARIANTS else "customers"
    me = sys.executable
    out: dict[str, dict] = {}
    for name in ("copy_floor", "copy_server_floor", "headrace_extract", "headrace_full"):
        runs = []
        for i in range(FULL_ROUNDS):
            target = str(DATA / f"{variant}_{name}_{i}.duckdb")
            runs.append(measure(me, name, target))
        out[name] = best_of(runs)
    out["extract_vs_copy"] = {
        "ratio": round(out["headrace_extract"]["seconds"] / out["copy_floor"]["seconds"], 2)
    }
    return out


def touch_one_percent(batch: int) -> int:
    """Change 1% of the rows (a different 1% per batch) with a fresh updated_at."""
    import psycopg

    with psycopg.connect(URL, autocommit=True) as conn:
        cur = conn.execute(
            "UPDATE customers SET email = 'changed' || %s || '_' || email, "
            "updated_at = clock_timestamp()::timestamp WHERE customer_id %% 100 = %s",
            (batch, batch),
        )
        return cur.rowcount


def ensure_anchor_env() -> Path:
    python = ENV_DIR / "bin" / "python"
    if not python.exists():
        console.print(f"creating the anchors' venv {ENV_DIR} (dlt, pandas) ...")
        subprocess.run([sys.executable, "-m", "venv", str(ENV_DIR)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *ANCHOR_PACKAGES], check=True)
    return python


# -- children: one measurement each -------------------------------------------------------


def child(name: str, target: str) -> dict:
    # Import each tool before the clock starts: the figures compare the work, not imports.
    # Every tool here writes DuckDB through Arrow, so those two are imported for all alike.
    import duckdb  # noqa: F401
    import pyarrow  # noqa: F401

    if name.startswith("headrace"):
        import headrace.connectors  # noqa: F401
        import headrace.sync.execute  # noqa: F401
    elif name.startswith("dlt"):
        import dlt  # noqa: F401
        from dlt.sources.sql_database import sql_table  # noqa: F401
    elif name.startswith("pandas"):
        import pandas  # noqa: F401
        import sqlalchemy  # noqa: F401
    t0 = time.perf_counter()
    rows = CHILDREN[name](target)
    seconds = time.perf_counter() - t0
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "name": name,
        "seconds": round(seconds, 3),
        "rss_mb": round(rss_mb, 1),
        "rows": rows,
        **EXTRA,
    }


EXTRA: dict = {}  # what a child adds to its result (headrace: whether the merge compacted)


def copy_floor(_: str) -> int:
    import psycopg

    n = 0
    with (
        psycopg.connect(URL) as conn,
        conn.cursor() as cur,
        open(os.devnull, "wb") as null,
        cur.copy(f"COPY (SELECT * FROM {TABLE}) TO STDOUT (FORMAT BINARY)") as copy,
    ):
        for chunk in copy:
            null.write(chunk)
            n += 1
    return n


def copy_server_floor(_: str) -> int:
    """PostgreSQL's COPY BINARY written by the server itself to /dev/null: no client at
    all, so the least any reader can take (needs a superuser, as the benchmark's is)."""
    import psycopg

    with psycopg.connect(URL, autocommit=True) as conn:
        cur = conn.execute(f"COPY (SELECT * FROM {TABLE}) TO '/dev/null' (FORMAT BINARY)")
        return cur.rowcount


def headrace_extract(_: str) -> int:
    from headrace.connectors import SqlSource

    extract = SqlSource(URL, table=TABLE).read()
    for _batch in extract:
        pass
    return extract.rows


def headrace_full(target: str) -> int:
    from headrace.connectors import Checkpoint, Cursor, DuckDBDestination, SqlSource

    dest = DuckDBDestination(target)
    extract = SqlSource(URL, table=TABLE).read(cursor=Cursor("updated_at"))
    result = dest.write(  # streamed: the checkpoint is the cursor's maximum at the end
        extract,
        "customers",
        mode="replace",
        checkpoint=lambda: Checkpoint("bench", "customers", extract.cursor_max),
    )
    return result.rows_loaded


def headrace_full_part(target: str) -> int:
    """The same full load of a part of the rows (BENCH_PART): peak memory should not follow
    the size."""
    from headrace.connectors import DuckDBDestination, SqlSource

    part = float(os.environ["BENCH_PART"])
    rows = int(int(os.environ["BENCH_ROWS"]) * part)
    query = f"SELECT * FROM customers WHERE customer_id <= {rows}"  # a constant of the benchmark
    if part == 2:  # twice the table: the same rows read twice
        query = "SELECT * FROM customers UNION ALL SELECT * FROM customers"
    return (
        DuckDBDestination(target)
        .write(SqlSource(URL, query=query).read(), "customers", mode="replace")
        .rows_loaded
    )


def headrace_incremental(target: str) -> int:
    from headrace.connectors import Checkpoint, Cursor, DuckDBDestination, SqlSource

    dest = DuckDBDestination(target)
    cursor = Cursor("updated_at")
    with dest.session():  # one open of the DuckDB file for the checkpoint and the merge
        extract = SqlSource(URL, table="customers").read(
            cursor=cursor, checkpoint=dest.checkpoint("bench", "customers")
        )
        table = extract.to_table()
        result = dest.write(
            table,
            "customers",
            mode="merge",
            keys=["customer_id"],
            checkpoint=Checkpoint("bench", "customers", extract.cursor_max),
        )
    EXTRA["compacted"] = result.compacted
    return result.rows_loaded


def _sync_run(target: str, incremental: str) -> dict:
    """The declarative sync of the same table, called as the engine calls its task (fenced
    load, content load id, reconciliation before commit). ``incremental``: "full" (a full
    refresh: replace) or "cursor" (updated_at, merged on customer_id)."""
    import datetime as dt

    from headrace import Context, cursor, destination, full, sql_source, sync
    from headrace.config import Settings

    mode = "replace" if incremental == "full" else "merge"
    customers = sync(
        "customers",
        source=sql_source(URL, table="customers"),
        incremental=full() if incremental == "full" else cursor("updated_at"),
        destination=destination(
            "warehouse", table="customers", mode=mode, keys="customer_id", metadata=False
        ),
    )
    settings = Settings.from_env(
        environ={"HEADRACE_CONN_WAREHOUSE": f"duckdb:///{target}", "HEADRACE_HOME": str(DATA)}
    )
    now = dt.datetime.now(dt.UTC)
    ctx = Context("bench", "bench", "customers", now, now, now, settings, DATA)
    return customers.task.fn(ctx)


def headrace_sync_full(target: str) -> int:
    """A full-refresh sync (``full()``, replace): the same work as headrace_full."""
    return _sync_run(target, "full")["loaded"]


def headrace_sync_first(target: str) -> int:
    """A cursor sync's first run: no checkpoint yet, every row merged into a new table."""
    return _sync_run(target, "cursor")["loaded"]


def headrace_sync_incremental(target: str) -> int:
    """A cursor sync after 1% of the rows changed (the primitives: headrace_incremental)."""
    return _sync_run(target, "cursor")["loaded"]


def _dlt_pipeline(target: str):  # noqa: ANN202 - runs in the anchors' venv
    import dlt

    return dlt.pipeline(
        pipeline_name="bench_customers",
        destination=dlt.destinations.duckdb(target),
        pipelines_dir=str(Path(target).parent / "dlt_pipelines"),
        dataset_name="bench",
    )


def dlt_load(target: str) -> int:
    import dlt
    from dlt.sources.sql_database import sql_table

    backend = os.environ.get("BENCH_DLT_BACKEND", "connectorx")
    source = sql_table(
        credentials=URL,
        table="customers",
        backend=backend,
        chunk_size=100_000,
        incremental=dlt.sources.incremental("updated_at"),
        **({"backend_kwargs": {"conn": URL}} if backend == "connectorx" else {}),
    )
    pipeline = _dlt_pipeline(target)
    pipeline.run(source, write_disposition="merge", primary_key="customer_id")
    counts = pipeline.last_trace.last_normalize_info.row_counts
    return int(counts.get("customers", 0))


def pandas_full(target: str) -> int:
    import duckdb
    import pandas as pd
    import sqlalchemy as sa

    df = pd.read_sql(
        "SELECT * FROM customers",
        sa.create_engine(URL.replace("postgresql://", "postgresql+psycopg2://")),
    )
    with duckdb.connect(target) as con:
        con.execute("CREATE OR REPLACE TABLE customers AS SELECT * FROM df")
    return len(df)


def pandas_incremental(target: str) -> int:
    import duckdb
    import pandas as pd
    import sqlalchemy as sa

    with duckdb.connect(target) as con:
        (last,) = con.execute("SELECT max(updated_at) FROM customers").fetchone()
        df = pd.read_sql(
            sa.text("SELECT * FROM customers WHERE updated_at > :last"),
            sa.create_engine(URL.replace("postgresql://", "postgresql+psycopg2://")),
            params={"last": last},
        )
        con.begin()
        con.execute("DELETE FROM customers WHERE customer_id IN (SELECT customer_id FROM df)")
        con.execute("INSERT INTO customers SELECT * FROM df")
        con.commit()
    return len(df)


def duckdb_merge_strategies(target: str) -> int:
    """Apply the same 1% delta three ways to copies of the loaded table; print each time."""
    import duckdb

    timings = {}
    with duckdb.connect(target) as con:
        delta = con.sql(
            "SELECT * REPLACE ('new_' || email AS email, address || ' B' AS address) "
            "FROM customers WHERE customer_id % 100 = 42"
        ).to_arrow_table()
        con.register("delta", delta)
        for how, sql in [
            (
                "delete_insert",
                "DELETE FROM c USING delta d WHERE c.customer_id = d.customer_id; "
                "INSERT INTO c SELECT * FROM delta",
            ),
            (
                "merge_into",
                "MERGE INTO c USING delta d ON c.customer_id = d.customer_id "
                "WHEN MATCHED THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT *",
            ),
            (
                "on_conflict",
                "INSERT INTO c SELECT * FROM delta ON CONFLICT (customer_id) DO UPDATE SET "
                "email = excluded.email, address = excluded.address, updated_at = excluded.updated_at",
            ),
        ]:
            con.execute("DROP TABLE IF EXISTS c")
            con.execute("CREATE TABLE c AS SELECT * FROM customers")
            if how == "on_conflict":
                con.execute("CREATE UNIQUE INDEX c_key ON c (customer_id)")
            con.execute("CHECKPOINT")
            t0 = time.perf_counter()
            con.begin()
            for statement in sql.split("; "):
                con.execute(statement)
            con.commit()
            timings[how] = round(time.perf_counter() - t0, 3)
        con.execute("DROP TABLE c")
    print(json.dumps({"merge_strategies_s": timings}), file=sys.stderr)
    return delta.num_rows


CHILDREN = {
    "duckdb_merge_strategies": duckdb_merge_strategies,
    "copy_floor": copy_floor,
    "copy_server_floor": copy_server_floor,
    "headrace_extract": headrace_extract,
    "headrace_full": headrace_full,
    "headrace_incremental": headrace_incremental,
    "headrace_full_quarter": headrace_full_part,
    "headrace_full_half": headrace_full_part,
    "headrace_full_double": headrace_full_part,
    "dlt_full": dlt_load,
    "dlt_incremental": dlt_load,
    "headrace_sync_full": headrace_sync_full,
    "headrace_sync_first": headrace_sync_first,
    "headrace_sync_incremental": headrace_sync_incremental,
    "pandas_full": pandas_full,
    "pandas_incremental": pandas_incremental,
}


def measure(python: Path | str, name: str, target: str = "") -> dict:
    env = dict(os.environ)
    if str(python) != sys.executable:
        env.pop("PYTHONPATH", None)
    done = subprocess.run(
        [str(python), __file__, "--child", name, "--target", target],
        capture_output=True,
        text=True,
        env=env,
    )
    if done.returncode != 0:
        raise SystemExit(f"{name} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    for line in done.stderr.splitlines():
        if line.startswith('{"merge_strategies_s"'):
            result.update(json.loads(line))
            console.print(f"  DuckDB merge of a 1% delta: {result['merge_strategies_s']}")
    console.print(f"  {name:22s} {result['seconds']:8.2f} s   peak RSS {result['rss_mb']:7.0f} MB")
    return result


def incremental(
    python: Path | str, name: str, target: str, first_batch: int, rounds: int = ROUNDS
) -> dict:
    """Incremental runs, each after a fresh 1% of the rows changed: best of the first
    ``ROUNDS`` (every tool gets the same), and the mean of all ``rounds``.

    One run is at the mercy of the shared machine (0.7-1.3 s seen for the same run).
    headrace runs more rounds so that its mean includes the compaction a DuckDB merge
    does once 10% of the table has been replaced. Batches ``first_batch``, +3, +6...:
    each tool's own.
    """
    runs = []
    for i in range(rounds):
        touch_one_percent(first_batch + 3 * i)
        runs.append(measure(python, name, target))
    result = best_of(runs[:ROUNDS])
    result["mean_all"] = round(sum(run["seconds"] for run in runs) / len(runs), 3)
    result["compactions"] = sum(bool(run.get("compacted")) for run in runs)
    result["rounds"] = len(runs)
    return result


def best_of(runs: list[dict]) -> dict:
    """The fastest run, with every run's time and the median beside it."""
    best = min(runs, key=lambda run: run["seconds"])
    seconds = sorted(run["seconds"] for run in runs)
    return {
        **best,
        "all_seconds": [run["seconds"] for run in runs],
        "median": seconds[len(seconds) // 2],
        "rss_mb": max(run["rss_mb"] for run in runs),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--child")
    parser.add_argument("--target", default="")
    parser.add_argument("--skip-anchors", action="store_true")
    parser.add_argument(
        "--merge-strategies",
        action="store_true",
        help="also time DELETE+INSERT, MERGE INTO and ON CONFLICT in DuckDB",
    )
    parser.add_argument(
        "--variant",
        choices=["plain", "customers", *VARIANTS],
        default="plain",
        help="plain: everything; customers/decimal/timestamptz: floors, extract, full load",
    )
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.target)))
        return
    if args.variant != "plain":
        if args.variant == "customers":
            ensure_table(args.rows)
        else:
            ensure_variant(args.variant, args.rows)
        shutil.rmtree(DATA, ignore_errors=True)
        DATA.mkdir(parents=True)
        print(
            json.dumps(
                {"variant": args.variant, "rows": args.rows, **measure_variant(args.variant)}
            )
        )
        return
    ensure_table(args.rows)
    shutil.rmtree(DATA, ignore_errors=True)
    DATA.mkdir(parents=True)
    me = sys.executable
    anchors = None if args.skip_anchors else ensure_anchor_env()
    r: dict[str, dict] = {}
    with console.status("measuring ...") as status:
        for name in ("copy_floor", "copy_server_floor", "headrace_extract"):
            status.update(name)
            r[name] = measure(me, name)
        # Full loads: FULL_ROUNDS rounds, the tools taking turns within each, best of each.
        # The VM's speed drifts (the same run took 2.5 s and 4.2 s ten minutes apart);
        # taking turns gives every tool the same slow and fast moments.
        fulls = [("headrace_full", me, "headrace"), ("headrace_sync_full", me, "sync_full")]
        if anchors is not None:
            fulls += [("dlt_full", anchors, "dlt"), ("pandas_full", anchors, "pandas")]
        runs: dict[str, list[dict]] = {name: [] for name, _, _ in fulls}
        for i in range(FULL_ROUNDS):
            for name, python, stem in fulls:
                status.update(f"{name} (round {i + 1} of {FULL_ROUNDS})")
                target = DATA / f"{stem}.duckdb"
                for leftover in DATA.glob(f"{stem}*"):  # a fresh destination every round
                    shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
                runs[name].append(measure(python, name, str(target)))
        for name, done in runs.items():
            r[name] = best_of(done)
        status.update("headrace_incremental")
        r["headrace_incremental"] = incremental(
            me, "headrace_incremental", str(DATA / "headrace.duckdb"), 1, rounds=4 * ROUNDS
        )
        status.update("headrace_sync_incremental")  # the declarative sync, same 1% changes
        r["headrace_sync_first"] = measure(me, "headrace_sync_first", str(DATA / "sync.duckdb"))
        r["headrace_sync_incremental"] = incremental(
            me, "headrace_sync_incremental", str(DATA / "sync.duckdb"), 1, rounds=4 * ROUNDS
        )
        os.environ["BENCH_ROWS"] = str(args.rows)
        for name, part in (
            ("headrace_full_quarter", "0.25"),
            ("headrace_full_half", "0.5"),
            ("headrace_full_double", "2"),
        ):
            os.environ["BENCH_PART"] = part
            r[name] = measure(me, name, str(DATA / f"{name}.duckdb"))
        if args.merge_strategies:
            status.update("DuckDB merge strategies")
            r["merge"] = measure(me, "duckdb_merge_strategies", str(DATA / "headrace.duckdb"))
        if anchors is not None:
            status.update("dlt_incremental")
            r["dlt_incremental"] = incremental(
                anchors, "dlt_incremental", str(DATA / "dlt.duckdb"), 2
            )
            status.update("pandas_incremental")
            r["pandas_incremental"] = incremental(
                anchors, "pandas_incremental", str(DATA / "pandas.duckdb"), 3
            )
    full, inc, ext = (
        r[k]["seconds"] for k in ("headrace_full", "headrace_incremental", "headrace_extract")
    )

    def ratio(name: str, base: float) -> float | None:
        return round(r[name]["seconds"] / base, 2) if name in r else None

    summary = {
        "rows": args.rows,
        "copy_floor_s": r["copy_floor"]["seconds"],
        "headrace_extract_s": ext,
        "headrace_full_load_s": full,
        "headrace_incremental_s": inc,
        "headrace_incremental_median_s": r["headrace_incremental"]["median"],
        "headrace_incremental_mean_of_12_s": r["headrace_incremental"]["mean_all"],
        "headrace_peak_rss_mb": max(
            r[k]["rss_mb"] for k in ("headrace_extract", "headrace_full", "headrace_incremental")
        ),
        "headrace_peak_rss_mb_quarter_rows": r["headrace_full_quarter"]["rss_mb"],
        "headrace_peak_rss_mb_half_rows": r["headrace_full_half"]["rss_mb"],
        "headrace_peak_rss_mb_double_rows": r["headrace_full_double"]["rss_mb"],
        "headrace_full_load_peak_rss_mb": r["headrace_full"]["rss_mb"],
        "rounds_s": {k: r[k]["all_seconds"] for k in r if "all_seconds" in r[k]},
        "headrace_incremental_compactions": r["headrace_incremental"].get("compactions"),
        "sync_full_load_s": r["headrace_sync_full"]["seconds"],
        "sync_first_run_s": r["headrace_sync_first"]["seconds"],
        "sync_incremental_s": r["headrace_sync_incremental"]["seconds"],
        "sync_incremental_median_s": r["headrace_sync_incremental"]["median"],
        "sync_full_over_headrace": ratio("headrace_sync_full", full),
        "sync_incremental_over_headrace": ratio("headrace_sync_incremental", inc),
        "dlt_full_over_headrace": ratio("dlt_full", full),
        "dlt_incremental_over_headrace": ratio("dlt_incremental", inc),
        "pandas_incremental_over_headrace": ratio("pandas_incremental", inc),
        "pandas_full_over_headrace": ratio("pandas_full", full),
        "copy_floor_over_headrace_extract": round(r["copy_floor"]["seconds"] / ext, 2),
        # the server writing its own COPY to /dev/null: no client decoding at all
        "copy_server_floor_s": r["copy_server_floor"]["seconds"],
        "copy_server_floor_over_headrace_extract": round(
            r["copy_server_floor"]["seconds"] / ext, 2
        ),
    }
    if "merge" in r:
        summary["duckdb_merge_strategies_s"] = r["merge"]["merge_strategies_s"]
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
