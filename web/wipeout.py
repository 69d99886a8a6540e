"""Wipe out every tally: by API with a bearer token, or by the page's form, CSRF-protected.

A client that sends WIPEOUT_GUESSES wrong tokens within WIPEOUT_WINDOW seconds
is refused with a 429, without its token being checked, until that window
ends. Each refused attempt is logged with the client and the reason, never the
token: every wrong token, and as many other refusals (no token, a forged form);
the rest are counted in one line when the window ends (rome/ops/attempts.py).
The count is kept per gunicorn worker: with two workers a client gets at most
twice as many.
"""

from __future__ import annotations

import hmac
import logging
import time
from datetime import UTC, datetime
from pathlib import Path

from flask import Blueprint, current_app, flash, jsonify, redirect, request, url_for

from rome.logs import log
from rome.ops.attempts import AttemptLimiter, client_key
from rome.publish.publisher import Publisher
from rome.store import tally
from web.csrf import FIELD, csrf_valid
from web.database import database
from web.errors import error_json
from web.race import render_overview

bp = Blueprint("wipeout", __name__)
logger = logging.getLogger("rome.web")

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
WIPEOUT_GUESSES = 10
WIPEOUT_WINDOW = 900.0


def make_attempt_limiter(config) -> AttemptLimiter:
    """Build the limiter of wipeout attempts from an app's config (tests may set all three)."""
    return AttemptLimiter(
        limit=config.get("WIPEOUT_GUESSES", WIPEOUT_GUESSES),
        window=config.get("WIPEOUT_WINDOW", WIPEOUT_WINDOW),
        clock=config.get("WIPEOUT_CLOCK") or time.monotonic,
    )


def attempt_limiter(app) -> AttemptLimiter:
    return app.extensions["rome_wipeout_attempts"]


def _client() -> str:
    return client_key(request.remote_addr)


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


def _wipe(via: str) -> tally.WipeoutResultJson:
    with database().Session.begin() as session:
        counts = tally.wipeout(session)
    attempt_limiter(current_app).granted(_client())
    log(logger, "wipeout", logging.WARNING, **_origin(via), **counts)
    _unpublish()
    return counts


def _unpublish() -> None:
    """Publish the wiped results at once: no reader keeps reading the old figures."""
    try:
        done = Publisher(Path(current_app.config["PUBLISH_DIR"]),
                         current_app.config["STALE_AFTER"]).publish_from(database())
    except OSError as exc:
        log(logger, "unpublish_failed", logging.ERROR, error=str(exc))
        return
    log(logger, "unpublished", logging.WARNING, written=len(done.written),
        removed=len(done.removed))


def _refuse(via: str, reason: str, *, guess: bool = False) -> None:
    """Count a refused attempt (guess: it carried a wrong token) and log it, within limits."""
    client = _client()
    log_it, now_blocked = attempt_limiter(current_app).refused(client, guess=guess)
    if log_it:
        log(logger, "wipeout_refused", logging.WARNING, **_origin(via), client=client,
            reason=reason)
    if now_blocked:
        limiter = attempt_limiter(current_app)
        log(logger, "wipeout_limited", logging.WARNING, client=client, guesses=limiter.limit,
            seconds=round(limiter.window), detail="later attempts are refused unchecked and "
            "counted, not logged, until the window ends")


def _log_finished_windows() -> None:
    for summary in attempt_limiter(current_app).finished():
        log(logger, "wipeout_refusals_summary", logging.WARNING, client=summary.client,
            refused=summary.refusals, logged=summary.logged, seconds=summary.seconds)


def _too_many(via: str, wait: float):
    minutes = max(1, round(wait / 60))
    message = f"Too many wrong admin tokens from your address: try again in {minutes} min."
    if via == "form":
        response = current_app.make_response(render_overview(429, wipeout_error=message))
    else:
        response = current_app.make_response(error_json(429, message))
    response.headers["Retry-After"] = str(round(wait))
    return response


def _bearer_token() -> str | None:
    auth = request.authorization
    if auth is None or auth.type != "bearer":
        return None
    return auth.token


def _unauthorized(message: str, *, guess: bool = False):
    _refuse("api", message, guess=guess)
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
        return _unauthorized("the admin token is wrong", guess=True)
    return jsonify(_wipe("api"))


def _form_error(status: int, message: str, *, guess: bool = False):
    _refuse("form", message, guess=guess)
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
        return _form_error(401, "The admin token is wrong.", guess=True)
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
    via = "form" if request.authorization is None and request.mimetype in FORM_TYPES else "api"
    _log_finished_windows()
    wait = attempt_limiter(current_app).blocked_for(_client())
    if wait is not None:
        return _too_many(via, wait)
    return _by_form() if via == "form" else _by_api()
