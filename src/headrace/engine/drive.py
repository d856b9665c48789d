"""Carrying out one run: the task-instance state machine.

One :class:`Drive` owns one run while it executes. It keeps a mirror of the run's task
instances in memory (the store is written, never re-read), batches every state change
of a scheduling step into one ``update_task_instances`` transaction, and hands ready
tasks to the executor.

States of a task instance::

    queued ──▶ running ──▶ success
      │           │──▶ up_for_retry ──(delay)──▶ running
      │           │──▶ up_for_reschedule ──(reschedule_delay, not a try)──▶ running
      │           └──▶ failed ──▶ downstream: upstream_failed
      └──▶ upstream_failed / skipped   (decided by the trigger rule)

A mapped task has one parent instance (map_index -1) that is ``running`` while its
elements (map_index 0..n-1) run, and ends ``success`` when all of them succeeded.
"""

from __future__ import annotations

import logging
import os
import random
from collections import deque
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from headrace.config import Settings
from headrace.engine import trigger
from headrace.engine.attempt import RESCHEDULE
from headrace.engine.clock import Clock
from headrace.engine.past import PAST_ERROR_KIND, PastGate, PastVerdict
from headrace.engine.run_result import HOSTNAME, ref_from_record
from headrace.engine.staging import staging_dir
from headrace.executors.executor_base import (
    Event,
    Executor,
    Outcome,
    ResultRef,
    RunInfo,
    TaskKey,
    WorkItem,
)
from headrace.pipeline import Pipeline, TriggerRule
from headrace.pipeline.graph_builder import TaskRef, find_refs
from headrace.state.store_base import RunRecord, StateStore, TaskInstanceRecord, TaskState

log = logging.getLogger("headrace.engine")

# The columns a flush writes for every changed task instance.
_WRITTEN = (
    "state",
    "attempt",
    "started_at",
    "ended_at",
    "next_try_at",
    "error",
    "error_kind",
    "result_kind",
    "result_json",
    "result_path",
    "rows",
    "pid",
    "hostname",
)
#: The upstream states that let a task of these rules start before the others end.
_QUALIFIES = {
    TriggerRule.ONE_FAILED: (TaskState.FAILED, TaskState.UPSTREAM_FAILED),
    TriggerRule.ONE_SUCCESS: (TaskState.SUCCESS,),
}
#: Seconds between asks for a slot while only pool-waiting tasks are left.
POOL_POLL = 0.25
#: Seconds between looks at the previous run while depends_on_past tasks wait for it.
PAST_POLL = 1.0
_RESET = (
    TaskState.FAILED,
    TaskState.UPSTREAM_FAILED,
    TaskState.RUNNING,
    TaskState.UP_FOR_RETRY,
    TaskState.UP_FOR_RESCHEDULE,
)


