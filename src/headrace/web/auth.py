"""Authentication and CSRF protection of the web UI and its JSON API.

Two ways to authenticate, configured at the edge (``headrace web`` reads the
environment once and passes a :class:`WebAuth` to ``create_app``):

* a token (``HEADRACE_WEB_TOKEN``): API clients send ``Authorization: Bearer TOKEN``;
  in a browser the token is typed once on ``/login`` (the actor is recorded as ``token``);
* users with hashed passwords (``HEADRACE_WEB_USERS="alice:scrypt$...,bob:..."``, hashes
  made by :func:`hash_password`, e.g. ``python -m headrace.web.auth PASSWORD``).

A browser session is an HMAC-signed cookie (``HttpOnly``, ``SameSite=Strict``). Every
form carries a CSRF token bound to the session (an HMAC of the session id), checked on
every POST; a JSON call made with the session cookie must send it as ``X-CSRF-Token``.
Bearer-token calls need no CSRF token: a browser never adds that header by itself.

When authentication is configured every page and API route needs it (``/api/health``
excepted); without it the UI is read-only and every action answers 403.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from headrace.errors import ConfigError

SESSION_COOKIE = "headrace_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
#: A session lasts this long (seconds) before the user logs in again.
SESSION_SECONDS = 12 * 3600
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def hash_password(password: str, salt: bytes | None = None) -> str:
    """``scrypt$N$r$p$salt$hash`` (base64) of ``password``, for ``HEADRACE_WEB_USERS``."""
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    b64 = base64.b64encode
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches a hash made by :func:`hash_password` (constant time)."""
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        got = hashlib.scrypt(
            password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p), dklen=32
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, base64.b64decode(digest))


@dataclass(frozen=True)
class WebAuth:
    """Who may use the web UI and API.

    Args:
        token: the shared token (``HEADRACE_WEB_TOKEN``), or None.
        users: user name -> password hash (:func:`hash_password`).
        secret: key signing session cookies and CSRF tokens (random per process by default,
            so restarting the server logs everyone out).
    """

    token: str | None = None
    users: Mapping[str, str] = field(default_factory=dict)
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)

    @property
    def configured(self) -> bool:
        """Whether any way to authenticate exists (else actions are refused)."""
        return bool(self.token) or bool(self.users)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> WebAuth:
        """Read ``HEADRACE_WEB_TOKEN``, ``HEADRACE_WEB_USERS`` and ``HEADRACE_WEB_SECRET`` (the edge only)."""
        token = environ.get("HEADRACE_WEB_TOKEN") or None
        if token is not None and len(token) < 16:
            raise ConfigError(
                "HEADRACE_WEB_TOKEN is shorter than 16 characters: use e.g. `openssl rand -hex 24`"
            )
        users: dict[str, str] = {}
        for entry in filter(
            None, (e.strip() for e in environ.get("HEADRACE_WEB_USERS", "").split(","))
        ):
            name, sep, hashed = entry.partition(":")
            if not sep or not name or not hashed.startswith("scrypt$"):
                raise ConfigError(
                    f"HEADRACE_WEB_USERS entry {name or entry[:20]!r}: expected NAME:HASH with a hash from "
                    "`python -m headrace.web.auth PASSWORD`"
                )
            users[name] = hashed
        secret = environ.get("HEADRACE_WEB_SECRET")
        if secret:
            return cls(token=token, users=users, secret=secret.encode())
        return cls(token=token, users=users)

    # ------------------------------------------------------------------ checks

    def check_token(self, given: str | None) -> bool:
        """Whether ``given`` is the configured token (constant time); False when no token is set."""
        if not self.token or given is None:
            return False
        return hmac.compare_digest(given.encode(), self.token.encode())

    def login(self, user: str, password: str) -> str | None:
        """The actor name when ``user``/``password`` (or the token as password) is right, else None."""
        if user in self.users and verify_password(password, self.users[user]):
            return user
        if self.check_token(password):
            return "token"
        return None

    # ------------------------------------------------------------------ sessions and CSRF

    def _sign(self, text: str) -> str:
        return hmac.new(self.secret, text.encode(), hashlib.sha256).hexdigest()

    def new_session(self, actor: str) -> str:
        """A signed cookie value naming ``actor``."""
        body = f"{actor}|{int(time.time())}|{secrets.token_hex(8)}"
        return base64.urlsafe_b64encode(f"{body}|{self._sign(body)}".encode()).decode()

    def session_actor(self, cookie: str | None) -> str | None:
        """The actor of a valid, unexpired session cookie, else None."""
        if not cookie:
            return None
        try:
            actor, issued, nonce, signature = (
                base64.urlsafe_b64decode(cookie.encode()).decode().rsplit("|", 3)
            )
        except (ValueError, UnicodeDecodeError):
            return None
        if not hmac.compare_digest(signature, self._sign(f"{actor}|{issued}|{nonce}")):
            return None
        if not issued.isdigit() or time.time() - int(issued) > SESSION_SECONDS:
            return None
        return actor

    def csrf_token(self, session: str) -> str:
        """The CSRF token of a session (or of an anonymous browser's ``csrf seed`` cookie)."""
        return self._sign(f"csrf|{session}")

    def check_csrf(self, session: str | None, given: str | None) -> bool:
        return (
            bool(session)
            and bool(given)
            and hmac.compare_digest(self.csrf_token(session or ""), given or "")
        )


def main(argv: list[str]) -> int:
    """``python -m headrace.web.auth PASSWORD`` prints the hash to put in HEADRACE_WEB_USERS."""
    if len(argv) != 1:
        print("usage: python -m headrace.web.auth PASSWORD", file=sys.stderr)
        return 2
    print(hash_password(argv[0]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
