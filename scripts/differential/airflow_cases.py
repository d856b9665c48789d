"""The schedule case matrix, and Airflow's answers to it (runs inside the Airflow venv).

Cases: every schedule x zone x DST transition (spring and fall of 2024 and 2025; UTC uses
Berlin's instants) x start (local midnight two days before: aligned for most schedules;
1h17m later: not aligned; 47 minutes before the transition). For each:

- ``catchup``: the first intervals ``next_dagrun_info`` creates with ``catchup=True``;
- ``latest``: the same with ``catchup=False`` at a given ``now``;
- ``manual``: ``infer_manual_data_interval(run_after=at)`` for instants around the transition.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

SCHEDULES: list[str | int] = [
    "0 2 * * *",
    "30 1 * * 0",
    "@hourly",
    "*/15 * * * *",
    "0 0 1 * *",
    "0 2 * * 1-5",
    "@weekly",
    "@monthly",
    6 * 3600,  # an int: timedelta(seconds=...)
]
ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe"]
YEARS = [2024, 2025]
CATCHUP_RUNS = 6
LATEST_RUNS = 3
NOW_AFTER = [dt.timedelta(minutes=29), dt.timedelta(days=2, hours=7, minutes=13)]
MANUAL_AT = [dt.timedelta(minutes=m) for m in (-61, -30, -1, 0, 13, 29, 30, 43, 61, 97, 1440, 4620)]
UTC = dt.UTC


def stamp(value: dt.datetime) -> str:
    """A UTC instant as ``YYYY-MM-DDTHH:MM[:SS]Z``."""
    value = value.astimezone(UTC)
    spec = "minutes" if value.second == 0 and value.microsecond == 0 else "seconds"
    return value.replace(tzinfo=None).isoformat(timespec=spec) + "Z"


def transitions(zone: str, year: int) -> list[tuple[str, dt.datetime]]:
    """(``spring`` | ``fall``, UTC instant) of each clock change of ``zone`` in ``year``."""
    tz = ZoneInfo("Europe/Berlin" if zone == "UTC" else zone)
    found = []
    at = dt.datetime(year, 1, 1, tzinfo=UTC)
    step = dt.timedelta(minutes=30)
    while at.year == year:
        before, after = at.astimezone(tz).utcoffset(), (at + step).astimezone(tz).utcoffset()
        if before != after:
            assert before is not None and after is not None
            found.append(("spring" if after > before else "fall", at + step))
        at += step
    return found


def starts(zone: str, change: dt.datetime) -> dict[str, dt.datetime]:
    """Start dates around one clock change."""
    tz = ZoneInfo(zone)
    day = change.astimezone(tz).date() - dt.timedelta(days=2)
    midnight = dt.datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC)
    return {
        "aligned": midnight,
        "unaligned": midnight + dt.timedelta(hours=1, minutes=17),
        "near": change - dt.timedelta(minutes=47),
    }


def matrix() -> list[dict[str, Any]]:
    """Every case, without answers: what the two sides are asked."""
    cases: list[dict[str, Any]] = []
    for schedule in SCHEDULES:
        for zone in ZONES:
            for year in YEARS:
                for season, change in transitions(zone, year):
                    base = {"schedule": schedule, "zone": zone, "transition": f"{season} {year}"}
                    for label, start in starts(zone, change).items():
                        cases.append(
                            {**base, "kind": "catchup", "start_kind": label, "start": stamp(start)}
                        )
                        for after in NOW_AFTER:
                            cases.append(
                                {
                                    **base,
                                    "kind": "latest",
                                    "start_kind": label,
                                    "start": stamp(start),
                                    "now": stamp(change + after),
                                }
                            )
                    cases.append(
                        {**base, "kind": "manual", "at": [stamp(change + d) for d in MANUAL_AT]}
                    )
    return cases


def parse(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _airflow_timetable(schedule: str | int, zone: str) -> Any:
    from airflow.timetables.interval import CronDataIntervalTimetable, DeltaDataIntervalTimetable

    if isinstance(schedule, int):
        return DeltaDataIntervalTimetable(dt.timedelta(seconds=schedule))
    return CronDataIntervalTimetable(schedule, timezone=zone)


def _runs(timetable: Any, start: dt.datetime, catchup: bool, count: int) -> list[list[str]]:
    import pendulum
    from airflow.timetables.base import DataInterval, TimeRestriction

    restriction = TimeRestriction(earliest=pendulum.instance(start), latest=None, catchup=catchup)
    last = None
    out = []
    for _ in range(count):
        info = timetable.next_dagrun_info(
            last_automated_data_interval=last, restriction=restriction
        )
        if info is None:
            break
        last = DataInterval(info.data_interval.start, info.data_interval.end)
        out.append([stamp(last.start), stamp(last.end)])
    return out


def answer(case: dict[str, Any]) -> dict[str, Any]:
    """Airflow's intervals for one case (or the error it raises)."""
    import airflow.timetables.interval as interval_module
    import pendulum

    timetable = _airflow_timetable(case["schedule"], case["zone"])
    try:
        if case["kind"] == "manual":
            got: list[Any] = []
            for at in case["at"]:
                try:
                    iv = timetable.infer_manual_data_interval(
                        run_after=pendulum.instance(parse(at))
                    )
                    got.append([stamp(iv.start), stamp(iv.end)])
                except Exception as exc:  # recorded: Airflow's own failure is a fact too
                    got.append({"error": f"{type(exc).__name__}: {exc}"[:200]})
            return {**case, "intervals": got}
        now = parse(case.get("now", "2030-01-01T00:00Z"))
        interval_module.utcnow = lambda: pendulum.instance(now)  # type: ignore[attr-defined]
        count = CATCHUP_RUNS if case["kind"] == "catchup" else LATEST_RUNS
        return {
            **case,
            "intervals": _runs(timetable, parse(case["start"]), case["kind"] == "catchup", count),
        }
    except Exception as exc:
        return {**case, "error": f"{type(exc).__name__}: {exc}"[:200]}


def compute() -> dict[str, Any]:
    """The whole fixture."""
    import logging

    import airflow

    logging.disable(logging.WARNING)
    cases = [answer(c) for c in matrix()]
    n_intervals = sum(len(c.get("intervals", [])) for c in cases)
    return {
        "reference": f"apache-airflow {airflow.__version__}",
        "description": "Airflow's data intervals for headrace's schedule case matrix; "
        "written by scripts/differential/airflow_gx.py, do not edit by hand",
        "counts": {"cases": len(cases), "intervals": n_intervals},
        "cases": cases,
    }
