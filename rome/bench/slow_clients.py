"""`rome bench slow-clients`: /api/races under gunicorn while slow clients dribble their headers.

Seeds a fresh SQLite database with a few results (a snapshot of each source's
race and two rejected payloads), starts gunicorn with the given arguments on a
free loopback port, opens --slow connections that each send a request line and
then one header line every --interval seconds (never ending the request), and
meanwhile fetches /api/races every 0.2 s for --seconds. Prints one JSON line:
latency without and under the attack, answers, failures, and how many slow
clients the server cut.

    rome bench slow-clients --slow 40             # Rome's settings
    rome bench slow-clients --slow 4 -- -w 2      # gunicorn's sync worker

Everything after -- goes to gunicorn (default: -c python:web.gunicorn_conf).
A benchmark, not a test: it asserts nothing and talks only to 127.0.0.1.
"""

from __future__ import annotations

import os
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path

from rome.bench.common import Web
from rome.feeds.inject import plan_snapshots
from rome.store import db
from rome.store.tally import record_snapshots, reject_payload

DEFAULT_GUNICORN = ("-c", "python:web.gunicorn_conf")


def seed_results(url: str) -> None:
    """Migrate the database at url and record a snapshot of each source's race, fresh (feed
    time now), with 8 units' counts, and two rejected payloads: what /api/races answers."""
    database = db.prepare(url)
    snapshots, _ = plan_snapshots(3 * 8, batch=8, start=int(time.time()), seed="slow-clients")
    with database.Session.begin() as session:
        record_snapshots(session, snapshots)
        reject_payload(session, "mc", b"<html>not json", "body is not JSON")
        reject_payload(session, "ap", "{}", "races missing")
    database.engine.dispose()


def fetch(port: int, timeout: float) -> float:
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        conn.sendall(b"GET /api/races HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    if not answer.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"answer: {answer[:80]!r}")
    return time.perf_counter() - started


def run_slow_clients(args) -> dict:
    """Measure with args.gunicorn (default: Rome's settings) and return the figures."""
    gunicorn_args = tuple(args.gunicorn) or DEFAULT_GUNICORN
    folder = Path(tempfile.mkdtemp(prefix="rome-bench-slow-"))
    url = f"sqlite:///{folder / 'rome.sqlite3'}"
    seed_results(url)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ROME_", "FLOWER_"))}
    env.update(ROME_DATA_DIR=str(folder / "data"), ROME_DATABASE_URL=url)
    web = Web(env, folder / "gunicorn.log", gunicorn_args)
    port = web.port
    slow: list[socket.socket] = []
    stop = threading.Event()
    cut = [0]
    try:
        for _ in range(100):
            try:
                fetch(port, 2)
                break
            except OSError:
                time.sleep(0.1)
        quiet = [fetch(port, args.timeout) for _ in range(20)]
        for _ in range(args.slow):
            conn = socket.create_connection(("127.0.0.1", port))
            conn.sendall(b"GET /api/races HTTP/1.1\r\nHost: localhost\r\n")
            slow.append(conn)

        def trickle():
            line = 0
            while not stop.wait(args.interval):
                line += 1
                for conn in list(slow):
                    try:
                        conn.sendall(b"X-Slow-%d: 1\r\n" % line)
                    except OSError:
                        slow.remove(conn)
                        cut[0] += 1

        threading.Thread(target=trickle, daemon=True).start()
        timings, failed = [], 0
        started = time.monotonic()
        while time.monotonic() - started < args.seconds:
            try:
                timings.append(fetch(port, args.timeout))
            except (OSError, RuntimeError):
                failed += 1
            time.sleep(0.2)
    finally:
        stop.set()
        for conn in slow:
            conn.close()
        web.stop()
    log_text = (folder / "gunicorn.log").read_text(errors="replace")
    return {
        "gunicorn": list(gunicorn_args),
        "slow_clients": args.slow,
        "quiet_median_ms": round(statistics.median(quiet) * 1000, 1),
        "attacked_median_ms": round(statistics.median(timings) * 1000, 1) if timings else None,
        "attacked_max_ms": round(max(timings) * 1000, 1) if timings else None,
        "answered": len(timings),
        "failed": failed,
        "slow_clients_cut": cut[0],
        "worker_timeouts": log_text.count("WORKER TIMEOUT"),
    }

