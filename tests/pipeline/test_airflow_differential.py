"""headrace's timetables against Airflow's own answers (committed golden fixture).

``differential/airflow_intervals.json`` holds what Airflow 3's ``CronDataIntervalTimetable``
and ``DeltaDataIntervalTimetable`` answer for a case matrix (9 schedules x 4 zones x the
DST transitions of 2024 and 2025 x aligned / unaligned / near-transition start dates):
the first runs with ``catchup=True``, the first runs with ``catchup=False`` at a given
now, and the manual-run interval (``infer_manual_data_interval``) at instants around each
transition. ``scripts/differential/airflow_gx.py`` writes it; nothing here imports Airflow.

Every case must agree exactly, except the intentional differences below. Each one is a
place where Airflow's answer breaks its own rules (an empty interval, an interval that
ends after the date, one that is not among its scheduled intervals, an exception) or
where headrace chose one of Airflow's two grids; the test checks that headrace's answer
there is the principled one, and that each listed difference still occurs.

==========================  ====================================  ===================================
difference                  Airflow 3.3                           headrace
==========================  ====================================  ===================================
timedelta_grid              catchup=False rounds to a grid from   the start_date grid, as catchup=True
                            the Unix epoch
start_in_repeated_hour      a start_date inside a repeated hour   the first fire time at or after the
                            skips that night's (second) fire      start date: that second fire
spring_forward_just_fired   catchup=False just after a fire at    runs the interval that just ended
                            the end of a DST gap skips it
error_30_minute_zone        @hourly in Lord Howe raises "next     the latest complete interval
                            schedule shouldn't be earlier"
manual_empty                a manual run at a fire time at the    the full interval ending there
                            end of a DST gap covers [t, t)
manual_ends_after_date      in a repeated hour the interval ends  the latest interval ending at or
                            after the date (at the second fire)   before the date
manual_not_scheduled        in Lord Howe, an interval that is not  one of the schedule's intervals
                            one of its scheduled intervals
==========================  ====================================  ===================================
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from headrace.pipeline.timetable import Interval, Timetable, timetable_from

FIXTURE = Path(__file__).parent / "differential" / "airflow_intervals.json"
FAR = datetime(2030, 1, 1, tzinfo=UTC)
DATA = json.loads(FIXTURE.read_text(encoding="utf-8"))

Pair = list[list[str]]


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def stamp(value: datetime) -> str:
    value = value.astimezone(UTC)
    spec = "minutes" if value.second == 0 and value.microsecond == 0 else "seconds"
    return value.replace(tzinfo=None).isoformat(timespec=spec) + "Z"


def pairs(intervals: list[Interval]) -> Pair:
    return [[stamp(iv.start), stamp(iv.end)] for iv in intervals]


def timetable(case: dict[str, Any]) -> Timetable:
    schedule = case["schedule"]
    return timetable_from(
        timedelta(seconds=schedule) if isinstance(schedule, int) else schedule, case["zone"]
    )


def headrace_runs(tt: Timetable, case: dict[str, Any], count: int) -> list[Interval]:
    """The first ``count`` runs the scheduler creates, as Airflow's next_dagrun_info loop."""
    catchup = case["kind"] == "catchup"
    now = parse(case["now"]) if "now" in case else FAR
    runs: list[Interval] = []
    after = None
    for _ in range(count):
        iv = tt.next_interval(after, start_date=parse(case["start"]), catchup=catchup, now=now)
        if iv is None:
            break
        runs.append(iv)
        after = iv.end
    return runs


_OWN: dict[tuple[str, str, datetime], set[tuple[str, str]]] = {}


def own_intervals(tt: Timetable, around: datetime) -> set[tuple[str, str]]:
    """The schedule's own intervals near ``around`` (as a backfill lists them)."""
    month = around.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    key = (tt.summary, str(tt.timezone), month)
    if key not in _OWN:
        found = tt.intervals(month - timedelta(days=40), month + timedelta(days=70))
        _OWN[key] = {(stamp(iv.start), stamp(iv.end)) for iv in found}
    return _OWN[key]


# -- the intentional differences: each checks headrace's answer is the principled one --


def timedelta_grid(case: dict[str, Any], theirs: Any, ours: Any, tt: Timetable) -> bool:
    if not (
        isinstance(case["schedule"], int) and case["kind"] == "latest" and isinstance(theirs, list)
    ):
        return False
    step = timedelta(seconds=case["schedule"])
    start = parse(case["start"])
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    on_start_grid = all((parse(s) - start) % step == timedelta(0) for s, _ in ours)
    on_epoch_grid = all((parse(s) - epoch) % step == timedelta(0) for s, _ in theirs)
    return on_start_grid and on_epoch_grid and (start - epoch) % step != timedelta(0)


def _repeated_wall_time(at: datetime, tt: Timetable) -> bool:
    local = at.astimezone(tt.timezone).replace(tzinfo=None)
    first = local.replace(tzinfo=tt.timezone, fold=0).astimezone(UTC)
    second = local.replace(tzinfo=tt.timezone, fold=1).astimezone(UTC)
    return first != second and at == second


def _in_gap_end(at: datetime, tt: Timetable) -> bool:
    """``at`` is a fire time moved to the end of a DST gap (its offset just changed)."""
    before = (at - timedelta(microseconds=1)).astimezone(tt.timezone).utcoffset()
    return before != at.astimezone(tt.timezone).utcoffset()


def start_in_repeated_hour(case: dict[str, Any], theirs: Any, ours: Any, tt: Timetable) -> bool:
    if case["kind"] not in ("catchup", "latest") or not ours or not isinstance(theirs, list):
        return False
    first = parse(ours[0][0])
    return (
        _repeated_wall_time(first, tt)
        and first >= parse(case["start"])
        and first - parse(case["start"]) < timedelta(hours=2)
        and ours[1:] == theirs[:-1]
    )


