"""A worker consumer that keeps undecodable messages and sets up delayed delivery once."""

from __future__ import annotations

from celery import signals
from celery.utils.log import get_logger
from celery.worker.consumer import Consumer
from celery.worker.consumer.delayed_delivery import (
    MAX_RETRIES,
    RETRIED_EXCEPTIONS,
    RETRY_INTERVAL,
    DelayedDelivery,
)
from kombu.exceptions import ContentDisallowed
from kombu.serialization import prepare_accept_content
from kombu.utils.functional import retry_over_time
from kombu.utils.url import maybe_sanitize_url

logger = get_logger(__name__)
CELERY_DELAYED_DELIVERY = "celery.worker.consumer.delayed_delivery:DelayedDelivery"


class DelayedDeliveryThroughConnectedNode(DelayedDelivery):
    """Declare native delayed delivery through the node the worker is connected to.

    Celery's own step (5.7) runs the setup against every URL of a `;`-separated
    broker list in turn, retrying each one, the dead ones included, every time
    the consumer (re)connects: after losing its node a worker stalled about
    18 s there before consuming again. The exchanges, queues and bindings it
    declares belong to the whole RabbitMQ cluster, so one live node is enough:
    the one the consumer has just connected to.

    Celery binds every queue of the app, not only those this worker
    consumes, and a binding fails while its queue does not exist yet: it
    declares them all first, as every publisher does.
    """

    def start(self, c) -> None:
        self._validate_configuration(c.app)
        url = c.connection.as_uri(include_password=True)
        try:
            retry_over_time(self._setup_delayed_delivery, args=(c, url),
                            catch=RETRIED_EXCEPTIONS, errback=self._on_retry,
                            interval_start=RETRY_INTERVAL, max_retries=MAX_RETRIES)
        except Exception as exc:  # as Celery's step: countdowns degrade, consuming goes on
            logger.critical("Failed to set up delayed delivery through %s: %s",
                            maybe_sanitize_url(url), exc)

    def _bind_queues(self, app, connection) -> None:
        channel = connection.channel()
        for queue in app.amqp.queues.values():
            queue(channel).declare()
        super()._bind_queues(app, connection)


def auto_acked(message) -> bool:
    """Tell whether message came to a no-ack consumer (nothing to ack or reject)."""
    no_ack = getattr(message.channel, "no_ack_consumers", None)
    return bool(no_ack) and (message.delivery_info or {}).get("consumer_tag") in no_ack


class DeadLetteringConsumer(Consumer):
    """Reject undecodable messages (bad bytes, a bad content type) so they dead-letter.

    Celery's own consumer logs and acks such a message, which loses it. It
    already rejects unknown and invalid task messages (a pickle, for one)
    and sends task_rejected; this makes decode errors take the same path,
    so one signal handler (workers.tasks) records every such message.
    """

    class Blueprint(Consumer.Blueprint):
        default_steps = [
            "workers.consumer:DelayedDeliveryThroughConnectedNode"
            if step == CELERY_DELAYED_DELIVERY else step
            for step in Consumer.Blueprint.default_steps
        ]

    def on_decode_error(self, message, exc):
        # Remote-control messages (the pidbox) are consumed without acks: rejecting one
        # would be a channel error. They are signed too (Celery serializes them with
        # task_serializer), so an unsigned one lands here, and is only recorded.
        if not auto_acked(message):
            message.reject_log_error(self.app.log.get_default_logger(), self.connection_errors)
        signals.task_rejected.send(sender=self, message=message, exc=exc)

    def create_task_handler(self, *args, **kwargs):
        """Refuse, before Celery reads it, a message of a content type the app does not accept.

        kombu decodes "application/data" and "application/text" (or no content
        type at all) whatever the accept list says, into raw bytes, on which
        Celery's task strategy raises TypeError: the worker's main process
        stops ("Unrecoverable error"). Anyone holding the broker password
        could stop every worker so; this rejects such a message instead, and
        it dead-letters and is recorded like any undecodable one.
        """
        handle = super().create_task_handler(*args, **kwargs)
        accepted = prepare_accept_content(self.app.conf.accept_content)

        def on_task_received(message):
            if message.content_type not in accepted:
                return self.on_decode_error(message, ContentDisallowed(
                    f"content type {message.content_type!r} is not accepted"))
            return handle(message)

        return on_task_received
