"""Process logs as text or as JSON lines (``HEADRACE_LOG_FORMAT=json``), secrets masked.

The edge (the CLI, a scheduler's run process) reads ``HEADRACE_LOG_FORMAT`` and calls
:func:`configure_logging` once. In JSON mode every record of the ``headrace`` loggers
(runs, scheduler, workers) is one object per line on stderr::

    {"ts": "2024-01-02T02:00:00.123456+00:00", "level": "INFO", "logger": "headrace.run",
     "message": "task extract success", "run_id": "01j...", "task_id": "extract", ...}

Fields passed with ``extra={...}`` become keys of the object.

Example:
    >>> configure_logging("json")
    >>> logging.getLogger("headrace.run").info("started", extra={"run_id": "r1"})  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from headrace.errors import ConfigError
from headrace.masking import MASKER

FORMATS = ("text", "json")
#: LogRecord attributes that are not user fields.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}
_HANDLER_NAME = "headrace-log-format"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts, level, logger, message, extra fields, exception."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                data[key] = value
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return MASKER.mask(json.dumps(MASKER.mask_value(data), default=str, ensure_ascii=False))


def configure_logging(fmt: str | None, level: int = logging.INFO) -> None:
    """In JSON mode, send the ``headrace`` loggers to stderr as JSON lines (idempotent).

    Text mode (the default) leaves logging as it is: warnings and errors on stderr.
    Records still propagate, so task logs are captured into the state store as before.

    Args:
        fmt: ``json``, ``text``, or None/empty (text).
        level: the lowest level written in JSON mode.

    Raises:
        ConfigError: an unknown format (naming HEADRACE_LOG_FORMAT).
    """
    fmt = (fmt or "text").strip().lower()
    if fmt not in FORMATS:
        raise ConfigError(f"HEADRACE_LOG_FORMAT={fmt!r}: use one of {', '.join(FORMATS)}")
    logger = logging.getLogger("headrace")
    for handler in list(logger.handlers):
        if handler.get_name() == _HANDLER_NAME:
            logger.removeHandler(handler)
    if fmt == "text":
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    if logger.level == logging.NOTSET or logger.level > level:
        logger.setLevel(level)


def json_enabled() -> bool:
    """Whether :func:`configure_logging` turned JSON logs on in this process."""
    return any(h.get_name() == _HANDLER_NAME for h in logging.getLogger("headrace").handlers)
