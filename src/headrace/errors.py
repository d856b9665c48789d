"""The error tree of headrace.

One root, :class:`HeadraceError`; one subclass per part; two markers that tell the
engine whether trying again can help. Every error names what it is about (pipeline,
task, table, column, row) and, where it can, what to do.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class HeadraceError(Exception):
    """Root of every error headrace raises on purpose."""


class TransientError(HeadraceError):
    """Marker: the failure may pass (network, lock, timeout); a retry can help."""


class TerminalError(HeadraceError):
    """Marker: retrying cannot help (bad definition, bad data, bad configuration)."""


class ConfigError(TerminalError):
    """Configuration or connection settings are missing or wrong."""


class UsageError(ConfigError):
    """A command-line value is wrong (a bad --param, --date, --executor; CLI exit code 2)."""


class DefinitionError(TerminalError):
    """A pipeline or task is defined wrongly; raised when the file is loaded."""


class StateError(HeadraceError):
    """The run-state store failed or holds something unexpected."""


class NotFoundError(StateError):
    """A run, task or pipeline named by the user does not exist (CLI exit code 3)."""


class UnavailableError(TransientError):
    """A service (state store, Redis, a database) cannot be reached (CLI exit code 5).

    Args:
        message: what failed, naming the service's URL with its password masked.
    """


class EngineError(HeadraceError):
    """A run could not be carried out."""


class ScheduleError(HeadraceError):
    """A schedule, backfill or sensor is wrong or failed."""


class ConnectorError(HeadraceError):
    """A source or destination failed."""


class QualityError(HeadraceError):
    """Data failed an expectation whose severity is ``fail``."""


class QueueError(HeadraceError):
    """The job queue failed."""


class AnalyticsError(HeadraceError):
    """An analytics query, profile or export failed."""


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """Return `` Did you mean 'x'?`` for the closest known name, or an empty string."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f" Did you mean {close[0]!r}?" if close else ""
