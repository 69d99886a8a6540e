"""Record each dead letter once in `rejected`, whoever sees it first: the worker or the recorder.

The worker records the messages it gives up on, with its own reason. A
message that kills the worker's main process on every delivery is
dead-lettered by RabbitMQ itself at the queue's delivery limit, and no worker
is left to say why: the dead-letter recorder (workers/dead_letters.py) reads
every dead letter and records those nobody has, with the reason RabbitMQ gives
in its x-death headers. Both key a row by the message (`dead_letter_key`); the
worker's reason wins over the recorder's, whichever commits first.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from rome.store.models import RejectedRow
from rome.store.tally import payload_text

KEY_LENGTH = 255


def dead_letter_key(task_id: object, body: bytes | str | None) -> str:
    """Name a message: its task id, or for one without, the SHA-256 of its body."""
    if isinstance(task_id, str) and task_id:
        return task_id[:KEY_LENGTH]
    raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else (body or b"")
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def death_reason(headers: Mapping[str, object] | None) -> str:
    """Say why RabbitMQ dead-lettered a message, from its x-death headers.

    x-first-death-reason is the first time it was dead-lettered (rejected,
    expired, delivery_limit, maxlen), x-first-death-queue where; x-death lists
    each queue and reason with a count.
    """
    headers = headers or {}
    reason = headers.get("x-first-death-reason")
    queue = headers.get("x-first-death-queue")
    deaths = headers.get("x-death") or []
    if reason is None and deaths and isinstance(deaths[0], Mapping):
        reason, queue = deaths[0].get("reason"), deaths[0].get("queue")
    return f"{reason or 'unknown'}" + (f" in {queue}" if queue else "")


def record_dead_letter(session: Session, key: str, source: object, body: object, reason: str,
                       *, overwrite: bool) -> None:
    """Store the dead letter named key in `rejected`, once.

    overwrite: the worker's reason replaces one the recorder stored first;
    otherwise a row already there is kept as it is. One statement, so two
    processes recording the same message at once leave one row.
    """
    values = {
        "task_id": key,
        "source_id": str(source)[:64].replace("\x00", "") if source is not None else None,
        "reason": reason[:2000].replace("\x00", "\\x00"),
        "payload": payload_text(body),
        "received_at": datetime.now(UTC),
    }
    dialect = session.get_bind().dialect.name
    insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(RejectedRow)
    statement = insert.values(**values)
    if overwrite:
        statement = statement.on_conflict_do_update(
            index_elements=[RejectedRow.task_id],
            set_={"reason": statement.excluded.reason, "source_id": statement.excluded.source_id})
    else:
        statement = statement.on_conflict_do_nothing(index_elements=[RejectedRow.task_id])
    session.execute(statement)


def recorded(session: Session, key: str) -> RejectedRow | None:
    """Return the row that records the dead letter named key, if any."""
    return session.scalar(select(RejectedRow).where(RejectedRow.task_id == key))
