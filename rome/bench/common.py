"""What the benchmarks share: worker and web processes, waiting for a final state, publishing.

Workers and the web app are started as processes (`celery -A workers worker`,
gunicorn), as Rome runs them; what the bench asks of the Celery app itself
(publishing, pinging, purging) goes through rome.ops.seam.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func, select

from rome.feeds.catalog import feed_format
from rome.feeds.formats import parse_feed
from rome.feeds.inject import Message
from rome.feeds.snapshot import Snapshot
from rome.ops import seam
from rome.store import db
from rome.store.audit import tallies_by_key
from rome.store.models import TallyRow

CELERY = [sys.executable, "-m", "celery", "-A", "workers"]
# The task of the plain baseline (workers/naive.py), loaded by the bench's workers only.
PLAIN_TASK = "rome.bench.plain_count"
PLAIN_TASK_MODULE = "workers.naive"


class BenchError(RuntimeError):
    """The benchmark cannot run as asked; the message says why."""


def bench_env() -> dict[str, str]:
    """Return the environment the bench's processes run in."""
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


def unsigned_env(env: dict[str, str]) -> dict[str, str]:
    """The environment of workers that accept plain JSON, to measure what signing costs.
    Signing off is a development setting (rome/settings.py): these workers only."""
    return {**env, "ROME_ENV": "development", "ROME_MESSAGE_SIGNING": "off"}


def free_port() -> int:
    """Return a TCP port free on the loopback interface now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    """Return the q-th percentile of values (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def rss_mb(pid: int) -> float:
    """Return a process's resident memory in MB (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def descendants(pid: int) -> set[int]:
    """Return the pids of every live process below pid."""
    found, frontier = set(), {pid}
    while frontier:
        children = set()
        for p in frontier:
            try:
                tasks = Path(f"/proc/{p}/task").iterdir()
                for task in tasks:
                    children.update(int(c) for c in (task / "children").read_text().split())
            except OSError:
                continue
        children -= found
        found |= children
        frontier = children
    return found


@dataclass
class Workers:
    """Rome's workers for the benchmark, with a sampler of their peak memory."""

    env: dict
    log_path: Path
    concurrency: int = 2
    # One process per (name, queues, pool size); by default one for both queues.
    specs: list[tuple[str, str, int]] = field(default_factory=list)
    procs: list[subprocess.Popen] = field(default_factory=list)
    rss_max_mb: float = 0.0
    rss_by_name: dict[str, float] = field(default_factory=dict)  # each spec's peak process
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        self.specs = self.specs or [("bench", "notekeeper,caesar", self.concurrency)]
        log = open(self.log_path, "ab")
        for name, queues, concurrency in self.specs:
            # -I: the plain baseline's task, which Rome's own workers do not load.
            argv = [*CELERY, "worker", "-Q", queues, "-n", f"{name}@%h", "-c",
                    str(concurrency), "-l", "warning", "--without-gossip", "--without-mingle",
                    "-I", PLAIN_TASK_MODULE]
            self.procs.append(subprocess.Popen(argv, env=self.env, stdout=log,
                                               stderr=subprocess.STDOUT,
                                               start_new_session=True))
        log.close()
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self) -> None:
        while not self._stop.wait(0.25):
            for (name, *_), proc in zip(self.specs, self.procs, strict=False):
                for pid in {proc.pid, *descendants(proc.pid)}:
                    rss = rss_mb(pid)
                    self.rss_max_mb = max(self.rss_max_mb, rss)
                    self.rss_by_name[name] = max(self.rss_by_name.get(name, 0.0), rss)

    def stop(self) -> None:
        self._stop.set()
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


class Web:
    """The web app under gunicorn on a free loopback port (by default as rome demo and
    compose run it: web/gunicorn_conf.py)."""

    def __init__(self, env: dict, log_path: Path,
                 gunicorn_args: tuple[str, ...] = ("-c", "python:web.gunicorn_conf")):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        log = open(log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-b", f"127.0.0.1:{self.port}", *gunicorn_args,
             "web:create_app()"],
            env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
        log.close()

    def wait(self, timeout: float = 30) -> None:
        """Return once /livez answers; raise BenchError if it does not in time."""
        import requests

        deadline = time.monotonic() + timeout
        while True:
            try:
                requests.get(self.base + "/livez", timeout=2).raise_for_status()
                return
            except requests.RequestException:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise BenchError("the web app did not start") from None
                time.sleep(0.2)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def wait_ready(app, names: list[str], timeout: float = 60) -> None:
    """Wait until every worker (by its name before the @) answers a ping."""
    deadline, answered = time.monotonic() + timeout, set()
    while time.monotonic() < deadline:
        replies = app.control.ping(timeout=1.0) or []
        answered = {name.split("@")[0] for reply in replies for name in reply}
        if set(names) <= answered:
            return
    raise BenchError(f"workers did not start: {sorted(set(names) - answered)}")


def require_empty(database: db.Database, wipe: bool) -> None:
    """Refuse to run on a database holding tallies unless told it may erase them."""
    if total_votes(database) and not wipe:
        raise BenchError("the database holds tallies: rerun with --wipe to let bench erase them")


def total_votes(database: db.Database) -> int:
    with database.Session() as session:
        return int(session.scalar(select(func.coalesce(func.sum(TallyRow.votes), 0))))


def expected_tallies(expectation: dict) -> dict:
    """Key a planned stream's expected tallies as rome.store.audit.tallies_by_key does."""
    return {(t["race"], t["source"], t["candidate"], t["vote_type"], t["rank"]): t["votes"]
            for t in expectation["tallies"]}


def wait_state(database: db.Database, expected: dict, timeout: float, progress=None) -> float:
    """Wait until the tallies are exactly the expected final state; return when that was seen."""
    target = sum(expected.values())
    deadline = time.monotonic() + timeout
    while True:
        votes = total_votes(database)
        if progress:
            progress.update(min(votes, target) * progress.total // max(target, 1))
        if votes == target:
            with database.Session() as session:
                if tallies_by_key(session) == expected:
                    return time.monotonic()
        if time.monotonic() > deadline:
            raise BenchError(f"final state not reached after {timeout:.0f}s "
                             f"({votes} of {target} votes)")
        time.sleep(0.02)


def purge_queues() -> None:
    """Empty Rome's work queues on the broker: what an earlier run left is not this run's."""
    app = seam.celery_app()
    with app.connection_for_write() as conn:
        for name in seam.queue_names():
            try:
                # The queue's name on the broker (on RabbitMQ, "<name>.quorum").
                conn.default_channel.queue_purge(app.amqp.queues[name].name)
            except Exception:  # a queue not declared yet holds nothing to purge
                pass


def publish_all(messages: list[Message], signed: bool = True) -> None:
    """Publish messages to notekeeper, each confirmed by the broker (signed, or plain JSON)."""
    for message in messages:
        if not seam.publish_confirmed(message, signed):
            raise BenchError("the broker did not confirm a message")


def start_publishers(publish: Callable, items: list, threads: int) -> list[threading.Thread]:
    """Publish items with publish(item) from `threads` threads, each taking every n-th."""
    publishers = [threading.Thread(target=lambda part: [publish(item) for item in part],
                                   args=(items[i::threads],)) for i in range(threads)]
    for publisher in publishers:
        publisher.start()
    return publishers


def parse_message(message: Message) -> Snapshot:
    """Parse a planned message as notekeeper does."""
    return parse_feed(feed_format(message.source, message.format), message.body,
                      source=message.source, version=message.version)
