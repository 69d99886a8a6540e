"""Start services in their own sessions, relay their output with prefixes, stop them as one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Service:
    name: str
    argv: list[str]


class Supervisor:
    """Start services in their own sessions, relay their output, stop them as one."""

    def __init__(self, services: list[Service], env: dict[str, str], out=None):
        self.services = services
        self.env = env
        self.out = out or sys.stdout
        self.procs: dict[str, subprocess.Popen] = {}
        self.stopping = threading.Event()
        # Set by Enter or SIGUSR1: show the notice (the banner) again.
        self.asked = threading.Event()
        self.notice: list[str] = []
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

    def start(self, names: list[str] | None = None) -> None:
        """Start the services named (all of them by default)."""
        for service in self.services:
            if names is not None and service.name not in names:
                continue
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

    def show_notice(self) -> None:
        self.asked.clear()
        for line in self.notice:
            self.say("rome", line)

    def exited(self) -> str | None:
        """Return the name of a service that has exited, if one has."""
        return next((name for name, proc in self.procs.items() if proc.poll() is not None), None)

    def wait(self) -> int:
        """Block until asked to stop or a service dies; return the exit code."""
        while not self.stopping.is_set():
            name = self.exited()
            if name is not None:
                code = self.procs[name].returncode
                self.say("rome", f"{name} exited with {code}; stopping everything")
                return 1
            if self.asked.is_set() and self.notice:
                self.show_notice()
            self.stopping.wait(0.2)
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


def children_of(pid: int) -> set[int]:
    """The live (not zombie) child processes of pid, read from /proc."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                found.add(int(entry.name))
    return found
