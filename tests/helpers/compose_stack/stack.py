"""Drive docker-compose.yml on podman: its Docker API, Compose, and the healthchecks.

Debian's `docker-compose` talks to `podman system service` on a socket of the test's own.
Podman schedules healthchecks with systemd timers, and our machines have no systemd, so
`HealthChecker` runs each container's check itself (`podman healthcheck run`), as Docker's
scheduler would: while a container is starting, every couple of seconds, so the stack
comes up without waiting out whole intervals; once healthy, at its own interval.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
CONTAINERS_CONF = HERE / "containers.conf"
PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
TOOLS = ("podman", "docker-compose", "debootstrap")


def missing_tools() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def podman_env() -> dict[str, str]:
    """The environment for every podman command: the test's own containers.conf."""
    return {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}


def podman(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(["podman", *args], env=podman_env(), capture_output=True,
                            text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args)} exited with {result.returncode}:\n"
                           f"{result.stderr[-2000:]}")
    return result


def inspect(ids: list[str]) -> list[dict]:
    if not ids:
        return []
    result = podman("inspect", "--type", "container", *ids, check=False)
    return json.loads(result.stdout or "[]")


class PodmanService:
    """`podman system service` on a Unix socket in `directory`, for Compose to drive."""

    def __init__(self, directory: Path):
        self.socket = directory / "podman.sock"
        self.log = directory / "podman-service.log"
        self.proc: subprocess.Popen | None = None

    @property
    def docker_host(self) -> str:
        return f"unix://{self.socket}"

    def _answers(self) -> bool:
        try:
            with socket.socket(socket.AF_UNIX) as sock:
                sock.settimeout(2)
                sock.connect(str(self.socket))
                sock.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
                return b"OK" in sock.recv(4096)
        except OSError:
            return False

    def start(self, timeout: float = 30) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                ["podman", "system", "service", "--time=0", self.docker_host],
                env=podman_env(), stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while not self._answers():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"podman system service did not answer:\n"
                                   f"{self.log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Compose:
    """`docker-compose -p PROJECT -f FILE` against the podman service, logged to a file."""

    def __init__(self, project: str, compose_file: Path, docker_host: str, log: Path,
                 drop: tuple[str, ...] = ()):
        self.project, self.compose_file, self.log = project, compose_file, log
        # What a fresh clone gets: no secret, setting or COMPOSE_* from this shell.
        self.env = {k: v for k, v in os.environ.items()
                    if k not in drop and not k.startswith(("COMPOSE_", "DOCKER_", "ROME_"))}
        self.env.update(DOCKER_HOST=docker_host, COMPOSE_HTTP_TIMEOUT="180")
        self.argv = ["docker-compose", "--ansi", "never", "-p", project, "-f", str(compose_file)]

    def popen(self, *args: str) -> subprocess.Popen:
        with open(self.log, "ab") as log:
            log.write(f"\n$ docker-compose {' '.join(args)}\n".encode())
            log.flush()
            return subprocess.Popen(
                [*self.argv, *args], env=self.env, cwd=self.compose_file.parent,
                stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, text=True,
            )

    def run(self, *args: str, timeout: float = 300, check: bool = True):
        proc = self.popen(*args)
        try:
            stdout, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise AssertionError(
                f"docker-compose {' '.join(args)} took over {timeout} s:\n{self.tail()}"
            ) from None
        if check and proc.returncode != 0:
            raise AssertionError(f"docker-compose {' '.join(args)} exited with "
                                 f"{proc.returncode}:\n{stdout[-2000:]}\n{self.tail()}")
        return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, "")

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:]


def project_containers(project: str, every: bool = True) -> list[dict]:
    """The project's containers (`docker-compose run` ones too), inspected."""
    args = ["ps", "--format", "{{.ID}}", "--filter", f"label={PROJECT_LABEL}={project}"]
    ids = podman(*args, *(["-a"] if every else [])).stdout.split()
    return inspect(ids)


def service_of(container: dict) -> str:
    return (container["Config"].get("Labels") or {}).get(SERVICE_LABEL, "")


def health_of(container: dict) -> str | None:
    """"starting", "healthy" or "unhealthy"; None for a container without a healthcheck."""
    if not container["Config"].get("Healthcheck"):
        return None
    health = container["State"].get("Health") or container["State"].get("Healthcheck") or {}
    return health.get("Status") or "starting"


def leftovers(project: str) -> dict[str, list[str]]:
    """Every container, network and volume the project still has, by label or by name."""
    prefix = f"{project}_"

    def names(*args: str) -> list[str]:
        return podman(*args).stdout.split()

    label = f"label={PROJECT_LABEL}={project}"
    return {
        "containers": sorted(
            set(names("ps", "-a", "--format", "{{.Names}}", "--filter", label))
            | {n for n in names("ps", "-a", "--format", "{{.Names}}") if n.startswith(prefix)}
        ),
        "networks": sorted(
            n for n in names("network", "ls", "--format", "{{.Name}}") if n.startswith(prefix)
        ),
        "volumes": sorted(
            set(names("volume", "ls", "--format", "{{.Name}}", "--filter", label))
            | {n for n in names("volume", "ls", "--format", "{{.Name}}")
               if n.startswith(prefix)}
        ),
    }


def remove_project(project: str) -> None:
    """Force-remove whatever the project left, for cleanup after a failure."""
    found = leftovers(project)
    if found["containers"]:
        podman("rm", "--force", "--time", "5", *found["containers"], check=False, timeout=180)
    for network in found["networks"]:
        podman("network", "rm", "--force", network, check=False)
    if found["volumes"]:
        podman("volume", "rm", "--force", *found["volumes"], check=False)


class HealthChecker(threading.Thread):
    """Run the project's healthchecks, since podman cannot schedule them without systemd."""

    def __init__(self, project: str, starting_every: float = 2.0, parallel: int = 3):
        super().__init__(name=f"healthchecks-{project}", daemon=True)
        self.project = project
        self.starting_every = starting_every
        self.pool = ThreadPoolExecutor(max_workers=parallel)
        self.stopped = threading.Event()
        self.lock = threading.Lock()
        self.running: set[str] = set()
        self.last_run: dict[str, float] = {}
        self.last_output: dict[str, str] = {}
        self.runs = 0

    def run(self) -> None:
        while not self.stopped.wait(1.0):
            try:
                containers = project_containers(self.project, every=False)
            except (RuntimeError, subprocess.TimeoutExpired, json.JSONDecodeError):
                continue
            now = time.monotonic()
            for container in containers:
                health = health_of(container)
                if health is None or not container["State"].get("Running"):
                    continue
                interval = container["Config"]["Healthcheck"].get("Interval") or 30e9
                wait = interval / 1e9 if health == "healthy" else self.starting_every
                cid = container["Id"]
                with self.lock:
                    if cid in self.running or now - self.last_run.get(cid, 0) < wait:
                        continue
                    self.running.add(cid)
                self.pool.submit(self._check, cid, container["Name"])

    def _check(self, cid: str, name: str) -> None:
        try:
            result = podman("healthcheck", "run", cid, check=False, timeout=90)
            self.last_output[name] = (result.stdout + result.stderr).strip()[-500:]
        except subprocess.TimeoutExpired:
            self.last_output[name] = "healthcheck run timed out"
        finally:
            with self.lock:
                self.running.discard(cid)
                self.last_run[cid] = time.monotonic()
                self.runs += 1

    def stop(self) -> None:
        self.stopped.set()
        if self.ident is not None:  # started: the stack's set-up may fail before
            self.join(10)
        self.pool.shutdown(wait=True, cancel_futures=True)
