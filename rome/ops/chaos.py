"""`rome chaos`: the whole pipeline under seeded, combined, random faults, then checked exactly.

Rome's two workers and beat run on a three-node RabbitMQ cluster of their own
(rome/ops/rabbit_nodes.py) and a PostgreSQL server of their own
(rome/ops/postgres_node.py), so nothing here touches the machine's services.
The pipeline is fed as on a real night, by polling: a feed server started
here (rome/feeds/feedserver.py) serves the simulated night and recorded real
files (`--recorded FORMAT:PATH`, moved to their next version every 10 s), and
beat polls every feed it serves (ROME_SOURCES), each body archived and sent on
as its claim check; a bad file is published now and then beside them, to be
rejected. Every 10 to 30 s a seeded schedule injects one fault, healed before
the next:

- `worker_main`: SIGKILL of a worker's main process (its pool goes with it), restarted;
- `pool_child`: SIGKILL of one pool process (Celery starts another);
- `rabbit_kill`: SIGKILL of a RabbitMQ node, the leader of caesar's queue and
  a follower in turn, restarted 5 to 10 s later;
- `rabbit_stop`: SIGSTOP of a node for 15 s;
- `pg_restart`: PostgreSQL restarted with `pg_ctl restart -m fast`;
- `pg_kill`: SIGKILL of the postmaster, then a start (crash recovery);
- `beat_kill`: SIGKILL of beat, restarted 2 to 5 s later;
- `feed_stall`: one feed's endpoint stalls (the feed server's slow fault) for
  15 to 30 s: its polls time out at their deadline and it falls behind.

The first round of faults takes every kind once, in a seeded order; so does
each round after it. At the end the polls go on for a fault-free settling
time (a lease held by a killed poll expires, the source is polled again), then
stop; the queues drain, and the run checks what it promises:

- `rome audit` holds (current, tallies and series agree with the history);
- the final state equals a fault-free replay of the same input: every body
  the polls fetched, read from the archive's journal in fetch order and
  applied in process into a second database, compared count for count (race,
  source, candidate, vote type, rank);
- every dead letter of the pipeline's work has its `rejected` row. A poll
  that expired (a worker busy or gone when it came due) or was dead-lettered
  carries no data: the next poll asks the feed again. Those are counted apart.

It prints each fault with its time and the pause it caused (the longest time
from the fault on without a caesar commit, read from the workers' logs), and
a summary: faults by kind, the longest pause, counts lost and doubled.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

from rome.feeds.feedserver import FeedServer
from rome.ops.demo import CELERY
from rome.ops.postgres_node import PostgresNode
from rome.ops.rabbit_nodes import RabbitCluster
from rome.ops.supervisor import children_of
from rome.settings import load_settings

KINDS = ("worker_main", "pool_child", "rabbit_kill", "rabbit_stop", "pg_restart", "pg_kill",
         "beat_kill", "feed_stall")
VHOST = "rome"
ROME = [sys.executable, "-m", "rome"]
QUEUES = "poll,notekeeper,caesar"
POLL_INTERVAL = 1.0  # seconds between polls of each feed
SETTLE = 30.0  # fault-free seconds of polling at the end: past a killed poll's lease
ADVANCE_EVERY = 10.0  # seconds between recorded feeds' versions
RECORDED_STEPS = 12  # versions each recorded file is served in
STAMP = r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})"
COMMITTED = re.compile(rf"^\[{STAMP}: [^\]]*\] event=recorded ", re.MULTILINE)
POLLED = re.compile(r"event=polled source=")
EXPIRED_POLL = re.compile(r"Discarding revoked task: rome\.poll\.run\[")
# A file no parser takes: its message is rejected with a reason, every round.
BAD_FILE = b'{"races": "not a list of races"}\n'


@dataclass
class Fault:
    kind: str
    at: float  # seconds since the run's start
    detail: str
    healed: float = 0.0  # seconds since the run's start
    pause: float = 0.0


@dataclass
class Summary:
    minutes: float
    seed: str
    faults: list[Fault] = field(default_factory=list)
    counts: int = 0  # counts in the final state
    lost: int = 0  # votes the fault-free replay has that the run does not
    doubled: int = 0  # votes the run has that the fault-free replay does not
    differing_keys: list[str] = field(default_factory=list)
    audit_problems: list[str] = field(default_factory=list)
    dead_letters: int = 0
    rejected: int = 0
    fetched: int = 0  # feed bodies the polls archived (the reference applies each)
    polls: int = 0  # polls run to the end
    polls_expired: int = 0  # polls dropped unrun, come due while no worker could take them
    polls_dead: int = 0  # poll messages dead-lettered: no data in them, none lost
    bad_published: int = 0
    commits: int = 0
    workdir: str = ""
    harness_errors: int = 0

    @property
    def by_kind(self) -> Counter:
        return Counter(f.kind for f in self.faults)

    @property
    def longest_pause(self) -> float:
        return max((f.pause for f in self.faults), default=0.0)

    @property
    def ok(self) -> bool:
        return (not self.lost and not self.doubled and not self.differing_keys
                and not self.audit_problems
                and self.rejected >= self.dead_letters - self.polls_dead
                and self.counts > 0 and self.fetched > 0)


def parse_stamp(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S,%f").timestamp()


def pauses(faults: list[Fault], commits: list[float], started: float, ended: float) -> None:
    """Set each fault's pause: the longest gap without a commit from the fault to the next one."""
    for i, fault in enumerate(faults):
        begin = started + fault.at
        end = started + faults[i + 1].at if i + 1 < len(faults) else ended
        times = [begin, *(t for t in commits if begin < t <= end)]
        if len(times) == 1:  # nothing committed at all until the next fault
            fault.pause = end - begin
            continue
        fault.pause = max(b - a for a, b in zip(times, times[1:], strict=False))


