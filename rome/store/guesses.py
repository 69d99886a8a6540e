"""Count wrong admin tokens per client in a sliding window, in the database all web processes share.

A client may have at most `limit` guesses in any `window` seconds. Each guess
takes its slot *before* its token is checked (`take_slot`), in one
transaction that first takes a lock on the client (PostgreSQL: an advisory
lock; SQLite: the single conditional INSERT holds the database's write lock),
so two gunicorn workers cannot both check a 21st token. A client granted
wipeout has its guesses forgotten. Rows older than the window are deleted as
new guesses come.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import delete, func, literal, select, text
from sqlalchemy.orm import Session

from rome.store.models import WipeoutGuessRow

Guess = WipeoutGuessRow


def _lock_key(client: str) -> int:
    """A signed 64-bit advisory lock key for client (PostgreSQL's bigint)."""
    digest = hashlib.blake2b(f"rome.wipeout:{client}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _in_window(client: str, now: float, window: float):
    return (Guess.client == client) & (Guess.at > now - window)


def wait_for(session: Session, client: str, now: float, limit: int, window: float) -> float | None:
    """Return the seconds client must wait before its next guess, or None if it may guess now."""
    times = session.scalars(select(Guess.at).where(_in_window(client, now, window))
                            .order_by(Guess.at)).all()
    if len(times) < limit:
        return None
    # The guess whose leaving the window brings the client below the limit.
    return max(1.0, times[len(times) - limit] + window - now)


def take_slot(session: Session, client: str, now: float, limit: int,
              window: float) -> tuple[float | None, int]:
    """Count one guess of client at now, if the window has room: return (wait, guesses).

    wait is None when the guess was counted (its token may be checked), else
    the seconds to wait; guesses is how many the window holds afterwards.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _lock_key(client)})
    session.execute(delete(Guess).where(Guess.at <= now - window))
    held = (select(func.count()).select_from(Guess).where(_in_window(client, now, window))
            .scalar_subquery())
    inserted = session.execute(
        Guess.__table__.insert().from_select(
            ["client", "at"], select(literal(client), literal(now)).where(held < limit)))
    guesses = session.scalar(select(func.count()).select_from(Guess)
                             .where(_in_window(client, now, window)))
    if inserted.rowcount == 1:
        return None, guesses
    return wait_for(session, client, now, limit, window), guesses


def forget(session: Session, client: str) -> None:
    """Forget client's guesses: it has just shown the token."""
    session.execute(delete(Guess).where(Guess.client == client))
