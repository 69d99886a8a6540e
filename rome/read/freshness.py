"""Tell how old a source's newest report is, and when that makes it stale."""

from __future__ import annotations

import math
from datetime import UTC, datetime

# A source that has been silent this many of its intervals is marked stale...
STALE_INTERVALS = 5
# ...or more, when it rolls to report: a healthy source that reports on a
# fraction of its ticks stays silent this long only once in a thousand times.
FALSE_ALARM = 0.001


def stale_intervals(chance: float = 1.0) -> int:
    """Return how many silent intervals make a source stale, given its chance to report."""
    if chance >= 1.0:
        return STALE_INTERVALS
    if chance <= 0.0:
        return 10**6  # it never reports: silence is not news
    return max(STALE_INTERVALS, math.ceil(math.log(FALSE_ALARM) / math.log(1.0 - chance)))


def stale_after(interval: float, chance: float = 1.0) -> float:
    """Return the seconds of silence after which a source is stale."""
    return stale_intervals(chance) * interval


def as_utc(moment: datetime) -> datetime:
    """Return moment as an aware UTC datetime (SQLite hands back naive ones; Rome stores UTC)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def age_seconds(last_update_at: datetime | None, now: datetime) -> float | None:
    """Return how many seconds before now the last update was applied, or None if never."""
    if last_update_at is None:
        return None
    # Clocks of different hosts may disagree a little: an age is never negative.
    return max(0.0, (as_utc(now) - as_utc(last_update_at)).total_seconds())


def is_stale(last_update_at: datetime | None, now: datetime, after: float | None) -> bool:
    """Tell whether a source that reported at last_update_at has been silent too long."""
    # A source that never reported is waiting, not stale: after a wipeout or
    # before its first report there is nothing old to warn about.
    age = age_seconds(last_update_at, now)
    return after is not None and age is not None and age > after


def stale_reason(last_update_at: datetime | None, after: float | None) -> str:
    """Say why a source that reported at last_update_at is stale, the same at any moment."""
    # No age in it: the words stay put while the silence lasts, so a cached page
    # or an ETag need not change every second to stay true.
    since = f"since {as_utc(last_update_at):%H:%M:%S} UTC" if last_update_at else "yet"
    limit = f"; a source is stale after {after:g} s without one" if after is not None else ""
    return f"No report {since}{limit}."
