"""Show races at national size: an index of every state and office with a search, and one
state's races as a compact table, each linking to the race's own page."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from flask import Blueprint, abort, render_template, request

from rome.read.listing import (
    RaceFilter,
    national_index,
    page_views,
    race_groups,
    race_percent_reporting,
    search_index,
)
from web.api import STATE
from web.caching import revalidate
from web.database import database, listing
from web.race import page_context

bp = Blueprint("states", __name__)
bp.after_request(revalidate)

SHOWN_MATCHES = 50  # races a search lists at most; the rest are counted
MAX_QUERY = 200  # characters of a search
# A state's page reloads itself this often (live.js updates race cards, not its rows).
REFRESH_SECONDS = 5


@bp.get("/index")
def index_page():
    """List every state and its offices with their races counted, and find races by ?q=."""
    query = request.args.get("q", "").strip()[:MAX_QUERY]
    shared = listing()

    def groups():
        with database().Session() as session:
            return race_groups(session)

    by_state: dict[str, list] = {}
    for group in shared.answer("groups", groups):
        by_state.setdefault(group.state, []).append(group)
    matches, found = [], 0
    if query:
        # Scripts off, or a link to a search: the same filter the page's script runs.
        def index():
            with database().Session() as session:
                return national_index(session)

        matches, found = search_index(shared.answer("index", index), query, SHOWN_MATCHES)
    return render_template(
        "index.html", by_state=by_state, query=query, matches=matches, found=found,
        shown=SHOWN_MATCHES, total=sum(g.races for gs in by_state.values() for g in gs),
        **page_context(datetime.now(UTC)),
    )


@bp.get("/state/<state>")
def state_page(state: str):
    """Render one state's races by office: leader, share, reporting and call, each linked."""
    code = state.upper()
    if not STATE.fullmatch(code):
        abort(404, f"no state {state!r}: states are postal codes such as GA")
    shared = listing()
    now = datetime.now(UTC)

    def views():
        with database().Session() as session:
            return page_views(session, RaceFilter(states=(code,)), now=now,
                              stale_after=shared.stale_after, heard=shared.heard)[0]

    races = shared.answer(("state-views", code), views)
    if not races:
        abort(404, f"no races in state {code}: the index lists every state with races")
    by_office: dict[str, list] = {}
    for race in sorted(races, key=lambda r: (r.office, r.id)):
        by_office.setdefault(race.office, []).append(race)
    return render_template("state.html", state=code, by_office=by_office,
                           reporting=race_percent_reporting, refresh_seconds=REFRESH_SECONDS,
                           **page_context(now))


@bp.app_template_filter("anchor")
def anchor(office: str) -> str:
    """Name an office's section for a link: the same id on the index and the state's page,
    whatever characters the feed's name holds."""
    return "office-" + hashlib.sha256(office.encode()).hexdigest()[:10]
