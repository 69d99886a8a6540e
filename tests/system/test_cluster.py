"""Fault tests on a real three-node RabbitMQ cluster with quorum queues.

Each streams known updates (`rome inject`, with duplicates, shuffled) through
a fault of the cluster, asserts that the fault really happened, and ends with
`rome audit --expect` passing. Each also measures how long ingest paused: the
longest time, from the fault on, without a caesar batch committed (read from
the worker's log), printed as `ingest pause`.

The cluster runs on loopback ports (tests/helpers/rabbit_cluster.py), started once
for the module and taken down even when a test fails; each test has a fresh
virtual host and brings back any node an earlier test left down.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
from kombu import Connection

from rome.store import db
from tests.helpers.paths import ROOT
from tests.helpers.rabbit_cluster import RABBITMQ_BIN, Node, RabbitCluster
from tests.helpers.support import CELERY, Processes, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

ROME = [sys.executable, "-m", "rome"]
UPDATES = 10_000
RATE = 1_000  # updates per second offered, duplicates included
COMMITTED = re.compile(
    r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}): INFO/ForkPoolWorker-\d+\] "
    r"Task rome\.caesar\.record\[[^\]]+\] succeeded", re.MULTILINE)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if not RabbitCluster.available():
        message = "RabbitMQ's rabbitmq-server is not installed"
        if os.environ.get("CI"):
            pytest.fail(message + " (CI is set, so this is a failure, not a skip)")
        pytest.skip(message)
    cluster = RabbitCluster(tmp_path_factory.mktemp("rabbitmq") / "cluster")
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.close()


class Stack:
    """Rome's worker and `rome inject` on one virtual host of the cluster."""

    def __init__(self, cluster: RabbitCluster, vhost: str, processes: Processes, tmp: Path):
        self.cluster, self.vhost, self.processes = cluster, vhost, processes
        self.expect = tmp / "expect.json"

    def urls(self, *order: Node) -> str:
        """ROME_BROKER_URL listing every node, in failover order: the first is connected first."""
        return ";".join(node.url(self.vhost) for node in order)

    def declare_queues(self, via: Node) -> None:
        """Declare Rome's queues through one node, which then leads them all (client-local)."""
        from workers.queues import quorum_topology

        topology = quorum_topology()
        with Connection(via.url(self.vhost)) as conn:
            channel = conn.channel()
            for queue in [*topology.work, topology.dead]:
                queue(channel).declare()
        for queue in ("notekeeper.quorum", "caesar.quorum"):
            assert self.leader(queue, via) == via.name

    def leader(self, queue: str, via: Node) -> str | None:
        return self.cluster.leader(self.vhost, queue, via)

    def worker(self, *order: Node) -> None:
        self.processes.start("worker", [*CELERY, "worker", "-Q", "notekeeper,caesar",
                                        "-n", "worker@%h", "-c", "2", "-l", "info"],
                             env={"ROME_BROKER_URL": self.urls(*order)})
        wait_for(lambda: "ready." in self.log(), 60, what="the worker to be ready")

    def inject(self, *order: Node) -> None:
        self.processes.start("inject", [*ROME, "inject", "--updates", str(UPDATES),
                                        "--batch", "20", "--duplicate-rate", "0.5", "--shuffle",
                                        "--rate", str(RATE), "--expect", str(self.expect)],
                             env={"ROME_BROKER_URL": self.urls(*order)})

    def log(self) -> str:
        return self.processes.log("worker")

    def commits(self) -> list[float]:
        """When each caesar batch was committed, from the worker's log."""
        return [datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()
                for stamp in COMMITTED.findall(self.log())]

    def stream(self, worker: tuple[Node, ...], inject: tuple[Node, ...],
               leaders: Node | None = None) -> None:
        """Declare the queues through leaders (the first node), start the stream, wait.

        worker and inject list the nodes in the order each connects to them.
        """
        self.declare_queues(via=leaders or self.cluster.nodes[0])
        self.worker(*worker)
        self.inject(*inject)
        wait_for(lambda: len(self.commits()) >= 100, 60, what="the stream to be under way")

    def finish(self, fault_at: float, name: str) -> float:
        """Wait for the stream to be published and counted exactly; return the ingest pause."""
        inject = self.processes.procs["inject"]
        inject.wait(300)
        assert inject.returncode == 0, self.processes.log("inject")[-3000:]

        def audited():
            audit = self.processes.run([*ROME, "audit", "--expect", str(self.expect)])
            return audit.returncode == 0 and "audit ok" in audit.stdout

        wait_for(audited, 180, interval=2, what="rome audit --expect to pass")
        times = [fault_at, *(t for t in self.commits() if t > fault_at)]
        pause = max(later - earlier for earlier, later in zip(times, times[1:], strict=False))
        print(f"\ningest pause, {name}: {pause:.1f} s")
        return pause


def heal(cluster: RabbitCluster) -> None:
    """Resume stalled nodes, start again those a test stopped or killed, wait for all."""
    for node in cluster.nodes:
        if node.frozen:
            cluster.thaw(node)
    down = [node for node in cluster.nodes if not node.running()]
    if down:
        cluster.restart(*down)
    for node in cluster.nodes:
        cluster.await_node(node)


