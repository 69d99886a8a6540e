"""Protect the page's forms against cross-site requests with a token kept in the session.

The token lives in Flask's signed session cookie, so every gunicorn worker and
every replica must sign with the same key. That key is ROME_SECRET_KEY when it
is set; otherwise it is a random key made once and kept in the data folder,
which every web process of one deployment shares. It is never derived from the
admin token: every visitor gets a signed cookie, and a key derived from the
token would let anyone test guesses at the token offline against it. Without an
admin token there is no form to protect (wipeout is disabled), and no key.
"""

from __future__ import annotations

import hmac
import os
import re
import secrets
from pathlib import Path

from flask import has_request_context, request, session
from flask.sessions import SecureCookieSessionInterface

from rome.data_files import SESSION_KEY as KEY_FILE

SESSION_KEY = "csrf"
FIELD = "csrf_token"


class SessionKeyError(RuntimeError):
    """The stored session key cannot be used; the message says where it is."""


def _read_key(path: Path) -> str:
    key = path.read_text().strip()
    if not re.fullmatch(r"[0-9a-f]{64}", key):
        raise SessionKeyError(
            f"{path} does not hold a session key (64 hex digits): delete it to make a new one"
        )
    return key


def stored_secret_key(data_dir: Path) -> str:
    """Return the deployment's random session key from data_dir, making it on first use."""
    path = data_dir / KEY_FILE
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    # Written whole under a private name, then linked into place: link fails if
    # another worker got there first, and nobody ever reads a half-written key.
    draft = data_dir / f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
    descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write(secrets.token_hex(32) + "\n")
        try:
            os.link(draft, path)
        except FileExistsError:
            pass
    finally:
        draft.unlink()
    return _read_key(path)


def secret_key(configured: str | None, admin_token: str | None, data_dir: Path) -> str | None:
    """Return the key that signs sessions: the configured one, else the stored one."""
    if configured:
        return configured
    if admin_token:
        return stored_secret_key(data_dir)
    return None


class SessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, the cookie marked Secure on every request over HTTPS."""

    def get_cookie_secure(self, app) -> bool:
        # Over HTTPS (directly, or through a proxy trusted with ROME_PROXY_HOPS),
        # the browser must never send the cookie back over plain HTTP.
        secure = super().get_cookie_secure(app)
        return bool(secure or (has_request_context() and request.is_secure))


def csrf_token() -> str:
    """Return this session's form token, creating it on first use."""
    token = session.get(SESSION_KEY)
    if not token:
        token = session[SESSION_KEY] = secrets.token_urlsafe(32)
    return token


def csrf_valid(submitted: str | None) -> bool:
    """Tell whether a submitted form token is this session's own."""
    expected = session.get(SESSION_KEY)
    if not expected or not submitted:
        return False
    return hmac.compare_digest(submitted.encode(), expected.encode())
