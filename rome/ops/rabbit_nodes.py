"""Run a three-node RabbitMQ cluster on loopback ports, for fault tests and `rome chaos`.

No containers: each node is the packaged `rabbitmq-server` with its own node
name, AMQP and distribution ports (free ones, picked at start), config file,
data and log folders, and an Erlang cookie of its own in a HOME of its own,
so neither the machine's node (`rabbit@localhost` on 5672) nor its cookie in
/var/lib/rabbitmq is touched. The packaged /etc/rabbitmq/rabbitmq.conf pins
the listener to 5672 and would win over RABBITMQ_NODE_PORT, so every node
points RABBITMQ_CONFIG_FILE at its own. Everything lives under one folder
that close() removes; close() also kills every process it started, stopped
(SIGSTOP) or not.
"""

from __future__ import annotations

import ctypes
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")
PR_SET_PDEATHSIG = 1


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:
    # If the test process dies without cleaning up, the node's launcher gets
    # SIGTERM and stops its node (rabbitmq-server traps it).
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Node:
    name: str  # the Erlang node name, e.g. rome-1a2b3c-1@localhost
    port: int
    dist_port: int
    home: Path
    launcher: subprocess.Popen | None = None
    frozen: bool = False

    def url(self, vhost: str) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/{vhost}"

    @property
    def pid(self) -> int:
        """The node's Erlang VM (beam.smp), written by RabbitMQ to its pid file."""
        return int((self.home / "pid").read_text().strip())

    def running(self) -> bool:
        return self.launcher is not None and self.launcher.poll() is None


