"""Protect the page's forms against cross-site requests with a token kept in the session.

The token lives in Flask's signed session cookie, so every gunicorn worker and
every replica must sign with the same key. That key is ROME_SECRET_KEY when it
is set; otherwise it is derived from the admin token with scrypt, which every
process already shares, and which is the only secret the form protects. A key
made at random per process would not do: a form served by one worker would be
refused by the next. Without either there is no key, and no form to protect,
since wipeout is disabled.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from functools import cache

from flask import session

SESSION_KEY = "csrf"
FIELD = "csrf_token"


@cache
def derive_secret_key(admin_token: str) -> bytes:
    """Derive the session signing key from the admin token, slowly enough to deter guessing."""
    # Any signed cookie lets its holder test guesses at the token offline;
    # scrypt makes each guess cost 16 MiB and tens of milliseconds of CPU.
    return hashlib.scrypt(
        admin_token.encode(), salt=b"rome-web-session-v1", n=2**14, r=8, p=1, dklen=32
    )


def secret_key(configured: str | None, admin_token: str | None) -> str | bytes | None:
    """Return the key that signs sessions: the configured one, or one derived from the token."""
    if configured:
        return configured
    if admin_token:
        return derive_secret_key(admin_token)
    return None


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
