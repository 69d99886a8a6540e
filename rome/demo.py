"""Run every service of the pipeline as child processes, and stop them all together."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

from rome.settings import Settings

CELERY = [sys.executable, "-m", "celery", "-A", "workers"]
SERVICE_QUEUES = {
    "ap": "elections_ap",
    "mc": "elections_mc",
    "sos": "elections_sos",
    "notekeeper": "notekeeper",
    "caesar": "caesar",
}


@dataclass
class Service:
    name: str
    argv: list[str]


def plan(
    settings: Settings,
    *,
    web_port: int,
    flower_port: int,
    single_worker: bool,
    host: str = "127.0.0.1",
) -> list[Service]:
    """List the processes of a full pipeline: workers, one beat, web, Flower."""
    if single_worker:
        workers = [
            Service(
                "worker",
                [*CELERY, "worker", "-Q", ",".join(SERVICE_QUEUES.values()),
                 "-n", "rome@%h", "-c", "2", "-l", "info"],
            )
        ]
    else:
        # One worker per original service, as the original ran one container each.
        workers = [
            Service(name, [*CELERY, "worker", "-Q", queue, "-n", f"{name}@%h",
                           "-c", "1", "-l", "info"])
            for name, queue in SERVICE_QUEUES.items()
        ]
    schedule = str(settings.data_dir / "celerybeat-schedule")
    return [
        *workers,
        Service("beat", [*CELERY, "beat", "-s", schedule, "-l", "info"]),
        # The same gunicorn settings as compose: web/gunicorn_conf.py.
        Service(
            "web",
            [sys.executable, "-m", "gunicorn", "-c", "python:web.gunicorn_conf",
             "-b", f"{host}:{web_port}", "web:create_app()"],
        ),
        # The password reaches Flower as FLOWER_BASIC_AUTH (see run_demo), not
        # as an argument every user of `ps` could read. Read only: a Flower
        # login shows the pipeline but cannot stop workers or send tasks.
        Service("flower", [*CELERY, "flower", f"--port={flower_port}", f"--address={host}",
                           "--read_only"]),
    ]


class Supervisor:
    """Start services in their own sessions, relay their output, stop them as one."""

    def __init__(self, services: list[Service], env: dict[str, str], out=None):
        self.services = services
        self.env = env
        self.out = out or sys.stdout
        self.procs: dict[str, subprocess.Popen] = {}
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._width = max(len(s.name) for s in services)

    def say(self, name: str, line: str) -> None:
        with self._lock:
            self.out.write(f"{name:<{self._width}} | {line.rstrip()}\n")
            self.out.flush()

    def _relay(self, name: str, stream) -> None:
        for line in iter(stream.readline, ""):
            self.say(name, line)
        stream.close()

    def start(self) -> None:
        for service in self.services:
            # A new session per child: its whole tree (pool children, gunicorn
            # workers) shares one process group we can signal at once.
            proc = subprocess.Popen(
                service.argv,
                env=self.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                text=True,
                bufsize=1,
                start_new_session=True,
            )
            self.procs[service.name] = proc
            relay = threading.Thread(
                target=self._relay, args=(service.name, proc.stdout), daemon=True
            )
            relay.start()
            self.say("rome", f"started {service.name} pid={proc.pid}")

    def wait(self) -> int:
        """Block until asked to stop or a service dies; return the exit code."""
        while not self.stopping.is_set():
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    self.say("rome", f"{name} exited with {proc.returncode}; stopping everything")
                    return 1
            self.stopping.wait(0.5)
        return 0

    def stop(self, grace: float = 20.0) -> None:
        # SIGTERM to each service's main process only, as docker stop does:
        # Celery then shuts down warm (running tasks finish, the rest are
        # requeued) and stops its own pool. Signalling the pool children too
        # can kill one holding the pool's queue lock and hang the parent.
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in self.procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        # Whatever is left, leader or not, goes now: no orphans.
        for name, proc in self.procs.items():
            if proc.poll() is None:
                self.say("rome", f"{name} did not stop within {grace:.0f}s: killing it")
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait()
        self.say("rome", "all services stopped")


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def run_demo(
    settings: Settings,
    *,
    web_port: int = 8083,
    flower_port: int = 5555,
    single_worker: bool = False,
    host: str = "127.0.0.1",
) -> int:
    """Migrate, then run the whole pipeline until Ctrl-C or SIGTERM."""
    flower_auth = settings.flower_auth or f"admin:{secrets.token_urlsafe(12)}"
    env = {
        **os.environ,
        "ROME_DATA_DIR": str(settings.data_dir),
        "PYTHONUNBUFFERED": "1",
        "FLOWER_BASIC_AUTH": flower_auth,
    }
    supervisor = Supervisor(
        plan(settings, web_port=web_port, flower_port=flower_port,
             single_worker=single_worker, host=host),
        env,
    )

    def request_stop(signum, _frame):
        supervisor.say("rome", f"received {signal.Signals(signum).name}, stopping")
        supervisor.stopping.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    supervisor.start()
    user, _, password = flower_auth.partition(":")
    supervisor.say("rome", f"race page: http://{host}:{web_port}/race")
    # Print the password only when we made it up: one the user chose stays theirs.
    login = f"user={user} password={password}" if not settings.flower_auth else "ROME_FLOWER_AUTH"
    supervisor.say("rome", f"flower:    http://{host}:{flower_port}  login: {login}")
    try:
        code = supervisor.wait()
    finally:
        supervisor.stop()
    return code
