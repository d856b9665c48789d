"""``resume RUN_ID`` finds the pipeline file in the run record; old runs' _run.json still works."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from headrace.engine import Runner
from headrace.engine.staging import staging_dir
from headrace.errors import EngineError
from headrace.state.store_base import RunState

DAY = datetime(2024, 4, 1, tzinfo=UTC)


def test_the_run_records_its_file_and_resume_needs_nothing_else(store, settings, pipelines) -> None:
    broken = pipelines("flaky", "broken")
    runner = Runner(store, executor="inprocess", settings=settings)
    failed = runner.run(broken, DAY)
    assert failed.state == RunState.FAILED
    assert failed.run.source_file == broken.file
    assert not (staging_dir(settings.home, broken.name, failed.run_id) / "_run.json").exists()

    resumed = Runner(store, executor="inprocess", settings=settings).resume(
        failed.run_id
    )  # no pipeline given

    assert resumed.executed and resumed.task("terminal").attempt == 2
    assert resumed.task("independent").attempt == 1  # succeeded the first time: not run again


def test_a_run_without_source_file_falls_back_to_the_side_file(store, settings, pipelines) -> None:
    broken = pipelines("flaky", "broken")
    runner = Runner(store, executor="inprocess", settings=settings)
    failed = runner.run(broken, DAY)
    store.update_run(failed.run_id, source_file=None)  # as runs made before the column existed
    with pytest.raises(EngineError, match=r"records none and .*_run.json is missing.*--file FILE"):
        runner.resume(failed.run_id)

    side = staging_dir(settings.home, broken.name, failed.run_id) / "_run.json"
    side.parent.mkdir(parents=True, exist_ok=True)
    side.write_text(json.dumps({"file": broken.file, "pipeline": broken.name}))
    assert runner.resume(failed.run_id).task("terminal").attempt == 2