@pytest.fixture
def stack(cluster, tmp_path, pg_url, empty_tables, unique):
    heal(cluster)
    vhost = f"rome_{unique}"
    cluster.add_vhost(vhost)
    processes = Processes({"ROME_DATABASE_URL": pg_url, "ROME_DATA_DIR": str(tmp_path / "data"),
                           "ROME_SEED": unique}, tmp_path)
    upgraded = processes.run([*ROME, "db", "upgrade"])
    assert upgraded.returncode == 0, upgraded.stderr
    database = db.connect(pg_url)
    empty_tables(database)
    database.engine.dispose()
    yield Stack(cluster, vhost, processes, tmp_path)
    processes.stop()
    heal(cluster)  # a vhost's quorum queues are deleted only with every member up
    cluster.delete_vhost(vhost)


def process_state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def gone(node: Node, pid: int) -> bool:
    return not Path(f"/proc/{pid}").exists() and not node.running()


def test_the_compose_nodes_healthcheck_counts_three_running_nodes(cluster, tmp_path):
    """docker-compose.cluster.yml's node healthcheck, run against this real cluster."""
    import yaml

    compose = yaml.safe_load((ROOT / "docker-compose.cluster.yml")
                             .read_text())
    check = compose["x-rabbitmq-node"]["healthcheck"]["test"][1].replace("$$", "$")
    # In a container rabbitmq-diagnostics talks to its own node; here, to node 1.
    wrapper = tmp_path / "rabbitmq-diagnostics"
    wrapper.write_text(f'#!/bin/sh\nexec {RABBITMQ_BIN}/rabbitmq-diagnostics '
                       f'-n {cluster.nodes[0].name} "$@"\n')
    wrapper.chmod(0o755)
    env = {**cluster.env(), "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    healthy = subprocess.run(["sh", "-c", check], env=env, capture_output=True, text=True,
                             timeout=60)
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    four = subprocess.run(["sh", "-c", check.replace("-eq 3", "-eq 4")], env=env,
                          capture_output=True, text=True, timeout=60)
    assert four.returncode != 0  # it does count the nodes


def test_kill_9_of_the_node_leading_the_queues_mid_stream(stack):
    n1, n2, n3 = stack.cluster.nodes
    # The publisher is on the node that dies too: it must reconnect to another
    # node and publish again while the queues elect new leaders.
    stack.stream(worker=(n2, n3, n1), inject=(n1, n3, n2))

    fault_at, pid = time.time(), n1.pid
    stack.cluster.kill9(n1)
    assert gone(n1, pid)
    # The fault happened: the queues elected new leaders on the surviving nodes.
    wait_for(lambda: stack.leader("notekeeper.quorum", via=n2) in (n2.name, n3.name), 60,
             what="a new leader for notekeeper's queue")
    stack.finish(fault_at, "kill -9 of the queues' leader")


def test_two_of_three_nodes_stopped_and_brought_back(stack):
    n1, n2, n3 = stack.cluster.nodes
    stack.stream(worker=(n1, n2, n3), inject=(n1, n2, n3))

    fault_at = time.time()
    stack.cluster.stop(n2)
    stack.cluster.stop(n3)
    majority_lost_at = time.time()
    assert not n2.running() and not n3.running()
    time.sleep(10)
    # The fault happened: without a majority nothing was committed (but for
    # the few batches the worker already held when the second node stopped).
    committed = [t for t in stack.commits() if majority_lost_at + 3 < t < time.time()]
    assert not committed, f"{len(committed)} batches committed without a majority"
    stack.cluster.restart(n2, n3)
    assert stack.cluster.running_nodes() == {n.name for n in stack.cluster.nodes}
    pause = stack.finish(fault_at, "two of three nodes stopped, then started")
    assert pause >= 10


def test_kill_9_of_the_node_the_worker_is_connected_to(stack):
    n1, n2, n3 = stack.cluster.nodes
    stack.stream(worker=(n2, n1, n3), inject=(n3, n1, n2))
    assert f"Connected to amqp://guest:**@127.0.0.1:{n2.port}/" in stack.log()

    fault_at, pid = time.time(), n2.pid
    stack.cluster.kill9(n2)
    assert gone(n2, pid)
    stack.finish(fault_at, "kill -9 of the worker's node")
    # The fault happened: the worker lost its connection and failed over to
    # the next node of its list.
    log = stack.log()
    assert "Connection to broker lost" in log
    assert f"Connected to amqp://guest:**@127.0.0.1:{n1.port}/" in log
    # Delayed delivery was set up again through the new node only, not
    # retried against the dead one (Celery's own step does, for seconds).
    assert f"127.0.0.1:{n2.port}/{stack.vhost}'" not in log.split("Connection to broker lost")[1]


def test_sigstop_of_the_publishers_node_mid_stream(stack):
    from workers.factory import CONFIRM_TIMEOUT

    n1, n2, n3 = stack.cluster.nodes
    # The queues are led by another node: see docs/reliability.md for a stalled leader.
    stack.stream(worker=(n3, n2, n1), inject=(n1, n3, n2), leaders=n2)

    fault_at = time.time()
    stack.cluster.freeze(n1)
    try:
        # The fault happened: the node is stopped (state T), not gone.
        wait_for(lambda: process_state(n1.pid) == "T", 5, interval=0.05, what="the stop")
        time.sleep(25)
    finally:
        thawed_at = time.time()
        stack.cluster.thaw(n1)
    stack.finish(fault_at, "SIGSTOP of the publisher's node for 25 s")
    # Ingest resumed while the node was still stalled: the publisher gave up
    # waiting for its confirm after CONFIRM_TIMEOUT and went to another node.
    resumed = [t for t in stack.commits() if fault_at + CONFIRM_TIMEOUT + 1 < t < thawed_at]
    assert resumed, "nothing was committed while the node stalled"
