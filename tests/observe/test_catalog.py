"""``headrace docs``: the catalog built through the CLI, its JSON, and its HTML checked
in headless Chromium (offline: the page loads nothing from the network)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from headrace.config import Settings

CHAIN = Path(__file__).parent / "pipelines" / "chain.py"
HEADRACE = Path(sys.executable).with_name("headrace")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def build_docs(env: dict[str, str], out: Path) -> dict:
    done = subprocess.run(
        [str(HEADRACE), "docs", str(CHAIN), "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "2 pipeline(s)" in done.stdout
    return json.loads((out / "catalog.json").read_text())


def test_catalog_json_describes_pipelines_and_datasets(
    chained: tuple[Settings, dict[str, str]], tmp_path: Path, pg_schema
) -> None:
    _, env = chained
    _, schema = pg_schema
    catalog = build_docs(env, tmp_path / "docs")
    pipelines = {p["name"]: p for p in catalog["pipelines"]}
    assert (
        pipelines["publish"]["schedule"] == "0 6 * * *"
        and pipelines["publish"]["owner"] == "analytics"
    )
    assert pipelines["ingest"]["tags"] == ["raw"]
    assert [t["id"] for t in pipelines["publish"]["tasks"]] == ["clean_people"]
    datasets = {d["name"]: d for d in catalog["datasets"]}
    clean = datasets["wh.main.people_clean"]
    assert clean["doc"] == "People with a contact line"
    columns = {c["name"]: c for c in clean["columns"]}
    assert columns["contact"]["doc"] == "Name and e-mail"
    assert columns["id"]["type"] is not None and columns["id"]["type"].upper() in (
        "BIGINT",
        "INTEGER",
    )
    (check,) = clean["checks"]
    assert (
        check["latest"]["status"] == "failed" and check["latest"]["failed"] == 1
    )  # cy has no e-mail
    assert clean["freshness"]["rows"] == 2 and clean["freshness"]["last_load"] is not None
    assert clean["writers"] == ["publish.clean_people"]
    people = next(d for n, d in datasets.items() if n.endswith(f"{schema}.people"))
    assert people["readers"] == ["publish.clean_people"] and people["writers"] == [
        "ingest.raw_people"
    ]
    assert {c["name"] for c in people["columns"]} >= {"id", "name", "email"}


@pytest.mark.browser
def test_catalog_html_renders_offline_in_chromium(
    chained: tuple[Settings, dict[str, str]], tmp_path: Path
) -> None:
    _, env = chained
    out = tmp_path / "docs"
    build_docs(env, out)
    page = (out / "index.html").read_text()
    assert not re.search(r"(src|href)=['\"]?(https?:)?//", page), (
        "the catalog must not load anything remote"
    )
    done = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'chromium'}",
            "--dump-dom",
            (out / "index.html").as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    dom = done.stdout
    assert dom.count('class="pipeline"') == 2 and dom.count('class="dataset"') == 3
    assert "People with a contact line" in dom and "Name and e-mail" in dom
    assert dom.count("<svg") >= 4  # two task graphs, lineage graphs of the datasets
    assert "publish.clean_people" in dom and "schedule" in dom


def test_docs_of_the_examples_folder_without_its_connections(tmp_path: Path) -> None:
    """``headrace docs examples/`` on a machine that configures none of their connections
    (lakehouse.py loads into connection ``iceberg``): the catalog is built, and the table
    whose connection is unknown is documented by that name with the reason it has no columns."""
    examples = Path(__file__).resolve().parents[2] / "examples"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADRACE_CONN_")}
    env["HEADRACE_HOME"] = str(tmp_path / "home")
    done = subprocess.run(
        [str(HEADRACE), "docs", str(examples), "--out", str(tmp_path / "docs")],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    catalog = json.loads((tmp_path / "docs" / "catalog.json").read_text())
    assert {"customer_etl", "lakehouse"} <= {p["name"] for p in catalog["pipelines"]}
    unknown = next(d for d in catalog["datasets"] if d["uri"] == "iceberg/customers")
    assert "HEADRACE_CONN_ICEBERG" in unknown["error"] and unknown["columns"] == []