@dataclass
class RabbitCluster:
    base: Path
    size: int = 3
    nodes: list[Node] = field(default_factory=list)

    @staticmethod
    def available() -> bool:
        return (RABBITMQ_BIN / "rabbitmq-server").exists()

    def env(self, node: Node | None = None) -> dict[str, str]:
        """The environment of a node (or, without one, of the CLI) of this cluster."""
        env = {
            **os.environ,
            "HOME": str(self.base),  # the Erlang cookie of this cluster, for nodes and CLI
            "RABBITMQ_CONF_ENV_FILE": str(self.base / "rabbitmq-env.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.base / "enabled_plugins"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }
        if node is not None:
            env.update({
                "RABBITMQ_NODENAME": node.name,
                "RABBITMQ_NODE_PORT": str(node.port),
                "RABBITMQ_DIST_PORT": str(node.dist_port),
                "RABBITMQ_CONFIG_FILE": str(node.home / "rabbitmq.conf"),
                "RABBITMQ_MNESIA_BASE": str(node.home / "mnesia"),
                "RABBITMQ_LOG_BASE": str(node.home / "log"),
                "RABBITMQ_PID_FILE": str(node.home / "pid"),
                # Loopback only for the distribution port too; schedulers that
                # sleep instead of spinning, on a machine shared by three nodes.
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS":
                    "-kernel inet_dist_use_interface {127,0,0,1} "
                    "+sbwt none +sbwtdcpu none +sbwtdio none",
            })
        return env

    def ctl(self, node: Node, *args: str, timeout: float = 60,
            check: bool = True) -> subprocess.CompletedProcess:
        """Run rabbitmqctl against node (not the packaged wrapper, which uses another cookie)."""
        done = subprocess.run([str(RABBITMQ_BIN / "rabbitmqctl"), "-q", "-n", node.name, *args],
                              env=self.env(), capture_output=True, text=True, timeout=timeout)
        if check and done.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)} on {node.name}: "
                               f"{done.stdout}{done.stderr}")
        return done

    def start(self) -> None:
        self.base.mkdir(parents=True)
        cookie = self.base / ".erlang.cookie"
        cookie.write_text(secrets.token_hex(16).upper())
        cookie.chmod(0o400)
        (self.base / "rabbitmq-env.conf").write_text("")
        (self.base / "enabled_plugins").write_text("[].\n")
        token = secrets.token_hex(3)
        for i in range(1, self.size + 1):
            home = self.base / f"node{i}"
            home.mkdir()
            node = Node(f"rome-{token}-{i}@localhost", free_port(), free_port(), home)
            (home / "rabbitmq.conf").write_text(
                f"listeners.tcp.local = 127.0.0.1:{node.port}\n"
                # A node that finds itself on the minority side of a partition
                # pauses instead of serving a split cluster (RabbitMQ docs,
                # partitions#automatic-handling).
                "cluster_partition_handling = pause_minority\n"
                "log.console = true\nlog.console.level = info\nlog.file = false\n"
            )
            self.nodes.append(node)
        for node in self.nodes:
            self._launch(node)
        for node in self.nodes:
            self.await_node(node)
        first = self.nodes[0]
        for node in self.nodes[1:]:
            # 3.10: a node joins only from a stopped, reset application.
            self.ctl(node, "stop_app")
            self.ctl(node, "reset")
            self.ctl(node, "join_cluster", first.name)
            self.ctl(node, "start_app")
        running = self.running_nodes()
        if running != {n.name for n in self.nodes}:
            raise RuntimeError(f"cluster formed with {running} only")

    def _launch(self, node: Node) -> None:
        log = open(node.home / "server.log", "ab")
        node.launcher = subprocess.Popen(
            [str(RABBITMQ_BIN / "rabbitmq-server")], env=self.env(node), cwd=node.home,
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, preexec_fn=_die_with_parent,
        )
        log.close()

    def await_node(self, node: Node, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if not node.running():
                raise RuntimeError(f"{node.name} exited: {self.log(node)[-2000:]}")
            try:
                done = self.ctl(node, "await_startup", "--timeout", "10", check=False,
                                timeout=30)
            except subprocess.TimeoutExpired as exc:  # rabbitmqctl itself slow, on a busy machine
                done = subprocess.CompletedProcess(exc.cmd, 1, "", f"timed out: {exc}")
            if done.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{node.name} did not start: {done.stderr}")
            time.sleep(0.5)

    def running_nodes(self, via: Node | None = None) -> set[str]:
        via = via or next(n for n in self.nodes if n.running() and not n.frozen)
        status = json.loads(self.ctl(via, "cluster_status", "--formatter", "json").stdout)
        return set(status["running_nodes"])

    def log(self, node: Node) -> str:
        return (node.home / "server.log").read_text(errors="replace")

    # -- faults ---------------------------------------------------------------

    def kill9(self, node: Node) -> None:
        """Kill the node's Erlang VM with SIGKILL and wait until it is gone."""
        os.kill(node.pid, signal.SIGKILL)
        node.launcher.wait(30)

    def stop(self, node: Node) -> None:
        """Stop the node cleanly (rabbitmqctl stop) and wait until it is gone."""
        self.ctl(node, "stop", timeout=120)
        node.launcher.wait(60)

    def restart(self, *nodes: Node) -> None:
        """Start stopped or killed nodes again, on their data; they rejoin the cluster."""
        for node in nodes:
            assert not node.running(), f"{node.name} is still running"
            self._launch(node)
        for node in nodes:
            self.await_node(node, timeout=180)

    def freeze(self, node: Node) -> None:
        os.kill(node.pid, signal.SIGSTOP)
        node.frozen = True

    def thaw(self, node: Node) -> None:
        os.kill(node.pid, signal.SIGCONT)
        node.frozen = False

    # -- queues ---------------------------------------------------------------

    def add_vhost(self, vhost: str) -> None:
        node = self.nodes[0]
        self.ctl(node, "add_vhost", vhost)
        self.ctl(node, "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")

    def delete_vhost(self, vhost: str) -> None:
        self.ctl(self.nodes[0], "delete_vhost", vhost, timeout=120)

    def leader(self, vhost: str, queue: str, via: Node) -> str | None:
        """The node leading a quorum queue, as via's own replica of it knows.

        A local query of the replica on via: unlike list_queues, it answers
        while another member is stalled (SIGSTOP), which a cluster-wide query
        would wait on. Quorum queue replicas are named <vhost>_<queue>.
        """
        done = self.ctl(via, "eval", f"{{ok, _, Leader}} = ra:local_query("
                        f"{{'{vhost}_{queue}', node()}}, fun(_) -> ok end), "
                        "case Leader of {_, Node} -> Node; _ -> none end.", timeout=30)
        leader = done.stdout.strip().strip("'")
        return None if leader == "none" else leader

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    def close(self) -> None:
        for node in self.nodes:
            if node.launcher is None:
                continue
            for sig in (signal.SIGCONT, signal.SIGKILL):
                try:
                    os.killpg(node.launcher.pid, sig)
                except ProcessLookupError:
                    pass
            node.launcher.wait()
        shutil.rmtree(self.base, ignore_errors=True)
