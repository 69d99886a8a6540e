"""Serve race results and rejected payloads as JSON."""

from __future__ import annotations

import re

from flask import Blueprint, jsonify, request

from rome.results import race_views, recent_rejected, rejected_count
from web.database import database
from web.errors import error_json

bp = Blueprint("api", __name__, url_prefix="/api")

MAX_REJECTED = 500
DEFAULT_REJECTED = 50


@bp.get("/races")
def races():
    """List every race with the total count of rejected payloads."""
    with database().Session() as session:
        return jsonify(
            races=[race.to_json() for race in race_views(session)],
            rejected=rejected_count(session),
        )


@bp.get("/races/<int:race_id>")
def one_race(race_id: int):
    """Return one race, or 404 when Rome has no race with that id."""
    with database().Session() as session:
        for race in race_views(session):
            if race.id == race_id:
                return jsonify(race.to_json())
    return error_json(404, f"no race with id {race_id}")


@bp.get("/rejected")
def rejected():
    """List the newest rejected payloads, at most ?limit= of them (1 to 500)."""
    raw = request.args.get("limit")
    if raw is None:
        limit = DEFAULT_REJECTED
    # Plain digits only: int() would also take " 5", "+5" and "1_0".
    elif re.fullmatch(r"[0-9]{1,4}", raw) and 1 <= int(raw) <= MAX_REJECTED:
        limit = int(raw)
    else:
        return error_json(400, f"limit must be an integer from 1 to {MAX_REJECTED}")
    with database().Session() as session:
        return jsonify(rejected=recent_rejected(session, limit), count=rejected_count(session))
