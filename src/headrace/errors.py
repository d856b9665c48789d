"""The error tree of headrace.

One root, :class:`HeadraceError`; one subclass per part; two markers that tell the
engine whether trying again can help. Every error names what it is about (pipeline,
task, table, column, row) and, where it can, what to do.

What an error is about is kept as attributes too (``exc.pipeline``, ``exc.task``,
``exc.column``...), so callers (the web UI, the MCP server, alerts, lineage) read
fields rather than parse the message; the message is built from them::

    >>> str(ConnectorError("cannot be read as int64", table="orders", column="qty"))
    "table 'orders', column 'qty': cannot be read as int64"
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

#: The fields every headrace error may carry, in the order the message names them.
LOCATION = ("pipeline", "task", "run_id", "table", "column", "row", "connection")
_FORMS = (
    ("pipeline", "pipeline {!r}"),
    ("task", "task {!r}"),
    ("run_id", "run {}"),
    ("table", "table {!r}"),
    ("column", "column {!r}"),
    ("row", "row {}"),
    ("connection", "connection {}"),
)


def _rebuild(
    cls: type[BaseException], args: tuple[Any, ...], state: dict[str, Any]
) -> BaseException:
    """Unpickle an error without calling its ``__init__`` (whose signature varies by class)."""
    exc = cls.__new__(cls, *args)
    exc.args = args
    exc.__dict__.update(state)
    return exc


class HeadraceError(Exception):
    """Root of every error headrace raises on purpose.

    Args:
        message: what is wrong and what to do (the text after the location).
        path: the file the error is about; named first, like ``file: ...``.
        pipeline: the pipeline's name.
        task: the task's id.
        run_id: the run's id.
        table: the table (or stream) read or written.
        column: the column.
        row: the row's position (0-based) or key.
        connection: the connection's name or masked URL.

    Every argument is kept as an attribute of the same name (``detail`` for the
    message); ``str(exc)`` is ``"<path>: <pipeline>, <task>, ...: <message>"``.
    Errors pickle with all their fields (they cross process boundaries).
    """

    def __init__(
        self,
        message: str = "",
        *,
        path: str | None = None,
        pipeline: str | None = None,
        task: str | None = None,
        run_id: str | None = None,
        table: str | None = None,
        column: str | None = None,
        row: int | str | None = None,
        connection: str | None = None,
    ) -> None:
        self.detail = message
        self.path = None if path is None else str(path)
        self.pipeline = pipeline
        self.task = task
        self.run_id = run_id
        self.table = table
        self.column = column
        self.row = row
        self.connection = connection
        super().__init__(self._message())

    #: Extra fields a subclass names after the location: (attribute, format) pairs.
    about: tuple[tuple[str, str], ...] = ()

    @property
    def location(self) -> str:
        """The location named in front of the message (``"pipeline 'p', task 't'"``)."""
        parts = []
        for name, form in (*_FORMS, *self.about):
            value = getattr(self, name, None)
            if value is not None:
                parts.append(form.format(value))
        where = ", ".join(parts)
        path = getattr(self, "path", None)
        if path:
            where = f"{path}: {where}" if where else path
        return where

    def fields(self) -> dict[str, Any]:
        """What the error is about: the fields that are set (location, then the subclass's own).

        Example:
            >>> ConnectorError("bad", table="orders").fields()
            {'table': 'orders'}
        """
        names = ("path", *LOCATION, *(name for name, _ in self.about))
        return {
            name: getattr(self, name) for name in names if getattr(self, name, None) is not None
        }

    def _message(self) -> str:
        where = self.location
        if not where:
            return self.detail
        return f"{where}: {self.detail}" if self.detail else where

    def __reduce__(self) -> tuple[Any, ...]:
        # Unpickling must not call __init__: subclasses take other arguments.
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))


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
    """A run, task or pipeline named by the user does not exist (CLI exit code 3).

    Args:
        message: what was looked for and where; the location fields say which
            pipeline, run or task was named.
    """


class UnavailableError(TransientError):
    """A service (state store, Redis, a database) cannot be reached (CLI exit code 5).

    Args:
        message: what failed and what to do.
        service: the service's URL with its password masked (``redis://:***@host``).
        location: pipeline, task, table... as for :class:`HeadraceError`.
    """

    about = (("service", "{}"),)

    def __init__(self, message: str = "", *, service: str | None = None, **location: Any) -> None:
        self.service = service
        super().__init__(message, **location)


class EngineError(HeadraceError):
    """A run could not be carried out."""


class ScheduleError(HeadraceError):
    """A schedule, backfill or sensor is wrong or failed."""


class ConnectorError(HeadraceError):
    """A source or destination failed."""


class QualityError(HeadraceError):
    """Data failed an expectation whose severity is ``fail``."""


class QueueError(HeadraceError):
    """The job queue failed.

    Args:
        message: what failed and what to do.
        queue: the queue's name (named after the location: ``queue 'emails': ...``).
        location: pipeline, task, table... as for :class:`HeadraceError`.
    """

    about = (("queue", "queue {!r}"),)

    def __init__(self, message: str = "", *, queue: str | None = None, **location: Any) -> None:
        self.queue = queue
        super().__init__(message, **location)


class AnalyticsError(HeadraceError):
    """An analytics query, profile or export failed."""


def cause_line(exc: BaseException) -> str | None:
    """``"<ExcType>: <first line>"`` of the exception ``exc`` wraps (``raise ... from``), or None."""
    cause = exc.__cause__
    if cause is None:
        return None
    text = str(cause).strip()
    first = text.splitlines()[0] if text else ""
    return f"{type(cause).__name__}: {first}" if first else type(cause).__name__


def describe(exc: BaseException) -> str:
    """``"<ExcType>: <message>"``, plus a ``caused by:`` line when ``exc`` wraps another.

    The text an engine stores for a failed task: the wrapped driver or IO error stays
    visible without a traceback.
    """
    text = f"{type(exc).__name__}: {exc}"
    cause = cause_line(exc)
    return f"{text}\ncaused by: {cause}" if cause else text


def one_of(name: str, known: Iterable[str]) -> str:
    """``use one of a, b, c.`` and the closest known name: the tail of every "unknown choice" message.

    Example:
        >>> one_of("mrege", ["append", "merge"])
        "use one of append, merge. Did you mean 'merge'?"
    """
    choices = [str(k) for k in known]
    return f"use one of {', '.join(choices)}." + did_you_mean(name, choices)


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """Return `` Did you mean 'x'?`` for the closest known name, or an empty string."""
    close = difflib.get_close_matches(
        str(name), [str(k) for k in known], n=1, cutoff=0.6
    )  # str: enum members too
    return f" Did you mean {close[0]!r}?" if close else ""
