"""The three situations where a hand-wired load broke exactly-once, run through the CLI.

1. resuming an older killed run after a newer run loaded must not put older rows back;
2. ``backfill --rerun`` of a day whose source changed must apply the change;
3. a load overtaken by another run (retry after another run, two runs at once) must
   re-extract instead of applying its stale rows.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from sync_harness import PIPELINES, World, compare, wait_for

from headrace.connectors.crashpoints import ENV

pytestmark = pytest.mark.slow  # each drives 4-6 CLI processes (5-15 s)


def test_resume_of_an_older_killed_run_does_not_regress_rows(world: World) -> None:
    world.source.insert(40)
    assert world.run().returncode == 0
    world.source.change()
    killed = world.run(**{ENV: "after_apply"})  # run A dies inside its load
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    run_a = world.newest_run()
    world.source.change()
    assert world.run().returncode == 0  # run B loads the newer rows
    world.source.update(10)  # and the source moves on again
    resumed = world.cli("resume", run_a, "--executor", "inprocess")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    verdict = compare(world)
    assert verdict.ok, verdict


def test_backfill_rerun_of_a_changed_day_applies_the_change(world: World) -> None:
    world.source.insert(60, days=4)
    target = f"{PIPELINES}:daily"
    first = world.cli("backfill", target, "--start", "2024-01-01", "--end", "2024-01-03",
                      "--executor", "inprocess")  # fmt: skip
    assert first.returncode == 0, first.stdout + first.stderr
    loaded_days = {r[0] for r in world.table("daily")}
    assert loaded_days
    where = f"id IN ({', '.join(str(i) for i in loaded_days)})"
    assert compare(world, "daily", where).ok
    world.source.update(30)  # the source corrects rows of days already loaded
    again = world.cli("backfill", target, "--start", "2024-01-01", "--end", "2024-01-03",
                      "--rerun", "--executor", "inprocess")  # fmt: skip
    assert again.returncode == 0, again.stdout + again.stderr
    verdict = compare(world, "daily", where)
    assert verdict.ok, verdict  # a run-id load id made this rerun "already loaded"
    assert {r[0] for r in world.table("daily")} == loaded_days


def test_a_load_overtaken_by_another_run_re_extracts(world: World, tmp_path: Path) -> None:
    world.source.insert(30)
    assert world.run().returncode == 0
    world.source.change()
    gate = tmp_path / "gate"
    slow = world.start("run", f"{PIPELINES}:items", "--executor", "inprocess",
                       ITEMS_PAUSE=str(gate))  # fmt: skip
    wait_for(Path(str(gate) + ".waiting"))  # run A has extracted; it waits before loading
    world.source.change()
    assert world.run().returncode == 0  # run B extracts the newer rows and loads them
    world.source.update(5)
    gate.touch()
    out, _ = slow.communicate(timeout=120)
    assert slow.returncode == 0, out
    assert "reextracts=1" in out, out  # its fenced load found the moved checkpoint
    verdict = compare(world)
    assert verdict.ok, verdict
