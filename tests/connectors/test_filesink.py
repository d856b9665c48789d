"""File destinations: six formats, partition folders, and a manifest that makes a load atomic.

A load killed before its manifest leaves readers on the previous version and its
files listed nowhere; the rerun commits once. Writers racing for one manifest number
cannot both commit a fenced load.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from headrace.connectors import open_destination as _open_destination
from headrace.connectors.crashpoints import ENV
from headrace.connectors.destinations.destination_base import LoadResult
from headrace.connectors.incremental import Checkpoint, CheckpointMoved
from headrace.errors import ConnectorError


def open_destination(url: str, settings: Any = None) -> Any:
    """The destination of ``url`` (a lake/file destination: its own API, beyond SqlDestination)."""
    return _open_destination(url, settings)


ROWS = pa.table({
    "id": pa.array([1, 2, 3, 4], pa.int64()),
    "state": ["CA", "NY", "CA", None],
    "spend": [1.5, 2.0, 3.25, 4.0],
})  # fmt: skip


@pytest.mark.parametrize("fmt", ["parquet", "csv", "ndjson", "avro", "orc", "arrow"])
def test_each_format_partitioned_reads_back_the_rows(fmt: str, tmp_path: Path) -> None:
    dest = open_destination(f"files:///{tmp_path}/out?format={fmt}&partition_by=state")
    result = dest.write(ROWS, "spend", mode="append", load_id="first")
    assert result.rows_loaded == 4
    folders = sorted(p.name for p in (tmp_path / "out" / "spend").iterdir())
    assert folders == ["_manifests", "state=CA", "state=NY", "state=__null__"]
    back = dest.read("spend")
    got = sorted(zip(back.column("id").to_pylist(), back.column("spend").to_pylist(), strict=True))
    assert got == [(1, 1.5), (2, 2.0), (3, 3.25), (4, 4.0)]
    # a replay of the same load writes no file and no manifest
    assert dest.write(ROWS, "spend", mode="append", load_id="first").already_loaded
    assert len(list((tmp_path / "out" / "spend" / "_manifests").iterdir())) == 1


def test_replace_lists_only_the_new_files_and_old_versions_stay_readable(tmp_path: Path) -> None:
    dest = open_destination(f"files:///{tmp_path}/out?format=parquet")
    dest.write(ROWS, "t", mode="append")
    dest.write(ROWS.slice(0, 1), "t", mode="replace")
    assert dest.read("t").num_rows == 1
    assert dest.read("t", version=0).num_rows == 4  # time travel: the first manifest
    with pytest.raises(Exception, match="needs a table format"):
        dest.write(ROWS, "t", mode="merge", keys=["id"])


def test_a_partition_column_missing_from_the_data_is_named_with_its_table(tmp_path: Path) -> None:
    dest = open_destination(f"files:///{tmp_path}/out?format=parquet&partition_by=state")
    with pytest.raises(ConnectorError, match="partition_by names a column") as info:
        dest.write(ROWS.drop_columns(["state"]), "spend")
    assert info.value.fields() == {"table": "spend", "column": "state", "connection": dest.where}
    assert dest.tables() == []


CRASHING_LOAD = """
import sys, pyarrow as pa
from headrace.connectors import open_destination
from headrace.connectors.incremental import Checkpoint
dest = open_destination(sys.argv[1])
fence = dest.checkpoint("p", "s") or Checkpoint("p", "s", None)
rows = pa.table({"id": [int(sys.argv[2])], "state": ["CA"]})
dest.write(rows, "t", mode="append", load_id="load-" + sys.argv[2], fence=fence,
           checkpoint=Checkpoint("p", "s", int(sys.argv[2])))
