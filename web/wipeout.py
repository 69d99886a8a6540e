"""Wipe out every tally: by API with a bearer token, or by the page's form, CSRF-protected.

A client may have its token checked WIPEOUT_GUESSES times in any
WIPEOUT_WINDOW seconds (a sliding window); after that it is refused with a
429, without its token being checked, until its oldest guess in the window is
WIPEOUT_WINDOW old. The guesses are kept in the database (rome/store/guesses.py),
so every gunicorn worker counts the same ones, and each takes its place
before its token is compared: two workers cannot both check a 21st. Each
refused attempt is logged with the client and the reason, never the token:
every wrong token, and up to WIPEOUT_LOGGED other refusals (no token, a
forged form) per client and window in each worker; the rest are counted in
one line when the window ends (rome/ops/attempts.py).
"""

from __future__ import annotations

import hmac
import logging
import time
from datetime import UTC, datetime
from pathlib import Path

from flask import Blueprint, current_app, flash, g, jsonify, redirect, request, url_for

from rome.logs import log
from rome.ops.attempts import AttemptLimiter, client_key
from rome.publish.publisher import Publisher
from rome.store import guesses, tally
from web.csrf import FIELD, csrf_valid
from web.database import database
from web.errors import error_json
from web.race import render_overview

bp = Blueprint("wipeout", __name__)
logger = logging.getLogger("rome.web")

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
WIPEOUT_GUESSES = 20
WIPEOUT_WINDOW = 900.0
WIPEOUT_LOGGED = 10


def make_attempt_limiter(config) -> AttemptLimiter:
    """Build the log's limiter of wipeout refusals from an app's config (tests may set it)."""
    return AttemptLimiter(
        limit=config.get("WIPEOUT_LOGGED", WIPEOUT_LOGGED),
        window=config.get("WIPEOUT_WINDOW", WIPEOUT_WINDOW),
        clock=_clock(config),
    )


def _clock(config):
    # Wall-clock seconds: the guesses are compared across processes.
    return config.get("WIPEOUT_CLOCK") or time.time


def _limits() -> tuple[int, float]:
    config = current_app.config
    return config.get("WIPEOUT_GUESSES", WIPEOUT_GUESSES), config.get("WIPEOUT_WINDOW",
                                                                      WIPEOUT_WINDOW)


def _wait() -> float | None:
    """Seconds this client must wait before its token may be checked again, or None."""
    limit, window = _limits()
    with database().Session() as session:
        return guesses.wait_for(session, _client(), _clock(current_app.config)(), limit, window)


def _take_guess() -> float | None:
    """Count this client's guess before its token is checked; return the wait if none is left."""
    limit, window = _limits()
    with database().Session.begin() as session:
        wait, held = guesses.take_slot(session, _client(), _clock(current_app.config)(),
                                       limit, window)
    g.wipeout_last_guess = wait is None and held >= limit
    return wait


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
        guesses.forget(session, _client())
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
    if attempt_limiter(current_app).refused(client, guess=guess):
        log(logger, "wipeout_refused", logging.WARNING, **_origin(via), client=client,
            reason=reason)
    if guess and g.get("wipeout_last_guess"):
        limit, window = _limits()
        log(logger, "wipeout_limited", logging.WARNING, client=client, guesses=limit,
            seconds=round(window), detail="later attempts are refused unchecked and "
            "counted, not logged, until the oldest guess is out of the window")


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


def _stopped(via: str, wait: float):
    attempt_limiter(current_app).stopped(_client())
    return _too_many(via, wait)


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
    if (wait := _take_guess()) is not None:
        return _stopped("api", wait)
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
    if (wait := _take_guess()) is not None:
        return _stopped("form", wait)
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
    if (wait := _wait()) is not None:
        return _stopped(via, wait)
    return _by_form() if via == "form" else _by_api()
