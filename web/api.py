"""Serve race results, their history and rejected payloads as JSON, as openapi.json documents."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from flask import Blueprint, Response, current_app, jsonify, request, url_for

from rome.feeds.sources_file import load_sources
from rome.read.history import race_history
from rome.read.listing import national_index, races_page, state_races
from rome.read.results import race_ids, recent_rejected, rejected_count
from rome.read.results_cache import ResultsState
from rome.read.shapes import MAX_PAGE, RaceListJson, RejectedListJson
from rome.read.sources import LiveSourceListJson, sources_view
from web.caching import revalidate
from web.database import database, listing, results
from web.errors import error_json

bp = Blueprint("api", __name__, url_prefix="/api")
bp.after_request(revalidate)

MAX_REJECTED = 500
LISTING_PARAMETERS = ("state", "office", "race", "limit", "offset")
MAX_VALUES = 100  # states, offices or race ids in one request, each
MAX_ID = 2**31 - 1  # ids are PostgreSQL integers: a larger one names no race
# A state as feeds write it: a postal code (AZ), or a few letters, digits and dashes.
STATE = re.compile(r"[A-Za-z0-9-]{1,16}", re.ASCII)
MAX_OFFICE = 300  # characters: the longest office the database keeps
DEFAULT_REJECTED = 50
# RFC 3339 date-times, which fromisoformat would otherwise read only in part.
DATE_TIME = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})?", re.ASCII
)


def _json_once(state: ResultsState, key: str, build) -> Response:
    # Every poll between two changes asks for the same bytes: serialize them once.
    body = state.memo.get(key)
    if body is None:
        body = state.memo[key] = current_app.json.response(build()).get_data()
    return current_app.response_class(body, mimetype="application/json")


class BadParameter(ValueError):
    """A query parameter that is not what the API documents; its message says what is."""


def _values(name: str, *, split: bool) -> list[str]:
    # Repeated (?state=GA&state=AZ) or, for states and ids, comma-separated (?state=GA,AZ).
    values = [v for raw in request.args.getlist(name)
              for v in (raw.split(",") if split else [raw])]
    if len(values) > MAX_VALUES:
        raise BadParameter(f"{name} takes at most {MAX_VALUES} values")
    return values


def _whole(name: str, raw: str | None, low: int, high: int) -> int | None:
    # Plain digits only: int() would also take " 5", "+5" and "1_0".
    if raw is None:
        return None
    if re.fullmatch(r"[0-9]{1,10}", raw, re.ASCII) and low <= int(raw) <= high:
        return int(raw)
    raise BadParameter(f"{name} must be a whole number from {low} to {high}, not {raw!r}")


def listing_arguments() -> dict:
    """Read /api/races' filters and paging from the query string; BadParameter if one is wrong."""
    states = [s.upper() for s in _values("state", split=True)]
    for state in states:
        if not STATE.fullmatch(state):
            raise BadParameter(f"state must be a postal code such as GA (letters, digits and "
                               f"dashes, at most 16), not {state!r}")
    offices = _values("office", split=False)
    for office in offices:
        if not office or len(office) > MAX_OFFICE or "\x00" in office:
            raise BadParameter(f"office must be an office's name, 1 to {MAX_OFFICE} characters "
                               "(and no NUL)")
    ids = [_whole("race", raw, 0, MAX_ID) for raw in _values("race", split=True)]
    return {
        "states": tuple(sorted(set(states))), "offices": tuple(sorted(set(offices))),
        "race_ids": tuple(sorted(set(ids))),
        "limit": _whole("limit", request.args.get("limit"), 1, MAX_PAGE),
        "offset": _whole("offset", request.args.get("offset"), 0, MAX_ID) or 0,
    }


def page_link(arguments: dict, offset: int) -> str:
    """Say where the page of these filters and limit at offset is."""
    query = {"state": ",".join(arguments["states"]) or None,
             "office": list(arguments["offices"]) or None,
             "race": ",".join(map(str, arguments["race_ids"])) or None,
             "limit": arguments["limit"], "offset": offset}
    return url_for("api.races", **{k: v for k, v in query.items() if v is not None})


@bp.get("/races")
def races():
    """List the races, all or by ?state=, ?office= and ?race=, paged by ?limit= and ?offset=."""
    if not any(name in request.args for name in LISTING_PARAMETERS):
        # Every race, as the live results page polls it: from the views kept in memory.
        state = results()
        return _json_once(state, "races", lambda: RaceListJson(
            races=[race.to_json() for race in state.races], rejected=state.rejected,
            total=len(state.races), limit=None, offset=0, next=None, previous=None,
        ))
    try:
        arguments = listing_arguments()
    except BadParameter as exc:
        return error_json(400, str(exc))
    return _listed(("races", tuple(arguments.items())), lambda session, shared: races_page(
        session, **arguments, now=datetime.now(UTC), stale_after=shared.stale_after,
        heard=shared.heard, link=lambda offset: page_link(arguments, offset)))


