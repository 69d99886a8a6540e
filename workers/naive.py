"""The baseline `rome bench` holds Rome against: one task per count, as a Celery user writes first.

Not part of Rome's pipeline (workers/factory.py does not include it): the
bench's worker loads it with `celery -A workers worker -I workers.naive`.
Each message carries one count with its ids already resolved; the task
upserts it into current_counts where its version is newer and, if it moved,
adds the difference to its tally, in a transaction of its own. It keeps no
history and no series, so it does less than Rome per count.
"""

from __future__ import annotations

from sqlalchemy import text

from workers import app
from workers.tasks import database

UPSERT = text("""
INSERT INTO current_counts AS c (race_id, source_id, unit_id, candidate_id, vote_type, rank,
                                 votes, version, feed_at, applied_at)
VALUES (:race_id, :source_id, :unit_id, :candidate_id, :vote_type, :rank, :votes, :version,
        to_timestamp(:feed_at), now())
ON CONFLICT (race_id, source_id, unit_id, candidate_id, vote_type) DO UPDATE
SET prev_votes = c.votes, votes = excluded.votes, version = excluded.version,
    feed_at = excluded.feed_at, applied_at = excluded.applied_at
WHERE c.version < excluded.version
RETURNING votes - coalesce(prev_votes, 0)
""")

TALLY = text("""
INSERT INTO tallies AS t (race_id, source_id, candidate_id, vote_type, rank, votes, units,
                          changes, corrections, last_update_at)
VALUES (:race_id, :source_id, :candidate_id, :vote_type, :rank, :delta, 1, 1, 0, now())
ON CONFLICT (race_id, source_id, candidate_id, vote_type, rank) DO UPDATE
SET votes = t.votes + excluded.votes, last_update_at = excluded.last_update_at
""")

FIELDS = ("race_id", "source_id", "unit_id", "candidate_id", "vote_type", "rank", "votes",
          "version", "feed_at")


@app.task(name="rome.bench.plain_count", ignore_result=True)
def plain_count(*row) -> None:
    """Store one count if its version is newer, and add what it changed to its tally."""
    count = dict(zip(FIELDS, row, strict=True))
    with database().Session.begin() as session:
        delta = session.execute(UPSERT, count).scalar()
        if delta is not None:
            session.execute(TALLY, {**count, "delta": delta})
