"""Template macros with Airflow's meanings: ``ds``, ``prev_ds``, ``next_ds``, data intervals.

A scheduled run covers the data interval ``[start, end)`` and its logical date is the
start, as in Airflow. The previous and next intervals come from the pipeline's
timetable (its own DST rules apply), never from adding a day by hand.

========================================  ==========================================  ===========================
macro (``ctx.<name>`` / ``{{ name }}``)   value                                       Airflow
========================================  ==========================================  ===========================
``logical_date``                          the run's logical date (aware, UTC)         ``logical_date``
``ds``                                    logical date, ``YYYY-MM-DD``                ``ds``
``ds_nodash``                             logical date, ``YYYYMMDD``                  ``ds_nodash``
``ts``                                    logical date, ISO 8601 with offset          ``ts``
``ts_nodash``                             logical date, ``YYYYMMDDTHHMMSS``           ``ts_nodash``
``data_interval_start``                   start of the data interval                  ``data_interval_start``
``data_interval_end``                     end of the data interval                    ``data_interval_end``
``prev_ds``                               logical date of the previous scheduled      ``prev_ds``
                                          interval, ``YYYY-MM-DD`` (None: no schedule)
``next_ds``                               logical date of the next scheduled          ``next_ds``
                                          interval, ``YYYY-MM-DD`` (None: no schedule)
``prev_data_interval_start``              start of the previous scheduled interval    ``prev_data_interval_start_success`` [1]
``prev_data_interval_end``                end of the previous scheduled interval      ``prev_data_interval_end_success`` [1]
========================================  ==========================================  ===========================

[1] Airflow's ``_success`` variants name the interval of the last *successful* run;
headrace's name the previous interval of the schedule, whatever happened to its run
(``depends_on_past`` is the way to require that run to have succeeded).

For a daily schedule and the run of 2024-01-02: ``ds`` = ``2024-01-02``, ``prev_ds`` =
``2024-01-01``, ``next_ds`` = ``2024-01-03``, ``data_interval_start`` = 2024-01-02 00:00,
``data_interval_end`` = 2024-01-03 00:00. For a manual run at a time between two
schedule points (2024-01-02 15:00), as Airflow's ``previous_schedule`` /
``following_schedule``: ``prev_ds`` is the latest schedule point before it
(``2024-01-02``) and ``next_ds`` the first one after it (``2024-01-03``).

This module imports nothing of headrace but the timetable.
"""

from __future__ import annotations

from datetime import datetime

from headrace.pipeline.timetable import Interval, Timetable

__all__ = ["MACRO_NAMES", "next_interval", "previous_interval", "schedule_interval"]

#: Every macro name a template may use (besides ``params.<name>``), see the table above.
MACRO_NAMES = (
    "ds",
    "ds_nodash",
    "ts",
    "ts_nodash",
    "prev_ds",
    "next_ds",
    "logical_date",
    "data_interval_start",
    "data_interval_end",
    "prev_data_interval_start",
    "prev_data_interval_end",
)


def schedule_interval(timetable: Timetable, logical_date: datetime) -> Interval | None:
    """The scheduled interval whose logical date is (or contains) ``logical_date``; None without a schedule."""
    base = timetable.infer_manual_interval(logical_date, semantics="containing")
    return base if base.end > base.start else None


def previous_interval(timetable: Timetable, interval: Interval) -> Interval | None:
    """The scheduled interval that ends where ``interval`` starts (Airflow's previous schedule)."""
    if interval.end <= interval.start:
        return None
    before = timetable.infer_manual_interval(interval.start, semantics="ending")
    return before if before.end > before.start else None


def next_interval(timetable: Timetable, interval: Interval) -> Interval | None:
    """The scheduled interval after ``interval`` (as the scheduler would create it)."""
    if interval.end <= interval.start:
        return None
    return timetable.next_interval(interval.end, catchup=True, now=interval.end)
