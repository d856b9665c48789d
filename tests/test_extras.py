"""Optional extras: a missing one is named at the point of use, the core runs without any.

Each test runs headrace in a subprocess whose import system refuses the packages of
one extra (a ``sitecustomize`` meta-path finder, so the process-pool executor's
children refuse them too), then uses the integration the way a user would: through
the CLI, the engine, or the public API. The core paths run with every extra refused.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

from headrace.extras import EXTRAS, MissingExtraError

ROOT = Path(__file__).resolve().parents[1]
PG = "postgresql://postgres@127.0.0.1:5432/postgres"
MYSQL = "mysql://root@127.0.0.1:3306/test"

# Top-level modules each extra brings; refusing them is what "not installed" looks like.
EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "postgres": (
        "psycopg",
        "psycopg_binary",
        "psycopg_c",
        "adbc_driver_postgresql",
        "adbc_driver_manager",
    ),
    "mysql": ("connectorx", "pymysql"),
    "queue": ("bullmq", "redis", "hiredis"),
    "web": ("fastapi", "starlette", "uvicorn", "jinja2"),
    "avro": ("fastavro",),
    "streams": ("nats", "boto3", "botocore"),
    "metrics": ("prometheus_client",),
    "polars": ("polars",),
    "pandas": ("pandas",),
    "mcp": ("mcp", "sqlglot"),
    "lineage": ("openlineage", "sqlglot"),
    "lakehouse": ("deltalake", "pyiceberg", "s3fs"),
    "spark": ("pyspark",),
    "snowflake": ("snowflake",),
}
# Packages the core no longer depends on, for its install size (bench/install_size.py):
# the core paths below run with them refused as well.
NOT_CORE = ("numpy", "adbc_driver_manager", "adbc_driver_sqlite", "httpx")
EVERY_EXTRA = ",".join([m for modules in EXTRA_MODULES.values() for m in modules] + list(NOT_CORE))

SITECUSTOMIZE = '''
import os, sys
from importlib.abc import MetaPathFinder

_REFUSED = {m for m in os.environ.get("HEADRACE_TEST_REFUSE", "").split(",") if m}


class _Refuse(MetaPathFinder):
    """Import of a refused top-level package fails as if it were not installed."""

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in _REFUSED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


if _REFUSED:
    sys.meta_path.insert(0, _Refuse())
'''

# Runs a snippet; prints the MissingExtraError's fields as JSON, or null if none was raised.
WRAPPER = """
import json
from headrace.extras import MissingExtraError
try:
{body}
except MissingExtraError as exc:
    print(json.dumps({{"extra": exc.extra, "module": exc.module, "message": str(exc)}}))
else:
    print("null")
"""


@pytest.fixture(scope="module")
def refuse_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("refuse")
    (folder / "sitecustomize.py").write_text(SITECUSTOMIZE)
    return folder


def _env(refuse_dir: Path, refused: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(refuse_dir), env.get("PYTHONPATH")) if p)
    env["HEADRACE_TEST_REFUSE"] = refused
    env["COLUMNS"] = "200"
    env.pop("HEADRACE_STATE_URL", None)
    return env


def run_cli(
    args: list[str], refuse_dir: Path, refused: str, cwd: Path
) -> subprocess.CompletedProcess[str]:
    """``headrace ARGS`` in ``cwd`` with the modules of ``refused`` not importable."""
    return subprocess.run(
        [sys.executable, "-c", "from headrace.cli import main; main()", *args],
        cwd=cwd,
        env=_env(refuse_dir, refused),
        capture_output=True,
        text=True,
        timeout=120,
    )


def run_snippet(body: str, refuse_dir: Path, refused: str, cwd: Path) -> dict | None:
    """The MissingExtraError fields a snippet raised (None if it raised none)."""
    code = WRAPPER.format(body=textwrap.indent(textwrap.dedent(body), "    "))
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env=_env(refuse_dir, refused),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def one_line(text: str) -> str:
    """Rich wraps long lines: join them back."""
    return " ".join(text.split())


def test_extras_of_pyproject_are_described_and_tested() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    integrations = set(extras) - {"all", "dev"}
    assert integrations == set(EXTRAS) == set(EXTRA_MODULES)
    assert extras["all"] == [f"headrace[{','.join(sorted(integrations, key=list(EXTRAS).index))}]"]
    assert "headrace[all]" in extras["dev"]


def test_refusing_a_package_makes_it_unimportable(refuse_dir: Path, tmp_path: Path) -> None:
    # Without this the tests below could pass with every package importable.
    done = subprocess.run(
        [sys.executable, "-c", "import connectorx"],
        env=_env(refuse_dir, "connectorx"),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1
    assert "No module named 'connectorx'" in done.stderr


def test_missing_extra_error_keeps_its_fields_across_processes() -> None:
    import pickle

    error = pickle.loads(pickle.dumps(MissingExtraError("mysql", "connectorx", "MySQL source")))
    assert (error.extra, error.module, error.feature) == ("mysql", "connectorx", "MySQL source")
    assert str(error) == (
        "MySQL source needs the 'mysql' extra (module 'connectorx' is not installed): "
        "pip install 'headrace[mysql]'"
    )


MYSQL_PIPELINE = f'''
from headrace import pipeline, task
from headrace.connectors import SqlSource


@task
def extract() -> int:
    return SqlSource("{MYSQL}", table="customers").read().to_table().num_rows


@pipeline
def from_mysql():
    extract()
'''


@pytest.mark.slow
def test_mysql_source_in_a_run_names_the_extra(refuse_dir: Path, tmp_path: Path) -> None:
    # The default process executor: the error crosses from the task's process intact.
    (tmp_path / "from_mysql.py").write_text(MYSQL_PIPELINE)
    done = run_cli(["run", "from_mysql.py"], refuse_dir, "connectorx,pymysql", tmp_path)
    out = one_line(done.stdout + done.stderr)
    assert done.returncode == 1
    assert "MySQL source needs the 'mysql' extra" in out
    assert "pip install 'headrace[mysql]'" in out
    assert "Traceback" not in out


POLARS_PIPELINE = """
from __future__ import annotations

