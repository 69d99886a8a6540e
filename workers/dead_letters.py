"""Record in `rejected` every dead letter nobody recorded: the dead-letter recorder.

The worker records each message it gives up on (workers.tasks). One kind it
cannot: a message whose delivery kills the worker's main process (a crash in
Celery's consumer, the OOM killer choosing the parent, kill -9). It is
redelivered until the quorum queue's delivery limit, and RabbitMQ then
dead-letters it itself (x-first-death-reason: delivery_limit) with no worker
left to say so. The recorder reads every dead letter from its own queue
(rome.dead.record.quorum, bound to the dead-letter exchange next to
rome.dead.quorum, which keeps them all for operators) and stores those that
have no row yet, keyed by task id, with the reason from the x-death headers.
It acks a dead letter only once its row is committed; while the database is
down it holds it and tries again with backoff.

It runs as a thread of every worker's main process on RabbitMQ (a worker
bootstep, DeadLetterRecorderStep): a deployment that runs workers records
dead letters, with no process of its own to deploy, supervise or forget. It
never runs the dead letter's task, only reads its headers, so the message that
killed a worker cannot kill the recorder. Several workers share the queue;
the row's unique key makes each dead letter one row whoever records it.
"""

from __future__ import annotations

import logging
import threading
import time

from celery import bootsteps
from kombu import Connection, Message, Queue
from kombu.mixins import ConsumerMixin
from sqlalchemy.exc import InterfaceError, OperationalError

from rome.logs import log
from rome.store import db
from rome.store.dead_letters import dead_letter_key, death_reason, record_dead_letter

logger = logging.getLogger("rome.pipeline")
DatabaseError = (OperationalError, InterfaceError)
PREFETCH = 20
BACKOFF_CAP = 30.0


def describe(message: Message) -> tuple[str, object, str]:
    """Return (key, task name, reason) for a dead letter from its headers alone."""
    headers = message.headers or {}
    task = headers.get("task")
    reason = f"dead-lettered by RabbitMQ: {death_reason(headers)}"
    if task:
        reason += f"; task {str(task)[:200]!r}"
    return dead_letter_key(headers.get("id"), message.body), task, reason


class DeadLetterRecorder(ConsumerMixin):
    """Consume one queue of dead letters; store each in `rejected` unless it has its row."""

    def __init__(self, connection: Connection, queue: Queue, database: db.Database):
        self.connection, self.queue, self.database = connection, queue, database

    def get_consumers(self, Consumer, channel):
        # on_message: the body is never decoded, so no content can make it fail.
        return [Consumer(queues=[self.queue], on_message=self.on_message,
                         prefetch_count=PREFETCH)]

    def on_message(self, message: Message) -> None:
        key, task, reason = describe(message)
        failures = 0
        while not self.should_stop:
            try:
                with self.database.Session.begin() as session:
                    record_dead_letter(session, key, None, message.body, reason,
                                       overwrite=False)
            except DatabaseError as exc:
                failures += 1
                delay = min(BACKOFF_CAP, 0.5 * 2 ** min(failures, 8))
                log(logger, "dead_letter_not_recorded", logging.WARNING, task_id=key,
                    error=str(exc)[:500], retry_in=delay)
                time.sleep(delay)
                continue
            message.ack()  # only now: the row is committed
            log(logger, "dead_letter_seen", logging.INFO, task=task, task_id=key, reason=reason)
            return
        # Stopping with the database down: unacked, it is delivered again later.


class DeadLetterRecorderStep(bootsteps.StartStopStep):
    """Run the dead-letter recorder in a thread of the worker's main process (RabbitMQ only)."""

    requires = ("celery.worker.components:Pool",)
    label = "dead-letter recorder"

    def __init__(self, parent, **kwargs):
        super().__init__(parent, **kwargs)
        self.recorder: DeadLetterRecorder | None = None
        self.thread: threading.Thread | None = None

    def start(self, parent) -> None:
        from workers import settings
        from workers.factory import topology

        queue = topology(settings).record
        if queue is None:
            return
        database = db.connect(settings.database_url)
        self.recorder = DeadLetterRecorder(parent.app.connection_for_read(), queue, database)
        self.thread = threading.Thread(target=self.recorder.run, name="dead-letter-recorder",
                                       daemon=True)
        self.thread.start()

    def stop(self, parent) -> None:
        if self.recorder is None or self.thread is None:
            return
        self.recorder.should_stop = True
        self.thread.join(5)
        self.recorder.connection.release()
        self.recorder.database.engine.dispose()
        self.recorder = self.thread = None

    terminate = stop
