"""Sources: SQL databases and files, read as Arrow record batches."""

from __future__ import annotations

from headrace.connectors.sources.file_sources import FileExtract, FileSource
from headrace.connectors.sources.malformed import FileReport, MalformedRow, NanRule
from headrace.connectors.sources.source_base import Extract, Source
from headrace.connectors.sources.sql_sources import SqlSource

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