import pyarrow as pa

from headrace import pipeline, task


@task
def extract() -> pa.Table:
    return pa.table({"id": [1, 2, 3]})


@task
def total(rows: pl.DataFrame) -> int:  # the annotation asks for Polars; it is never imported
    return int(rows["id"].sum())


@pipeline
def polars_task():
    total(extract())
"""

POLARS_SYNC = """
from __future__ import annotations

import pyarrow as pa
import pyarrow.csv

from headrace import destination, sync
from headrace.sync import file_source

pyarrow.csv.write_csv(pa.table({"id": [1, 2]}), "rows.csv")


def clean(df):  # no annotation: a sync transform receives Polars
    return df


rows = sync(
    "rows",
    source=file_source("rows.csv"),
    transform=clean,
    destination=destination("duckdb:///w.duckdb", table="rows"),
)
polars_sync = rows.pipeline(name="polars_sync")
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("source", "feature"),
    [
        (POLARS_PIPELINE, "a task table as a Polars frame"),
        (POLARS_SYNC, "a sync transform taking a Polars DataFrame"),
    ],
    ids=["task parameter", "sync transform"],
)
def test_polars_tables_name_the_polars_extra(
    source: str, feature: str, refuse_dir: Path, tmp_path: Path
) -> None:
    (tmp_path / "uses_polars.py").write_text(source)
    done = run_cli(["run", "uses_polars.py"], refuse_dir, "polars", tmp_path)
    out = one_line(done.stdout + done.stderr)
    assert done.returncode == 1, out
    assert f"{feature}" in out and "needs the 'polars' extra" in out, out
    assert "pip install 'headrace[polars]'" in out
    assert "Traceback" not in out


SNIPPETS = {
    "mysql SQL task": (
        "mysql",
        f'from headrace.tasks.sql_statement import run_sql\nrun_sql("{MYSQL}", "SELECT 1", {{}})',
    ),
    "postgres source": (
        "postgres",
        f'from headrace.connectors import SqlSource\nSqlSource("{PG}", table="t").read().to_table()',
    ),
    "postgres destination": (
        "postgres",
        "import pyarrow as pa\nfrom headrace.connectors import open_destination\n"
        f'open_destination("{PG}").write(pa.table({{"a": [1]}}), "t")',
    ),
    "postgres state store": (
        "postgres",
        f'from headrace.state import open_store\nopen_store("{PG}")',
    ),
    "postgres SQL task": (
        "postgres",
        f'from headrace.tasks.sql_statement import run_sql\nrun_sql("{PG}", "SELECT 1", {{}})',
    ),
    "delta destination": (
        "lakehouse",
        "from headrace.connectors import open_destination\nopen_destination('delta:///tmp/x')",
    ),
    "iceberg destination": (
        "lakehouse",
        "from headrace.connectors import open_destination\n"
        "open_destination('iceberg+sqlite:///c.db?warehouse=/tmp/w')",
    ),
    "spark session": (
        "spark",
        "from headrace.config import SparkSettings\n"
        "from headrace.executors.spark import spark_session\nspark_session(SparkSettings())",
    ),
    "snowflake destination": (
        "snowflake",
        "from headrace.connectors import open_destination\n"
        "open_destination('snowflake://u:p@acct/db/sch')",
    ),
    "queue API": ("queue", "from headrace.queue import Queue"),
    "nats stream": ("streams", 'from headrace.streams import nats_stream\nnats_stream("s").open()'),
    "kinesis stream": (
        "streams",
        'from headrace.streams import kinesis_stream\nkinesis_stream("s").open()',
    ),
    "web API": ("web", "from headrace.web import create_app"),
    "polars result": (
        "polars",
        'from headrace.analytics import Analyzer\nAnalyzer().query("SELECT 1 AS x").polars()',
    ),
    "pandas result": (
        "pandas",
        'from headrace.analytics import Analyzer\nAnalyzer().query("SELECT 1 AS x").pandas()',
    ),
}