def fault_plan(seed: str, seconds: float, low: float = 10.0, high: float = 30.0
               ) -> list[tuple[float, str]]:
    """The seeded schedule: (seconds from the start, kind), every kind once per round."""
    rng = random.Random(f"chaos:{seed}")
    plan, at, bag = [], 0.0, []
    while True:
        at += rng.uniform(low, high)
        if at >= seconds:
            return plan
        if not bag:
            bag = list(KINDS)
            rng.shuffle(bag)
        plan.append((at, bag.pop()))


class Chaos:
    """The stack, the feeds, the faults and the checks of one run."""

    def __init__(self, minutes: float, seed: str, recorded: list[tuple[str, Path]],
                 out=None, workdir: Path | None = None, interval: float = POLL_INTERVAL,
                 port: int = 0):
        self.minutes, self.seed, self.recorded = minutes, seed, recorded
        self.port = port
        self.feeds: FeedServer | None = None
        self.out = out or sys.stdout
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="rome-chaos-"))
        self.interval = interval
        self.rng = random.Random(f"chaos-faults:{seed}")
        self.cluster = RabbitCluster(self.workdir / "rabbitmq")
        self.pg: PostgresNode | None = None
        self.procs: dict[str, subprocess.Popen] = {}
        self.env: dict[str, str] = {}
        self.stop_feeding = threading.Event()
        self.bad_published = 0
        self.rabbit_kills = 0
        self.started = 0.0

    # -- output ---------------------------------------------------------------

    def say(self, line: str) -> None:
        stamp = f"{time.time() - self.started:7.1f}s" if self.started else "  setup "
        self.out.write(f"{stamp}  {line}\n")
        self.out.flush()

    # -- processes ------------------------------------------------------------

    def broker_url(self, order: list[int]) -> str:
        return ";".join(self.cluster.nodes[i].url(VHOST) for i in order)

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        with open(self.workdir / f"{name}.log", "ab") as log:
            self.procs[name] = subprocess.Popen(
                argv, env={**self.env, **(env or {})}, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True)

    def start_worker(self, name: str) -> None:
        order = [0, 1, 2] if name == "worker1" else [1, 2, 0]
        self.start(name, [*CELERY, "worker", "-Q", QUEUES, "-n", f"{name}@%h", "-c", "2",
                          "-l", "info"], env={"ROME_BROKER_URL": self.broker_url(order)})

    def start_beat(self) -> None:
        self.start("beat", [*CELERY, "beat", "-s", str(self.workdir / "data" / "beat-schedule"),
                            "-l", "info"])

    def kill_group(self, name: str) -> None:
        proc = self.procs[name]
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()

    def stop_group(self, name: str, grace: float = 30) -> None:
        proc = self.procs[name]
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        self.kill_group(name)

    def log(self, name: str) -> str:
        try:
            return (self.workdir / f"{name}.log").read_text(errors="replace")
        except OSError:
            return ""

    def run_rome(self, *args: str, database: str = "rome", timeout: float = 300):
        env = {**self.env, "ROME_DATABASE_URL": self.pg.url(database)}
        return subprocess.run([*ROME, *args], env=env, capture_output=True, text=True,
                              timeout=timeout)

    # -- set up ---------------------------------------------------------------

    def set_up(self) -> None:
        self.say("starting a three-node RabbitMQ cluster and a private PostgreSQL")
        self.cluster.start()
        self.cluster.add_vhost(VHOST)
        self.pg = PostgresNode()
        self.pg.start(databases=("rome", "reference"))
        data = self.workdir / "data"
        data.mkdir(parents=True, exist_ok=True)
        by_format: dict[str, list[Path]] = {"ap": [], "clarity": [], "nist": []}
        for fmt, path in self.recorded:
            by_format[fmt].append(path)
        self.feeds = FeedServer(simulated=True, interval=self.interval, seed=self.seed,
                                steps=RECORDED_STEPS, port=self.port, **by_format)
        self.feeds.start()
        self.say(f"feed server at {self.feeds.base_url}: "
                 f"{', '.join(f['id'] for f in self.feeds.feeds())}")
        (self.workdir / "sources.toml").write_text(self.feeds.sources_toml(self.interval))
        self.env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "ROME_ENV": "development",
            "ROME_DATA_DIR": str(data),
            "ROME_DATABASE_URL": self.pg.url("rome"),
            "ROME_BROKER_URL": self.broker_url([0, 1, 2]),
            "ROME_SEED": self.seed,
            "ROME_SOURCE_INTERVAL": str(self.interval),
            "ROME_SOURCES": str(self.workdir / "sources.toml"),
            "ROME_LOG_FORMAT": "text",
            "ROME_REPORTING_UNITS": "40",
        }
        for database in ("rome", "reference"):
            done = self.run_rome("db", "upgrade", database=database)
            if done.returncode != 0:
                raise RuntimeError(f"rome db upgrade: {done.stdout}{done.stderr}")
        (self.workdir / "bad").mkdir(exist_ok=True)
        (self.workdir / "bad" / "broken.json").write_bytes(BAD_FILE)
        self.start_worker("worker1")
        self.start_worker("worker2")
        self.start_beat()

    def feed_recorded(self) -> None:
        """Move the recorded feeds on every ADVANCE_EVERY s, and publish a bad file now and
        then (it must be rejected with its reason), until told to stop."""
        rounds = 0
        while not self.stop_feeding.wait(ADVANCE_EVERY):
            self.feeds.advance()
            rounds += 1
            if rounds % 3:
                continue
            done = subprocess.run([*ROME, "replay", "--source", "chaosbad", "--format", "ap",
                                   str(self.workdir / "bad")], env=self.env,
                                  capture_output=True, text=True, timeout=300)
            if done.returncode == 0:
                self.bad_published += 1
            else:
                self.say(f"publishing the bad file failed (a fault?): {done.stderr[-300:]}")

    # -- faults ---------------------------------------------------------------

    def inject(self, kind: str) -> str:
        rng = self.rng
        if kind == "worker_main":
            name = rng.choice(["worker1", "worker2"])
            pid = self.procs[name].pid
            os.kill(pid, signal.SIGKILL)
            time.sleep(1)  # as a crashed container would, its pool goes too
            self.kill_group(name)
            self.start_worker(name)
            return f"{name} main process {pid}"
        if kind == "pool_child":
            name = rng.choice(["worker1", "worker2"])
            children = sorted(children_of(self.procs[name].pid))
            if not children:
                return f"{name} had no pool process to kill"
            pid = rng.choice(children)
            os.kill(pid, signal.SIGKILL)
            return f"{name} pool process {pid}"
        if kind in ("rabbit_kill", "rabbit_stop"):
            live = [n for n in self.cluster.nodes if n.running() and not n.frozen]
            leader = self.cluster.leader(VHOST, "caesar.quorum", via=live[0])
            if kind == "rabbit_kill":  # the leader and a follower in turn: both are killed
                self.rabbit_kills += 1
                followers = [n for n in self.cluster.nodes if n.name != leader]
                node = (next((n for n in self.cluster.nodes if n.name == leader), None)
                        if self.rabbit_kills % 2 else None) or rng.choice(followers)
            else:
                node = rng.choice(self.cluster.nodes)
            role = "leader" if node.name == leader else "follower"
            if kind == "rabbit_kill":
                self.cluster.kill9(node)
                time.sleep(rng.uniform(5, 10))
                self.cluster.restart(node)
                return f"{node.name} ({role} of caesar's queue), killed and restarted"
            self.cluster.freeze(node)
            time.sleep(15)
            self.cluster.thaw(node)
            return f"{node.name} ({role} of caesar's queue) stopped for 15 s"
        if kind == "pg_restart":
            self.pg.restart_fast()
            return "pg_ctl restart -m fast"
        if kind == "pg_kill":
            pid = self.pg.postmaster_pid()
            self.pg.kill9()
            self.pg.launch()
            return f"postmaster {pid} killed, crash recovery"
        if kind == "beat_kill":
            pid = self.procs["beat"].pid
            self.kill_group("beat")
            time.sleep(rng.uniform(2, 5))
            self.start_beat()
            return f"beat {pid} killed and restarted"
        if kind == "feed_stall":
            feed = rng.choice(self.feeds.feeds())
            path, seconds = urlsplit(feed["url"]).path, rng.uniform(15, 30)
            # Every request in the window waits (at most) the window out, then it is lifted.
            self.feeds.fault("slow", path, count=10_000, seconds=seconds)
            time.sleep(seconds)
            self.feeds.clear_faults(path)
            return f"feed {feed['id']} ({path}) stalled for {seconds:.0f} s"
        raise ValueError(f"unknown fault {kind!r}")

    def heal(self) -> None:
        """Bring every part back: nodes thawed and started, PostgreSQL, workers and beat."""
        for node in self.cluster.nodes:
            if node.frozen:
                self.cluster.thaw(node)
        down = [node for node in self.cluster.nodes if not node.running()]
        if down:
            self.cluster.restart(*down)
        if not self.pg.running():
            self.pg.launch()
        for name in ("worker1", "worker2"):
            if self.procs[name].poll() is not None:
                self.say(f"{name} was not running: started again")
                self.start_worker(name)
        if self.procs["beat"].poll() is not None:
            self.say("beat was not running: started again")
            self.start_beat()

    # -- the end --------------------------------------------------------------

    def queue_depths(self) -> dict[str, int]:
        done = self.cluster.ctl(self.cluster.nodes[0], "list_queues", "-p", VHOST, "name",
                                "messages", "--no-table-headers", timeout=60)
        depths = {}
        for line in done.stdout.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1].isdigit():
                depths[parts[0]] = int(parts[1])
        return depths

    def drain(self, timeout: float = 300) -> int:
        """Wait until every work queue is empty (acked, not only delivered); return dead letters."""
        deadline, quiet = time.monotonic() + timeout, 0
        while time.monotonic() < deadline:
            depths = self.queue_depths()
            # Not the publish queue: chaos checks the tallies, and runs no publish worker, so
            # caesar's asks to publish wait there, unread.
            work = {q: n for q, n in depths.items()
                    if not q.startswith(("rome.dead", "publish"))}
            quiet = quiet + 1 if not any(work.values()) else 0
            if quiet >= 3:
                # rome.dead.record.quorum holds the same dead letters until recorded.
                return sum(n for q, n in depths.items()
                           if q.startswith("rome.dead") and not q.startswith("rome.dead.record"))
            time.sleep(2)
        raise RuntimeError(f"the queues did not drain: {depths}")

    def commits(self) -> list[float]:
        return sorted(parse_stamp(s) for name in ("worker1", "worker2")
                      for s in COMMITTED.findall(self.log(name)))

    def dead_tasks(self) -> dict[str, int]:
        """The task each dead letter carried, read without taking any of them."""
        from rome.ops.seam import dead_letter_tasks

        return dead_letter_tasks(self.cluster.nodes[0].url(VHOST),
                                 [q for q in self.queue_depths() if q.startswith("rome.dead")])

    def check(self, summary: Summary) -> None:
        from rome.ops.chaos_reference import compare_states, rebuild_reference

        summary.bad_published = self.bad_published
        logs = self.log("worker1") + self.log("worker2")
        summary.polls = len(POLLED.findall(logs))
        summary.polls_expired = len(EXPIRED_POLL.findall(logs))
        archive_dir = load_settings(self.env).archive_dir
        summary.fetched = rebuild_reference(archive_dir, self.pg.url("reference"))
        compare_states(self.pg.url("rome"), self.pg.url("reference"), summary)

    def run(self) -> Summary:
        summary = Summary(self.minutes, self.seed, workdir=str(self.workdir))
        feeder = threading.Thread(target=self.feed_recorded, daemon=True)
        try:
            self.set_up()
            self.started = time.time()
            feeder.start()
            seconds = self.minutes * 60
            for at, kind in fault_plan(self.seed, seconds):
                delay = self.started + at - time.time()
                if delay > 0:
                    time.sleep(delay)
                fault = Fault(kind, time.time() - self.started, "")
                try:
                    fault.detail = self.inject(kind)
                except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
                    # The harness's own step failed (rabbitmqctl slow on a busy machine, say):
                    # said, and healed below like any fault; a heal that fails ends the run.
                    fault.detail = f"{kind} interrupted: {type(exc).__name__}: {exc}"[:300]
                    summary.harness_errors += 1
                self.heal()
                fault.healed = time.time() - self.started
                summary.faults.append(fault)
                self.say(f"{kind:<11} {fault.detail}")
            remaining = self.started + seconds - time.time()
            if remaining > 0:
                time.sleep(remaining)
            self.heal()
            ended = time.time()
            self.say(f"faults stop; {SETTLE:g} s of polling without faults")
            self.stop_feeding.set()
            feeder.join(300)
            time.sleep(SETTLE)
            self.say("polls stop; waiting for the queues to drain")
            self.stop_group("beat")
            summary.dead_letters = self.drain()
            summary.polls_dead = self.dead_tasks().get("rome.poll.run", 0)
            commits = self.commits()
            summary.commits = len(commits)
            pauses(summary.faults, commits, self.started, ended)
            for name in ("worker1", "worker2"):
                self.stop_group(name)
            self.check(summary)
        finally:
            self.stop_feeding.set()
            for name in list(self.procs):
                self.kill_group(name)
            if self.feeds is not None:
                self.feeds.stop()
            self.cluster.close()
            if self.pg is not None:
                self.pg.close()
        return summary


