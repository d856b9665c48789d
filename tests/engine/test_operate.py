"""Operator actions on finished runs: retry a task with its downstream, mark by hand, exclusive resume."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from headrace import Context, pipeline, task
from headrace.engine import Runner
from headrace.errors import EngineError
from headrace.state.store_base import RunState, TaskState

DAY = datetime(2024, 3, 5, tzinfo=UTC)


def _note(ctx: Context, name: str) -> None:
    with open(Path(ctx.params["dir"]) / "ran.txt", "a") as f:
        f.write(name + "\n")


@task
def first(ctx: Context) -> int:
    _note(ctx, "first")
    return 1


@task
def middle(ctx: Context, value: int) -> int:
    _note(ctx, "middle")
    time.sleep(float(ctx.params["pause"]))
    if (Path(ctx.params["dir"]) / "broken").exists():
        raise RuntimeError("source not ready")
    return value + 1


@task
def last(ctx: Context, value: int) -> int:
    _note(ctx, "last")
    return value * 10


@pipeline(params={"dir": "", "pause": 0.0})
def chain():
    last(middle(first()))


def ran(folder: Path) -> list[str]:
    return (folder / "ran.txt").read_text().split()


def test_retry_runs_the_task_and_its_downstream_only(store, settings, tmp_path: Path) -> None:
    runner = Runner(store, executor="inprocess", settings=settings)
    done = runner.run(chain, DAY, params={"dir": str(tmp_path)})
    assert done.state == RunState.SUCCESS and ran(tmp_path) == ["first", "middle", "last"]
    again = runner.retry(done.run_id, "middle", pipeline=chain)
    assert again.state == RunState.SUCCESS
    assert ran(tmp_path) == ["first", "middle", "last", "middle", "last"]
    assert again.result_of("last") == 20
    with pytest.raises(
        EngineError, match="task 'midle': no such task in the pipeline. Did you mean 'middle'"
    ) as info:
        runner.retry(done.run_id, "midle", pipeline=chain)
    assert (info.value.pipeline, info.value.task) == ("chain", "midle")


def test_mark_success_then_failed_sets_the_run_state(store, settings, tmp_path: Path) -> None:
    (tmp_path / "broken").touch()
    runner = Runner(store, executor="inprocess", settings=settings)
    failed = runner.run(chain, DAY, params={"dir": str(tmp_path)})
    assert failed.state == RunState.FAILED
    run = runner.mark(failed.run_id, "middle", TaskState.SUCCESS)
    assert run.state == RunState.FAILED  # "last" is still upstream_failed
    run = runner.mark(failed.run_id, "last", TaskState.SUCCESS)
    assert run.state == RunState.SUCCESS
    run = runner.mark(failed.run_id, "first", TaskState.FAILED)
    assert run.state == RunState.FAILED
    assert store.get_task_instance(failed.run_id, "first").error_kind == "marked"


def test_two_resumes_at_once_run_each_task_once(store, settings, tmp_path: Path) -> None:
    (tmp_path / "broken").touch()
    runner = Runner(store, executor="inprocess", settings=settings)
    failed = runner.run(chain, DAY, params={"dir": str(tmp_path), "pause": 0.5})
    (tmp_path / "broken").unlink()
    (tmp_path / "ran.txt").unlink()
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def resume() -> None:
        barrier.wait()
        try:
            outcomes.append(
                str(
                    Runner(store, executor="inprocess", settings=settings)
                    .resume(failed.run_id, chain)
                    .state
                )
            )
        except EngineError as exc:
            outcomes.append(f"refused: {exc}")

    threads = [threading.Thread(target=resume) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(ran(tmp_path)) == ["last", "middle"]
    assert sorted(o.split(":")[0] for o in outcomes) == ["refused", "success"]


def test_claim_run_is_a_compare_and_set(store) -> None:
    run, _ = store.create_run("p", DAY, DAY, DAY)
    assert store.claim_run(run, pid=1, hostname="a") is True
    assert store.claim_run(run, pid=2, hostname="b") is False  # stale view: state changed
    assert (store.get_run(run.run_id).pid, store.get_run(run.run_id).hostname) == (1, "a")
