"""Jinja2 templates of the web UI (autoescaped), their filters and :func:`render`."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.templating import Jinja2Templates

import headrace
from headrace.observe.times import format_logical, format_seconds, format_time
from headrace.state.variable_store import MASK, looks_secret
from headrace.web.api_routes import web_context
from headrace.web.models import masked
from headrace.web.security import page_identity

_env = Environment(
    loader=PackageLoader("headrace.web", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
templates = Jinja2Templates(env=_env)


def shown_params(params: dict[str, Any]) -> list[tuple[str, Any]]:
    """A run's params as shown: values of secret-looking names (``api_token``, ``password``) as ``***``."""
    return [(k, MASK if looks_secret(k) else v) for k, v in params.items()]


_env.filters.update(
    time=format_time,
    logical=format_logical,
    masked=masked,
    seconds=format_seconds,
    shown_params=shown_params,
)


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """Render ``template`` with the common context: store, version, who is logged in, CSRF token."""
    ctx = web_context(request)
    actor, csrf, can_act = page_identity(request)
    base = {
        "store": ctx.location,
        "version": headrace.__version__,
        "refresh": 0,
        "actor": actor,
        "csrf": csrf,
        "can_act": can_act,
    }
    return templates.TemplateResponse(
        request, template, {**base, **context}, status_code=status_code
    )
