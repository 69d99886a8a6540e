"""The one door from rome/ to the Celery side: what the command line asks of workers/.

Every import of `workers` in rome/ stands here, inside a function, so importing rome
starts no Celery app; the import contracts in pyproject.toml allow this module alone.
"""

from __future__ import annotations


def publish_stream(messages, **options) -> int:
    """Publish notekeeper messages through the Celery app, each confirmed (workers/publish.py)."""
    from workers.publish import publish_stream as publish

    return publish(messages, **options)


def migrate_classic_queues(broker_url: str, delete: bool):
    """Move what Rome's classic RabbitMQ queues hold into the quorum queues (workers/migrate.py)."""
    from workers.migrate import migrate

    return migrate(broker_url, delete=delete)


def publish_confirmed(message, signed: bool = True) -> bool:
    """Publish one notekeeper message; True once the broker confirmed it (workers/publish.py).
    signed=False: plain JSON, for workers run with ROME_MESSAGE_SIGNING=off."""
    from workers.publish import publish_confirmed as publish

    return publish(message, signed)


def celery_app():
    """Return Rome's Celery app (workers/__init__.py): to send a task by name, ping workers,
    or open a connection to the broker."""
    from workers import app

    return app


def dead_letter_tasks(broker_url: str, queue_names: list[str]) -> dict[str, int]:
    """Count the dead letters in queue_names by task, taking none (workers/queues.py)."""
    from workers.queues import dead_letter_tasks as count

    return count(broker_url, queue_names)


def queue_names() -> list[str]:
    """Return the logical names of Rome's work queues (workers/queues.py)."""
    from workers.queues import QUEUES

    return list(QUEUES)


def worker_privilege_warnings() -> list[str]:
    """Say what Celery warns a worker started by this user of, by Celery's own test."""
    import warnings

    from celery.platforms import check_privileges

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # Rome's workers accept JSON only, so Celery warns and never refuses to start.
        check_privileges({"json"})
    return [str(w.message) for w in caught]
