"""``headrace query`` and ``headrace profile`` against real files and a real warehouse file."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from headrace.analytics import Analyzer
from headrace.cli import run_app

from .conftest import ROWS


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, files: dict[str, Path]) -> Path:
    """A pipeline project folder with a warehouse holding table ``sales``; the working directory."""
    home = tmp_path / "proj" / ".headrace"
    home.mkdir(parents=True)
    with Analyzer(home / "warehouse.duckdb") as a:
        a.load(files["parquet"], "sales")
    monkeypatch.chdir(tmp_path / "proj")
    monkeypatch.delenv("HEADRACE_HOME", raising=False)
    return tmp_path / "proj"


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run the CLI in-process: exit code, stdout, and stderr with Rich's line wrapping undone."""
    code = run_app(list(argv))
    out, err = capsys.readouterr()
    return code, out, " ".join(err.split())


def test_query_reads_the_default_warehouse_read_only(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(
        capsys,
        "query",
        "SELECT category, count(*) AS n FROM sales GROUP BY 1 ORDER BY 2 DESC, 1",
        "--format",
        "csv",
    )
    assert code == 0
    assert list(csv.reader(io.StringIO(out))) == [
        ["category", "n"],
        ["toys", "3"],
        ["food", "1"],
        ["tools", "1"],
        ["", "1"],
    ]
    code, _, err = _run(capsys, "query", "DROP TABLE sales")
    assert code == 1 and "read-only" in err
    with Analyzer(project / ".headrace" / "warehouse.duckdb", read_only=True) as a:
        assert a.tables() == ["sales"]


def test_query_files_as_views_with_params_and_json(
    project: Path, files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(
        capsys, "query", "SELECT s.id, s.name FROM sample s JOIN sales USING (id) WHERE s.category = ? ORDER BY 1",
        "--file", str(files["ndjson"]), "-p", "toys", "--format", "json",
    )  # fmt: skip
    assert code == 0
    assert json.loads(out) == [
        {"id": r["id"], "name": r["name"]} for r in ROWS if r["category"] == "toys"
    ]


def test_query_table_output_and_unknown_table(
    project: Path, files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(
        capsys,
        "query",
        "SELECT name FROM sample ORDER BY id",
        "-f",
        str(files["orc"]),
        "--max-rows",
        "2",
    )
    assert code == 0 and "Zoë" in out and "Łukasz" in out and "李雷" not in out
    assert "6 rows (4 not shown" in err
    code, _, err = _run(capsys, "query", "SELECT * FROM sale")
    assert code == 1 and 'Did you mean "sales"' in err


def test_warehouse_option_takes_a_file_or_a_project_folder(
    project: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    for target in (
        str(project),
        str(project / ".headrace"),
        str(project / ".headrace" / "warehouse.duckdb"),
    ):
        code, out, _ = _run(
            capsys, "query", "SELECT count(*) AS n FROM sales", "-w", target, "--format", "csv"
        )
        assert (code, out) == (0, "n\n6\n")
    code, _, err = _run(capsys, "query", "SELECT 1", "-w", str(tmp_path))
    assert code == 1 and "No warehouse in folder" in err
    # Without a warehouse the query runs in memory.
    code, out, _ = _run(capsys, "query", "SELECT 40 + 2 AS x", "--format", "csv")
    assert (code, out) == (0, "x\n42\n")


def test_profile_file_prints_sparklines_and_writes_html(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "numbers.csv"
    data.write_text(
        "v,label\n" + "".join(f"{i % 10},l{i % 3}\n" for i in range(100)), encoding="utf-8"
    )
    code, out, err = _run(
        capsys, "profile", str(data), "--html", str(tmp_path / "r.html"), "--bins", "10"
    )
    assert code == 0
    assert "numbers: 100 rows" in out and "██████████" in out
    assert "l0 34%" in out
    assert "<svg" in (tmp_path / "r.html").read_text(encoding="utf-8") and "r.html" in err


def test_profile_warehouse_table_as_json(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "profile", "sales", "--format", "json")
    assert code == 0
    profile = json.loads(out)
    assert profile["rows"] == 6 and profile["columns"][2]["name"] == "amount"
    code, _, err = _run(capsys, "profile", "sale")
    assert code == 1 and "Did you mean 'sales'" in err


def test_console_script_runs_end_to_end(project: Path, files: dict[str, Path]) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", "from headrace.cli import main; main()", "query",
         'SELECT count(*) AS n FROM "sample"', "-f", str(files["avro"]), "--format", "csv"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "n\n6\n"


def test_warehouse_by_url_or_connection_name(
    project: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    wh = project / ".headrace" / "warehouse.duckdb"
    monkeypatch.setenv("HEADRACE_CONN_LAKE", f"duckdb:///{wh}")
    monkeypatch.setenv("HEADRACE_CONN_CRM", "postgresql://u:secret@db.example/crm")
    for target in (f"duckdb:///{wh}", "lake"):
        code, out, _ = _run(
            capsys, "query", "SELECT count(*) AS n FROM sales", "-w", target, "--format", "csv"
        )
        assert (code, out) == (0, "n\n6\n")
    code, _, err = _run(capsys, "query", "SELECT 1", "-w", "crm")
    assert code == 1 and "is a postgresql connection" in err and "secret" not in err


def test_a_file_named_like_a_warehouse_table_is_named_with_name_equals_path(
    project: Path, files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clash = tmp_path / "sales.parquet"
    clash.write_bytes(files["parquet"].read_bytes())
    code, _, err = _run(capsys, "query", "SELECT 1", "--file", str(clash))
    # The message speaks CLI: the option to use, not the Python API's replace=True.
    assert code == 1 and "replace=True" not in err
    assert "already has a table or view 'sales'" in err
    # Rich may wrap the long path anywhere: compare without whitespace.
    assert f"--filesales_file={clash}" in "".join(err.split())
    code, out, _ = _run(
        capsys, "query", "SELECT count(*) AS n FROM mine JOIN sales USING (id)",
        "--file", f"mine={clash}", "--format", "csv",
    )  # fmt: skip
    assert code == 0 and out.splitlines() == ["n", str(len(ROWS))]
    # Two files of the same name: the second one is named on the command line.
    twin = tmp_path / "other.parquet"
    twin.write_bytes(files["parquet"].read_bytes())
    code, _, err = _run(capsys, "query", "SELECT 1", "-f", str(twin), "-f", str(twin))
    assert code == 1 and "an earlier --file already made a view 'other'" in err
    # profile takes the file under a free name instead of refusing it.
    code, out, _ = _run(capsys, "profile", str(clash), "--format", "json")
    assert code == 0 and json.loads(out)["table"] == "sales_file"


def test_file_option_parsing_keeps_paths_with_equals_signs(tmp_path: Path) -> None:
    from headrace.cli.analytics_commands import parse_file_option

    hive = tmp_path / "year=2024"
    hive.mkdir()
    (hive / "part.parquet").write_bytes(b"")
    assert parse_file_option(str(hive / "part.parquet")) == (None, hive / "part.parquet")
    assert parse_file_option("orders=data/o.csv") == ("orders", Path("data/o.csv"))
    assert parse_file_option("data/year=2024/o.csv") == (None, Path("data/year=2024/o.csv"))
    assert parse_file_option("plain.csv") == (None, Path("plain.csv"))
