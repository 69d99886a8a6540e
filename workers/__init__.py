"""Rome's one Celery app: queues, reliability settings and the beat schedule.

Run it with:

    celery -A workers worker -Q notekeeper,caesar            # any queues
    celery -A workers worker -Q elections_ap -n ap@%h        # one source
    celery -A workers beat                                   # exactly one, normally
    celery -A workers flower --port=5555
"""

from celery import Celery
from celery.signals import worker_process_init
from kombu import Exchange, Queue

from rome.settings import load_settings, prepare_data_dir
from workers.schedule import beat_schedule

settings = load_settings()
prepare_data_dir(settings)

SOURCE_QUEUES = {source: f"elections_{source}" for source in ("ap", "mc", "sos")}
QUEUES = [*SOURCE_QUEUES.values(), "notekeeper", "caesar"]

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
    # Durable queues on their own direct exchanges; messages are persistent
    # (Celery's default delivery_mode=2).
    task_queues=[Queue(q, Exchange(q, type="direct"), routing_key=q, durable=True) for q in QUEUES],
    task_default_queue="notekeeper",
    task_routes={
        "rome.notekeeper.normalize": {"queue": "notekeeper"},
        "rome.caesar.record": {"queue": "caesar"},
    },
    task_create_missing_queues=False,
    # Events for Flower, and a sent event so it sees queued tasks too.
    worker_send_task_events=True,
    task_send_sent_event=True,
    broker_connection_retry_on_startup=True,
    broker_transport_options=dict(settings.broker_transport_options),
    beat_schedule=beat_schedule(settings.source_interval, SOURCE_QUEUES),
    beat_schedule_filename=str(settings.data_dir / "celerybeat-schedule"),
    worker_hijack_root_logger=True,
)
if settings.amqp_broker:
    # Publisher confirms: apply_async returns only once RabbitMQ has the message.
    app.conf.broker_transport_options["confirm_publish"] = True


@worker_process_init.connect
def _fresh_connections_in_child(**_):
    # A forked pool child must not reuse the parent's database sockets.
    from workers.tasks import database

    database().engine.dispose(close=False)
