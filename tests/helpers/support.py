"""Start real Rome processes for integration tests, and make sure they all end."""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from http.client import HTTPConnection
from pathlib import Path

CELERY = [sys.executable, "-m", "celery", "-A", "workers"]
QUEUES = ["elections_ap", "elections_mc", "elections_sos", "notekeeper", "caesar"]
ALL_QUEUES = ",".join(QUEUES)


def task_message(name: str, args: list, kwargs: dict | None = None) -> dict:
    """Build a Celery protocol 2 message for task name, as any client could publish it."""
    import uuid

    task_id = str(uuid.uuid4())
    return {
        "body": [args, kwargs or {}, {"callbacks": None, "errbacks": None, "chain": None,
                                      "chord": None}],
        "headers": {"lang": "py", "task": name, "id": task_id, "root_id": task_id,
                    "retries": 0, "argsrepr": repr(args), "kwargsrepr": "{}"},
    }


def publish_signed(producer, message: dict, ring, **options) -> None:
    """Publish a task_message signed with ring (rome.ops.message_keys.Keyring), as Rome would."""
    import json

    from workers.signing import CONTENT_TYPE

    producer.publish(ring.sign(json.dumps(message["body"]).encode()), content_type=CONTENT_TYPE,
                     content_encoding="binary", headers=message["headers"], **options)


def reset_queues(url: str) -> None:
    """Delete Rome's queues (quorum and classic) so workers declare them afresh."""
    from kombu import Connection

    from workers.queues import classic_topology, quorum_topology

    with Connection(url) as conn:
        channel = conn.channel()
        for topology in (quorum_topology(), classic_topology()):
            for queue in [*topology.work, topology.dead, topology.record]:
                if queue is not None:
                    channel.queue_delete(queue.name)


def queue_depth(url: str, name: str) -> int:
    """Count the messages waiting in queue name on the broker at url."""
    from kombu import Connection

    with Connection(url) as conn:
        return conn.channel().queue_declare(name, passive=True).message_count


def session_members(sids: set[int]) -> set[int]:
    """Return the pids of every live process whose session is one of sids."""
    members = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        state, session = fields[0], int(fields[3])
        if session in sids and state != "Z":
            members.add(int(entry.name))
    return members


def wait_for(condition, timeout: float, interval: float = 0.2, what: str = "condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def port_is_free(port: int) -> bool:
    """Whether nothing listens on the port, on any address of this machine."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("0.0.0.0", port))
        except OSError:
            return False
        return True


def http(url: str, method: str = "GET", auth: str | None = None, accept: str | None = None,
         headers: dict[str, str] | None = None, timeout: float = 10, data: bytes | None = None):
    """Return (status, body) of one request; (None, b"") when nothing answers."""
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if auth:
        token = base64.b64encode(auth.encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    if accept:
        request.add_header("Accept", accept)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return None, b""


def get(url: str, auth: str | None = None, accept: str | None = None, timeout: float = 10):
    return http(url, auth=auth, accept=accept, timeout=timeout)


def get_raw(port: int, path: str, headers: dict[str, str] | None = None, timeout: float = 10):
    """(status, headers, body) of one GET to 127.0.0.1:port, a 304 included (urllib raises
    at one), the body as sent (gzip not undone)."""
    connection = HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


class Processes:
    """A set of child processes, each in its own session, logging to files."""

    def __init__(self, env: dict[str, str], log_dir: Path):
        # This machine's test broker logs in as guest:guest, which Rome refuses outside
        # development; a test that wants production says so in env.
        self.env = {**os.environ, "ROME_ENV": "development", **env, "PYTHONUNBUFFERED": "1"}
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, argv: list[str],
              env: dict[str, str] | None = None) -> subprocess.Popen:
        """Start argv as name, with env added to this set's environment."""
        log = open(self.log_dir / f"{name}.log", "ab")
        proc = subprocess.Popen(
            argv, env={**self.env, **(env or {})}, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
        log.close()
        self.procs[name] = proc
        return proc

    def worker(self, name: str = "worker", queues: str = ALL_QUEUES, concurrency: int = 2):
        return self.start(name, [*CELERY, "worker", "-Q", queues, "-n", f"{name}@%h",
                                 "-c", str(concurrency), "-l", "info"])

    def beat(self, name: str = "beat"):
        schedule = self.log_dir / f"{name}-schedule"
        return self.start(name, [*CELERY, "beat", "-s", str(schedule), "-l", "info"])

    def log(self, name: str) -> str:
        return (self.log_dir / f"{name}.log").read_text(errors="replace")

    def run(self, argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=timeout)

    def stop(self, name: str | None = None, grace: float = 15) -> None:
        procs = [self.procs[name]] if name else list(self.procs.values())
        for proc in procs:
            # The main process only: it stops its own children (see rome/ops/demo.py).
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()


def rome_processes(tmp_path: Path, database_url: str, broker_url: str) -> Processes:
    """Return Processes run with Rome's database, broker and a data folder under tmp_path."""
    return Processes({"ROME_DATABASE_URL": database_url, "ROME_BROKER_URL": broker_url,
                      "ROME_DATA_DIR": str(tmp_path / "data")}, tmp_path)


def migrated_pipeline(request, env: dict[str, str], log_dir: Path) -> Processes:
    """Processes on the embedded broker and database, or (a "rabbitmq+postgresql" param) on
    the real ones with fresh queues; the database migrated."""
    import sys

    if request.param != "embedded":
        env["ROME_DATABASE_URL"] = request.getfixturevalue("pg_url")
        env["ROME_BROKER_URL"] = request.getfixturevalue("amqp_url")
        reset_queues(env["ROME_BROKER_URL"])
    processes = Processes(env, log_dir)
    upgraded = processes.run([sys.executable, "-m", "rome", "db", "upgrade"])
    assert upgraded.returncode == 0, upgraded.stderr
    return processes


class CountingProxy:
    """A TCP relay to (host, port) on a free local port that counts the connections made
    (`connections`) and those still open (`open`)."""

    def __init__(self, host: str, port: int):
        import threading

        self.upstream = (host, port)
        self.connections = 0
        self.open = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        import threading

        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:  # closed
                return
            with self._lock:
                self.connections += 1
                self.open += 1
            server = socket.create_connection(self.upstream)
            for source, sink, ends in ((client, server, True), (server, client, False)):
                threading.Thread(target=self._pump, args=(source, sink, ends),
                                 daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, ends: bool) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if ends:  # the client's side: the connection is over
            with self._lock:
                self.open -= 1
            for sock in (source, sink):
                sock.close()

    def close(self) -> None:
        self._listener.close()
