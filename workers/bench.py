"""`rome bench`: measure ingest end to end against two baselines, in one run.

Prints one JSON line at the end (and a progress line on a terminal):

- copy_rows_per_s: COPY of the same rows into scratch tables of the same
  PostgreSQL, with the same dedup (ledger insert ON CONFLICT DO NOTHING) and
  aggregate (tally upsert) step: the ceiling.
- naive_updates_per_s: one Celery message per update, notekeeper and caesar.
- rome_updates_per_s: Rome's batched path, published -> committed.
- freshness_ms_p50 / p99: at a steady offered load, emit -> visible in
  GET /api/races.
- worker_rss_mb_max: peak resident memory of any worker process.
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func, select

from rome import db
from rome.inject import Message, plan_stream
from rome.models import TallyRow
from rome.normalize import normalize
from rome.settings import Settings
from rome.tally import APPLY_TEMPLATE, STAGE_TEMPLATE, copy_text, wipeout
from workers import QUEUES, app
from workers.publish import Progress, publish_confirmed

CELERY = [sys.executable, "-m", "celery", "-A", "workers"]


class BenchError(RuntimeError):
    """The benchmark cannot run as asked; the message says why."""


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _descendants(pid: int) -> set[int]:
    found, frontier = set(), {pid}
    while frontier:
        children = set()
        for p in frontier:
            try:
                tasks = Path(f"/proc/{p}/task").iterdir()
                for task in tasks:
                    text_ = (task / "children").read_text().split()
                    children.update(int(c) for c in text_)
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
    procs: list[subprocess.Popen] = field(default_factory=list)
    rss_max_mb: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        log = open(self.log_path, "ab")
        argv = [*CELERY, "worker", "-Q", "notekeeper,caesar", "-n", "bench@%h",
                "-c", str(self.concurrency), "-l", "warning", "--without-gossip",
                "--without-mingle"]
        self.procs.append(subprocess.Popen(argv, env=self.env, stdout=log,
                                           stderr=subprocess.STDOUT, start_new_session=True))
        log.close()
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self) -> None:
        while not self._stop.wait(0.25):
            for proc in self.procs:
                for pid in {proc.pid, *_descendants(proc.pid)}:
                    self.rss_max_mb = max(self.rss_max_mb, _rss_mb(pid))

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


def _applied(database: db.Database) -> int:
    with database.Session() as session:
        return int(session.scalar(select(func.coalesce(func.sum(TallyRow.updates), 0))))


def _wait_applied(database: db.Database, target: int, timeout: float, progress=None) -> float:
    """Wait until target updates are in the tallies; return when that was seen."""
    deadline = time.monotonic() + timeout
    while True:
        applied = _applied(database)
        if progress:
            progress.update(applied)
        if applied >= target:
            return time.monotonic()
        if time.monotonic() > deadline:
            raise BenchError(f"only {applied} of {target} updates applied after {timeout:.0f}s")
        time.sleep(0.02)


def _purge() -> None:
    with app.connection_for_write() as conn:
        for name in QUEUES:
            try:
                # The queue's name on the broker (on RabbitMQ, "<name>.quorum").
                conn.default_channel.queue_purge(app.amqp.queues[name].name)
            except Exception:  # a queue not declared yet holds nothing to purge
                pass


def _publish_all(messages: list[Message]) -> None:
    for message in messages:
        if not publish_confirmed(message):
            raise BenchError("the broker did not confirm a message")


def measure_pipeline(database, messages: list[Message], updates: int, label: str,
                     timeout: float = 900) -> float:
    """Publish messages and return updates per second, published -> committed."""
    with database.Session.begin() as session:
        wipeout(session)
    progress = Progress(updates)
    sys.stderr.write(f"{label}: {updates} updates in {len(messages)} messages\n")
    started = time.monotonic()
    publisher = threading.Thread(target=_publish_all, args=(messages,))
    publisher.start()
    done = _wait_applied(database, updates, timeout, progress)
    publisher.join()
    progress.update(updates, final=True)
    return updates / (done - started)


# -- the COPY ceiling ----------------------------------------------------------

SCRATCH_TABLES = {"ledger": "bench_ledger", "tallies": "bench_tallies", "stage": "bench_stage"}
SCRATCH = """
DROP TABLE IF EXISTS bench_ledger, bench_tallies;
CREATE TABLE bench_ledger (LIKE ledger INCLUDING ALL);
CREATE TABLE bench_tallies (LIKE tallies INCLUDING ALL);
"""


def _copy_text(messages: list[Message]) -> list[str]:
    """Render each message's updates as COPY text: the rows Rome's path would write."""
    return [copy_text(sorted(normalize(m.source, m.body), key=lambda u: u.id))
            for m in messages]


def measure_copy(database, messages: list[Message], updates: int) -> float | None:
    """COPY the rows in chunks of one message each; return rows per second."""
    if database.dialect != "postgresql":
        return None
    chunks = _copy_text(messages)  # rendering is not part of the ceiling
    raw = database.engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute(SCRATCH)
        raw.commit()
        # The same staging table and statement as rome.tally, on scratch tables.
        stage = STAGE_TEMPLATE.format(**SCRATCH_TABLES)
        apply = APPLY_TEMPLATE.format(**SCRATCH_TABLES)
        started = time.monotonic()
        for chunk in chunks:
            cursor.execute(stage)
            cursor.copy_expert("COPY bench_stage FROM STDIN", io.StringIO(chunk))
            cursor.execute(apply)
            raw.commit()
        elapsed = time.monotonic() - started
        cursor.execute("SELECT sum(updates) FROM bench_tallies")
        counted = cursor.fetchone()[0]
        if counted != updates:
            raise BenchError(f"COPY baseline counted {counted} of {updates} rows")
        cursor.execute("DROP TABLE bench_ledger, bench_tallies")
        raw.commit()
    finally:
        raw.close()
    return updates / elapsed


# -- where the time goes --------------------------------------------------------

def measure_stages(database, messages: list[Message]) -> dict[str, float]:
    """Time each step one batch takes in the workers, in microseconds per update (medians)."""
    from rome.tally import record_updates
    from rome.updates import Update

    stages: dict[str, list[float]] = {k: [] for k in
                                      ("normalize", "encode", "decode", "apply")}
    with database.Session.begin() as session:
        wipeout(session)
    for message in messages[:20]:
        t0 = time.perf_counter()
        updates = normalize(message.source, message.body)
        t1 = time.perf_counter()
        wire = json.dumps([u.to_wire() for u in updates])
        t2 = time.perf_counter()
        decoded = [Update.from_wire(row) for row in json.loads(wire)]
        t3 = time.perf_counter()
        with database.Session.begin() as session:
            record_updates(session, decoded)
        t4 = time.perf_counter()
        n = len(updates)
        for key, seconds in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            stages[key].append(seconds * 1e6 / n)
    return {key: round(statistics.median(values), 2) for key, values in stages.items()}


# -- freshness -------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure_freshness(database, env: dict, seconds: float, rate: float, batch: int,
                      log_path: Path) -> list[float]:
    """Offer rate updates/s for seconds; return emit -> visible delays in ms.

    A message counts as visible at the first poll of GET /api/races whose
    applied-update count reaches the count emitted up to and including it.
    """
    import requests

    with database.Session.begin() as session:
        wipeout(session)
    port = _free_port()
    log = open(log_path, "ab")
    web = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-w", "2", "-b", f"127.0.0.1:{port}",
         "web:create_app()"], env=env, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True)
    log.close()
    url = f"http://127.0.0.1:{port}/api/races"
    http = requests.Session()
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                http.get(url, timeout=2).raise_for_status()
                break
            except requests.RequestException:
                if time.monotonic() > deadline:
                    raise BenchError("the web app did not start") from None
                time.sleep(0.2)
        updates = int(seconds * rate)
        messages, _ = plan_stream(updates, batch=batch, seed="freshness",
                                  first_tick=time.time_ns() // 10**6)
        emitted: list[tuple[float, int]] = []  # (time, cumulative updates)
        seen: list[tuple[float, int]] = []
        stop = threading.Event()

        def poll():
            while not stop.is_set():
                races = http.get(url, timeout=5).json()["races"]
                applied = sum(s["updates"] for r in races for s in r["sources"])
                seen.append((time.monotonic(), applied))
                time.sleep(0.005)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        started, total = time.monotonic(), 0
        progress = Progress(updates)
        for message in messages:
            at = time.monotonic()
            if not publish_confirmed(message):
                raise BenchError("the broker did not confirm a message")
            total += message.updates
            emitted.append((at, total))
            progress.update(total)
            ahead = total / rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
        progress.update(total, final=True)
        _wait_applied(database, updates, 120)
        time.sleep(0.1)
        stop.set()
        poller.join(10)
    finally:
        web.send_signal(signal.SIGTERM)
        web.wait(30)
    delays, i = [], 0
    for at, cumulative in emitted:
        while i < len(seen) and (seen[i][0] < at or seen[i][1] < cumulative):
            i += 1
        if i == len(seen):
            raise BenchError("a message never became visible")
        delays.append((seen[i][0] - at) * 1000)
    return delays


def _round(value: float | None) -> int | None:
    return None if value is None else round(value)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


# -- the whole run ---------------------------------------------------------------

def run_bench(settings: Settings, *, updates: int, naive_updates: int, batch: int,
              sweep: list[int], freshness_seconds: float, freshness_rate: float,
              freshness_batch: int, concurrency: int, plot_dir: Path | None,
              wipe: bool) -> dict:
    """Run every measurement in one go and return the figures."""
    database = db.prepare(settings.database_url)
    if _applied(database) and not wipe:
        raise BenchError("the database holds tallies: rerun with --wipe to let bench erase them")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    log_dir = settings.data_dir
    log_dir.mkdir(parents=True, exist_ok=True)
    _purge()
    workers = Workers(env, log_dir / "bench-worker.log", concurrency)
    workers.start()
    try:
        time.sleep(3)  # let the worker connect before the clock starts
        seed = {"seed": "bench"}
        messages, _ = plan_stream(updates, batch=batch, first_tick=1, **seed)
        copy = measure_copy(database, messages, updates)
        stages = measure_stages(database, messages)
        rome = measure_pipeline(database, messages, updates, f"rome batch={batch}")
        naive_messages, _ = plan_stream(naive_updates, batch=1, first_tick=1, **seed)
        naive = measure_pipeline(database, naive_messages, naive_updates, "naive")
        by_batch = []
        for size in sweep:
            n = min(updates, max(size * 40, 2000))
            sized, _ = plan_stream(n, batch=size, first_tick=1, **seed)
            by_batch.append({
                "batch": size,
                "copy_rows_per_s": _round(measure_copy(database, sized, n)),
                "rome_updates_per_s": _round(
                    measure_pipeline(database, sized, n, f"sweep batch={size}")),
            })
        delays = measure_freshness(database, env, freshness_seconds, freshness_rate,
                                   freshness_batch, log_dir / "bench-web.log")
    finally:
        workers.stop()
        with database.Session.begin() as session:
            wipeout(session)
    result = {
        "broker": settings.broker_url.split("://")[0],
        "database": database.dialect,
        "updates": updates,
        "batch": batch,
        "worker_concurrency": concurrency,
        "copy_rows_per_s": round(copy) if copy else None,
        "naive_updates_per_s": round(naive),
        "rome_updates_per_s": round(rome),
        "freshness_rate_per_s": freshness_rate,
        "freshness_ms_p50": round(percentile(delays, 50), 1),
        "freshness_ms_p99": round(percentile(delays, 99), 1),
        "freshness_ms_mean": round(statistics.fmean(delays), 1),
        "worker_rss_mb_max": round(workers.rss_max_mb, 1),
        "rome/naive": round(rome / naive, 1),
        "rome/copy": round(rome / copy, 3) if copy else None,
        "stage_us_per_update": stages,
        "by_batch": by_batch,
    }
    if plot_dir is not None:
        from workers.bench_plots import plot_batches, plot_freshness

        plot_dir.mkdir(parents=True, exist_ok=True)
        plot_batches(by_batch, naive, plot_dir / "throughput-by-batch.png")
        plot_freshness(delays, freshness_rate, plot_dir / "freshness.png")
    return result


def main(settings: Settings, args) -> int:
    try:
        result = run_bench(
            settings, updates=args.updates, naive_updates=args.naive_updates,
            batch=args.batch, sweep=args.sweep, freshness_seconds=args.freshness_seconds,
            freshness_rate=args.freshness_rate, freshness_batch=args.freshness_batch,
            concurrency=args.concurrency, plot_dir=args.plots, wipe=args.wipe,
        )
    except BenchError as exc:
        print(f"rome bench: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0

