"""Rebuild a race's running totals over time from the history, in a bounded number of points.

The series is the race's primary source at its top level, in total votes:
exactly the changes that made the headline figure, corrections included.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Float, Integer, and_, cast, extract, func, select
from sqlalchemy.orm import Session

from rome.freshness import as_utc
from rome.models import CandidateRow, HistoryRow, TallyRow
from rome.results import source_order
from rome.snapshot import LEVELS, TOTAL

MAX_POINTS = 240
# Bucket widths people read easily on a time axis, in seconds.
WIDTHS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400)


@dataclass
class RaceHistory:
    """Cumulative votes per candidate, as of since (baseline) and then at each point."""

    race_id: int
    candidate_ids: list[int]
    source: str | None = None
    level_rank: int | None = None
    since: datetime | None = None
    bucket_seconds: int = 1
    baseline: list[int] = field(default_factory=list)
    points: list[tuple[datetime, list[int]]] = field(default_factory=list)

    def to_json(self) -> dict:
        """Name everything: votes are keyed by candidate id, never given by position."""

        def by_candidate(votes: list[int]) -> dict[str, int]:
            return {str(cid): v for cid, v in zip(self.candidate_ids, votes, strict=True)}

        return {
            "race_id": self.race_id,
            "candidate_ids": self.candidate_ids,
            "source": self.source,
            "level": LEVELS[self.level_rank] if self.level_rank is not None else None,
            "since": self.since.isoformat() if self.since else None,
            "bucket_seconds": self.bucket_seconds,
            "votes_at_since": by_candidate(self.baseline),
            "points": [{"at": at.isoformat(), "votes": by_candidate(votes)}
                       for at, votes in self.points],
        }


def _epoch(session: Session, column):
    # Seconds since 1970 as a float, in each dialect's own words.
    if session.get_bind().dialect.name == "sqlite":
        # julianday is a float of days: round off its noise, or 20:00:10 may
        # come back as 20:00:09.9999998 and fall into the bucket before.
        return func.round((func.julianday(column) - 2440587.5) * 86400.0, 3)
    return cast(extract("epoch", column), Float)


def _floor(session: Session, value):
    # PostgreSQL's cast rounds; SQLite's truncates, which is floor for positive epochs.
    if session.get_bind().dialect.name == "sqlite":
        return cast(value, Integer)
    return cast(func.floor(value), Integer)


def bucket_width(first: float, last: float, max_points: int = MAX_POINTS) -> int:
    """Pick the narrowest readable width that splits first..last into at most max_points."""
    needed = (last - first) / max(1, max_points - 1)
    for width in WIDTHS:
        if width >= needed:
            return width
    return math.ceil(needed / WIDTHS[-1]) * WIDTHS[-1]


def race_history(
    session: Session, race_id: int, since: datetime | None = None, max_points: int = MAX_POINTS
) -> RaceHistory:
    """Return race_id's cumulative totals after since, one point per bucket of applied updates."""
    since = as_utc(since) if since is not None else None
    candidate_ids = list(
        session.scalars(
            select(CandidateRow.id).where(CandidateRow.race_id == race_id).order_by(CandidateRow.id)
        )
    )
    column = {cid: i for i, cid in enumerate(candidate_ids)}
    levels: dict[str, set[int]] = {}
    for source_id, rank in session.execute(
        select(TallyRow.source_id, TallyRow.rank)
        .where(TallyRow.race_id == race_id, TallyRow.vote_type == TOTAL).distinct()
    ):
        levels.setdefault(source_id, set()).add(rank)
    if not levels:
        return RaceHistory(race_id, candidate_ids, None, None, since, 1,
                           [0] * len(candidate_ids))
    source = source_order(race_id, set(levels))[0]
    rank = min(levels[source])
    in_race = and_(HistoryRow.race_id == race_id, HistoryRow.source_id == source,
                   HistoryRow.rank == rank, HistoryRow.vote_type == TOTAL)
    epoch = _epoch(session, HistoryRow.applied_at)

    baseline = [0] * len(candidate_ids)
    if since is not None:
        before = (
            select(HistoryRow.candidate_id, func.sum(HistoryRow.delta))
            .where(in_race, HistoryRow.applied_at <= since)
            .group_by(HistoryRow.candidate_id)
        )
        for candidate_id, votes in session.execute(before):
            baseline[column[candidate_id]] = int(votes)

    after = [in_race] + ([HistoryRow.applied_at > since] if since is not None else [])
    first, last = session.execute(select(func.min(epoch), func.max(epoch)).where(*after)).one()
    history = RaceHistory(race_id, candidate_ids, source, rank, since, 1, baseline)
    if first is None:
        return history
    history.bucket_seconds = width = bucket_width(first, last, max_points)

    bucket = _floor(session, epoch / width)
    rows = session.execute(
        select(bucket, HistoryRow.candidate_id, func.sum(HistoryRow.delta), func.max(epoch))
        .where(*after)
        .group_by(bucket, HistoryRow.candidate_id)
        .order_by(bucket)
    )
    running = list(baseline)
    current, at = None, 0.0
    for number, candidate_id, votes, newest in rows:
        if current is not None and number != current:
            history.points.append((_moment(at), list(running)))
            at = 0.0
        current = number
        running[column[candidate_id]] += int(votes)
        # A point stands at its newest update: its totals were true from then on.
        at = max(at, float(newest))
    history.points.append((_moment(at), list(running)))
    return history


def _moment(epoch: float) -> datetime:
    # Rounded to the millisecond: the float epoch carries a little noise.
    return datetime.fromtimestamp(round(epoch, 3), UTC)
