"""What a run leaves behind: :class:`RunResult`, result references and liveness of a run."""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from headrace.engine.staging import load_result
from headrace.errors import EngineError, did_you_mean
from headrace.executors.executor_base import ResultRef
from headrace.state.liveness import HOSTNAME, driver_alive
from headrace.state.store_base import RunRecord, RunState, StateStore, TaskInstanceRecord

__all__ = ["HOSTNAME", "Heartbeat", "RunResult", "driver_alive", "ref_from_record"]


def ref_from_record(
    ti: TaskInstanceRecord, children: list[TaskInstanceRecord] | None = None
) -> ResultRef:
    """The reference to a finished task instance's result (a mapped task gathers its children)."""
    kind = ti.result_kind or "none"
    if kind == "mapped":
        return ResultRef(
            "list", items=[ref_from_record(c) for c in sorted(children or [], key=_index)]
        )
    if kind == "table":
        fmt = ti.result_json.get("format", "arrow") if isinstance(ti.result_json, dict) else "arrow"
        return ResultRef("table", path=ti.result_path, format=fmt)
    if kind == "json":
        return ResultRef("json", value=ti.result_json)
    return ResultRef("none")


def _index(ti: TaskInstanceRecord) -> int:
    return ti.map_index


@dataclass
class RunResult:
    """A run and its task instances as stored when the engine returned.

    Attributes:
        run: the run record.
        tasks: its task instances (a mapped task: one row with map_index -1, one per element).
        executed: False when the run already existed and was finished, so nothing ran.
    """

    run: RunRecord
    tasks: list[TaskInstanceRecord]
    executed: bool = True

    @property
    def state(self) -> RunState:
        return RunState(self.run.state)

    @property
    def run_id(self) -> str:
        return self.run.run_id

    def task(self, task_id: str, map_index: int = -1) -> TaskInstanceRecord:
        """The instance of ``task_id``; an unknown id suggests the closest."""
        for ti in self.tasks:
            if ti.task_id == task_id and ti.map_index == map_index:
                return ti
        raise EngineError(
            "no such task"
            + ("" if map_index < 0 else f" element {map_index}")
            + " in the run."
            + did_you_mean(task_id, {t.task_id for t in self.tasks}),
            pipeline=self.run.pipeline,
            run_id=self.run.run_id,
            task=task_id,
        )

    def result_of(self, task_id: str, map_index: int = -1) -> Any:
        """Load the staged result of a task (tables as the kind the task returned)."""
        ti = self.task(task_id, map_index)
        children = [t for t in self.tasks if t.task_id == task_id and t.map_index >= 0]
        return load_result(ref_from_record(ti, children))


class Heartbeat:
    """A daemon thread writing the run's heartbeat_at every ``interval`` seconds."""

    def __init__(self, store: StateStore, run_id: str, interval: float) -> None:
        self.store, self.run_id, self.interval = store, run_id, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._beat, name=f"headrace-heartbeat-{run_id}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            with contextlib.suppress(Exception):  # a missed beat is not worth failing the run over
                self.store.update_run(self.run_id, heartbeat_at=datetime.now(UTC))

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
