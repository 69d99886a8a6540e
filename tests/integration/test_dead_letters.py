"""Every message RabbitMQ dead-letters is also recorded in `rejected`, whatever refused it."""

from __future__ import annotations

import pickle
import sys

import pytest
from kombu import Connection
from sqlalchemy import func, select

from rome.data_files import MESSAGE_KEYS
from rome.ops.message_keys import read as read_keys
from rome.store import db
from rome.store.models import RejectedRow
from tests.helpers.support import (
    Processes,
    publish_signed,
    queue_depth,
    reset_queues,
    task_message,
    wait_for,
)
from workers.queues import quorum_topology

pytestmark = [pytest.mark.slow, pytest.mark.services]

QUEUES = quorum_topology().by_name()
NOTEKEEPER = QUEUES["notekeeper"].exchange
CAESAR = QUEUES["caesar"].exchange
DEAD = quorum_topology().dead.name


@pytest.fixture
def worker(pg_url, amqp_url, tmp_path, empty_tables):
    env = {"ROME_DATA_DIR": str(tmp_path / "data"), "ROME_DATABASE_URL": pg_url,
           "ROME_BROKER_URL": amqp_url}
    reset_queues(amqp_url)
    processes = Processes(env, tmp_path)
    upgraded = processes.run([sys.executable, "-m", "rome", "db", "upgrade"])
    assert upgraded.returncode == 0, upgraded.stderr
    database = db.connect(pg_url)
    empty_tables(database)
    processes.worker(queues="notekeeper,caesar")
    wait_for(lambda: "ready." in processes.log("worker"), 60, what="the worker to start")
    yield processes, database
    processes.stop()
    database.engine.dispose()


def test_every_dead_lettered_message_is_recorded(worker, amqp_url, tmp_path):
    processes, database = worker
    # Signed as Rome signs them: each is refused for what it is, not for lacking a signature
    # (tests/integration/test_signing.py refuses those).
    ring = read_keys(tmp_path / "data" / MESSAGE_KEYS)
    messages = [
        # Celery reports these with task_unknown, not task_rejected.
        task_message("rome.no.such.task", ["ap", "[]"]),
        task_message("os.system", ["echo owned"]),
        # A built-in task that fails: not a PipelineTask, so no on_failure of ours.
        task_message("celery.map", ["not a signature", [1, 2]]),
        task_message("celery.starmap", [{"task": "rome.no.such.task"}, "not pairs"]),
    ]
    with Connection(amqp_url) as conn:
        producer = conn.Producer()
        for message in messages:
            publish_signed(producer, message, ring, exchange=NOTEKEEPER,
                           routing_key="notekeeper")
        # Two kinds that were recorded already: not JSON, and a pickle.
        producer.publish(b"\xff\xfe", exchange=NOTEKEEPER, routing_key="notekeeper",
                         content_type="application/json", content_encoding="utf-8",
                         headers={"task": "rome.notekeeper.normalize", "id": "bad-bytes"})
        producer.publish(pickle.dumps({"evil": True}), exchange=NOTEKEEPER,
                         routing_key="notekeeper", content_type="application/x-python-serialize",
                         content_encoding="binary",
                         headers={"task": "rome.notekeeper.normalize", "id": "pickle-1"})
        # One of ours that can never run: three arguments for a task that takes one.
        poison = task_message("rome.caesar.record", [[], "extra", "args"])
        publish_signed(producer, poison, ring, exchange=CAESAR, routing_key="caesar")
    sent = len(messages) + 3

    wait_for(lambda: queue_depth(amqp_url, DEAD) == sent, 60,
             what=f"{sent} messages in {DEAD}")

    def recorded():
        with database.Session() as session:
            return session.scalar(select(func.count()).select_from(RejectedRow))

    wait_for(lambda: recorded() >= sent, 20, what=f"{sent} rows in rejected")
    with database.Session() as session:
        reasons = session.scalars(select(RejectedRow.reason)).all()
    assert len(reasons) == queue_depth(amqp_url, DEAD) == sent
    text = " | ".join(reasons)
    assert "unknown task 'rome.no.such.task'" in text and "unknown task 'os.system'" in text
    assert "celery.map failed" in text and "celery.starmap failed" in text
    assert "undecodable message (application/json)" in text
    assert text.count("rome.caesar.record gave up") == 1
    assert "undecodable message (application/x-python-serialize)" in text
    assert processes.procs["worker"].poll() is None  # nothing of it stopped the worker
