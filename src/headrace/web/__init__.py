"""The web UI, its JSON API and ``/metrics``, served by ``headrace web``.

Example:
    >>> from headrace.web import create_app
    >>> app = create_app(Settings.load())
"""

from __future__ import annotations

from headrace.web.app import create_app

__all__ = ["create_app"]
