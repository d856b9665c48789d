"""Errors of the quality part.

:class:`ExpectationsFailed` and :class:`ReconciliationError` are data errors: retrying
the same data cannot help, so both are :class:`~headrace.errors.TerminalError`.
:class:`ExpectationDefinitionError` is raised when an expectation is declared wrongly
(bad regex, quarantine severity on a table-level check, unknown column).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from headrace.errors import DefinitionError, QualityError, TerminalError

if TYPE_CHECKING:
    from headrace.quality.check_results import ExpectationResult


class ExpectationDefinitionError(DefinitionError):
    """An expectation is declared wrongly or does not fit the table it is applied to.

    Args:
        message: what is wrong and what to do.
        expectation: the expectation's name, when one is concerned.
        column: the column, when one is concerned.
    """

    def __init__(self, message: str, *, expectation: str | None = None,
                 column: str | None = None) -> None:
        super().__init__(message)
        self.expectation = expectation
        self.column = column

    def located(self, where: str) -> ExpectationDefinitionError:
        """The same error with ``where`` (pipeline, task, table) in front of the message."""
        return ExpectationDefinitionError(f"{where}: {self}", expectation=self.expectation,
                                          column=self.column)


class ExpectationsFailed(QualityError, TerminalError):
    """One or more expectations of severity ``fail`` failed.

    Args:
        message: the summary (pipeline, task, each expectation, counts, sample rows).
        failures: the failed results, for callers that want the data.
    """

    def __init__(self, message: str, failures: list[ExpectationResult]) -> None:
        super().__init__(message)
        self.failures = failures


class ReconciliationError(QualityError, TerminalError):
    """Row counts do not add up: rows would be lost or duplicated.

    Args:
        message: what was counted where.
        extracted: rows that came in.
        loaded: rows that were loaded.
        quarantined: rows that were quarantined.
    """

    def __init__(self, message: str, extracted: int, loaded: int, quarantined: int) -> None:
        super().__init__(message)
        self.extracted = extracted
        self.loaded = loaded
        self.quarantined = quarantined
