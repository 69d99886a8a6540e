"""Publish planned feed messages into notekeeper's queue, confirmed one by one."""

from __future__ import annotations

import logging
import sys
import time

from kombu.exceptions import OperationalError as BrokerError

from rome.feeds.inject import Message
from rome.logs import log
from workers.tasks import backoff, normalize_feed

logger = logging.getLogger("rome.feeds.inject")
GIVE_UP_AFTER = 600.0  # seconds one message may keep failing before we stop


def publish_confirmed(message: Message) -> bool:
    """Publish one message; True only once the broker has confirmed it."""
    started, attempt = time.monotonic(), 0
    while True:
        try:
            # Celery retries briefly itself (task_publish_retry_policy); with
            # confirm_publish this returns only after RabbitMQ acked it.
            normalize_feed.apply_async(
                (message.source, message.body, message.encoding, message.version,
                 message.format))
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


class Progress:
    """A one-line progress bar on a terminal; silent otherwise."""

    def __init__(self, total: int, stream=sys.stderr):
        self.total, self.stream = max(total, 1), stream
        self.enabled = stream.isatty()
        self.started = time.monotonic()
        self.shown = 0.0

    def update(self, done: int, final: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not final and now - self.shown < 0.1):
            return
        self.shown = now
        width = 30
        filled = int(width * done / self.total)
        rate = done / max(now - self.started, 1e-9)
        self.stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] "
                          f"{done}/{self.total} counts {rate:,.0f}/s")
        if final:
            self.stream.write("\n")
        self.stream.flush()


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
