"""A worker consumer that keeps undecodable messages instead of dropping them."""

from __future__ import annotations

from celery import signals
from celery.worker.consumer import Consumer


class DeadLetteringConsumer(Consumer):
    """Reject undecodable messages (bad bytes, a bad content type) so they dead-letter.

    Celery's own consumer logs and acks such a message, which loses it. It
    already rejects unknown and invalid task messages (a pickle, for one)
    and sends task_rejected; this makes decode errors take the same path,
    so one signal handler (workers.tasks) records every such message.
    """

    def on_decode_error(self, message, exc):
        message.reject_log_error(self.app.log.get_default_logger(), self.connection_errors)
        signals.task_rejected.send(sender=self, message=message, exc=exc)
