"""The worker's signal handlers: JSON logs, the dead-letter queue, fresh pool children,
and remote control limited to what does not change the worker.

workers.factory.create_app imports this module, so each handler connects once a
process, whatever builds the app.
"""

from __future__ import annotations

import gc
import logging

from celery._state import get_current_task
from celery.signals import (
    after_setup_logger,
    after_setup_task_logger,
    celeryd_after_setup,
    celeryd_init,
    worker_process_init,
)

from rome.logs import JsonFormatter


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
    from workers import settings

    if settings.log_format == "json":
        for handler in logger.handlers:
            handler.setFormatter(JsonFormatter())
            handler.addFilter(CurrentTaskFilter())


@celeryd_init.connect
def _obey_no_remote_control_that_changes_the_worker(**_):
    # Only in `celery worker`: Flower, beat and the web send inspect commands.
    from workers.remote_control import restrict

    restrict()


@celeryd_after_setup.connect
def _declare_dead_letter_queue(instance, **_):
    from workers import settings
    from workers.factory import topology

    if settings.amqp_broker:
        queues = topology(settings)
        with instance.app.connection_for_write() as connection:
            # Both before any task runs: a message dead-lettered while the
            # recorder's queue is missing would reach rome.dead alone.
            queues.dead(connection.default_channel).declare()
            if queues.record is not None:
                queues.record(connection.default_channel).declare()


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
