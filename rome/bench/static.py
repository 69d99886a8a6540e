"""`rome bench static`: the published race JSON through nginx against the same JSON from
Flask, the publish lag under ingest, and the files one changed race rewrites.

Three parts, each in a temporary folder on the embedded default (SQLite and the
filesystem broker):

1. serving: a national night (--races races over 50 states, 3 candidates each) is
   published; nginx (docker/nginx.conf, its root moved there) serves races/1.json and
   gunicorn (web/gunicorn_conf.py, as the demo and compose run it) /api/races/1, the
   same bytes. wrk with --connections connections measures each in turn, in one run.
2. lag: a worker (notekeeper and caesar) and a publish worker (threads) run while
   `rome inject --rate` offers --rate counts/s; the publish lag (caesar's commit to the
   file renamed into place, as /metrics reports it) over every publish.
3. files: at --scale-races races, one race changes; the files that publish rewrites.

Needs nginx and wrk on PATH (apt-get install nginx-light wrk). A benchmark, not a test:
it asserts nothing and sends traffic only to 127.0.0.1.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from rome.bench.common import CELERY, BenchError, percentile
from rome.bench.web import machine, parse_wrk, wait_until
from rome.feeds.snapshot import CandidateRef, Count, RaceRef, Snapshot, UnitRef
from rome.publish.lag import read_lags
from rome.publish.publisher import Publisher
from rome.read.freshness import stale_after
from rome.store import db
from rome.store.tally import record_snapshots

STATES = ("AL AK AZ AR CA CO CT DE FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE "
          "NV NH NJ NM NY NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY").split()
# As the web judges staleness at the default settings, so the two answer the same bytes.
STALE_AFTER = stale_after(2.0, 0.3)
NGINX_CONF = Path(__file__).resolve().parents[2] / "docker" / "nginx.conf"


def national(races: int, version: int = 1, bump: int | None = None) -> Snapshot:
    """AP's report of `races` races, 3 candidates each, over 50 states; with `bump`, only
    race `bump`, with 1,000 more votes for its first candidate (as AP's updates since the
    last request report only the races that changed)."""
    refs, candidates, counts = [], [], []
    for i in range(races) if bump is None else [bump]:
        state, key = STATES[i % len(STATES)], f"R{i}"
        refs.append(RaceRef(key, f"{state} District {i // len(STATES) + 1}", state, "U.S. House"))
        for n, last in enumerate(("Adams", "Baker", "Chavez")):
            candidates.append(CandidateRef(key, str(n), f"Pat{i}", last, "DEM"))
            votes = 1_000 * (n + 1) + i + (1_000 if i == bump and n == 0 else 0)
            counts.append(Count(key, f"S{state}", str(n), votes))
    return Snapshot(source="ap", format="ap", version=version, feed_at=time.time(),
                    races=tuple(refs), units=tuple(UnitRef(f"S{s}", s, "state") for s in STATES),
                    candidates=tuple(candidates), counts=tuple(counts)).validate()


def _database(folder: Path) -> db.Database:
    folder.mkdir(parents=True, exist_ok=True)
    return db.prepare(f"sqlite:///{folder / 'rome.sqlite3'}")


def files_one_race_rewrites(folder: Path, races: int) -> dict:
    """Publish `races` races, change one, publish it: what that second publish wrote."""
    database = _database(folder)
    with database.Session.begin() as session:
        record_snapshots(session, [national(races)])
    publisher = Publisher(folder / "public", STALE_AFTER)
    started = time.monotonic()
    everything = publisher.publish_from(database)
    full_seconds = time.monotonic() - started
    with database.Session.begin() as session:
        result = record_snapshots(session, [national(races, version=2, bump=races // 2)])
    changed = sorted({race for race, _ in result.races})
    started = time.monotonic()
    one = publisher.publish_from(database, changed)
    database.engine.dispose()
    return {"races": everything.races, "full_written": len(everything.written),
            "full_seconds": full_seconds, "changed_races": changed,
            "written": one.written, "one_seconds": time.monotonic() - started}


def nginx_config(folder: Path, root: Path, port: int) -> Path:
    """A main nginx.conf for this machine around docker/nginx.conf's server block."""
    server = NGINX_CONF.read_text().replace("listen 80;", f"listen 127.0.0.1:{port};")
    server = server.replace("root /srv/rome;", f"root {root};")
    mime = next((p for p in ("/etc/nginx/mime.types",) if Path(p).exists()), None)
    if mime is None:
        raise BenchError("nginx's mime.types is missing (apt-get install nginx-light)")
    config = folder / "nginx.conf"
    config.write_text(
        ("user root;\n" if os.geteuid() == 0 else "")
        + f"worker_processes auto;\npid {folder / 'nginx.pid'};\n"
        f"error_log {folder / 'nginx-error.log'};\n"
        "events { worker_connections 4096; }\n"
        f"http {{\n include {mime};\n default_type application/octet-stream;\n"
        f" sendfile on;\n tcp_nopush on;\n keepalive_requests 100000;\n"
        f" client_body_temp_path {folder}/body;\n proxy_temp_path {folder}/proxy;\n"
        f" fastcgi_temp_path {folder}/fastcgi;\n uwsgi_temp_path {folder}/uwsgi;\n"
        f" scgi_temp_path {folder}/scgi;\n{server}\n}}\n")
    return config


