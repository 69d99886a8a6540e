"""The pipeline's tasks: sources emit feeds, notekeeper normalizes, caesar records.

Tasks are thin: decode, call rome, publish the next step, return.
"""

from __future__ import annotations

import logging
from functools import cache

from sqlalchemy.exc import OperationalError

from rome import db
from rome.logs import log
from rome.normalize import normalize
from rome.sources import emit_tick
from rome.tally import record_updates, reject_payload
from rome.updates import InvalidPayload, Update
from workers import app, settings

logger = logging.getLogger("rome.pipeline")

# Connection-level database failures are worth waiting out: retry with
# exponential backoff and jitter, forever, rather than drop an update.
DATABASE_DOWN = (OperationalError,)
RETRY = {
    "autoretry_for": DATABASE_DOWN,
    "retry_backoff": 0.5,
    "retry_backoff_max": 30,
    "retry_jitter": True,
    "max_retries": None,
}


@cache
def database() -> db.Database:
    return db.connect(settings.database_url)


@app.task(name="rome.source.emit", bind=True)
def emit_source(self, source: str, tick: int) -> int:
    """Roll one tick of source's feed and hand any report to notekeeper."""
    body, rows = emit_tick(
        source,
        tick,
        seed=settings.seed,
        chance=settings.update_chance,
        units=settings.reporting_units,
    )
    if body is not None:
        # With confirms on, this returns only after the broker has the message.
        normalize_feed.apply_async((source, body))
        log(logger, "emitted", source=source, tick=tick, rows=rows, task_id=self.request.id)
    return rows


@app.task(name="rome.notekeeper.normalize", bind=True, **RETRY)
def normalize_feed(self, source: str, body: str) -> int:
    """Normalize one feed body and chain its updates into caesar, or reject it."""
    try:
        updates = normalize(source, body)
    except InvalidPayload as exc:
        with database().Session.begin() as session:
            row = reject_payload(session, source, body, str(exc))
        log(
            logger, "rejected", logging.WARNING,
            source=source, reason=str(exc), rejected_id=row.id, task_id=self.request.id,
        )
        return 0
    record.apply_async(([u.to_json() for u in updates],))
    log(
        logger, "normalized", source=source, updates=len(updates),
        first_update_id=updates[0].id, task_id=self.request.id,
    )
    return len(updates)


@app.task(name="rome.caesar.record", bind=True, **RETRY)
def record(self, updates: list[dict]) -> int:
    """Apply a batch of canonical updates in one transaction."""
    parsed = []
    with database().Session.begin() as session:
        for data in updates:
            try:
                if not isinstance(data, dict):
                    raise InvalidPayload(f"update must be an object, got {type(data).__name__}")
                parsed.append(Update.from_json(data))
            except InvalidPayload as exc:
                source = data.get("source") if isinstance(data, dict) else None
                reject_payload(session, source, repr(data), str(exc))
        result = record_updates(session, parsed)
    log(
        logger, "recorded", applied=result.applied, duplicates=result.duplicates,
        update_ids=",".join(u.id for u in parsed[:5]), task_id=self.request.id,
    )
    return result.applied

