"""Rome's one Celery app: queues, reliability settings and the beat schedule.

Run it with:

    celery -A workers worker -Q notekeeper,caesar            # any queues
    celery -A workers worker -Q elections_ap -n ap@%h        # one source
    celery -A workers beat                                   # exactly one, normally
    celery -A workers flower --port=5555
"""

import gc
import logging

from celery import Celery
from celery._state import get_current_task
from celery.signals import (
    after_setup_logger,
    after_setup_task_logger,
    celeryd_after_setup,
    worker_process_init,
)

from rome.data_files import BEAT_SCHEDULE
from rome.logs import JsonFormatter
from rome.settings import load_settings, prepare_data_dir
from workers.queues import SOURCE_QUEUES, classic_topology, quorum_topology
from workers.schedule import beat_schedule

settings = load_settings()
prepare_data_dir(settings)

# Quorum queues on RabbitMQ (one node or a cluster), classic ones on the
# embedded broker: see workers/queues.py.
topology = quorum_topology() if settings.amqp_broker else classic_topology()
# A message a task gives up on, or one no worker can decode, is rejected
# without requeue; the broker then moves it here instead of dropping it.
DEAD_QUEUE = topology.dead
ROUTES = {"rome.notekeeper.normalize": "notekeeper", "rome.caesar.record": "caesar"}
# Seconds a publish waits for RabbitMQ's confirm before it counts as failed and
# is retried on a fresh connection (perhaps to another node). Without it, a
# publish to a cluster that has lost its majority waits forever. A publish
# that timed out may still be enqueued later: a duplicate, which its version
# makes harmless. A queue leader's election after its node is killed delays
# confirms by well under a second (docs/reliability.md).
CONFIRM_TIMEOUT = 5.0
# Seconds any other blocking read from RabbitMQ may wait (see below).
READ_TIMEOUT = 3.0


# The queues this process has declared (by publishing to them once).
_declared: set[str] = set()


def route_task(name, args, kwargs, options, task=None, **_):
    """Send notekeeper's and caesar's tasks to their queues; bound every wait on RabbitMQ."""
    route = {"queue": ROUTES[name]} if name in ROUTES else {}
    if settings.amqp_broker:
        route.update(confirm_timeout=CONFIRM_TIMEOUT, timeout=CONFIRM_TIMEOUT)
        # Declare each queue on this process's first publish to it, not on
        # every new connection as Celery does: RabbitMQ 3.10 answers the
        # declaration of an existing quorum queue only once every replica
        # has, so while one node is stalled, each reconnect to another node
        # would stall again on it (up to net_ticktime, 60 s).
        queue = options.get("queue") or route.get("queue")
        queue = getattr(queue, "name", queue)
        if queue in _declared:
            route["declare"] = []
        _declared.add(queue)
    return route


app = Celery("rome", broker=settings.broker_url, include=["workers.tasks"])
app.conf.update(
    # JSON only, in and out: a pickle on the broker would be code execution.
    task_serializer="json",
    result_serializer="json",
    event_serializer="json",
    accept_content=["json"],
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
    task_queues=list(topology.work),
    task_default_queue="notekeeper",
    task_routes=[route_task],
    task_create_missing_queues=False,
    # Events for Flower, and a sent event so it sees queued tasks too.
    worker_send_task_events=True,
    task_send_sent_event=True,
    broker_connection_retry_on_startup=True,
    broker_transport_options=dict(settings.broker_transport_options),
    beat_schedule=beat_schedule(settings.source_interval, SOURCE_QUEUES),
    beat_schedule_filename=str(settings.data_dir / BEAT_SCHEDULE),
    worker_hijack_root_logger=True,
)
if settings.embedded_broker:
    app.conf.broker_transport = "workers.transport:AtomicFilesystemTransport"
if settings.amqp_broker:
    # Publisher confirms: apply_async returns only once RabbitMQ has the message.
    app.conf.broker_transport_options["confirm_publish"] = True
    # No blocking read on any connection waits for a silent node longer than
    # this (SO_RCVTIMEO): the confirm of an event Celery publishes without a
    # confirm_timeout (task-sent, the worker's events), the reply to a queue
    # declaration, and the close handshakes kombu goes through before it
    # switches to the next node. A stalled node (SIGSTOP, a frozen VM)
    # accepts connections and then answers nothing. Reads done by an event
    # loop or with a timeout of their own are unaffected, so idle consumers
    # are too. Other writes than task publishes (route_task) keep blocking:
    # that is how RabbitMQ's flow control holds a publisher back.
    app.conf.broker_transport_options["read_timeout"] = READ_TIMEOUT


class CurrentTaskFilter(logging.Filter):
    """Stamp each record with the running task's id, name, parent and root."""

    def filter(self, record: logging.LogRecord) -> bool:
        task = get_current_task()
        if task is not None and task.request.id:
            record.task_id = task.request.id
            record.task_name = task.name
            record.parent_id = task.request.parent_id
            record.root_id = task.request.root_id
        return True


@after_setup_logger.connect
@after_setup_task_logger.connect
def _json_logs(logger, **_):
    # One JSON object per line, Celery's own lines included, so a log
    # pipeline can follow one update from source to caesar by root_id.
    if settings.log_format == "json":
        for handler in logger.handlers:
            handler.setFormatter(JsonFormatter())
            handler.addFilter(CurrentTaskFilter())


@celeryd_after_setup.connect
def _declare_dead_letter_queue(**_):
    if settings.amqp_broker:
        with app.connection_for_write() as connection:
            DEAD_QUEUE(connection.default_channel).declare()


@worker_process_init.connect
def _fresh_connections_in_child(**_):
    # A forked pool child must not reuse the parent's database sockets.
    from workers.tasks import database

    database().engine.dispose(close=False)


# A batch of 6,000 counts makes some 36,000 container objects (decoded lists,
# Count objects, row tuples). With the defaults, the cyclic collector ran 51
# times a batch, and every few batches walked every object the process had
# made at start (Celery, SQLAlchemy, kombu: over 70,000): a quarter of caesar's
# and notekeeper's CPU per count (docs/benchmarks.md).
GC_THRESHOLDS = (50_000, 20, 100)


@worker_process_init.connect
def _collect_less_in_child(**_):
    # What exists now lives as long as the process: take it out of collections.
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
