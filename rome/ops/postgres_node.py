"""Run a private PostgreSQL server in a folder of its own, to restart and kill at will.

`rome chaos` restarts PostgreSQL and kills its postmaster with SIGKILL; doing
that to the machine's own server would take every other user of it down too.
This one is Debian's packaged server binaries (`initdb`, `pg_ctl`) on a free
loopback port, trust authentication for the user `root`, its socket and data
in a folder that close() removes. PostgreSQL refuses to run as root, so when
we are root the folder belongs to `postgres` and every command runs as it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from rome.ops.rabbit_nodes import free_port

PG_ROOT = Path("/usr/lib/postgresql")


def pg_bin() -> Path | None:
    """The newest installed server's bin folder, or None."""
    versions = sorted((p for p in PG_ROOT.glob("*/bin") if (p / "initdb").exists()),
                      key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    return versions[-1] if versions else None


class PostgresNode:
    """One private PostgreSQL server: start, fast restart, SIGKILL of the postmaster, close."""

    def __init__(self, user: str = "root"):
        self.bin = pg_bin()
        if self.bin is None:
            raise RuntimeError(f"no PostgreSQL server binaries under {PG_ROOT}")
        self.user = user
        self.port = free_port()
        # Not under pytest's tmp folders: those are private to root, and the server may run
        # as postgres.
        self.base = Path(tempfile.mkdtemp(prefix="rome-pg-"))
        self.data = self.base / "data"
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _run(self, *argv: str, timeout: float = 120, check: bool = True):
        done = subprocess.run([*self._as, *argv], capture_output=True, text=True,
                              timeout=timeout, cwd=self.base)
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)}: {done.stdout}{done.stderr}")
        return done

    def url(self, database: str = "rome") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def start(self, databases: tuple[str, ...] = ("rome",)) -> None:
        if self._as:
            shutil.chown(self.base, "postgres", "postgres")
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", self.user,
                  "--auth=trust", "-E", "UTF8", "--no-instructions")
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(f"listen_addresses = '127.0.0.1'\nport = {self.port}\n"
                       f"unix_socket_directories = '{self.base}'\n"
                       # Durable as in production: a SIGKILL must go through crash recovery.
                       "fsync = on\nmax_connections = 200\n")
        self.launch()
        for name in databases:
            self._run(str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port),
                      "-U", self.user, name)

    def launch(self, timeout: float = 120) -> None:
        """Start the server on its data (after a crash: crash recovery), and wait for it."""
        deadline = time.monotonic() + timeout
        while True:
            done = self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-w", "-t", "60",
                             "-l", str(self.base / "server.log"), "start", check=False)
            if done.returncode == 0:
                return
            # After a SIGKILL of the postmaster its backends linger for a moment,
            # holding the shared memory a new postmaster refuses to share.
            if time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL did not start: {done.stdout}{done.stderr}"
                                   f"{self.log()[-2000:]}")
            time.sleep(0.5)

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def running(self) -> bool:
        pid = self.postmaster_pid()
        return pid is not None and Path(f"/proc/{pid}").exists()

    def restart_fast(self) -> None:
        """`pg_ctl restart -m fast`: sessions are ended, the server checkpoints and starts."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-w", "-t", "120",
                  "-m", "fast", "-l", str(self.base / "server.log"), "restart")

    def kill9(self) -> None:
        """SIGKILL the postmaster and wait for it (and its backends) to be gone."""
        pid = self.postmaster_pid()
        if pid is None:
            raise RuntimeError("PostgreSQL is not running")
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)

    def log(self) -> str:
        try:
            return (self.base / "server.log").read_text(errors="replace")
        except OSError:
            return ""

    def close(self) -> None:
        pid = self.postmaster_pid()
        if pid is not None:
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                      "-w", "-t", "30", "stop", check=False)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(self.base, ignore_errors=True)
