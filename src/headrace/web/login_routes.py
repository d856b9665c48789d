"""The login and logout forms (sessions and CSRF: :mod:`headrace.web.auth`, rules: :mod:`headrace.web.security`)."""

from __future__ import annotations

import secrets
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import RedirectResponse, Response

from headrace.web.auth import SESSION_COOKIE, SESSION_SECONDS
from headrace.web.security import SEED_COOKIE, auth_of, require_actor
from headrace.web.templating import render

router = APIRouter(include_in_schema=False)


def safe_next(target: str | None) -> str:
    """A local path to go to after login (never another site)."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


@router.get("/login")
def login_page(request: Request, next: str | None = None, failed: int = 0) -> Response:
    """The login form (user and password, or the token as the password)."""
    seed = request.cookies.get(SEED_COOKIE) or secrets.token_hex(16)
    response = render(
        request,
        "login.html",
        title="Log in",
        next=safe_next(next),
        failed=bool(failed),
        login_csrf=auth_of(request).csrf_token("login|" + seed),
        users=bool(auth_of(request).users),
    )
    response.set_cookie(
        SEED_COOKIE,
        seed,
        httponly=True,
        samesite="strict",
        max_age=3600,
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/login")
def login(
    request: Request,
    password: Annotated[str, Form()],
    csrf_token: Annotated[str, Form()] = "",
    user: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    """Check the credentials and the login form's CSRF token; set the session cookie."""
    auth = auth_of(request)
    seed = request.cookies.get(SEED_COOKIE)
    if not seed or not auth.check_csrf("login|" + seed, csrf_token):
        raise HTTPException(403, "missing or wrong CSRF token on the login form: reload the page")
    actor = auth.login(user.strip(), password) if auth.configured else None
    if actor is None:
        return RedirectResponse(
            f"/login?failed=1&next={quote(safe_next(next), safe='')}", status_code=303
        )
    response = RedirectResponse(safe_next(next), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        auth.new_session(actor),
        httponly=True,
        samesite="strict",
        max_age=SESSION_SECONDS,
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/logout")
def logout(request: Request, csrf_token: Annotated[str, Form()] = "") -> Response:
    require_actor(request, csrf_token)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response
