"""Apply canonical updates to the ledger and tallies so each update counts once.

Every function takes a session and never commits: the caller owns the
transaction, so the ledger insert and the tally change commit together.
"""

from __future__ import annotations

import io
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, func, select, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from rome.models import LedgerRow, RejectedRow, TallyRow
from rome.updates import Update


@dataclass(frozen=True)
class RecordResult:
    applied: int
    duplicates: int


@dataclass(frozen=True)
class Difference:
    """A tally that disagrees with its reference, as (votes, updates) pairs."""

    candidate_id: int
    source_id: str
    tally: tuple[int, int] | None
    reference: tuple[int, int] | None
    against: str = "ledger"

    def __str__(self) -> str:
        return (
            f"candidate={self.candidate_id} source={self.source_id} "
            f"tally={_pair(self.tally)} {self.against}={_pair(self.reference)}"
        )


def _pair(pair: tuple[int, int] | None) -> str:
    return "missing" if pair is None else f"{pair[0]}votes/{pair[1]}updates"


def _utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


def record_updates(session: Session, updates: list[Update]) -> RecordResult:
    """Add each update not yet in the ledger to its tally; ignore the rest."""
    unique = {u.id: u for u in reversed(updates)}  # the first copy of an id wins
    if not unique:
        return RecordResult(0, len(updates))
    # A fixed key order means two batches touching the same rows lock them in
    # the same order and cannot deadlock each other.
    ordered = [unique[key] for key in sorted(unique)]
    if session.get_bind().dialect.name == "postgresql":
        applied = _apply_copy(session, ordered)
    else:
        applied = _apply_portable(session, ordered)
    return RecordResult(applied, len(updates) - applied)


STAGE_TEMPLATE = """
CREATE TEMP TABLE IF NOT EXISTS {stage} (
    update_id text, source_id text, candidate_id integer, tick bigint, unit integer,
    votes bigint, emitted double precision
) ON COMMIT DELETE ROWS
"""

# One statement: the ledger insert skips ids already there and hands the rows
# it did insert to the tally upsert, so only new updates are added.
APPLY_TEMPLATE = """
WITH inserted AS (
    INSERT INTO {ledger} (update_id, source_id, candidate_id, tick, unit, votes, emitted_at)
    SELECT update_id, source_id, candidate_id, tick, unit, votes, to_timestamp(emitted)
    FROM {stage} ORDER BY update_id
    ON CONFLICT (update_id) DO NOTHING
    RETURNING candidate_id, source_id, votes
), sums AS (
    SELECT candidate_id, source_id, sum(votes) AS votes, count(*) AS n
    FROM inserted GROUP BY candidate_id, source_id
), upserted AS (
    INSERT INTO {tallies} (candidate_id, source_id, votes, updates, last_update_at)
    SELECT candidate_id, source_id, votes, n, now() FROM sums
    ORDER BY candidate_id, source_id
    ON CONFLICT (candidate_id, source_id) DO UPDATE
    SET votes = {tallies}.votes + excluded.votes,
        updates = {tallies}.updates + excluded.updates,
        last_update_at = excluded.last_update_at
    RETURNING 1
)
SELECT coalesce(sum(n), 0) FROM sums
"""

TABLES = {"ledger": "ledger", "tallies": "tallies", "stage": "ledger_stage"}
STAGE = STAGE_TEMPLATE.format(**TABLES)
APPLY_STAGE = APPLY_TEMPLATE.format(**TABLES)


def copy_text(ordered: list[Update]) -> str:
    """Render updates as the staging table's COPY text."""
    return "".join(
        f"{u.id}\t{u.source}\t{u.candidate_id}\t{u.tick}\t{u.unit}\t{u.votes}\t"
        f"{u.emitted_at!r}\n"
        for u in ordered
    )


def _apply_copy(session: Session, ordered: list[Update]) -> int:
    """PostgreSQL: COPY the batch into a staging table, then one insert-select."""
    connection = session.connection()
    dbapi = connection.connection.dbapi_connection
    buffer = io.StringIO(copy_text(ordered))
    cursor = None
    try:
        cursor = dbapi.cursor()
        # Every time, not once per connection: a rolled-back transaction takes
        # the table it created with it.
        cursor.execute(STAGE)
        cursor.copy_expert("COPY ledger_stage FROM STDIN", buffer)
        cursor.execute(APPLY_STAGE)
        applied = int(cursor.fetchone()[0])
        cursor.execute("DELETE FROM ledger_stage")  # another batch may follow in this transaction
    except connection.dialect.loaded_dbapi.Error as exc:
        # Raw cursor errors arrive unwrapped: wrap them as SQLAlchemy does, and
        # drop a dead connection from the pool, so callers see the same errors
        # (and the same recovery) as on any other statement.
        lost = connection.dialect.is_disconnect(exc, dbapi, cursor)
        if lost:
            connection.invalidate(exc)
        raise DBAPIError.instance(
            "COPY ledger_stage / apply", None, exc, connection.dialect.loaded_dbapi.Error,
            connection_invalidated=lost,
        ) from exc
    finally:
        if cursor is not None and not cursor.closed:
            cursor.close()
    return applied


