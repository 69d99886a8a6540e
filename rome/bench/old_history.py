"""race_history as it was before the series: every request summed the history.

Kept as the reference `rome bench probe history` times against today's
rome.read.history.race_history, and tests/unit/store/test_series.py checks the
two give the same answers.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Float, Integer, and_, cast, extract, func, select

from rome.feeds.snapshot import TOTAL
from rome.read.history import MAX_POINTS, RaceHistory, bucket_width, primary_series
from rome.store.models import HistoryRow


def _old_epoch(session, column):
    if session.get_bind().dialect.name == "sqlite":
        return func.round((func.julianday(column) - 2440587.5) * 86400.0, 3)
    return cast(extract("epoch", column), Float)


def _old_floor(session, value):
    if session.get_bind().dialect.name == "sqlite":
        return cast(value, Integer)
    return cast(func.floor(value), Integer)


def _old_moment(epoch: float) -> datetime:
    return datetime.fromtimestamp(round(epoch, 3), UTC)


def old_race_history(session, race_id, since=None, max_points=MAX_POINTS) -> RaceHistory:
    """Return race_id's history as rome.read.history.race_history did before the series."""
    since = since.astimezone(UTC) if since is not None else None
    candidate_ids, source, rank = primary_series(session, race_id)  # unchanged, moved
    column = {cid: i for i, cid in enumerate(candidate_ids)}
    if source is None:
        return RaceHistory(race_id, candidate_ids, None, None, since, 1,
                           [0] * len(candidate_ids))
    in_race = and_(HistoryRow.race_id == race_id, HistoryRow.source_id == source,
                   HistoryRow.rank == rank, HistoryRow.vote_type == TOTAL)
    epoch = _old_epoch(session, HistoryRow.applied_at)

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

    bucket = _old_floor(session, epoch / width)
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
            history.points.append((_old_moment(at), list(running)))
            at = 0.0
        current = number
        running[column[candidate_id]] += int(votes)
        at = max(at, float(newest))
    history.points.append((_old_moment(at), list(running)))
    return history
