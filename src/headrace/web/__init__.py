"""The web UI, its JSON API and ``/metrics``, served by ``headrace web``.

Example:
    >>> from headrace.web import create_app
    >>> app = create_app(Settings.load())
"""

from __future__ import annotations

from headrace.extras import require

# FastAPI and Jinja2 come with the web extra: without them, one message naming it.
require("web", "fastapi", "headrace.web (the web UI and API)")
require("web", "jinja2", "headrace.web (the web UI and API)")
require("web", "python_multipart", "headrace.web (the web UI's forms)")

from headrace.web.application import create_app  # noqa: E402

__all__ = ["create_app"]