def _listed(key: object, build) -> Response | None:
    """Answer JSON built by build(session, listing state), once per results version and key;
    None when build found nothing to answer."""
    shared = listing()

    def body() -> bytes | None:
        with database().Session() as session:
            answer = build(session, shared)
        return None if answer is None else current_app.json.response(answer).get_data()

    data = shared.answer(("json", key), body)
    if data is None:
        return None
    return current_app.response_class(data, mimetype="application/json")


@bp.get("/index")
def index():
    """List every race, small: by state and office, with its leader, reporting and call."""
    # The same index the page's search without scripts reads: built once for both.
    return _listed("index", lambda session, shared: shared.answer(
        "index", lambda: national_index(session)))


@bp.get("/states/<state>")
def one_state(state: str):
    """List every race of one state, as /api/races lists them; 404 for a state without races."""
    code = state.upper()
    answer = None
    if STATE.fullmatch(code):
        answer = _listed(("state", code), lambda session, shared: state_races(
            session, code, datetime.now(UTC), shared.stale_after, shared.heard))
    if answer is None:
        return error_json(404, f"no races in state {state!r}: states are postal codes such as "
                               "GA, as /api/index lists them")
    return answer


@bp.get("/races/<int:race_id>")
def one_race(race_id: int):
    """Return one race, or 404 when Rome has no race with that id."""
    state = results()
    for race in state.races:
        if race.id == race_id:
            return _json_once(state, f"race/{race_id}", race.to_json)
    return error_json(404, f"no race with id {race_id}")


def parse_since(raw: str) -> datetime | None:
    """Read an RFC 3339 date-time (UTC when it names no offset), or None if it is not one."""
    if not DATE_TIME.fullmatch(raw):
        return None
    text = raw.upper().replace("Z", "+00:00")
    # A leap second is valid RFC 3339 but not a Python time: read it as :59.
    text = re.sub(r"(?<=\d{2}:\d{2}:)60", "59", text)
    # Python keeps microseconds: cut finer fractions instead of refusing them.
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None  # not a date (month 13, February 30)
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        # A valid date-time whose offset shifts it past Python's range: year 1 at +00:09
        # is before anything, year 9999 at -01:00 after anything.
        return (datetime.min if moment.year == 1 else datetime.max).replace(tzinfo=UTC)


@bp.get("/races/<int:race_id>/history")
def history(race_id: int):
    """Return one race's cumulative totals over time, only after ?since= when given."""
    raw = request.args.get("since")
    since = None
    if raw is not None:
        since = parse_since(raw)
        if since is None:
            return error_json(
                400, "since must be an RFC 3339 date-time such as 2016-11-08T20:00:00Z"
            )
    with database().Session() as session:
        # Checked here, not in SQL: a huge id would overflow PostgreSQL's integer.
        if race_id not in race_ids(session):
            return error_json(404, f"no race with id {race_id}")
        return jsonify(race_history(session, race_id, since).to_json())


@bp.get("/races/<race_id>")
@bp.get("/races/<race_id>/history")
@bp.get("/races/<race_id>/history.csv")
def not_a_race_id(race_id: str):
    """Answer 404 for a race id that is not a number, saying what an id looks like."""
    return error_json(404, f"no race with id {race_id!r}: race ids are whole numbers, "
                           "as listed by /api/races")


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
        return jsonify(RejectedListJson(rejected=recent_rejected(session, limit),
                                        count=rejected_count(session)))


@bp.get("/sources")
def sources():
    """List the live sources of ROME_SOURCES with where each one's polling stands."""
    with database().Session() as session:
        views = sources_view(session, live_sources(), datetime.now(UTC))
    return jsonify(LiveSourceListJson(sources=views))


def live_sources() -> list:
    """ROME_SOURCES as this app read it (once); [] when it is not set."""
    path = current_app.config.get("SOURCES_FILE")
    if not path:
        return []
    cached = current_app.extensions.get("rome_sources")
    if cached is None or cached[0] != path:
        cached = current_app.extensions["rome_sources"] = (path, load_sources(path))
    return cached[1]


@bp.get("/openapi.json")
def openapi():
    """Serve the OpenAPI document that describes this API."""
    with current_app.open_resource("openapi.json", "rb") as spec:
        return current_app.response_class(spec.read(), mimetype="application/json")
