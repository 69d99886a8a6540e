"""Show the races as pages (or the original JSON rows), and one race's totals over time."""

from __future__ import annotations

from datetime import UTC, date, datetime

from flask import Blueprint, abort, current_app, jsonify, render_template, request

from rome.feeds.catalog import default_catalog
from rome.read.freshness import age_seconds, as_utc
from rome.read.history import race_history
from rome.read.results import RaceView, original_rows
from rome.read.sources import polling_by_source
from web.caching import revalidate
from web.chart import line_chart
from web.database import database, results

bp = Blueprint("race", __name__)
bp.after_request(revalidate)

# An image's text scales with it: a phone gets a chart drawn for its width.
CHART_SIZES = {"large": (960, 320), "small": (360, 260)}


def page_context(now: datetime) -> dict:
    """Return what every page template needs besides its races."""
    interval = current_app.config["SOURCE_INTERVAL"]
    return {
        "now": now,
        "parties": default_catalog().parties,
        "stale_after": current_app.config["STALE_AFTER"],
        "stale_intervals": round(current_app.config["STALE_AFTER"] / interval),
        # Poll about as often as sources report, within reason.
        "poll_ms": int(1000 * min(5.0, max(1.0, interval))),
        "wipeout_enabled": bool(current_app.config.get("ADMIN_TOKEN")),
    }


def render_overview(status: int = 200, wipeout_error: str | None = None):
    """Render every race as the results page, with an optional wipeout form error."""
    state = results()
    html = render_template(
        "race.html", races=state.races, rejected=state.rejected,
        wipeout_error=wipeout_error, **page_context(datetime.now(UTC)),
    )
    return html, status


@bp.get("/race")
def race_page():
    """Render every race as HTML, or as the original demo's rows when JSON is preferred."""
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    if best == "application/json":
        response = jsonify(original_rows(results().races))
    else:
        response = current_app.make_response(render_overview())
    # One URL, two representations: caches must key on Accept.
    response.vary.add("Accept")
    return response


def _one_race(race_id: int) -> RaceView:
    for race in results().races:
        if race.id == race_id:
            return race
    abort(404, f"no race with id {race_id}")


@bp.get("/race/<int:race_id>")
def one_race_page(race_id: int):
    """Render one race with its totals over time."""
    race = _one_race(race_id)
    now = datetime.now(UTC)
    with database().Session() as session:
        history = race_history(session, race_id)
        # Live sources (ROME_SOURCES): how their polling stands, for "Reported by".
        polling = polling_by_source(session, now)
    chart = line_chart(history, race.candidates, *CHART_SIZES["large"])
    return render_template(
        "race_one.html", race=race, chart=chart, polling=polling, **page_context(now)
    )


@bp.get("/race/<int:race_id>/chart.svg")
def race_chart(race_id: int):
    """Draw one race's totals over time as an SVG image, ?size=large (default) or small."""
    size = request.args.get("size", "large")
    if size not in CHART_SIZES:
        abort(400, f"size must be one of {', '.join(CHART_SIZES)}")
    race = _one_race(race_id)
    with database().Session() as session:
        history = race_history(session, race_id)
    chart = line_chart(history, race.candidates, *CHART_SIZES[size])
    svg = render_template("chart.svg", race=race, chart=chart)
    return svg, 200, {"Content-Type": "image/svg+xml; charset=utf-8"}


@bp.app_template_filter("iso")
def iso(moment: datetime) -> str:
    """Format moment as an ISO 8601 UTC timestamp for <time datetime>."""
    return as_utc(moment).isoformat(timespec="seconds")


@bp.app_template_filter("clock")
def clock(moment: datetime) -> str:
    """Format moment as a wall-clock UTC time for people to read."""
    return as_utc(moment).strftime("%H:%M:%S UTC")


@bp.app_template_filter("ago")
def ago(moment: datetime, now: datetime) -> str:
    """Say how long before now moment was, as people say it."""
    seconds = int(age_seconds(moment, now) or 0)
    if seconds < 60:
        return f"{seconds} s ago"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    return f"{seconds // 3600} h ago"


@bp.app_template_filter("day")
def day(iso: str) -> str:
    """Write a YYYY-MM-DD day as people read it: 6 Nov 2012 ("" stays "")."""
    return f"{date.fromisoformat(iso):%-d %b %Y}" if iso else ""


@bp.app_template_filter("isolate")
def isolate(text: object) -> str:
    """Wrap a feed-given name in FIRST STRONG ISOLATE ... POP DIRECTIONAL ISOLATE.

    <bdi> isolates a name in the page; where no element can go (an attribute, a
    <title>), these two characters do the same: a right-to-left override in the
    name ends with it instead of reversing the figures written after it.
    """
    return f"\u2068{text}\u2069"


@bp.app_template_filter("seconds")
def seconds(value: float) -> str:
    """Write a duration in seconds without needless decimals: 10, 1.5."""
    return f"{value:g}"