def report(summary: Summary, out) -> None:
    out.write("\nfault        at (s)   pause (s)  detail\n")
    for f in summary.faults:
        out.write(f"{f.kind:<11} {f.at:8.1f}  {f.pause:9.1f}  {f.detail}\n")
    kinds = ", ".join(f"{k} {summary.by_kind.get(k, 0)}" for k in KINDS)
    out.write(f"\nchaos: {summary.minutes:g} min, seed {summary.seed}: {len(summary.faults)} "
              f"faults ({kinds})\n")
    out.write(f"longest pause {summary.longest_pause:.1f} s; {summary.commits} caesar commits; "
              f"{summary.polls} polls ({summary.polls_expired} more expired unrun, "
              f"{summary.polls_dead} dead-lettered), {summary.fetched} feed bodies fetched and "
              f"replayed for the reference; {summary.bad_published} bad files published\n")
    out.write(f"counts in the final state {summary.counts}: lost {summary.lost}, "
              f"doubled {summary.doubled}, differing {len(summary.differing_keys)}\n")
    out.write(f"audit: {'ok' if not summary.audit_problems else summary.audit_problems[:5]}\n")
    out.write(f"dead letters {summary.dead_letters} ({summary.polls_dead} of them polls), "
              f"rejected rows {summary.rejected}\n")
    if summary.harness_errors:
        out.write(f"fault steps interrupted by the harness: {summary.harness_errors}\n")
    out.write(f"logs: {summary.workdir}\n")
    out.write("chaos ok\n" if summary.ok else "chaos FAILED\n")