def wrk(url: str, connections: int, threads: int, seconds: int) -> dict:
    argv = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s",
            "--timeout", "5s", "--latency", "-H", "Accept-Encoding: gzip", url]
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    return parse_wrk(done.stdout)


class Procs:
    """Processes started for the bench, each in its own session, logging into folder."""

    def __init__(self, folder: Path, env: dict):
        self.folder, self.env, self.procs = folder, env, {}

    def start(self, name: str, argv: list[str]) -> subprocess.Popen:
        with open(self.folder / f"{name}.log", "wb") as log:
            self.procs[name] = subprocess.Popen(
                argv, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True)
        return self.procs[name]

    def dead(self) -> list[str]:
        return [name for name, proc in self.procs.items()
                if proc.poll() is not None and name != "inject"]

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def serving(folder: Path, args) -> dict:
    """nginx and gunicorn on the same published race, one wrk run each."""
    database = _database(folder / "data")
    with database.Session.begin() as session:
        record_snapshots(session, [national(args.races)])
    root = folder / "data" / "public"
    Publisher(root, STALE_AFTER).publish_from(database)
    database.engine.dispose()
    os.chmod(folder, 0o755)
    env = {**os.environ, "ROME_DATA_DIR": str(folder / "data"), "PYTHONUNBUFFERED": "1",
           "ROME_DATABASE_URL": "", "ROME_BROKER_URL": ""}
    procs = Procs(folder, env)
    nginx_port, web_port = args.port, args.port + 1
    try:
        procs.start("nginx", ["nginx", "-c", str(nginx_config(folder, root, nginx_port)),
                              "-g", "daemon off;"])
        procs.start("web", [sys.executable, "-m", "gunicorn", "-c", "python:web.gunicorn_conf",
                            "-b", f"127.0.0.1:{web_port}", "--access-logfile", "/dev/null",
                            "web:create_app()"])
        static = f"http://127.0.0.1:{nginx_port}/races/1.json"
        api = f"http://127.0.0.1:{web_port}/api/races/1"

        def answers(url: str) -> bool:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.status == 200

        wait_until(lambda: answers(static) and answers(api), 60, "nginx and gunicorn")
        same = urllib.request.urlopen(static).read() == urllib.request.urlopen(api).read()
        results = {"same_bytes": same,
                   "nginx": wrk(static, args.connections, args.threads, args.seconds),
                   "flask": wrk(api, args.connections, args.threads, args.seconds)}
        results["dead"] = procs.dead()
        return results
    finally:
        procs.stop()


