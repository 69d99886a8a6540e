"""Export the results and a race's history as CSV, for a results desk's spreadsheets."""

from __future__ import annotations

import csv
import io

from flask import Blueprint, Response

from rome.feeds.snapshot import LEVELS
from rome.read.history import race_history
from rome.read.results import race_ids
from web.caching import revalidate
from web.database import database, results
from web.errors import error_json

bp = Blueprint("export", __name__, url_prefix="/api")
bp.after_request(revalidate)

RESULT_COLUMNS = (
    "race_id", "race", "state", "office", "candidate_id", "first", "last", "party", "source",
    "level", "votes", "headline", "called", "test", "units_reporting", "units_total",
    "precincts_reporting", "precincts_total", "version", "feed_at", "last_update_at",
)
HISTORY_COLUMNS = ("at", "race_id", "source", "level", "candidate_id", "first", "last", "votes")
# A cell a spreadsheet would run as a formula: a feed's candidate name could be one.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def cell(value: object) -> object:
    """Return value as a spreadsheet should see it: text never starts a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return "" if value is None else value


def csv_response(columns: tuple[str, ...], rows: list[dict], filename: str) -> Response:
    """Write rows as CSV with a header line, as a download named filename."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")  # RFC 4180
    writer.writerow(columns)
    for row in rows:
        writer.writerow([cell(row[name]) for name in columns])
    response = Response(out.getvalue(), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@bp.get("/races.csv")
def races_csv():
    """Every race's figures, one row per race, candidate and reporting source."""
    rows = []
    for race in results().races:
        headline = race.primary.id if race.primary else None
        for c in race.candidates:
            for s in race.sources:
                if c.id not in s.by_candidate:
                    continue
                rows.append({
                    "race_id": race.id, "race": race.name, "state": race.state,
                    "office": race.office, "candidate_id": c.id, "first": c.first,
                    "last": c.last, "party": c.party, "source": s.id, "level": s.level,
                    "votes": s.by_candidate[c.id], "headline": s.id == headline,
                    "called": s.winner_id == c.id, "test": s.test,
                    "units_reporting": s.units_reporting, "units_total": s.units_total,
                    "precincts_reporting": s.precincts_reporting,
                    "precincts_total": s.precincts_total, "version": s.version,
                    "feed_at": s.feed_at.isoformat() if s.feed_at else None,
                    "last_update_at": s.last_update_at.isoformat() if s.last_update_at else None,
                })
    return csv_response(RESULT_COLUMNS, rows, "rome-results.csv")


@bp.get("/races/<int:race_id>/history.csv")
def history_csv(race_id: int):
    """One race's running totals over time, one row per point and candidate."""
    with database().Session() as session:
        if race_id not in race_ids(session):
            return error_json(404, f"no race with id {race_id}")
        history = race_history(session, race_id)
    names = {c.id: c for race in results().races if race.id == race_id for c in race.candidates}
    level = LEVELS[history.level_rank] if history.level_rank is not None else None
    rows = [
        {"at": at.isoformat(), "race_id": race_id, "source": history.source, "level": level,
         "candidate_id": cid, "first": names[cid].first if cid in names else "",
         "last": names[cid].last if cid in names else "", "votes": votes}
        for at, totals in history.points
        for cid, votes in zip(history.candidate_ids, totals, strict=True)
    ]
    return csv_response(HISTORY_COLUMNS, rows, f"rome-race-{race_id}-history.csv")
