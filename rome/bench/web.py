"""`rome bench web`: /api/races under gunicorn while ingest runs, against a trivial endpoint.

Starts a Celery worker and the web app (gunicorn, as the demo and compose run it)
on a fresh embedded database, streams updates in with `rome inject --rate`, and
meanwhile runs wrk against /livez (the trivial endpoint: no database, no
template) and /api/races, alternating, several times. Prints a Markdown
table of p50/p99 latency and requests per second, with medians, and the ingest
rate the database actually saw during the measurements.

    rome bench web                                # defaults: 3 runs of 10 s each
    rome bench web --runs 5 --connections 8 --json results.json

Needs wrk on PATH (apt-get install wrk). It uses the embedded default (SQLite
and the filesystem broker) in a temporary folder; with ROME_DATABASE_URL and
ROME_BROKER_URL set it uses those instead, and adds its updates to that database.
A benchmark, not a test: it asserts nothing and sends traffic only to 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from rome.bench.common import CELERY, BenchError, Web
from rome.ops import seam

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def duration_ms(text: str) -> float:
    """Read a wrk duration such as 812.00us, 4.20ms or 1.02s as milliseconds."""
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(number) * UNITS[unit]


def parse_wrk(output: str) -> dict:
    """Pull requests/s, latency percentiles and error counts out of wrk --latency output."""
    result = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))}
    for percent in ("50", "75", "90", "99"):
        result[f"p{percent}_ms"] = duration_ms(
            re.search(rf"^\s+{percent}%\s+(\S+)", output, re.M).group(1)
        )
    result["requests"] = int(re.search(r"(\d+) requests in", output).group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    result["non_2xx"] = int(non_2xx.group(1)) if non_2xx else 0
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                       output)
    result["socket_errors"] = sum(map(int, errors.groups())) if errors else 0
    return result


def applied_updates(base: str) -> float:
    """Sum rome_count_changes_total from the server's own /metrics."""
    with urllib.request.urlopen(f"{base}/metrics", timeout=10) as response:
        text = response.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("rome_count_changes_total{"))


def wait_until(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise BenchError(f"timed out waiting for {what}")


def wrk(url: str, args) -> dict:
    argv = ["wrk", "-t", str(args.threads), "-c", str(args.connections),
            "-d", f"{args.seconds}s", "--latency", url]
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    return parse_wrk(done.stdout)


def median(runs: list[dict], key: str) -> float:
    return statistics.median(run[key] for run in runs)


def machine() -> str:
    memory = "?"
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            memory = f"{int(line.split()[1]) / 1024 / 1024:.0f} GiB"
    model = next((line.split(":", 1)[1].strip()
                  for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), "?")
    return f"{os.cpu_count()} CPUs ({model}), {memory} memory"


def run_web(args) -> int:
    """Measure, print the table, and return 0 (1 if the web or the worker died meanwhile)."""
    if shutil.which("wrk") is None:
        raise BenchError("wrk is not installed (apt-get install wrk)")

    folder = Path(tempfile.mkdtemp(prefix="rome-bench-web-"))
    env = {**os.environ, "ROME_DATA_DIR": str(folder / "data"), "PYTHONUNBUFFERED": "1"}
    python = sys.executable
    subprocess.run([python, "-m", "rome", "db", "upgrade"], env=env, check=True,
                   capture_output=True)
    procs: dict[str, subprocess.Popen] = {}

    def start(name: str, argv: list[str]) -> subprocess.Popen:
        log = open(folder / f"{name}.log", "wb")
        proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        procs[name] = proc
        return proc

    # Enough updates to outlast every wrk run, with time to spare.
    window = 2 * args.runs * (args.seconds + 1) + 20
    updates = int(args.rate * window)
    web = Web(env, folder / "web.log",
              ("-c", "python:web.gunicorn_conf", "-w", str(args.web_workers)))
    procs["web"] = web.proc
    base = web.base
    try:
        # Not the publish queue: what it costs is `rome bench static`'s to measure.
        queues = [name for name in seam.queue_names() if name != "publish"]
        start("worker", [*CELERY, "worker", "-Q", ",".join(queues),
                         "-n", "bench-web@%h", "-c", "2", "-l", "warning"])
        web.wait()
        start("inject", [python, "-m", "rome", "inject", "--updates", str(updates),
                         "--batch", str(args.batch), "--rate", str(args.rate)])
        wait_until(lambda: applied_updates(base) > 0, 60, "the first updates to land")
        time.sleep(3)  # let ingest reach its pace

        trivial, races = [], []
        first_count, first_at = applied_updates(base), time.monotonic()
        for _ in range(args.runs):
            trivial.append(wrk(f"{base}/livez", args))
            races.append(wrk(f"{base}/api/races", args))
        ingest_rate = (applied_updates(base) - first_count) / (time.monotonic() - first_at)
        # inject may have finished; the web and the worker must still be up.
        dead = [name for name in ("web", "worker") if procs[name].poll() is not None]
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    ratio = median(races, "rps") / median(trivial, "rps")
    rows = [
        ("/livez (trivial)", trivial),
        ("/api/races", races),
    ]
    print(f"machine: {machine()}")
    print(f"wrk -t{args.threads} -c{args.connections} -d{args.seconds}s --latency, "
          f"{args.runs} runs each, alternating; gunicorn -w {args.web_workers} "
          "(web/gunicorn_conf.py: threads)")
    print(f"ingest during the runs: {ingest_rate:,.0f} updates/s applied "
          f"(offered {args.rate:,.0f}/s in batches of {args.batch})")
    if dead:
        print(f"INVALID RUN: {', '.join(dead)} died during the run; logs in {folder}")
    print()
    print("| endpoint | p50 ms | p99 ms | requests/s | runs: p99 ms / requests/s | non-2xx |")
    print("|---|---:|---:|---:|---|---:|")
    for name, runs in rows:
        each = ", ".join(f"{r['p99_ms']:.1f} / {r['rps']:.0f}" for r in runs)
        print(f"| {name} | {median(runs, 'p50_ms'):.1f} | {median(runs, 'p99_ms'):.1f} | "
              f"{median(runs, 'rps'):.0f} | {each} | {sum(r['non_2xx'] for r in runs)} |")
    print()
    print(f"/api/races serves {ratio:.0%} of the trivial endpoint's requests per second "
          f"(medians); p99 {median(races, 'p99_ms'):.1f} ms.")
    if args.json:
        args.json.write_text(json.dumps({
            "machine": machine(),
            "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()
                     if not callable(v)},
            "ingest_rate": ingest_rate, "trivial": trivial, "races": races, "ratio": ratio,
            "dead": dead,
        }, indent=1) + "\n")
    if dead:
        return 1
    shutil.rmtree(folder, ignore_errors=True)
    return 0

