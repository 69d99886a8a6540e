"""SIGTERM one worker service again and again under a steady stream (a measurement, not a test).

    ROME_TEST_DATABASE_URL=postgresql://... ROME_TEST_BROKER_URL=amqp://.../vhost \\
        python -m tests.helpers.sigterm_loop --stops 100 [--victim caesar]

Runs the compose file's services as local processes, as tests/system/test_compose.py
does (every worker and beat; no web app or Flower), with the sources ticking every
`--interval` seconds so that messages arrive all the time. Then, `--stops` times: waits
for the victim to be ready, lets it work 2 to 6 s, sends its main process SIGTERM (what
`docker stop` sends), and times its exit. A stop over `--slow` seconds has the process
tree and, where py-spy is installed, each process's stack printed while it waits. Ends
with the stops' median and largest time and how many were slow, failed or hung (still
running after the compose file's stop_grace_period). The queues of the broker's vhost
are deleted first: use a vhost of your own (and a database, which it migrates).
docs/reliability.md, "A warm shutdown that ends", has what it found.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.helpers.compose_file import (
    DATA_DIR_IN_IMAGE,
    ONE_SHOT,
    argv_of,
    environment_of,
    map_hosts,
    python_services,
    resolve,
    seconds,
)
from tests.helpers.services import AMQP_URL, PG_URL
from tests.helpers.support import Processes, reset_queues

NOT_RUN = {"flower", "nero"}  # no part in a worker's shutdown


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stops", type=int, default=50)
    parser.add_argument("--victim", default="caesar")
    parser.add_argument("--interval", default="0.05", help="the sources' seconds between ticks")
    parser.add_argument("--slow", type=float, default=8.0)
    args = parser.parse_args(argv)

    for key in [k for k in os.environ if k.startswith(("ROME_", "FLOWER_"))]:
        del os.environ[key]
    compose = resolve(python_services(), {})
    grace = seconds(compose[args.victim].get("stop_grace_period"), 10)
    tmp = Path(tempfile.mkdtemp(prefix="rome-sigterm-"))
    data, logs = tmp / "data", tmp / "logs"
    data.mkdir()
    logs.mkdir()

    def env_of(name: str) -> dict[str, str]:
        env = {k: map_hosts(v) for k, v in environment_of(compose[name]).items()}
        env.update(ROME_DATABASE_URL=PG_URL, ROME_BROKER_URL=AMQP_URL, ROME_DATA_DIR=str(data),
                   ROME_SOURCE_INTERVAL=args.interval, ROME_UPDATE_CHANCE="1",
                   PATH=os.pathsep.join([os.path.dirname(sys.executable), os.environ["PATH"]]),
                   HOSTNAME=socket.gethostname())
        return env

    def argv_in_data(name: str) -> list[str]:
        return [a.replace(DATA_DIR_IN_IMAGE, str(data)) for a in argv_of(compose[name])]

    reset_queues(AMQP_URL)
    migrate = Processes(env_of("migrate"), logs).run(argv_of(compose["migrate"]), timeout=120)
    if migrate.returncode:
        sys.exit(f"migrate failed:\n{migrate.stdout}\n{migrate.stderr}")

    started: dict[str, tuple[Processes, subprocess.Popen]] = {}
    for name in compose:
        if name not in ONE_SHOT and name not in NOT_RUN:
            processes = Processes(env_of(name), logs)
            started[name] = (processes, processes.start(name, argv_in_data(name)))
    times: list[float] = []
    failed = slow = 0
    try:
        for stop in range(args.stops):
            processes, proc = started[args.victim]
            log = logs / f"{args.victim}.log"
            deadline = time.monotonic() + 60
            while "ready." not in log.read_text(errors="replace"):
                if proc.poll() is not None or time.monotonic() > deadline:
                    sys.exit(f"{args.victim} did not start:\n{log.read_text()[-3000:]}")
                time.sleep(0.1)
            time.sleep(random.uniform(2, 6))
            begun = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(args.slow)
            except subprocess.TimeoutExpired:
                slow += 1
                print(f"stop {stop}: still running after {args.slow} s", flush=True)
                subprocess.run(["ps", "-o", "pid,ppid,stat,etime,cmd", "-g", str(proc.pid)])
                if shutil.which("py-spy"):
                    for pid in subprocess.run(["pgrep", "-g", str(proc.pid)], text=True,
                                              capture_output=True).stdout.split():
                        subprocess.run(["py-spy", "dump", "--pid", pid])
                try:
                    code = proc.wait(max(0.1, grace - (time.monotonic() - begun)))
                except subprocess.TimeoutExpired:
                    code = None
            took = time.monotonic() - begun
            times.append(took)
            print(f"stop {stop}: exit {'HUNG' if code is None else code} in {took:.1f} s",
                  flush=True)
            if code != 0:
                failed += 1
                print(f"its log is {log}", flush=True)
                break
            log.rename(logs / f"{args.victim}.{stop}.log")
            started[args.victim] = (processes, processes.start(args.victim,
                                                               argv_in_data(args.victim)))
    finally:
        for processes, _ in started.values():
            processes.stop(grace=10)
    print(f"{len(times)} stops of {args.victim}: median {statistics.median(times):.1f} s, "
          f"largest {max(times):.1f} s, {slow} over {args.slow} s, {failed} failed or hung "
          f"(stop_grace_period {grace:.0f} s); logs in {logs}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
