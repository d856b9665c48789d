"""What a file source could not read, and the per-file accounting of every line."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class NanRule(StrEnum):
    """What the text ``NaN`` (any case, also ``-nan``) in a float column of a CSV file becomes.

    ``keep`` (the default): the float NaN, a value like any other. ``null``: NULL, each
    one counted in the file's :class:`FileReport` (``nan_to_null``) and logged.
    ``quarantine``: the line is quarantined with its reason. In a column of any other
    type (integer, decimal, date) ``NaN`` is not a value: the line is quarantined.
    """

    KEEP = "keep"
    NULL = "null"
    QUARANTINE = "quarantine"


@dataclass(frozen=True)
class MalformedRow:
    """A line of a file that could not be read, kept instead of dropped.

    Args:
        file: the file it is in.
        line: its line number (1-based, counting the header line; physical lines, so a
            record whose quoted value spans lines counts them all).
        reason: why it was rejected (names the column when one is at fault).
        text: the raw text of the line (as far as it could be recovered; at most
            :data:`TEXT_LIMIT` characters of an oversized line).
    """

    file: str
    line: int | None
    reason: str
    text: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}: {self.text!r}"


TEXT_LIMIT = 1000


@dataclass
class FileReport:
    """Where every line of one file went: ``lines == accounted``, checked by the reader.

    Args:
        file: the file.
        lines: physical lines in the file (a last line without a line end counts).
        header: header lines (0 or 1).
        loaded: rows handed on.
        quarantined: lines kept aside as :class:`MalformedRow` (one line each).
        blank: empty lines, skipped.
        continued: the further lines of loaded records whose quoted values span lines.
        nan_to_null: ``NaN`` values turned into NULL under ``nan="null"`` (a count, not
            lines).
    """

    file: str
    lines: int = 0
    header: int = 0
    loaded: int = 0
    quarantined: int = 0
    blank: int = 0
    continued: int = 0
    nan_to_null: int = 0

    @property
    def accounted(self) -> int:
        """Lines the reader can say what became of."""
        return self.header + self.loaded + self.quarantined + self.blank + self.continued

    def __str__(self) -> str:
        text = (
            f"{self.file}: {self.lines} lines = {self.header} header + {self.loaded} loaded "
            f"+ {self.quarantined} quarantined"
        )
        if self.blank or self.continued:
            text += f" + {self.blank} blank + {self.continued} continuation"
        if self.nan_to_null:
            text += f"; {self.nan_to_null} NaN loaded as NULL"
        return text
