"""`rome broker migrate`: what classic queues hold reaches the quorum queues, nothing lost."""

from __future__ import annotations

import json
import sys

import pytest
from amqp.exceptions import NotFound
from kombu import Connection

from tests.helpers.support import wait_for
from workers.queues import classic_topology, quorum_topology

pytestmark = pytest.mark.slow

ROME = [sys.executable, "-m", "rome"]
UPDATES = 2_000

# What a deployment of Rome before quorum queues left behind: feed messages in
# the classic notekeeper queue (published by this version's app, the way the
# old one did: same task, same message, the classic queue's declaration), a
# classic caesar queue, and a message in the classic rome.dead.
LEFT_BEHIND = """
import json
import sys
from pathlib import Path

from rome.feeds.inject import plan_stream, write_expectation
from workers import app
from workers.queues import classic_topology
from workers.tasks import normalize_feed

classic = classic_topology()
with app.connection_for_write() as conn:
    for queue in [classic.by_name()["caesar"], classic.dead]:
        queue(conn.default_channel).declare()
    conn.Producer().publish({"kept": "dead letter"}, exchange=classic.dead_exchange,
                            headers={"x-first-death-reason": "rejected"}, retry=True)
messages, expectation = plan_stream(int(sys.argv[2]), batch=20, duplicate_rate=0.5,
                                    shuffle=True, start=1, seed=sys.argv[3])
write_expectation(Path(sys.argv[1]), expectation)
for m in messages:
    normalize_feed.apply_async((m.source, m.body, m.encoding, m.version, m.format),
                               queue=classic.by_name()["notekeeper"])
print(len(messages))
"""


def depth(url: str, queue: str) -> int | None:
    with Connection(url) as conn:
        try:
            return conn.channel().queue_declare(queue, passive=True).message_count
        except NotFound:
            return None


def test_migrate_moves_classic_queues_into_quorum_queues_without_loss(
        rome_on_rabbitmq, tmp_path, amqp_url, unique):
    processes, _ = rome_on_rabbitmq
    expect = tmp_path / "expect.json"
    left = processes.run([sys.executable, "-c", LEFT_BEHIND, str(expect), str(UPDATES),
                          unique])
    assert left.returncode == 0, left.stderr
    published = int(left.stdout)
    assert depth(amqp_url, "notekeeper") == published

    moved = processes.run([*ROME, "broker", "migrate"])
    assert moved.returncode == 0, moved.stderr
    assert f"notekeeper -> notekeeper.quorum: moved {published} messages" in moved.stdout
    assert "rome.dead -> rome.dead.quorum: moved 1 messages" in moved.stdout
    assert "elections_ap: no classic queue" in moved.stdout
    assert depth(amqp_url, "notekeeper") == 0
    assert depth(amqp_url, "notekeeper.quorum") == published

    # A worker of this version counts every update exactly once.
    processes.worker("worker")
    wait_for(lambda: processes.run([*ROME, "audit", "--expect", str(expect)]).returncode
             == 0, 120, interval=2, what="rome audit --expect to pass")
    with Connection(amqp_url) as conn:
        dead = conn.channel().basic_get(quorum_topology().dead.name, no_ack=True)
    assert dead.headers["x-first-death-reason"] == "rejected"
    assert json.loads(dead.body) == {"kept": "dead letter"}

    # --delete keeps a classic queue that still has a consumer (an old
    # worker, say), and says so; once it is gone, it deletes them all.
    classic = classic_topology().by_name()
    with Connection(amqp_url) as conn:
        consumer = conn.Consumer(classic["caesar"], callbacks=[lambda *_: None])
        consumer.consume()
        kept = processes.run([*ROME, "broker", "migrate", "--delete"])
    assert kept.returncode == 1, kept.stdout + kept.stderr
    assert "caesar -> caesar.quorum: moved 0 messages; kept:" in kept.stdout
    assert depth(amqp_url, "notekeeper") is None
    deleted = processes.run([*ROME, "broker", "migrate", "--delete"])
    assert deleted.returncode == 0, deleted.stdout + deleted.stderr
    assert "caesar -> caesar.quorum: moved 0 messages; classic queue deleted" in deleted.stdout
    for name in ["notekeeper", "caesar", "rome.dead"]:
        assert depth(amqp_url, name) is None
    with Connection(amqp_url) as conn, pytest.raises(NotFound):
        conn.channel().exchange_declare("notekeeper", "direct", passive=True)
