"""`rome bench scale`: throughput with N caesar and N notekeeper processes, and who works.

For each N, starts N worker processes on caesar's queue and N on
notekeeper's (one pool child each, as `docker compose up --scale` runs
replicas), publishes the same stream as `rome bench` (counts in feed messages
of `batch`) and times it from the first publish to the final state. Around
each run it reads the CPU time every party used, from /proc: the notekeeper
and caesar processes, the PostgreSQL backends serving the bench's database,
the RabbitMQ node listening on the broker's port, and the bench itself
(publishing and polling). CPU microseconds per count, and each party's share
of the machine's cores, say where the time goes as N grows.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy import text

from rome.bench.common import (
    BenchError,
    Workers,
    descendants,
    expected_tallies,
    publish_all,
    purge_queues,
    require_empty,
    wait_ready,
    wait_state,
)
from rome.data_files import BENCH_LOG
from rome.feeds.inject import plan_stream
from rome.ops import seam
from rome.ops.progress import Progress
from rome.settings import Settings
from rome.store import db
from rome.store.tally import wipeout

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: set[int]) -> float:
    """Return the user + system CPU seconds the live processes in pids have used."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone: its time is lost, which only understates that party
        total += int(fields[11]) + int(fields[12])
    return total / TICKS


def listener_pid(port: int) -> int | None:
    """Return the pid of the process listening on a local TCP port (ss -ltnp), if any."""
    try:
        out = subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True,
                             text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    marker = out.find("pid=")
    return int(out[marker + 4:].split(",")[0]) if marker >= 0 else None


class Parties:
    """The processes whose CPU time is read around each run, grouped by what they do."""

    def __init__(self, database: db.Database, workers: Workers, broker_url: str):
        self.database = database
        self.workers = workers
        port = urlsplit(broker_url).port or 5672
        self.broker = listener_pid(port) if broker_url.startswith("amqp") else None

    def pids(self) -> dict[str, set[int]]:
        groups: dict[str, set[int]] = {"notekeeper": set(), "caesar": set()}
        for proc, (name, *_) in zip(self.workers.procs, self.workers.specs, strict=True):
            groups[name.rstrip("0123456789")] |= {proc.pid, *descendants(proc.pid)}
        with self.database.engine.connect() as connection:
            groups["postgresql"] = set(connection.scalars(text(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database()")))
        groups["rabbitmq"] = {self.broker} if self.broker else set()
        groups["bench"] = {os.getpid()}
        return groups

    def read(self) -> dict[str, float]:
        return {name: cpu_seconds(pids) for name, pids in self.pids().items()}


def run_scale(settings: Settings, *, updates: int, batch: int, scales: list[int], runs: int,
              wipe: bool, env: dict) -> dict:
    """Measure throughput and CPU per party with each number of processes in scales."""
    app = seam.celery_app()
    database = db.prepare(settings.database_url)
    if database.dialect != "postgresql" or not settings.amqp_broker:
        raise BenchError("scale measures PostgreSQL and RabbitMQ: set ROME_DATABASE_URL "
                         "and ROME_BROKER_URL to them")
    require_empty(database, wipe)
    plan = plan_stream(updates, batch=batch, seed="bench", start=1, top=False)
    messages, expectation = plan
    counts = sum(m.counts for m in messages)
    expected = expected_tallies(expectation)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    purge_queues()
    results = []
    for n in scales:
        specs = ([(f"caesar{i}", "caesar", 1) for i in range(n)]
                 + [(f"notekeeper{i}", "notekeeper", 1) for i in range(n)])
        workers = Workers(env, settings.data_dir / BENCH_LOG.format("scale-worker"), specs=specs)
        workers.start()
        try:
            wait_ready(app, [name for name, *_ in specs])
            parties = Parties(database, workers, settings.broker_url)
            measured = []
            for run in range(runs):
                with database.Session.begin() as session:
                    wipeout(session)
                sys.stderr.write(f"scale {n}: run {run + 1}, {counts} counts in "
                                 f"{len(messages)} messages\n")
                before, started = parties.read(), time.monotonic()
                publisher = threading.Thread(target=publish_all, args=(messages,))
                publisher.start()
                done = wait_state(database, expected, 900, Progress(counts))
                publisher.join()
                after = parties.read()
                seconds = done - started
                cpu = {name: after[name] - before.get(name, 0.0) for name in after}
                measured.append({"updates_per_s": counts / seconds, "seconds": seconds,
                                 "cpu": cpu})
        finally:
            workers.stop()
        best = sorted(measured, key=lambda m: m["updates_per_s"])[len(measured) // 2]
        results.append({
            "processes": n,
            "updates_per_s": round(best["updates_per_s"]),
            "runs_updates_per_s": [round(m["updates_per_s"]) for m in measured],
            "cpu_us_per_update": {name: round(s * 1e6 / counts, 2)
                                  for name, s in best["cpu"].items()},
            "cores_busy": {name: round(s / best["seconds"], 2)
                           for name, s in best["cpu"].items()},
        })
        sys.stderr.write(f"scale {n}: {results[-1]}\n")
    with database.Session.begin() as session:
        wipeout(session)
    database.engine.dispose()
    first = results[0]["updates_per_s"]
    return {
        "mode": "scale",
        "updates": counts,
        "batch": batch,
        "cores": os.cpu_count(),
        "scales": results,
        "speedup": {str(r["processes"]): round(r["updates_per_s"] / first, 2) for r in results},
        "median_of_runs": runs,
        "spread": {str(r["processes"]): round(statistics.pstdev(r["runs_updates_per_s"])
                                             / max(r["updates_per_s"], 1), 3)
                   for r in results},
    }
