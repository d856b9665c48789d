"""Errors of the quality part.

:class:`ExpectationsFailed` and :class:`ReconciliationError` are data errors: retrying
the same data cannot help, so both are :class:`~headrace.errors.TerminalError`.
:class:`ExpectationDefinitionError` is raised when an expectation is declared wrongly
(bad regex, quarantine severity on a table-level check, unknown column).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from headrace.errors import DefinitionError, QualityError, TerminalError

if TYPE_CHECKING:
    from headrace.quality.check_results import ExpectationResult


class ExpectationDefinitionError(DefinitionError):
    """An expectation is declared wrongly or does not fit the table it is applied to.

    Args:
        message: what is wrong and what to do (it names the expectation and column).
        expectation: the expectation's name, when one is concerned.
        column: the column, when one is concerned.
        location: pipeline, task, table... as for :class:`~headrace.errors.HeadraceError`.
    """

    def __init__(
        self,
        message: str,
        *,
        expectation: str | None = None,
        column: str | None = None,
        **location: Any,
    ) -> None:
        super().__init__(message, **location)
        self.expectation = expectation
        self.column = column  # kept, not named again: the message already names it

    def located(self, where: str | None = None, **location: Any) -> ExpectationDefinitionError:
        """The same error, located: the fields (``pipeline=``, ``task=``, ``table=``) it lacks
        are added and named in front of the message, as is ``where`` (a location as text).
        """
        fields = {name: getattr(self, name) for name in ("path", "pipeline", "task", "table")}
        fields.update(
            {k: v for k, v in location.items() if v is not None and fields.get(k) is None}
        )
        detail = f"{where}: {self.detail}" if where else self.detail
        return ExpectationDefinitionError(
            detail, expectation=self.expectation, column=self.column, **fields
        )


class ExpectationsFailed(QualityError, TerminalError):
    """One or more expectations of severity ``fail`` failed.

    Args:
        message: the summary (each expectation, counts, sample rows).
        failures: the failed results, for callers that want the data.
        location: pipeline, task, table... as for :class:`~headrace.errors.HeadraceError`.
    """

    def __init__(self, message: str, failures: list[ExpectationResult], **location: Any) -> None:
        super().__init__(message, **location)
        self.failures = failures


class ReconciliationError(QualityError, TerminalError):
    """Row counts do not add up: rows would be lost or duplicated.

    Args:
        message: what was counted and what to do.
        extracted: rows that came in.
        loaded: rows that were loaded.
        quarantined: rows that were quarantined.
        location: pipeline, task, run_id, table as for :class:`~headrace.errors.HeadraceError`.
    """

    def __init__(
        self, message: str, extracted: int, loaded: int, quarantined: int, **location: Any
    ) -> None:
        super().__init__(message, **location)
        self.extracted = extracted
        self.loaded = loaded
        self.quarantined = quarantined
