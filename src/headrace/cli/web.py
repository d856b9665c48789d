"""headrace CLI commands of this part; registered on import."""

from __future__ import annotations

from headrace.cli.app import app  # noqa: F401