class Drive:
    """Executes one run of ``pipeline`` until every task instance has finished.

    Args:
        store: the state store.
        pipeline: the pipeline definition.
        run: the run record (fresh, or resumed: failed and unfinished tasks run again).
        executor: a started executor.
        clock: time source; its ``sleep`` waits for retries.
        emit: receives events after the state they describe is stored (or None).
        settings: handed to every task (``ctx.settings``), in whatever process it runs.
        pools: pool name -> size, for every pool the pipeline's tasks use.
        past: decides depends_on_past tasks (default: against the store's previous run).
        state_url: the store's URL, for tasks reading Variables (``ctx.var``).
        element_events: emit the state changes of mapped elements too (False when only
            lineage and metrics listen: they read elements from the mapped task's end, and
            get an element's ``up_for_retry`` only, to count its retries as they happen).
    """

    def __init__(
        self,
        store: StateStore,
        pipeline: Pipeline,
        run: RunRecord,
        executor: Executor,
        clock: Clock,
        emit: Callable[[Event], None] | None,
        settings: Settings,
        rng: random.Random,
        wait_slice: float = 1.0,
        pools: Mapping[str, int] | None = None,
        past: PastGate | None = None,
        state_url: str = "",
        element_events: bool = True,
    ) -> None:
        self.store, self.pipeline, self.run, self.executor = store, pipeline, run, executor
        self.clock, self.emit, self.rng, self.wait_slice = clock, emit, rng, wait_slice
        self.element_events = element_events
        self.run_id = run.run_id
        self.staging = staging_dir(settings.home, pipeline.name, run.run_id)
        self.info = RunInfo(
            run_id=run.run_id,
            pipeline=pipeline.name,
            logical_date=run.logical_date,
            data_interval_start=run.data_interval_start,
            data_interval_end=run.data_interval_end,
            params=dict(run.params or {}),
            settings=settings,
            staging_dir=str(self.staging),
            state_url=state_url,
        )
        self.tis: dict[TaskKey, TaskInstanceRecord] = {}
        self.dirty: dict[TaskKey, None] = {}  # changed since the last flush, in order
        self.events: list[Event] = []
        self.candidates: deque[str] = deque()
        self.ready: deque[TaskKey] = deque()
        self.in_flight: dict[TaskKey, WorkItem] = {}
        self.retry_at: dict[TaskKey, datetime] = {}
        self.first_attempt: dict[TaskKey, int] = {}
        self.pending_ups: dict[str, int] = {}
        self.open_children: dict[str, int] = {}
        self.map_inputs: dict[str, list[ResultRef]] = {}
        self.refs: dict[str, ResultRef] = {}
        # Upstream tasks whose results a task reads (not the >>-only ones, not its map source).
        self.data_ids = {
            tid: tuple(
                dict.fromkeys(
                    r.task_id for v in (*t.args, *t.kwargs.values()) for r in find_refs(v)
                )
            )
            for tid, t in pipeline.tasks.items()
        }
        # Branch tasks each task waits for: their stored choice may skip it.
        self.branch_ups = {
            tid: ups
            for tid in pipeline.tasks
            if (ups := tuple(u for u in pipeline.upstream[tid] if pipeline.tasks[u].branch))
        }
        # one_failed / one_success tasks start as soon as one upstream qualifies (see _parent_finished).
        self.eager = {
            tid: _QUALIFIES[t.trigger_rule]
            for tid, t in pipeline.tasks.items()
            if t.trigger_rule in _QUALIFIES
        }
        self.fired: set[str] = set()
        # Pooled tasks wait in pool_wait, still QUEUED, until their pool has a free slot.
        self.pool_sizes = dict(pools or {})
        self.pool_of = {
            tid: t.pool.lower() for tid, t in pipeline.tasks.items() if t.pool is not None
        }
        self.pool_wait: deque[TaskKey] = deque()
        # depends_on_past tasks whose previous run is still going: looked at again every PAST_POLL.
        self.past = past
        self.past_wait: deque[str] = deque()
        self.past_looked: datetime | None = None

    # ------------------------------------------------------------------ set-up

    def prepare(self) -> None:
        """Load or create the task instances; reset failed/unfinished ones to queued."""
        keys = [(tid, -1) for tid in self.pipeline.order]
        if self.pool_of:  # slots an earlier, crashed driver of this run did not give back
            self.store.release_pool_slots(self.run_id)
        for ti in self.store.ensure_task_instances(self.run_id, keys):
            if ti.task_id in self.pipeline.tasks:  # a task removed from the file since: ignore
                self.tis[(ti.task_id, ti.map_index)] = ti
        self._forget_lost_results()
        for key, ti in self.tis.items():
            self.first_attempt[key] = ti.attempt
            if ti.state in _RESET:
                self._set(
                    key, state=TaskState.QUEUED, next_try_at=None, error=None, error_kind=None
                )
        for tid in self.pipeline.order:
            ti = self.tis[(tid, -1)]
            if ti.state == TaskState.SUCCESS:
                self.refs[tid] = self._ref_from_store(tid)
            self.pending_ups[tid] = sum(
                not TaskState(self.tis[(u, -1)].state).finished for u in self.pipeline.upstream[tid]
            )
            if ti.state == TaskState.QUEUED and (
                self.pending_ups[tid] == 0 or self._fires_early(tid)
            ):
                self.fired.add(tid)
                self.candidates.append(tid)

    def _forget_lost_results(self) -> None:
        """Run again the successful tasks whose staged file is gone (cleaned staging)."""
        for (tid, mi), ti in self.tis.items():
            if (
                ti.state == TaskState.SUCCESS
                and ti.result_kind == "table"
                and ti.result_path
                and not os.path.exists(ti.result_path)
            ):
                log.warning(
                    "run %s: staged result of %s is gone (%s); running it again",
                    self.run_id,
                    tid,
                    ti.result_path,
                )
                ti.state = TaskState.FAILED  # reset to queued below, like any unfinished task
                if mi >= 0:
                    self.tis[(tid, -1)].state = TaskState.FAILED

    def _ref_from_store(self, tid: str) -> ResultRef:
        children = [ti for (t, i), ti in self.tis.items() if t == tid and i >= 0]
        return ref_from_record(self.tis[(tid, -1)], children)

    # ------------------------------------------------------------------ main loop

    def execute(self) -> None:
        """Run the state machine until nothing is left to run."""
        self.step()
        while (
            self.in_flight
            or self.ready
            or self.retry_at
            or self.candidates
            or self.pool_wait
            or self.past_wait
        ):
            if not self.in_flight and not self.ready and not self.candidates:
                # Waiting for a retry, for other runs to free a pool slot, or for the previous run.
                pause = (
                    POOL_POLL if self.pool_wait else PAST_POLL if self.past_wait else float("inf")
                )
                if self.retry_at:
                    pause = min(
                        pause, (min(self.retry_at.values()) - self.clock.now()).total_seconds()
                    )
                self.clock.sleep(pause)
            else:
                timeout = min(self.wait_slice, POOL_POLL) if self.pool_wait else self.wait_slice
                if self.retry_at:
                    until = (min(self.retry_at.values()) - self.clock.now()).total_seconds()
                    timeout = max(0.0, min(timeout, until))
                for outcome in self.executor.wait(timeout):
                    self.finish(outcome)
            self.step()

    def step(self) -> None:
        """Promote due retries, decide queued tasks, submit ready ones, write it all at once."""
        if self.retry_at:
            now = self.clock.now()
            for key, due in list(self.retry_at.items()):
                if due <= now:
                    del self.retry_at[key]
                    self.ready.append(key)
        if self.past_wait:
            now = self.clock.now()
            if self.past_looked is None or (now - self.past_looked).total_seconds() >= PAST_POLL:
                self.past_looked = now
                self.candidates.extend(self.past_wait)
                self.past_wait.clear()
        while self.candidates:
            self._decide(self.candidates.popleft())
        capacity = self.executor.capacity
        full: set[str] = set()  # pools found full during this step: not asked again
        if self.pool_wait:
            waiting, self.pool_wait = self.pool_wait, deque()
            for key in waiting:
                if len(self.in_flight) < capacity and self._take_slot(key, full):
                    self._submit(key)
                else:
                    self.pool_wait.append(key)
        while self.ready and len(self.in_flight) < capacity:
            key = self.ready.popleft()
            if self.pool_of and key[0] in self.pool_of and not self._take_slot(key, full):
                self.pool_wait.append(key)
                continue
            self._submit(key)
        self.flush()

    def _take_slot(self, key: TaskKey, full: set[str]) -> bool:
        """Take a slot of the task's pool in the store, unless the pool was full this step."""
        pool = self.pool_of.get(key[0])
        if pool is None:
            return True
        if pool in full:
            return False
        if self.store.acquire_pool_slot(pool, self.pool_sizes[pool], self.run_id, key[0], key[1]):
            return True
        full.add(pool)
        return False

    def flush(self) -> None:
        """Write the pending state changes in one transaction, then emit their events.

        Every changed instance is written whole (the same columns each time), so the
        store sends one ``executemany`` per flush, whatever mix of changes it holds.
        """
        if self.dirty:
            tis = self.tis
            batch = [
                (self.run_id, tid, mi, {name: getattr(tis[(tid, mi)], name) for name in _WRITTEN})
                for tid, mi in self.dirty
            ]
            self.dirty = {}
            self.store.update_task_instances(batch)
        if self.events:
            events, self.events = self.events, []
            for event in events:
                self._emit(event)

    def _emit(self, event: Event) -> None:
        if self.emit is None:
            return
        try:
            self.emit(event)
        except Exception:  # a broken live view must not break the run
            log.exception("on_event callback failed for %s", event)

    def _set(self, key: TaskKey, **fields: Any) -> None:
        """Change a task instance: in the mirror now, in the store at the next flush."""
        ti = self.tis[key]
        for name, value in fields.items():
            setattr(ti, name, value)
        self.dirty[key] = None
        if "state" in fields and self.emit is not None and (key[1] < 0 or self.element_events):
            self.events.append(
                Event(
                    "task",
                    self.run_id,
                    key[0],
                    key[1],
                    state=str(fields["state"]),
                    attempt=ti.attempt,
                    error=ti.error,
                )
            )

    # ------------------------------------------------------------------ deciding

    def _decide(self, tid: str) -> None:
        task = self.pipeline.tasks[tid]
        now = self.clock.now()
        branch_ups = self.branch_ups.get(tid)
        if branch_ups:
            for up in branch_ups:
                ti = self.tis[(up, -1)]
                if ti.state == TaskState.SUCCESS and tid not in (ti.result_json or ()):
                    # Not chosen: skipped whatever its trigger rule says, as in Airflow.
                    self._set((tid, -1), state=TaskState.SKIPPED, ended_at=now)
                    self._parent_finished(tid)
                    return
        states = [TaskState(self.tis[(u, -1)].state) for u in self.pipeline.upstream[tid]]
        decision = trigger.decide(task.trigger_rule, states)
        if decision == trigger.UPSTREAM_FAILED:
            failed = [
                u
                for u, s in zip(self.pipeline.upstream[tid], states, strict=True)
                if s != TaskState.SUCCESS
            ]
            self._set(
                (tid, -1),
                state=TaskState.UPSTREAM_FAILED,
                ended_at=now,
                error=f"upstream task(s) did not succeed: {', '.join(failed)}",
            )
            self._parent_finished(tid)
        elif decision == trigger.SKIP:
            self._set((tid, -1), state=TaskState.SKIPPED, ended_at=now)
            self._parent_finished(tid)
        elif not self._past_allows(tid, now):
            return
        elif task.is_mapped:
            self._expand(tid, now)
        else:
            self.ready.append((tid, -1))

    def _past_allows(self, tid: str, now: datetime) -> bool:
        """depends_on_past: True when the previous run lets ``tid`` run; else it waits or is blocked."""
        if self.past is None or tid not in self.past.task_ids:
            return True
        verdict, reason = self.past.verdict(tid)
        if verdict == PastVerdict.WAIT:
            if self.past_looked is None:
                self.past_looked = now
            self.past_wait.append(tid)
            return False
        if verdict == PastVerdict.BLOCKED:
            self._set(
                (tid, -1),
                state=TaskState.UPSTREAM_FAILED,
                ended_at=now,
                error=reason,
                error_kind=PAST_ERROR_KIND,
            )
            self._parent_finished(tid)
            return False
        return True

    def _expand(self, tid: str, now: datetime) -> None:
        """Create the elements of a mapped task (once) and queue the unfinished ones."""
        task = self.pipeline.tasks[tid]
        source = task.map_source
        if isinstance(source, TaskRef):
            ref = self.refs[source.task_id]
            if ref.kind == "list":
                elements = list(ref.items or [])
            elif ref.kind == "json" and isinstance(ref.value, list):
                elements = [ResultRef("json", value=v) for v in ref.value]
            else:
                self._set(
                    (tid, -1),
                    state=TaskState.FAILED,
                    started_at=now,
                    ended_at=now,
                    error_kind="DefinitionError",
                    error=f"task {tid!r} maps over the result of {source.task_id!r}, which is "
                    f"{ref.format or ref.kind}, not a list",
                )
                self._parent_finished(tid)
                return
        else:
            elements = [ResultRef("json", value=v) for v in source]
        self.map_inputs[tid] = elements
        missing = [(tid, i) for i in range(len(elements)) if (tid, i) not in self.tis]
        if missing:
            self.flush()  # the store must know earlier changes before it returns records
            for ti in self.store.ensure_task_instances(self.run_id, missing):
                key = (ti.task_id, ti.map_index)
                if key not in self.tis:
                    self.tis[key] = ti
        open_keys = [
            (tid, i) for i in range(len(elements)) if self.tis[(tid, i)].state != TaskState.SUCCESS
        ]
        self.open_children[tid] = len(open_keys)
        self._set(
            (tid, -1),
            state=TaskState.RUNNING,
            started_at=now,
            ended_at=None,
            error=None,
            error_kind=None,
        )
        if self.events:  # tell live views how many elements to expect
            self.events[-1].total = len(elements)
        if not open_keys:
            self._mapped_done(tid, now)
        self.ready.extend(open_keys)

    # ------------------------------------------------------------------ running

    def _submit(self, key: TaskKey) -> None:
        tid, mi = key
        task = self.pipeline.tasks[tid]
        ti = self.tis[key]
        attempt = ti.attempt + 1
        item = WorkItem(
            run=self.info,
            pipeline_file=self.pipeline.file,
            pipeline_module=self.pipeline.module,
            task_id=tid,
            map_index=mi,
            attempt=attempt,
            inputs={u: self.refs[u] for u in self.data_ids[tid]},
            map_input=self.map_inputs[tid][mi] if mi >= 0 else None,
            timeout=task.timeout.total_seconds() if task.timeout is not None else None,
        )
        self._set(
            key,
            state=TaskState.RUNNING,
            attempt=attempt,
            started_at=self.clock.now(),
            ended_at=None,
            next_try_at=None,
            error=None,
            error_kind=None,
            pid=None,
            hostname=HOSTNAME,
        )
        self.in_flight[key] = item
        self.executor.submit(item)

    def finish(self, outcome: Outcome) -> None:
        """Record how an attempt ended: success, a retry later, or failure."""
        key = outcome.key
        item = self.in_flight.pop(key, None)
        if item is None or item.attempt != outcome.attempt:  # pragma: no cover - stale report
            log.warning("ignoring outcome of %s attempt %s: not in flight", key, outcome.attempt)
            return
        tid, mi = key
        if outcome.log:
            self.store.append_log(self.run_id, tid, mi, outcome.attempt, outcome.log)
        if outcome.checks:
            self.store.record_check_results(outcome.checks)
        if outcome.metrics and hasattr(self.store, "record_task_metrics"):
            self.store.record_task_metrics(self.run_id, self.pipeline.name, tid, outcome.metrics)
        now = self.clock.now()
        if self.pool_of and tid in self.pool_of:  # after `now`: ended_at is before the slot is free
            self.store.release_pool_slot(self.run_id, tid, mi)
        if outcome.started_at is not None and outcome.started_at <= now:
            # When the worker really began (a pool worker may start it a little after submit).
            self.tis[key].started_at = outcome.started_at
        if outcome.ok:
            ref = outcome.result or ResultRef("none")
            self._set(
                key,
                state=TaskState.SUCCESS,
                ended_at=now,
                result_kind=ref.kind,
                result_json={"format": ref.format} if ref.kind == "table" else ref.value,
                result_path=ref.path,
                rows=outcome.rows,
                pid=outcome.pid,
                hostname=outcome.hostname,
            )
            if mi < 0:
                self.refs[tid] = ref
            self._instance_finished(key, now)
            return
        task = self.pipeline.tasks[tid]
        policy = task.retries
        if outcome.error_kind == RESCHEDULE:
            # Not a try: move the base the tries are counted from, so the retry budget stays whole.
            self.first_attempt[key] = self.first_attempt.get(key, 0) + 1
            due = now + (
                task.reschedule_delay if task.reschedule_delay is not None else policy.delay
            )
            self._not_succeeded(key, TaskState.UP_FOR_RESCHEDULE, outcome, now, due)
            return
        tries = outcome.attempt - self.first_attempt.get(key, 0)
        if outcome.retryable and tries < policy.attempts:
            due = now + policy.delay_before(tries + 1, self.rng)
            self._not_succeeded(key, TaskState.UP_FOR_RETRY, outcome, now, due)
            if mi >= 0 and not self.element_events and self.emit is not None:
                # an element's retry still goes to metrics (here, not in _set: no test per change)
                ti = self.tis[key]
                self.events.append(
                    Event(
                        "task",
                        self.run_id,
                        tid,
                        mi,
                        state=str(ti.state),
                        attempt=ti.attempt,
                        error=ti.error,
                    )
                )
            return
        self._not_succeeded(key, TaskState.FAILED, outcome, now, None)
        self._instance_finished(key, now)

    def _not_succeeded(
        self, key: TaskKey, state: TaskState, outcome: Outcome, now: datetime, due: datetime | None
    ) -> None:
        """Record an attempt that did not succeed, with its error and where it ran; ``due``:
        when the next try starts (None: no next try)."""
        self._set(
            key,
            state=state,
            ended_at=now,
            next_try_at=due,
            error=outcome.error,
            error_kind=outcome.error_kind,
            pid=outcome.pid,
            hostname=outcome.hostname,
        )
        if due is not None:
            self.retry_at[key] = due

    def _instance_finished(self, key: TaskKey, now: datetime) -> None:
        tid, mi = key
        if mi < 0:
            self._parent_finished(tid)
            return
        self.open_children[tid] -= 1
        if self.open_children[tid] == 0:
            self._mapped_done(tid, now)

    def _mapped_done(self, tid: str, now: datetime) -> None:
        """All elements of a mapped task finished: the parent succeeds only if all succeeded."""
        n = len(self.map_inputs[tid])
        children = [self.tis[(tid, i)] for i in range(n)]
        failed = [c for c in children if c.state != TaskState.SUCCESS]
        if failed:
            first = failed[0]
            self._set(
                (tid, -1),
                state=TaskState.FAILED,
                ended_at=now,
                error_kind=first.error_kind,
                error=f"{len(failed)} of {n} mapped elements failed; element {first.map_index}: {first.error}",
            )
        else:
            self._set(
                (tid, -1),
                state=TaskState.SUCCESS,
                ended_at=now,
                result_kind="mapped",
                result_json={"mapped": n},
                result_path=None,
                rows=None,
            )
            self.refs[tid] = ResultRef("list", items=[ref_from_record(c) for c in children])
        self._parent_finished(tid)

    def _parent_finished(self, tid: str) -> None:
        for down in self.pipeline.downstream[tid]:
            self.pending_ups[down] -= 1
            if down in self.fired or self.tis[(down, -1)].state != TaskState.QUEUED:
                continue
            if self.pending_ups[down] == 0 or (down in self.eager and self._fires_early(down)):
                self.fired.add(down)
                self.candidates.append(down)

    def _fires_early(self, tid: str) -> bool:
        """A one_failed / one_success task whose rule is met before all its upstream tasks ended.

        Not while a branch task it waits for is unfinished: that branch could still skip it.
        """
        wanted = self.eager.get(tid)
        if wanted is None:
            return False
        ups = self.pipeline.upstream[tid]
        if any(
            not TaskState(self.tis[(u, -1)].state).finished for u in self.branch_ups.get(tid, ())
        ):
            return False
        return any(self.tis[(u, -1)].state in wanted for u in ups)

    # ------------------------------------------------------------------ ending

    def abandon(self, kind: str, error: str) -> None:
        """Mark attempts still in flight as failed (interrupted run, engine failure)."""
        now = self.clock.now()
        for key in list(self.in_flight):
            del self.in_flight[key]
            self._set(key, state=TaskState.FAILED, ended_at=now, error=error, error_kind=kind)
        self.flush()
        if self.pool_of:
            self.store.release_pool_slots(self.run_id)

    def failed_tasks(self) -> list[str]:
        """Tasks that did not end in success or skipped."""
        return [
            tid
            for tid in self.pipeline.order
            if self.tis[(tid, -1)].state not in (TaskState.SUCCESS, TaskState.SKIPPED)
        ]


def driver_identity() -> dict[str, Any]:
    """pid and hostname of this process, as stored on a run it drives."""
    return {"pid": os.getpid(), "hostname": HOSTNAME}
