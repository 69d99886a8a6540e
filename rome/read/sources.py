"""The live sources as /api/sources, /metrics, the race page and `rome sources` show them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, TypedDict

from sqlalchemy.orm import Session

from rome.feeds.sources_file import FORMATS, SourceSpec
from rome.schema import Count, Meta, Moment
from rome.store import polls


class LiveSourceJson(TypedDict):
    """A source of ROME_SOURCES and where its polling stands (its key is never shown)."""

    id: str
    name: str
    format: Annotated[str, Meta(enum=FORMATS)]
    url: Annotated[str, Meta("The configured URL: AP's first request, Clarity's election "
                             "base, NIST's document.")]
    interval: Annotated[float, Meta("Seconds between polls.")]
    requests_per_minute: Annotated[int, Meta("Never more requests in any 60 s, retries "
                                             "included.", minimum=1)]
    last_poll_at: Annotated[Moment | None, Meta("When the last poll ended; null: never.")]
    last_poll_age: Annotated[float | None, Meta("Seconds since then.")]
    status: Annotated[int | None, Meta("The last HTTP status the last poll got; null: no "
                                       "answer (timeout, refused) or never polled.")]
    next_poll_at: Moment | None
    requests_last_minute: Count
    last_error: Annotated[str | None, Meta("Why the last poll stopped short; null: it did not.")]
    polls: Annotated[dict[str, Count], Meta(
        "Polls by outcome: the last HTTP status, `error` (no answer), `limited` (the "
        "source's requests_per_minute let no request go before the poll's deadline), "
        "`skipped` (the one before still ran).")]
    county_errors: Annotated[dict[str, str], Meta(
        "Clarity: each county whose file failed, with why; retried every poll.")]
    polling: Annotated[bool, Meta("A poll of it is running now.")]


class LiveSourceListJson(TypedDict):
    """The live sources Rome polls (ROME_SOURCES); empty when it runs the simulated night."""

    sources: list[LiveSourceJson]


def sources_view(session: Session, specs: list[SourceSpec],
                 now: datetime) -> list[LiveSourceJson]:
    """Each source of ROME_SOURCES with where its polling stands (never its key)."""
    rows = polls.states(session)
    return [LiveSourceJson(**spec.public(), **polls.public_state(rows.get(spec.id), now))
            for spec in specs]


def polling_by_source(session: Session, now: datetime) -> dict[str, dict]:
    """Every polled source's state by id, for the race page's "reported by" panel."""
    return {source: polls.public_state(row, now)
            for source, row in polls.states(session).items()}


def sources_text(views: list[dict]) -> str:
    """The view as `rome sources` prints it: one block per source."""
    lines = []
    for v in views:
        lines.append(f"{v['id']} ({v['format']}, every {v['interval']:g} s, at most "
                     f"{v['requests_per_minute']}/min): {v['name']}")
        lines.append(f"  url          {v['url']}")
        age = "never" if v["last_poll_at"] is None else \
            f"{v['last_poll_at']} ({v['last_poll_age']:.0f} s ago)"
        lines.append(f"  last poll    {age}, HTTP status {v['status'] or '-'}")
        lines.append(f"  next poll    {v['next_poll_at'] or '-'}"
                     f"{' (polling now)' if v['polling'] else ''}")
        lines.append(f"  last minute  {v['requests_last_minute']} requests")
        counted = ", ".join(f"{k}: {n}" for k, n in sorted(v["polls"].items()))
        lines.append(f"  polls        {counted or '-'}")
        lines.append(f"  last error   {v['last_error'] or '-'}")
        for county, reason in sorted(v["county_errors"].items()):
            lines.append(f"    county {county}: {reason}")
    return "\n".join(lines)
