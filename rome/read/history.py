"""Read a race's running totals over time from the series, in a bounded number of points.

The totals are the race's primary source at its top level, in total votes:
exactly the changes that made the headline figure, corrections included.
caesar keeps each such tally's figure after every transaction that changed
it (``series``, rome/store/tally.py), so a chart costs an index probe per point and
candidate, not a pass over the history.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import BigInteger, DateTime, Double, cast, extract, literal, select
from sqlalchemy.orm import Session

from rome.feeds.snapshot import LEVELS, TOTAL
from rome.read.freshness import as_utc
from rome.read.results import source_order
from rome.read.shapes import MAX_POINTS, HistoryPointJson, RaceHistoryJson
from rome.store.models import CandidateRow, SeriesRow, TallyRow
from rome.store.tally import sqlite_epoch

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

    def to_json(self) -> RaceHistoryJson:
        """Name everything: votes are keyed by candidate id, never given by position."""

        def by_candidate(votes: list[int]) -> dict[str, int]:
            return {str(cid): v for cid, v in zip(self.candidate_ids, votes, strict=True)}

        return RaceHistoryJson(
            race_id=self.race_id,
            candidate_ids=self.candidate_ids,
            source=self.source,
            level=LEVELS[self.level_rank] if self.level_rank is not None else None,
            since=self.since.isoformat() if self.since else None,
            bucket_seconds=self.bucket_seconds,
            votes_at_since=by_candidate(self.baseline),
            points=[HistoryPointJson(at=at.isoformat(), votes=by_candidate(votes))
                    for at, votes in self.points],
        )


def epoch_of(session: Session, moment: datetime) -> float:
    """Return moment in seconds since 1970 as the database computes the series' times."""
    value = literal(moment, DateTime(timezone=True))
    if session.get_bind().dialect.name == "sqlite":
        # Apply times are kept to the millisecond there (rome.store.tally), so a
        # moment compares with them as its millisecond does.
        moment = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
        value = sqlite_epoch(literal(moment, DateTime(timezone=True)))
    else:
        value = cast(extract("epoch", value), Double)
    return float(session.scalar(select(value)))


def bucket_width(first: float, last: float, max_points: int = MAX_POINTS) -> int:
    """Pick the narrowest readable width that splits first..last into at most max_points."""
    needed = (last - first) / max(1, max_points - 1)
    for width in WIDTHS:
        if width >= needed:
            return width
    return math.ceil(needed / WIDTHS[-1]) * WIDTHS[-1]


def primary_series(session: Session, race_id: int) -> tuple[list[int], str | None, int | None]:
    """Return race_id's candidate ids, and the source and level its history follows (or None)."""
    candidate_ids = list(
        session.scalars(
            select(CandidateRow.id).where(CandidateRow.race_id == race_id).order_by(CandidateRow.id)
        )
    )
    levels: dict[str, set[int]] = {}
    for source_id, rank in session.execute(
        select(TallyRow.source_id, TallyRow.rank)
        .where(TallyRow.race_id == race_id, TallyRow.vote_type == TOTAL).distinct()
    ):
        levels.setdefault(source_id, set()).add(rank)
    if not levels:
        return candidate_ids, None, None
    source = source_order(set(levels))[0]
    return candidate_ids, source, min(levels[source])


def race_history(
    session: Session, race_id: int, since: datetime | None = None, max_points: int = MAX_POINTS
) -> RaceHistory:
    """Return race_id's cumulative totals after since, one point per bucket of applied changes."""
    since = as_utc(since) if since is not None else None
    candidate_ids, source, rank = primary_series(session, race_id)
    history = RaceHistory(race_id, candidate_ids, source, rank, since, 1,
                          [0] * len(candidate_ids))
    if source is None:
        return history
    key = (race_id, source, rank)
    since_at = epoch_of(session, since) if since is not None else None

    # What each candidate had as of since: its newest figure then (one probe each).
    if since is not None and candidate_ids:
        baseline = session.execute(select(*(
            _figure(key, candidate, since_at) for candidate in candidate_ids
        ))).one()
        history.baseline = [int(votes or 0) for votes in baseline]

    after = [SeriesRow.at > since_at] if since is not None else []
    first, last = session.execute(select(
        _times(key, *after).order_by(SeriesRow.at).scalar_subquery(),
        _times(key, *after).order_by(SeriesRow.at.desc()).scalar_subquery(),
    )).one()
    if first is None:
        return history
    history.bucket_seconds = width = bucket_width(first, last, max_points)

    # One probe per bucket of width seconds for its newest time, then one per
    # point and candidate for the figure then: never more than the points shown.
    lo, hi = math.floor(first / width), math.floor(last / width)
    buckets = select(cast(literal(lo), BigInteger).label("b")).cte("buckets", recursive=True)
    buckets = buckets.union_all(select(buckets.c.b + 1).where(buckets.c.b < hi))
    newest = _times(key, SeriesRow.at >= buckets.c.b * width,
                     SeriesRow.at < (buckets.c.b + 1) * width)
    points = (
        select(newest.order_by(SeriesRow.at.desc()).scalar_subquery().label("at"))
        .select_from(buckets).cte("points").prefix_with("MATERIALIZED")
    )
    rows = session.execute(
        select(points.c.at, CandidateRow.id, _figure(key, CandidateRow.id, points.c.at))
        .select_from(points.join(CandidateRow, CandidateRow.race_id == race_id))
        .where(points.c.at.is_not(None))
        .order_by(points.c.at, CandidateRow.id)
    )
    column = {cid: i for i, cid in enumerate(candidate_ids)}
    for at, candidate_id, votes in rows:
        if not history.points or history.points[-1][0] != at:
            history.points.append((at, [0] * len(candidate_ids)))
        history.points[-1][1][column[candidate_id]] = int(votes or 0)
    # A point stands at its newest change: its totals were true from then on.
    history.points = [(_moment(at), votes) for at, votes in history.points]
    return history


def _times(key: tuple[int, str, int], *where):
    """Select one time of the series of a race's source at a level (order it to choose)."""
    race_id, source, rank = key
    return select(SeriesRow.at).where(SeriesRow.race_id == race_id,
                                      SeriesRow.source_id == source, SeriesRow.rank == rank,
                                      *where).limit(1)


def _figure(key: tuple[int, str, int], candidate, upto):
    """Select a candidate's newest figure in the series at or before upto (None if none)."""
    return (
        _times(key, SeriesRow.candidate_id == candidate, SeriesRow.at <= upto)
        .with_only_columns(SeriesRow.votes).order_by(SeriesRow.at.desc()).scalar_subquery()
    )


def _moment(epoch: float) -> datetime:
    # Rounded to the millisecond: the float epoch carries a little noise.
    return datetime.fromtimestamp(round(epoch, 3), UTC)
