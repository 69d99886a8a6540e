"""Fault tests on RabbitMQ + PostgreSQL: each streams 20,000 counts through a real fault.

The counts are cumulative snapshots: later versions overwrite earlier ones'
keys and now and then lower them. Every test ends with the tallies equal to
the newest version of every count and `rome audit --expect` passing, and
asserts that its fault really happened, so none can pass by missing it.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kombu import Connection
from sqlalchemy import func, select, update

from rome.data_files import MESSAGE_KEYS
from rome.feeds.catalog import default_catalog
from rome.feeds.inject import BAD_KINDS, expected_tallies, read_expectation
from rome.feeds.simulator import Night, simulate
from rome.ops.message_keys import read as read_keys
from rome.ops.supervisor import children_of
from rome.settings import load_settings
from rome.store import db
from rome.store.audit import compare, tallies_by_key
from rome.store.models import HistoryRow, RejectedRow, SourceRow
from tests.helpers.support import (
    Processes,
    publish_signed,
    queue_depth,
    reset_queues,
    task_message,
    wait_for,
)
from workers.queues import quorum_topology

pytestmark = [pytest.mark.faults, pytest.mark.slow]

UPDATES = 20_000
ROME = [sys.executable, "-m", "rome"]
PG_CLUSTER = ["pg_ctlcluster", "--skip-systemctl-redirect"]
# Rome's queues on RabbitMQ, by logical name (workers/queues.py).
QUEUES = quorum_topology().by_name()


class Stack:
    def __init__(self, processes: Processes, database: db.Database, broker_url: str, tmp: Path):
        self.processes, self.database, self.broker_url, self.tmp = (
            processes, database, broker_url, tmp)
        self.expect = tmp / "expect.json"

    def worker(self, name: str = "worker") -> subprocess.Popen:
        """Start a worker on every queue and wait until it consumes."""
        proc = self.processes.worker(name, concurrency=2)
        wait_for(lambda: "ready." in self.processes.log(name), 60, what=f"{name} to be ready")
        return proc

    def inject(self, *args: str) -> subprocess.Popen:
        return self.processes.start(
            "inject", [*ROME, "inject", "--updates", str(UPDATES), "--batch", "20",
                       "--expect", str(self.expect), *args])

    def changes(self) -> int:
        """Count the history rows: how far the stream has got."""
        with self.database.Session() as session:
            return session.scalar(select(func.count()).select_from(HistoryRow))

    def logged(self, field: str, name: str = "worker") -> int:
        """Sum a key=value field over the recorded lines of worker logs."""
        return sum(int(part.split("=")[1]) for part in self.processes.log(name).split()
                   if part.startswith(f"{field}=") and part.split("=")[1].isdigit())

    def matches(self) -> bool:
        """Tell whether the tallies are the expected final state now."""
        with self.database.Session() as session:
            return not compare(tallies_by_key(session), read_expectation(self.expect),
                               "expected")

    def converged(self, timeout: float = 180) -> None:
        """Wait until the tallies equal the expectation, then run rome audit --expect."""
        wait_for(self.matches, timeout, interval=1, what="the tallies to reach the expected totals")
        audit = self.processes.run([*ROME, "audit", "--expect", str(self.expect)])
        assert audit.returncode == 0, audit.stdout + audit.stderr
        assert "audit ok" in audit.stdout

    def wait_injected(self, timeout: float = 300) -> None:
        proc = self.processes.procs["inject"]
        proc.wait(timeout)
        assert proc.returncode == 0, self.processes.log("inject")[-2000:]


@pytest.fixture
def stack(tmp_path, pg_url, amqp_url, empty_tables, unique):
    env = {
        "ROME_DATABASE_URL": pg_url,
        "ROME_BROKER_URL": amqp_url,
        "ROME_DATA_DIR": str(tmp_path / "data"),
        "ROME_SEED": unique,
    }
    reset_queues(amqp_url)
    processes = Processes(env, tmp_path)
    upgraded = processes.run([*ROME, "db", "upgrade"])
    assert upgraded.returncode == 0, upgraded.stderr
    database = db.connect(pg_url)
    empty_tables(database)
    yield Stack(processes, database, amqp_url, tmp_path)
    processes.stop()
    database.engine.dispose()


def test_kill_9_of_pool_child_and_of_worker_main_process(stack):
    worker = stack.worker()
    stack.inject("--rate", "1500")
    wait_for(lambda: stack.changes() > 2000, 60, what="the stream to be under way")

    pool = wait_for(lambda: children_of(worker.pid), 10, what="pool children")
    victim = min(pool)
    os.kill(victim, signal.SIGKILL)
    replaced = wait_for(lambda: (c := children_of(worker.pid)) and victim not in c and len(c) == 2
                        and c, 30, what="the pool to replace the killed child")
    assert victim not in replaced

    wait_for(lambda: stack.changes() > 8000, 60, what="more of the stream")
    os.kill(worker.pid, signal.SIGKILL)  # the main process, mid-stream
    stack.processes.stop("worker")  # its orphaned pool children, as a container stop would
    new_worker = stack.worker("worker2")
    assert new_worker.pid != worker.pid
    assert worker.wait() == -signal.SIGKILL

    stack.wait_injected()
    stack.converged()


def test_rabbitmq_stopped_and_started_mid_stream(stack):
    stack.worker()
    stack.inject("--rate", "1500")
    wait_for(lambda: stack.changes() > 3000, 60, what="the stream to be under way")
    stopped = subprocess.run(["rabbitmqctl", "-q", "stop_app"], capture_output=True, text=True)
    assert stopped.returncode == 0, stopped.stderr
    try:
        time.sleep(4)
    finally:
        started = subprocess.run(["rabbitmqctl", "-q", "start_app"], capture_output=True,
                                 text=True)
    assert started.returncode == 0, started.stderr
    stack.wait_injected()
    stack.converged()
    # The fault happened: the worker lost its broker connection and reconnected.
    assert "Connection to broker lost" in stack.processes.log("worker")


def test_postgresql_unavailable_for_five_seconds(stack):
    cluster = os.listdir("/etc/postgresql")[0] if Path("/etc/postgresql").is_dir() else None
    if cluster is None or os.geteuid() != 0:
        message = "stopping PostgreSQL needs root and a local cluster"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    stack.worker()
    stack.inject("--rate", "1500")
    wait_for(lambda: stack.changes() > 3000, 60, what="the stream to be under way")
    stop = subprocess.run([*PG_CLUSTER, cluster, "main", "stop", "-m", "fast"],
                          capture_output=True, text=True)
    try:
        assert stop.returncode == 0, stop.stderr
        time.sleep(5)
    finally:
        start = subprocess.run([*PG_CLUSTER, cluster, "main", "start"], capture_output=True,
                               text=True)
    assert start.returncode == 0, start.stderr
    stack.wait_injected()
    stack.converged()
    assert "event=database_unavailable" in stack.processes.log("worker")


def test_every_snapshot_delivered_twice_in_shuffled_order(stack):
    stack.worker()
    stack.inject("--duplicate-rate", "1", "--shuffle")
    stack.wait_injected()
    stack.converged()
    rows = json.loads(stack.expect.read_text())["rows"]
    # Every count arrived at least twice; all but the newest arrival of each
    # key were no-ops (a second copy, or an older version after a newer one).
    wait_for(lambda: stack.logged("applied") + stack.logged("stale") == 2 * rows, 30,
             what="every copy to reach caesar")
    assert stack.logged("stale") >= rows


def test_two_beat_schedulers_for_thirty_seconds(stack, unique):
    stack.processes.env.update({
        "ROME_SOURCE_INTERVAL": "0.25", "ROME_UPDATE_CHANCE": "0.5", "ROME_REPORTING_UNITS": "60",
        "ROME_NIGHT_SECONDS": "120",
    })
    with stack.database.Session.begin() as session:  # the simulated night begins now
        session.execute(update(SourceRow).values(started_at=datetime.now(UTC)))
    stack.worker()
    stack.processes.beat("beat1")
    stack.processes.beat("beat2")
    time.sleep(30)
    stack.processes.stop("beat1")
    stack.processes.stop("beat2")

    settings = load_settings(stack.processes.env)
    with stack.database.Session() as session:
        started = {s.id: s.started_at.timestamp() for s in session.scalars(select(SourceRow))}

    def emitted() -> Counter:
        return Counter(
            (line.split("source=")[1].split()[0], int(line.split("tick=")[1].split()[0]))
            for line in stack.processes.log("worker").splitlines() if "event=emitted" in line
        )

    made: dict = {}

    def expected():
        """Newest-wins over the snapshots of every tick sent, as one beat would make them."""
        for source, tick in emitted():
            if (source, tick) not in made:
                night = Night(unique, 0.5, 0.25, started[source], 120.0)
                made[(source, tick)] = simulate(source, tick, night, units=60)
        return expected_tallies([s for s in made.values() if s], default_catalog())

    def drained():
        with stack.database.Session() as session:
            return not compare(tallies_by_key(session), expected(), "expected")

    wait_for(drained, 120, interval=2, what="the tallies to match the ticks sent")
    assert settings.reporting_units == 60
    # The fault happened: both beats sent, and most ticks were emitted twice.
    sent = emitted()
    assert "Sending due task" in stack.processes.log("beat1")
    assert "Sending due task" in stack.processes.log("beat2")
    assert sum(1 for n in sent.values() if n >= 2) >= 0.8 * len(sent)
    audit = stack.processes.run([*ROME, "audit"])
    assert audit.returncode == 0, audit.stderr


def test_bad_input_mixed_into_a_good_stream(stack):
    worker = stack.worker()
    bad = 3 * len(BAD_KINDS)
    stack.inject("--bad", str(bad), "--shuffle")
    # Two more kinds no feed body can express: a pickled message (Rome accepts
    # only JSON), and a poison update that fails in caesar on every try.
    with Connection(stack.broker_url) as conn:
        producer = conn.Producer()
        producer.publish(
            pickle.dumps({"evil": True}), exchange=QUEUES["notekeeper"].exchange,
            routing_key="notekeeper",
            content_type="application/x-python-serialize", content_encoding="binary",
            headers={"task": "rome.notekeeper.normalize", "id": "pickle-1"},
        )
    # Three arguments for a task that takes one: a TypeError on every try. Signed
    # with the stack's own message keys, as Rome's processes sign.
    ring = read_keys(stack.tmp / "data" / MESSAGE_KEYS)
    with Connection(stack.broker_url) as conn:
        publish_signed(conn.Producer(), task_message("rome.caesar.record", [[], "extra", "args"]),
                       ring, exchange=QUEUES["caesar"].exchange, routing_key="caesar")
    stack.wait_injected()
    stack.converged()

    def all_rejected():
        with stack.database.Session() as session:
            rows = session.scalars(select(RejectedRow)).all()
        return rows if len(rows) >= bad + 2 else None

    rows = wait_for(all_rejected, 60, interval=1, what="every bad payload to be rejected")
    assert len(rows) == bad + 2
    reasons = " | ".join(r.reason for r in rows)
    for expected in ["unknown source", "nested too deeply", "negative", "absurd",
                     "undecodable message (application/x-python-serialize)",
                     "rome.caesar.record gave up"]:
        assert expected in reasons
    assert len({r.reason for r in rows}) >= len(BAD_KINDS)  # each kind has its own reason
    # Undecodable and poison messages are kept in the dead-letter queue.
    wait_for(lambda: queue_depth(stack.broker_url, quorum_topology().dead.name) == 2, 30,
             what="two messages in rome.dead.quorum")
    # The worker stayed up the whole time and still answers.
    assert worker.poll() is None
    ping = stack.processes.run([sys.executable, "-m", "celery", "-A", "workers", "inspect",
                                "ping", "-d", "worker@" + os.uname().nodename, "-t", "5"])
    assert ping.returncode == 0 and "pong" in ping.stdout, ping.stdout + ping.stderr
    api_check = json.dumps([r.reason for r in rows])
    assert "Traceback" not in api_check


def test_sigterm_mid_stream_finishes_or_requeues_in_flight_tasks(stack):
    """A graceful stop (docker stop sends SIGTERM) loses nothing and exits cleanly."""
    worker = stack.worker()
    stack.inject("--rate", "1500")
    wait_for(lambda: stack.changes() > 3000, 60, what="the stream to be under way")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(60) == 0  # warm shutdown: running tasks finished, the rest requeued
    assert "Warm shutdown" in stack.processes.log("worker")
    assert not stack.matches()  # it really stopped mid-stream
    stack.worker("worker2")
    stack.wait_injected()
    stack.converged()