def _apply_portable(session: Session, ordered: list[Update]) -> int:
    """Any other database (SQLite): multi-row insert ON CONFLICT DO NOTHING RETURNING."""
    insert = sqlite.insert
    rows = [
        {
            "update_id": u.id,
            "source_id": u.source,
            "candidate_id": u.candidate_id,
            "tick": u.tick,
            "unit": u.unit,
            "votes": u.votes,
            "emitted_at": _utc(u.emitted_at),
        }
        for u in ordered
    ]
    inserted = set(
        session.scalars(
            insert(LedgerRow).on_conflict_do_nothing(index_elements=["update_id"])
            .returning(LedgerRow.update_id),
            rows,
        )
    )
    sums: dict[tuple[int, str], list[int]] = defaultdict(lambda: [0, 0])
    for u in ordered:
        if u.id in inserted:
            total = sums[(u.candidate_id, u.source)]
            total[0] += u.votes
            total[1] += 1
    if sums:
        now = datetime.now(UTC)
        stmt = insert(TallyRow)
        stmt = stmt.on_conflict_do_update(
            index_elements=["candidate_id", "source_id"],
            set_={
                "votes": TallyRow.votes + stmt.excluded.votes,
                "updates": TallyRow.updates + stmt.excluded.updates,
                "last_update_at": stmt.excluded.last_update_at,
            },
        )
        session.execute(
            stmt,
            [
                {
                    "candidate_id": candidate_id,
                    "source_id": source_id,
                    "votes": votes,
                    "updates": count,
                    "last_update_at": now,
                }
                for (candidate_id, source_id), (votes, count) in sorted(sums.items())
            ],
        )
    return len(inserted)


def reject_payload(session: Session, source: object, body: object, reason: str) -> RejectedRow:
    """Store a payload that could not be used, with the reason, for people to inspect."""
    if isinstance(body, bytes):
        text = body.decode("utf-8", errors="backslashreplace")
    elif isinstance(body, str):
        text = body
    else:
        text = repr(body)
    # PostgreSQL text cannot hold NUL; keep it visible instead.
    text = text.replace("\x00", "\\x00")
    row = RejectedRow(
        source_id=str(source)[:64].replace("\x00", "") if source is not None else None,
        reason=reason[:2000].replace("\x00", "\\x00"),
        payload=text[:1_100_000],
        received_at=datetime.now(UTC),
    )
    session.add(row)
    session.flush()
    return row


def wipeout(session: Session) -> dict[str, int]:
    """Delete every tally and ledger row: the only way totals may go down."""
    if session.get_bind().dialect.name == "postgresql":
        # Wait for batches in flight and keep new ones out until the wipe commits;
        # otherwise a batch's new tally rows could escape the DELETE and
        # survive their ledger rows.
        session.execute(text("LOCK TABLE ledger, tallies IN ACCESS EXCLUSIVE MODE"))
    tallies = session.execute(delete(TallyRow)).rowcount
    ledger = session.execute(delete(LedgerRow)).rowcount
    return {"tallies": tallies, "ledger": ledger}


def tallies(session: Session) -> dict[tuple[int, str], tuple[int, int]]:
    """Return {(candidate_id, source_id): (votes, updates)} as the tallies hold them."""
    return {
        (t.candidate_id, t.source_id): (t.votes, t.updates)
        for t in session.scalars(select(TallyRow))
    }


def compare(
    found: dict[tuple[int, str], tuple[int, int]],
    reference: dict[tuple[int, str], tuple[int, int]],
    against: str,
) -> list[Difference]:
    """List every key where found and reference differ, in key order."""
    return [
        Difference(key[0], key[1], found.get(key), reference.get(key), against)
        for key in sorted(found.keys() | reference.keys())
        if found.get(key) != reference.get(key)
    ]


def audit(session: Session) -> list[Difference]:
    """Recompute every tally from the ledger and list where the two disagree.

    Call it first in a transaction: on PostgreSQL it reads both tables from
    one snapshot, so batches committing meanwhile cannot look like differences.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
    from_ledger = {
        (c, s): (int(v), int(n))
        for c, s, v, n in session.execute(
            select(
                LedgerRow.candidate_id,
                LedgerRow.source_id,
                func.sum(LedgerRow.votes),
                func.count(),
            ).group_by(LedgerRow.candidate_id, LedgerRow.source_id)
        )
    }
    return compare(tallies(session), from_ledger, "ledger")
