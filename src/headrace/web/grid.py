"""The data behind the grid (runs × tasks), the collapsed mapped tasks and the retry timeline.

Kept apart from the route functions so each page handler reads as "fetch, shape, render".
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from headrace.state.store_base import LogRecord, RunRecord, TaskInstanceRecord

_DIGITS = re.compile(r"(\d+)")


def natural_key(text: str) -> tuple[Any, ...]:
    """Sort key putting ``square[2]`` before ``square[10]`` (digit runs compare as numbers)."""
    return tuple(int(part) if part.isdigit() else part.lower() for part in _DIGITS.split(text))


def label_of(ti: TaskInstanceRecord) -> str:
    """``task`` or ``task[3]`` for an element of a mapped task."""
    return ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"


@dataclass
class Collapsed:
    """A task instance with, for a mapped task, its elements (naturally sorted) and their state counts."""

    ti: TaskInstanceRecord
    elements: list[TaskInstanceRecord] = field(default_factory=list)

    @property
    def counts(self) -> list[tuple[str, int]]:
        found: dict[str, int] = {}
        for element in self.elements:
            found[element.state.value] = found.get(element.state.value, 0) + 1
        return sorted(found.items())


def collapse_mapped(tasks: Iterable[TaskInstanceRecord]) -> dict[str, Collapsed]:
    """Task instances by task id: one entry per task, mapped elements folded under their task."""
    found: dict[str, Collapsed] = {}
    children: dict[str, list[TaskInstanceRecord]] = {}
    for ti in tasks:
        if ti.map_index < 0:
            found[ti.task_id] = Collapsed(ti)
        else:
            children.setdefault(ti.task_id, []).append(ti)
    for tid, elements in children.items():
        entry = found.get(tid)
        if entry is None:  # elements recorded before their parent: show them anyway
            entry = found[tid] = Collapsed(elements[0])
        entry.elements = sorted(elements, key=lambda t: natural_key(label_of(t)))
    return found


@dataclass(frozen=True)
class Cell:
    """One square of the grid."""

    state: str
    label: str
    tip: str
    duration: float | None
    elements: int


@dataclass
class Grid:
    """Runs (oldest to newest, left to right) × tasks (pipeline order); ``longest`` run in seconds."""

    runs: list[RunRecord]
    tasks: list[str]
    cells: dict[tuple[str, str], Cell]
    longest: float

    def cell(self, task_id: str, run_id: str) -> Cell | None:
        return self.cells.get((task_id, run_id))

    def height(self, run: RunRecord, tallest: int = 62) -> int:
        """Pixel height of a run's duration bar (the longest task of the grid is ``tallest``)."""
        if run.started_at is None or run.ended_at is None:
            return 8
        took = (run.ended_at - run.started_at).total_seconds()
        longest = max(self.longest, took, 1e-9)
        return 8 + int((tallest - 8) * min(took / longest, 1.0))


def build_grid(
    runs: Sequence[RunRecord],
    instances: dict[str, list[TaskInstanceRecord]],
    order: Sequence[str] | None,
) -> Grid:
    """The grid of ``runs`` with their task ``instances``; tasks in ``order`` (else by name)."""
    oldest_first = sorted(runs, key=lambda r: (r.logical_date, r.created_at or r.logical_date))
    seen: list[str] = list(order or [])
    cells: dict[tuple[str, str], Cell] = {}
    for run in oldest_first:
        for tid, entry in collapse_mapped(instances.get(run.run_id, [])).items():
            if tid not in seen:
                seen.append(tid)
            ti = entry.ti
            took = (
                (ti.ended_at - ti.started_at).total_seconds()
                if ti.started_at and ti.ended_at
                else None
            )
            tip = [
                f"{tid} · {ti.state.value}",
                f"run {run.run_id} ({run.logical_date:%Y-%m-%d %H:%M})",
            ]
            if ti.attempt:
                tip.append(f"attempts: {ti.attempt}")
            if took is not None:
                tip.append(f"duration: {took:.2f}s")
            if ti.started_at:
                tip.append(f"started {ti.started_at:%Y-%m-%d %H:%M:%S}")
            if entry.elements:
                tip.append("elements: " + ", ".join(f"{n} {s}" for s, n in entry.counts))
            if ti.error:
                tip.append(ti.error.strip().splitlines()[-1][:160])
            cells[(tid, run.run_id)] = Cell(
                ti.state.value, tid, "\n".join(tip), took, len(entry.elements)
            )
    longest = max(
        (
            (r.ended_at - r.started_at).total_seconds()
            for r in oldest_first
            if r.started_at is not None and r.ended_at is not None
        ),
        default=0.0,
    )
    if order is None:
        seen.sort(key=natural_key)
    return Grid(list(oldest_first), seen, cells, longest)


@dataclass(frozen=True)
class Span:
    """A piece of a task's timeline bar: an attempt (its state) or a retry wait."""

    kind: str  # attempt | wait
    state: str
    left: float
    width: float
    tip: str


def attempt_spans(
    ti: TaskInstanceRecord,
    logs: Sequence[LogRecord],
    t0: datetime,
    span: float,
    now: datetime,
    last: bool = True,
) -> list[Span]:
    """Bars of a task's earlier attempts (from their log times), the waits between, and the last attempt.

    The store keeps the start and end of the latest attempt; an earlier attempt is drawn
    from the first to the last line it logged, the wait from there to the next start.
    A task waiting to retry shows the wait up to ``next_try_at``. ``last=False`` leaves out
    the latest attempt (drawn by the caller).
    """

    def pct(moment: datetime) -> float:
        return round(max(0.0, min(100.0, 100 * (moment - t0).total_seconds() / span)), 2)

    bounds: dict[int, list[datetime]] = {}
    for log in logs:
        if log.created_at is not None and log.attempt < ti.attempt:
            bounds.setdefault(log.attempt, []).append(log.created_at)
    out: list[Span] = []
    previous_end: datetime | None = None
    for attempt in sorted(bounds):
        began, ended = min(bounds[attempt]), max(bounds[attempt])
        out.append(
            Span(
                "attempt",
                "failed",
                pct(began),
                max(pct(ended) - pct(began), 0.6),
                f"attempt {attempt}: {began:%H:%M:%S} → {ended:%H:%M:%S} (failed)",
            )
        )
        previous_end = ended
    if ti.started_at is not None and previous_end is not None and ti.started_at > previous_end:
        out.append(
            Span(
                "wait",
                "wait",
                pct(previous_end),
                pct(ti.started_at) - pct(previous_end),
                f"retry wait {(ti.started_at - previous_end).total_seconds():.2f}s before attempt {ti.attempt}",
            )
        )
    if ti.started_at is not None and last:
        end = ti.ended_at or now
        out.append(
            Span(
                "attempt",
                ti.state.value,
                pct(ti.started_at),
                max(pct(end) - pct(ti.started_at), 0.6),
                f"attempt {ti.attempt}: {ti.started_at:%H:%M:%S} → {end:%H:%M:%S} ({ti.state.value})",
            )
        )
    if ti.state.value == "up_for_retry" and ti.next_try_at is not None and ti.ended_at is not None:
        out.append(
            Span(
                "wait",
                "wait",
                pct(ti.ended_at),
                max(pct(ti.next_try_at) - pct(ti.ended_at), 0.6),
                f"waiting to retry until {ti.next_try_at.astimezone(UTC):%H:%M:%S}",
            )
        )
    return out
