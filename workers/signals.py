"""The worker's signal handlers: JSON logs, the dead-letter queue, fresh pool children,
remote control limited to what does not change the worker, and a warm shutdown
that ends (workers' and beat's).

workers.factory.create_app imports this module, so each handler connects once a
process, whatever builds the app.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import threading
import time

from celery import platforms
from celery._state import get_current_task
from celery.signals import (
    after_setup_logger,
    after_setup_task_logger,
    beat_init,
    celeryd_after_setup,
    celeryd_init,
    worker_init,
    worker_process_init,
    worker_shutting_down,
)
from celery.worker import state as worker_state

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


# Seconds into a warm shutdown after which a pool process running no task is ended.
# An idle process gets its stop message at once and exits in well under a second.
IDLE_CHILD_GRACE = 10.0
_workers: list = []  # this process's WorkController, once it is built


@worker_init.connect
def _keep_worker(sender=None, **_):
    _workers.append(sender)


@worker_shutting_down.connect
def _end_idle_pool_processes_later(how=None, **_):
    """End, IDLE_CHILD_GRACE into a warm shutdown, each pool process that runs no task.

    Celery 5.7's prefork pool sometimes never stops: with a task message read in
    the instant of SIGTERM, a pool process waits in recv for the rest of a job its
    parent never finished writing, so it never reads its stop message, and the
    worker waits for it until Docker's SIGKILL (once in 34 SIGTERMs under a steady
    stream; another waits billiard's 30 s for its parent to read its last result:
    docs/reliability.md). Such a process runs no task, so ending it loses nothing:
    a job it never started is unacked (late acks) and goes back to its queue. A
    process still running a task is left to finish it, as a warm shutdown promises.
    """
    if how != "Warm" or not _workers:
        return
    threading.Thread(target=_end_idle_pool_processes, args=(_workers[-1],),
                     name="rome-idle-pool-processes", daemon=True).start()


def _end_idle_pool_processes(worker, grace: float = IDLE_CHILD_GRACE) -> list[int]:
    time.sleep(grace)
    processes = getattr(getattr(getattr(worker, "pool", None), "_pool", None), "_pool", None)
    if not isinstance(processes, list):  # no prefork pool: nothing of this kind to end
        return []
    busy = {request.worker_pid for request in tuple(worker_state.active_requests)}
    ended = []
    for process in tuple(processes):
        pid = getattr(process, "pid", None)
        if pid is None or pid in busy or not process.is_alive():
            continue
        logging.getLogger(__name__).warning(
            "pool process %s runs no task %.0f s into the warm shutdown: ending it", pid, grace)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue
        ended.append(pid)
    return ended


@beat_init.connect
def _stop_beat_between_ticks(sender=None, **_):
    """On SIGTERM or SIGINT, stop beat's loop; close its schedule only once the loop is left.

    Celery's own handler (5.7, apps/beat.py) closes the schedule's shelf inside the
    signal handler, then raises SystemExit. A CI run's compose test saw beat exit 1
    instead: no SystemExit reached beat's loop, and its next tick read the closed
    shelf ("invalid operation on closed shelf"). This handler closes nothing: it marks
    the service stopped (its loop checks that before each tick) and raises SystemExit;
    the loop's own `finally` saves and closes the schedule once, after the tick.
    """
    if sender is None or not hasattr(sender, "_is_shutdown"):
        return

    def stop(signum, frame):
        sender._is_shutdown.set()
        raise SystemExit()

    platforms.signals.update(SIGTERM=stop, SIGINT=stop)
