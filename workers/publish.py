"""Publish planned feed messages into notekeeper's queue, confirmed one by one."""

from __future__ import annotations

import logging
import time

from kombu.exceptions import OperationalError as BrokerError

from rome.feeds.inject import Message
from rome.logs import log
from rome.ops.progress import Progress
from workers.tasks import backoff, normalize_feed

logger = logging.getLogger("rome.feeds.inject")
GIVE_UP_AFTER = 600.0  # seconds one message may keep failing before we stop


def publish_confirmed(message: Message, signed: bool = True) -> bool:
    """Publish one message; True only once the broker has confirmed it.

    signed=False sends plain JSON, which only a worker run with
    ROME_MESSAGE_SIGNING=off accepts: `rome bench ingest` measures what signing costs.
    """
    options = {} if signed else {"serializer": "json"}
    started, attempt = time.monotonic(), 0
    while True:
        try:
            # Celery retries briefly itself (task_publish_retry_policy); with
            # confirm_publish this returns only after RabbitMQ acked it.
            normalize_feed.apply_async(
                (message.source, message.body, message.encoding, message.version,
                 message.format), **options)
            return True
        except BrokerError as exc:
            if time.monotonic() - started > GIVE_UP_AFTER:
                log(logger, "publish_failed", logging.ERROR, error=str(exc))
                return False
            delay = backoff(attempt, base=0.5, cap=5.0)
            log(logger, "publish_retry", logging.WARNING, attempt=attempt,
                delay=round(delay, 2), error=str(exc))
            time.sleep(delay)
            attempt += 1


def publish_stream(messages: list[Message], rate: float = 0.0, delays: list[float] | None = None,
                   ) -> int:
    """Publish every message, pacing to rate counts per second; return how many were sent."""
    progress = Progress(sum(m.counts for m in messages))
    started = time.monotonic()
    sent = updates = 0
    for message in messages:
        if not publish_confirmed(message):
            break
        sent += 1
        updates += message.counts
        progress.update(updates)
        if delays:
            time.sleep(delays[sent - 1])
        elif rate > 0:
            ahead = updates / rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
    progress.update(updates, final=True)
    return sent