def lag(folder: Path, args) -> dict:
    """The publish lag while `rome inject` offers args.rate counts per second."""
    # The embedded default, or PostgreSQL and RabbitMQ when ROME_DATABASE_URL and
    # ROME_BROKER_URL name them (its updates are added to that database).
    env = {**os.environ, "ROME_DATA_DIR": str(folder / "data"), "PYTHONUNBUFFERED": "1",
           "ROME_PUBLISH_DIR": str(folder / "data" / "public"),
           "ROME_PUBLISH_INTERVAL": str(args.interval)}
    subprocess.run([sys.executable, "-m", "rome", "db", "upgrade"], env=env, check=True,
                   capture_output=True)
    procs = Procs(folder, env)
    root = folder / "data" / "public"
    try:
        procs.start("worker", [*CELERY, "worker", "-Q", "notekeeper,caesar", "-n",
                               "bench-static@%h", "-c", "2", "-l", "warning"])
        procs.start("publish", [*CELERY, "worker", "-Q", "publish", "-n", "bench-publish@%h",
                                "-P", "threads", "-c", "4", "-l", "warning"])
        updates = int(args.rate * args.lag_seconds)
        inject = procs.start("inject", [sys.executable, "-m", "rome", "inject", "--updates",
                                        str(updates), "--batch", str(args.batch),
                                        "--rate", str(args.rate)])
        inject.wait(args.lag_seconds * 4 + 120)
        # inject paces and reports rows (each vote type and rollup a count caesar applies),
        # timed from its first publish to its last confirm: its start-up is not in it.
        said = re.search(r"(\d+) rows in [\d.]+ s, (\d+) rows/s",
                         (folder / "inject.log").read_text())
        if said is None:
            raise BenchError(f"rome inject did not finish: see {folder / 'inject.log'}")
        rows, offered = int(said[1]), float(said[2])
        wait_until(lambda: read_lags(root)["count"] > 0, 60, "a publish")
        time.sleep(args.interval * 2 + 2)  # the last asks published
        samples = read_lags(root)
        database = ("PostgreSQL" if env.get("ROME_DATABASE_URL", "").startswith("postgresql")
                    else "SQLite")
        return {"database": database, "offered": offered, "updates": updates, "rows": rows,
                "asks": samples["count"],
                "p50": percentile(samples["samples"], 50),
                "p99": percentile(samples["samples"], 99), "max": max(samples["samples"]),
                "kept": len(samples["samples"]), "dead": procs.dead()}
    finally:
        procs.stop()


def run_static(args) -> int:
    for tool in ("nginx", "wrk"):
        if shutil.which(tool) is None:
            raise BenchError(f"{tool} is not installed (apt-get install nginx-light wrk)")
    base = Path(tempfile.mkdtemp(prefix="rome-bench-static-"))
    parts = set(args.parts.split(","))
    served = lagged = files = None
    try:
        for part in ("serve", "lag", "files"):
            (base / part).mkdir()
        if "serve" in parts:
            served = serving(base / "serve", args)
        if "lag" in parts:
            lagged = lag(base / "lag", args)
        if "files" in parts:
            files = files_one_race_rewrites(base / "files", args.scale_races)
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    print(f"machine: {machine()}")
    dead = (served or {}).get("dead", []) + (lagged or {}).get("dead", [])
    if served:
        print_serving(served, args)
    if lagged:
        print(f"publish lag (caesar's commit to the file), ROME_PUBLISH_INTERVAL={args.interval}"
              f", {lagged['database']}: p50 {lagged['p50']:.2f} s, p99 {lagged['p99']:.2f} s, "
              f"max {lagged['max']:.2f} s over {lagged['kept']} asks ({lagged['asks']} in all), "
              f"ingest offered {lagged['offered']:,.0f} counts/s ({lagged['rows']:,} counts "
              f"caesar applies, from {lagged['updates']:,} unit-level updates in batches of "
              f"{args.batch})")
    if files:
        print(f"at {files['races']} races: a full publish wrote {files['full_written']} files "
              f"in {files['full_seconds']:.1f} s; after race {files['changed_races']} changed, "
              f"the publish wrote {len(files['written'])} files "
              f"({', '.join(files['written'])}) in {files['one_seconds']:.2f} s "
              "(each with its .gz)")
    if dead:
        print(f"INVALID RUN: {', '.join(dead)} died during the run")
        return 1
    return 0


def print_serving(served: dict, args) -> None:
    nginx, flask = served["nginx"], served["flask"]
    print(f"wrk -t{args.threads} -c{args.connections} -d{args.seconds}s --latency, one run "
          f"each, {args.races} races published; the same bytes: {served['same_bytes']}")
    print()
    print("| server | requests/s | p50 ms | p99 ms | non-2xx | socket errors |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, r in (("nginx, races/1.json (docker/nginx.conf)", nginx),
                    ("gunicorn + Flask, /api/races/1 (web/gunicorn_conf.py)", flask)):
        print(f"| {name} | {r['rps']:,.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
              f"{r['non_2xx']} | {r['socket_errors']} |")
    print()
    print(f"nginx / Flask: {nginx['rps'] / flask['rps']:.0f}x the requests per second")
