"""Wipe out every tally: by API with a bearer token, or by the page's form, CSRF-protected."""

from __future__ import annotations

import hmac
import logging
from datetime import UTC, datetime

from flask import Blueprint, current_app, flash, jsonify, redirect, request, url_for

from rome import tally
from rome.logs import log
from web.csrf import FIELD, csrf_valid
from web.database import database
from web.errors import error_json
from web.race import render_overview

bp = Blueprint("wipeout", __name__)
logger = logging.getLogger("rome.web")

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def _origin(via: str) -> dict[str, object]:
    # Who asked, as far as HTTP can tell: kept with every attempt, granted or not.
    return {
        "via": via,
        "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "remote_addr": request.remote_addr,
        "forwarded_for": request.headers.get("X-Forwarded-For", ""),
        "origin": request.headers.get("Origin") or request.headers.get("Referer") or "",
        "user_agent": request.headers.get("User-Agent", "")[:200],
    }


def _token_matches(given: str, expected: str) -> bool:
    # Compare bytes: compare_digest refuses non-ASCII str, and a header may hold any.
    return hmac.compare_digest(given.encode(), expected.encode())


def _wipe(via: str) -> dict[str, int]:
    with database().Session.begin() as session:
        counts = tally.wipeout(session)
    log(logger, "wipeout", logging.WARNING, **_origin(via), **counts)
    return counts


def _refuse(via: str, reason: str) -> None:
    log(logger, "wipeout_refused", logging.WARNING, **_origin(via), reason=reason)


def _bearer_token() -> str | None:
    auth = request.authorization
    if auth is None or auth.type != "bearer":
        return None
    return auth.token


def _unauthorized(message: str):
    _refuse("api", message)
    response, status = error_json(401, message)
    response.headers["WWW-Authenticate"] = "Bearer"
    return response, status


def _by_api():
    expected = current_app.config.get("ADMIN_TOKEN")
    if not expected:
        _refuse("api", "disabled")
        return error_json(403, "wipeout is disabled: no admin token configured")
    given = _bearer_token()
    if given is None:
        return _unauthorized("wipeout needs an Authorization: Bearer token")
    if not _token_matches(given, expected):
        return _unauthorized("the admin token is wrong")
    return jsonify(_wipe("api"))


def _form_error(status: int, message: str):
    _refuse("form", message)
    return render_overview(status, wipeout_error=message)


def _by_form():
    expected = current_app.config.get("ADMIN_TOKEN")
    if not expected:
        return _form_error(403, "Wipeout is disabled: no admin token is configured.")
    # Checked first: a request forged by another site stops here, token or not.
    if not csrf_valid(request.form.get(FIELD)):
        return _form_error(
            403, "This form has expired or was sent from another site. Reload the page and retry."
        )
    if request.form.get("confirm") != "yes":
        return _form_error(400, "Tick the box to confirm that every result will be deleted.")
    given = request.form.get("token", "")
    if not given:
        return _form_error(401, "Enter the admin token.")
    if not _token_matches(given, expected):
        return _form_error(401, "The admin token is wrong.")
    counts = _wipe("form")
    flash(
        f"Wiped out {counts['tallies']:,} tallies and {counts['history']:,} history rows.", "done"
    )
    # Post/redirect/get: reloading the result must not post the form again.
    return redirect(url_for("race.race_page"), 303)


@bp.post("/race/wipeout")
def wipeout():
    """Delete every result for a caller holding the admin token."""
    # A browser form cannot send an Authorization header, and an API client
    # sending one means the bearer route, whatever its body.
    if request.authorization is None and request.mimetype in FORM_TYPES:
        return _by_form()
    return _by_api()
