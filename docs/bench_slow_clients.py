"""Measure /api/races under gunicorn while slow clients dribble their requests' headers.

Seeds a fresh SQLite database, starts gunicorn with the given arguments on a
free loopback port, opens --slow connections that each send a request line and
then one header line every --interval seconds (never ending the request), and
meanwhile fetches /api/races every 0.2 s for --seconds. Prints one JSON line:
latency without and under the attack, answers, failures, and how many slow
clients the server cut.

    python docs/bench_slow_clients.py --slow 40                 # Rome's settings
    python docs/bench_slow_clients.py --slow 4 -- -w 2          # gunicorn's sync worker

Everything after -- goes to gunicorn (default: -c python:web.gunicorn_conf).
A benchmark, not a test: it asserts nothing and talks only to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from tests.helpers.webapp import seed  # noqa: E402  (the web tests' known results)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ours, gunicorn_args = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if (
        "--" in argv) else (argv, ["-c", "python:web.gunicorn_conf"])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slow", type=int, default=40, help="slow clients (default 40)")
    parser.add_argument("--interval", type=float, default=3.0,
                        help="seconds between a slow client's header lines (default 3)")
    parser.add_argument("--seconds", type=float, default=25.0, help="how long to measure")
    parser.add_argument("--timeout", type=float, default=120.0, help="per fetch")
    args = parser.parse_args(ours)

    folder = Path(tempfile.mkdtemp(prefix="rome-bench-slow-"))
    url = f"sqlite:///{folder / 'rome.sqlite3'}"
    seed(url)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ROME_", "FLOWER_"))}
    env.update(ROME_DATA_DIR=str(folder / "data"), ROME_DATABASE_URL=url)
    port = free_port()
    log = open(folder / "gunicorn.log", "wb")
    web = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-b", f"127.0.0.1:{port}", *gunicorn_args,
         "web:create_app()"],
        env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
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
        web.terminate()
        web.wait(30)
        log.close()
    log_text = (folder / "gunicorn.log").read_text(errors="replace")
    print(json.dumps({
        "gunicorn": gunicorn_args,
        "slow_clients": args.slow,
        "quiet_median_ms": round(statistics.median(quiet) * 1000, 1),
        "attacked_median_ms": round(statistics.median(timings) * 1000, 1) if timings else None,
        "attacked_max_ms": round(max(timings) * 1000, 1) if timings else None,
        "answered": len(timings),
        "failed": failed,
        "slow_clients_cut": cut[0],
        "worker_timeouts": log_text.count("WORKER TIMEOUT"),
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
