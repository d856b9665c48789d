"""Who is asking: the login page, the session middleware and the checks every action runs.

Rules (see :mod:`headrace.web.auth` for the mechanisms):

* authentication configured: every page and API route needs a session or a bearer token,
  except ``/login``, ``/api/health`` and ``/openapi.json``; pages redirect to ``/login``,
  the API answers 401;
* no authentication configured (only allowed on a loopback address): pages are
  readable, every action answers 403;
* an action from a browser session needs the session's CSRF token (form field
  ``csrf_token`` or header ``X-CSRF-Token``), else 403; a bearer token needs none.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import quote

from fastapi import HTTPException, Request
from fastapi.responses import RedirectResponse, Response

from headrace.web.auth import CSRF_FIELD, CSRF_HEADER, SESSION_COOKIE, WebAuth

#: Cookie holding a random seed for the CSRF token of the login form (before any session).
SEED_COOKIE = "headrace_csrf_seed"
OPEN_PATHS = ("/login", "/api/health", "/openapi.json")


def auth_of(request: Request) -> WebAuth:
    return request.app.state.auth


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def identify(request: Request) -> tuple[str | None, bool]:
    """(actor, via_bearer): who the request comes from, None when nobody."""
    auth = auth_of(request)
    token = bearer(request)
    if token is not None:
        return ("token" if auth.check_token(token) else None), True
    return auth.session_actor(request.cookies.get(SESSION_COOKIE)), False


def csrf_for(request: Request) -> str:
    """The CSRF token to put in this page's forms ('' when there is no session)."""
    session = request.cookies.get(SESSION_COOKIE)
    return auth_of(request).csrf_token(session) if session else ""


async def session_gate(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    """Middleware: with authentication configured, turn away requests that carry none."""
    auth = auth_of(request)
    path = request.url.path
    if not auth.configured or path in OPEN_PATHS:
        return await call_next(request)
    actor, _ = identify(request)
    if actor is not None:
        request.state.actor = actor
        return await call_next(request)
    if path.startswith("/api/") or path == "/metrics":
        return Response(
            '{"detail":"authentication required: send Authorization: Bearer TOKEN"}',
            status_code=401,
            media_type="application/json",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if request.method != "GET":
        return Response("authentication required", status_code=401, media_type="text/plain")
    target = path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)


def require_actor(request: Request, csrf: str | None) -> str:
    """The actor allowed to act, or an HTTPException (401 unauthenticated, 403 no CSRF / no auth).

    Args:
        request: the request.
        csrf: the CSRF token the form or header carried.
    """
    auth = auth_of(request)
    if not auth.configured:
        raise HTTPException(
            403,
            "actions need authentication: start `headrace web` with HEADRACE_WEB_TOKEN "
            "or HEADRACE_WEB_USERS set",
        )
    actor, via_bearer = identify(request)
    if actor is None:
        raise HTTPException(
            401,
            "authentication required: log in, or send Authorization: Bearer TOKEN",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not via_bearer:
        given = csrf or request.headers.get(CSRF_HEADER)
        if not auth.check_csrf(request.cookies.get(SESSION_COOKIE), given):
            raise HTTPException(
                403,
                f"missing or wrong CSRF token: submit the form from the page "
                f"(or send the {CSRF_HEADER} header)",
            )
    return actor


def page_identity(request: Request) -> tuple[str | None, str, bool]:
    """(actor, CSRF token for the page's forms, whether actions are possible) of a page request."""
    actor, _ = identify(request)
    return actor, csrf_for(request), auth_of(request).configured and actor is not None


__all__ = ["CSRF_FIELD", "page_identity", "require_actor", "session_gate"]
