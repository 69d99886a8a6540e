"""Poll live feeds: what to request next, given the last answer, one module per provider.

``ap``, ``clarity`` and ``nist`` each offer plain functions of an answer (the
next URL, whether a version moved, which counties to fetch) and one
``poll(fetcher, spec, state, keep)`` that runs a cycle with them. The HTTP
itself is ``http.Fetcher`` (httpx, timeouts, a deadline, the per-source
limiter); what a body becomes once fetched is the caller's ``keep`` (the
archive, rome/store/archive.py). Nothing here touches the database or the
broker: a cycle takes a ``PollState`` and leaves the next one in it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class PollState:
    """What a source's next poll needs from its last one; persisted in poll_state."""

    next_url: str | None = None  # AP: the last answer's nextrequest, verbatim
    version: str | None = None  # Clarity: the last current_ver.txt fully taken
    county_versions: dict[str, str] = field(default_factory=dict)  # Clarity state: per county
    pending: dict[str, list[str]] = field(default_factory=dict)  # county -> [id, version] to retry
    county_errors: dict[str, str] = field(default_factory=dict)  # county -> why it failed
    etag: str | None = None  # NIST
    last_modified: str | None = None  # NIST
    recent: list[float] = field(default_factory=list)  # request times within the last 60 s


@dataclass(frozen=True)
class Item:
    """A fetched body to send downstream: an archive reference (claim check), not the body."""

    archive_id: int
    format: str
    version: int | None = None
    scope: str | None = None  # Clarity: the county whose file it is


@dataclass
class Outcome:
    """What one cycle did."""

    items: list[Item] = field(default_factory=list)
    status: int | None = None  # the last HTTP status seen
    error: str | None = None  # why the cycle stopped short, if it did
    requests: int = 0
    changed: bool = False  # anything new was fetched
    limited: bool = False  # stopped by the source's requests_per_minute, not by an error


# keep(answer, kind=..., version=..., scope=...) -> archive id
Keep = Callable[..., int]


def protocol(format_name: str):
    """The poll function of a format's provider."""
    from rome.feeds.poll import ap, clarity, nist

    return {"ap": ap.poll, "clarity": clarity.poll, "nist": nist.poll}[format_name]
