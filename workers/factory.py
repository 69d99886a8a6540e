"""Build Rome's Celery app from validated settings: queues, reliability settings, beat schedule.

Building it reads nothing and makes nothing: the folders of the embedded
broker are made by its transport when a channel opens (workers/transport.py),
beat's by its scheduler (workers/schedule.py), the database's by
`rome db upgrade`.
"""

from __future__ import annotations

from celery import Celery

from rome.data_files import BEAT_SCHEDULE
from rome.settings import Settings
from workers.queues import SOURCE_QUEUES, Topology, classic_topology, quorum_topology
from workers.schedule import beat_schedule, poll_schedule

ROUTES = {"rome.notekeeper.normalize": "notekeeper", "rome.caesar.record": "caesar",
          "rome.poll.run": "poll", "rome.archive.prune": "poll",
          "rome.publish.races": "publish"}
# Seconds a publish waits for RabbitMQ's confirm before it counts as failed and
# is retried on a fresh connection (perhaps to another node). Without it, a
# publish to a cluster that has lost its majority waits forever. A publish
# that timed out may still be enqueued later: a duplicate, which its version
# makes harmless. A queue leader's election after its node is killed delays
# confirms by well under a second (docs/reliability.md).
CONFIRM_TIMEOUT = 5.0
# Seconds any other blocking read from RabbitMQ may wait (see below).
READ_TIMEOUT = 3.0


def topology(settings: Settings) -> Topology:
    """Return the queues for settings' broker: quorum on RabbitMQ, classic on the embedded one.

    A message a task gives up on, or one no worker can decode, is rejected
    without requeue; the broker then moves it to the topology's dead queue
    instead of dropping it.
    """
    return quorum_topology() if settings.amqp_broker else classic_topology()


class TaskRouter:
    """Send notekeeper's and caesar's tasks to their queues; bound every wait on RabbitMQ."""

    def __init__(self, amqp_broker: bool):
        self.amqp_broker = amqp_broker
        # The queues this process has declared (by publishing to them once).
        self.declared: set[str] = set()

    def __call__(self, name, args, kwargs, options, task=None, **_):
        route = {"queue": ROUTES[name]} if name in ROUTES else {}
        if self.amqp_broker:
            route.update(confirm_timeout=CONFIRM_TIMEOUT, timeout=CONFIRM_TIMEOUT)
            # Declare each queue on this process's first publish to it, not on
            # every new connection as Celery does: RabbitMQ 3.10 answers the
            # declaration of an existing quorum queue only once every replica
            # has, so while one node is stalled, each reconnect to another node
            # would stall again on it (up to net_ticktime, 60 s).
            queue = options.get("queue") or route.get("queue")
            queue = getattr(queue, "name", queue)
            if queue in self.declared:
                route["declare"] = []
            self.declared.add(queue)
        return route


def create_app(settings: Settings) -> Celery:
    """Return Rome's Celery app configured from settings; its tasks register when it loads them."""
    # The worker's signal handlers connect on this first import, once a process.
    import workers.signals  # noqa: F401

    app = Celery("rome", broker=settings.broker_url, include=["workers.tasks"])
    # JSON only, in and out: a pickle on the broker would be code execution. Signed
    # (workers/signing.py): a task message whose HMAC does not check out with one of
    # the message keys is refused, so the broker password alone enqueues no work.
    if settings.message_signing:
        from workers.signing import CONTENT_TYPE, use_signing

        serializer, accepted = use_signing(settings.message_keys_file), CONTENT_TYPE
    else:  # ROME_MESSAGE_SIGNING=off: development only (rome/settings.py)
        serializer, accepted = "json", "application/json"
    app.conf.update(
        task_serializer=serializer,
        result_serializer=serializer,
        # Events only inform Flower; they enqueue nothing.
        event_serializer="json",
        accept_content=[accepted],
        task_ignore_result=True,
        # Ack after the task has run, and requeue if the worker process dies, so
        # a task is lost neither by a crash nor by a kill -9 of the pool child.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=4,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        # A task that fails for good is rejected, not acked: it dead-letters.
        task_acks_on_failure=False,
        worker_consumer="workers.consumer:DeadLetteringConsumer",
        # Publishing retries through a broker restart or a queue leader election
        # (about 80 s of tries, each reconnecting to the next node of a cluster)
        # before the caller sees the error.
        task_publish_retry=True,
        task_publish_retry_policy={
            "max_retries": 30, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 3,
        },
        # Durable queues; messages are persistent (Celery's default delivery_mode=2).
        # A worker started without -Q consumes every one of them (and never the
        # dead-letter queue, which is not among them).
        task_queues=list(topology(settings).work),
        task_default_queue="notekeeper",
        task_routes=[TaskRouter(settings.amqp_broker)],
        task_create_missing_queues=False,
        # Events for Flower, and a sent event so it sees queued tasks too.
        worker_send_task_events=True,
        task_send_sent_event=True,
        broker_connection_retry_on_startup=True,
        broker_transport_options=dict(settings.broker_transport_options),
        # With ROME_SOURCES, beat polls those endpoints and simulates nothing.
        beat_schedule=(poll_schedule(settings) if settings.sources_file
                       else beat_schedule(settings.source_interval, SOURCE_QUEUES)),
        beat_scheduler="workers.schedule:FolderMakingScheduler",
        beat_schedule_filename=str(settings.data_dir / BEAT_SCHEDULE),
        worker_hijack_root_logger=True,
    )
    if settings.embedded_broker:
        app.conf.broker_transport = "workers.transport:AtomicFilesystemTransport"
    if settings.amqp_broker:
        from workers.dead_letters import DeadLetterRecorderStep

        app.steps["worker"].add(DeadLetterRecorderStep)
        # Publisher confirms: apply_async returns only once RabbitMQ has the message.
        app.conf.broker_transport_options["confirm_publish"] = True
        # No blocking read on any connection waits for a silent node longer than
        # this (SO_RCVTIMEO): the confirm of an event Celery publishes without a
        # confirm_timeout (task-sent, the worker's events), the reply to a queue
        # declaration, and the close handshakes kombu goes through before it
        # switches to the next node. A stalled node (SIGSTOP, a frozen VM)
        # accepts connections and then answers nothing. Reads done by an event
        # loop or with a timeout of their own are unaffected, so idle consumers
        # are too. Other writes than task publishes (TaskRouter) keep blocking:
        # that is how RabbitMQ's flow control holds a publisher back.
        app.conf.broker_transport_options["read_timeout"] = READ_TIMEOUT
    return app
