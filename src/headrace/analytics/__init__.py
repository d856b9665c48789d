"""DuckDB analytics: load files, query with bound parameters, profile, aggregate, export.

Example:
    >>> from headrace.analytics import Analyzer
    >>> with Analyzer() as a:
    ...     a.query("SELECT 1 + ? AS two", [1]).scalar()
    2
"""

from __future__ import annotations

from headrace.analytics.aggregate import Summary
from headrace.analytics.analyzer import Analyzer, Relation, WarehouseBusyError
from headrace.analytics.export import ExportInfo
from headrace.analytics.profile import ColumnProfile, Histogram, Profile
from headrace.analytics.query_result import Result

__all__ = [
    "Analyzer",
    "ColumnProfile",
    "ExportInfo",
    "Histogram",
    "Profile",
    "Relation",
    "Result",
    "Summary",
    "WarehouseBusyError",
]
