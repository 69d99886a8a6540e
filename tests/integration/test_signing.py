"""Only holders of the message keys enqueue work: the broker password alone applies nothing.

On the real RabbitMQ and PostgreSQL. A batch of counts forged with the broker
password (plain JSON to caesar's or notekeeper's queue, or a signed-looking
body with a wrong MAC or an unknown key id) is refused, dead-lettered and
recorded in `rejected` with the reason; with ROME_MESSAGE_SIGNING=off (allowed
in development only) the same plain JSON batch is applied, which is the hole
this closes. Rotating the keys loses nothing that was queued before.
"""

from __future__ import annotations

import secrets
import sys
import time

import pytest
from kombu import Connection

from rome.bench.common import parse_message, total_votes
from rome.data_files import MESSAGE_KEYS
from rome.feeds.inject import plan_stream
from rome.ops.message_keys import Keyring
from rome.ops.message_keys import read as read_keys
from rome.settings import load_settings
from tests.helpers.support import CELERY, publish_signed, queue_depth, task_message, wait_for
from tests.integration.test_poison import rejected_reasons
from workers.factory import create_app
from workers.queues import quorum_topology

pytestmark = [pytest.mark.slow, pytest.mark.services]

QUEUES = quorum_topology().by_name()
DEAD = quorum_topology().dead.name
ROME = [sys.executable, "-m", "rome"]


def forged_batch() -> dict:
    """A caesar task message carrying a valid snapshot of 20 counts: what an attacker would send."""
    messages, _ = plan_stream(20, batch=20, seed="forged", top=False)
    return task_message("rome.caesar.record", [[parse_message(messages[0]).to_wire()]])


def forged_feed() -> dict:
    """A notekeeper task message carrying a valid feed body."""
    message = plan_stream(20, batch=20, seed="forged-feed", top=False)[0][0]
    return task_message("rome.notekeeper.normalize",
                        [message.source, message.body, message.encoding, message.version,
                         message.format])


def publish_plain(url: str, queue: str, message: dict) -> None:
    with Connection(url) as conn:
        conn.Producer().publish(message["body"], exchange=QUEUES[queue].exchange,
                                routing_key=queue, serializer="json",
                                headers=message["headers"])


def start_worker(processes):
    processes.worker(queues="notekeeper,caesar")
    wait_for(lambda: "ready." in processes.log("worker"), 60, what="the worker to start")


@pytest.mark.parametrize("signing", ["on", "off"])
def test_a_batch_forged_with_the_broker_password_alone_is_refused_and_recorded(
        rome_on_rabbitmq, amqp_url, tmp_path, signing):
    processes, database = rome_on_rabbitmq
    if signing == "off":
        processes.env.update(ROME_ENV="development", ROME_MESSAGE_SIGNING="off")
    start_worker(processes)
    publish_plain(amqp_url, "caesar", forged_batch())
    publish_plain(amqp_url, "notekeeper", forged_feed())

    if signing == "off":
        # The hole: a plain JSON batch from anyone with the broker password is counted.
        wait_for(lambda: total_votes(database) > 0, 60, what="the forged batches to apply")
        assert rejected_reasons(database) == [] and queue_depth(amqp_url, DEAD) == 0
        return

    ring = read_keys(tmp_path / "data" / MESSAGE_KEYS)  # the worker's own keys
    stranger = Keyring((("k-attacker", secrets.token_bytes(32)),))
    tampered = forged_batch()
    with Connection(amqp_url) as conn:
        producer = conn.Producer()
        # A body signed with an unknown key id ...
        publish_signed(producer, forged_batch(), stranger, exchange=QUEUES["caesar"].exchange,
                       routing_key="caesar")
        # ... and one whose MAC is ours but whose body was changed after signing.
        body = ring.sign(b"[[[]], {}, {}]")
        producer.publish(body.replace(b"[[[]]", b'[["x"]'), exchange=QUEUES["caesar"].exchange,
                         routing_key="caesar", content_type="application/x-rome-hmac",
                         content_encoding="binary", headers=tampered["headers"])
        # ... and a plain body under a content type kombu trusts without any accept list
        # (it hands the raw bytes on, undecoded).
        producer.publish(b"[[[]], {}, {}]", exchange=QUEUES["caesar"].exchange,
                         routing_key="caesar", content_type="application/data",
                         content_encoding="binary", headers=forged_batch()["headers"])
    sent = 5
    wait_for(lambda: queue_depth(amqp_url, DEAD) == sent, 60, what=f"{sent} dead letters")
    reasons = wait_for(lambda: r if len(r := rejected_reasons(database)) >= sent else None,
                       30, what=f"{sent} rows in rejected")
    assert len(reasons) == sent, reasons
    assert sum("undecodable message (application/json): message signature missing" in r
               for r in reasons) == 2, reasons
    assert any("undecodable message (application/data): message signature missing" in r
               for r in reasons), reasons
    assert any("message signature by unknown key id 'k-attacker'" in r for r in reasons)
    assert any(f"message signature invalid: wrong MAC for key id '{ring.signing_id}'" in r
               for r in reasons), reasons
    assert total_votes(database) == 0  # nothing forged was counted
    # A message signed by Rome still goes through the same worker.
    expect = tmp_path / "expect.json"
    injected = processes.run([*ROME, "inject", "--updates", "100", "--batch", "20",
                              "--expect", str(expect)])
    assert injected.returncode == 0, injected.stderr
    wait_for(lambda: processes.run([*ROME, "audit", "--expect", str(expect)]).returncode == 0,
             60, interval=1, what="the signed updates to be applied")
    assert processes.procs["worker"].poll() is None


