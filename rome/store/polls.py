"""Each live source's poll state in the database, and the lease that keeps polls from piling up.

A poll first takes its source's lease (one UPDATE that succeeds only if no
unexpired lease is held); a poll that finds it held is skipped, not queued,
so a stalled endpoint holds one poll at a time, never a growing line of them.
A lease expires by itself (a worker killed mid-poll frees its source once
its lease is past).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from rome.feeds.poll import Outcome, PollState
from rome.feeds.poll.http import LIMITER_WINDOW, WINDOW
from rome.store.models import PollStateRow


def _insert(session: Session):
    return (postgresql.insert if session.get_bind().dialect.name == "postgresql"
            else sqlite.insert)


def _aware(moment: datetime | None) -> datetime | None:
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


def ensure_row(session: Session, source: str) -> None:
    stmt = _insert(session)(PollStateRow).values(source_id=source)
    session.execute(stmt.on_conflict_do_nothing(index_elements=["source_id"]))


def take_lease(session: Session, source: str, owner: str, now: datetime,
               seconds: float) -> bool:
    """Hold source's lease until now + seconds, unless an unexpired one is held: True if taken."""
    ensure_row(session, source)
    result = session.execute(
        update(PollStateRow)
        .where(PollStateRow.source_id == source,
               (PollStateRow.lease_until.is_(None)) | (PollStateRow.lease_until < now))
        .values(lease_until=now + timedelta(seconds=seconds), lease_owner=owner)
        .execution_options(synchronize_session=False))
    return result.rowcount == 1


def release_lease(session: Session, source: str, owner: str) -> None:
    session.execute(update(PollStateRow)
                    .where(PollStateRow.source_id == source, PollStateRow.lease_owner == owner)
                    .values(lease_until=None, lease_owner=None)
                    .execution_options(synchronize_session=False))


def load_state(session: Session, source: str) -> PollState:
    row = session.get(PollStateRow, source)
    if row is None:
        return PollState()
    return PollState(next_url=row.next_url, version=row.version,
                     county_versions=json.loads(row.county_versions or "{}"),
                     pending=json.loads(row.pending or "{}"),
                     county_errors=json.loads(row.county_errors or "{}"),
                     etag=row.etag, last_modified=row.last_modified,
                     recent=json.loads(row.recent or "[]"))


def save_state(session: Session, source: str, state: PollState, outcome: Outcome, *,
               polled_at: datetime, next_poll_at: datetime) -> None:
    """Store what the poll leaves for the next one, and what it did, for all to see."""
    ensure_row(session, source)
    # Locked: a skipped poll counts itself in the same row meanwhile (count_skip).
    row = session.get(PollStateRow, source, populate_existing=True, with_for_update=True)
    cutoff = polled_at.timestamp() - LIMITER_WINDOW  # what the next poll's limiter needs
    polls = json.loads(row.polls or "{}")
    label = outcome_label(outcome)
    polls[label] = polls.get(label, 0) + 1
    row.next_url, row.version = state.next_url, state.version
    row.county_versions = json.dumps(state.county_versions, sort_keys=True)
    row.pending = json.dumps(state.pending, sort_keys=True)
    row.county_errors = json.dumps(state.county_errors, sort_keys=True)
    row.etag, row.last_modified = state.etag, state.last_modified
    row.recent = json.dumps([t for t in state.recent if t > cutoff])
    row.polls = json.dumps(polls, sort_keys=True)
    row.last_poll_at, row.next_poll_at = polled_at, next_poll_at
    row.last_status = outcome.status
    row.last_error = outcome.error[:2000] if outcome.error else None


def outcome_label(outcome: Outcome) -> str:
    """A poll's outcome as /metrics counts it: the last HTTP status, "limited" (the
    source's requests_per_minute held every request back) or "error" (no answer)."""
    if outcome.status is None:
        return "limited" if outcome.limited else "error"
    return str(outcome.status)


def count_skip(session: Session, source: str) -> None:
    """Count a poll skipped because the last one still held the lease."""
    ensure_row(session, source)
    row = session.get(PollStateRow, source, populate_existing=True, with_for_update=True)
    polls = json.loads(row.polls or "{}")
    polls["skipped"] = polls.get("skipped", 0) + 1
    row.polls = json.dumps(polls, sort_keys=True)


def states(session: Session) -> dict[str, PollStateRow]:
    return {row.source_id: row for row in session.scalars(select(PollStateRow))}


def public_state(row: PollStateRow | None, now: datetime) -> dict:
    """A source's poll state as /api/sources, /metrics and `rome sources` show it."""
    if row is None:
        return {"last_poll_at": None, "last_poll_age": None, "status": None,
                "next_poll_at": None, "requests_last_minute": 0, "last_error": None,
                "polls": {}, "county_errors": {}, "polling": False}
    last = _aware(row.last_poll_at)
    recent = [t for t in json.loads(row.recent or "[]") if t > now.timestamp() - WINDOW]
    lease = _aware(row.lease_until)
    return {
        "last_poll_at": last.isoformat() if last else None,
        "last_poll_age": round((now - last).total_seconds(), 3) if last else None,
        "status": row.last_status,
        "next_poll_at": _aware(row.next_poll_at).isoformat() if row.next_poll_at else None,
        "requests_last_minute": len(recent),
        "last_error": row.last_error,
        "polls": json.loads(row.polls or "{}"),
        "county_errors": json.loads(row.county_errors or "{}"),
        "polling": bool(lease and lease > now),
    }