@pytest.mark.parametrize("case", list(SNIPPETS))
def test_api_names_the_missing_extra(case: str, refuse_dir: Path, tmp_path: Path) -> None:
    extra, body = SNIPPETS[case]
    raised = run_snippet(body, refuse_dir, ",".join(EXTRA_MODULES[extra]), tmp_path)
    assert raised is not None, f"{case}: no MissingExtraError"
    assert raised["extra"] == extra
    assert raised["module"] in EXTRA_MODULES[extra]
    assert raised["message"].endswith(f"pip install 'headrace[{extra}]'")


def test_avro_file_names_the_extra(refuse_dir: Path, tmp_path: Path) -> None:
    import fastavro

    path = tmp_path / "events.avro"
    schema = {"type": "record", "name": "e", "fields": [{"name": "id", "type": "long"}]}
    with path.open("wb") as fh:
        fastavro.writer(fh, schema, [{"id": 1}])
    body = (
        f"from headrace.connectors import FileSource\nFileSource({str(path)!r}).read().to_table()"
    )
    raised = run_snippet(body, refuse_dir, "fastavro", tmp_path)
    assert raised == {
        "extra": "avro",
        "module": "fastavro",
        "message": f"Avro file {path} needs the 'avro' extra (module 'fastavro' is not installed): "
        "pip install 'headrace[avro]'",
    }


@pytest.mark.parametrize(
    ("args", "extra", "feature"),
    [
        (["worker", "etl"], "queue", "headrace worker"),
        (["queue", "counts", "etl"], "queue", "headrace queue"),
        (["web", "--port", "0"], "web", "headrace web"),
        (["mcp"], "mcp", "headrace mcp"),
    ],
)
def test_cli_names_the_missing_extra_in_one_line(
    args: list[str], extra: str, feature: str, refuse_dir: Path, tmp_path: Path
) -> None:
    done = run_cli(args, refuse_dir, ",".join(EXTRA_MODULES[extra]), tmp_path)
    assert done.returncode == 4  # a configuration error (the CLI's exit codes)
    assert done.stdout == ""
    line = one_line(done.stderr)
    # the command's module is imported when the command runs: the package or the command
    # that needs the extra is named, e.g. "headrace.queue (Redis job queues)"
    assert line.startswith("error: ") and f"needs the {extra!r} extra" in line, (feature, line)
    assert one_line(done.stderr).endswith(f"pip install 'headrace[{extra}]'")
    assert "Traceback" not in done.stderr


def test_distributed_executor_names_the_queue_extra(refuse_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "from_mysql.py").write_text(MYSQL_PIPELINE)
    done = run_cli(
        ["run", "from_mysql.py", "--executor", "distributed"], refuse_dir, "bullmq,redis", tmp_path
    )
    assert done.returncode == 4  # a configuration error (the CLI's exit codes)
    assert one_line(done.stderr).endswith("pip install 'headrace[queue]'")
    assert "Traceback" not in done.stderr


METRICS = """
import json
from fastapi.testclient import TestClient
from headrace.config import Settings
from headrace.web.application import create_app

settings = Settings(home=Path("h"), state_url="sqlite:///h/state.db")
with TestClient(create_app(settings)) as client:
    metrics, page = client.get("/metrics"), client.get("/")
print(json.dumps([metrics.status_code, metrics.json(), page.status_code]))
"""


def test_metrics_without_prometheus_answers_501_naming_the_extra(
    refuse_dir: Path, tmp_path: Path
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", "from pathlib import Path\n" + METRICS],
        cwd=tmp_path,
        env=_env(refuse_dir, "prometheus_client"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    status, body, page_status = json.loads(done.stdout.strip().splitlines()[-1])
    assert status == 501
    assert body == {
        "detail": "/metrics needs the 'metrics' extra (module 'prometheus_client' is not installed): "
        "pip install 'headrace[metrics]'"
    }
    assert page_status == 200  # the rest of the web app does not need the metrics extra


@pytest.mark.slow
def test_help_and_list_run_with_every_extra_missing(refuse_dir: Path, tmp_path: Path) -> None:
    help_ = run_cli(["--help"], refuse_dir, EVERY_EXTRA, tmp_path)
    assert help_.returncode == 0, help_.stderr
    for command in ("run", "list", "worker", "queue", "web"):
        assert f" {command} " in help_.stdout
    listed = run_cli(["list", str(ROOT / "examples")], refuse_dir, EVERY_EXTRA, tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "customer_etl" in listed.stdout and "hello" in listed.stdout
    assert listed.stderr == ""


@pytest.mark.slow
def test_embedded_demo_runs_with_every_extra_missing(refuse_dir: Path, tmp_path: Path) -> None:
    done = run_cli(
        ["run", str(ROOT / "examples" / "customer_etl.py")], refuse_dir, EVERY_EXTRA, tmp_path
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert ": success" in done.stdout
    assert "sql_tests_passed=3" in one_line(done.stdout)