def test_messages_queued_before_a_rotation_are_consumed_after_it(rome_on_rabbitmq, amqp_url,
                                                                 tmp_path):
    processes, database = rome_on_rabbitmq
    expect = tmp_path / "expect.json"
    # Queued while no worker runs, signed with the first key (made by this first run).
    injected = processes.run([*ROME, "inject", "--updates", "400", "--batch", "20",
                              "--expect", str(expect)])
    assert injected.returncode == 0, injected.stderr
    old = read_keys(tmp_path / "data" / MESSAGE_KEYS)
    rotated = processes.run([*ROME, "keys", "rotate"])
    assert rotated.returncode == 0, rotated.stderr
    new = read_keys(tmp_path / "data" / MESSAGE_KEYS)
    assert new.signing_id != old.signing_id and new.secret(old.signing_id) is not None
    assert queue_depth(amqp_url, QUEUES["notekeeper"].name) > 0  # none consumed yet

    start_worker(processes)  # it signs its own messages (to caesar) with the new key
    wait_for(lambda: processes.run([*ROME, "audit", "--expect", str(expect)]).returncode == 0,
             90, interval=1, what="every message queued before the rotation to be applied")
    assert rejected_reasons(database) == [] and queue_depth(amqp_url, DEAD) == 0

    # Once retired, the old key signs nothing that is accepted.
    retired = processes.run([*ROME, "keys", "retire", old.signing_id])
    assert retired.returncode == 0, retired.stderr
    with Connection(amqp_url) as conn:
        publish_signed(conn.Producer(), forged_batch(), old,
                       exchange=QUEUES["caesar"].exchange, routing_key="caesar")
    reasons = wait_for(lambda: rejected_reasons(database) or None, 30,
                       what="the retired key's message to be rejected")
    assert reasons == [f"undecodable message (application/x-rome-hmac): message signature by "
                       f"unknown key id {old.signing_id!r}"]
    wait_for(lambda: queue_depth(amqp_url, DEAD) == 1, 30, what="one dead letter")


def test_an_unsigned_remote_control_command_is_refused(rome_on_rabbitmq, amqp_url, tmp_path):
    """Celery serializes remote control (ping, shutdown) as it does tasks: signed, so the
    broker password alone cannot stop a worker either."""
    processes, database = rome_on_rabbitmq
    start_worker(processes)
    plain = create_app(load_settings({"ROME_ENV": "development", "ROME_MESSAGE_SIGNING": "off",
                                      "ROME_BROKER_URL": amqp_url,
                                      "ROME_DATA_DIR": str(tmp_path / "plain")}))
    assert plain.control.ping(timeout=2) == []  # its json ping is refused: no answer
    plain.control.shutdown()
    reasons = wait_for(lambda: rejected_reasons(database) or None, 30,
                       what="the unsigned commands to be recorded")
    assert all("message signature missing" in r for r in reasons), reasons
    time.sleep(2)
    assert processes.procs["worker"].poll() is None  # it did not shut down
    ping = processes.run([*CELERY, "inspect", "ping", "-t", "5"])  # signed, as Rome's are
    assert ping.returncode == 0 and "pong" in ping.stdout, ping.stdout + ping.stderr
