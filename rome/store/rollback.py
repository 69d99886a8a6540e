"""Undo one source's versions above a given one, without wiping the other sources.

Newest wins per count, so a bad version (a file dated 2999, a version number
that jumped) outranks every real update after it. Rolling the source back
above version V:

- deletes its history rows above V;
- sets each of its counts above V back to the newest history row left for it
  (that row's figure, version and times), or deletes the count if none is left;
- recomputes its tallies from the counts and history that remain; a tally
  that changed gets a point in its series at the rollback's time, after
  dropping the points charted since the first removed change (they showed the
  bad figures); a tally with nothing left goes with its series;
- deletes its race statuses above V (the next good snapshot writes them again).

The next real update then applies as usual, and `rome audit` holds throughout.
It reads the source's history rows in full (the history has no index but its
key): seconds per million rows, for an operator's command.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Double, and_, cast, delete, extract, func, insert, select, text, update
from sqlalchemy.orm import Session

from rome.feeds.snapshot import TOTAL
from rome.store.audit import HISTORY_KEY, tallies_from_current
from rome.store.models import (
    RESULT_TABLES,
    CountScopeRow,
    CurrentRow,
    HistoryRow,
    RaceStatusRow,
    SeriesRow,
    TallyRow,
)
from rome.store.tally import sqlite_epoch


@dataclass(frozen=True)
class RollbackResult:
    history: int  # history rows deleted
    counts_reset: int  # counts set back to an older version
    counts_deleted: int  # counts with no version at or below the limit
    tallies: int  # tallies recomputed (changed or deleted)
    statuses: int  # race statuses deleted


def rollback_source(session: Session, source: str, above: int,
                    now: datetime | None = None) -> RollbackResult:
    """Remove source's versions newer than `above` and recompute what depended on them."""
    dialect = session.get_bind().dialect.name
    now = now or datetime.now(UTC)
    if dialect == "postgresql":
        # As wipeout: batches in flight finish first, new ones wait for the commit.
        names = ", ".join(model.__tablename__ for model in RESULT_TABLES)
        session.execute(text(f"LOCK TABLE {names} IN ACCESS EXCLUSIVE MODE"))
    else:
        now = now.replace(microsecond=now.microsecond // 1000 * 1000)  # as tally does
    mine = HistoryRow.source_id == source
    # Series points from the first removed change on showed the bad figures.
    first_bad = session.scalar(select(_epoch(func.min(HistoryRow.applied_at), dialect))
                               .where(mine, HistoryRow.version > above))
    removed = session.execute(
        delete(HistoryRow).where(mine, HistoryRow.version > above)).rowcount
    counts_reset, counts_deleted = _reset_counts(session, source, above)
    tallies = _recompute_tallies(session, source, now, first_bad, dialect)
    statuses = session.execute(delete(RaceStatusRow).where(
        RaceStatusRow.source_id == source, RaceStatusRow.version > above)).rowcount
    # A scope above the limit vouched for versions now undone: each count's own
    # version (its newest change at most the limit) stands again.
    session.execute(update(CountScopeRow).where(
        CountScopeRow.source_id == source, CountScopeRow.version > above).values(version=0))
    # Counts were reset: no scope of the source is a whole snapshot's figures any more;
    # and some deleted: each scope holds the counts left.
    left = (select(func.count()).where(CurrentRow.race_id == CountScopeRow.race_id,
                                       CurrentRow.source_id == CountScopeRow.source_id)
            .scalar_subquery())
    session.execute(update(CountScopeRow).where(CountScopeRow.source_id == source)
                    .values(digest=None, unit_digests=None, counts=left))
    return RollbackResult(removed, counts_reset, counts_deleted, tallies, statuses)


def _reset_counts(session: Session, source: str, above: int) -> tuple[int, int]:
    """Set every count of source above the limit back to its newest history row left."""
    key = (CurrentRow.race_id, CurrentRow.source_id, CurrentRow.unit_id,
           CurrentRow.candidate_id, CurrentRow.vote_type)
    stale = session.execute(select(*key).where(
        CurrentRow.source_id == source, CurrentRow.version > above)).all()
    reset = 0
    for row in stale:
        newest = session.execute(
            select(HistoryRow).where(*(column == value for column, value in
                                       zip(HISTORY_KEY, row, strict=True)))
            .order_by(HistoryRow.id.desc()).limit(1)
        ).scalar_one_or_none()
        match = and_(*(column == value for column, value in zip(key, row, strict=True)))
        if newest is None:
            session.execute(delete(CurrentRow).where(match))
            continue
        session.execute(update(CurrentRow).where(match).values(
            votes=newest.votes, prev_votes=newest.votes - newest.delta, version=newest.version,
            feed_at=newest.feed_at, applied_at=newest.applied_at))
        reset += 1
    return reset, len(stale) - reset


def _recompute_tallies(session: Session, source: str, now: datetime,
                       first_bad: float | None, dialect: str) -> int:
    """Make source's tallies the sums of its counts again; chart the total-vote ones."""
    recomputed = {k: v for k, v in tallies_from_current(session).items() if k[1] == source}
    stored = {
        tuple(row[:5]): tuple(int(v) for v in row[5:])
        for row in session.execute(
            select(TallyRow.race_id, TallyRow.source_id, TallyRow.candidate_id,
                   TallyRow.vote_type, TallyRow.rank, TallyRow.votes, TallyRow.units,
                   TallyRow.changes, TallyRow.corrections)
            .where(TallyRow.source_id == source))
    }
    changed = [k for k in stored if recomputed.get(k) != stored[k]]
    for race, src, candidate, vote_type, rank in changed:
        tally = and_(TallyRow.race_id == race, TallyRow.source_id == src,
                     TallyRow.candidate_id == candidate, TallyRow.vote_type == vote_type,
                     TallyRow.rank == rank)
        series = and_(SeriesRow.race_id == race, SeriesRow.source_id == src,
                      SeriesRow.candidate_id == candidate, SeriesRow.rank == rank)
        figures = recomputed.get((race, src, candidate, vote_type, rank))
        if figures is None:
            session.execute(delete(TallyRow).where(tally))
            if vote_type == TOTAL:
                session.execute(delete(SeriesRow).where(series))
            continue
        votes, units, changes, corrections = figures
        session.execute(update(TallyRow).where(tally).values(
            votes=votes, units=units, changes=changes, corrections=corrections,
            # A tally's time never goes back (see tally.APPLY_TEMPLATE).
            last_update_at=func.greatest(TallyRow.last_update_at, now)
            if dialect == "postgresql" else func.max(TallyRow.last_update_at, now)))
        if vote_type != TOTAL:
            continue
        at = select(_epoch(TallyRow.last_update_at, dialect)).where(tally).scalar_subquery()
        session.execute(delete(SeriesRow).where(
            series, SeriesRow.at >= (at if first_bad is None else func.min(first_bad, at)
                                     if dialect != "postgresql" else func.least(first_bad, at))))
        point = select(TallyRow.race_id, TallyRow.source_id, TallyRow.rank,
                       TallyRow.candidate_id, at, TallyRow.votes).where(tally)
        session.execute(insert(SeriesRow).from_select(
            ["race_id", "source_id", "rank", "candidate_id", "at", "votes"], point))
    return len(changed)


def _epoch(column, dialect: str):
    """Seconds since 1970 of a stored time, computed as caesar computes a series' `at`."""
    if dialect == "postgresql":
        return cast(extract("epoch", column), Double)
    return sqlite_epoch(column)