def spring_forward_just_fired(case: dict[str, Any], theirs: Any, ours: Any, tt: Timetable) -> bool:
    if case["kind"] != "latest" or not ours or not isinstance(theirs, list):
        return False
    end = parse(ours[0][1])
    return _in_gap_end(end, tt) and end <= parse(case["now"]) and ours[1:] == theirs[:-1]


def error_30_minute_zone(case: dict[str, Any], theirs: Any, ours: Any, tt: Timetable) -> bool:
    if (
        case["zone"] != "Australia/Lord_Howe"
        or not isinstance(theirs, dict)
        or "error" not in theirs
    ):
        return False
    own = own_intervals(tt, parse(ours[0][0]))
    contiguous = all(a[1] == b[0] for a, b in zip(ours, ours[1:], strict=False))
    return contiguous and all(tuple(iv) in own for iv in ours)


def manual_empty(case: dict[str, Any], theirs: Any, ours: Any, tt: Timetable) -> bool:
    if case["kind"] != "manual" or not isinstance(theirs, list) or theirs[0] != theirs[1]:
        return False
    return _in_gap_end(parse(theirs[1]), tt) and ours[1] == theirs[1] and ours[0] < ours[1]


def manual_ends_after_date(case: dict[str, Any], theirs: Any, ours: Any, tt: Timetable) -> bool:
    at = parse(case["at"]) if case["kind"] == "manual" else None
    return (
        at is not None
        and isinstance(theirs, list)
        and parse(theirs[1]) > at
        and parse(ours[1]) <= at
        and tuple(ours) in own_intervals(tt, at)
    )


def manual_not_scheduled(case: dict[str, Any], theirs: Any, ours: Any, tt: Timetable) -> bool:
    if case["kind"] != "manual" or not isinstance(theirs, list) or theirs[0] == theirs[1]:
        return False
    own = own_intervals(tt, parse(case["at"]))
    return tuple(theirs) not in own and tuple(ours) in own and parse(ours[1]) <= parse(case["at"])


DIFFERENCES: dict[str, Callable[[dict[str, Any], Any, Any, Timetable], bool]] = {
    "timedelta_grid": timedelta_grid,
    "start_in_repeated_hour": start_in_repeated_hour,
    "spring_forward_just_fired": spring_forward_just_fired,
    "error_30_minute_zone": error_30_minute_zone,
    "manual_empty": manual_empty,
    "manual_ends_after_date": manual_ends_after_date,
    "manual_not_scheduled": manual_not_scheduled,
}


def compare() -> tuple[int, Counter[str], list[str]]:
    """(intervals compared, differences by name, unexplained differences)."""
    compared = 0
    seen: Counter[str] = Counter()
    unexplained: list[str] = []

    def judge(case: dict[str, Any], theirs: Any, ours: Any, tt: Timetable) -> None:
        nonlocal compared
        compared += 1 if case["kind"] == "manual" else max(len(ours), 1)
        if theirs == ours:
            return
        names = [n for n, rule in DIFFERENCES.items() if rule(case, theirs, ours, tt)]
        if len(names) != 1:
            shown = {k: v for k, v in case.items() if k != "intervals"}
            unexplained.append(
                f"{shown} -> airflow {theirs}, headrace {ours} ({names or 'no rule'})"
            )
        seen.update(names[:1])

    for case in DATA["cases"]:
        tt = timetable(case)
        if case["kind"] == "manual":
            for at, theirs in zip(case["at"], case["intervals"], strict=True):
                ending = tt.infer_manual_interval(parse(at), semantics="ending")
                assert (
                    tt.latest_complete_interval(parse(at)) == ending
                )  # a dateless trigger at `at`
                judge({**case, "at": at}, theirs, pairs([ending])[0], tt)
        elif "error" in case:
            judge(case, {"error": case["error"]}, pairs(headrace_runs(tt, case, 3)), tt)
        else:
            judge(
                case, case["intervals"], pairs(headrace_runs(tt, case, len(case["intervals"]))), tt
            )
    return compared, seen, unexplained


def test_fixture_is_small_and_from_airflow() -> None:
    assert DATA["reference"].startswith("apache-airflow 3.")
    assert FIXTURE.stat().st_size < 1_000_000
    assert DATA["counts"]["cases"] == len(DATA["cases"]) >= 1000


def test_headrace_agrees_with_airflow_except_the_listed_differences() -> None:
    compared, seen, unexplained = compare()
    assert not unexplained, "\n".join(unexplained[:10])
    assert set(seen) == set(DIFFERENCES), (
        f"a listed difference no longer occurs: {set(DIFFERENCES) - set(seen)}"
    )
    agreed = compared - sum(seen.values())
    assert agreed / compared > 0.97, (compared, seen)
    print(f"{compared} intervals compared, {agreed} equal, differences: {dict(seen)}")


@pytest.mark.parametrize("zone", ["Europe/Berlin", "America/New_York"])
def test_airflow_manual_meaning_is_headrace_ending_option(zone: str) -> None:
    """Where Airflow's manual interval is sound, headrace's ``ending`` option gives it exactly."""
    for case in DATA["cases"]:
        if case["kind"] != "manual" or case["zone"] != zone:
            continue
        tt = timetable(case)
        for at, theirs in zip(case["at"], case["intervals"], strict=True):
            if isinstance(theirs, list) and theirs[0] < theirs[1] <= at:
                assert pairs([tt.infer_manual_interval(parse(at), semantics="ending")])[0] == theirs