"""


@pytest.mark.parametrize("point", ["after_stage", "before_commit", "after_commit"])
def test_a_load_killed_at_a_point_is_all_or_nothing_and_reruns_once(
    point: str, tmp_path: Path
) -> None:
    url = f"files:///{tmp_path}/out?format=csv&partition_by=state"
    script = tmp_path / "load.py"
    script.write_text(CRASHING_LOAD)
    env = {**os.environ}

    def load(n: int, crash: str | None = None) -> int:
        run_env = {**env, ENV: crash} if crash else env
        return subprocess.run([sys.executable, str(script), url, str(n)], env=run_env,
                              timeout=120).returncode  # fmt: skip

    assert load(1) == 0
    assert load(2, crash=point) == -9
    dest = open_destination(url)
    committed = point == "after_commit"
    assert sorted(dest.read("t").column("id").to_pylist()) == ([1, 2] if committed else [1])
    assert load(2) == 0  # the rerun: nothing twice, nothing lost
    assert sorted(dest.read("t").column("id").to_pylist()) == [1, 2]
    assert dest.checkpoint("p", "s").value == 2
    listed = {Path(p).name for p in dest.files("t")}
    on_disk = {p.name for p in (tmp_path / "out" / "t").rglob("part-*")}
    assert listed <= on_disk and len(listed) == 2


QUARANTINING_LOAD = """
import sys, pyarrow as pa
from headrace.connectors import open_destination
from headrace.connectors.incremental import Checkpoint
dest = open_destination(sys.argv[1])
n, bad = int(sys.argv[2]), [int(i) for i in sys.argv[3].split(",")]
fence = dest.checkpoint("p", "s") or Checkpoint("p", "s", None)
held = {"id": bad, "_reason": ["bad"] * len(bad)}
if sys.argv[4] == "with_state":
    held["state"] = ["NY"] * len(bad)
dest.write(pa.table({"id": [n], "state": ["CA"]}), "t", mode="append", fence=fence,
           quarantine=pa.table(held), checkpoint=Checkpoint("p", "s", n), metadata=True)
"""


@pytest.mark.parametrize("held", ["with_state", "without_state"])
def test_a_load_killed_between_its_quarantine_and_its_commit_leaves_no_quarantined_rows(
    tmp_path: Path, held: str
) -> None:
    """The rerun re-extracts (other rows, another load id) and its commit drops the rows the
    killed load quarantined: each bad row once, and only rows of committed loads. The
    quarantine is not partitioned, whether its rows have the partition column or not."""
    url = f"files:///{tmp_path}/out?format=csv&partition_by=state"
    script = tmp_path / "load.py"
    script.write_text(QUARANTINING_LOAD)

    def load(n: int, bad: str, crash: str | None = None) -> int:
        env = {**os.environ, ENV: crash} if crash else {**os.environ}
        return subprocess.run([sys.executable, str(script), url, str(n), bad, held], env=env,
                              timeout=120).returncode  # fmt: skip

    assert load(1, "101") == 0
    assert load(2, "102", crash="after_quarantine") == -9
    dest = open_destination(url)
    assert sorted(dest.read("t_quarantine").column("id").to_pylist()) == [101, 102]
    assert load(3, "102,103") == 0  # the source changed in between: another load id

    quarantined = dest.read("t_quarantine")
    assert sorted(quarantined.column("id").to_pylist()) == [101, 102, 103]
    loads = set(quarantined.column("_hr_load_id").to_pylist())
    assert all(dest.load(lid) is not None for lid in loads), loads
    assert sorted(dest.read("t").column("id").to_pylist()) == [1, 3]
    listed = {Path(p).name for p in dest.files("t_quarantine")}
    assert len(listed) == 2 and all(any(lid in name for lid in loads) for name in listed)
    assert all(Path(p).parent.name == "t_quarantine" for p in dest.files("t_quarantine"))
    assert {p.name for p in (tmp_path / "out" / "t").iterdir()} == {"_manifests", "state=CA"}


def test_two_fenced_loads_racing_for_one_manifest_never_both_commit(tmp_path: Path) -> None:
    dest = open_destination(f"files:///{tmp_path}/out?format=parquet")
    dest.write(ROWS, "t", fence=Checkpoint("p", "s", None), checkpoint=Checkpoint("p", "s", 1))
    fence = dest.checkpoint("p", "s")
    both = threading.Barrier(2, timeout=60)
    outcome: dict[int, object] = {}

    def load(n: int) -> None:
        def verify(_: LoadResult) -> None:
            both.wait()

        try:
            outcome[n] = dest.write(ROWS, "t", fence=fence, checkpoint=Checkpoint("p", "s", 1 + n),
                                    verify=verify)  # fmt: skip
        except CheckpointMoved as moved:
            outcome[n] = moved

    threads = [threading.Thread(target=load, args=(n,)) for n in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(type(v).__name__ for v in outcome.values()) == ["CheckpointMoved", "LoadResult"]
    assert dest.read("t").num_rows == 8
    manifests = sorted((tmp_path / "out" / "t" / "_manifests").iterdir())
    assert len(manifests) == 2 and json.loads(manifests[-1].read_text())["checkpoints"]
