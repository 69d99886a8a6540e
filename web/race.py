"""Show every race as a page or as the original JSON rows, and wipe the tallies."""

from __future__ import annotations

import hmac
import logging
from datetime import UTC, datetime

from flask import Blueprint, current_app, jsonify, render_template, request

from rome import tally
from rome.catalog import default_catalog
from rome.logs import log
from rome.results import original_rows, race_views, rejected_count
from web.database import database
from web.errors import error_json

bp = Blueprint("race", __name__)
logger = logging.getLogger("rome.web")


@bp.get("/race")
def race_page():
    """Render every race as HTML, or as the original demo's rows when JSON is preferred."""
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    with database().Session() as session:
        if best == "application/json":
            response = jsonify(original_rows(session))
        else:
            response = current_app.make_response(
                render_template(
                    "race.html",
                    races=race_views(session),
                    rejected=rejected_count(session),
                    parties=default_catalog().parties,
                    now=datetime.now(UTC),
                )
            )
    # One URL, two representations: caches must key on Accept.
    response.vary.add("Accept")
    return response


def _utc(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; Rome stores UTC.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


@bp.app_template_filter("iso")
def iso(moment: datetime) -> str:
    """Format moment as an ISO 8601 UTC timestamp for <time datetime>."""
    return _utc(moment).astimezone(UTC).isoformat(timespec="seconds")


@bp.app_template_filter("clock")
def clock(moment: datetime) -> str:
    """Format moment as a wall-clock UTC time for people to read."""
    return _utc(moment).astimezone(UTC).strftime("%H:%M:%S UTC")


def _bearer_token() -> str | None:
    auth = request.authorization
    if auth is None or auth.type != "bearer":
        return None
    return auth.token


def _unauthorized(message: str):
    log(logger, "wipeout_refused", logging.WARNING, remote_addr=request.remote_addr, reason=message)
    response, status = error_json(401, message)
    response.headers["WWW-Authenticate"] = "Bearer"
    return response, status


@bp.post("/race/wipeout")
def wipeout():
    """Delete every tally and ledger row for a caller holding the admin token."""
    expected = current_app.config.get("ADMIN_TOKEN")
    if not expected:
        return error_json(403, "wipeout is disabled: no admin token configured")
    given = _bearer_token()
    if given is None:
        return _unauthorized("wipeout needs an Authorization: Bearer token")
    # Compare bytes: compare_digest refuses non-ASCII str, and a header may hold any.
    if not hmac.compare_digest(given.encode(), expected.encode()):
        return _unauthorized("the admin token is wrong")
    with database().Session.begin() as session:
        counts = tally.wipeout(session)
    log(logger, "wipeout", logging.WARNING, remote_addr=request.remote_addr, **counts)
    return jsonify(counts)
