"""Sources: SQL databases and files, read as Arrow record batches."""

from __future__ import annotations

from headrace.connectors.sources.base import Extract, Source
from headrace.connectors.sources.files import FileExtract, FileSource
from headrace.connectors.sources.malformed import FileReport, MalformedRow, NanRule
from headrace.connectors.sources.sql import SqlSource

__all__ = [
    "Extract",
    "FileExtract",
    "FileReport",
    "FileSource",
    "MalformedRow",
    "NanRule",
    "Source",
    "SqlSource",
]
