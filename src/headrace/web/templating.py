"""Jinja2 templates of the web UI (autoescaped), their filters and :func:`render`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.templating import Jinja2Templates

import headrace
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

def fmt_time(value: datetime | None) -> str:
    """``2024-01-31 02:00:00`` in UTC, or ``-``."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if value is not None else "-"


def fmt_logical(value: datetime) -> str:
    """A logical date: the day alone at midnight UTC, else the full time."""
    utc = value.astimezone(UTC)
    return utc.strftime("%Y-%m-%d") if utc.time() == datetime.min.time() else fmt_time(utc)


def fmt_duration(started: datetime | None, ended: datetime | None, now: datetime | None = None) -> str:
    """``0.42s``, ``12.3s``, ``3m05s`` or ``1h02m``; ``…`` appended while running; ``-`` if never started."""
    if started is None:
        return "-"
    end = ended or now or datetime.now(UTC)
    return fmt_seconds((end - started).total_seconds()) + ("…" if ended is None else "")


def fmt_seconds(seconds: float) -> str:
    """``0.42s``, ``12.3s``, ``3m05s`` or ``1h02m``."""
    seconds = max(seconds, 0.0)
    if seconds < 10:
        text = f"{seconds:.2f}s"
    elif seconds < 60:
        text = f"{seconds:.1f}s"
    elif seconds < 3600:
        text = f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    else:
        text = f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"
    return text


def shown_params(params: dict[str, Any]) -> list[tuple[str, Any]]:
    """A run's params as shown: values of secret-looking names (``api_token``, ``password``) as ``***``."""
    return [(k, MASK if looks_secret(k) else v) for k, v in params.items()]


_env.filters.update(time=fmt_time, logical=fmt_logical, masked=masked, seconds=fmt_seconds, shown_params=shown_params)


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """Render ``template`` with the common context: store, version, who is logged in, CSRF token."""
    ctx = web_context(request)
    actor, csrf, can_act = page_identity(request)
    base = {"store": ctx.location, "version": headrace.__version__, "refresh": 0,
            "actor": actor, "csrf": csrf, "can_act": can_act}
    return templates.TemplateResponse(request, template, {**base, **context}, status_code=status_code)
